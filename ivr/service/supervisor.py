"""Runs the dialer of every running campaign, inside its windows, and again after a restart.

Each running (or paused) campaign gets one :class:`~ivr.campaign.runner.CampaignRunner`, built by
:func:`ivr.campaign.wiring.build_runner` exactly as ``ivr campaign run`` builds it (region rules,
caller-ID pool and health, follow-ups) and sharing the service's one AMI connection. The dialer
keeps its crash safety: it takes the campaign's lease (so a ``campaign run`` elsewhere and the
service never dial one campaign together), resolves attempts a killed process left open, and
waits for each contact's next allowed time. An event campaign (``kind = event``) stays open
through its day, waiting for the contacts events add.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlite_utils

from ivr.campaign.runner import CampaignError, CampaignRunner, RunStats
from ivr.config import Settings
from ivr.dialer.types import Originator

log = logging.getLogger(__name__)
RETRY_AFTER_S = 30.0  # a campaign whose dialer could not start is tried again after this


@dataclass
class Running:
    dialer: CampaignRunner
    task: asyncio.Task[RunStats | None]
    started: float


class Supervisor:
    def __init__(self, settings: Settings, db: sqlite_utils.Database, originator: Originator,
                 *, scan_s: float = 2.0, poll_s: float = 1.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 dialer_kwargs: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.db = db
        self.originator = originator
        self.scan_s = scan_s
        self.poll_s = poll_s
        self.clock = clock
        self.dialer_kwargs = dialer_kwargs or {}
        self.tz = ZoneInfo(settings.service.timezone)
        self.running: dict[str, Running] = {}
        self.failed: dict[str, tuple[float, str]] = {}  # campaign -> (when, why) it could not run
        self._wake = asyncio.Event()
        self._stopping = False

    # ---- control ----------------------------------------------------------------------------
    def wake(self, campaign_id: str | None = None) -> None:
        """A campaign was started or got a contact: dial it now, not at the next scan."""
        if campaign_id and campaign_id in self.running:
            self.running[campaign_id].dialer.wake()
        else:
            self.failed.pop(campaign_id or "", None)
            self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            try:
                self.scan()
            except Exception:  # noqa: BLE001 - a locked database now and then: next scan
                log.exception("campaign scan failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.scan_s)

    async def stop(self, grace_s: float = 60.0) -> None:
        """Start no new call; let calls in progress end (up to ``grace_s``), then return."""
        self._stopping = True
        self._wake.set()
        for run in self.running.values():
            run.dialer.stop()
        tasks = [r.task for r in self.running.values()]
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=grace_s)
            for task in pending:
                task.cancel()  # the open attempts are resolved by recover() on the next start

    # ---- what runs --------------------------------------------------------------------------
    def scan(self) -> None:
        rows = self.db.execute(
            "SELECT id, coalesce(kind, ''), day FROM campaigns WHERE status IN ('running', "
            "'paused') ORDER BY created_at").fetchall()
        for cid, kind, day in rows:
            if cid in self.running or self._stopping:
                continue
            failed = self.failed.get(cid)
            if failed and time.monotonic() - failed[0] < RETRY_AFTER_S:
                continue
            self._start(str(cid), str(kind), day)

    def _keep_open(self, kind: str, day: str | None) -> Callable[[], bool] | None:
        if kind != "event" or not day:
            return None
        last = date.fromisoformat(day) + timedelta(days=1)  # a delay may cross midnight

        def keep() -> bool:
            return self.clock().astimezone(self.tz).date() <= last

        return keep

    def _start(self, campaign_id: str, kind: str, day: str | None) -> None:
        from ivr.campaign.wiring import build_runner

        try:
            dialer, _svc = build_runner(
                self.settings, self.db, campaign_id, self.originator,
                poll_interval_s=self.poll_s, keep_open=self._keep_open(kind, day),
                **self.dialer_kwargs)
        except Exception as exc:  # noqa: BLE001 - a bad policy / pool file: shown, retried
            self.failed[campaign_id] = (time.monotonic(), f"{type(exc).__name__}: {exc}")
            log.error("campaign %s cannot run: %s", campaign_id, exc,
                      extra={"event": "campaign.error", "campaign": campaign_id})
            return
        task = asyncio.create_task(self._dial(campaign_id, dialer), name=f"dial-{campaign_id}")
        self.running[campaign_id] = Running(dialer, task, time.monotonic())
        log.info("campaign %s: dialer started", campaign_id,
                 extra={"event": "campaign.dialer_started", "campaign": campaign_id})

    async def _dial(self, campaign_id: str, dialer: CampaignRunner) -> RunStats | None:
        try:
            stats = await dialer.run()
            log.info("campaign %s: dialer ended (%s)", campaign_id, stats.status,
                     extra={"event": "campaign.dialer_ended", "campaign": campaign_id,
                            **{f"stats_{k}": v for k, v in stats.as_dict().items()}})
            self.failed.pop(campaign_id, None)
            return stats
        except CampaignError as exc:  # e.g. another process holds the lease
            self.failed[campaign_id] = (time.monotonic(), str(exc))
            log.warning("campaign %s not dialed: %s", campaign_id, exc,
                        extra={"event": "campaign.error", "campaign": campaign_id})
            return None
        except Exception as exc:  # noqa: BLE001 - one campaign's failure must not stop others
            self.failed[campaign_id] = (time.monotonic(), f"{type(exc).__name__}: {exc}")
            log.exception("campaign %s: dialer failed", campaign_id)
            return None
        finally:
            self.running.pop(campaign_id, None)

    # ---- for the API / console --------------------------------------------------------------
    def live(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for cid, run in self.running.items():
            nxt = None
            with contextlib.suppress(Exception):
                due = run.dialer.next_due_at()
                nxt = due.isoformat() if due else None
            out[cid] = {"in_flight": run.dialer.in_flight, "next_due_at": nxt,
                        **run.dialer.stats.as_dict()}
        return out
