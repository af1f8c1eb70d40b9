"""When to call back: turn a callback answer into a timestamp.

The script says *how* with a ``callback_at`` spec on the intent ("tonight", "tomorrow", "hour",
"default" or a delay like "+2h"); the caller's digits or words fill in the hour for "hour". Times
are computed in the callee's time zone (calling hours are local) and stored as UTC ISO text, like
every other timestamp in the store. Anything unparseable falls back to the default delay, so a
strange answer still yields a callback instead of an error.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from ivr.survey.script import CALLBACK_RELATIVE, CallbackPolicy

# An hour the caller must not be offered: sooner than this is "now + default delay" instead.
MIN_LEAD = timedelta(minutes=30)
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
# Hour words in transcripts: "20", "8点" (cmn), "8시" (ko); evening markers move 1-11 to pm.
_HOUR = re.compile(r"(\d{1,2})\s*(?:点|點|시|:00)?")
_EVENING = ("晚上", "今晚", "下午", "저녁", "오후", "밤", "pm", "evening", "tonight")


def iso_utc(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_hour(dtmf: str | None, transcript: str | None) -> int | None:
    """The hour (0-23) the caller typed or said, or None."""
    if dtmf and dtmf.strip("#").isdigit():
        h = int(dtmf.strip("#"))
        return h if 0 <= h <= 23 else None
    if transcript:
        m = _HOUR.search(transcript)
        if m:
            h = int(m.group(1))
            if 1 <= h <= 11 and any(w in transcript.lower() for w in _EVENING):
                h += 12
            return h if 0 <= h <= 23 else None
    return None


def callback_time(spec: str, *, now: datetime, policy: CallbackPolicy, timezone: str | None = None,
                  dtmf: str | None = None, transcript: str | None = None) -> str:
    """UTC ISO timestamp for ``spec`` ("default", "tonight", "tomorrow", "hour", "+2h", ...)."""
    try:
        tz = ZoneInfo(timezone or policy.timezone)
    except (KeyError, ValueError):
        tz = ZoneInfo(policy.timezone)
    local = now.astimezone(tz)
    default = local + timedelta(minutes=policy.default_delay_min)
    rel = CALLBACK_RELATIVE.match(spec)
    if rel:
        return iso_utc(local + timedelta(**{_UNITS[rel.group(2)]: int(rel.group(1))}))
    if spec == "tonight":
        at = _at_hour(local, policy.tonight_hour)
        return iso_utc(at if at.date() == local.date() else default)
    if spec == "tomorrow":
        day = local + timedelta(days=1)
        return iso_utc(day.replace(hour=policy.tomorrow_hour, minute=0, second=0, microsecond=0))
    if spec == "hour":
        hour = parse_hour(dtmf, transcript)
        return iso_utc(_at_hour(local, hour) if hour is not None else default)
    return iso_utc(default)


def _at_hour(local: datetime, hour: int) -> datetime:
    """The next time it is ``hour``:00 locally, at least MIN_LEAD from now."""
    at = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if at < local + MIN_LEAD:
        at += timedelta(days=1)
    return at
