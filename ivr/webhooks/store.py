"""The ``webhooks`` table: one row per delivery, unique by its dedup key.

States: ``queued`` (waiting, maybe until ``next_attempt_at``) -> ``delivering`` (claimed, committed
before the POST) -> ``delivered``. ``failed``: a permanent refusal (4xx other than 408/429) or out
of tries; :func:`requeue` puts it back. A row found ``delivering`` after a crash is queued again
and re-sent with the same idempotency key (the receiver drops the repeat).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import sqlite_utils

from ivr.store import iso, register_schema

QUEUED, DELIVERING, DELIVERED, FAILED = "queued", "delivering", "delivered", "failed"
STATES = (QUEUED, DELIVERING, DELIVERED, FAILED)
# Endpoints the settings name (service.webhooks.<endpoint>); a delivery may carry its own URL.
CALL_FINISHED, FULFILMENT = "call_finished", "fulfilment"


@register_schema
def webhooks_schema(db: sqlite_utils.Database) -> None:
    db.table("webhooks").create(
        {
            "id": int,
            "event": str,  # call.finished | remedy.accepted | offer.accepted | ...
            "endpoint": str,  # settings name (call_finished | fulfilment) ...
            "url": str,  # ... or an explicit URL
            "dedup_key": str,
            "idempotency_key": str,  # sent as the Idempotency-Key header
            "payload": str,  # JSON body, fixed when queued
            "state": str,
            "tries": int,
            "next_attempt_at": str,
            "last_status": int,  # HTTP status of the last try (NULL: no answer)
            "last_error": str,
            "campaign_id": str,
            "call_id": str,
            "attempt_id": int,
            "created_at": str,
            "updated_at": str,
            "claimed_at": str,
            "delivered_at": str,
        },
        pk="id",
        not_null={"dedup_key", "payload", "state", "event"},
        defaults={"tries": 0},
        if_not_exists=True,
    )
    db.table("webhooks").create_index(["dedup_key"], unique=True, if_not_exists=True)
    db.table("webhooks").create_index(["state", "next_attempt_at"], if_not_exists=True)
    db.table("webhooks").create_index(["call_id"], if_not_exists=True)
    db.table("webhooks").create_index(["attempt_id"], if_not_exists=True)


def idempotency_key(dedup_key: str) -> str:
    return "ivr-wh-" + hashlib.sha256(dedup_key.encode("utf-8")).hexdigest()[:32]


def enqueue(db: sqlite_utils.Database, event: str, payload: dict[str, Any], *, dedup_key: str,
            endpoint: str | None = None, url: str | None = None,
            campaign_id: str | None = None, call_id: str | None = None,
            attempt_id: int | None = None, now: datetime | None = None) -> tuple[int, bool]:
    """Queue a delivery; returns (id, created). The same ``dedup_key`` again returns the first
    delivery's id and queues nothing."""
    if not dedup_key.strip():
        raise ValueError("dedup_key must not be empty")
    if not (endpoint or url):
        raise ValueError("a delivery needs an endpoint name or a URL")
    stamp = iso(now or datetime.now(UTC))
    key = idempotency_key(dedup_key)
    body = {"event": event, "id": key, "created_at": stamp, "data": payload}
    cur = db.execute(
        "INSERT INTO webhooks (event, endpoint, url, dedup_key, idempotency_key, payload, state, "
        "tries, campaign_id, call_id, attempt_id, created_at, updated_at) "
        "VALUES (?,?,?,?,?,?,?,0,?,?,?,?,?) ON CONFLICT(dedup_key) DO NOTHING",
        [event, endpoint, url, dedup_key, key, json.dumps(body, ensure_ascii=False), QUEUED,
         campaign_id, call_id, attempt_id, stamp, stamp])
    created = cur.rowcount == 1
    row = db.execute("SELECT id FROM webhooks WHERE dedup_key = ?", [dedup_key]).fetchone()
    return int(row[0]), created


def _rows(db: sqlite_utils.Database, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    return [dict(r) for r in db.query(sql, params)]


def deliveries(db: sqlite_utils.Database, *, call_id: str | None = None,
               campaign_id: str | None = None, state: str | None = None,
               limit: int = 100) -> list[dict[str, Any]]:
    """Deliveries, newest first, without their payloads."""
    where, params = [], []
    for col, value in (("call_id", call_id), ("campaign_id", campaign_id), ("state", state)):
        if value is not None:
            where.append(f"{col} = ?")
            params.append(value)
    sql = ("SELECT id, event, endpoint, state, tries, last_status, last_error, next_attempt_at, "
           "call_id, attempt_id, campaign_id, idempotency_key, created_at, delivered_at "
           "FROM webhooks")
    if where:
        sql += " WHERE " + " AND ".join(where)
    return _rows(db, sql + " ORDER BY id DESC LIMIT ?", [*params, limit])


def counts(db: sqlite_utils.Database, campaign_id: str | None = None) -> dict[str, dict[str, int]]:
    """event -> state -> deliveries."""
    sql = "SELECT event, state, count(*) FROM webhooks"
    params: list[Any] = []
    if campaign_id is not None:
        sql += " WHERE campaign_id = ?"
        params.append(campaign_id)
    out: dict[str, dict[str, int]] = {}
    for event, state, n in db.execute(sql + " GROUP BY 1, 2", params):
        out.setdefault(event, {})[state] = int(n)
    return out


def requeue(db: sqlite_utils.Database, ids: list[int] | None = None,
            now: datetime | None = None) -> int:
    """Failed deliveries back in the queue with fresh tries (never a delivered one)."""
    stamp = iso(now or datetime.now(UTC))
    sql = ("UPDATE webhooks SET state = ?, tries = 0, next_attempt_at = NULL, updated_at = ? "
           "WHERE state = ?")
    params: list[Any] = [QUEUED, stamp, FAILED]
    if ids:
        sql += f" AND id IN ({','.join('?' * len(ids))})"
        params += ids
    return int(db.execute(sql, params).rowcount)
