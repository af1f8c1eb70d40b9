"""HealthMonitor: the scheduled check takes a number out during a campaign."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from cid_helpers import BJ, GZ, NJ, SH, T0, add_attempts, mix

from ivr.callerid.monitor import HealthMonitor
from ivr.callerid.rotation import pick_caller_id
from ivr.callerid.state import FLAGGED, get_number


def test_scheduled_check_flags_and_rotates_out(db, write_pool) -> None:
    pool = write_pool()
    for n in (BJ, GZ, NJ):
        add_attempts(db, n, mix(12, 8), at=T0)
    clock = {"now": T0}
    monitor = HealthMonitor(db, pool, interval_s=0.02, clock=lambda: clock["now"])

    async def campaign() -> None:
        task = asyncio.create_task(monitor.run())
        await asyncio.sleep(0.05)
        assert get_number(db, SH)["state"] != FLAGGED
        # 10:00 - the carrier starts rejecting SH
        add_attempts(db, SH, ["rejected"] * 5, sip_code=603, at=T0 + timedelta(minutes=1))
        clock["now"] = T0 + timedelta(minutes=1)
        for _ in range(100):
            if get_number(db, SH)["state"] == FLAGGED:
                break
            await asyncio.sleep(0.01)
        monitor.stop()
        await asyncio.wait_for(task, 2)

    asyncio.run(campaign())
    assert get_number(db, SH)["state"] == FLAGGED
    assert monitor.checks >= 2 and monitor.last is not None
    # a Shanghai callee no longer gets the Shanghai number
    assert pick_caller_id(db, pool, "+8613310001234", now=T0 + timedelta(minutes=2)) != SH


def test_failing_check_does_not_end_the_loop(db, write_pool, caplog) -> None:
    pool = write_pool()
    calls = {"n": 0}

    def broken_clock():
        calls["n"] += 1
        raise RuntimeError("clock broke")

    monitor = HealthMonitor(db, pool, interval_s=0.01, clock=broken_clock)

    async def go() -> None:
        task = asyncio.create_task(monitor.run())
        await asyncio.sleep(0.08)
        monitor.stop()
        await asyncio.wait_for(task, 2)

    asyncio.run(go())
    assert calls["n"] >= 2  # it kept trying
    assert "caller-ID health check failed" in caplog.text


def test_check_now_returns_report(db, write_pool) -> None:
    pool = write_pool()
    report = HealthMonitor(db, pool, clock=lambda: T0).check_now()
    assert report.ok and len(report.numbers) == 4
