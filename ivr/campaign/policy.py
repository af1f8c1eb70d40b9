"""Contact policy, fail closed: when a number may be called, checked at plan time and at dial time.

Everything is evaluated in the callee's local time (time zones from the number). A number with
several possible zones may only be called when every one of them allows it. Caps count every
attempt to the number in the ``attempts`` table, whatever campaign made it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlite_utils
from pydantic import Field, field_validator, model_validator

from ivr.campaign.segments import LocalTimes, SegmentsConfig
from ivr.campaign.yamlcfg import CampaignConfigError, Strict, load_yaml_model, validate_model
from ivr.phone import callee_zones

_ORDER_FIELDS = {"order_id", "phone", "product", "category", "merchant", "host", "platform",
                 "buyer_name", "extra", "source"}
RetryOutcome = Literal["busy", "no_answer", "congestion", "failed"]


class TimeRange(LocalTimes):
    """Local time range; may wrap midnight (quiet hours 21:00-09:00)."""

    @model_validator(mode="after")
    def _nonempty(self) -> TimeRange:
        if self.start == self.end:
            raise ValueError("start and end are equal (empty range)")
        return self

    def intervals(self) -> list[tuple[int, int]]:
        if self.start < self.end:
            return [(self.start, self.end)]
        return [(self.start, 1440), (0, self.end)]


class Caps(Strict):
    """Attempts per number, across campaigns; null = no cap (0 would forbid every call)."""

    per_day: int | None = Field(default=2, ge=1)  # per calendar day in the callee's local time
    per_window: int | None = Field(default=3, ge=1)  # per rolling window of window_days
    window_days: int = Field(default=7, ge=1, le=365)


class Backoff(Strict):
    busy: float = Field(default=1800, ge=0)
    no_answer: float = Field(default=3600, ge=0)
    congestion: float = Field(default=600, ge=0)
    failed: float = Field(default=900, ge=0)


class Retry(Strict):
    max_attempts: int = Field(default=3, ge=1, le=20)  # per contact, all outcomes together
    backoff_s: Backoff = Backoff()
    multiplier: float = Field(default=2.0, ge=1.0, le=10.0)
    max_backoff_s: float = Field(default=86400, ge=0)
    no_retry_sip: list[int] = [603, 607, 608]
    no_retry_q850: list[int] = [21]

    def backoff(self, outcome: str, attempts_done: int) -> float:
        base = float(getattr(self.backoff_s, outcome, self.backoff_s.failed))
        return float(min(self.max_backoff_s, base * self.multiplier ** max(0, attempts_done - 1)))


class Breaker(Strict):
    window: int = Field(default=20, ge=1)  # the last K attempts
    min_attempts: int = Field(default=10, ge=1)
    max_failure_rate: float = Field(default=0.5, gt=0, le=1)
    failure_outcomes: list[Literal["answered", "busy", "no_answer", "rejected", "congestion",
                                   "failed"]] = ["failed", "congestion"]

    @model_validator(mode="after")
    def _fits(self) -> Breaker:
        if self.min_attempts > self.window:
            raise ValueError("min_attempts must not exceed window")
        return self


class DialerSettings(Strict):
    max_concurrent: int = Field(default=10, ge=1, le=1000)
    cps: float = Field(default=2.0, gt=0, le=500)
    ring_timeout_s: int = Field(default=30, ge=5, le=300)


class Selection(Strict):
    days: int = Field(default=30, ge=1, le=3650)
    # SQL LIKE patterns per order field; a phone with any matching order is a test/internal account.
    exclude_like: dict[str, list[str]] = {}

    @field_validator("exclude_like")
    @classmethod
    def _fields(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        bad = sorted(set(v) - _ORDER_FIELDS)
        if bad:
            raise ValueError(f"unknown order field(s) {bad}; known: {sorted(_ORDER_FIELDS)}")
        return v


class PolicyConfig(Strict):
    quiet_hours: TimeRange | None = TimeRange.model_validate(
        {"start": "21:00", "end": "09:00"})
    avoid_weekday_noon: bool = False
    weekday_noon: TimeRange = TimeRange.model_validate(
        {"start": "12:00", "end": "13:30"})
    caps: Caps = Caps()
    # "skip": numbers without a known time zone are not called; or an IANA zone to assume.
    unknown_timezone: str = "skip"
    retry: Retry = Retry()
    circuit_breaker: Breaker = Breaker()
    dialer: DialerSettings = DialerSettings()
    selection: Selection = Selection()

    def zones_or_fallback(self, zones: tuple[str, ...]) -> tuple[str, ...]:
        """The callee's zones, else the zone to assume (none when unknown numbers are skipped)."""
        if zones or self.unknown_timezone == "skip":
            return zones
        return (self.unknown_timezone,)

    @field_validator("unknown_timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        if v != "skip":
            try:
                ZoneInfo(v)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {v!r} (use 'skip' or an IANA name)") from exc
        return v


def load_policy(path: str | Path) -> PolicyConfig:
    return load_yaml_model(PolicyConfig, path)


def policy_json(policy: PolicyConfig, segments: SegmentsConfig) -> str:
    """What a campaign row stores: both configs, as planned."""
    return json.dumps({"policy": policy.model_dump(mode="json"),
                       "segments": segments.model_dump(mode="json")}, ensure_ascii=False)


def policy_from_json(text: str | None, source: str) -> tuple[PolicyConfig, SegmentsConfig]:
    """Read back a campaign's stored policy; any problem is a :class:`CampaignConfigError`."""
    try:
        data = json.loads(text or "")
        if not isinstance(data, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        raise CampaignConfigError(f"{source}: stored policy is not valid JSON: {exc}") from exc
    seg, pol = data.get("segments"), data.get("policy")
    return (validate_model(PolicyConfig, pol, f"{source} policy"),
            validate_model(SegmentsConfig, seg, f"{source} segments"))


def iso(dt: datetime) -> str:
    """UTC text in the store's format (sortable, same as ``store.now_iso``)."""
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _subtract(base: list[tuple[int, int]], cut: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out = base
    for cs, ce in cut:
        nxt = []
        for s, e in out:
            if ce <= s or cs >= e:
                nxt.append((s, e))
                continue
            if s < cs:
                nxt.append((s, cs))
            if ce < e:
                nxt.append((ce, e))
        out = nxt
    return sorted(out)


class ContactPolicy:
    """The policy of one campaign. ``contact`` is any mapping with phone, segment and
    (optionally) timezone (comma-separated IANA names; looked up from the number if empty)."""

    MAX_STEPS = 64  # fixed-point iterations before giving up (fail closed)

    def __init__(self, config: PolicyConfig, segments: SegmentsConfig,
                 db: sqlite_utils.Database | None = None, ends_at: datetime | None = None) -> None:
        self.config = config
        self.segments = segments
        self.db = db
        self.ends_at = ends_at
        self._allowed: dict[tuple[str, int], list[tuple[int, int]]] = {}
        self._lookback = timedelta(days=max(config.caps.window_days, 2))

    # ---- the two questions -------------------------------------------------------------------
    def check(self, contact: Mapping[str, Any], now: datetime) -> tuple[bool, str]:
        try:
            zones = self.zones_for(contact)
            phone = str(contact["phone"])
            return self.check_at(str(contact.get("segment") or ""), zones, now,
                                 self.attempt_times(phone, now), self.is_dnc(phone))
        except Exception as exc:  # fail closed: an unexpected error never means "go ahead"
            return False, f"policy error: {exc}"

    def next_allowed(self, contact: Mapping[str, Any], now: datetime) -> datetime | None:
        try:
            zones = self.zones_for(contact)
            phone = str(contact["phone"])
            return self.next_allowed_at(str(contact.get("segment") or ""), zones, now,
                                        self.attempt_times(phone, now), self.is_dnc(phone))
        except Exception:
            return None

    # ---- database facts ----------------------------------------------------------------------
    def is_dnc(self, phone: str) -> bool:
        if self.db is None:
            return False
        return self.db.execute("select 1 from dnc where phone = ?", [phone]).fetchone() is not None

    def attempt_times(self, phone: str, now: datetime) -> list[datetime]:
        """Start times of every attempt to ``phone`` recent enough to matter for the caps."""
        if self.db is None:
            return []
        rows = self.db.execute(
            "select started_at from attempts where phone = ? and started_at > ?",
            [phone, iso(now - self._lookback)]).fetchall()
        return sorted(parse_iso(r[0]) for r in rows if r[0])

    def zones_for(self, contact: Mapping[str, Any]) -> tuple[str, ...]:
        return self.config.zones_or_fallback(
            callee_zones(str(contact["phone"]), contact.get("timezone")))

    # ---- pure core (no I/O): what the planner calls in bulk ----------------------------------
    def allowed_minutes(self, segment: str, weekday: int) -> list[tuple[int, int]]:
        """Minutes of a local day (0..1440) when ``segment`` may be called on ``weekday``."""
        key = (segment, weekday)
        if key not in self._allowed:
            seg = self.segments.segments[segment]
            base = sorted((w.start, w.end) for w in seg.windows if weekday in w.weekdays())
            cut = list(self.config.quiet_hours.intervals()) if self.config.quiet_hours else []
            if self.config.avoid_weekday_noon and weekday < 5:
                cut += self.config.weekday_noon.intervals()
            self._allowed[key] = _subtract(base, cut)
        return self._allowed[key]

    def check_at(self, segment: str, zones: Sequence[str], now: datetime,
                 attempts: Sequence[datetime], dnc: bool) -> tuple[bool, str]:
        if dnc:
            return False, "do-not-call"
        if self.ends_at is not None and now >= self.ends_at:
            return False, "campaign ended"
        if segment not in self.segments.segments:
            return False, f"unknown segment {segment!r}"
        if not zones:
            return False, "unknown time zone"
        for name in zones:
            local = now.astimezone(_zone(name))
            minute = local.hour * 60 + local.minute
            if not _inside(self.allowed_minutes(segment, local.weekday()), minute):
                return False, f"outside calling window ({name} {local:%a %H:%M})"
        caps = self.config.caps
        if caps.per_day is not None:
            for name in zones:
                today = now.astimezone(_zone(name)).date()
                n = sum(1 for a in attempts if a.astimezone(_zone(name)).date() == today)
                if n >= caps.per_day:
                    return False, f"daily cap reached ({n}/{caps.per_day})"
        if caps.per_window is not None:
            since = now - timedelta(days=caps.window_days)
            n = sum(1 for a in attempts if a > since)
            if n >= caps.per_window:
                return False, f"{caps.window_days}-day cap reached ({n}/{caps.per_window})"
        return True, "ok"

    def next_allowed_at(self, segment: str, zones: Sequence[str], now: datetime,
                        attempts: Sequence[datetime], dnc: bool) -> datetime | None:
        """Earliest time >= ``now`` when :meth:`check_at` holds, or None (never, as far as the
        policy can tell: DNC, no window before the end date, unknown zone or segment)."""
        if dnc or not zones or segment not in self.segments.segments:
            return None
        t = now.astimezone(UTC)
        for _ in range(self.MAX_STEPS):
            if self.ends_at is not None and t >= self.ends_at:
                return None
            t2 = self._cap_release(zones, t, attempts)
            t3 = self._window_open(segment, zones, t2)
            if t3 is None:
                return None
            if t3 == t:
                ok, _ = self.check_at(segment, zones, t, attempts, False)
                # A DST gap can make a computed opening land outside the window: step on.
                if ok:
                    return t
                t3 = t + timedelta(minutes=1)
            t = t3
        return None

    def _cap_release(self, zones: Sequence[str], t: datetime,
                     attempts: Sequence[datetime]) -> datetime:
        caps = self.config.caps
        if not attempts:
            return t
        out = t
        if caps.per_window is not None:
            window = timedelta(days=caps.window_days)
            recent = sorted(a for a in attempts if a > t - window)
            if len(recent) >= caps.per_window:
                out = max(out, recent[len(recent) - caps.per_window] + window)
        if caps.per_day is not None:
            for name in zones:
                zone = _zone(name)
                today = t.astimezone(zone).date()
                if sum(1 for a in attempts if a.astimezone(zone).date() == today) >= caps.per_day:
                    midnight = datetime.combine(today + timedelta(days=1), time(0), zone)
                    out = max(out, midnight.astimezone(UTC))
        return out

    def _window_open(self, segment: str, zones: Sequence[str], t: datetime) -> datetime | None:
        """Earliest time >= t inside the segment's allowed minutes in every zone."""
        for _ in range(self.MAX_STEPS):
            latest = t
            for name in zones:
                opening = self._open_in_zone(segment, _zone(name), t)
                if opening is None:
                    return None
                latest = max(latest, opening)
            if latest == t:
                return t
            t = latest
        return None

    def _open_in_zone(self, segment: str, zone: ZoneInfo, t: datetime) -> datetime | None:
        local = t.astimezone(zone)
        minute = local.hour * 60 + local.minute
        for day in range(8):
            date = local.date() + timedelta(days=day)
            for start, end in self.allowed_minutes(segment, date.weekday()):
                if day == 0 and end <= minute:
                    continue
                if day == 0 and start <= minute:
                    return t
                opening = datetime.combine(date, time(start // 60, start % 60), zone)
                return max(t, opening.astimezone(UTC))
        return None


def _inside(intervals: list[tuple[int, int]], minute: int) -> bool:
    return any(s <= minute < e for s, e in intervals)
