"""The import policy (#13): order text is data - cleaned of control characters, capped, order ids
and future order times checked, repeats listed with their first line, the policy stated in the
rejects file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.campaign.importer import ImportPolicy, clean_row, import_orders, read_rejects
from ivr.config import OrdersSettings, TextCaps
from ivr.fields import CONTROL

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
POLICY = ImportPolicy(now=NOW)


def row(**over: Any) -> dict[str, Any]:
    base = {"order_id": "A1", "phone": "13912345678", "product": "婴儿湿巾", "category": "母婴",
            "price": "39.9", "merchant": "好妈妈旗舰店", "host": "小李",
            "order_time": "2026-11-20 20:15:00", "buyer_name": "张三"}
    return {**base, **over}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def test_control_characters_become_spaces_and_the_row_is_kept(db: Any, tmp_path: Path) -> None:
    hostile = row(product="商品\nEXEC Dial PJSIP/0099912345678@carrier",
                  merchant="店\r\x00\x1b[31m铺", host="主播\u2028\u202e甲", buyer_name="张\t三",
                  city="Wu\x07han")
    s = import_orders(db, write_jsonl(tmp_path / "o.jsonl", [hostile]), policy=POLICY)
    assert (s.inserted, s.rejected) == (1, 0)
    got = db["orders"].get("A1")
    assert got["product"] == "商品 EXEC Dial PJSIP/0099912345678@carrier"
    assert got["merchant"] == "店 [31m铺" and got["host"] == "主播 甲"
    assert got["buyer_name"] == "张 三" and json.loads(got["extra"]) == {"city": "Wu han"}


def test_quotes_and_backslashes_are_kept_as_written(db: Any, tmp_path: Path) -> None:
    s = import_orders(db, write_jsonl(tmp_path / "o.jsonl", [row(product='14" 屏\\幕')]),
                      policy=POLICY)
    assert s.inserted == 1 and db["orders"].get("A1")["product"] == '14" 屏\\幕'


def test_text_over_its_cap_rejects_the_row_naming_field_and_config_key(db: Any,
                                                                        tmp_path: Path) -> None:
    rows = [row(order_id="L1", product="长" * 61), row(order_id="L2", merchant="店" * 31),
            row(order_id="L3", product="短" * 60), row(order_id="L4", product="x" * 5000)]
    s = import_orders(db, write_jsonl(tmp_path / "o.jsonl", rows), policy=POLICY)
    got = {r["order_id"]: r["reason"] for r in read_rejects(s.rejects_file)}
    assert got == {
        "L1": "product too long (61 characters; cap 60, ivr.yaml orders.max_length.product)",
        "L2": "merchant too long (31 characters; cap 30, ivr.yaml orders.max_length.merchant)",
        "L4": "product too long (5000 characters; cap 60, ivr.yaml orders.max_length.product)"}
    assert s.inserted == 1 and s.reasons == {"product too long": 2, "merchant too long": 1}


def test_caps_and_skew_come_from_the_config(db: Any, tmp_path: Path) -> None:
    orders = OrdersSettings(max_length=TextCaps(product=200), future_skew_s=0)
    policy = ImportPolicy.from_settings(orders)
    assert policy.max_length["product"] == 200 and policy.future_skew_s == 0
    s = import_orders(db, write_jsonl(tmp_path / "o.jsonl", [row(product="长" * 150)]),
                      policy=policy)
    assert s.inserted == 1


def test_order_time_in_the_future_beyond_the_skew_is_rejected(db: Any, tmp_path: Path) -> None:
    rows = [row(order_id="F1", order_time="2031-01-01 00:00:00"),  # years ahead
            row(order_id="F2", order_time="2026-12-01T12:09:00+00:00"),  # inside 10 min skew
            row(order_id="F3", order_time="2026-12-01T12:11:00+00:00")]
    s = import_orders(db, write_jsonl(tmp_path / "o.jsonl", rows), policy=POLICY)
    got = {r["order_id"]: r["reason"] for r in read_rejects(s.rejects_file)}
    assert set(got) == {"F1", "F3"}
    assert got["F3"] == ("order_time in the future ('2026-12-01T12:11:00+00:00' is 60 s past the "
                         "allowed clock skew, ivr.yaml orders.future_skew_s)")
    assert [r["order_id"] for r in db["orders"].rows] == ["F2"]


def test_order_ids_outside_their_character_set_are_rejected(db: Any, tmp_path: Path) -> None:
    bad = ['O1"', "O1\\", "O1,2", "O 1", "O1\nEXEC", "$O{1}", "O" * 65, "订单1"]
    rows = [row(order_id=b, phone=f"1391234{i:04d}") for i, b in enumerate(bad)]
    s = import_orders(db, write_jsonl(tmp_path / "o.jsonl", [*rows, row(order_id="A-1:x/#@+")]),
                      policy=POLICY)
    got = read_rejects(s.rejects_file)
    assert len(got) == len(bad) and all(r["reason"].startswith("bad order_id") for r in got)
    assert not any(CONTROL.search(r["order_id"]) for r in got)  # listed, never raw control chars
    assert [r["order_id"] for r in db["orders"].rows] == ["A-1:x/#@+"]


def test_every_repeat_is_listed_with_its_first_line(db: Any, tmp_path: Path) -> None:
    rows = [row(), row(order_id="B1", phone="13912345679"), row(), row(price="1"), row()]
    s = import_orders(db, write_jsonl(tmp_path / "o.jsonl", rows), policy=POLICY)
    got = [(r["line"], r["first_line"], r["reason"]) for r in read_rejects(s.rejects_file)]
    assert got == [
        ("3", "1", "repeat of line 1 (identical: imported once)"),
        ("4", "1", "duplicate order_id 'A1' with different content (first at line 1)"),
        ("5", "1", "repeat of line 1 (identical: imported once)")]
    assert (s.inserted, s.duplicates, s.rejected) == (2, 2, 1)


def test_the_rejects_file_states_the_policy(db: Any, tmp_path: Path) -> None:
    s = import_orders(db, write_jsonl(tmp_path / "o.jsonl", [row()]), policy=POLICY)
    head = [line for line in Path(s.rejects_file).read_text("utf-8").splitlines()
            if line.startswith("# ")]
    text = "\n".join(head)
    assert "control characters and line breaks become one space and the row is kept" in text
    assert "product 60, merchant 30, host 20" in text
    assert "more than 600 s in the future rejects the row" in text
    assert "first_line" in text and "order_id: 1-64 letters" in text


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.text(max_size=40))
def test_any_text_is_stored_clean_or_rejected(product: str, merchant: str) -> None:
    from zoneinfo import ZoneInfo

    from ivr.campaign.importer import RowError

    try:
        clean = clean_row(row(product=product, merchant=merchant), "CN", ZoneInfo("Asia/Shanghai"),
                          POLICY)
    except RowError as exc:
        assert str(exc).startswith(("missing field", "product too long", "merchant too long",
                                    "not valid UTF-8"))
        return
    for key in ("product", "merchant"):
        assert not CONTROL.search(clean[key]) and clean[key] == clean[key].strip()
        # merchant is optional since #18 (a plain survey export has none): '' is stored.
        assert (0 if key == "merchant" else 1) <= len(clean[key]) <= POLICY.max_length[key]
