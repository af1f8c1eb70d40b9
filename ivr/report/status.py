"""``ivr status``: what an admin checks first: running campaigns, live calls, the caller-ID pool,
the outbox and the latest errors. Tables owned by other packages are read defensively (a table or
column that does not exist yet is simply left out)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlite_utils

from ivr.report.model import mask_phone


def collect_status(db: sqlite_utils.Database, *, now: datetime | None = None,
                   errors: int = 10) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    return {
        "generated_at": now.astimezone(UTC).isoformat(timespec="seconds"),
        "campaigns": _campaigns(db),
        "live_calls": _live_calls(db, now),
        "number_pool": _number_pool(db),
        "outbox": _outbox(db),
        "errors": _errors(db, errors),
    }


def _rows(db: sqlite_utils.Database, sql: str, params: list[Any] | None = None
          ) -> list[dict[str, Any]]:
    cur = db.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _campaigns(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    rows = _rows(db, "SELECT id, name, status, starts_at, ends_at FROM campaigns "
                     "WHERE status = 'running' ORDER BY id")
    for row in rows:
        states = dict(db.execute(
            "SELECT coalesce(state, '?'), count(*) FROM contacts WHERE campaign_id = ? "
            "GROUP BY 1", [row["id"]]).fetchall())
        row["contacts"] = sum(states.values())
        row["contact_states"] = states
        att = db.execute(
            "SELECT count(*), coalesce(sum(outcome = 'answered'), 0) FROM attempts "
            "WHERE campaign_id = ?", [row["id"]]).fetchone()
        row["attempts"], row["answered"] = int(att[0]), int(att[1])
    return rows


def _live_calls(db: sqlite_utils.Database, now: datetime) -> list[dict[str, Any]]:
    rows = _rows(db, "SELECT id, phone, campaign_id, current_node, caller_id, started_at "
                     "FROM calls WHERE state = 'in_progress' ORDER BY started_at")
    for row in rows:
        row["phone"] = mask_phone(row["phone"] or "")
        row["age_s"] = _age(row["started_at"], now)
    return rows


def _age(stamp: str | None, now: datetime) -> int | None:
    if not stamp:
        return None
    try:
        ts = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return int((now - ts).total_seconds())


def _number_pool(db: sqlite_utils.Database) -> dict[str, Any] | None:
    """Summary of the caller-ID pool (another package's ``numbers`` table), if it exists."""
    if "numbers" not in db.table_names():
        return None
    cols = set(db["numbers"].columns_dict)
    if "number" not in cols:
        return None
    state = "state" if "state" in cols else "NULL"
    score = "score" if "score" in cols else "NULL"
    total = db.execute("SELECT count(*) FROM numbers").fetchone()[0]
    by_state = dict(db.execute(
        f"SELECT coalesce({state}, 'unknown'), count(*) FROM numbers GROUP BY 1").fetchall())
    avg = db.execute(f"SELECT avg({score}), min({score}) FROM numbers").fetchone()
    worst = _rows(db, f"SELECT number, {state} AS state, {score} AS score FROM numbers "
                      f"WHERE {score} IS NOT NULL ORDER BY {score} ASC, number LIMIT 5")
    return {"total": int(total), "by_state": by_state,
            "avg_score": None if avg[0] is None else round(float(avg[0]), 3),
            "min_score": avg[1], "lowest": worst}


def _outbox(db: sqlite_utils.Database) -> dict[str, int] | None:
    if "outbox" not in db.table_names():
        return None
    return dict(db.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall())


def _errors(db: sqlite_utils.Database, limit: int) -> list[dict[str, Any]]:
    calls = _rows(db, """
        SELECT coalesce(ended_at, started_at) AS at, 'call' AS source, id, campaign_id,
               phone, coalesce(error, state) AS detail
        FROM calls WHERE (error IS NOT NULL AND error != '') OR state IN ('error', 'failed')
        ORDER BY at DESC LIMIT ?""", [limit])
    attempts = _rows(db, """
        SELECT coalesce(ended_at, started_at) AS at, 'attempt' AS source,
               CAST(id AS TEXT) AS id, campaign_id, phone,
               'failed: SIP ' || coalesce(sip_code, '-') || ', Q.850 '
               || coalesce(q850_cause, '-') AS detail
        FROM attempts WHERE outcome = 'failed' ORDER BY at DESC LIMIT ?""", [limit])
    merged = sorted(calls + attempts, key=lambda r: r["at"] or "", reverse=True)[:limit]
    for row in merged:
        row["phone"] = mask_phone(row["phone"] or "")
    return merged
