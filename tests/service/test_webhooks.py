"""Webhook delivery with a real receiver on loopback: signed, retried with backoff while the
receiver is down, each delivered once when it is back, a permanent refusal kept as failed,
a delivery interrupted by a crash re-sent with the same idempotency key."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from ivr.store import open_db
from ivr.webhooks.deliver import RetryPolicy, WebhookDeliverer, signature, verify
from ivr.webhooks.store import CALL_FINISHED, counts, enqueue, requeue
from tests.service.receiver import Receiver

SECRET = "s3cret"


def test_signature_round_trip() -> None:
    body = b'{"a": 1}'
    ts = str(int(time.time()))
    headers = {"X-Ivr-Timestamp": ts, "X-Ivr-Signature": signature(SECRET, ts, body)}
    assert verify(SECRET, headers, body)
    assert not verify("other", headers, body)
    assert not verify(SECRET, headers, body + b" ")
    old = {"X-Ivr-Timestamp": "1000", "X-Ivr-Signature": signature(SECRET, "1000", body)}
    assert not verify(SECRET, old, body)  # a replay of an old delivery


def test_enqueue_is_idempotent_by_dedup_key(tmp_path: Path) -> None:
    db = open_db(tmp_path / "ivr.db")
    first = enqueue(db, "call.finished", {"n": 1}, dedup_key="k1", endpoint=CALL_FINISHED)
    again = enqueue(db, "call.finished", {"n": 2}, dedup_key="k1", endpoint=CALL_FINISHED)
    assert first[1] is True and again == (first[0], False)
    with pytest.raises(ValueError):
        enqueue(db, "x", {}, dedup_key=" ", endpoint=CALL_FINISHED)


async def _until(pred: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_receiver_down_then_up_gets_every_delivery_once(tmp_path: Path) -> None:
    db = open_db(tmp_path / "ivr.db")
    receiver = Receiver(SECRET).start()
    port = receiver.port
    receiver.stop()  # down: the port is closed
    for i in range(6):
        enqueue(db, "call.finished", {"attempt": i}, dedup_key=f"a{i}", endpoint=CALL_FINISHED)
    deliverer = WebhookDeliverer(db, SECRET, {CALL_FINISHED: f"http://127.0.0.1:{port}/hook"},
                                 retry=RetryPolicy(max_tries=50, backoff_s=0.2, factor=1.5,
                                                   max_backoff_s=0.5), timeout_s=2)

    async def scenario() -> None:
        task = asyncio.create_task(deliverer.run())

        def tries() -> list[int]:
            return [int(r[0]) for r in db.execute("SELECT tries FROM webhooks ORDER BY id")]

        await _until(lambda: tries()[0] >= 3, 20)  # the receiver refused three tries ...
        assert tries()[1:] == [0] * 5  # ... of one probe: no storm against a dead receiver
        assert "delivered" not in counts(db)["call.finished"]
        back = Receiver(SECRET, port=port).start()
        try:
            await _until(lambda: counts(db).get("call.finished", {}).get("delivered") == 6, 10)
        finally:
            deliverer.stop()
            await task
            back.stop()
        assert sorted(back.keys()) == sorted(set(back.keys())) and len(back.keys()) == 6
        assert all(r.signed for r in back.received)
        assert [r.body["data"]["attempt"] for r in back.received] == list(range(6))

    asyncio.run(scenario())


def test_permanent_refusal_is_failed_then_requeued(tmp_path: Path) -> None:
    db = open_db(tmp_path / "ivr.db")
    receiver = Receiver(SECRET, status=400).start()
    enqueue(db, "remedy.accepted", {"order_id": "O1"}, dedup_key="r1", endpoint="fulfilment")
    deliverer = WebhookDeliverer(db, SECRET, {"fulfilment": receiver.url},
                                 retry=RetryPolicy(backoff_s=0.1))
    try:
        asyncio.run(deliverer.deliver_due())
        row = db.execute("SELECT state, tries, last_status FROM webhooks").fetchone()
        assert row == ("failed", 1, 400)
        receiver.status = 200
        assert requeue(db) == 1
        asyncio.run(deliverer.deliver_due())
        assert db.execute("SELECT state FROM webhooks").fetchone()[0] == "delivered"
        assert len(set(receiver.keys())) == 1 and len(receiver.keys()) == 2  # same key twice
    finally:
        receiver.stop()


def test_interrupted_delivery_is_resent_with_the_same_key(tmp_path: Path) -> None:
    db = open_db(tmp_path / "ivr.db")
    receiver = Receiver(SECRET).start()
    wid, _ = enqueue(db, "call.finished", {"n": 1}, dedup_key="c1", endpoint=CALL_FINISHED)
    key = db.execute("SELECT idempotency_key FROM webhooks").fetchone()[0]
    # a crash right after the claim: 'delivering', claimed long ago
    db.execute("UPDATE webhooks SET state = 'delivering', tries = 1, claimed_at = "
               "'2020-01-01T00:00:00.000Z' WHERE id = ?", [wid])
    deliverer = WebhookDeliverer(db, SECRET, {CALL_FINISHED: receiver.url})
    try:
        asyncio.run(deliverer.deliver_due())
    finally:
        receiver.stop()
    assert db.execute("SELECT state, tries FROM webhooks").fetchone() == ("delivered", 2)
    assert receiver.keys() == [key]
