"""Campaign report: the funnel, its breakdowns, the merchant/host ranking and open answers.

Everything is plain SQL over the shared tables (``contacts``, ``attempts``, ``calls``,
``answers``, ``orders``); figures are integer counts and exact :class:`Rate` fractions, rounded only
when printed.

Units and definitions
---------------------
The unit of the funnel is the **contact** (one buyer in one campaign), so a buyer dialed three times
counts once. Each answered contact has one **decisive call**: among its calls in the campaign, the
latest one with a survey outcome, preferring any outcome over ``callback_requested``; a contact
whose only calls are partial (outcome NULL) uses its latest call. The survey figures below read the
decisive call.

``contacts``       rows in ``contacts`` for the campaign.
``dialed``         contacts with at least one attempt.
``attempts``       attempts (every dial) of those contacts.
``answered``       dialed contacts with an attempt whose outcome is ``answered`` or with a stored
                   call (the AGI saw them). Answering machines are included here and also counted
                   in ``machine``.
``machine``        answered contacts whose decisive call has outcome ``machine``.
``completed``      answered contacts whose decisive call has outcome ``completed`` or ``recovered``
                   (the survey reached its end).
``satisfaction_answered``  answered contacts whose decisive call has ``satisfied`` 1 or 0.
``satisfied`` / ``unsatisfied``  ``satisfied`` = 1 / = 0. ``unhappy`` is a synonym of unsatisfied.
``remedy_offered`` answered contacts whose decisive call has a non-empty ``remedy_offered`` other
                   than ``none``.
``remedy_accepted`` ``remedy_accepted`` is ``refund`` or ``voucher`` (split in ``remedy_refund``
                   and ``remedy_voucher``).
``would_buy_again_answered`` / ``would_buy_again``  ``would_buy_again`` not NULL / = 1.
``recovered``      unsatisfied contacts that accepted a remedy AND would buy again.

Rates (``Rate(num, den)``; undefined when ``den`` is 0):
answer rate = answered / dialed; completion rate = completed / answered;
satisfaction rate = satisfied / satisfaction_answered; complaint rate = unsatisfied /
satisfaction_answered; remedy acceptance = remedy_accepted / remedy_offered; would-buy-again rate =
would_buy_again / would_buy_again_answered; **recovery rate = recovered / unsatisfied**.

Breakdowns by segment, voice, caller ID and region use the same contact units (the contact's own
column; caller ID falls back to the contact's latest attempt, then ``(none)``), so each breakdown's
groups add up to the totals. The **hour-of-day** breakdown is per **attempt** instead: the group is
the callee's local hour when the attempt started (``contacts.timezone``, else the time zone of the
number, else UTC); there ``dialed`` counts attempts started in that hour, ``answered`` those
answered, and the survey figures read the call of that attempt; ``contacts`` is the number of
distinct contacts dialed in that hour.

Ranking: for each merchant (and each live-stream host) of the decisive call's order (the call's
``order_id``, else the contact's), ``complaint rate = unsatisfied / satisfaction_answered``.
A row is marked for rectification when ``satisfaction_answered >= min_count`` and the complaint
rate is strictly greater than ``rectify_threshold``. Rows are sorted by complaint rate (highest
first), then by unsatisfied count, then by name. Reasons are the ``calls.reason`` of the
unsatisfied calls.

Suggestions: answers at the open nodes (default ``suggestions``) of the campaign's calls that
carry a transcript, a DTMF entry or a recording.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlite_utils

from ivr.errors import StateError
from ivr.phone import callee_zones
from ivr.store import now_iso

DEFAULT_RECTIFY_THRESHOLD = Fraction(3, 10)
DEFAULT_MIN_COUNT = 3
DEFAULT_OPEN_NODES = ("suggestions",)
NONE_KEY = "(none)"
DIMENSIONS = ("segment", "voice", "hour", "day", "caller_id", "region")
ATTEMPT_DIMENSIONS = ("hour", "day")  # grouped per attempt (when it started), not per contact
# funnel, each dimension, merchants, hosts, suggestions, reasons + caller-ID health
REPORT_STEPS = 5 + len(DIMENSIONS)


class ReportError(StateError, LookupError):
    """The report cannot be built (e.g. unknown campaign); the message says why."""


@dataclass(frozen=True)
class Rate:
    """An exact ratio ``num / den``; ``value`` is None when the denominator is 0."""

    num: int
    den: int

    @property
    def value(self) -> Fraction | None:
        return Fraction(self.num, self.den) if self.den else None

    def percent(self, digits: int = 1) -> str:
        v = self.value
        return "-" if v is None else f"{float(v) * 100:.{digits}f}%"

    def __str__(self) -> str:
        return f"{self.percent()} ({self.num}/{self.den})"


@dataclass(frozen=True)
class Funnel:
    unit: str  # "contact" or "attempt" (hour-of-day breakdown)
    contacts: int
    dialed: int
    attempts: int
    answered: int
    machine: int
    completed: int
    satisfaction_answered: int
    satisfied: int
    unsatisfied: int
    remedy_offered: int
    remedy_accepted: int
    remedy_refund: int
    remedy_voucher: int
    would_buy_again_answered: int
    would_buy_again: int
    recovered: int

    @property
    def answer_rate(self) -> Rate:
        return Rate(self.answered, self.dialed)

    @property
    def completion_rate(self) -> Rate:
        return Rate(self.completed, self.answered)

    @property
    def satisfaction_rate(self) -> Rate:
        return Rate(self.satisfied, self.satisfaction_answered)

    @property
    def complaint_rate(self) -> Rate:
        return Rate(self.unsatisfied, self.satisfaction_answered)

    @property
    def remedy_acceptance_rate(self) -> Rate:
        return Rate(self.remedy_accepted, self.remedy_offered)

    @property
    def would_buy_again_rate(self) -> Rate:
        return Rate(self.would_buy_again, self.would_buy_again_answered)

    @property
    def recovery_rate(self) -> Rate:
        return Rate(self.recovered, self.unsatisfied)

    def rates(self) -> dict[str, Rate]:
        return {name: getattr(self, name) for name in RATE_NAMES}


COUNT_NAMES = tuple(n for n in Funnel.__dataclass_fields__ if n != "unit")
RATE_NAMES = ("answer_rate", "completion_rate", "satisfaction_rate", "complaint_rate",
              "remedy_acceptance_rate", "would_buy_again_rate", "recovery_rate")


@dataclass(frozen=True)
class GroupRow:
    dimension: str
    key: str
    funnel: Funnel


@dataclass(frozen=True)
class RankRow:
    kind: str  # merchant | host
    name: str
    answered: int
    satisfaction_answered: int
    satisfied: int
    unsatisfied: int
    reasons: tuple[tuple[str, int], ...]  # (reason, count), most frequent first
    rectify: bool

    @property
    def complaint_rate(self) -> Rate:
        return Rate(self.unsatisfied, self.satisfaction_answered)


@dataclass(frozen=True)
class Suggestion:
    call_id: str
    contact_id: int | None
    phone: str  # masked
    merchant: str
    node: str
    transcript: str
    dtmf: str
    recording: str
    answered_at: str
    seq: int = 0  # the answer's position in its call (recordings are addressed by call + seq)


@dataclass(frozen=True)
class CallerHealth:
    """A caller ID the campaign dialed from: its pool state now and how its calls went."""

    number: str
    state: str  # the pool's state (active, flagged, ...), "(not in pool)" when unknown
    score: float | None
    attempts: int
    answered: int
    rejected: int

    @property
    def answer_rate(self) -> Rate:
        return Rate(self.answered, self.attempts)


@dataclass(frozen=True)
class Report:
    campaign_id: str
    campaign_name: str
    campaign_status: str
    generated_at: str
    rectify_threshold: Fraction
    min_count: int
    funnel: Funnel
    breakdowns: dict[str, list[GroupRow]]
    merchants: list[RankRow]
    hosts: list[RankRow]
    suggestions: list[Suggestion] = field(default_factory=list)
    # why unsatisfied buyers were unhappy (decisive calls), most frequent first
    reasons: list[tuple[str, int]] = field(default_factory=list)
    caller_ids: list[CallerHealth] = field(default_factory=list)
    # webhook deliveries of the campaign: (event, state, count), when the service sends them
    webhooks: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def merchants_to_rectify(self) -> Rate:
        """Share of ranked merchants marked for rectification."""
        return Rate(sum(r.rectify for r in self.merchants), len(self.merchants))

    @property
    def hosts_to_rectify(self) -> Rate:
        return Rate(sum(r.rectify for r in self.hosts), len(self.hosts))


# One row per contact of the campaign with 0/1 flags; every figure is a SUM over it.
_CONTACT_UNITS = """
WITH att AS (
    SELECT contact_id,
           count(*) AS n_attempts,
           max(outcome = 'answered') AS any_answered
    FROM attempts WHERE campaign_id = :campaign AND contact_id IS NOT NULL
    GROUP BY contact_id
),
last_cid AS (
    SELECT contact_id, caller_id FROM (
        SELECT contact_id, caller_id,
               row_number() OVER (PARTITION BY contact_id
                                  ORDER BY started_at DESC, id DESC) AS rn
        FROM attempts WHERE campaign_id = :campaign AND caller_id IS NOT NULL
    ) WHERE rn = 1
),
dc AS (
    SELECT * FROM (
        SELECT calls.*,
               row_number() OVER (PARTITION BY contact_id
                                  ORDER BY outcome IS NULL, outcome = 'callback_requested',
                                           started_at DESC, id DESC) AS rn
        FROM calls WHERE campaign_id = :campaign AND contact_id IS NOT NULL
    ) WHERE rn = 1
),
base AS (
    SELECT ct.id AS contact_id,
           coalesce(nullif(ct.segment, ''), nullif(dc.segment, ''), '(none)') AS segment,
           coalesce(nullif(ct.voice, ''), nullif(dc.voice, ''), '(none)') AS voice,
           coalesce(nullif(ct.caller_id, ''), nullif(last_cid.caller_id, ''),
                    nullif(dc.caller_id, ''), '(none)') AS caller_id,
           coalesce(nullif(ct.region, ''), '(none)') AS region,
           coalesce(nullif(dc.order_id, ''), ct.order_id) AS order_id,
           att.contact_id IS NOT NULL AS dialed,
           coalesce(att.n_attempts, 0) AS attempts,
           att.contact_id IS NOT NULL
               AND (coalesce(att.any_answered, 0) = 1 OR dc.id IS NOT NULL) AS answered,
           dc.outcome, dc.satisfied, dc.remedy_offered, dc.remedy_accepted,
           dc.would_buy_again, dc.reason
    FROM contacts ct
    LEFT JOIN att ON att.contact_id = ct.id
    LEFT JOIN last_cid ON last_cid.contact_id = ct.id
    LEFT JOIN dc ON dc.contact_id = ct.id
    WHERE ct.campaign_id = :campaign
)
"""

# One row per attempt of the campaign, with the call it produced (by attempt id or uniqueid).
_ATTEMPT_UNITS = """
WITH base AS (
    SELECT a.id AS attempt_id, a.contact_id,
           ivr_local_hour(a.started_at, ct.timezone, a.phone) AS hour,
           ivr_local_day(a.started_at, ct.timezone, a.phone) AS day,
           1 AS dialed, 1 AS attempts,
           (a.outcome = 'answered' OR c.id IS NOT NULL) AS answered,
           c.outcome, c.satisfied, c.remedy_offered, c.remedy_accepted,
           c.would_buy_again, c.reason
    FROM attempts a
    LEFT JOIN contacts ct ON ct.id = a.contact_id
    LEFT JOIN calls c ON c.id = (
        SELECT id FROM calls
        WHERE calls.attempt_id = a.id OR (a.uniqueid IS NOT NULL AND calls.id = a.uniqueid)
        ORDER BY calls.started_at DESC LIMIT 1)
    WHERE a.campaign_id = :campaign
)
"""

# Survey flags shared by both unit kinds; columns of `base` above.
_FLAGS = """
    {contacts} AS contacts,
    sum(dialed) AS dialed,
    sum(attempts) AS attempts,
    sum(answered) AS answered,
    sum(answered AND outcome = 'machine') AS machine,
    sum(answered AND outcome IN ('completed', 'recovered')) AS completed,
    sum(answered AND satisfied IS NOT NULL) AS satisfaction_answered,
    sum(answered AND satisfied = 1) AS satisfied,
    sum(answered AND satisfied = 0) AS unsatisfied,
    sum(answered AND coalesce(lower(trim(remedy_offered)), '') NOT IN ('', 'none', '0', 'no'))
        AS remedy_offered,
    sum(answered AND remedy_accepted IN ('refund', 'voucher')) AS remedy_accepted,
    sum(answered AND remedy_accepted = 'refund') AS remedy_refund,
    sum(answered AND remedy_accepted = 'voucher') AS remedy_voucher,
    sum(answered AND would_buy_again IS NOT NULL) AS would_buy_again_answered,
    sum(answered AND would_buy_again = 1) AS would_buy_again,
    sum(answered AND satisfied = 0 AND remedy_accepted IN ('refund', 'voucher')
        AND would_buy_again = 1) AS recovered
