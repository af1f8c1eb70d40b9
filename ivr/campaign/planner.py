"""Plan a campaign: the campaign row plus one contact row per selected buyer.

Each contact gets its segment, voice, time zone(s), region, caller ID and the first time the
policy allows a call (``next_attempt_at``); contacts the policy or a region rule rules out are
stored as ``skipped`` with the reason, so the plan explains every buyer it selected.
"""

from __future__ import annotations

import json
import queue
import re
import secrets
import sqlite3
import threading
import time as _time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlite_utils

from ivr.campaign import selection
from ivr.campaign.geo import PrefixGeo
from ivr.campaign.policy import ContactPolicy, PolicyConfig, iso, parse_iso, policy_json
from ivr.campaign.segments import SegmentsConfig
from ivr.store import now_iso, transaction

# Hooks another package may inject (region rules, caller-ID pool).
RegionDecider = Callable[[str], Any]  # phone -> decision-like (see decision_allows) or None
# phone -> caller ID (None: the default). Given to the planner it assigns at plan time; given to
# the runner (usual) it assigns at the first dial. Either way the contact keeps it.
CallerIdPicker = Callable[[str], "str | None"]

PLANNING, PLANNED, RUNNING, PAUSED, DONE, STOPPED = (
    "planning", "planned", "running", "paused", "done", "stopped")


@dataclass
class RegionVerdict:
    allowed: bool
    reason: str = ""
    trunk: str | None = None
    prefix: str | None = None
    caller_id: str | None = None


def decision_allows(decision: Any) -> RegionVerdict:
    """Read a decision-like object: None/True allow; False denies; an object with ``allowed``
    (bool) or ``action`` ("skip"/"block"/"deny" deny) plus optional reason, trunk, prefix and
    caller_id attributes."""
    if decision is None or decision is True:
        return RegionVerdict(True)
    if decision is False:
        return RegionVerdict(False, "region rule")
    if hasattr(decision, "allowed"):
        allowed = bool(decision.allowed)
    else:
        allowed = str(getattr(decision, "action", "allow")).lower() not in (
            "skip", "block", "deny")
    return RegionVerdict(allowed, str(getattr(decision, "reason", "") or
                                      ("" if allowed else "region rule")),
                         getattr(decision, "trunk", None), getattr(decision, "prefix", None),
                         getattr(decision, "caller_id", None))


@dataclass
class PlanResult:
    campaign_id: str
    name: str
    contacts: int = 0
    pending: int = 0
    skipped: int = 0
    excluded_dnc: int = 0
    excluded_test_phones: int = 0
    segments: dict[str, int] = field(default_factory=dict)
    skip_reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def new_campaign_id(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:24] or "campaign"
    return f"{slug}-{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(2)}"


PLAN_CACHE_KIB = 65536  # SQLite page cache per connection and database while planning
_INSERT = ("INSERT INTO contacts (campaign_id, phone, order_id, segment, voice, caller_id, trunk, "
           "region, timezone, state, skip_reason, attempts, next_attempt_at, updated_at, context) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)")


def plan_campaign(db: sqlite_utils.Database, name: str, *, script: str,
                  policy: PolicyConfig, segments: SegmentsConfig, language: str = "cmn",
                  days: int | None = None, reference: datetime | None = None,
                  starts_at: datetime | None = None, ends_at: datetime | None = None,
                  region_decider: RegionDecider | None = None,
                  caller_id_picker: CallerIdPicker | None = None,
                  default_caller_id: str | None = None, trunk: str = "carrier",
                  campaign_id: str | None = None, include: dict[str, list[str]] | None = None,
                  progress: Callable[[int, int], None] | None = None) -> PlanResult:
    """Create campaign + contacts. ``reference``: the "now" of the order window (default now);
    ``starts_at``: no call before it (default reference); ``include``: only buyers of these
    order field values (see :func:`ivr.campaign.selection.select`). ``progress(done, total)``."""
    t0 = _time.perf_counter()
    reference = reference or datetime.now(UTC)
    start = max(reference, starts_at or reference)
    cid = campaign_id or new_campaign_id(name)
    result = PlanResult(campaign_id=cid, name=name)
    db.execute("INSERT INTO campaigns (id, name, script, language, status, policy, created_at, "
               "starts_at, ends_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
               [cid, name, script, language, PLANNING, policy_json(policy, segments), now_iso(),
                iso(start), iso(ends_at) if ends_at else None])
    cache = [db.conn.execute(f"PRAGMA {d}.cache_size").fetchone()[0] for d in ("main", "temp")]
    db.conn.execute(f"PRAGMA main.cache_size = {-PLAN_CACHE_KIB}")
    db.conn.execute(f"PRAGMA temp.cache_size = {-PLAN_CACHE_KIB}")
    try:
        _plan_contacts(db, cid, result, policy, segments, days, reference, start, ends_at,
                       region_decider, caller_id_picker, default_caller_id, trunk, progress,
                       include)
    finally:
        db.conn.execute(f"PRAGMA main.cache_size = {cache[0]}")
        db.conn.execute(f"PRAGMA temp.cache_size = {cache[1]}")
        selection.drop(db)
    db.conn.execute("UPDATE campaigns SET status = ? WHERE id = ?", [PLANNED, cid])
    result.seconds = round(_time.perf_counter() - t0, 3)
    return result


