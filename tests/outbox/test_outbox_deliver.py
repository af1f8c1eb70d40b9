"""Queue, send, retry, restart: nothing is sent twice."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from ivr.outbox import (
    FileSender,
    OutboundMessage,
    OutboxConfig,
    RetryPolicy,
    SendError,
    SendResult,
    WebhookSender,
    deliver,
    enqueue,
    load_sender,
    requeue,
)
from ivr.outbox.store import get
from ivr.phone import InvalidNumber
from ivr.store import add_dnc, open_db

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
CFG = OutboxConfig(blocked_words=["贷款"], sending_lease_s=60,
                   retry=RetryPolicy(max_tries=3, backoff_s=60, factor=2, max_backoff_s=600))
TEXT = "【示例平台】您的退款已受理，详情 https://h5.example.cn/r/1 回T退订"
PHONE = "+8613900000001"


@pytest.fixture()
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ivr.db"


@pytest.fixture()
def db(db_path: Path) -> Iterator[sqlite_utils.Database]:
    database = open_db(db_path)
    yield database
    database.conn.close()


def run(db: sqlite_utils.Database, sender: Any, now: datetime = T0) -> dict[str, int]:
    return asyncio.run(deliver(db, sender, now=now, config=CFG))


class Counting:
    """A sender that records every call; fails the first ``fail`` sends."""

    name = "counting"
    idempotent = False

    def __init__(self, fail: int = 0, error: Exception | None = None) -> None:
        self.sent: list[OutboundMessage] = []
        self.fail = fail
        self.error = error or SendError("gateway busy")

    async def send(self, message: OutboundMessage) -> SendResult:
        if self.fail:
            self.fail -= 1
            raise self.error
        self.sent.append(message)
        return SendResult(receipt=f"r{len(self.sent)}")


class Crash(BaseException):
    """The process dies (not an Exception: nothing in deliver may swallow it)."""


class CrashAfterSend(FileSender):
    async def send(self, message: OutboundMessage) -> SendResult:
        await super().send(message)
        raise Crash()


class CrashBeforeSend(FileSender):
    async def send(self, message: OutboundMessage) -> SendResult:
        raise Crash()


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_enqueue_dedup_and_validation(db: sqlite_utils.Database) -> None:
    a = enqueue(db, PHONE, TEXT, kind="remedy_refund", campaign_id="c1", contact_id=1,
                dedup_key="remedy:c1:1")
    b = enqueue(db, PHONE, TEXT + "!", kind="remedy_refund", dedup_key="remedy:c1:1")
    c = enqueue(db, PHONE, TEXT, kind="remedy_refund", dedup_key="remedy:c1:2")
    assert a == b != c
    assert db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 2
    assert get(db, a)["text"] == TEXT and get(db, a)["state"] == "queued"
    with pytest.raises(InvalidNumber):
        enqueue(db, "13900000001", TEXT, kind="x", dedup_key="k3")
    with pytest.raises(ValueError, match="dedup_key"):
        enqueue(db, PHONE, TEXT, kind="x", dedup_key=" ")


def test_file_sender_sends_once(db: sqlite_utils.Database, tmp_path: Path) -> None:
    out = tmp_path / "sent.jsonl"
    mid = enqueue(db, PHONE, TEXT, kind="h5", dedup_key="h5:c1:1")
    assert run(db, FileSender(out))["sent"] == 1
    assert run(db, FileSender(out))["sent"] == 0
    assert [(x["phone"], x["text"], x["id"]) for x in lines(out)] == [(PHONE, TEXT, mid)]
    row = get(db, mid)
    assert (row["state"], row["tries"], row["sent_at"]) == ("sent", 1, "2024-05-01T08:00:00.000Z")


def test_lint_errors_and_dnc_block_sending(db: sqlite_utils.Database) -> None:
    bad_link = enqueue(db, PHONE, "【示例平台】点击https://h5.example.cn/r/1领取", kind="h5",
                       dedup_key="a")
    bad_word = enqueue(db, "+8613900000002", "【示例平台】低息贷款 回T退订", kind="h5",
                       dedup_key="b")
    dnc = enqueue(db, "+8613900000003", TEXT, kind="h5", dedup_key="c")
    add_dnc(db, "+8613900000003", "opted_out", "survey")
    sender = Counting()
    assert run(db, sender)["blocked"] == 3
    assert sender.sent == []
    assert "link-spacing" in get(db, bad_link)["last_error"]
    assert "blocked-word" in get(db, bad_word)["last_error"]
    assert "do-not-call" in get(db, dnc)["last_error"]
    assert {get(db, i)["state"] for i in (bad_link, bad_word, dnc)} == {"blocked"}


class _Gateway(BaseHTTPRequestHandler):
    statuses: list[int] = []
    seen: list[tuple[str, dict[str, Any]]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.headers["Idempotency-Key"], body))
        code = type(self).statuses.pop(0) if type(self).statuses else 200
        payload = json.dumps({"id": f"gw-{len(self.seen)}"}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def gateway() -> Iterator[tuple[str, type[_Gateway]]]:
    handler = type("Gateway", (_Gateway,), {"statuses": [], "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/sms", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_failed_send_is_retried_with_backoff(db: sqlite_utils.Database,
                                              gateway: tuple[str, Any]) -> None:
    url, handler = gateway
    handler.statuses[:] = [503, 500]
    mid = enqueue(db, PHONE, TEXT, kind="remedy_refund", dedup_key="r1")
    sender = WebhookSender(url, timeout=5)
    assert run(db, sender, T0)["retry"] == 1
    row = get(db, mid)
    assert (row["state"], row["tries"]) == ("queued", 1)
    assert "HTTP 503" in row["last_error"]
    assert row["next_attempt_at"] == "2024-05-01T08:01:00.000Z"  # backoff 60 s
    assert run(db, sender, T0 + timedelta(seconds=59))["sent"] == 0  # not due yet
    assert run(db, sender, T0 + timedelta(seconds=60))["retry"] == 1
    assert get(db, mid)["next_attempt_at"] == "2024-05-01T08:03:00.000Z"  # 60 + 120 s
    assert run(db, sender, T0 + timedelta(seconds=180))["sent"] == 1
    row = get(db, mid)
    assert (row["state"], row["tries"], row["receipt"], row["last_error"]) == \
        ("sent", 3, "gw-3", None)
    keys = {k for k, _ in handler.seen}
    assert len(handler.seen) == 3 and len(keys) == 1  # one idempotency key for every try
    assert handler.seen[-1][1]["text"] == TEXT


def test_gives_up_after_max_tries_and_on_permanent_errors(
        db: sqlite_utils.Database, gateway: tuple[str, Any]) -> None:
    url, handler = gateway
    flaky = enqueue(db, PHONE, TEXT, kind="h5", dedup_key="flaky")
    sender = Counting(fail=10)
    now = T0
    for _ in range(3):
        run(db, sender, now)
        now += timedelta(hours=1)
    row = get(db, flaky)
    assert (row["state"], row["tries"]) == ("failed", 3)
    assert "gave up after 3 tries" in row["last_error"]
    assert run(db, sender, now)["sent"] == 0 and sender.sent == []
    handler.statuses[:] = [400]
    bad = enqueue(db, "+8613900000002", TEXT, kind="h5", dedup_key="bad")
    assert run(db, WebhookSender(url, timeout=5), now)["failed"] == 1
    assert get(db, bad)["tries"] == 1 and "HTTP 400" in get(db, bad)["last_error"]
    # the operator puts them back; a sent message is never requeued
    assert requeue(db, states=("failed",)) == 2
    assert run(db, Counting(), now)["sent"] == 2
    assert requeue(db, states=("failed", "blocked", "uncertain")) == 0


def test_sent_message_never_sent_again_after_restart(db_path: Path) -> None:
    db = open_db(db_path)
    enqueue(db, PHONE, TEXT, kind="h5", dedup_key="once")
    first = Counting()
    assert run(db, first)["sent"] == 1
    db.conn.close()
    # a new process: new connection, new sender, much later
    db2 = open_db(db_path)
    second = Counting()
    enqueue(db2, PHONE, TEXT, kind="h5", dedup_key="once")  # re-queued by a re-run: deduped
    assert run(db2, second, T0 + timedelta(days=1))["sent"] == 0
    assert second.sent == [] and len(first.sent) == 1
    db2.conn.close()


def test_crash_after_send_is_settled_by_status_not_resent(db_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "sent.jsonl"
    db = open_db(db_path)
    mid = enqueue(db, PHONE, TEXT, kind="h5", dedup_key="crash")
    with pytest.raises(Crash):
        run(db, CrashAfterSend(out))
    assert get(db, mid)["state"] == "sending" and len(lines(out)) == 1
    db.conn.close()
    db = open_db(db_path)  # restart
    assert run(db, FileSender(out), T0 + timedelta(seconds=10))["recovered"] == 0  # lease
    counts = run(db, FileSender(out), T0 + timedelta(seconds=61))
    assert (counts["recovered"], counts["sent"]) == (1, 0)
    assert get(db, mid)["state"] == "sent"
    assert len(lines(out)) == 1
    assert run(db, FileSender(out), T0 + timedelta(days=1))["sent"] == 0
    assert len(lines(out)) == 1
    db.conn.close()


def test_crash_before_send_is_sent_once(db_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "sent.jsonl"
    db = open_db(db_path)
    mid = enqueue(db, PHONE, TEXT, kind="h5", dedup_key="early")
    with pytest.raises(Crash):
        run(db, CrashBeforeSend(out))
    db.conn.close()
    db = open_db(db_path)
    counts = run(db, FileSender(out), T0 + timedelta(minutes=5))
    assert (counts["requeued"], counts["sent"]) == (1, 1)
    assert len(lines(out)) == 1 and get(db, mid)["state"] == "sent"
    db.conn.close()


def test_interrupted_send_with_blind_sender_is_parked(db: sqlite_utils.Database) -> None:
    class Dies(Counting):
        async def send(self, message: OutboundMessage) -> SendResult:
            self.sent.append(message)
            raise Crash()

    mid = enqueue(db, PHONE, TEXT, kind="h5", dedup_key="blind")
    dies = Dies()
    with pytest.raises(Crash):
        run(db, dies)
    later = Counting()
    assert run(db, later, T0 + timedelta(hours=1))["uncertain"] == 1
    assert later.sent == []  # may have gone out: never re-sent blindly
    assert get(db, mid)["state"] == "uncertain"
    assert "ivr outbox retry --uncertain" in get(db, mid)["last_error"]


def test_idempotent_sender_gets_the_same_key_again(db: sqlite_utils.Database,
                                                    gateway: tuple[str, Any]) -> None:
    url, handler = gateway

    class DiesAfterPost(WebhookSender):
        async def send(self, message: OutboundMessage) -> SendResult:
            await super().send(message)
            raise Crash()

    enqueue(db, PHONE, TEXT, kind="h5", dedup_key="idem")
    with pytest.raises(Crash):
        run(db, DiesAfterPost(url, timeout=5))
    counts = run(db, WebhookSender(url, timeout=5), T0 + timedelta(hours=1))
    assert (counts["requeued"], counts["sent"]) == (1, 1)
    assert len(handler.seen) == 2 and handler.seen[0][0] == handler.seen[1][0]


def test_load_sender(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # where the plugin module lives
    assert isinstance(load_sender(f"file:{tmp_path / 'x.jsonl'}"), FileSender)
    assert isinstance(load_sender("webhook:http://127.0.0.1:9/sms"), WebhookSender)
    plugin = load_sender("outbox_plugin.make_sender:prod")
    assert plugin.name == "plugin:prod"
    with pytest.raises(ValueError, match="unknown sender"):
        load_sender("carrier-pigeon:x")
    with pytest.raises(ValueError, match="http"):
        load_sender("webhook:ftp://x")
    with pytest.raises(ValueError, match="lacks"):
        load_sender("outbox_plugin.not_a_sender:")
