"""The default Mandarin survey on real calls, answered with keys only (no Mandarin model here).

Each customer is planned from the script itself (ivr.farend.customer_plan): it presses its keys
while the question is asked, over the real PJSIP trunk (RFC 4733 events from sipp).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr.call.variables import CallVariables
from ivr.config import PROJECT_ROOT
from ivr.dialer.ami import AmiOriginator
from ivr.dialer.types import DialResult
from ivr.farend.bed import Bed
from ivr.farend.customer_plan import Answer, plan_customer
from ivr.speech.tts import engine
from ivr.survey.loader import load_script
from ivr.survey.orders import order_context

pytestmark = [pytest.mark.asterisk, pytest.mark.usefixtures("telephony")]

SCRIPT = PROJECT_ROOT / "surveys" / "platform_satisfaction.cmn.yaml"
VOICE = "cmn-friendly-female"
ORDER = {"order_id": "A1001", "phone": "+8613800138001", "product": "婴儿湿巾", "category": "baby",
         "price": 39.9, "merchant": "好妈妈旗舰店", "host": "小李", "platform": "快购",
         "order_time": "2026-11-20T20:15:00+08:00"}
KEYS = {
    "8613800138001": [Answer(key="2"), Answer(key="1"), Answer(key="1"), Answer(key="1")],
    "8613800138002": [Answer(key="9")],
    "8613800138003": [Answer(key="0")],
    "8613800138004": [Answer(key="7"), Answer(key="20")],
    # presses 2 during the introduction, before the satisfaction question is asked
    "8613800138005": [Answer(key="2", during_statement=True), Answer(key="1"), Answer(key="1"),
                      Answer(key="1")],
}


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    home = tmp_path_factory.mktemp("survey-bed")
    with Bed(home, agent_dial="Local/100@ivr-test-agent", platform="快购") as b:
        db = b.db()
        for number in KEYS:
            db["orders"].insert({**ORDER, "order_id": f"O{number}", "phone": "+" + number})
        script = load_script(SCRIPT)
        tts = engine(b.settings)
        customers = [
            plan_customer(number, script, order_context(db, f"O{number}", phone="+" + number,
                                                        platform="快购",
                                                        timezone="Asia/Shanghai"),
                          answers, tts, voice=VOICE, language="cmn", work_dir=home)
            for number, answers in KEYS.items()]
        b.start_customers(customers)
        yield b


def call(bed: Bed, number: str) -> DialResult:
    async def run() -> DialResult:
        async with AmiOriginator.from_settings(bed.settings) as o:
            return await o.dial(CallVariables(
                phone="+" + number, caller_id="+862150001001", order_id=f"O{number}",
                voice=VOICE))

    result = asyncio.run(run())
    assert result.outcome == "answered", bed.diagnostics()
    return result


def answers_of(bed: Bed, call_id: str) -> list[tuple[str, str | None, str | None]]:
    rows = bed.db()["answers"].rows_where("call_id = ?", [call_id], order_by="seq")
    return [(r["node"], r["intent"], r["dtmf"]) for r in rows]


def test_unhappy_buyer_refund_quality_buys_again(bed: Bed) -> None:
    r = call(bed, "8613800138001")
    row = bed.call_row(r.uniqueid)
    assert answers_of(bed, r.uniqueid) == [
        ("satisfaction", "unsatisfied", "2"), ("remedy", "refund", "1"),
        ("reason", "quality", "1"), ("suggestions", None, None), ("buy_again", "yes", "1")
    ], bed.diagnostics()
    assert (row["state"], row["outcome"]) == ("completed", "recovered")
    assert (row["satisfied"], row["remedy_offered"], row["remedy_accepted"], row["reason"],
            row["would_buy_again"]) == (0, "refund_or_voucher", "refund", "quality", 1)
    assert (row["order_id"], row["voice"], row["language"]) == ("O8613800138001", VOICE, "cmn")
    suggestion = bed.db()["answers"].rows_where("call_id = ? and node = 'suggestions'",
                                                [r.uniqueid])
    assert Path(next(iter(suggestion))["recording"]).exists()


def test_key_pressed_during_the_introduction_answers_satisfaction(bed: Bed) -> None:
    """The 2 cuts the statement short and is the satisfaction answer; the buyer's next keys
    answer the next questions (never shifted by one: the 1 meant for remedy is not 'satisfied')."""
    r = call(bed, "8613800138005")
    assert answers_of(bed, r.uniqueid) == [
        ("satisfaction", "unsatisfied", "2"), ("remedy", "refund", "1"),
        ("reason", "quality", "1"), ("suggestions", None, None), ("buy_again", "yes", "1")
    ], bed.diagnostics()
    assert bed.call_row(r.uniqueid)["state"] == "completed"


def test_opt_out_goes_on_dnc_during_the_call(bed: Bed) -> None:
    r = call(bed, "8613800138002")
    row = bed.call_row(r.uniqueid)
    assert row["outcome"] == "opted_out"
    dnc = bed.db()["dnc"].get("+8613800138002")
    assert dnc["source"] == "survey" and dnc["added_at"] < row["ended_at"]


def test_transfer_reaches_agent_with_order_context(bed: Bed) -> None:
    r = call(bed, "8613800138003")
    row = bed.call_row(r.uniqueid)
    assert row["outcome"] == "transferred", bed.diagnostics()
    log = bed.asterisk.log_file.read_text()
    # The stand-in agent reports the order context it received in its channel variables.
    assert "IvrTestAgent,Exten: 100,Order: O8613800138003,Product: 婴儿湿巾" in log


def test_callback_request_stores_time(bed: Bed) -> None:
    r = call(bed, "8613800138004")
    row = bed.call_row(r.uniqueid)
    assert row["outcome"] == "callback_requested", bed.diagnostics()
    assert row["callback_at"] and row["callback_at"].endswith("12:00:00Z")  # 20:00 Shanghai
