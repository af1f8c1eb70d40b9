"""Per-call results: one summary log line per ended attempt, the call-finished webhook, the
remedy hand-off to the platform's fulfilment endpoint, and the rows the API and console show.

The producer scans the ``attempts`` table instead of hooking into the dialer, so what a crash or a
``kill -9`` interrupted is picked up on the next start: every ended attempt is summarised once
(``call_summaries``), and its webhooks are queued with dedup keys (never twice). An answered
attempt waits until the survey's call row is closed (or ``settle_s`` has passed), so the webhook
carries the answers.
"""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlite_utils

from ivr.report.model import mask_phone
from ivr.store import iso, now_iso, register_schema
from ivr.webhooks.store import CALL_FINISHED, FULFILMENT, deliveries, enqueue

log = logging.getLogger("ivr.calls")
CALL_FINISHED_EVENT = "call.finished"
REMEDY_EVENT = "remedy.accepted"
_KV_LOW = "results_low_attempt_id"
_ANSWER_COLS = ("seq", "node", "intent", "input_mode", "dtmf", "transcript", "confidence",
                "confirmed", "tries", "answered_at")
_CALL_COLS = ("id", "state", "outcome", "satisfied", "remedy_offered", "remedy_accepted",
              "reason", "would_buy_again", "callback_at", "hangup_cause", "voice", "segment",
              "script", "language", "answered_at", "ended_at")


@register_schema
def results_schema(db: sqlite_utils.Database) -> None:
    db.table("call_summaries").create(
        {"attempt_id": int, "call_id": str, "summarized_at": str}, pk="attempt_id",
        if_not_exists=True)
    db.table("service_state").create({"key": str, "value": str}, pk="key", if_not_exists=True)


def kv_get(db: sqlite_utils.Database, key: str) -> str | None:
    row = db.execute("SELECT value FROM service_state WHERE key = ?", [key]).fetchone()
    return None if row is None else str(row[0])


def kv_set(db: sqlite_utils.Database, key: str, value: str) -> None:
    db.execute("INSERT INTO service_state (key, value) VALUES (?, ?) ON CONFLICT(key) DO "
               "UPDATE SET value = excluded.value", [key, value])


def start_watermark(db: sqlite_utils.Database) -> int:
    """Attempts up to this id were there before the service first ran: never webhooked."""
    low = kv_get(db, _KV_LOW)
    if low is None:
        top = db.execute("SELECT coalesce(max(id), 0) FROM attempts").fetchone()[0]
        kv_set(db, _KV_LOW, str(top))
        return int(top)
    return int(low)


def call_of(db: sqlite_utils.Database, attempt: dict[str, Any]) -> dict[str, Any] | None:
    rows = list(db.query(
        "SELECT * FROM calls WHERE attempt_id = ? OR (? IS NOT NULL AND id = ?) "
        "ORDER BY started_at DESC LIMIT 1",
        [attempt["id"], attempt.get("uniqueid"), attempt.get("uniqueid")]))
    return rows[0] if rows else None


def answers_of(db: sqlite_utils.Database, call_id: str) -> list[dict[str, Any]]:
    return [{k: r.get(k) for k in _ANSWER_COLS} for r in db.query(
        "SELECT * FROM answers WHERE call_id = ? ORDER BY seq", [call_id])]


