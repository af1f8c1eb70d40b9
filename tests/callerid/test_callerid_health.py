"""Health scoring from synthetic attempts: each signal drives the score down and flags."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cid_helpers import BJ, GZ, NJ, SH, T0, add_attempts, mix

from ivr.callerid.health import check_pool
from ivr.callerid.rotation import CallerIdUnusable, assert_usable
from ivr.callerid.state import ACTIVE, FLAGGED, events


def healthy_peers(db, at=T0) -> None:
    for n in (BJ, GZ, NJ):
        add_attempts(db, n, mix(12, 8), at=at)  # 60 % answered


def by_number(report):
    return {n.number: n for n in report.numbers}


def test_all_healthy_pool_stays_active(db, write_pool) -> None:
    pool = write_pool()
    healthy_peers(db)
    add_attempts(db, SH, mix(11, 9), at=T0)
    report = check_pool(db, pool, now=T0)
    assert report.ok
    assert {n.state for n in report.numbers} == {ACTIVE}
    sh = by_number(report)[SH]
    assert sh.attempts == 20 and sh.answer_rate == pytest.approx(0.55)
    assert sh.score > 90


def test_answer_rate_far_below_pool_median_flags(db, write_pool) -> None:
    pool = write_pool()
    healthy_peers(db)
    add_attempts(db, SH, mix(2, 18), at=T0)  # 10 % vs median 60 %
    report = check_pool(db, pool, now=T0)
    sh = by_number(report)[SH]
    assert sh.state == FLAGGED and not sh.healthy
    assert sh.score < 50
    assert any("answer rate 10% < 50% of pool median 60%" in w for w in sh.why)
    assert by_number(report)[BJ].state == ACTIVE
    # the history says why
    assert "answer rate" in events(db, SH)[0]["reason"]


def test_answer_rate_somewhat_lower_lowers_score_without_flagging(db, write_pool) -> None:
    pool = write_pool()
    healthy_peers(db)
    add_attempts(db, SH, mix(9, 11), at=T0)  # 45 % vs 60 %: ratio 0.75
    sh = by_number(check_pool(db, pool, now=T0))[SH]
    assert sh.state == ACTIVE
    assert 60 < sh.score < 100


def test_short_calls_flag(db, write_pool) -> None:
    pool = write_pool()
    healthy_peers(db)
    add_attempts(db, SH, mix(0, 8), at=T0)
    add_attempts(db, SH, ["answered"] * 6, talk_s=2.0, at=T0)  # hung up within 2 s
    add_attempts(db, SH, ["answered"] * 6, talk_s=90.0, at=T0)
    sh = by_number(check_pool(db, pool, now=T0))[SH]
    assert sh.short_rate == pytest.approx(0.5)
    assert sh.state == FLAGGED
    assert any("short-call rate 50% > 40%" in w for w in sh.why)
    assert sh.score < 50


@pytest.mark.parametrize("sip,q850", [(603, None), (608, None), (607, None), (None, 21)])
def test_explicit_rejections_flag(db, write_pool, sip, q850) -> None:
    pool = write_pool()
    healthy_peers(db)
    add_attempts(db, SH, mix(6, 4), at=T0)
    add_attempts(db, SH, ["rejected"] * 4, sip_code=sip, q850=q850, at=T0)
    sh = by_number(check_pool(db, pool, now=T0))[SH]
    assert sh.rejections == 4
    assert sh.state == FLAGGED
    assert any("4 explicit rejections" in w for w in sh.why)
    assert sh.score < 50
    with pytest.raises(CallerIdUnusable, match="flagged"):
        assert_usable(db, SH, now=T0)


def test_busy_486_is_not_a_rejection(db, write_pool) -> None:
    pool = write_pool()
    healthy_peers(db)
    add_attempts(db, SH, mix(12, 4), at=T0)
    add_attempts(db, SH, ["busy"] * 4, sip_code=486, q850=17, at=T0)
    sh = by_number(check_pool(db, pool, now=T0))[SH]
    assert sh.rejections == 0 and sh.state == ACTIVE


def test_one_bad_call_never_flags(db, write_pool) -> None:
    pool = write_pool()
    healthy_peers(db)
    add_attempts(db, SH, ["rejected"], sip_code=603, at=T0)
    add_attempts(db, SH, ["answered"], talk_s=1.0, at=T0)
    add_attempts(db, SH, ["no_answer"] * 3, at=T0)
    sh = by_number(check_pool(db, pool, now=T0))[SH]
    assert sh.rejections == 1 and sh.attempts == 5
    assert sh.state == ACTIVE and sh.score == 100


def test_short_window_catches_a_number_blocked_this_morning(db, write_pool) -> None:
    """Fine all day yesterday, rejected for the last half hour: the 60-minute window flags it."""
    pool = write_pool(health={"min_calls": 10, "rejection_rate_max": 0.3})
    healthy_peers(db)
    add_attempts(db, SH, mix(60, 40), at=T0 - timedelta(hours=5))
    add_attempts(db, SH, ["rejected"] * 8, sip_code=603, at=T0)
    sh = by_number(check_pool(db, pool, now=T0))[SH]
    assert sh.state == FLAGGED
    assert any("last 1h" in w for w in sh.why)
    assert not any("last 1d" in w for w in sh.why)  # 8 of 108 over the day is under 30 %


def test_old_attempts_outside_every_window_are_ignored(db, write_pool) -> None:
    pool = write_pool()
    healthy_peers(db)
    add_attempts(db, SH, ["rejected"] * 10, sip_code=603, at=T0 - timedelta(days=2))
    sh = by_number(check_pool(db, pool, now=T0))[SH]
    assert sh.attempts == 0 and sh.state == ACTIVE
