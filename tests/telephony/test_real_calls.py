"""The AGI layer on real calls: AMI -> Asterisk -> PJSIP trunk -> sipp customer -> AGI -> SQLite.

Every test boots its own Asterisk, FastAGI daemon and sipp customer on free loopback ports. The
customer presses its keys (RFC 4733 over the trunk) while each question is asked; it is planned
from the survey script (tests/data/mini.cmn.yaml), so its timing follows the real prompts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from ivr.call.variables import CallVariables
from ivr.dialer.ami import AmiOriginator
from ivr.dialer.types import DialResult
from ivr.farend.bed import Bed
from ivr.farend.customer_plan import Answer, plan_customer
from ivr.farend.sipp import Customer
from ivr.speech.tts import engine
from ivr.survey.loader import load_script

pytestmark = [pytest.mark.asterisk, pytest.mark.usefixtures("telephony")]

MINI = Path(__file__).parent.parent / "data" / "mini.cmn.yaml"
CALLER_ID = "+862150001001"
SATISFIED = "8613912345678"
HANGS_UP = "8613912340001"
BUSY = "8613912340486"
DECLINES = "8613912340603"
PLANS: dict[str, Sequence[Answer]] = {
    SATISFIED: [Answer(key="1"), Answer(key="2")],
    HANGS_UP: [Answer(hangup=True)],
}


def customers(bed: Bed) -> list[Customer]:
    script = load_script(MINI)
    planned = [plan_customer(number, script, {"platform": "快购"}, answers, engine(bed.settings),
                             voice="cmn-calm-male", language="cmn", work_dir=bed.home)
               for number, answers in PLANS.items()]
    return [*planned, Customer(BUSY, reject=486), Customer(DECLINES, reject=603)]


def start(tmp_path: Path, **kw: object) -> Bed:
    bed = Bed(tmp_path, platform="快购", **kw)  # type: ignore[arg-type]
    bed.__enter__()
    try:
        bed.start_customers(customers(bed))
    except BaseException:
        bed.stop()
        raise
    return bed


def dial(bed: Bed, number: str) -> DialResult:
    async def run() -> DialResult:
        async with AmiOriginator.from_settings(bed.settings) as originator:
            return await originator.dial(CallVariables(
                phone="+" + number, caller_id=CALLER_ID, script=str(MINI), voice="cmn-calm-male"))

    return asyncio.run(run())


@pytest.mark.parametrize("transport", ["fastagi", "classic"])
def test_dtmf_answers_are_stored(tmp_path: Path, transport: str) -> None:
    bed = start(tmp_path, transport=transport)
    try:
        result = dial(bed, SATISFIED)
        assert result.outcome == "answered", bed.diagnostics()
        assert result.uniqueid
        call = bed.call_row(result.uniqueid)
        assert call["transport"] == transport
        assert (call["phone"], call["caller_id"]) == ("+" + SATISFIED, CALLER_ID)
        assert (call["state"], call["outcome"]) == ("completed", "completed"), bed.diagnostics()
        assert (call["satisfied"], call["would_buy_again"]) == (1, 0)
        assert call["started_at"] < call["ended_at"]
        rows = bed.db()["answers"].rows_where("call_id = ?", [result.uniqueid], order_by="seq")
        assert [(a["node"], a["intent"], a["dtmf"], a["input_mode"]) for a in rows] == [
            ("satisfaction", "satisfied", "1", "dtmf"), ("again", "no", "2", "dtmf")
        ], bed.diagnostics()
    finally:
        bed.stop()


def test_hangup_during_question_keeps_partial_state(tmp_path: Path) -> None:
    bed = start(tmp_path)
    try:
        result = dial(bed, HANGS_UP)
        assert result.outcome == "answered"
        call = bed.call_row(result.uniqueid)
        assert call["state"] == "hangup", bed.diagnostics()
        assert call["current_node"] == "satisfaction"
        assert call["ended_at"] and call["satisfied"] is None
        assert call["hangup_cause"] is not None
        assert list(bed.db()["answers"].rows_where("call_id = ?", [result.uniqueid])) == []
        assert "Traceback" not in bed.fastagi_log()
    finally:
        bed.stop()


def test_agi_daemon_down_plays_apology_and_marks_failed(tmp_path: Path) -> None:
    bed = start(tmp_path, start_agi=False)
    try:
        result = dial(bed, SATISFIED)
        assert result.outcome == "failed", bed.diagnostics()
        assert "agi-unreachable" in result.cause_text
        log = bed.asterisk.log_file.read_text()
        assert "system/apology" in log  # the customer heard an apology, not silence
        rows = list(bed.db()["calls"].rows)
        assert len(rows) == 1
        assert rows[0]["state"] == "failed" and rows[0]["error"] == "agi-unreachable"
    finally:
        bed.stop()


def test_busy_and_decline_are_classified(tmp_path: Path) -> None:
    bed = start(tmp_path)
    try:
        busy = dial(bed, BUSY)
        assert (busy.outcome, busy.sip_code, busy.q850_cause) == ("busy", 486, 17)
        declined = dial(bed, DECLINES)
        assert (declined.outcome, declined.sip_code) == ("rejected", 603)
        assert list(bed.db()["calls"].rows) == []  # nobody answered: no survey row
    finally:
        bed.stop()
