"""The health check on a schedule, for the campaign dialer (a number flagged at 10:00 is out of
rotation by the next tick, not next month)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

import sqlite_utils

from ivr.callerid.config import PoolConfig
from ivr.callerid.health import CheckReport, check_pool

log = logging.getLogger(__name__)


class HealthMonitor:
    """``await run()`` checks every ``interval_s`` until ``stop()`` (or cancellation).

    A failing check is logged and retried at the next tick: it never ends the campaign. The check
    runs on the event loop's thread (it takes milliseconds and shares the dialer's connection).
    """

    def __init__(self, db: sqlite_utils.Database, pool_config: PoolConfig,
                 interval_s: float | None = None, *,
                 clock: Callable[[], datetime | None] = lambda: None,
                 on_report: Callable[[CheckReport], None] | None = None) -> None:
        self.db = db
        self.pool = pool_config
        self.interval_s = interval_s if interval_s is not None else \
            pool_config.health.check_interval_s
        self.clock = clock
        self.on_report = on_report
        self.last: CheckReport | None = None
        self.checks = 0
        self._stop = asyncio.Event()

    def check_now(self) -> CheckReport:
        """One check now: recompute health and apply state changes."""
        report = check_pool(self.db, self.pool, now=self.clock(), source="monitor")
        self.last = report
        self.checks += 1
        for n in report.numbers:
            if n.state != n.previous_state:
                log.warning("caller ID %s: %s -> %s (%s)", n.number, n.previous_state, n.state,
                            "; ".join(n.why))
        if self.on_report is not None:
            self.on_report(report)
        return report

    async def run(self) -> None:
        self._stop.clear()
        while not self._stop.is_set():
            try:
                self.check_now()
            except Exception:  # noqa: BLE001 - keep the campaign going; next tick retries
                log.exception("caller-ID health check failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.interval_s)

    def stop(self) -> None:
        self._stop.set()