"""


def build_report(
    db: sqlite_utils.Database,
    campaign_id: str,
    *,
    rectify_threshold: Fraction | float | str = DEFAULT_RECTIFY_THRESHOLD,
    min_count: int = DEFAULT_MIN_COUNT,
    open_nodes: tuple[str, ...] = DEFAULT_OPEN_NODES,
    max_suggestions: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Compute the report of one campaign. Raises :class:`ReportError` for an unknown campaign.

    ``rectify_threshold`` is a complaint rate (0..1; a float or "3/10" is converted exactly).
    ``progress`` is called with the name of each of the :data:`REPORT_STEPS` steps as it starts.
    """
    step = progress or (lambda _name: None)
    threshold = Fraction(str(rectify_threshold)) if not isinstance(
        rectify_threshold, Fraction) else rectify_threshold
    if not 0 <= threshold <= 1:
        raise ReportError(f"rectify threshold must be between 0 and 1, got {rectify_threshold}")
    if min_count < 1:
        raise ReportError(f"minimum count must be at least 1, got {min_count}")
    camp = db.execute("SELECT id, name, status FROM campaigns WHERE id = ?",
                      [campaign_id]).fetchone()
    has_contacts = db.execute("SELECT 1 FROM contacts WHERE campaign_id = ? LIMIT 1",
                              [campaign_id]).fetchone()
    if camp is None and has_contacts is None:
        known = [r[0] for r in db.execute("SELECT id FROM campaigns ORDER BY id LIMIT 20")]
        raise ReportError(f"unknown campaign {campaign_id!r}; known: {', '.join(known) or 'none'}")
    _register_functions(db.conn)
    params = {"campaign": campaign_id}
    step("funnel")
    funnel = _funnels(db, _CONTACT_UNITS, None, "contact", params)[0][1]
    breakdowns: dict[str, list[GroupRow]] = {}
    for dim in DIMENSIONS:
        step(f"by {dim}")
        if dim in ATTEMPT_DIMENSIONS:
            rows = _funnels(db, _ATTEMPT_UNITS, dim, "attempt", params)
        else:
            rows = _funnels(db, _CONTACT_UNITS, dim, "contact", params)
        breakdowns[dim] = [GroupRow(dim, key, f) for key, f in rows]
    step("merchants")
    merchants = _ranking(db, "merchant", params, threshold, min_count)
    step("hosts")
    hosts = _ranking(db, "host", params, threshold, min_count)
    step("suggestions")
    suggestions = _suggestions(db, campaign_id, open_nodes, max_suggestions)
    step("reasons and caller IDs")
    reasons = [(str(r), int(n)) for r, n in db.execute(
        f"""{_CONTACT_UNITS}
        SELECT coalesce(nullif(trim(reason), ''), '(no reason given)') AS r, count(*) AS n
        FROM base WHERE answered AND satisfied = 0 GROUP BY r ORDER BY n DESC, r""", params)]
    caller_ids = _caller_health(db, campaign_id)
    webhooks = [(str(e), str(s), int(n)) for e, s, n in db.execute(
        "SELECT event, state, count(*) FROM webhooks WHERE campaign_id = ? GROUP BY 1, 2 "
        "ORDER BY 1, 2", [campaign_id])] if "webhooks" in db.table_names() else []
    return Report(
        campaign_id=campaign_id,
        campaign_name=(camp[1] if camp else None) or campaign_id,
        campaign_status=(camp[2] if camp else None) or "unknown",
        generated_at=now_iso(),
        rectify_threshold=threshold,
        min_count=min_count,
        funnel=funnel,
        breakdowns=breakdowns,
        merchants=merchants,
        hosts=hosts,
        suggestions=suggestions,
        reasons=reasons,
        caller_ids=caller_ids,
        webhooks=webhooks,
    )


