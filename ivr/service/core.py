"""The service object: configuration, database connections and the background loops, shared by
the API and the console. Everything runs on one asyncio loop; work that takes long (planning a
campaign, a batch of orders, a report) runs in a worker thread with its own connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import sqlite_utils

from ivr.campaign.importer import ImportPolicy
from ivr.campaign.planner import PLANNED, RUNNING, PlanResult, plan_campaign
from ivr.campaign.policy import PolicyConfig, load_policy
from ivr.campaign.runner import CampaignError, get_campaign, set_status
from ivr.campaign.segments import SegmentsConfig, load_segments
from ivr.campaign.wiring import queue_region_messages
from ivr.config import Settings
from ivr.dialer.types import Originator
from ivr.regions.rules import RuleSet, load_rules
from ivr.secrets import stored_secret
from ivr.service.events import EventEngine, EventRules, load_event_rules
from ivr.service.recurring import Recurring, RecurringFile, RecurringScheduler, load_recurring
from ivr.service.results import ResultsProducer
from ivr.service.supervisor import Supervisor
from ivr.store import open_db
from ivr.webhooks.deliver import RetryPolicy, WebhookDeliverer
from ivr.webhooks.store import CALL_FINISHED, FULFILMENT

log = logging.getLogger("ivr.service")
T = TypeVar("T")


class ServiceError(ValueError):
    """A request the service refuses (unknown script, bad selection ...); the message says why."""


class Service:
    def __init__(self, settings: Settings, *, originator: Originator | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.settings = settings
        self.clock = clock
        self.tz = ZoneInfo(settings.service.timezone)
        self.db = open_db(settings.db_path)  # the loop thread's connection
        _private(settings.db_path)
        self._local = threading.local()
        self.policy: PolicyConfig = load_policy(settings.service.policy)
        self.segments: SegmentsConfig = load_segments(settings.service.segments)
        self.regions: RuleSet = load_rules(settings.regions)
        self.event_rules: EventRules = load_event_rules(settings.service.events)
        self.recurring: RecurringFile = load_recurring(settings.service.recurring)
        hooks = settings.service.webhooks
        self.webhook_secret = hooks.secret or stored_secret(settings.secrets_dir,
                                                            "webhook_secret", 32)
        self.session_key = stored_secret(settings.secrets_dir, "console_session_key", 32)
        self.originator: Any = originator
        self._own_originator = originator is None
        self.supervisor: Supervisor | None = None
        self.deliverer = WebhookDeliverer(
            self.db, self.webhook_secret,
            {CALL_FINISHED: hooks.call_finished or "", FULFILMENT: hooks.fulfilment or ""},
            retry=RetryPolicy(hooks.max_tries, hooks.backoff_s, hooks.factor,
                              hooks.max_backoff_s), timeout_s=hooks.timeout_s, clock=clock)
        self.results = ResultsProducer(self.db, call_finished=bool(hooks.call_finished),
                                       fulfilment=bool(hooks.fulfilment),
                                       on_queued=self.deliverer.wake)
        self.engine = EventEngine(
            self.db, self.event_rules, policy=self.policy, segments=self.segments,
            timezone=settings.service.timezone, region_decide=self.regions.decide,
            platform=settings.platform, trunk=settings.trunk.name,
            default_caller_id=None, language=settings.language, on_contact=self.wake,
            import_policy=ImportPolicy.from_settings(settings.orders), clock=clock)
        self.scheduler = RecurringScheduler(self.db, self.recurring, self.tz, self.plan_recurring,
                                            clock=clock)
        self.started_at = time.time()
        self.ami_error: str | None = "not connected yet"
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopping = asyncio.Event()

    # ---- connections ------------------------------------------------------------------------
    def thread_db(self) -> sqlite_utils.Database:
        """This worker thread's own connection (SQLite connections are not shared across
        threads here)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = open_db(self.settings.db_path)
        return db

    async def in_thread(self, fn: Callable[[sqlite_utils.Database], T]) -> T:
        return await asyncio.to_thread(lambda: fn(self.thread_db()))

    # ---- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._ami_and_dial(), name="ami"),
                       asyncio.create_task(self.deliverer.run(), name="webhooks"),
                       asyncio.create_task(self._results_loop(), name="results")]
        if self.settings.service.outbox_sender:
            self._tasks.append(asyncio.create_task(self._outbox_loop(), name="outbox"))
        self.scheduler.start()
        log.info("service started", extra={"event": "service.started",
                                           "rules": len(self.event_rules.rules),
                                           "recurring": len(self.recurring.campaigns)})

    async def stop(self) -> None:
        self._stopping.set()
        self.scheduler.shutdown()
        if self.supervisor is not None:
            await self.supervisor.stop()
        self.deliverer.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._own_originator and self.originator is not None:
            self.originator.close()
        log.info("service stopped", extra={"event": "service.stopped"})

    async def _ami_and_dial(self) -> None:
        """Connect to AMI (retrying while Asterisk is down), then supervise the dialers."""
        if self.originator is None:
            from ivr.dialer.ami import AmiOriginator

            while not self._stopping.is_set():
                candidate = AmiOriginator.from_settings(self.settings)
                try:
                    await candidate.connect()
                except (OSError, TimeoutError, Exception) as exc:  # noqa: BLE001
                    candidate.close()
                    self.ami_error = f"{type(exc).__name__}: {exc}"
                    log.warning("AMI not reachable (%s); retrying in 5 s", self.ami_error)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), timeout=5)
                    continue
                self.originator = candidate
                break
            if self.originator is None:
                return
        self.ami_error = None
        svc = self.settings.service
        self.supervisor = Supervisor(self.settings, self.db, self.originator, scan_s=svc.scan_s,
                                     poll_s=svc.poll_s, clock=self.clock)
        await self.supervisor.run()

    async def _results_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.results.run_once(self.clock())
            except Exception:  # noqa: BLE001 - next pass
                log.exception("results pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=1.0)

    async def _outbox_loop(self) -> None:
        """Send due follow-up messages through the configured sender (same rules, dedup and
        crash recovery as ``ivr outbox send``)."""
        from ivr.outbox.deliver import deliver
        from ivr.outbox.senders import load_sender

        sender = load_sender(str(self.settings.service.outbox_sender))
        while not self._stopping.is_set():
            try:
                counts = await deliver(self.db, sender, now=self.clock())
                if any(counts.values()):
                    log.info("outbox: %s", counts, extra={"event": "outbox.sent", **counts})
            except Exception:  # noqa: BLE001 - next pass
                log.exception("outbox pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(),
                                       timeout=self.settings.service.outbox_every_s)

    def wake(self, campaign_id: str | None = None) -> None:
        if self.supervisor is not None:
            self.supervisor.wake(campaign_id)

    # ---- campaigns --------------------------------------------------------------------------
    def script_path(self, text: str) -> Path:
        """A survey script the service may use: inside one of ``service.scripts``."""
        roots = [p.resolve() for p in self.settings.service.scripts]
        candidate = Path(text)
        tries = [candidate] if candidate.is_absolute() else [r / candidate for r in roots] + [
            Path.cwd() / candidate]
        for path in tries:
            path = path.resolve()
            if path.is_file() and any(path.is_relative_to(r) for r in roots):
                return path
        raise ServiceError(f"script {text!r} is not a survey script in "
                           f"{', '.join(str(r) for r in roots)}")

    def scripts(self) -> list[Path]:
        out: list[Path] = []
        for root in self.settings.service.scripts:
            out += sorted(Path(root).glob("*.yaml"))
        return out

    def plan(self, db: sqlite_utils.Database, *, name: str, script: str,
             language: str | None = None, days: int | None = None,
             include: dict[str, list[str]] | None = None, reference: datetime | None = None,
             starts_at: datetime | None = None, ends_at: datetime | None = None,
             kind: str = "batch", source: str | None = None,
             campaign_id: str | None = None) -> tuple[PlanResult, int]:
        """Plan a campaign from a selection (run in a worker thread: ``db`` is its own)."""
        from ivr.survey.loader import ScriptError, load_script

        path = self.script_path(script)
        try:
            loaded = load_script(path)
        except ScriptError as exc:
            raise ServiceError(str(exc)) from exc
        try:
            result = plan_campaign(
                db, name, script=str(path), language=language or loaded.language or
                self.settings.language, policy=self.policy, segments=self.segments, days=days,
                reference=reference, starts_at=starts_at, ends_at=ends_at,
                trunk=self.settings.trunk.name, region_decider=self.regions.decide,
                include=include, campaign_id=campaign_id)
        except ValueError as exc:
            raise ServiceError(str(exc)) from exc
        db.execute("UPDATE campaigns SET kind = ?, source = ? WHERE id = ?",
                   [kind, source, result.campaign_id])
        messages = queue_region_messages(db, result.campaign_id, self.regions,
                                         platform=self.settings.platform)
        log.info("campaign %s planned: %d contacts", result.campaign_id, result.contacts,
                 extra={"event": "campaign.planned", "campaign": result.campaign_id,
                        "contacts": result.contacts, "pending": result.pending})
        return result, messages

    def plan_recurring(self, entry: Recurring, fired: datetime) -> str:
        db = self.thread_db()
        local = fired.astimezone(self.tz)
        cid = f"{entry.name}-{local:%Y%m%d%H%M}"
        ends = fired + timedelta(seconds=entry.ends_after) if entry.ends_after else None
        self.plan(db, name=f"{entry.name} {local:%Y-%m-%d %H:%M}", script=str(entry.script),
                  language=entry.language, days=entry.selection.days,
                  include=entry.selection.include(),
                  reference=entry.selection.reference(fired, self.tz), starts_at=fired,
                  ends_at=ends, kind="recurring", source=entry.name, campaign_id=cid)
        if entry.start:
            set_status(db, cid, RUNNING)
        return cid

    def start_campaign(self, campaign_id: str) -> str:
        """planned -> running (the supervisor dials it). Returns the previous status."""
        status = get_campaign(self.db, campaign_id)["status"]
        if status == RUNNING:
            return str(status)
        if status != PLANNED:
            raise CampaignError(f"campaign {campaign_id} is {status}; only a planned campaign "
                                "can be started (resume a paused or stopped one)")
        set_status(self.db, campaign_id, RUNNING)
        self.wake()
        return str(status)


def _private(path: Path) -> None:
    """The database holds buyers' numbers and answers: owner-only, like the secrets."""
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            p.chmod(0o600)
