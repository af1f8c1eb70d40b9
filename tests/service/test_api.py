"""The HTTP API without telephony: auth, orders, events and their rules, DNC, campaigns,
numbers, OpenAPI, /metrics and /health (the real-call tests dial; these check every decision)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ivr.campaign.importer import import_orders, read_rejects
from tests.service.conftest import MINI, Api, order


def table_counts(api: Api) -> dict[str, int]:
    db = api.service.db
    return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("orders", "events", "dnc", "campaigns", "contacts", "outbox")}


WRITES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/v1/orders", {"json": {"orders": [order(1)]}}),
    ("POST", "/v1/events", {"json": {"id": "e1", "type": "order.not_dispatched",
                                     "order": order(2), "data": {"hours_since_order": 2}}}),
    ("POST", "/v1/dnc", {"json": {"phone": "+8613800100001", "reason": "x"}}),
    ("DELETE", "/v1/dnc/+8613800100001", {}),
    ("POST", "/v1/dnc/import", {"content": "phone\n13800100002\n",
                                "headers": {"Content-Type": "text/csv"}}),
    ("POST", "/v1/dnc/sms-replies", {"json": {"from": "+8613800100003", "text": "TD"}}),
    ("POST", "/v1/campaigns", {"json": {"name": "x", "script": MINI.name}}),
    ("POST", "/v1/numbers/check", {}),
    ("POST", "/v1/webhooks/requeue", {"json": {}}),
]


@pytest.mark.parametrize(("method", "path", "kw"), WRITES, ids=[w[1] for w in WRITES])
def test_write_routes_need_a_write_token_and_change_nothing_without(api: Api, method: str,
                                                                   path: str,
                                                                   kw: dict[str, Any]) -> None:
    before = table_counts(api)
    headers = dict(kw.get("headers", {}))
    rest = {k: v for k, v in kw.items() if k != "headers"}
    no_token = api.call(method, path, scope=None, headers=dict(headers), **rest)
    assert no_token.status_code == 401, no_token.text
    assert no_token.headers["www-authenticate"] == "Bearer"
    wrong = api.call(method, path, scope=None,
                     headers={**headers, "Authorization": "Bearer ivr_not-a-token"}, **rest)
    assert wrong.status_code == 401
    basic = api.call(method, path, scope=None,
                     headers={**headers, "Authorization": "Basic YWRtaW46eA=="}, **rest)
    assert basic.status_code == 401
    read = api.call(method, path, scope="read", headers=dict(headers), **rest)
    assert read.status_code == 403, read.text
    assert table_counts(api) == before


def test_read_routes_need_a_token(api: Api) -> None:
    for path in ("/v1/campaigns", "/v1/dnc", "/v1/events", "/v1/numbers", "/v1/webhooks",
                 "/v1/rules", "/metrics", "/health"):
        assert api.call("GET", path, scope=None).status_code == 401, path
        assert api.call("GET", path, scope="read").status_code in (200, 503), path


def test_revoked_token_is_refused(api: Api) -> None:
    from ivr.service.auth import revoke_token

    assert api.call("GET", "/v1/dnc", scope="read").status_code == 200
    row = api.service.db.execute("SELECT id FROM api_tokens WHERE name = 'test-read'").fetchone()
    assert revoke_token(api.service.db, row[0])
    assert api.call("GET", "/v1/dnc", scope="read").status_code == 401


def test_tokens_are_stored_hashed(api: Api) -> None:
    stored = [r[0] for r in api.service.db.execute("SELECT hash FROM api_tokens")]
    for token in api.tokens.values():
        assert token not in stored and all(token[10:] not in h for h in stored)


def test_orders_batch_same_rejects_as_the_csv_importer(api: Api, tmp_path: Path) -> None:
    first = order(1)  # one order_time: the same order again must be the same content
    rows = [first, order(2, phone="+86 139-abc"), order(3, price="free"),
            order(4, order_time="yesterday"), {**order(5), "phone": ""},
            first, {**first, "product": "other"}]
    resp = api.call("POST", "/v1/orders", json={"orders": [*rows, "not an object"]})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    # the importer, fed the same rows as a CSV, rejects the same rows for the same reasons
    path = tmp_path / "same.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(order(0)))
        w.writeheader()
        w.writerows(rows)
    from ivr.store import open_db

    other = open_db(tmp_path / "other.db")
    summary = import_orders(other, path, rejects_path=tmp_path / "rejects.csv")
    # the rejects file also lists the identical repeat (imported once, not a reject)
    file_reasons = [r["reason"].split(" (first at line")[0]
                    for r in read_rejects(tmp_path / "rejects.csv")
                    if not r["reason"].startswith("repeat of line")]
    api_reasons = [r["reason"].split(" (first at line")[0] for r in body["rejects"]]
    assert api_reasons[:-1] == file_reasons
    assert body["rejects"][-1] == {"index": 7, "order_id": "", "reason": "not a JSON object"}
    assert (body["inserted"], body["duplicates"], body["rejected"]) == (
        summary.inserted, summary.duplicates, summary.rejected + 1) == (1, 1, 6)
    assert [r["index"] for r in body["rejects"]] == [1, 2, 3, 4, 6, 7]
    # idempotent by order id: the same batch again changes nothing
    again = api.call("POST", "/v1/orders", json={"orders": [first]}).json()
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 1)
    changed = api.call("POST", "/v1/orders", json={"orders": [{**first, "price": "49"}]}).json()
    assert (changed["inserted"], changed["updated"]) == (0, 1)


def test_hostile_order_fields_are_stored_as_text(api: Api) -> None:
    evil = order(9, merchant="<script>alert(1)</script>", product="'); DROP TABLE orders;--")
    assert api.call("POST", "/v1/orders", json={"orders": [evil]}).json()["inserted"] == 1
    row = api.service.db.execute("SELECT merchant, product FROM orders WHERE order_id = ?",
                                 [evil["order_id"]]).fetchone()
    assert row == ("<script>alert(1)</script>", "'); DROP TABLE orders;--")


def event(eid: str, i: int = 1, **over: Any) -> dict[str, Any]:
    body = {"id": eid, "type": "order.not_dispatched", "order": order(i),
            "data": {"hours_since_order": 2}}
    body.update(over)
    return body


def test_event_schedules_one_call_and_repeats_do_nothing(api: Api) -> None:
    first = api.call("POST", "/v1/events", json=event("ev-1")).json()
    assert first["decision"] == "call_scheduled", first
    assert first["campaign_id"].startswith("event-not-dispatched-")
    again = api.call("POST", "/v1/events", json=event("ev-1")).json()
    assert again["duplicate"] is True and again["contact_id"] == first["contact_id"]
    other_id = api.call("POST", "/v1/events", json=event("ev-2")).json()
    assert other_id["decision"] == "deduped" and "ev-1" in other_id["detail"]
    contacts = api.service.db.execute("SELECT count(*), min(state) FROM contacts WHERE "
                                      "campaign_id = ?", [first["campaign_id"]]).fetchone()
    assert contacts == (1, "pending")
    camp = api.call("GET", f"/v1/campaigns/{first['campaign_id']}", scope="read").json()
    assert camp["campaign"]["status"] == "running" and camp["campaign"]["kind"] == "event"


def test_event_decisions(api: Api) -> None:
    cond = api.call("POST", "/v1/events", json=event("c", 3, data={"hours_since_order": 0}))
    assert cond.json()["decision"] == "condition_false"
    unknown = api.call("POST", "/v1/events", json={"id": "u", "type": "order.paid",
                                                   "order_id": "nope"})
    assert unknown.json()["decision"] == "rejected"
    norule = api.call("POST", "/v1/events", json={"id": "n", "type": "order.paid",
                                                  "order": order(4)})
    assert norule.json()["decision"] == "no_rule"
    bad = api.call("POST", "/v1/events", json=event("b", 5, order=order(5, phone="12")))
    assert bad.json()["decision"] == "rejected" and "phone" in bad.json()["detail"]
    api.call("POST", "/v1/dnc", json={"phone": order(6)["phone"], "reason": "asked"})
    dnc = api.call("POST", "/v1/events", json=event("d", 6)).json()
    assert dnc["decision"] == "dnc"
    malformed = api.call("POST", "/v1/events", json={"id": "x y", "type": "Bad Type"})
    assert malformed.status_code == 422


def test_event_outside_the_window_sends_the_message_instead(api: Api, tmp_path: Path) -> None:
    from ivr.campaign.policy import PolicyConfig

    # quiet hours all day long: no calling window at all
    api.service.engine.contact_policy.config = PolicyConfig.model_validate(
        {"quiet_hours": {"start": "00:00", "end": "23:59"}})
    res = api.call("POST", "/v1/events", json=event("w", 7)).json()
    assert res["decision"] == "message_queued", res
    text = api.service.db.execute("SELECT text, phone FROM outbox WHERE id = ?",
                                  [res["outbox_id"]]).fetchone()
    assert text[0].startswith("【示例平台】您的婴儿湿巾暂未发货") and text[1] == order(7)["phone"]


def test_xinjiang_event_follows_the_region_rule(api: Api) -> None:
    xinjiang = order(8, phone="+8613999123456")
    res = api.call("POST", "/v1/events", json=event("xj", 8, order=xinjiang))
    assert res.json()["decision"] == "message_queued"
    assert "region rule" in res.json()["detail"]


def test_dnc_routes(api: Api) -> None:
    add = api.call("POST", "/v1/dnc", json={"phone": "13912345678", "reason": "投诉"})
    assert add.status_code == 201 and add.json()["phone"] == "+8613912345678"
    listed = api.call("GET", "/v1/dnc", scope="read").json()
    assert listed["total"] == 1 and listed["entries"][0]["reason"] == "投诉"
    assert listed["entries"][0]["source"] == "api:test-write"
    imp = api.call("POST", "/v1/dnc/import?source=12315", content="\ufeffphone,reason\n"
                   "13912345679,complaint\nnot-a-number,x\n",
                   headers={"Content-Type": "text/csv"}).json()
    assert (imp["added"], imp["rejected"]) == (1, 1) and "upload:3" in imp["errors"][0]
    reply = api.call("POST", "/v1/dnc/sms-replies", json={"from": "+8613912345670",
                                                          "text": "回T退订"}).json()
    assert reply["opt_out"] is True
    chat = api.call("POST", "/v1/dnc/sms-replies", json={"from": "+8613912345671",
                                                         "text": "好的谢谢"}).json()
    assert chat["opt_out"] is False
    assert api.call("GET", "/v1/dnc", scope="read").json()["total"] == 3
    gone = api.call("DELETE", "/v1/dnc/+8613912345678?reason=mistake")
    assert gone.status_code == 200
    assert api.call("DELETE", "/v1/dnc/+8613912345678").status_code == 404
    log = list(api.service.db.query("SELECT action, source FROM dnc_log ORDER BY id"))
    assert [r["action"] for r in log] == ["add", "add", "add", "remove"]


def test_campaign_lifecycle(api: Api) -> None:
    api.call("POST", "/v1/orders", json={"orders": [order(i) for i in range(5)] + [
        order(10, category="snacks")]})
    denied = api.call("POST", "/v1/campaigns", json={"name": "x", "script": "/etc/passwd"})
    assert denied.status_code == 422 and "not a survey script" in denied.text
    made = api.call("POST", "/v1/campaigns", json={"name": "宝宝 <b>", "script": MINI.name,
                                                   "days": 2, "categories": ["baby"]})
    assert made.status_code == 201, made.text
    cid = made.json()["campaign_id"]
    assert made.json()["contacts"] == 5 and made.json()["status"] == "planned"
    assert any(c["id"] == cid for c in api.call("GET", "/v1/campaigns", scope="read").json())
    assert api.call("POST", f"/v1/campaigns/{cid}/resume").status_code == 409
    assert api.call("POST", f"/v1/campaigns/{cid}/start").json()["status"] == "running"
    assert api.call("POST", f"/v1/campaigns/{cid}/pause").json()["status"] == "paused"
    assert api.call("POST", f"/v1/campaigns/{cid}/resume").json()["status"] == "running"
    assert api.call("POST", "/v1/campaigns/nope/pause").status_code == 404
    status = api.call("GET", f"/v1/campaigns/{cid}", scope="read").json()
    assert status["funnel"]["contacts"] == 5
    assert api.call("GET", f"/v1/campaigns/{cid}/calls", scope="read").json() == []
    report = api.call("GET", f"/v1/campaigns/{cid}/report", scope="read").json()
    assert report["funnel"]["contacts"] == 5 and report["campaign"]["name"] == "宝宝 <b>"


def test_openapi_describes_v1(api: Api) -> None:
    spec = api.client.get("/v1/openapi.json").json()
    assert spec["info"]["title"] == "ivr"
    for path in ("/v1/orders", "/v1/events", "/v1/campaigns", "/v1/dnc", "/v1/numbers",
                 "/v1/campaigns/{campaign_id}/calls", "/v1/calls/{call_id}"):
        assert path in spec["paths"], path
    assert api.client.get("/docs").status_code == 404  # the stock page would load a CDN


def test_metrics_parse_and_match_the_database(api: Api) -> None:
    api.call("POST", "/v1/events", json=event("m1", 1))
    api.call("POST", "/v1/dnc", json={"phone": "+8613912345600"})
    text = api.call("GET", "/metrics", scope="read").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("ivr_calls_in_flight", "ivr_attempts", "ivr_contacts",
                 "ivr_dialer_queue_depth", "ivr_turn_latency_seconds", "ivr_asr_turns",
                 "ivr_asr_confidence", "ivr_webhook_backlog", "ivr_events", "ivr_dnc_numbers"):
        assert name in families, (name, sorted(families))
    assert families["ivr_dnc_numbers"].samples[0].value == 1
    events = {(s.labels["type"], s.labels["decision"]): s.value
              for s in families["ivr_events"].samples if s.name == "ivr_events_total"}
    assert events == {("order.not_dispatched", "call_scheduled"): 1.0}


def test_health_names_each_part_with_a_reason(api: Api) -> None:
    resp = api.call("GET", "/health", scope="read")
    data = resp.json()
    assert resp.status_code == 503 and data["ok"] is False  # no Asterisk in this test
    assert set(data["parts"]) == {"asterisk", "ami", "fastagi", "database", "models",
                                  "callerid_pool"}
    assert data["parts"]["database"]["up"] is True
    assert data["parts"]["asterisk"]["up"] is False and data["parts"]["asterisk"]["reason"]
    assert data["parts"]["ami"]["up"] is False and data["parts"]["ami"]["reason"]
