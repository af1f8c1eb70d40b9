"""Property: the policy never allows a call outside the callee's window, over a cap, to a DNC
number or after the end date; next_allowed is allowed and nothing earlier is (sampled)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr.campaign.policy import ContactPolicy, PolicyConfig
from ivr.campaign.segments import DAY_NAMES, SegmentsConfig

ZONE_SETS = [("Asia/Shanghai",), ("America/New_York",), ("Europe/London",), ("Asia/Kolkata",),
             ("Australia/Lord_Howe",), ("America/New_York", "America/Los_Angeles"),
             ("Asia/Shanghai", "Asia/Urumqi")]


def hhmm(m: int) -> str:
    return f"{m // 60:02d}:{m % 60:02d}"


@st.composite
def windows(draw: Any) -> dict[str, Any]:
    start = draw(st.integers(0, 1439))
    end = draw(st.integers(start + 1, 1440))
    days = draw(st.one_of(st.sampled_from(["all", "weekdays", "weekends"]),
                          st.lists(st.sampled_from(DAY_NAMES), min_size=1, max_size=7,
                                   unique=True)))
    return {"days": days, "start": hhmm(start), "end": hhmm(end)}


@st.composite
def configs(draw: Any) -> tuple[PolicyConfig, SegmentsConfig]:
    seg = SegmentsConfig.model_validate({
        "default_segment": "s",
        "segments": {"s": {"voice": "v", "windows": draw(st.lists(windows(), min_size=1,
                                                                  max_size=3))}}})
    quiet = None
    if draw(st.booleans()):
        a, b = draw(st.integers(0, 1439)), draw(st.integers(0, 1439))
        if a != b:
            quiet = {"start": hhmm(a), "end": hhmm(b)}
    caps = {"per_day": draw(st.one_of(st.none(), st.integers(1, 3))),
            "per_window": draw(st.one_of(st.none(), st.integers(1, 5))),
            "window_days": draw(st.integers(1, 7))}
    pol = PolicyConfig.model_validate({"quiet_hours": quiet, "caps": caps,
                                       "avoid_weekday_noon": draw(st.booleans())})
    return pol, seg


NOW = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2026, 12, 31),
                   timezones=st.just(UTC))


def oracle(pol: PolicyConfig, seg: SegmentsConfig, zones: tuple[str, ...], t: datetime,
           attempts: list[datetime], dnc: bool, ends: datetime | None) -> bool:
    """Written from the rules, independently of the implementation."""
    if dnc or (ends is not None and t >= ends):
        return False
    for z in zones:
        local = t.astimezone(ZoneInfo(z))
        m, wd = local.hour * 60 + local.minute, local.weekday()
        if not any(wd in w.weekdays() and w.start <= m < w.end
                   for w in seg.segments["s"].windows):
            return False
        q = pol.quiet_hours
        if q and ((q.start <= m < q.end) if q.start < q.end else (m >= q.start or m < q.end)):
            return False
        n = pol.weekday_noon
        if pol.avoid_weekday_noon and wd < 5 and n.start <= m < n.end:
            return False
        if pol.caps.per_day is not None and sum(
                1 for a in attempts
                if a.astimezone(ZoneInfo(z)).date() == local.date()) >= pol.caps.per_day:
            return False
    if pol.caps.per_window is not None:
        since = t - timedelta(days=pol.caps.window_days)
        if sum(1 for a in attempts if since < a <= t) >= pol.caps.per_window:
            return False
    return True


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs(), zones=st.sampled_from(ZONE_SETS), now=NOW,
       ago=st.lists(st.floats(0, 10 * 24 * 3600), max_size=6), dnc=st.booleans(),
       ends_in=st.one_of(st.none(), st.floats(0, 20 * 24 * 3600)))
def test_policy_never_allows_a_forbidden_call(cfg: Any, zones: tuple[str, ...], now: datetime,
                                              ago: list[float], dnc: bool,
                                              ends_in: float | None) -> None:
    pol, seg = cfg
    ends = now + timedelta(seconds=ends_in) if ends_in is not None else None
    attempts = sorted(now - timedelta(seconds=s) for s in ago)
    policy = ContactPolicy(pol, seg, ends_at=ends)
    ok, reason = policy.check_at("s", zones, now, attempts, dnc)
    assert ok == oracle(pol, seg, zones, now, attempts, dnc, ends), reason
    nxt = policy.next_allowed_at("s", zones, now, attempts, dnc)
    if nxt is not None:
        assert nxt >= now
        assert oracle(pol, seg, zones, nxt, attempts, dnc, ends)
        assert policy.check_at("s", zones, nxt, attempts, dnc)[0]
        if ok:
            assert nxt == now
        horizon = nxt
    else:
        assert not ok
        horizon = min(ends or now + timedelta(days=16), now + timedelta(days=16))
    # Nothing earlier is allowed: sample the span before the answer (or the horizon if None).
    span = (horizon - now).total_seconds()
    for i in range(1, 60):
        t = now + timedelta(seconds=span * i / 60)
        if t < horizon:
            assert not oracle(pol, seg, zones, t, attempts, dnc, ends), (t, nxt)
