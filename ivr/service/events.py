"""Event rules as data: event type -> condition -> action (a call after a delay, or a message).

``config/events.yaml`` (validated by the campaign loader: every error names file, line, field)::

    rules:
      - name: not-dispatched
        event: order.not_dispatched          # the platform's event type
        when:                                # all must hold (optional)
          - {field: order.price, gte: 10}
          - {field: data.hours_since_order, gte: 1}
        action: call                         # call | message
        script: surveys/platform_satisfaction.cmn.yaml
        delay: 5m                            # after the event's occurred_at (or its arrival)
        outside_window: message              # message | next_window | skip
        message: '【{{ platform }}】您购买的{{ product }}……'
        dedupe: {by: order, window: 24h}     # one call/message per order (or phone) per window

An event is processed once per event id (a repeat returns the first decision). A rule's calls go
into that rule's campaign of the day (``event-<rule>-<YYYYMMDD>``, status running), so the same
dialer as every campaign places them: the contact policy (windows, quiet hours, caps across
campaigns), the do-not-call list and the region rules apply, checked again right before the dial.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import jinja2
import sqlite_utils
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ivr.campaign.importer import ImportPolicy, ImportSummary, OrderIngest, normalise_phone
from ivr.campaign.planner import RUNNING, add_contact, segment_of_order
from ivr.campaign.policy import ContactPolicy, PolicyConfig, iso, parse_iso, policy_json
from ivr.campaign.runner import transaction
from ivr.campaign.segments import SegmentsConfig
from ivr.campaign.yamlcfg import Strict, load_yaml_model
from ivr.messages import check_template, render_template, unique_names
from ivr.outbox.store import enqueue as enqueue_message
from ivr.phone import InvalidNumber
from ivr.store import is_dnc, now_iso, register_schema

EVENT_KIND = "event"
EVENT_MESSAGE_KIND = "event_message"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
Op = Literal["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "exists", "contains"]


def parse_duration(value: Any) -> float:
    """Seconds from 300, '90s', '5m', '1h' or '2d'."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like '5m', '1h'")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(value))
        if not m:
            raise ValueError(f"duration {value!r}: write seconds or e.g. '90s', '5m', '1h', '2d'")
        seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    if not 0 <= seconds <= 30 * 86400:
        raise ValueError(f"duration {value!r} must be between 0 and 30 days")
    return seconds


class Condition(Strict):
    """One test on a field of the event: ``event.*``, ``order.*`` (the stored order) or
    ``data.*`` (the event's free-form data). Exactly one operator per condition."""

    field: str = Field(pattern=r"^(event|order|data)(\.[A-Za-z0-9_]+)+$")
    eq: Any = None
    ne: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    not_in: list[Any] | None = None
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None
    exists: bool | None = None
    contains: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one(self) -> Condition:
        given = [k for k in ("eq", "ne", "in_", "not_in", "gt", "gte", "lt", "lte", "exists",
                             "contains") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of eq, ne, in, not_in, gt, gte, lt, lte, exists, "
                             f"contains (got {len(given) or 'none'})")
        return self

    def holds(self, facts: dict[str, Any]) -> bool:
        value: Any = facts
        for part in self.field.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if self.exists is not None:
            return (value is not None and value != "") == self.exists
        if value is None:
            return False
        if self.eq is not None:
            return _same(value, self.eq)
        if self.ne is not None:
            return not _same(value, self.ne)
        if self.in_ is not None:
            return any(_same(value, v) for v in self.in_)
        if self.not_in is not None:
            return not any(_same(value, v) for v in self.not_in)
        if self.contains is not None:
            return self.contains.lower() in str(value).lower()
        try:
            number = float(value)
        except (TypeError, ValueError):
            return False
        return ((self.gt is None or number > self.gt) and (self.gte is None or number >= self.gte)
                and (self.lt is None or number < self.lt)
                and (self.lte is None or number <= self.lte))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and not isinstance(a, bool) and isinstance(b, int | float):
        return float(a) == float(b)
    return str(a).strip().lower() == str(b).strip().lower()


class Dedupe(Strict):
    by: Literal["order", "phone"] = "order"
    window: float = 86400.0

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, v: Any) -> float:
        return parse_duration(v)


