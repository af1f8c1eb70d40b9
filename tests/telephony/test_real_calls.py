"""The walking skeleton on real calls: AMI -> Asterisk -> PJSIP trunk -> sipp customer -> AGI.

Every test boots its own Asterisk, FastAGI daemon and sipp customer on free loopback ports.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ivr.dialer.ami import AmiOriginator
from ivr.dialer.types import DialRequest, DialResult
from ivr.testing.bed import Bed
from ivr.testing.sipp import Customer, Dtmf, HangUp, Wait

pytestmark = [pytest.mark.asterisk, pytest.mark.usefixtures("telephony")]

SATISFIED = "8613912345678"
HANGS_UP = "8613912340001"
BUSY = "8613912340486"
DECLINES = "8613912340603"

# The skeleton greets (~5 s) then asks; the customer answers inside the 6 s answer window.
CUSTOMERS = [
    Customer(SATISFIED, actions=[Wait(8500), Dtmf("1"), Wait(20000)]),
    Customer(HANGS_UP, actions=[Wait(7000), HangUp()]),
    Customer(BUSY, reject=486),
    Customer(DECLINES, reject=603),
]


def dial(bed: Bed, number: str) -> DialResult:
    async def run() -> DialResult:
        async with AmiOriginator.from_settings(bed.settings) as originator:
            return await originator.dial(DialRequest(phone="+" + number,
                                                     caller_id="+862150001001"))

    return asyncio.run(run())


@pytest.mark.parametrize("transport", ["fastagi", "classic"])
def test_dtmf_answer_is_stored(tmp_path: Path, transport: str) -> None:
    with Bed(tmp_path, CUSTOMERS, transport=transport) as bed:
        result = dial(bed, SATISFIED)
        assert result.outcome == "answered", bed.diagnostics()
        assert result.uniqueid
        db = bed.db()
        call = bed.call_row(result.uniqueid)
        assert call["transport"] == transport
        assert call["phone"] == "+" + SATISFIED
        assert call["caller_id"] == "+862150001001"
        assert call["state"] == "completed", bed.diagnostics()
        assert call["satisfied"] == 1
        assert call["started_at"] and call["ended_at"]
        answers = list(db["answers"].rows_where("call_id = ?", [result.uniqueid]))
        assert [(a["node"], a["intent"], a["dtmf"], a["input_mode"]) for a in answers] == [
            ("satisfaction", "satisfied", "1", "dtmf")], bed.diagnostics()


def test_hangup_during_question_keeps_partial_state(tmp_path: Path) -> None:
    with Bed(tmp_path, CUSTOMERS) as bed:
        result = dial(bed, HANGS_UP)
        assert result.outcome == "answered"
        call = bed.call_row(result.uniqueid)
        assert call["state"] == "hangup", bed.diagnostics()
        assert call["ended_at"] and call["satisfied"] is None
        assert call["hangup_cause"] is not None
        assert list(bed.db()["answers"].rows_where("call_id = ?", [result.uniqueid])) == []
        assert "Traceback" not in bed.fastagi_log()


def test_agi_daemon_down_plays_apology_and_marks_failed(tmp_path: Path) -> None:
    with Bed(tmp_path, CUSTOMERS, start_agi=False) as bed:
        result = dial(bed, SATISFIED)
        assert result.outcome == "failed", bed.diagnostics()
        assert "agi-unreachable" in result.cause_text
        log = bed.asterisk.log_file.read_text()
        assert "system/apology" in log  # the customer heard an apology, not silence
        rows = list(bed.db()["calls"].rows)
        assert len(rows) == 1
        assert rows[0]["state"] == "failed" and rows[0]["error"] == "agi-unreachable"


def test_busy_and_decline_are_classified(tmp_path: Path) -> None:
    with Bed(tmp_path, CUSTOMERS) as bed:
        busy = dial(bed, BUSY)
        assert (busy.outcome, busy.sip_code, busy.q850_cause) == ("busy", 486, 17)
        declined = dial(bed, DECLINES)
        assert (declined.outcome, declined.sip_code) == ("rejected", 603)
        assert list(bed.db()["calls"].rows) == []  # nobody answered: no survey row