def _caller_health(db: sqlite_utils.Database, campaign_id: str) -> list[CallerHealth]:
    pool: dict[str, tuple[str, float | None]] = {}
    if "numbers" in db.table_names() and {"state", "score"} <= set(db["numbers"].columns_dict):
        pool = {str(n): (str(st or "unknown"), sc) for n, st, sc in db.execute(
            "SELECT number, state, score FROM numbers")}
    out = []
    for number, n, answered, rejected in db.execute(
            "SELECT caller_id, count(*), coalesce(sum(outcome = 'answered'), 0), "
            "coalesce(sum(outcome = 'rejected'), 0) FROM attempts WHERE campaign_id = ? AND "
            "caller_id IS NOT NULL GROUP BY caller_id ORDER BY caller_id", [campaign_id]):
        state, score = pool.get(str(number), ("(not in pool)", None))
        out.append(CallerHealth(str(number), state, None if score is None else float(score),
                                int(n), int(answered), int(rejected)))
    return out


def _funnels(db: sqlite_utils.Database, units: str, key: str | None, unit: str,
             params: dict[str, Any]) -> list[tuple[str, Funnel]]:
    contacts = "count(DISTINCT contact_id)" if unit == "attempt" else "count(*)"
    flags = _FLAGS.format(contacts=contacts)
    if key is None:
        sql = f"{units} SELECT '' AS key, {flags} FROM base"
    else:
        # key comes from DIMENSIONS (a fixed whitelist), never from user input
        sql = f"{units} SELECT {key} AS key, {flags} FROM base GROUP BY {key} ORDER BY {key}"
    out = []
    cur = db.execute(sql, params)
    names = [d[0] for d in cur.description]
    for row in cur.fetchall():
        data = dict(zip(names, row, strict=True))
        k = data.pop("key")
        counts = {n: int(data[n] or 0) for n in COUNT_NAMES}
        out.append((NONE_KEY if k is None else str(k), Funnel(unit=unit, **counts)))
    return out