def _plan_contacts(db: sqlite_utils.Database, cid: str, result: PlanResult,
                   policy: PolicyConfig, segments: SegmentsConfig, days: int | None,
                   reference: datetime, start: datetime, ends_at: datetime | None,
                   region_decider: RegionDecider | None,
                   caller_id_picker: CallerIdPicker | None, default_caller_id: str | None,
                   trunk: str, progress: Callable[[int, int], None] | None,
                   include: dict[str, list[str]] | None = None) -> None:
    stats = selection.select(db, reference=reference, days=days or policy.selection.days,
                             exclude_like=policy.selection.exclude_like, segments=segments,
                             include=include)
    result.excluded_test_phones = stats.excluded_test_phones
    rules = ContactPolicy(policy, segments, db=None, ends_at=ends_at)
    history = _recent_attempts(db, start, rules)
    geo = PrefixGeo()
    first_cache: dict[tuple[str, tuple[str, ...]], tuple[str | None, str]] = {}
    zone_text: dict[tuple[str, ...], str] = {}
    voices = {n: s.voice for n, s in segments.segments.items()}
    seg_count: Counter[str] = Counter()
    skip_count: Counter[str] = Counter()
    stamp = now_iso()
    done = 0
    writer = _Writer(db)
    for chunk in selection.rows(db, stats):
        out = []
        for (phone, order_id, _cat, _price, _t, f, m, recent, r, fs, ms, dnc, seg, _) in chunk:
            if dnc:
                result.excluded_dnc += 1
                continue
            region, found = geo.lookup(phone)
            zones = policy.zones_or_fallback(found)
            tz = zone_text.get(zones)
            if tz is None:
                tz = zone_text[zones] = ",".join(zones)
            verdict = decision_allows(region_decider(phone)) if region_decider else None
            caller_id = (verdict.caller_id if verdict and verdict.caller_id else None) or (
                caller_id_picker(phone) if caller_id_picker else None) or default_caller_id
            attempts = history.get(phone)
            if verdict is not None and not verdict.allowed:
                when, why = None, verdict.reason or "region rule"
            elif attempts:
                w = rules.next_allowed_at(seg, zones, start, attempts, False)
                when, why = (iso(w), "") if w else (None, _never_reason(rules, zones))
            else:  # no history: the answer depends on segment and zones only
                key = (seg, zones)
                if key not in first_cache:
                    w = rules.next_allowed_at(seg, zones, start, (), False)
                    first_cache[key] = (iso(w), "") if w else (None, _never_reason(rules, zones))
                when, why = first_cache[key]
            # Context JSON by hand: json.dumps is a third of the loop's time at a million rows.
            others = "[]" if recent == f'["{order_id}"]' else json.dumps(
                [o for o in json.loads(recent) if o != order_id], ensure_ascii=False)
            context = (f'{{"other_orders": {others}, "rfm": [{r}, {fs}, {ms}], '
                       f'"frequency": {f}, "monetary": {float(m)!r}}}')
            seg_count[seg] += 1
            if when is None:
                skip_count[why] += 1
            out.append((cid, phone, order_id, seg, voices[seg], caller_id,
                        (verdict.trunk if verdict and verdict.trunk else None) or trunk,
                        region, tz, "pending" if when else "skipped", why or None,
                        when, stamp, context))
        writer.put(out)
        done += len(chunk)
        if progress:
            progress(done, stats.candidates)
    writer.close()
    result.contacts = sum(seg_count.values())
    result.skipped = sum(skip_count.values())
    result.pending = result.contacts - result.skipped
    result.segments = dict(seg_count)
    result.skip_reasons = dict(skip_count)


