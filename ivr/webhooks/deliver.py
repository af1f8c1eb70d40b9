"""Delivery: POST due webhooks, signed, one try per claim, retried with backoff, never dropped.

Every request carries ``Idempotency-Key`` (the same on every try of one delivery),
``X-Ivr-Event``, ``X-Ivr-Timestamp`` and ``X-Ivr-Signature: sha256=<hex>``, the HMAC-SHA256 of
``<timestamp>.<body>`` with the shared secret (:func:`signature`; receivers check it with
:func:`verify`). 2xx is delivered; 408, 429, 5xx and network errors are retried after
``backoff_s * factor**(tries-1)`` (capped); any other status is a permanent refusal (``failed``,
with the status and the start of the answer, until an operator re-queues it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlite_utils

from ivr.store import iso
from ivr.webhooks.store import DELIVERED, DELIVERING, FAILED, QUEUED

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Ivr-Signature"
TIMESTAMP_HEADER = "X-Ivr-Timestamp"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body,
                   hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, headers: Mapping[str, str], body: bytes, *,
           tolerance_s: float = 300.0, now: float | None = None) -> bool:
    """For receivers: the signature is ours and the timestamp is recent (replays rejected)."""
    lower = {k.lower(): v for k, v in headers.items()}
    ts = lower.get(TIMESTAMP_HEADER.lower(), "")
    sig = lower.get(SIGNATURE_HEADER.lower(), "")
    try:
        age = abs((now if now is not None else time.time()) - float(ts))
    except ValueError:
        return False
    return age <= tolerance_s and hmac.compare_digest(sig, signature(secret, ts, body))


@dataclass(frozen=True)
class RetryPolicy:
    max_tries: int = 30
    backoff_s: float = 5.0
    factor: float = 2.0
    max_backoff_s: float = 900.0

    def delay_s(self, tries: int) -> float:
        """Wait after ``tries`` failed tries."""
        return float(min(self.max_backoff_s, self.backoff_s * self.factor ** max(0, tries - 1)))


class WebhookDeliverer:
    """Delivers due webhooks; ``await run()`` until :meth:`stop`, :meth:`wake` after a new one.

    ``endpoints`` maps endpoint names to URLs; a delivery whose endpoint is not configured waits
    (queued) until it is. Deliveries are sent one at a time in id order, so a receiver sees them
    in the order they were made.
    """

    def __init__(self, db: sqlite_utils.Database, secret: str, endpoints: Mapping[str, str],
                 *, retry: RetryPolicy | None = None, timeout_s: float = 10.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 idle_s: float = 1.0, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.db = db
        self.secret = secret
        self.endpoints = {k: v for k, v in endpoints.items() if v}
        self.retry = retry or RetryPolicy()
        self.timeout_s = timeout_s
        self.clock = clock
        self.idle_s = idle_s
        self.client = httpx.AsyncClient(timeout=timeout_s, transport=transport,
                                        follow_redirects=False, trust_env=False)
        self._wake = asyncio.Event()
        self._stop = False

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop = True
        self._wake.set()

    async def run(self) -> None:
        try:
            while not self._stop:
                try:
                    sent = await self.deliver_due()
                except Exception:  # noqa: BLE001 - a bad row or a locked db: try again soon
                    log.exception("webhook delivery pass failed")
                    sent = 0
                if sent:
                    continue
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._idle())
        finally:
            await self.client.aclose()

    def _idle(self) -> float:
        row = self.db.execute("SELECT min(next_attempt_at) FROM webhooks WHERE state = ?",
                              [QUEUED]).fetchone()
        if not row or not row[0]:
            return self.idle_s
        due = datetime.fromisoformat(row[0].replace("Z", "+00:00"))
        return max(0.05, min(self.idle_s, (due - self.clock()).total_seconds()))

    def recover(self) -> int:
        """Deliveries left 'delivering' by a crash go back to the queue (same key)."""
        cutoff = iso(self.clock() - timedelta(seconds=self.timeout_s * 3))
        return int(self.db.execute(
            "UPDATE webhooks SET state = ?, last_error = 'interrupted mid-delivery; re-sent with "
            "the same idempotency key', updated_at = ? WHERE state = ? AND "
            "(claimed_at IS NULL OR claimed_at <= ?)",
            [QUEUED, iso(self.clock()), DELIVERING, cutoff]).rowcount)

    def _target(self, row: Mapping[str, Any]) -> str:
        return str(row["url"] or self.endpoints.get(row["endpoint"] or "", ""))

    def _backing_off(self) -> set[str]:
        """Receivers whose last try failed and whose retry is not due yet: the other deliveries
        to them wait too (one probe per backoff period, not a storm against a dead receiver)."""
        rows = self.db.query(
            "SELECT endpoint, url FROM webhooks WHERE state = ? AND tries > 0 AND "
            "next_attempt_at > ?", [QUEUED, iso(self.clock())])
        return {self._target(r) for r in rows}

    async def deliver_due(self, limit: int = 50) -> int:
        """One pass over due deliveries, oldest first; returns how many were tried."""
        self.recover()
        blocked = self._backing_off()
        due = self.db.query(
            "SELECT * FROM webhooks WHERE state = ? AND (next_attempt_at IS NULL OR "
            "next_attempt_at <= ?) ORDER BY id LIMIT ?", [QUEUED, iso(self.clock()), limit])
        tried = 0
        for row in list(due):
            target = self._target(row)
            if not target or target in blocked:
                continue  # not configured (waits until it is), or backing off
            tried += 1
            if not await self._deliver(row, target):
                blocked.add(target)
        return tried

    async def _deliver(self, row: dict[str, Any], url: str) -> bool:
        now = self.clock()
        stamp = iso(now)
        claimed = self.db.execute(
            "UPDATE webhooks SET state = ?, tries = tries + 1, claimed_at = ?, updated_at = ? "
            "WHERE id = ? AND state = ?", [DELIVERING, stamp, stamp, row["id"], QUEUED]).rowcount
        if not claimed:
            return True
        tries = int(row["tries"] or 0) + 1
        body = row["payload"].encode("utf-8")
        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "Idempotency-Key": row["idempotency_key"], "X-Ivr-Event": row["event"],
                   "X-Ivr-Delivery": str(row["id"]), TIMESTAMP_HEADER: ts,
                   SIGNATURE_HEADER: signature(self.secret, ts, body),
                   "User-Agent": "ivr-webhooks/1"}
        status: int | None = None
        try:
            resp = await self.client.post(url, content=body, headers=headers)
            status = resp.status_code
            if 200 <= status < 300:
                self._set(row["id"], state=DELIVERED, last_status=status, last_error=None,
                          delivered_at=iso(self.clock()), next_attempt_at=None)
                log.info("webhook %s %s delivered (try %d)", row["id"], row["event"], tries,
                         extra={"event": "webhook.delivered", "webhook_id": row["id"],
                                "webhook_event": row["event"], "tries": tries})
                return True
            error = f"HTTP {status}: {resp.text[:200]}"
            retryable = status in (408, 429) or status >= 500
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
            retryable = True
        if retryable and tries < self.retry.max_tries:
            wait = self.retry.delay_s(tries)
            self._set(row["id"], state=QUEUED, last_status=status, last_error=error,
                      next_attempt_at=iso(self.clock() + timedelta(seconds=wait)))
            log.warning("webhook %s %s: try %d failed (%s); next in %.0f s", row["id"],
                        row["event"], tries, error, wait)
        else:
            why = error if not retryable else f"{error} (gave up after {tries} tries)"
            self._set(row["id"], state=FAILED, last_status=status, last_error=why)
            log.error("webhook %s %s failed: %s", row["id"], row["event"], why)
        return False

    def _set(self, webhook_id: int, **fields: Any) -> None:
        fields["updated_at"] = iso(self.clock())
        cols = ", ".join(f"{k} = ?" for k in fields)
        self.db.execute(f"UPDATE webhooks SET {cols} WHERE id = ? AND state = ?",
                        [*fields.values(), webhook_id, DELIVERING])
