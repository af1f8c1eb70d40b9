"""``ivr serve`` over real calls (issue 16): an event becomes a call after its delay and the
call-finished and fulfilment webhooks reach a receiver with the answers; the same event twice
makes one call; a service killed with SIGKILL mid-campaign resumes without a double dial or a
lost answer; a receiver down for a while gets every delivery once when it is back; a number put
on the do-not-call list through the API is not dialed again; /metrics matches the database."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ivr.config import PROJECT_ROOT
from ivr.farend.bed import Bed, free_port
from ivr.farend.campaign import invites_per_number
from ivr.farend.customer_plan import Answer, plan_customer
from ivr.farend.sipp import Customer
from ivr.speech.tts import engine
from ivr.survey.loader import load_script
from ivr.survey.orders import order_context
from tests.service.proc import ServiceProc, quiet_pool, service_config
from tests.service.receiver import Receiver

pytestmark = [pytest.mark.asterisk, pytest.mark.usefixtures("telephony")]

MINI = PROJECT_ROOT / "tests" / "data" / "mini.cmn.yaml"
FULL = PROJECT_ROOT / "surveys" / "platform_satisfaction.cmn.yaml"
VOICE = "cmn-calm-male"
PLATFORM = "快购"
SECRET = "test-webhook-secret"
DELAY_S = 4.0
# How long the webhook receiver stays down (the "a minute"; the retry logic is the real
# one, with short backoffs so the test does not wait for hours-long ones).
DOWN_S = float(os.environ.get("IVR_TEST_WEBHOOK_DOWN_S", "20"))
REFUND = [Answer(key=k) for k in ("2", "1", "3", "1")]  # unhappy; refund; logistics; rebuy
MINI_KEYS = [Answer(key="1"), Answer(key="2")]  # satisfied, would not buy again


def number(i: int) -> str:
    return f"86138005{i:05d}"


@pytest.fixture(scope="module")
def receiver_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory, receiver_port: int) -> Iterator[Bed]:
    home = tmp_path_factory.mktemp("service-bed")
    numbers = quiet_pool(home)
    rules = [{"name": "not-dispatched", "event": "order.not_dispatched", "action": "call",
              "script": str(FULL), "delay": DELAY_S, "outside_window": "message",
              "message": "【{{ platform }}】{{ product }}暂未发货。回T退订",
              "when": [{"field": "data.hours_since_order", "gte": 1}],
              "dedupe": {"by": "order", "window": "1h"}}]
    service = service_config(home, port=free_port(), receiver_url=f"http://127.0.0.1:"
                             f"{receiver_port}", rules=rules)
    with Bed(home, platform=PLATFORM, numbers=str(numbers), service=service) as b:
        yield b


@pytest.fixture(scope="module")
def svc(bed: Bed) -> Iterator[ServiceProc]:
    with ServiceProc(bed) as proc:
        yield proc


@pytest.fixture
def receiver(receiver_port: int) -> Iterator[Receiver]:
    rec = Receiver(SECRET, port=receiver_port).start()
    try:
        yield rec
    finally:
        rec.stop()


def order(digits: str, days_ago: float = 0.1, **over: Any) -> dict[str, Any]:
    when = (datetime.now(UTC) - timedelta(days=days_ago)).isoformat(timespec="seconds")
    row = {"order_id": f"S{digits}", "phone": "+" + digits, "product": "婴儿湿巾",
           "category": "baby", "price": "39.9", "merchant": "好妈妈旗舰店", "host": "小李",
           "order_time": when}
    row.update(over)
    return row


def customer(bed: Bed, digits: str, script: Path, keys: list[Answer]) -> Customer:
    ctx = order_context(bed.db(), f"S{digits}", phone="+" + digits, platform=PLATFORM,
                        timezone="Asia/Shanghai")
    return plan_customer(digits, load_script(script), ctx, keys, engine(bed.settings),
                         voice=VOICE, language="cmn", work_dir=bed.home)


def wait_for(pred: Callable[[], Any], timeout: float, what: str, bed: Bed,
             svc: ServiceProc | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = ("\n--- service ---\n" + svc.output() + "\n".join(svc.service_log()[-40:])
                     ) if svc else ""
            raise AssertionError(f"timed out waiting for {what}\n{bed.diagnostics()}{extra}")
        time.sleep(0.2)


def iso_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_event_becomes_one_call_and_its_webhooks_arrive(bed: Bed, svc: ServiceProc,
                                                        receiver: Receiver) -> None:
    digits = number(1)
    svc.post("/v1/orders", json={"orders": [order(digits)]})
    bed.start_customers([customer(bed, digits, FULL, REFUND)])
    occurred = datetime.now(UTC)
    event = {"id": "evt-not-dispatched-1", "type": "order.not_dispatched",
             "order_id": f"S{digits}", "occurred_at": occurred.isoformat(),
             "data": {"hours_since_order": 1.5}}
    first = svc.post("/v1/events", json=event)
    assert first["decision"] == "call_scheduled", first
    again = svc.post("/v1/events", json=event)  # the platform retries its POST
    assert again["duplicate"] is True and again["contact_id"] == first["contact_id"]
    other = svc.post("/v1/events", json={**event, "id": "evt-not-dispatched-2"})
    assert other["decision"] == "deduped", other
    cid = first["campaign_id"]

    def attempts() -> list[dict[str, Any]]:
        return bed.rows("SELECT * FROM attempts WHERE campaign_id = ?", [cid])

    started = wait_for(attempts, DELAY_S + 20, "the event's call", bed, svc)
    late = (iso_time(started[0]["started_at"]) - occurred).total_seconds()
    assert DELAY_S - 0.5 <= late <= DELAY_S + 10, late  # not before the delay, soon after it
    finished = wait_for(lambda: [r for r in receiver.received if r.path == "/calls"], 120,
                        "the call-finished webhook", bed, svc)
    hook = finished[0]
    assert hook.signed and hook.body["event"] == "call.finished"
    data = hook.body["data"]
    assert (data["outcome"], data["order_id"], data["phone"]) == (
        "answered", f"S{digits}", "+" + digits)
    answers = [(a["node"], a["dtmf"]) for a in data["answers"]]
    assert answers[:3] == [("satisfaction", "2"), ("remedy", "1"), ("reason", "3")], answers
    assert data["survey"]["remedy_accepted"] == "refund" and data["survey"]["satisfied"] == 0
    fulfil = wait_for(lambda: [r for r in receiver.received if r.path == "/fulfil"], 30,
                      "the fulfilment webhook", bed, svc)
    assert fulfil[0].signed and fulfil[0].body["data"]["remedy"] == "refund"
    assert fulfil[0].body["data"]["order_id"] == f"S{digits}"
    assert fulfil[0].headers["Idempotency-Key"] != hook.headers["Idempotency-Key"]
    time.sleep(2)  # nothing else arrives: one call, one of each webhook
    assert len(attempts()) == 1
    assert [r.path for r in receiver.received] == ["/calls", "/fulfil"]
    assert bed.sipp is not None
    assert invites_per_number(bed.sipp.messages())[digits] == 1
    # the delivery state is visible per call
    call = svc.get(f"/v1/calls/{data['survey']['id']}")
    assert {w["event"]: w["state"] for w in call["webhooks"]} == {
        "call.finished": "delivered", "remedy.accepted": "delivered"}
    # ... and in the campaign's report
    report = svc.get(f"/v1/campaigns/{cid}/report")
    assert {(w["event"], w["state"]) for w in report["webhooks"]} == {
        ("call.finished", "delivered"), ("remedy.accepted", "delivered")}
    # one summary line per call in the structured log
    summaries = [line for line in svc.service_log() if '"event": "call.summary"' in line
                 and f'"campaign": "{cid}"' in line]
    assert len(summaries) == 1, summaries


def plan(svc: ServiceProc, name: str, days_ago: float, digits: list[str],
         start: bool = False) -> str:
    svc.post("/v1/orders", json={"orders": [order(d, days_ago=days_ago) for d in digits]})
    made = svc.post("/v1/campaigns", json={
        "name": name, "script": MINI.name, "days": 1,
        "reference": (datetime.now(UTC) - timedelta(days=days_ago - 0.5)).isoformat(),
        "start": start})
    assert made["pending"] == len(digits), made
    return str(made["campaign_id"])


def count(bed: Bed, sql: str, params: list[Any]) -> int:
    return int(bed.db().execute(sql, params).fetchone()[0])


def test_kill_9_mid_campaign_resumes_without_double_dial_or_lost_answer(
        bed: Bed, svc: ServiceProc, receiver: Receiver) -> None:
    digits = [number(i) for i in range(10, 16)]
    cid = plan(svc, "kill-9", 3, digits)
    bed.start_customers([customer(bed, d, MINI, MINI_KEYS) for d in digits])
    svc.post(f"/v1/campaigns/{cid}/start")
    wait_for(lambda: count(bed, "SELECT count(*) FROM attempts WHERE campaign_id = ? AND "
                                "state = 'ended'", [cid]) >= 2 and
             count(bed, "SELECT count(*) FROM attempts WHERE campaign_id = ? AND "
                        "state = 'originating'", [cid]) >= 1, 120, "calls in progress", bed, svc)
    svc.kill9()
    open_at_kill = count(bed, "SELECT count(*) FROM attempts WHERE campaign_id = ? AND "
                              "state != 'ended'", [cid])
    assert open_at_kill >= 1
    wait_for(lambda: bed.asterisk.rx("core show channels count").strip().startswith("0 active"),
             60, "calls of the killed service to end", bed)
    svc.start()
    wait_for(lambda: svc.get(f"/v1/campaigns/{cid}")["campaign"]["status"] == "done", 180,
             "the campaign to finish after the restart", bed, svc)
    contacts = bed.rows("SELECT state, final_outcome, attempts FROM contacts WHERE "
                        "campaign_id = ?", [cid])
    assert {(c["state"], c["final_outcome"], c["attempts"]) for c in contacts} == {
        ("done", "answered", 1)}, contacts
    attempts = bed.rows("SELECT * FROM attempts WHERE campaign_id = ?", [cid])
    assert len(attempts) == len(digits)  # one per contact: none lost, none doubled
    assert bed.sipp is not None
    invites = invites_per_number(bed.sipp.messages())
    assert {d: invites[d] for d in digits} == dict.fromkeys(digits, 1), invites
    for a in attempts:  # every answer of every call is stored, the killed ones' included
        got = [(r["node"], r["dtmf"]) for r in bed.rows(
            "SELECT node, dtmf FROM answers WHERE call_id = ? ORDER BY seq", [a["uniqueid"]])]
        assert got == [("satisfaction", "1"), ("again", "2")], (a, got)
    # every attempt's call-finished webhook arrives once, across the kill
    ids = {a["id"] for a in attempts}
    wait_for(lambda: {r.body["data"]["attempt_id"] for r in receiver.received
                      if r.path == "/calls"} >= ids, 60, "every call-finished webhook", bed, svc)
    keys = [r.headers["Idempotency-Key"] for r in receiver.received if r.path == "/calls"
            and r.body["data"]["attempt_id"] in ids]
    assert len(keys) == len(set(keys)) == len(ids)


def test_receiver_down_then_up_gets_every_delivery_once(bed: Bed, svc: ServiceProc,
                                                        receiver: Receiver) -> None:
    digits = [number(i) for i in range(20, 23)]
    receiver.stop()  # down before the calls end
    cid = plan(svc, "receiver-down", 5, digits)
    bed.start_customers([customer(bed, d, MINI, MINI_KEYS) for d in digits])
    down_at = time.monotonic()
    svc.post(f"/v1/campaigns/{cid}/start")
    wait_for(lambda: svc.get(f"/v1/campaigns/{cid}")["campaign"]["status"] == "done", 120,
             "the campaign", bed, svc)

    def backlog() -> int:
        return count(bed, "SELECT count(*) FROM webhooks WHERE campaign_id = ? AND state = "
                          "'queued'", [cid])

    wait_for(lambda: backlog() == len(digits), 60, "the deliveries to queue up", bed, svc)
    time.sleep(max(0.0, DOWN_S - (time.monotonic() - down_at)))
    tried = count(bed, "SELECT sum(tries) FROM webhooks WHERE campaign_id = ?", [cid])
    assert tried >= 2, "the service kept trying while the receiver was down"
    back = Receiver(SECRET, port=receiver.port).start()
    try:
        wait_for(lambda: count(bed, "SELECT count(*) FROM webhooks WHERE campaign_id = ? AND "
                                    "state = 'delivered'", [cid]) == len(digits), 60,
                 "deliveries after the receiver is back", bed, svc)
        time.sleep(1)
        mine = [r for r in back.received if r.body["data"].get("campaign_id") == cid]
        assert len(mine) == len(digits) and len({r.headers["Idempotency-Key"]
                                                 for r in mine}) == len(digits)
        assert all(r.signed for r in mine)
    finally:
        back.stop()
    state = svc.get("/v1/webhooks", params={"campaign_id": cid})
    assert state["counts"] == {"call.finished": {"delivered": len(digits)}}


def test_dnc_through_the_api_stops_planned_numbers_before_their_next_dial(
        bed: Bed, svc: ServiceProc) -> None:
    answer, busy, planned = number(30), number(31), number(32)
    cid = plan(svc, "dnc", 7, [answer, busy, planned])
    bed.start_customers([customer(bed, answer, MINI, MINI_KEYS), Customer(busy, reject=486),
                         customer(bed, planned, MINI, MINI_KEYS)])
    # planned, not yet dialed: on the list before the start
    svc.post("/v1/dnc", json={"phone": "+" + planned, "reason": "complained by phone"})
    # the busy one gets a retry after the backoff; on the list before that
    db_policy = yaml.safe_load(Path(bed.settings.service.policy).read_text())
    assert db_policy["retry"]["max_attempts"] == 3
    svc.post(f"/v1/campaigns/{cid}/start")
    wait_for(lambda: count(bed, "SELECT count(*) FROM attempts WHERE campaign_id = ? AND "
                                "phone = ? AND state = 'ended'", [cid, "+" + busy]) == 1,
             60, "the busy attempt", bed, svc)
    svc.post("/v1/dnc", json={"phone": "+" + busy, "reason": "opted out by SMS"})
    wait_for(lambda: svc.get(f"/v1/campaigns/{cid}")["campaign"]["status"] == "done", 120,
             "the campaign", bed, svc)
    time.sleep(2)
    states = {r["phone"][1:]: (r["state"], r["attempts"]) for r in bed.rows(
        "SELECT phone, state, attempts FROM contacts WHERE campaign_id = ?", [cid])}
    assert states == {answer: ("done", 1), busy: ("dnc", 1), planned: ("dnc", 0)}, states
    assert bed.sipp is not None
    invites = invites_per_number(bed.sipp.messages())
    assert (invites[answer], invites[busy], invites[planned]) == (1, 1, 0), invites


def test_metrics_match_the_database_after_a_campaign(bed: Bed, svc: ServiceProc) -> None:
    resp = svc.client.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(resp.text)}
    db = bed.db()
    by_outcome: dict[tuple[str, str], float] = {}
    for s in families["ivr_attempts"].samples:
        if s.name == "ivr_attempts_total":
            key = (s.labels["campaign"], s.labels["outcome"])
            by_outcome[key] = by_outcome.get(key, 0) + s.value
    expected = {(str(c), str(o)): float(n) for c, o, n in db.execute(
        "SELECT campaign_id, outcome, count(*) FROM attempts WHERE state = 'ended' "
        "GROUP BY 1, 2")}
    assert by_outcome == expected and sum(expected.values()) >= 10
    contacts = {(s.labels["campaign"], s.labels["state"]): s.value
                for s in families["ivr_contacts"].samples}
    assert contacts == {(str(c), str(st)): float(n) for c, st, n in db.execute(
        "SELECT campaign_id, state, count(*) FROM contacts GROUP BY 1, 2")}
    hooks = {(s.labels["event"], s.labels["state"]): s.value
             for s in families["ivr_webhook_deliveries"].samples}
    assert hooks == {(str(e), str(st)): float(n) for e, st, n in db.execute(
        "SELECT event, state, count(*) FROM webhooks GROUP BY 1, 2")}
    assert families["ivr_calls_in_flight"].samples[0].value == 0
    rates = {s.labels["campaign"]: s.value for s in families["ivr_campaign_answer_rate"].samples}
    kill = next(c for c, in db.execute("SELECT id FROM campaigns WHERE name = 'kill-9'"))
    assert rates[kill] == 1.0
    health = svc.client.get("/health").json()
    assert {k: v["up"] for k, v in health["parts"].items() if k != "models"} == {
        "asterisk": True, "ami": True, "fastagi": True, "database": True,
        "callerid_pool": True}, health