def result_payload(db: sqlite_utils.Database, attempt: dict[str, Any],
                   call: dict[str, Any] | None) -> dict[str, Any]:
    """What the platform gets when an attempt ends (the call-finished webhook body's data)."""
    contact = next(iter(db.query("SELECT state, final_outcome, next_attempt_at, order_id, "
                                 "attempts FROM contacts WHERE id = ?",
                                 [attempt["contact_id"]])), {})
    return {
        "campaign_id": attempt["campaign_id"], "contact_id": attempt["contact_id"],
        "attempt_id": attempt["id"], "order_id": contact.get("order_id"),
        "phone": attempt["phone"], "caller_id": attempt["caller_id"],
        "outcome": attempt["outcome"], "sip_code": attempt["sip_code"],
        "q850_cause": attempt["q850_cause"], "detail": attempt.get("detail"),
        "started_at": attempt["started_at"], "answered_at": attempt["answered_at"],
        "ended_at": attempt["ended_at"], "duration_s": attempt["duration_s"],
        "contact": {"state": contact.get("state"), "final_outcome": contact.get("final_outcome"),
                    "attempts": contact.get("attempts"),
                    "next_attempt_at": contact.get("next_attempt_at")},
        "survey": None if call is None else {k: call.get(k) for k in _CALL_COLS},
        "answers": [] if call is None else answers_of(db, call["id"]),
    }


def remedy_payload(db: sqlite_utils.Database, call: dict[str, Any]) -> dict[str, Any]:
    order = next(iter(db.query("SELECT order_id, product, price, merchant, host, platform, "
                               "buyer_name FROM orders WHERE order_id = ?",
                               [call.get("order_id")])), {})
    return {"remedy": call["remedy_accepted"], "order_id": call.get("order_id"),
            "phone": call.get("phone"), "campaign_id": call.get("campaign_id"),
            "call_id": call["id"], "accepted_at": call.get("ended_at") or now_iso(),
            "order": order}


class ResultsProducer:
    """``run_once()`` summarises every newly ended attempt; called by the service's loop."""

    def __init__(self, db: sqlite_utils.Database, *, call_finished: bool, fulfilment: bool,
                 settle_s: float = 30.0, on_queued: Any = None) -> None:
        self.db = db
        self.call_finished = call_finished
        self.fulfilment = fulfilment
        self.settle_s = settle_s
        self.on_queued = on_queued
        self.low = start_watermark(db)

    def run_once(self, now: datetime | None = None) -> int:
        now = now or datetime.now(UTC)
        rows = [dict(r) for r in self.db.query(
            "SELECT a.* FROM attempts a LEFT JOIN call_summaries s ON s.attempt_id = a.id "
            "WHERE a.id > ? AND a.state = 'ended' AND s.attempt_id IS NULL ORDER BY a.id "
            "LIMIT 500", [self.low])]
        done = 0
        queued = False
        for attempt in rows:
            call = call_of(self.db, attempt) if attempt["outcome"] == "answered" else None
            if attempt["outcome"] == "answered" and not _settled(call, attempt, now,
                                                                 self.settle_s):
                continue  # the survey is still writing (hangup handler): next pass
            queued |= self._summarise(attempt, call)
            done += 1
        self._advance()
        if queued and self.on_queued is not None:
            self.on_queued()
        return done

    def _summarise(self, attempt: dict[str, Any], call: dict[str, Any] | None) -> bool:
        queued = False
        payload = result_payload(self.db, attempt, call)
        if self.call_finished:
            _, made = enqueue(self.db, CALL_FINISHED_EVENT, payload,
                              dedup_key=f"call.finished:{attempt['id']}", endpoint=CALL_FINISHED,
                              campaign_id=attempt["campaign_id"],
                              call_id=call["id"] if call else None, attempt_id=attempt["id"])
            queued |= made
        if self.fulfilment and call and call.get("remedy_accepted") in ("refund", "voucher"):
            # One fulfilment per order and remedy, whatever how many calls accepted it.
            who = call.get("order_id") or call["id"]
            _, made = enqueue(self.db, REMEDY_EVENT, remedy_payload(self.db, call),
                              dedup_key=f"remedy:{who}:{call['remedy_accepted']}",
                              endpoint=FULFILMENT, campaign_id=attempt["campaign_id"],
                              call_id=call["id"], attempt_id=attempt["id"])
            queued |= made
        self.db.execute("INSERT OR IGNORE INTO call_summaries (attempt_id, call_id, "
                        "summarized_at) VALUES (?, ?, ?)",
                        [attempt["id"], call["id"] if call else None, now_iso()])
        survey = payload["survey"] or {}
        log.info("call %s %s", attempt["id"], attempt["outcome"], extra={
            "event": "call.summary", "campaign": attempt["campaign_id"],
            "attempt": attempt["id"], "contact": attempt["contact_id"],
            "phone": mask_phone(attempt["phone"] or ""), "caller_id": attempt["caller_id"],
            "outcome": attempt["outcome"], "sip_code": attempt["sip_code"],
            "q850_cause": attempt["q850_cause"], "duration_s": attempt["duration_s"],
            "call_id": survey.get("id"), "survey_outcome": survey.get("outcome"),
            "satisfied": survey.get("satisfied"), "remedy": survey.get("remedy_accepted"),
            "answers": len(payload["answers"])})
        return queued

    def _advance(self) -> None:
        row = self.db.execute(
            "SELECT min(a.id) FROM attempts a LEFT JOIN call_summaries s ON s.attempt_id = a.id "
            "WHERE a.id > ? AND s.attempt_id IS NULL", [self.low]).fetchone()
        if row[0] is not None:
            new = int(row[0]) - 1
        else:
            new = int(self.db.execute("SELECT coalesce(max(id), 0) FROM attempts").fetchone()[0])
        if new > self.low:
            self.low = new
            kv_set(self.db, _KV_LOW, str(new))


