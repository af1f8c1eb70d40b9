"""Cool-down and re-admission follow the config, on an injected clock."""

from __future__ import annotations

from datetime import timedelta

from cid_helpers import BJ, GZ, NJ, SH, T0, add_attempts, mix

from ivr.callerid.health import check_pool
from ivr.callerid.rotation import usable_reason
from ivr.callerid.state import (
    ACTIVE,
    COOLING_DOWN,
    FLAGGED,
    add_flag,
    clear_flags,
    events,
    get_number,
    sync_pool,
)


def state(db, number=SH) -> str:
    return get_number(db, number)["state"]


def test_flag_cooldown_readmission_cycle(db, write_pool) -> None:
    pool = write_pool(health={"cooldown_minutes": 120})
    sync_pool(db, pool, now=T0)
    add_flag(db, SH, "reported as spam", "manual", now=T0)
    assert state(db) == FLAGGED
    # still flagged while the flag stands, however long
    check_pool(db, pool, now=T0 + timedelta(hours=6))
    assert state(db) == FLAGGED
    lifted = T0 + timedelta(hours=7)
    clear_flags(db, SH, "carrier delisted it", now=lifted)
    check_pool(db, pool, now=lifted)
    assert state(db) == COOLING_DOWN
    assert usable_reason(db, SH, now=lifted) is not None  # out of rotation while cooling down
    check_pool(db, pool, now=lifted + timedelta(minutes=119))
    assert state(db) == COOLING_DOWN
    check_pool(db, pool, now=lifted + timedelta(minutes=120))
    assert state(db) == ACTIVE
    assert usable_reason(db, SH, now=lifted + timedelta(minutes=120)) is None
    history = [(e["from_state"], e["to_state"]) for e in reversed(events(db, SH))]
    assert history == [(None, ACTIVE), (ACTIVE, FLAGGED), (FLAGGED, COOLING_DOWN),
                       (COOLING_DOWN, ACTIVE)]
    assert "re-admitted" in events(db, SH)[0]["reason"]


def test_health_flag_readmitted_after_cooldown_and_clean_recheck(db, write_pool) -> None:
    pool = write_pool(health={"cooldown_minutes": 30})
    for n in (BJ, GZ, NJ):
        add_attempts(db, n, mix(12, 8), at=T0)
    add_attempts(db, SH, ["rejected"] * 5, sip_code=608, at=T0)
    check_pool(db, pool, now=T0)
    assert state(db) == FLAGGED
    # next tick: the old rejections are not fresh evidence any more -> cool-down starts
    check_pool(db, pool, now=T0 + timedelta(minutes=1))
    assert state(db) == COOLING_DOWN
    check_pool(db, pool, now=T0 + timedelta(minutes=20))
    assert state(db) == COOLING_DOWN
    check_pool(db, pool, now=T0 + timedelta(minutes=31))
    assert state(db) == ACTIVE
    # the rejections from before the flag do not flag it again
    check_pool(db, pool, now=T0 + timedelta(minutes=32))
    assert state(db) == ACTIVE


def test_dirty_recheck_blocks_readmission(db, write_pool) -> None:
    """Calls that went out during the flag (in flight) and were rejected keep it out."""
    pool = write_pool(health={"cooldown_minutes": 30})
    sync_pool(db, pool, now=T0)
    add_flag(db, SH, "feed", "feed", now=T0)
    clear_flags(db, SH, "delisted", now=T0 + timedelta(minutes=1))
    check_pool(db, pool, now=T0 + timedelta(minutes=1))
    assert state(db) == COOLING_DOWN
    add_attempts(db, SH, ["rejected"] * 4, sip_code=603, at=T0 + timedelta(minutes=10))
    check_pool(db, pool, now=T0 + timedelta(minutes=40))
    assert state(db) == FLAGGED  # back to flagged: the cool-down starts over later
    assert "explicit rejections" in events(db, SH)[0]["reason"]


def test_new_flag_during_cooldown_restarts_it(db, write_pool) -> None:
    pool = write_pool(health={"cooldown_minutes": 60})
    sync_pool(db, pool, now=T0)
    add_flag(db, SH, "first", "feed", now=T0)
    clear_flags(db, SH, "gone", now=T0)
    check_pool(db, pool, now=T0)
    assert state(db) == COOLING_DOWN
    add_flag(db, SH, "second", "feed", now=T0 + timedelta(minutes=50))
    assert state(db) == FLAGGED
    clear_flags(db, SH, "gone again", now=T0 + timedelta(minutes=55))
    check_pool(db, pool, now=T0 + timedelta(minutes=55))
    check_pool(db, pool, now=T0 + timedelta(minutes=70))  # first cool-down would be over
    assert state(db) == COOLING_DOWN
    check_pool(db, pool, now=T0 + timedelta(minutes=115))
    assert state(db) == ACTIVE


def test_retired_in_config_and_removed_numbers_leave_rotation(db, write_pool) -> None:
    pool = write_pool()
    sync_pool(db, pool, now=T0)
    pool2 = write_pool(numbers=[{"number": SH, "retired": True}, {"number": BJ}])
    check_pool(db, pool2, now=T0)
    assert state(db, SH) == "retired" and state(db, GZ) == "retired"
    assert "removed from numbers.yaml" in usable_reason(db, GZ, now=T0)
    assert "retired" in usable_reason(db, SH, now=T0)
