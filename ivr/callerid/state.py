"""Caller-ID state in SQLite: numbers, their state history, flags, daily usage, sticky callees.

States: ``active`` (in rotation), ``flagged`` (out: something is wrong now), ``cooling_down`` (out:
the cause is gone, the cool-down period is not over), ``retired`` (out for good / not configured).
Every change of state is written to ``number_events`` with why and who, in the same transaction.
"""

from __future__ import annotations

import json
import weakref
from datetime import UTC, datetime, tzinfo
from typing import Any

import sqlite_utils

from ivr.callerid.config import PoolConfig

# BEGIN IMMEDIATE so two dialer processes cannot both take the last call of a cap.
from ivr.store import iso, register_schema, transaction

ACTIVE, FLAGGED, COOLING_DOWN, RETIRED = "active", "flagged", "cooling_down", "retired"
STATES = (ACTIVE, FLAGGED, COOLING_DOWN, RETIRED)


@register_schema
def callerid_schema(db: sqlite_utils.Database) -> None:
    db.table("numbers").create(
        {
            "number": str,  # E.164 caller ID
            "pool": str,
            "trunk": str,
            "region": str,
            "city": str,
            "daily_cap": int,
            "verified": int,
            "in_config": int,  # 0 once removed from numbers.yaml
            "state": str,
            "state_reason": str,
            "state_changed_at": str,
            "flagged_at": str,
            "cooldown_until": str,
            "health_since": str,  # attempts before this are not judged (reset on re-admission)
            "score": float,
            "last_check_at": str,
            "metrics": str,  # JSON of the last health evaluation
            "created_at": str,
        },
        pk="number",
        if_not_exists=True,
    )
    db.table("number_events").create(
        {"id": int, "number": str, "at": str, "from_state": str, "to_state": str,
         "reason": str, "source": str},
        pk="id",
        if_not_exists=True,
    )
    db.table("number_events").create_index(["number", "at"], if_not_exists=True)
    db.table("number_flags").create(
        {"id": int, "number": str, "source": str, "reason": str, "created_at": str,
         "expires_at": str, "cleared_at": str, "cleared_reason": str},
        pk="id",
        if_not_exists=True,
    )
    db.table("number_flags").create_index(["number", "cleared_at"], if_not_exists=True)
    db.table("number_usage").create(
        {"number": str, "day": str, "picks": int}, pk=("number", "day"), if_not_exists=True
    )
    db.table("callerid_sticky").create(
        {"callee": str, "pool": str, "caller_id": str, "assigned_at": str, "last_used_at": str},
        pk=("callee", "pool"),
        if_not_exists=True,
    )


_READY: weakref.WeakSet[sqlite_utils.Database] = weakref.WeakSet()


def ensure_schema(db: sqlite_utils.Database) -> None:
    """Create our tables on a database opened before this module was imported."""
    if db not in _READY:
        callerid_schema(db)
        _READY.add(db)


def utc(now: datetime | None) -> datetime:
    """The injected clock, as aware UTC (naive means UTC)."""
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return None



def get_number(db: sqlite_utils.Database, number: str) -> dict[str, Any] | None:
    ensure_schema(db)
    row = db.execute("select * from numbers where number = ?", [number]).fetchone()
    if row is None:
        return None
    cols = [d[0] for d in db.execute("select * from numbers limit 0").description]
    return dict(zip(cols, row, strict=True))


def all_numbers(db: sqlite_utils.Database, pool_name: str | None = None) -> list[dict[str, Any]]:
    ensure_schema(db)
    if pool_name is None:
        return list(db.table("numbers").rows_where(order_by="pool, number"))
    return list(db.table("numbers").rows_where("pool = ?", [pool_name], order_by="number"))


def set_state(db: sqlite_utils.Database, number: str, to_state: str, reason: str, source: str,
              *, now: datetime, **fields: Any) -> bool:
    """Move ``number`` to ``to_state`` and log it; returns False when it already was there."""
    assert to_state in STATES, to_state
    row = get_number(db, number)
    if row is None:
        raise KeyError(number)
    if row["state"] == to_state and not fields:
        return False
    stamp = iso(now)
    with transaction(db):
        changed = row["state"] != to_state
        update = dict(fields)
        if changed:
            update.update(state=to_state, state_reason=reason, state_changed_at=stamp)
            db.table("number_events").insert({
                "number": number, "at": stamp, "from_state": row["state"], "to_state": to_state,
                "reason": reason, "source": source})
        if update:
            db.table("numbers").update(number, update)
    return changed


