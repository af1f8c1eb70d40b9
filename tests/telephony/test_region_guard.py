"""Region rules are enforced by the dialplan guard even when a call is originated by hand."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ivr.call.variables import CallVariables
from ivr.dialer.ami import AmiOriginator
from ivr.dialer.types import DialResult
from ivr.farend.bed import Bed
from ivr.farend.sipp import Customer, Wait

pytestmark = [pytest.mark.asterisk, pytest.mark.usefixtures("telephony")]

XINJIANG_MOBILE = "8613999123456"  # geocoded Urumqi, Xinjiang by phonenumbers


def originate_by_hand(bed: Bed, number: str) -> DialResult:
    async def run() -> DialResult:
        async with AmiOriginator.from_settings(bed.settings) as o:
            return await o.dial(CallVariables(phone="+" + number, caller_id="+862150001001"))

    return asyncio.run(run())


def test_xinjiang_number_originated_by_hand_is_refused(tmp_path: Path) -> None:
    customers = [Customer(XINJIANG_MOBILE, actions=[Wait(3000)])]
    with Bed(tmp_path, customers) as bed:
        result = originate_by_hand(bed, XINJIANG_MOBILE)
        assert result.outcome == "failed", bed.diagnostics()
        assert "refused" in result.cause_text and "Xinjiang" in result.cause_text
        assert bed.sipp is not None
        assert XINJIANG_MOBILE not in bed.sipp.messages()  # no INVITE left Asterisk
        assert list(bed.db()["calls"].rows) == []