def _insert(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    with transaction(conn):
        conn.executemany(_INSERT, rows)


class _Writer:
    """Inserts contact batches on a second connection in a thread: SQLite releases the GIL while
    it writes, so inserting overlaps the Python work on the next batch (two cores)."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        path = db.conn.execute("PRAGMA database_list").fetchone()[2]
        self.conn: sqlite3.Connection | None = None
        self.db = db
        self.error: BaseException | None = None
        self.queue: queue.Queue[list[tuple[Any, ...]] | None] = queue.Queue(maxsize=2)
        self.thread: threading.Thread | None = None
        if path:  # a file: a second connection can write while this one reads the selection
            self.conn = sqlite3.connect(path, timeout=60, isolation_level=None,
                                        check_same_thread=False)
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute(f"PRAGMA cache_size = {-PLAN_CACHE_KIB}")
            self.thread = threading.Thread(target=self._run, name="plan-writer", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        assert self.conn is not None
        while (rows := self.queue.get()) is not None:
            if self.error is None:
                try:
                    _insert(self.conn, rows)
                except BaseException as exc:  # reported by close()
                    self.error = exc

    def put(self, rows: list[tuple[Any, ...]]) -> None:
        if self.error is not None:
            raise self.error
        if self.thread is None:
            _insert(self.db.conn, rows)
        else:
            self.queue.put(rows)

    def close(self) -> None:
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()
        if self.conn is not None:
            self.conn.close()
        if self.error is not None:
            raise self.error


def _recent_attempts(db: sqlite_utils.Database, start: datetime,
                     rules: ContactPolicy) -> dict[str, list[datetime]]:
    """Attempts recent enough to count against the caps, per phone (all campaigns)."""
    since = iso(start - timedelta(days=max(rules.config.caps.window_days, 2)))
    out: dict[str, list[datetime]] = {}
    for phone, started in db.conn.execute(
            "SELECT phone, started_at FROM attempts WHERE started_at > ?", [since]):
        if phone and started:
            out.setdefault(phone, []).append(parse_iso(started))
    for v in out.values():
        v.sort()
    return out


def _never_reason(rules: ContactPolicy, zones: tuple[str, ...]) -> str:
    if not zones:
        return "unknown time zone"
    if rules.ends_at is not None:
        return "no calling window before the campaign ends"
    return "no calling window"


@dataclass
class ContactPlan:
    contact_id: int
    state: str  # pending | skipped
    next_attempt_at: str | None
    reason: str = ""
    segment: str = ""


def segment_of_order(db: sqlite_utils.Database, segments: SegmentsConfig,
                     order_id: str) -> str:
    """The segment of one buyer by the order's category and price. One buyer has no population
    to rank RFM scores against: taken as the most recent, with middling frequency and money."""
    order = db.execute("SELECT category, price FROM orders WHERE order_id = ?",
                       [order_id]).fetchone()
    q = segments.rfm_quantiles
    mid = (q + 1) // 2
    return segments.segment_for(str(order[0] or "") if order else "",
                                float(order[1] or 0) if order else 0.0, q, mid, mid)


def add_contact(db: sqlite_utils.Database, campaign_id: str, *, phone: str, order_id: str,
                rules: ContactPolicy, not_before: datetime, segment: str | None = None,
                region_decider: RegionDecider | None = None, trunk: str = "carrier",
                default_caller_id: str | None = None,
                context: dict[str, Any] | None = None) -> ContactPlan:
    """Add one buyer to a campaign that is already planned (an event-triggered call): the same
    segment, voice, time zone, region and policy steps as :func:`plan_campaign`, for one row.

    ``rules`` is the campaign's policy with the database (caps count every attempt, DNC is
    looked up). The contact is due at the first time >= ``not_before`` the policy allows; it is
    ``skipped`` with the reason when there is none. Raises ``sqlite3.IntegrityError`` when the
    phone already is a contact of the campaign."""
    segments = rules.segments
    if segment is None or segment not in segments.segments:
        segment = segment_of_order(db, segments, order_id)
    region, zones = PrefixGeo().lookup(phone)
    if not zones and rules.config.unknown_timezone != "skip":
        zones = (rules.config.unknown_timezone,)
    verdict = decision_allows(region_decider(phone)) if region_decider else None
    if verdict is not None and not verdict.allowed:
        when, why = None, verdict.reason or "region rule"
    else:
        contact = {"phone": phone, "segment": segment, "timezone": ",".join(zones)}
        nxt = rules.next_allowed(contact, not_before)
        ok_now, why_not = rules.check(contact, not_before)
        when = iso(nxt) if nxt else None
        why = "" if nxt else (why_not if not ok_now else _never_reason(rules, zones))
    caller_id = (verdict.caller_id if verdict and verdict.caller_id else None) or \
        default_caller_id
    cur = db.conn.execute(_INSERT, (
        campaign_id, phone, order_id, segment, segments.segments[segment].voice, caller_id,
        (verdict.trunk if verdict and verdict.trunk else None) or trunk, region,
        ",".join(zones), "pending" if when else "skipped", why or None, when, now_iso(),
        json.dumps(context or {}, ensure_ascii=False)))
    return ContactPlan(int(cur.lastrowid or 0), "pending" if when else "skipped", when, why,
                       segment)
