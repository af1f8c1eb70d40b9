"""Follow-ups from a campaign's stored calls, and ``ivr outbox`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlite_utils
from click.testing import CliRunner

from ivr.cli import root
from ivr.outbox import OutboxConfig, queue_followups
from ivr.store import add_dnc, open_db

CFG = OutboxConfig(
    templates={"remedy_refund": "【P】{product}（{price}元）退款已受理。回T退订",
               "remedy_voucher": "【P】{remedy_text}已发放。回T退订",
               "h5": "【P】请评价{product}： {h5_url} 回T退订"},
    h5_skip_reasons=["region"], h5_url="https://h5.example.cn/s/1")


def _campaign(db: sqlite_utils.Database) -> None:
    db["orders"].insert_all([
        {"order_id": "o1", "product": "耳机", "price": 99.0},
        {"order_id": "o2", "product": "水杯", "price": 19.9}], pk="order_id")
    db["contacts"].insert_all([
        {"id": 1, "campaign_id": "c1", "phone": "+8613900000001", "order_id": "o1"},
        {"id": 2, "campaign_id": "c1", "phone": "+8613900000002", "order_id": "o2"},
        {"id": 3, "campaign_id": "c1", "phone": "+8613900000003", "order_id": "o2",
         "state": "skipped", "skip_reason": "region: Xinjiang mobile"},
        {"id": 4, "campaign_id": "c1", "phone": "+8613900000004", "order_id": "o2",
         "state": "skipped", "skip_reason": "dnc"},
        {"id": 5, "campaign_id": "c1", "phone": "+8613900000005", "order_id": "o1"}], pk="id")
    db["calls"].insert_all([
        {"id": "k1", "campaign_id": "c1", "contact_id": 1, "phone": "+8613900000001",
         "order_id": "o1", "remedy_accepted": "refund", "started_at": "2024-05-01T01:00:00Z"},
        {"id": "k2", "campaign_id": "c1", "contact_id": 2, "phone": "+8613900000002",
         "order_id": "o2", "remedy_accepted": "voucher", "started_at": "2024-05-01T02:00:00Z"},
        {"id": "k5", "campaign_id": "c1", "contact_id": 5, "phone": "+8613900000005",
         "order_id": "o1", "remedy_accepted": "refund", "started_at": "2024-05-01T03:00:00Z"},
    ], pk="id")
    add_dnc(db, "+8613900000005", "opted_out", "survey")


def test_followups_queued_once(tmp_path: Path) -> None:
    db = open_db(tmp_path / "ivr.db")
    _campaign(db)
    assert queue_followups(db, "c1", CFG) == {"queued": 3, "dnc": 1}
    assert queue_followups(db, "c1", CFG) == {"queued": 3, "dnc": 1}  # re-run: deduped
    rows = {r["kind"]: r for r in db["outbox"].rows}
    assert db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 3
    assert rows["remedy_refund"]["text"] == "【P】耳机（99元）退款已受理。回T退订"
    assert rows["remedy_voucher"]["text"] == "【P】10元优惠券已发放。回T退订"
    assert rows["h5"]["text"] == "【P】请评价水杯： https://h5.example.cn/s/1 回T退订"
    assert rows["h5"]["contact_id"] == 3
    db.conn.close()


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IVR_HOME", str(tmp_path / "var"))
    monkeypatch.delenv("IVR_CONFIG", raising=False)
    rules = tmp_path / "outbox.yaml"
    rules.write_text("blocked_words: [贷款]\nsignature: 【P】\n", encoding="utf-8")
    monkeypatch.setenv("IVR_OUTBOX_CONFIG", str(rules))
    return tmp_path


def test_cli_lint_add_send_list_retry(home: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(root, ["outbox", "lint", "【P】点击https://t.cn/x领取贷款"])
    assert res.exit_code == 1
    assert "ERROR link-spacing" in res.output and "ERROR blocked-word" in res.output
    assert "UCS-2, 1 SMS part(s)" in res.output
    res = runner.invoke(root, ["outbox", "lint", "【P】详情 https://t.cn/x 回T退订"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(root, ["outbox", "add", "+8613900000001", "【P】退款已受理 回T退订",
                               "--dedup-key", "m1"])
    assert res.exit_code == 0 and "queued message 1" in res.output
    runner.invoke(root, ["outbox", "add", "+8613900000002", "【P】低息贷款", "--dedup-key", "m2"])
    out = home / "sent.jsonl"
    res = runner.invoke(root, ["outbox", "send", "--sender", f"file:{out}"])
    assert res.exit_code == 0, res.output
    assert "sent 1" in res.output and "blocked 1" in res.output
    assert len(out.read_text(encoding="utf-8").splitlines()) == 1
    res = runner.invoke(root, ["outbox", "list", "--json"])
    states = {json.loads(x)["dedup_key"]: json.loads(x)["state"] for x in res.stdout.split("\n")
              if x}
    assert states == {"m1": "sent", "m2": "blocked"}
    errors = {json.loads(x)["dedup_key"]: json.loads(x)["last_error"]
              for x in res.stdout.split("\n") if x}
    assert "blocked-word" in errors["m2"] and errors["m1"] is None
    res = runner.invoke(root, ["outbox", "list", "--state", "blocked"])
    assert "Outbox (1 shown)" in res.output and "blocked" in res.output
    res = runner.invoke(root, ["outbox", "retry", "--blocked"])
    assert "requeued 1" in res.output
    res = runner.invoke(root, ["outbox", "send", "--sender", "nope:x"])
    assert res.exit_code == 1 and "unknown sender" in res.output
    for args in (["outbox", "--help"], ["outbox", "send", "--help"],
                 ["outbox", "lint", "--help"], ["outbox", "retry", "--help"]):
        assert "Examples:" in runner.invoke(root, args).output
