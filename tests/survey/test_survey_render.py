"""Prompt rendering and answer matching."""

from __future__ import annotations

import logging

import pytest
import sqlite_utils
from support.survey import ORDERS

from ivr.survey.dialog import Question
from ivr.survey.render import render_prompt, render_text
from ivr.survey.script import Node, Script


def test_intro_names_product_price_and_platform(cmn: Script, ko: Script) -> None:
    text = render_prompt(cmn.nodes["intro"], ORDERS["cmn"], "cmn")
    assert text.startswith("您好，我是快乐购的客户体验专员。"
                           "您在5月3日通过小李的直播间，购买了鲜果旗舰店的")
    assert "丹东草莓，价格39.9元" in text and " " not in text  # folded lines joined in Chinese
    ko_text = render_prompt(ko.nodes["intro"], ORDERS["ko"], "ko")
    assert "예시몰 고객 경험 담당자입니다" in ko_text and "15000원" in ko_text
    assert "5월 3일" in ko_text


def test_whole_prices_have_no_decimals() -> None:
    assert render_text("{{ price }}元", {"price": 59.0}, "cmn") == "59元"


def test_missing_order_field_renders_empty_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert render_text("买了{{ product }}。", {}, "cmn") == "买了。"
    assert "product" in caplog.text


def test_prompt_per_language() -> None:
    node = Node(kind="statement", prompt={"cmn": "你好", "ko": "안녕하세요"}, next="x")
    assert (render_prompt(node, {}, "ko"), render_prompt(node, {}, "cmn")) == ("안녕하세요", "你好")


def question(**kw: object) -> Question:
    base: dict[str, object] = dict(node="q", text="", voice=None, language="cmn",
                                   phrases={"yes": ("满意",), "no": ("不 满意",)},
                                   dtmf={"1": "yes", "2": "no"})
    base.update(kw)
    return Question(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("said,intent", [
    ("满意", "yes"), ("不 满意", "no"), ("我不满意", "no"), ("还挺满意的", "yes"),
    ("不知道", None), ("", None),
])
def test_match_text_prefers_the_longest_phrase(said: str, intent: str | None) -> None:
    assert question().match_text(said) == intent


def test_match_text_ambiguous_is_no_match() -> None:
    q = question(phrases={"a": ("退款",), "b": ("优惠",)})
    assert q.match_text("退款优惠") is None


def test_dtmf_patterns() -> None:
    q = question(dtmf_patterns=(("(0[0-9]|1[0-9]|2[0-3])", "hour"),), max_digits=2)
    assert [q.match_dtmf(d) for d in ("1", "20", "24", "")] == ["yes", "hour", None, None]


def test_order_context_reads_the_orders_table(db: sqlite_utils.Database) -> None:
    from ivr.store import now_iso
    from ivr.survey.orders import order_context

    db.table("orders").insert({"order_id": "A-9", "phone": "+8613900000009", "product": "橙子",
                         "price": 19.9, "platform": "快乐购", "extra": '{"city": "南京"}',
                         "imported_at": now_iso()})
    ctx = order_context(db, "A-9", platform="新平台", host=None)
    assert ctx["product"] == "橙子" and ctx["price"] == 19.9 and ctx["city"] == "南京"
    assert ctx["platform"] == "新平台" and "imported_at" not in ctx and "extra" not in ctx
    assert order_context(db, "missing", phone="+1") == {"phone": "+1"}
