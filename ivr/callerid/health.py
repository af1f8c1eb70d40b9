"""Health of each caller ID from its own call outcomes, and the state changes that follow.

Each number is judged over every configured sliding window; a criterion is judged only once its
minimum sample is reached, so one bad call never flags a number. The score is 100 minus penalties:
each penalty grows linearly with its metric, reaching its weight exactly at the configured limit
and growing on beyond it (the score floors at 0), so with the default weights (50+) and
``flag_below_score`` 50 a breach of any single limit also scores below 50, and two metrics that are
each close to their limits add up. A number beyond any limit (a "breach"), below
``flag_below_score`` or with an active flag (score 0) is unhealthy.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from ivr.callerid.config import HealthPolicy, PoolConfig
from ivr.callerid.state import (
    ACTIVE,
    COOLING_DOWN,
    FLAGGED,
    RETIRED,
    active_flags,
    all_numbers,
    flag_out,
    iso,
    parse_iso,
    save_metrics,
    set_state,
    sync_pool,
    used_today,
    utc,
)


@dataclass
class Attempt:
    outcome: str
    sip_code: int | None
    q850_cause: int | None
    talk_s: float | None  # answered talk time
    started: datetime


@dataclass
class WindowStats:
    minutes: int
    attempts: int = 0  # finished attempts of any outcome
    calls: int = 0  # attempts with a counted outcome (answer-rate denominator)
    answered: int = 0
    short: int = 0
    rejections: int = 0
    answer_rate: float | None = None
    short_rate: float | None = None
    rejection_rate: float | None = None
    pool_median: float | None = None
    score: float = 100.0
    penalties: dict[str, float] = field(default_factory=dict)
    breaches: list[str] = field(default_factory=list)


@dataclass
class NumberHealth:
    number: str
    pool: str
    trunk: str
    region: str
    state: str
    previous_state: str
    score: float
    healthy: bool
    attempts: int
    answer_rate: float | None
    short_rate: float | None
    rejections: int
    flags: list[str]
    why: list[str]
    used_today: int
    daily_cap: int
    windows: list[WindowStats]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CheckReport:
    checked_at: str
    numbers: list[NumberHealth]
    problems: list[str]
    capacity_today: dict[str, int]  # pool -> calls its active numbers can still make today
    campaign_size: int | None = None
    target_pool: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"checked_at": self.checked_at, "ok": self.ok, "problems": self.problems,
                "capacity_today": self.capacity_today, "campaign_size": self.campaign_size,
                "target_pool": self.target_pool, "numbers": [n.to_dict() for n in self.numbers]}


def load_attempts(db: sqlite_utils.Database, number: str, since: datetime) -> list[Attempt]:
    """Finished attempts of ``number`` started at or after ``since``."""
    # Text prefilter on the (caller_id, started_at) index with a day of slack for odd offsets,
    # then an exact check on the parsed time.
    rows = db.execute(
        "select outcome, sip_code, q850_cause, duration_s, started_at, answered_at, ended_at "
        "from attempts where caller_id = ? and started_at >= ? and outcome is not null",
        [number, iso(since - timedelta(days=1))],
    ).fetchall()
    out = []
    for outcome, sip, q850, duration, started_s, answered_s, ended_s in rows:
        started = parse_iso(started_s)
        if started is None or started < since:
            continue
        talk = float(duration) if duration is not None else None
        if talk is None and outcome == "answered":
            a, e = parse_iso(answered_s), parse_iso(ended_s)
            talk = (e - a).total_seconds() if a and e else None
        out.append(Attempt(outcome, _int(sip), _int(q850), talk, started))
    return out


def _int(v: Any) -> int | None:
    try:
        return int(v) if v is not None and v != "" else None
    except (TypeError, ValueError):
        return None


def window_stats(attempts: list[Attempt], policy: HealthPolicy, minutes: int,
                 since: datetime) -> WindowStats:
    st = WindowStats(minutes=minutes)
    rej_sip, rej_q850 = set(policy.reject_sip_codes), set(policy.reject_q850_causes)
    for a in attempts:
        if a.started < since:
            continue
        st.attempts += 1
        if a.outcome in policy.counted_outcomes:
            st.calls += 1
        if a.outcome == "answered":
            st.answered += 1
            if a.talk_s is not None and a.talk_s < policy.short_call_s:
                st.short += 1
        # "failed" is our own side (a guard refusal carries Q.850 21 too): not the network's no
        if a.outcome != "failed" and (a.sip_code in rej_sip or a.q850_cause in rej_q850):
            st.rejections += 1
    if st.calls:
        st.answer_rate = st.answered / st.calls
    if st.answered:
        st.short_rate = st.short / st.answered
    if st.attempts:
        st.rejection_rate = st.rejections / st.attempts
    return st


def judge(st: WindowStats, policy: HealthPolicy) -> None:
    """Fill in penalties, breaches and score of one window (pool_median already set)."""
    label = _window_label(st.minutes)
    if st.calls >= policy.min_calls and st.answer_rate is not None:
        if st.pool_median:
            ratio = st.answer_rate / st.pool_median
            span = 1 - policy.answer_ratio_min
            part = (2.0 if ratio < 1 else 0.0) if span <= 0 else _grow((1 - ratio) / span)
            st.penalties["answer_rate"] = policy.weight_answer * part
            if ratio < policy.answer_ratio_min:
                st.breaches.append(
                    f"answer rate {st.answer_rate:.0%} < {policy.answer_ratio_min:.0%} of pool "
                    f"median {st.pool_median:.0%} ({st.calls} calls, {label})")
        if policy.answer_rate_min and st.answer_rate < policy.answer_rate_min:
            st.penalties["answer_rate"] = max(st.penalties.get("answer_rate", 0.0),
                                              policy.weight_answer * 1.5)
            st.breaches.append(f"answer rate {st.answer_rate:.0%} < floor "
                               f"{policy.answer_rate_min:.0%} ({st.calls} calls, {label})")
    if st.answered >= policy.min_answered and st.short_rate is not None:
        st.penalties["short_calls"] = policy.weight_short * _grow(
            st.short_rate / policy.short_call_rate_max)
        if st.short_rate > policy.short_call_rate_max:
            st.breaches.append(
                f"short-call rate {st.short_rate:.0%} > {policy.short_call_rate_max:.0%} "
                f"(hung up within {policy.short_call_s:g}s; {st.answered} answered, {label})")
    if st.rejections >= policy.min_rejections and st.rejection_rate is not None:
        st.penalties["rejections"] = policy.weight_rejections * _grow(
            st.rejection_rate / policy.rejection_rate_max)
        if st.rejection_rate > policy.rejection_rate_max:
            st.breaches.append(
                f"{st.rejections} explicit rejections ({st.rejection_rate:.0%} > "
                f"{policy.rejection_rate_max:.0%} of {st.attempts} attempts; SIP "
                f"{'/'.join(map(str, policy.reject_sip_codes))} or Q.850 "
                f"{'/'.join(map(str, policy.reject_q850_causes))}, {label})")
    st.score = round(max(0.0, 100.0 - sum(st.penalties.values())), 1)


def _grow(x: float) -> float:
    """Penalty fraction: 0 when healthy, 1 at the limit, up to 2 far beyond it."""
    return max(0.0, min(2.0, x))


def _window_label(minutes: int) -> str:
    if minutes % 1440 == 0:
        return f"last {minutes // 1440}d"
    if minutes % 60 == 0:
        return f"last {minutes // 60}h"
    return f"last {minutes}min"


def evaluate(db: sqlite_utils.Database, pool: PoolConfig,
             now: datetime) -> dict[str, tuple[list[WindowStats], list[dict[str, Any]]]]:
    """Window stats (judged against each pool's median) and active flags of every live number."""
    policy = pool.health
    rows = [r for r in all_numbers(db) if r["state"] != RETIRED]
    longest = max(policy.windows_minutes)
    stats: dict[str, list[WindowStats]] = {}
    for row in rows:
        health_since = parse_iso(row.get("health_since")) or now - timedelta(minutes=longest)
        attempts = load_attempts(db, row["number"],
                                 max(now - timedelta(minutes=longest), health_since))
        stats[row["number"]] = [
            window_stats(attempts, policy, m, max(now - timedelta(minutes=m), health_since))
            for m in policy.windows_minutes
        ]
    # Pool median per window over numbers with enough calls to have a meaningful rate.
    for i, _minutes in enumerate(policy.windows_minutes):
        by_pool: dict[str, list[float]] = {}
        for row in rows:
            st = stats[row["number"]][i]
            if st.calls >= policy.min_calls and st.answer_rate is not None:
                by_pool.setdefault(row["pool"], []).append(st.answer_rate)
        for row in rows:
            st = stats[row["number"]][i]
            rates = by_pool.get(row["pool"])
            st.pool_median = statistics.median(rates) if rates else None
            judge(st, policy)
    return {row["number"]: (stats[row["number"]], active_flags(db, row["number"], now=now))
            for row in rows}


def check_pool(db: sqlite_utils.Database, pool: PoolConfig, *, now: datetime | None = None,
               campaign_size: int | None = None, pool_name: str | None = None,
               source: str = "check") -> CheckReport:
    """Recompute health, apply state changes (logged with why) and judge serviceability."""
    moment = utc(now)
    policy = pool.health
    sync_pool(db, pool, now=moment)
    evaluated = evaluate(db, pool, moment)
    results: list[NumberHealth] = []
    for row in all_numbers(db):
        if row["state"] == RETIRED:
            if row["in_config"]:
                results.append(_retired(row))
            continue
        windows, flags = evaluated[row["number"]]
        results.append(_apply(db, row, windows, flags, policy, pool, moment, source))
    return _summarise(results, pool, moment, campaign_size, pool_name)


def _apply(db: sqlite_utils.Database, row: dict[str, Any], windows: list[WindowStats],
           flags: list[dict[str, Any]], policy: HealthPolicy, pool: PoolConfig,
           now: datetime, source: str) -> NumberHealth:
    number, before = row["number"], row["state"]
    breaches = [b for w in windows for b in w.breaches]
    flag_texts = [f"{f['source']}: {f['reason']}" for f in flags]
    score = 0.0 if flags else min(w.score for w in windows)
    low = score < policy.flag_below_score and not breaches and not flags
    unhealthy = bool(breaches or flags or low)
    why = [f"flag ({t})" for t in flag_texts] + breaches
    if low:
        why.append(f"score {score:g} < {policy.flag_below_score:g}")
    if unhealthy and before in (ACTIVE, COOLING_DOWN):
        flag_out(db, number, "; ".join(why), source, now=now)
    elif not unhealthy and before == FLAGGED:
        until = now + timedelta(minutes=policy.cooldown_minutes)
        set_state(db, number, COOLING_DOWN, "clean re-check: cause gone, cool-down started",
                  source, now=now, cooldown_until=iso(until))
    state_row = _reload(db, number)
    if not unhealthy and state_row["state"] == COOLING_DOWN:
        until_dt = parse_iso(state_row.get("cooldown_until"))
        if until_dt is None or now >= until_dt:
            set_state(db, number, ACTIVE, "re-admitted: cool-down over and clean re-check",
                      source, now=now)
        else:
            why.append(f"cooling down until {state_row['cooldown_until']}")
    state_row = _reload(db, number)
    if state_row["state"] == FLAGGED and not why:
        why.append(state_row.get("state_reason") or "flagged")
    if not why and state_row["state"] == ACTIVE:
        why.append("ok" if any(w.attempts for w in windows) else "ok (no calls yet)")
    main = windows[0]  # the shortest window: what the number does now
    longest = windows[-1]
    save_metrics(db, number, score, {"windows": [asdict(w) for w in windows], "why": why},
                 now=now)
    return NumberHealth(
        number=number, pool=row["pool"], trunk=row["trunk"], region=row["region"] or "",
        state=state_row["state"], previous_state=before, score=score,
        healthy=state_row["state"] == ACTIVE, attempts=longest.attempts,
        answer_rate=longest.answer_rate if longest.calls else main.answer_rate,
        short_rate=longest.short_rate, rejections=longest.rejections, flags=flag_texts, why=why,
        used_today=used_today(db, number, pool.tz, now), daily_cap=int(row["daily_cap"] or 0),
        windows=windows,
    )


def _reload(db: sqlite_utils.Database, number: str) -> dict[str, Any]:
    return dict(db.table("numbers").get(number))


def _retired(row: dict[str, Any]) -> NumberHealth:
    return NumberHealth(
        number=row["number"], pool=row["pool"], trunk=row["trunk"], region=row["region"] or "",
        state=RETIRED, previous_state=RETIRED, score=0.0, healthy=False, attempts=0,
        answer_rate=None, short_rate=None, rejections=0, flags=[],
        why=[row.get("state_reason") or "retired"], used_today=0,
        daily_cap=int(row["daily_cap"] or 0), windows=[])


def _summarise(results: list[NumberHealth], pool: PoolConfig, now: datetime,
               campaign_size: int | None, pool_name: str | None) -> CheckReport:
    problems: list[str] = []
    capacity: dict[str, int] = {}
    for name in pool.pools:
        members = [r for r in results if r.pool == name]
        live = [r for r in members if r.state != RETIRED]
        capacity[name] = sum(max(0, r.daily_cap - r.used_today) for r in live if r.healthy)
        if not members:
            if name == (pool_name or pool.default_pool):
                problems.append(f"pool {name!r} has no numbers")
            continue
        if not any(r.healthy for r in live):
            counts = {s: sum(r.state == s for r in members)
                      for s in (FLAGGED, COOLING_DOWN, RETIRED)}
            detail = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
            problems.append(f"pool {name!r} has no healthy number ({detail})")
    target = pool_name or pool.default_pool
    if pool_name is not None and pool_name not in capacity:
        problems.append(f"pool {pool_name!r} is not in {pool.source or 'numbers.yaml'}")
    if campaign_size is not None and capacity.get(target, 0) < campaign_size:
        problems.append(f"pool {target!r} can make {capacity.get(target, 0)} more calls today "
                        f"on healthy numbers; the campaign needs {campaign_size}")
    return CheckReport(checked_at=iso(now), numbers=results, problems=problems,
                       capacity_today=capacity, campaign_size=campaign_size, target_pool=target)