def _ranking(db: sqlite_utils.Database, column: str, params: dict[str, Any],
             threshold: Fraction, min_count: int) -> list[RankRow]:
    assert column in ("merchant", "host")
    ranked = f"""{_CONTACT_UNITS},
    ranked AS (
        SELECT coalesce(nullif(o.{column}, ''), '(unknown)') AS name, base.*
        FROM base LEFT JOIN orders o ON o.order_id = base.order_id
        WHERE base.answered
    )"""
    counts = db.execute(
        f"""{ranked}
        SELECT name, count(*), sum(satisfied IS NOT NULL), sum(satisfied = 1),
               sum(satisfied = 0)
        FROM ranked GROUP BY name""", params).fetchall()
    reasons: dict[str, list[tuple[str, int]]] = {}
    for name, reason, n in db.execute(
        f"""{ranked}
        SELECT name, coalesce(nullif(trim(reason), ''), '(no reason given)') AS r, count(*) AS n
        FROM ranked WHERE satisfied = 0 GROUP BY name, r ORDER BY name, n DESC, r""", params):
        reasons.setdefault(name, []).append((reason, int(n)))
    rows = []
    for name, answered, rated, sat, unsat in counts:
        rated, unsat = int(rated or 0), int(unsat or 0)
        rate = Fraction(unsat, rated) if rated else None
        rows.append(RankRow(
            kind=column, name=name, answered=int(answered), satisfaction_answered=rated,
            satisfied=int(sat or 0), unsatisfied=unsat,
            reasons=tuple(reasons.get(name, ())),
            rectify=rate is not None and rated >= min_count and rate > threshold,
        ))
    rows.sort(key=lambda r: (-(r.complaint_rate.value or Fraction(-1)), -r.unsatisfied, r.name))
    return rows