class EventRule(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$")
    description: str = ""
    enabled: bool = True
    event: str = Field(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")
    when: list[Condition] = []
    action: Literal["call", "message"] = "call"
    script: Path | None = None
    language: str | None = None
    segment: str | None = None  # default: the segments file's rules
    delay: float = 0.0
    outside_window: Literal["message", "next_window", "skip"] = "next_window"
    message: str | None = None
    dedupe: Dedupe = Dedupe()

    @field_validator("delay", mode="before")
    @classmethod
    def _delay(cls, v: Any) -> float:
        return parse_duration(v)

    _template = field_validator("message")(check_template)

    @model_validator(mode="after")
    def _fields(self) -> EventRule:
        if self.action == "call" and self.script is None:
            raise ValueError("action 'call' needs a script")
        if (self.action == "message" or self.outside_window == "message") and not (
                self.message or "").strip():
            raise ValueError("a message is needed (action 'message' or outside_window "
                             "'message')")
        return self

    def render_message(self, context: dict[str, Any]) -> str:
        assert self.message is not None
        return render_template(self.message, context).strip()


class EventRules(Strict):
    rules: list[EventRule] = []

    @model_validator(mode="after")
    def _unique(self) -> EventRules:
        unique_names(r.name for r in self.rules)
        return self

    def first_match(self, event_type: str, facts: dict[str, Any]) -> tuple[
            EventRule | None, bool]:
        """(rule, matched): the first enabled rule for the type whose conditions hold; when
        rules for the type exist but none holds, (that first rule, False)."""
        first = None
        for rule in self.rules:
            if not rule.enabled or rule.event != event_type:
                continue
            first = first or rule
            if all(c.holds(facts) for c in rule.when):
                return rule, True
        return first, False


def load_event_rules(path: Path | None) -> EventRules:
    """The rules file, validated (``CampaignConfigError`` naming file:line: field); none when
    the path is None or the file does not exist."""
    if path is None or not Path(path).exists():
        return EventRules()
    rules = load_yaml_model(EventRules, path)
    base = Path(path).resolve().parent.parent  # scripts are relative to the project / config root
    fixed = []
    for rule in rules.rules:
        if rule.script is not None and not rule.script.is_absolute():
            for candidate in (Path.cwd() / rule.script, base / rule.script):
                if candidate.exists():
                    rule = rule.model_copy(update={"script": candidate.resolve()})
                    break
        fixed.append(rule)
    return EventRules(rules=fixed)


# ---- storage ------------------------------------------------------------------------------
@register_schema
def events_schema(db: sqlite_utils.Database) -> None:
    db.table("events").create(
        {"id": str, "type": str, "received_at": str, "occurred_at": str, "order_id": str,
         "phone": str, "payload": str, "rule": str, "decision": str, "detail": str,
         "dedupe_key": str, "campaign_id": str, "contact_id": int, "outbox_id": int,
         "due_at": str},
        pk="id", if_not_exists=True)
    db.table("events").create_index(["rule", "dedupe_key", "received_at"], if_not_exists=True)
    db.table("events").create_index(["received_at"], if_not_exists=True)


class EventIn(BaseModel):
    """``POST /v1/events``: what the platform reports."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
    type: str = Field(min_length=1, max_length=80, pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")
    occurred_at: datetime | None = None
    order_id: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    order: dict[str, Any] | None = None  # the order itself, imported first (same validation)
    data: dict[str, Any] = {}


@dataclass
class EventResult:
    id: str
    type: str
    decision: str  # call_scheduled | message_queued | deduped | no_rule | condition_false |
    # dnc | region_skip | skipped | already_scheduled | rejected
    detail: str = ""
    rule: str | None = None
    campaign_id: str | None = None
    contact_id: int | None = None
    outbox_id: int | None = None
    due_at: str | None = None
    dedupe_key: str | None = None
    duplicate: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def stored_result(db: sqlite_utils.Database, event_id: str) -> EventResult | None:
    rows = list(db.query("SELECT * FROM events WHERE id = ?", [event_id]))
    if not rows:
        return None
    r = rows[0]
    return EventResult(r["id"], r["type"], r["decision"], r["detail"] or "", r["rule"],
                       r["campaign_id"], r["contact_id"], r["outbox_id"], r["due_at"],
                       r["dedupe_key"], duplicate=True)


# ---- processing ---------------------------------------------------------------------------
RegionDecide = Callable[[str], Any]


class EventEngine:
    """Turns one event into at most one call or message, following its rule."""

    def __init__(self, db: sqlite_utils.Database, rules: EventRules, *, policy: PolicyConfig,
                 segments: SegmentsConfig, timezone: str = "Asia/Shanghai",
                 region_decide: RegionDecide | None = None, platform: str = "",
                 trunk: str = "carrier", default_caller_id: str | None = None,
                 language: str = "cmn",
                 on_contact: Callable[[str], None] | None = None,
                 import_policy: ImportPolicy | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.db = db
        self.import_policy = import_policy
        self.rules = rules
        self.policy = policy
        self.segments = segments
        self.tz = ZoneInfo(timezone)
        self.region_decide = region_decide
        self.platform = platform
        self.trunk = trunk
        self.default_caller_id = default_caller_id
        self.language = language
        self.on_contact = on_contact
        self.clock = clock
        self.contact_policy = ContactPolicy(policy, segments, db=db)

    def campaign_for(self, rule: EventRule, when: datetime) -> str:
        """The rule's campaign of the local day of ``when`` (created running if missing)."""
        day = when.astimezone(self.tz).date()
        cid = f"event-{rule.name}-{day:%Y%m%d}"
        self.db.execute(
            "INSERT INTO campaigns (id, name, script, language, status, policy, created_at, "
            "starts_at, kind, source, day) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO NOTHING",
            [cid, f"{rule.name} {day.isoformat()}", str(rule.script or ""),
             rule.language or self.language, RUNNING, policy_json(self.policy, self.segments),
             now_iso(), iso(when), EVENT_KIND, rule.name, day.isoformat()])
        return cid

    def process(self, event: EventIn) -> EventResult:
        """Decide and record; the same event id again returns the first decision."""
        earlier = stored_result(self.db, event.id)
        if earlier is not None:
            return earlier
        now = self.clock()
        with transaction(self.db):
            result = self._decide(event, now)
            self._record(event, result, now)
        if result.decision == "call_scheduled" and result.campaign_id and self.on_contact:
            self.on_contact(result.campaign_id)
        return result

    def _decide(self, event: EventIn, now: datetime) -> EventResult:
        res = EventResult(event.id, event.type, "rejected")
        order_id = (event.order_id or "").strip() or None
        if event.order is not None:
            rejected: list[str] = []
            ingest = OrderIngest(self.db, ImportSummary(file="api:event", rejects_file=""),
                                 source=f"event:{event.id}",
                                 policy=self.import_policy,
                                 on_reject=lambda _l, why, _o, _r, _f: rejected.append(why))
            ingest.add(0, dict(event.order), "")
            if rejected:
                res.detail = f"order: {rejected[0]}"
                return res
            order_id = str(ingest.batch[0][0]) if ingest.batch else order_id
            ingest.flush()
        order = self._order(order_id) if order_id else None
        if order_id and order is None:
            res.detail = f"unknown order_id {order_id!r} (send the order first or inline)"
            return res
        phone_text = event.phone or (order or {}).get("phone")
        if not phone_text:
            res.detail = "the event names no phone and no known order"
            return res
        try:
            phone = normalise_phone(phone_text)
        except InvalidNumber as exc:
            res.detail = str(exc)
            return res
        occurred = event.occurred_at or now
        if occurred.tzinfo is None:
            occurred = occurred.replace(tzinfo=self.tz)
        facts = {"event": {"id": event.id, "type": event.type, "phone": phone,
                           "order_id": order_id}, "order": order or {}, "data": event.data}
        rule, matched = self.rules.first_match(event.type, facts)
        if rule is None:
            res.decision, res.detail = "no_rule", f"no enabled rule for {event.type!r}"
            return res
        res.rule = rule.name
        if not matched:
            res.decision, res.detail = "condition_false", "no rule's conditions hold"
            return res
        key = (order_id or phone) if rule.dedupe.by == "order" else phone
        earlier = self.db.execute(
            "SELECT id FROM events WHERE rule = ? AND dedupe_key = ? AND decision IN "
            "('call_scheduled', 'message_queued', 'already_scheduled') AND received_at >= ? "
            "ORDER BY received_at LIMIT 1",
            [rule.name, key, iso(now - timedelta(seconds=rule.dedupe.window))]).fetchone()
        if earlier is not None:
            res.decision = "deduped"
            res.detail = f"{rule.dedupe.by} {key} already handled by event {earlier[0]}"
            return self._keyed(res, key)
        if is_dnc(self.db, phone):
            res.decision, res.detail = "dnc", "the number is on the do-not-call list"
            return self._keyed(res, key)
        region = self.region_decide(phone) if self.region_decide else None
        if region is not None and not getattr(region, "allowed", True):
            if getattr(region, "action", "") == "message":
                return self._keyed(self._message(event, rule, phone, order, region=region,
                                                 why="region rule"), key)
            res.decision = "region_skip"
            res.detail = f"region rule {getattr(region, 'rule_name', '')}: " \
                         f"{getattr(region, 'reason', '')}"
            return self._keyed(res, key)
        due = max(now, occurred + timedelta(seconds=rule.delay))
        if rule.action == "message":
            return self._keyed(self._message(event, rule, phone, order), key)
        return self._keyed(self._call(event, rule, phone, order_id, due), key)

    def _keyed(self, res: EventResult, key: str) -> EventResult:
        res.dedupe_key = key
        return res

    def _call(self, event: EventIn, rule: EventRule, phone: str, order_id: str | None,
              due: datetime) -> EventResult:
        res = EventResult(event.id, event.type, "call_scheduled", rule=rule.name)
        segment = rule.segment if rule.segment in self.segments.segments else \
            segment_of_order(self.db, self.segments, order_id or "")
        contact = {"phone": phone, "segment": segment}
        ok, why = self.contact_policy.check(contact, due)
        if not ok and why.startswith("outside calling window"):
            if rule.outside_window == "message":
                return self._message(event, rule, phone, self._order(order_id or ""),
                                     why=f"call at {iso(due)} would be {why}")
            if rule.outside_window == "skip":
                res.decision, res.detail = "skipped", f"call at {iso(due)}: {why}"
                return res
        cid = self.campaign_for(rule, due)
        res.campaign_id = cid
        try:
            plan = add_contact(self.db, cid, phone=phone, order_id=order_id or "",
                               rules=self.contact_policy, not_before=due, segment=segment,
                               trunk=self.trunk, default_caller_id=self.default_caller_id,
                               context={"event": event.id, "event_type": event.type})
        except sqlite3.IntegrityError:
            row = self.db.execute("SELECT id, state FROM contacts WHERE campaign_id = ? AND "
                                  "phone = ?", [cid, phone]).fetchone()
            res.decision = "already_scheduled"
            res.contact_id = int(row[0]) if row else None
            res.detail = f"the number is already a contact of {cid} ({row[1] if row else '?'})"
            return res
        res.contact_id = plan.contact_id
        if plan.state != "pending":
            res.decision, res.detail = "skipped", plan.reason
            return res
        res.due_at = plan.next_attempt_at
        late = (parse_iso(plan.next_attempt_at or iso(due)) - due).total_seconds()
        res.detail = f"call due {plan.next_attempt_at}" + (
            f" (next calling window, {late / 60:.0f} min after the delay)" if late > 60 else "")
        return res

    def _message(self, event: EventIn, rule: EventRule, phone: str,
                 order: dict[str, Any] | None, *, region: Any = None,
                 why: str = "") -> EventResult:
        res = EventResult(event.id, event.type, "message_queued", rule=rule.name)
        context = {**{k: v for k, v in (order or {}).items() if v is not None},
                   "platform": self.platform, "phone": phone, "event": event.data}
        if isinstance(context.get("price"), float):
            context["price"] = f"{context['price']:g}"
        try:
            if region is not None and getattr(region, "message", None):
                text = region.render_message(context)
            else:
                text = rule.render_message(context)
        except jinja2.TemplateError as exc:
            res.decision, res.detail = "skipped", f"message template: {exc}"
            return res
        res.outbox_id = enqueue_message(self.db, phone, text, kind=EVENT_MESSAGE_KIND,
                                        dedup_key=f"event:{event.id}")
        res.detail = f"message instead of a call: {why}" if why else "message queued"
        return res

    def _order(self, order_id: str) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM orders WHERE order_id = ?", [order_id]))
        return rows[0] if rows else None

    def _record(self, event: EventIn, res: EventResult, now: datetime) -> None:
        self.db.execute(
            "INSERT INTO events (id, type, received_at, occurred_at, order_id, phone, payload, "
            "rule, decision, detail, dedupe_key, campaign_id, contact_id, outbox_id, due_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [event.id, event.type, iso(now),
             iso(event.occurred_at) if event.occurred_at else None, event.order_id, event.phone,
             event.model_dump_json(), res.rule, res.decision, res.detail,
             res.dedupe_key, res.campaign_id, res.contact_id, res.outbox_id,
             res.due_at])


def recent_events(db: sqlite_utils.Database, limit: int = 100) -> list[dict[str, Any]]:
    return [dict(r) for r in db.query(
        "SELECT id, type, received_at, order_id, rule, decision, detail, campaign_id, "
        "contact_id, due_at FROM events ORDER BY received_at DESC LIMIT ?", [limit])]


def event_counts(db: sqlite_utils.Database) -> list[tuple[str, str, int]]:
    return [(str(t), str(d), int(n)) for t, d, n in db.execute(
        "SELECT type, decision, count(*) FROM events GROUP BY 1, 2")]


def rules_as_json(rules: EventRules) -> list[dict[str, Any]]:
    return [json.loads(r.model_dump_json(by_alias=True)) for r in rules.rules]
