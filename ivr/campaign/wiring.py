"""A campaign run wired to the rest of the engine: region rules, caller-ID pool and health, outbox.

``ivr campaign run`` (and bench/dialer.py) build the runner here, so every real run gets:

* region rules (``settings.regions``) decide per callee: call (maybe via another trunk / caller-ID
  pool / prefix), skip with a reason, or send a follow-up message instead (queued in the outbox
  with a dedup key, so a restart never queues it twice);
* the caller ID from the pool (``settings.numbers``, synced first): the callee's sticky number,
  else a healthy local / least-used one under its cap; checked once more right before dialing;
* a :class:`~ivr.callerid.monitor.HealthMonitor` on the pool's schedule as the runner's health
  hook, so a number that starts collecting rejections leaves rotation during the campaign.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from ivr.callerid.config import PoolConfig, load_pool
from ivr.callerid.monitor import HealthMonitor
from ivr.callerid.rotation import assert_usable, pick_caller
from ivr.callerid.state import sync_pool
from ivr.campaign.runner import CampaignRunner, RunStats
from ivr.config import Settings
from ivr.dialer.types import Originator
from ivr.outbox.store import enqueue
from ivr.phone import InvalidNumber
from ivr.regions.rules import Decision, MessageTemplateError, RuleSet, load_rules

log = logging.getLogger(__name__)

REGION_MESSAGE_KIND = "region_message"
_ORDER_FIELDS = ("order_id", "product", "category", "price", "merchant", "host", "buyer_name")


def region_message_key(campaign_id: str, contact_id: int) -> str:
    return f"region:{campaign_id}:{contact_id}"


def _order_fields(db: sqlite_utils.Database, order_id: str | None) -> dict[str, Any]:
    if not order_id:
        return {}
    cur = db.execute(f"SELECT {', '.join(_ORDER_FIELDS)} FROM orders WHERE order_id = ?",
                     [order_id])
    row = cur.fetchone()
    if row is None:
        return {}
    fields = {k: v for k, v in zip(_ORDER_FIELDS, row, strict=True) if v is not None}
    if isinstance(fields.get("price"), float):
        fields["price"] = f"{fields['price']:g}"
    return fields


def queue_region_message(db: sqlite_utils.Database, campaign_id: str,
                         contact: Mapping[str, Any], decision: Decision, *,
                         platform: str = "") -> int | None:
    """Queue the rule's follow-up for one contact the rule kept from being called.

    Returns the outbox id, or None when the decision sends nothing (skip) or the message cannot
    be rendered / addressed (logged: a bad template must not stop the campaign)."""
    if decision is None or getattr(decision, "action", None) != "message":
        return None
    context = {**_order_fields(db, contact.get("order_id")), "platform": platform}
    try:
        text = decision.render_message(context)
        return enqueue(db, str(contact["phone"]), text, kind=REGION_MESSAGE_KIND,
                       campaign_id=campaign_id, contact_id=int(contact["id"]),
                       dedup_key=region_message_key(campaign_id, int(contact["id"])))
    except (MessageTemplateError, InvalidNumber, ValueError) as exc:
        log.error("contact %s: region follow-up not queued: %s", contact.get("id"), exc)
        return None


def queue_region_messages(db: sqlite_utils.Database, campaign_id: str, rules: RuleSet, *,
                          platform: str = "") -> int:
    """Queue follow-ups for every contact the planner or runner skipped by a 'message' rule
    (idempotent: one message per contact, whatever how often it runs). Returns how many
    contacts have one queued."""
    cur = db.execute("SELECT id, phone, order_id FROM contacts WHERE campaign_id = ? AND "
                     "state = 'skipped' AND skip_reason LIKE 'region rule %' ORDER BY id",
                     [campaign_id])
    done = 0
    for cid, phone, order_id in cur.fetchall():
        decision = rules.decide(phone)
        contact = {"id": cid, "phone": phone, "order_id": order_id}
        if queue_region_message(db, campaign_id, contact, decision, platform=platform):
            done += 1
    return done


@dataclass
class CampaignServices:
    """Everything the runner needs from the caller-ID and region packages, built once."""

    db: sqlite_utils.Database
    campaign_id: str
    rules: RuleSet
    pool: PoolConfig
    monitor: HealthMonitor
    platform: str = ""

    def decide(self, phone: str) -> Decision:
        return self.rules.decide(phone)

    def pick(self, phone: str) -> str:
        """Caller ID from the pool the callee's region rule names (default pool otherwise)."""
        pool_name = self.rules.decide(phone).caller_pool
        return pick_caller(self.db, self.pool, phone, pool_name=pool_name).number

    def check(self, caller_id: str) -> None:
        assert_usable(self.db, caller_id)

    def on_region_skip(self, contact: Mapping[str, Any], decision: Any) -> None:
        queue_region_message(self.db, self.campaign_id, contact, decision,
                             platform=self.platform)

    async def health_hook(self) -> None:
        self.monitor.check_now()

    def runner_kwargs(self) -> dict[str, Any]:
        return {"region_decider": self.decide, "caller_id_picker": self.pick,
                "caller_id_check": self.check, "on_region_skip": self.on_region_skip,
                "health_hook": self.health_hook, "health_interval_s": self.monitor.interval_s}