def _suggestions(db: sqlite_utils.Database, campaign_id: str, nodes: tuple[str, ...],
                 limit: int | None) -> list[Suggestion]:
    if not nodes:
        return []
    marks = ", ".join("?" for _ in nodes)
    sql = f"""
        SELECT a.call_id, c.contact_id, c.phone, coalesce(o.merchant, ''), a.node,
               coalesce(a.transcript, ''), coalesce(a.dtmf, ''), coalesce(a.recording, ''),
               coalesce(a.answered_at, ''), a.seq
        FROM answers a JOIN calls c ON c.id = a.call_id
        LEFT JOIN contacts ct ON ct.id = c.contact_id
        LEFT JOIN orders o ON o.order_id = coalesce(nullif(c.order_id, ''), ct.order_id)
        WHERE c.campaign_id = ? AND a.node IN ({marks})
          AND (trim(coalesce(a.transcript, '')) != '' OR coalesce(a.recording, '') != ''
               OR coalesce(a.dtmf, '') != '')
        ORDER BY a.answered_at, a.call_id, a.seq"""
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [
        Suggestion(call_id=r[0], contact_id=r[1], phone=mask_phone(r[2] or ""), merchant=r[3],
                   node=r[4], transcript=r[5].strip(), dtmf=r[6], recording=r[7],
                   answered_at=r[8], seq=int(r[9] or 0))
        for r in db.execute(sql, [campaign_id, *nodes])
    ]


