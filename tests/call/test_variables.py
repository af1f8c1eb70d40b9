"""The call contract (CallVariables): what the dialer writes is what the dialplan and AGI read."""

from __future__ import annotations

import asyncio
import re

from ivr.call.variables import CHANNEL, CallVariables
from ivr.config import PROJECT_ROOT
from ivr.survey.script import TransferPolicy

FULL = CallVariables(
    phone="+8613912345678", caller_id="+862150001001", trunk="carrier2", campaign_id="c-1",
    contact_id=3, attempt_id=7, order_id="O1", voice="cmn-calm-male", segment="mothers",
    script="surveys/x.yaml", language="cmn", amd=True, token="t0k", ring_timeout_s=20,
    dial_prefix="0")


def test_every_field_goes_out_and_comes_back() -> None:
    out = FULL.to_channel()
    assert set(out) == set(CHANNEL.values())
    assert (out["IVR_CONTACT"], out["IVR_AMD"], out["IVR_RING_TIMEOUT"]) == ("3", "1", "20")
    assert CallVariables.from_channel(out) == FULL


def test_unset_fields_stay_off_the_channel_but_the_dial_prefix() -> None:
    assert CallVariables(phone="+8613912345678").to_channel() == {
        "IVR_PHONE": "+8613912345678", "IVR_RING_TIMEOUT": "30", "IVR_DIAL_PREFIX": ""}


def test_what_asterisk_reports_back() -> None:
    got = CallVariables.from_channel({"IVR_CONTACT": "12a", "IVR_ATTEMPT": " 4 ", "IVR_AMD": "0",
                                      "IVR_VOICE": "", "IVR_ORDER_ID": None, "OTHER": "x"})
    assert got == CallVariables(attempt_id=4)  # a non-number id is not ours: ignored


def test_the_agi_reads_the_call_row_fields_once_each() -> None:
    asked: list[str] = []

    async def get_variable(name: str) -> str | None:
        asked.append(name)
        return FULL.to_channel().get(name)

    got = asyncio.run(CallVariables.read(get_variable))
    assert asked == [CHANNEL[f] for f in CallVariables.CALL_FIELDS]
    assert got.call_fields() == {
        "phone": FULL.phone, "caller_id": FULL.caller_id, "campaign_id": "c-1", "contact_id": 3,
        "attempt_id": 7, "order_id": "O1", "voice": "cmn-calm-male", "segment": "mothers",
        "script": "surveys/x.yaml", "language": "cmn"}


def test_the_dialplan_reads_no_call_variable_outside_the_contract() -> None:
    """Every IVR_* the dialplans read is the contract's, a global of extensions.conf, set by the
    dialplan itself or the guard AGI, or one of the order fields a transfer puts on the channel."""
    plans = "".join(p.read_text(encoding="utf-8")
                    for p in sorted((PROJECT_ROOT / "dialplans").glob("*.conf")))
    code = "\n".join(line.split(";", 1)[0] for line in plans.splitlines())
    read = set(re.findall(r"\$\{(IVR_[A-Z_]+)\}", code))
    set_here = set(re.findall(r"Set\((IVR_[A-Z_]+)=", code))
    template = (PROJECT_ROOT / "asterisk_conf" / "extensions.conf.j2").read_text(encoding="utf-8")
    globals_ = set(re.findall(r"^(IVR_[A-Z_]+) =", template, re.M))
    transfer = set(TransferPolicy().variables) | {"IVR_TRANSFER_TARGET", "IVR_CALL_ID"}
    guard = {"IVR_GUARD", "IVR_GUARD_REASON"}  # ivr.agi.handlers.guard
    outside = read - set(CHANNEL.values()) - set_here - globals_ - transfer - guard
    assert outside == set()
    # The ring time reaches Dial only as the guard's checked IVR_DIAL_TIMEOUT.
    assert {"IVR_TOKEN", "IVR_PHONE", "IVR_ATTEMPT", "IVR_AMD", "IVR_DIAL_TIMEOUT"} <= read
