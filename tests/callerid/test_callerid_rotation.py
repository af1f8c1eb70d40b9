"""Rotation: province first, least used, under cap, sticky per callee, never a flagged number."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cid_helpers import BJ, GZ, NJ, SH, T0, add_attempts

from ivr.callerid.health import check_pool
from ivr.callerid.rotation import (
    CallerIdUnusable,
    NoCallerIdAvailable,
    assert_usable,
    pick_caller,
    pick_caller_id,
    sticky_caller_id,
)
from ivr.callerid.state import add_flag, clear_flags, used_today

JIANGSU = "+8613912345678"  # Changzhou, Jiangsu (mobile)
BEIJING = "+8613800138000"
SICHUAN = [f"+861370099{i:04d}" for i in range(40)]  # Yibin, Sichuan: no local number


def test_prefers_callee_province(db, write_pool) -> None:
    pool = write_pool()
    pick = pick_caller(db, pool, JIANGSU, now=T0)
    assert pick.number == NJ and pick.local and pick.trunk == "carrier"
    assert pick_caller_id(db, pool, BEIJING, now=T0) == BJ


def test_no_local_number_spreads_by_least_used(db, write_pool) -> None:
    pool = write_pool()
    picks = [pick_caller_id(db, pool, callee, now=T0) for callee in SICHUAN]
    counts = {n: picks.count(n) for n in (SH, BJ, GZ, NJ)}
    assert counts == {SH: 10, BJ: 10, GZ: 10, NJ: 10}
    assert used_today(db, SH, pool.tz, T0) == 10


def test_least_used_counts_attempts_placed_by_hand(db, write_pool) -> None:
    pool = write_pool()
    for n in (SH, BJ, GZ):
        add_attempts(db, n, ["answered"] * 3, at=T0)
    assert pick_caller_id(db, pool, SICHUAN[0], now=T0) == NJ


def test_daily_cap_respected_and_resets_next_day(db, write_pool) -> None:
    pool = write_pool(numbers=[{"number": SH, "daily_cap": 2}, {"number": BJ, "daily_cap": 3}])
    picks = [pick_caller_id(db, pool, c, now=T0) for c in SICHUAN[:5]]
    assert sorted(picks) == sorted([SH, SH, BJ, BJ, BJ])
    with pytest.raises(NoCallerIdAvailable, match="reached their daily cap"):
        pick_caller_id(db, pool, SICHUAN[5], now=T0)
    # 10:00 Shanghai + 14 h = 00:00 the next local day: caps are fresh
    assert pick_caller_id(db, pool, SICHUAN[5], now=T0 + timedelta(hours=14))


def test_local_number_at_cap_yields_to_another(db, write_pool) -> None:
    pool = write_pool(numbers=[{"number": NJ, "daily_cap": 1}, {"number": SH, "daily_cap": 50}])
    assert pick_caller_id(db, pool, JIANGSU, now=T0) == NJ
    assert pick_caller_id(db, pool, "+8613951234567", now=T0) == SH  # another Jiangsu callee


def test_sticky_across_retries(db, write_pool) -> None:
    pool = write_pool()
    first = pick_caller_id(db, pool, SICHUAN[0], now=T0)
    # other callees use other numbers meanwhile, so "least used" would now pick differently
    for callee in SICHUAN[1:8]:
        pick_caller_id(db, pool, callee, now=T0)
    for hours in (1, 3, 26):
        assert pick_caller_id(db, pool, SICHUAN[0], now=T0 + timedelta(hours=hours)) == first
    assert sticky_caller_id(db, SICHUAN[0]) == first
    assert pick_caller(db, pool, SICHUAN[0], now=T0).sticky


def test_sticky_number_replaced_when_flagged_and_never_used_flagged(db, write_pool) -> None:
    pool = write_pool()
    assert pick_caller_id(db, pool, JIANGSU, now=T0) == NJ
    add_flag(db, NJ, "reported", "manual", now=T0)
    for callee in [JIANGSU, *SICHUAN]:
        assert pick_caller_id(db, pool, callee, now=T0) != NJ
    new = sticky_caller_id(db, JIANGSU)
    assert new != NJ
    with pytest.raises(CallerIdUnusable, match="flagged"):
        assert_usable(db, NJ, now=T0)
    assert_usable(db, new, now=T0)
    # back in rotation later, the callee keeps the number it has now
    clear_flags(db, NJ, "ok", now=T0)
    check_pool(db, pool, now=T0)
    check_pool(db, pool, now=T0 + timedelta(minutes=121))
    assert_usable(db, NJ, now=T0 + timedelta(minutes=121))
    assert pick_caller_id(db, pool, JIANGSU, now=T0 + timedelta(minutes=122)) == new


def test_sticky_number_at_cap_waits_by_default(db, write_pool) -> None:
    pool = write_pool(numbers=[{"number": SH, "daily_cap": 1}, {"number": BJ, "daily_cap": 9}])
    assert pick_caller_id(db, pool, "+8613310001234", now=T0) == SH  # Shanghai callee
    with pytest.raises(NoCallerIdAvailable, match="daily cap"):
        pick_caller_id(db, pool, "+8613310001234", now=T0 + timedelta(minutes=5))
    pool2 = write_pool(numbers=[{"number": SH, "daily_cap": 1}, {"number": BJ, "daily_cap": 9}],
                       rotation={"sticky_over_cap": "reassign"})
    assert pick_caller_id(db, pool2, "+8613310001234", now=T0 + timedelta(minutes=5)) == BJ


def test_pool_name_and_reasons(db, write_pool) -> None:
    pool = write_pool(numbers=[{"number": SH}, {"number": GZ, "pool": "alt"}])
    assert pick_caller_id(db, pool, JIANGSU, now=T0, pool_name="alt") == GZ
    assert pick_caller_id(db, pool, JIANGSU, now=T0) == SH  # sticky per pool
    with pytest.raises(NoCallerIdAvailable, match="pool 'nope' has no numbers"):
        pick_caller_id(db, pool, JIANGSU, now=T0, pool_name="nope")
    add_flag(db, GZ, "spam", "feed", now=T0)
    with pytest.raises(NoCallerIdAvailable) as err:
        pick_caller_id(db, pool, JIANGSU, now=T0, pool_name="alt")
    assert err.value.reason == "no healthy number in caller-ID pool 'alt' (1 flagged)"
    with pytest.raises(NoCallerIdAvailable, match="invalid phone number"):
        pick_caller_id(db, pool, "139", now=T0)


def test_unknown_number_is_unusable(db, write_pool) -> None:
    write_pool()
    with pytest.raises(CallerIdUnusable, match="not in the caller-ID pool"):
        assert_usable(db, "+8657180001001")
