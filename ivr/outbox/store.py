"""The outbox table: one row per follow-up message, unique by its dedup key.

States: ``queued`` (waiting, maybe until ``next_attempt_at``) -> ``sending`` (committed before the
sender is called) -> ``sent`` (committed after). ``failed``: permanent error or out of tries.
``blocked``: lint error, do-not-call number or bad number (fix, then ``ivr outbox retry``).
``uncertain``: found ``sending`` after a crash with a sender that can neither look the message
up nor de-duplicate it; it may have gone out, so it is never re-sent without an operator.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import sqlite_utils

from ivr.phone import parse_e164
from ivr.store import iso, register_schema

QUEUED, SENDING, SENT, FAILED, BLOCKED, UNCERTAIN = (
    "queued", "sending", "sent", "failed", "blocked", "uncertain")
STATES = (QUEUED, SENDING, SENT, FAILED, BLOCKED, UNCERTAIN)


@register_schema
def outbox_schema(db: sqlite_utils.Database) -> None:
    db.table("outbox").create(
        {
            "id": int,
            "dedup_key": str,  # the same key never produces a second message
            "idempotency_key": str,  # handed to the sender / gateway (ASCII, derived from dedup)
            "phone": str,  # E.164
            "text": str,
            "kind": str,  # remedy_refund | remedy_voucher | h5 | region_message | ...
            "campaign_id": str,
            "contact_id": int,
            "state": str,
            "tries": int,
            "next_attempt_at": str,
            "last_error": str,
            "sender": str,
            "receipt": str,  # the sender's message id
            "created_at": str,
            "updated_at": str,
            "claimed_at": str,  # when it went 'sending'
            "sent_at": str,
        },
        pk="id",
        not_null={"dedup_key", "phone", "text", "state"},
        defaults={"tries": 0},
        if_not_exists=True,
    )
    db.table("outbox").create_index(["dedup_key"], unique=True, if_not_exists=True)
    db.table("outbox").create_index(["state", "next_attempt_at"], if_not_exists=True)


def idempotency_key(dedup_key: str) -> str:
    return "ivr-" + hashlib.sha256(dedup_key.encode("utf-8")).hexdigest()[:32]


def enqueue(db: sqlite_utils.Database, phone: str, text: str, *, kind: str,
            campaign_id: str | None = None, contact_id: int | None = None,
            dedup_key: str, now: datetime | None = None) -> int:
    """Queue a message; returns its id. A second call with the same ``dedup_key`` returns the
    existing message's id and queues nothing. Raises ``InvalidNumber`` for a bad phone number and
    ``ValueError`` for an empty dedup key or text."""
    if not dedup_key or not dedup_key.strip():
        raise ValueError("dedup_key must not be empty")
    if not text or not text.strip():
        raise ValueError("message text must not be empty")
    e164 = parse_e164(phone)
    stamp = iso(now or datetime.now(UTC))
    db.execute(
        "INSERT INTO outbox (dedup_key, idempotency_key, phone, text, kind, campaign_id, "
        "contact_id, state, tries, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,0,?,?) "
        "ON CONFLICT(dedup_key) DO NOTHING",
        [dedup_key, idempotency_key(dedup_key), e164, text, kind, campaign_id, contact_id,
         QUEUED, stamp, stamp])
    row = db.execute("SELECT id FROM outbox WHERE dedup_key = ?", [dedup_key]).fetchone()
    return int(row[0])


def get(db: sqlite_utils.Database, message_id: int) -> dict[str, Any]:
    return dict(db.table("outbox").get(message_id))


def list_messages(db: sqlite_utils.Database, *, state: str | None = None,
                  campaign_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    where, params = [], []
    if state:
        where.append("state = ?")
        params.append(state)
    if campaign_id:
        where.append("campaign_id = ?")
        params.append(campaign_id)
    sql = "SELECT * FROM outbox"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    cur = db.execute(sql, [*params, limit])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def counts_by_state(db: sqlite_utils.Database) -> dict[str, int]:
    return {s: int(n) for s, n in db.execute(
        "SELECT state, count(*) FROM outbox GROUP BY state ORDER BY state")}


def requeue(db: sqlite_utils.Database, *, ids: list[int] | None = None,
            states: tuple[str, ...] = (FAILED,), now: datetime | None = None) -> int:
    """Put failed/blocked/uncertain messages back in the queue with fresh tries; never a sent one.
    Returns how many were requeued."""
    allowed = tuple(s for s in states if s in (FAILED, BLOCKED, UNCERTAIN))
    if not allowed:
        return 0
    stamp = iso(now or datetime.now(UTC))
    sql = (f"UPDATE outbox SET state = ?, tries = 0, next_attempt_at = NULL, updated_at = ? "
           f"WHERE state IN ({','.join('?' * len(allowed))})")
    params: list[Any] = [QUEUED, stamp, *allowed]
    if ids:
        sql += f" AND id IN ({','.join('?' * len(ids))})"
        params += ids
    return db.execute(sql, params).rowcount