def services(settings: Settings, db: sqlite_utils.Database, campaign_id: str, *,
             health_interval_s: float | None = None) -> CampaignServices:
    """Load and validate regions + numbers (raises YamlConfigError naming file:line), sync the
    pool into the database and run one health check, so the run starts from a current view."""
    rules = load_rules(settings.regions)
    pool = load_pool(settings.numbers)
    sync_pool(db, pool)
    monitor = HealthMonitor(db, pool, health_interval_s)
    monitor.check_now()
    return CampaignServices(db, campaign_id, rules, pool, monitor, settings.platform)


def build_runner(settings: Settings, db: sqlite_utils.Database, campaign_id: str,
                 originator: Originator, *, health_interval_s: float | None = None,
                 **kwargs: Any) -> tuple[CampaignRunner, CampaignServices]:
    """A CampaignRunner with region rules, caller-ID pool/health and follow-ups wired in; also
    queues the follow-ups of contacts the planner already skipped by a 'message' rule."""
    svc = services(settings, db, campaign_id, health_interval_s=health_interval_s)
    queue_region_messages(db, campaign_id, svc.rules, platform=settings.platform)
    kwargs.setdefault("default_caller_id", settings.trunk.caller_id)
    kwargs.setdefault("default_trunk", settings.trunk.name)
    runner = CampaignRunner(db, campaign_id, originator, **svc.runner_kwargs(), **kwargs)
    return runner, svc


async def run_campaign(settings: Settings, db: sqlite_utils.Database, campaign_id: str, *,
                       originator: Originator | None = None, handle_signals: bool = True,
                       health_interval_s: float | None = None,
                       progress: Callable[[CampaignRunner], None] | None = None,
                       progress_s: float = 1.0, **kwargs: Any) -> RunStats:
    """Run the campaign through AMI (or ``originator``) until done / stopped / idle;
    ``progress(runner)`` is called every ``progress_s`` while it dials."""
    if originator is None:
        from ivr.dialer.ami import AmiOriginator  # the AMI stack loads only for real dialing

        async with AmiOriginator.from_settings(settings) as ami:
            return await run_campaign(settings, db, campaign_id, originator=ami,
                                      handle_signals=handle_signals,
                                      health_interval_s=health_interval_s, progress=progress,
                                      progress_s=progress_s, **kwargs)
    runner, _svc = build_runner(settings, db, campaign_id, originator,
                                health_interval_s=health_interval_s, **kwargs)
    if handle_signals:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, runner.stop)
    if progress is None:
        return await runner.run()

    async def tick() -> None:
        while True:
            await asyncio.sleep(progress_s)
            try:
                progress(runner)
            except Exception:  # a progress display must never stop dialing
                log.exception("progress callback failed")

    ticker = asyncio.create_task(tick())
    try:
        return await runner.run()
    finally:
        ticker.cancel()