def mask_phone(phone: str) -> str:
    """Keep the country code and the last 4 digits; reports leave the building, numbers don't."""
    if len(phone) <= 8:
        return phone
    return phone[:4] + "*" * (len(phone) - 8) + phone[-4:]


def _register_functions(conn: sqlite3.Connection) -> None:
    conn.create_function("ivr_local_hour", 3, local_hour, deterministic=True)
    conn.create_function("ivr_local_day", 3, local_day, deterministic=True)


def _local(started_at: str | None, tz_name: str | None, phone: str | None) -> datetime | None:
    """``started_at`` in the callee's time zone; None when the time is unreadable."""
    if not started_at:
        return None
    try:
        ts = datetime.fromisoformat(started_at)
    except ValueError:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)  # the store writes UTC
    return ts.astimezone(_zone(tz_name or "", phone or ""))


def local_hour(started_at: str | None, tz_name: str | None, phone: str | None) -> int | None:
    """Hour (0-23) of ``started_at`` in the callee's time zone."""
    local = _local(started_at, tz_name, phone)
    return None if local is None else local.hour


def local_day(started_at: str | None, tz_name: str | None, phone: str | None) -> str | None:
    """Date (YYYY-MM-DD) of ``started_at`` in the callee's time zone."""
    local = _local(started_at, tz_name, phone)
    return None if local is None else local.date().isoformat()


@lru_cache(maxsize=4096)
def _zone(tz_name: str, phone: str) -> ZoneInfo:
    # the contact's stored zone first, then the number's (a stored name may be unusable)
    candidates = [*callee_zones(None, tz_name), *callee_zones(phone)]
    for name in candidates:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo("UTC")