def sync_pool(db: sqlite_utils.Database, pool: PoolConfig, *,
              now: datetime | None = None) -> list[str]:
    """Bring the numbers table in line with numbers.yaml; returns what changed (for the log)."""
    ensure_schema(db)
    moment = utc(now)
    stamp = iso(moment)
    changes: list[str] = []
    configured = {n.number: n for n in pool.numbers}
    with transaction(db):
        for n in pool.numbers:
            fields = {"pool": n.pool, "trunk": n.trunk, "region": n.region, "city": n.city,
                      "daily_cap": n.daily_cap, "verified": int(n.verified), "in_config": 1}
            row = get_number(db, n.number)
            if row is None:
                state = RETIRED if n.retired else ACTIVE
                db.table("numbers").insert({"number": n.number, **fields, "state": state,
                                      "state_reason": "added from numbers.yaml",
                                      "state_changed_at": stamp, "created_at": stamp})
                db.table("number_events").insert({
                    "number": n.number, "at": stamp, "from_state": None, "to_state": state,
                    "reason": "added from numbers.yaml", "source": "config"})
                changes.append(f"{n.number}: added ({state})")
                continue
            if any(row.get(k) != v for k, v in fields.items()):
                db.table("numbers").update(n.number, fields)
            if n.retired and row["state"] != RETIRED:
                set_state(db, n.number, RETIRED, "retired in numbers.yaml", "config", now=moment)
                changes.append(f"{n.number}: retired")
            elif not n.retired and row["state"] == RETIRED:
                # Back in service: it must earn rotation like a flagged number would.
                set_state(db, n.number, COOLING_DOWN, "re-enabled in numbers.yaml", "config",
                          now=moment, cooldown_until=stamp, health_since=stamp)
                changes.append(f"{n.number}: re-enabled")
        for row in all_numbers(db):
            if row["number"] not in configured and row["in_config"]:
                db.table("numbers").update(row["number"], {"in_config": 0})
                set_state(db, row["number"], RETIRED, "removed from numbers.yaml", "config",
                          now=moment)
                changes.append(f"{row['number']}: removed from config, retired")
    return changes


# --- flags ---------------------------------------------------------------------------------------

def add_flag(db: sqlite_utils.Database, number: str, reason: str, source: str, *,
             now: datetime | None = None, expires_at: datetime | None = None) -> int:
    """Record a flag and take the number out of rotation at once; returns the flag id.

    Flags for numbers not (yet) in the pool are kept too: a feed may know a number before we do.
    """
    ensure_schema(db)
    moment = utc(now)
    with transaction(db):
        flag_id = db.table("number_flags").insert({
            "number": number, "source": source, "reason": reason, "created_at": iso(moment),
            "expires_at": iso(expires_at) if expires_at else None,
        }).last_pk
        flag_out(db, number, f"{source} flag: {reason}", source, now=moment)
    assert flag_id is not None
    return int(flag_id)


def flag_out(db: sqlite_utils.Database, number: str, reason: str, source: str, *,
             now: datetime) -> bool:
    """Take a number out of rotation; from now on only fresh calls are judged.

    The cool-down starts when the cause is gone (see ivr.callerid.health), so a flag that lasts
    a week is followed by a full cool-down, not released the moment it is lifted.
    """
    row = get_number(db, number)
    if row is None or row["state"] in (FLAGGED, RETIRED):
        return False
    stamp = iso(now)
    return set_state(db, number, FLAGGED, reason, source, now=now, flagged_at=stamp,
                     health_since=stamp, cooldown_until=None)


def clear_flags(db: sqlite_utils.Database, number: str, reason: str, *,
                now: datetime | None = None, source: str | None = None) -> int:
    """Clear the active flags of ``number`` (only ``source``'s if given); returns how many."""
    ensure_schema(db)
    where = "number = ? and cleared_at is null"
    args: list[Any] = [number]
    if source is not None:
        where += " and source = ?"
        args.append(source)
    with transaction(db):
        cur = db.execute(
            f"update number_flags set cleared_at = ?, cleared_reason = ? where {where}",
            [iso(utc(now)), reason, *args])
    return int(cur.rowcount)


def active_flags(db: sqlite_utils.Database, number: str | None = None, *,
                 now: datetime | None = None) -> list[dict[str, Any]]:
    ensure_schema(db)
    stamp = iso(utc(now))
    where = "cleared_at is null and (expires_at is null or expires_at > ?)"
    args: list[Any] = [stamp]
    if number is not None:
        where += " and number = ?"
        args.append(number)
    return list(db.table("number_flags").rows_where(where, args, order_by="id"))


def events(db: sqlite_utils.Database, number: str | None = None,
           limit: int = 50) -> list[dict[str, Any]]:
    ensure_schema(db)
    if number is None:
        return list(db.table("number_events").rows_where(order_by="id desc", limit=limit))
    return list(db.table("number_events").rows_where("number = ?", [number], order_by="id desc",
                                               limit=limit))


def save_metrics(db: sqlite_utils.Database, number: str, score: float, metrics: dict[str, Any],
                 *, now: datetime) -> None:
    db.table("numbers").update(number, {"score": score, "last_check_at": iso(now),
                                  "metrics": json.dumps(metrics, ensure_ascii=False)})


# --- daily usage ---------------------------------------------------------------------------------

def local_day(now: datetime, tz: tzinfo) -> tuple[str, datetime]:
    """The pool's calendar day (e.g. '2025-03-01' in Asia/Shanghai) and its start in UTC."""
    local = utc(now).astimezone(tz)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return local.date().isoformat(), utc(start)


def used_today(db: sqlite_utils.Database, number: str, tz: tzinfo, now: datetime) -> int:
    """Calls charged to today's cap: picks made through rotation, or attempts the store saw with
    this caller ID (calls placed by hand), whichever is higher."""
    day, start = local_day(now, tz)
    row = db.execute("select picks from number_usage where number = ? and day = ?",
                     [number, day]).fetchone()
    picks = int(row[0]) if row else 0
    dialed = db.execute("select count(*) from attempts where caller_id = ? and started_at >= ?",
                        [number, iso(start)]).fetchone()[0]
    return max(picks, int(dialed))


def charge(db: sqlite_utils.Database, number: str, tz: tzinfo, now: datetime) -> None:
    day, _ = local_day(now, tz)
    db.execute(
        "insert into number_usage (number, day, picks) values (?, ?, 1) "
        "on conflict(number, day) do update set picks = picks + 1",
        [number, day],
    )
