"""Delivery: lint, send, retry with backoff; nothing is sent twice, even across a crash.

Each message is claimed by one committed UPDATE (``queued`` -> ``sending``, tries + 1) before the
sender is called, and marked ``sent`` right after. A message still ``sending`` once its lease has
run out was interrupted (crash, kill) and is settled before anything new is sent: asked of the
sender's ``status`` when it has one, re-sent with the same idempotency key when the sender is
idempotent, otherwise parked as ``uncertain`` for an operator: never sent blindly a second time.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlite_utils

from ivr.outbox.config import OutboxConfig, load_outbox_config
from ivr.outbox.lint import lint
from ivr.outbox.senders import OutboundMessage, SendError
from ivr.outbox.store import BLOCKED, FAILED, QUEUED, SENDING, SENT, UNCERTAIN, iso
from ivr.phone import InvalidNumber, parse_e164
from ivr.store import is_dnc

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]  # (done, total)


async def deliver(db: sqlite_utils.Database, sender: Any, *, now: datetime | None = None,
                  config: OutboxConfig | None = None, limit: int | None = None,
                  progress: Progress | None = None) -> dict[str, int]:
    """Send every due message once. Returns counts: sent, retry (failed, will be retried),
    failed, blocked, recovered (interrupted sends settled as sent), requeued, uncertain."""
    now = now or datetime.now(UTC)
    config = config or load_outbox_config()
    counts: Counter[str] = Counter()
    await _recover(db, sender, now, config, counts)
    sql = ("SELECT * FROM outbox WHERE state = ? AND (next_attempt_at IS NULL "
           "OR next_attempt_at <= ?) ORDER BY id")
    params: list[Any] = [QUEUED, iso(now)]
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    cur = db.execute(sql, params)
    names = [d[0] for d in cur.description]
    due = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    for done, row in enumerate(due, 1):
        counts[await _deliver_one(db, sender, row, now, config)] += 1
        if progress:
            progress(done, len(due))
    return {k: counts.get(k, 0) for k in
            ("sent", "retry", "failed", "blocked", "recovered", "requeued", "uncertain")}


async def _deliver_one(db: sqlite_utils.Database, sender: Any, row: dict[str, Any],
                       now: datetime, config: OutboxConfig) -> str:
    stamp = iso(now)
    problem = _blocking_problem(db, row, config)
    if problem:
        _set(db, row["id"], QUEUED, state=BLOCKED, last_error=problem, updated_at=stamp)
        return "blocked"
    claimed = db.execute(
        "UPDATE outbox SET state = ?, tries = tries + 1, claimed_at = ?, updated_at = ?, "
        "sender = ? WHERE id = ? AND state = ?",
        [SENDING, stamp, stamp, getattr(sender, "name", type(sender).__name__), row["id"],
         QUEUED]).rowcount
    if not claimed:
        return "skipped"  # another worker took it
    tries = int(row["tries"] or 0) + 1
    message = OutboundMessage(id=row["id"], phone=row["phone"], text=row["text"],
                              kind=row["kind"] or "", idempotency_key=row["idempotency_key"],
                              campaign_id=row["campaign_id"])
    try:
        result = await sender.send(message)
    except Exception as exc:  # noqa: BLE001 - any sender failure is recorded, never fatal
        error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, SendError) else str(exc)
        retryable = getattr(exc, "retryable", True)
        if retryable and tries < config.retry.max_tries:
            wait = timedelta(seconds=config.retry.delay_s(tries))
            _set(db, row["id"], SENDING, state=QUEUED, last_error=error,
                 next_attempt_at=iso(now + wait), updated_at=stamp)
            log.warning("outbox %s: try %d failed (%s); next at %s", row["id"], tries, error,
                        iso(now + wait))
            return "retry"
        why = error if not retryable else f"{error} (gave up after {tries} tries)"
        _set(db, row["id"], SENDING, state=FAILED, last_error=why, updated_at=stamp)
        return "failed"
    _set(db, row["id"], SENDING, state=SENT, sent_at=iso(now), receipt=result.receipt or "",
         last_error=None, updated_at=stamp)
    return "sent"


def _blocking_problem(db: sqlite_utils.Database, row: dict[str, Any],
                      config: OutboxConfig) -> str | None:
    try:
        phone = parse_e164(row["phone"])
    except InvalidNumber as exc:
        return str(exc)
    if is_dnc(db, phone):
        return "the number is on the do-not-call list"
    result = lint(row["text"], config)
    if not result.ok:
        return "lint: " + "; ".join(f"{i.code}: {i.message}" for i in result.errors)
    return None


async def _recover(db: sqlite_utils.Database, sender: Any, now: datetime,
                   config: OutboxConfig, counts: Counter[str]) -> None:
    cutoff = iso(now - timedelta(seconds=config.sending_lease_s))
    stale = db.execute("SELECT id, idempotency_key FROM outbox WHERE state = ? "
                       "AND (claimed_at IS NULL OR claimed_at <= ?) ORDER BY id",
                       [SENDING, cutoff]).fetchall()
    status = getattr(sender, "status", None)
    stamp = iso(now)
    for message_id, key in stale:
        known: bool | None = None
        if status is not None:
            try:
                known = await status(key)
            except Exception as exc:  # noqa: BLE001 - cannot tell; fall through
                log.warning("outbox %s: status lookup failed: %s", message_id, exc)
        if known is True:
            _set(db, message_id, SENDING, state=SENT, sent_at=stamp, updated_at=stamp,
                 last_error="interrupted after sending; confirmed by the sender's status")
            counts["recovered"] += 1
        elif known is False or getattr(sender, "idempotent", False):
            why = ("interrupted before the sender got it" if known is False else
                   "interrupted mid-send; re-sent with the same idempotency key")
            _set(db, message_id, SENDING, state=QUEUED, next_attempt_at=None,
                 last_error=why, updated_at=stamp)
            counts["requeued"] += 1
        else:
            _set(db, message_id, SENDING, state=UNCERTAIN, updated_at=stamp,
                 last_error="interrupted mid-send and the sender cannot tell whether it went "
                            "out; check the gateway, then `ivr outbox retry --uncertain ID`")
            counts["uncertain"] += 1


def _set(db: sqlite_utils.Database, message_id: int, expected_state: str,
         **fields: Any) -> None:
    """Update one message only if it is still in ``expected_state`` (committed at once)."""
    cols = ", ".join(f"{k} = ?" for k in fields)
    db.execute(f"UPDATE outbox SET {cols} WHERE id = ? AND state = ?",
               [*fields.values(), message_id, expected_state])
