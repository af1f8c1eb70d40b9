"""Choosing the caller ID for a call, and the last check before dialing.

One callee keeps one number across retries (a new number on every attempt gets calls declined);
that number is replaced only when it leaves rotation. New callees get a number of the callee's
own province when the pool has one (local presence), else the least used one, always under its
daily cap. A pick is charged to the number's cap at once, so concurrent picks spread out.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlite_utils

from ivr.callerid.config import PoolConfig
from ivr.callerid.state import (
    ACTIVE,
    active_flags,
    all_numbers,
    charge,
    ensure_schema,
    get_number,
    iso,
    sync_pool,
    transaction,
    used_today,
    utc,
)
from ivr.phone import InvalidNumber, number_info, parse_e164


class CallerIdError(Exception):
    """Base: ``reason`` says why, in words an operator understands."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class NoCallerIdAvailable(CallerIdError):
    """No usable number for this callee now (pool out of healthy numbers, caps reached ...)."""


class CallerIdUnusable(CallerIdError):
    """This number must not be presented now (flagged, cooling down, retired, unknown)."""


@dataclass(frozen=True)
class Pick:
    number: str  # E.164 caller ID to present
    trunk: str  # trunk configured for that number
    pool: str
    sticky: bool  # the callee already had this number
    local: bool  # same province as the callee
    used_today: int  # including this pick
    daily_cap: int


_SYNCED: weakref.WeakKeyDictionary[sqlite_utils.Database, int] = weakref.WeakKeyDictionary()


def _synced(db: sqlite_utils.Database, pool: PoolConfig, now: datetime) -> None:
    """Sync numbers.yaml into the table once per (database, pool object)."""
    ensure_schema(db)
    if _SYNCED.get(db) != id(pool):
        sync_pool(db, pool, now=now)
        _SYNCED[db] = id(pool)


def usable_reason(db: sqlite_utils.Database, number: str, *,
                  now: datetime | None = None) -> str | None:
    """None when ``number`` may be presented now, else why not."""
    row = get_number(db, number)
    if row is None:
        return f"{number} is not in the caller-ID pool"
    if not row["in_config"]:
        return f"{number} was removed from numbers.yaml"
    if row["state"] != ACTIVE:
        return f"{number} is {row['state']}: {row['state_reason'] or 'no reason recorded'}"
    flags = active_flags(db, number, now=now)
    if flags:
        return f"{number} is flagged ({flags[0]['source']}: {flags[0]['reason']})"
    return None


def assert_usable(db: sqlite_utils.Database, number: str, *, now: datetime | None = None) -> None:
    """The dialer's last check right before dialing; raises CallerIdUnusable with the reason."""
    reason = usable_reason(db, number, now=now)
    if reason is not None:
        raise CallerIdUnusable(reason)


def pick_caller(db: sqlite_utils.Database, pool: PoolConfig, callee_e164: str, *,
                now: datetime | None = None, pool_name: str | None = None) -> Pick:
    """Choose (and charge) the caller ID for one call to ``callee_e164``."""
    moment = utc(now)
    name = pool_name or pool.default_pool
    try:
        callee = parse_e164(callee_e164)
    except InvalidNumber as exc:
        raise NoCallerIdAvailable(str(exc)) from exc
    _synced(db, pool, moment)
    with transaction(db):
        members = all_numbers(db, name)
        if not members:
            raise NoCallerIdAvailable(f"caller-ID pool {name!r} has no numbers")
        usable: dict[str, dict[str, Any]] = {}
        for row in members:
            if usable_reason(db, row["number"], now=moment) is None:
                row["used"] = used_today(db, row["number"], pool.tz, moment)
                usable[row["number"]] = row
        sticky = db.execute("select caller_id from callerid_sticky where callee = ? and pool = ?",
                            [callee, name]).fetchone()
        sticky_num = sticky[0] if sticky else None
        if sticky_num in usable:
            row = usable[sticky_num]
            if row["used"] < row["daily_cap"] or pool.rotation.sticky_over_cap == "wait":
                if row["used"] >= row["daily_cap"]:
                    raise NoCallerIdAvailable(
                        f"{sticky_num}, the number {callee} was called from before, reached its "
                        f"daily cap of {row['daily_cap']}; keeping it (retry tomorrow)")
                return _take(db, pool, callee, name, row, moment, sticky=True)
        candidates = [r for r in usable.values() if r["used"] < r["daily_cap"]]
        if not candidates:
            raise NoCallerIdAvailable(_why_none(members, usable, name))
        region = _region(callee)
        best = min(candidates, key=lambda r: (
            not (region and r["region"] == region), r["used"] / r["daily_cap"], r["used"],
            r["number"]))
        return _take(db, pool, callee, name, best, moment, sticky=False)


def pick_caller_id(db: sqlite_utils.Database, pool: PoolConfig, callee_e164: str, *,
                   now: datetime | None = None, pool_name: str | None = None) -> str:
    """The E.164 caller ID for this call; raises NoCallerIdAvailable with the reason."""
    return pick_caller(db, pool, callee_e164, now=now, pool_name=pool_name).number


def _take(db: sqlite_utils.Database, pool: PoolConfig, callee: str, name: str,
          row: dict[str, Any], now: datetime, *, sticky: bool) -> Pick:
    stamp = iso(now)
    charge(db, row["number"], pool.tz, now)
    db.execute(
        "insert into callerid_sticky (callee, pool, caller_id, assigned_at, last_used_at) "
        "values (?, ?, ?, ?, ?) on conflict(callee, pool) do update set "
        "caller_id = excluded.caller_id, last_used_at = excluded.last_used_at, "
        "assigned_at = case when callerid_sticky.caller_id = excluded.caller_id "
        "then callerid_sticky.assigned_at else excluded.assigned_at end",
        [callee, name, row["number"], stamp, stamp],
    )
    region = _region(callee)
    return Pick(number=row["number"], trunk=row["trunk"], pool=name, sticky=sticky,
                local=bool(region) and row["region"] == region, used_today=row["used"] + 1,
                daily_cap=row["daily_cap"])


def _region(callee: str) -> str:
    try:
        return number_info(callee).region
    except InvalidNumber:
        return ""


def _why_none(members: list[dict[str, Any]], usable: dict[str, dict[str, Any]],
              name: str) -> str:
    if usable:
        return (f"all {len(usable)} healthy numbers of pool {name!r} reached their daily cap")
    states: dict[str, int] = {}
    for r in members:
        states[r["state"]] = states.get(r["state"], 0) + 1
    detail = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    return f"no healthy number in caller-ID pool {name!r} ({detail})"


def sticky_caller_id(db: sqlite_utils.Database, callee_e164: str,
                     pool_name: str = "default") -> str | None:
    """The number this callee was last called from in ``pool_name`` (None if never)."""
    ensure_schema(db)
    row = db.execute("select caller_id from callerid_sticky where callee = ? and pool = ?",
                     [callee_e164, pool_name]).fetchone()
    return row[0] if row else None