def _settled(call: dict[str, Any] | None, attempt: dict[str, Any], now: datetime,
             settle_s: float) -> bool:
    if call is not None and call.get("ended_at") and call.get("state") != "in_progress":
        return True
    ended = attempt.get("ended_at")
    if not ended:
        return True
    age = now - datetime.fromisoformat(str(ended).replace("Z", "+00:00"))
    return age > timedelta(seconds=settle_s)


# ---- per-call results for the API and the console -----------------------------------------
def campaign_calls(db: sqlite_utils.Database, campaign_id: str, *, limit: int = 100,
                   offset: int = 0, mask: bool = False) -> list[dict[str, Any]]:
    """Attempts of a campaign, newest first, with the survey's outcome and the webhook state."""
    rows = [dict(r) for r in db.query(
        "SELECT a.id AS attempt_id, a.contact_id, a.phone, a.caller_id, a.outcome, a.sip_code, "
        "a.q850_cause, a.started_at, a.ended_at, a.duration_s, a.state, ct.order_id, "
        "c.id AS call_id, c.outcome AS survey_outcome, c.satisfied, c.remedy_accepted, "
        "c.reason, c.would_buy_again, "
        "(SELECT group_concat(w.event || ':' || w.state, ' ') FROM webhooks w "
        " WHERE w.attempt_id = a.id) AS webhooks "
        "FROM attempts a LEFT JOIN contacts ct ON ct.id = a.contact_id "
        "LEFT JOIN calls c ON c.attempt_id = a.id "
        "WHERE a.campaign_id = ? ORDER BY a.id DESC LIMIT ? OFFSET ?",
        [campaign_id, limit, offset])]
    if mask:
        for r in rows:
            r["phone"] = mask_phone(r["phone"] or "")
    return rows


def call_detail(db: sqlite_utils.Database, call_id: str) -> dict[str, Any] | None:
    rows = list(db.query("SELECT * FROM calls WHERE id = ?", [call_id]))
    if not rows:
        return None
    call = rows[0]
    if call.get("context"):
        with contextlib.suppress(ValueError):
            call["context"] = json.loads(call["context"])
    call["answers"] = answers_of(db, call_id)
    call["webhooks"] = deliveries(db, call_id=call_id)
    return call


def results_counts(db: sqlite_utils.Database, since: datetime) -> dict[str, int]:
    return {str(k): int(v) for k, v in db.execute(
        "SELECT outcome, count(*) FROM attempts WHERE ended_at >= ? GROUP BY 1",
        [iso(since)])}
