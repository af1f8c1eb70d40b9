"""Recurring campaigns as data, scheduled with APScheduler's cron triggers.

``config/recurring.yaml``::

    campaigns:
      - name: daily-baby
        schedule: "0 9 * * *"          # crontab: every day at 09:00 (service.timezone)
        script: surveys/platform_satisfaction.cmn.yaml
        selection:
          days: 1                       # orders of the last day ...
          until: today                  # ... before today's midnight: yesterday's buyers
          categories: [baby]            # (also merchants, hosts, platforms, products)
        ends_after: 12h                 # no call after this (optional)
        start: true                     # dial at once (false: planned, started by an operator)

Each firing plans one campaign (``<name>-<YYYYMMDDHHMM>``); ``recurring_runs`` keeps one row per
(name, fire time), so a restart, a second service or a catch-up never plans one firing twice. A
firing missed while the service was down is made up on start when it is less than
``catch_up`` old (default 1 h); older ones are skipped and logged.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import sqlite_utils
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from pydantic import Field, field_validator

from ivr.campaign.yamlcfg import Strict, load_yaml_model
from ivr.service.events import parse_duration
from ivr.store import now_iso, register_schema

log = logging.getLogger(__name__)


class RecurringSelection(Strict):
    days: int = Field(default=1, ge=1, le=3650)
    until: Literal["now", "today"] = "today"
    categories: list[str] = []
    merchants: list[str] = []
    hosts: list[str] = []
    platforms: list[str] = []
    products: list[str] = []

    def include(self) -> dict[str, list[str]]:
        return {field: values for field, values in (
            ("category", self.categories), ("merchant", self.merchants), ("host", self.hosts),
            ("platform", self.platforms), ("product", self.products)) if values}

    def reference(self, fired: datetime, tz: ZoneInfo) -> datetime:
        if self.until == "now":
            return fired
        local = fired.astimezone(tz)
        return local.replace(hour=0, minute=0, second=0, microsecond=0)


class Recurring(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$")
    enabled: bool = True
    schedule: str
    script: Path
    language: str | None = None
    selection: RecurringSelection = RecurringSelection()
    ends_after: float | None = None
    start: bool = True
    catch_up: float = 3600.0

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        try:
            CronTrigger.from_crontab(v, timezone=UTC)
        except ValueError as exc:
            raise ValueError(f"schedule {v!r} is not a crontab expression "
                             f"(minute hour day month weekday): {exc}") from exc
        return v

    @field_validator("ends_after", "catch_up", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float | None:
        return None if v is None else parse_duration(v)

    def trigger(self, tz: ZoneInfo) -> CronTrigger:
        return CronTrigger.from_crontab(self.schedule, timezone=tz)


class RecurringFile(Strict):
    campaigns: list[Recurring] = []


def load_recurring(path: Path | None) -> RecurringFile:
    if path is None or not Path(path).exists():
        return RecurringFile()
    data = load_yaml_model(RecurringFile, path)
    base = Path(path).resolve().parent.parent
    fixed = []
    for item in data.campaigns:
        if not item.script.is_absolute() and (base / item.script).exists():
            item = item.model_copy(update={"script": (base / item.script).resolve()})
        fixed.append(item)
    return RecurringFile(campaigns=fixed)


@register_schema
def recurring_schema(db: sqlite_utils.Database) -> None:
    db.table("recurring_runs").create(
        {"name": str, "fire_at": str, "campaign_id": str, "created_at": str, "error": str},
        pk=("name", "fire_at"), if_not_exists=True)


PlanFn = Callable[[Recurring, datetime], str]  # -> campaign id (plans in a worker thread)


class RecurringScheduler:
    """One APScheduler job per enabled entry; each firing plans through ``plan``."""

    def __init__(self, db: sqlite_utils.Database, entries: RecurringFile, tz: ZoneInfo,
                 plan: PlanFn, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.db = db
        self.entries = [e for e in entries.campaigns if e.enabled]
        self.tz = tz
        self.plan = plan
        self.clock = clock
        self.scheduler = AsyncIOScheduler(timezone=tz)

    def start(self) -> None:
        for entry in self.entries:
            self.scheduler.add_job(self._fire, entry.trigger(self.tz), args=[entry.name],
                                   id=entry.name, coalesce=True, max_instances=1,
                                   misfire_grace_time=int(entry.catch_up))
        self.scheduler.start()
        asyncio.get_running_loop().create_task(self.catch_up())

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def next_runs(self) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for entry in self.entries:
            job = self.scheduler.get_job(entry.name)
            when = getattr(job, "next_run_time", None) if job else None
            out[entry.name] = when.isoformat() if when else None
        return out

    def _firings(self, entry: Recurring, now: datetime) -> list[datetime]:
        """Fire times of ``entry`` within its catch-up period before ``now``, oldest first."""
        trigger = entry.trigger(self.tz)
        out = []
        t = trigger.get_next_fire_time(None, now - timedelta(seconds=entry.catch_up))
        while t is not None and t <= now:
            out.append(t)
            t = trigger.get_next_fire_time(t, t + timedelta(seconds=1))
        return out

    async def catch_up(self) -> None:
        """Firings missed while the service was down (within each entry's catch_up)."""
        now = self.clock()
        for entry in self.entries:
            for fired in self._firings(entry, now):
                await self.fire(entry, fired)

    async def _fire(self, name: str) -> None:
        # APScheduler does not pass the fire time: the firing is the latest one up to now.
        entry = next(e for e in self.entries if e.name == name)
        firings = self._firings(entry, self.clock())
        if firings:
            await self.fire(entry, firings[-1])

    async def fire(self, entry: Recurring, fired: datetime) -> str | None:
        """Plan the campaign of one firing, once; returns its id (None when already done)."""
        stamp = fired.astimezone(UTC).isoformat(timespec="seconds")
        try:
            self.db.execute("INSERT INTO recurring_runs (name, fire_at, created_at) "
                            "VALUES (?, ?, ?)", [entry.name, stamp, now_iso()])
        except sqlite3.IntegrityError:
            return None  # this firing was planned before (restart, catch-up)
        try:
            cid = await asyncio.to_thread(self.plan, entry, fired)
        except Exception as exc:  # noqa: BLE001 - recorded and logged; the next firing runs
            self.db.execute("UPDATE recurring_runs SET error = ? WHERE name = ? AND fire_at = ?",
                            [f"{type(exc).__name__}: {exc}"[:500], entry.name, stamp])
            log.exception("recurring campaign %s (%s) failed", entry.name, stamp)
            return None
        self.db.execute("UPDATE recurring_runs SET campaign_id = ? WHERE name = ? AND "
                        "fire_at = ?", [cid, entry.name, stamp])
        log.info("recurring %s fired: campaign %s", entry.name, cid,
                 extra={"event": "recurring.fired", "recurring": entry.name, "campaign": cid})
        return cid


def recent_runs(db: sqlite_utils.Database, limit: int = 50) -> list[dict[str, Any]]:
    return [dict(r) for r in db.query(
        "SELECT * FROM recurring_runs ORDER BY fire_at DESC LIMIT ?", [limit])]
