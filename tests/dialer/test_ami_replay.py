"""The AMI originator against AMI traffic recorded from real calls (tests/dialer/transcripts):
what it sends, and how it classifies what Asterisk answers, without an Asterisk."""

from __future__ import annotations

import asyncio

import pytest

from ivr.call.variables import CallVariables
from ivr.dialer.ami import AmiOriginator
from ivr.dialer.types import DialResult

from .conftest import Replay
from .record import replay_token

pytestmark = pytest.mark.timeout(30)

CALLER = "+862150001001"


def dial(name: str, digits: str, *, cut_after: str | None = None, cut_before: str | None = None,
         reconnect: bool = False, ring_timeout_s: int = 8,
         **kwargs: float) -> tuple[DialResult, Replay]:
    async def run() -> tuple[DialResult, Replay]:
        replay = Replay(name, cut_after=cut_after, cut_before=cut_before, reconnect=reconnect)
        originator = AmiOriginator(replay.manager, token=lambda: replay_token(name), **kwargs)
        player = asyncio.create_task(replay.play())
        result = await originator.dial(CallVariables(
            phone="+" + digits, caller_id=CALLER, campaign_id="c-1", attempt_id=7,
            ring_timeout_s=ring_timeout_s))
        await player
        return result, replay

    return asyncio.run(run())


def test_originate_action_and_answered_call() -> None:
    result, replay = dial("answered", "8613800000201")
    (action,) = replay.sent()
    assert action["Action"] == ["Originate"] and action["Async"] == ["true"]
    assert action["ActionID"] == ["ivr-replayanswered"]
    assert action["Channel"] == ["Local/8613800000201@ivr-dial"]
    assert (action["Context"], action["Exten"], action["Priority"]) == (["ivr-survey"], ["s"],
                                                                        ["1"])
    assert action["CallerID"] == [CALLER] and action["Timeout"] == ["23000"]
    assert set(action["Variable"]) == {
        "__IVR_TOKEN=replayanswered", "__IVR_PHONE=+8613800000201", f"__IVR_CALLER_ID={CALLER}",
        "__IVR_CAMPAIGN=c-1", "__IVR_ATTEMPT=7", "__IVR_RING_TIMEOUT=8", "__IVR_DIAL_PREFIX="}
    assert (result.outcome, result.sip_code, result.q850_cause) == ("answered", 200, 16)
    # the survey leg's uniqueid is the calls.id the AGI records; its channel is the ;1 leg
    assert result.uniqueid == _field(replay, "OriginateResponse", "Uniqueid")
    assert result.channel is not None and result.channel.endswith(";1")
    assert result.answered_at is not None and result.duration_s is not None
    assert replay.played == len(replay.messages)


def test_busy() -> None:
    result, _ = dial("busy", "8613800000202")
    assert (result.outcome, result.sip_code, result.q850_cause) == ("busy", 486, 17)
    assert result.cause_text == "SIP 486 Busy Here"
    assert result.uniqueid is None and result.answered_at is None


def test_declined_with_603_is_a_rejection() -> None:
    result, _ = dial("declined_603", "8613800000203")
    assert (result.outcome, result.sip_code, result.q850_cause) == ("rejected", 603, 21)
    assert not result.refused


def test_guard_refusal_is_a_failure_of_ours_not_the_callees() -> None:
    result, _ = dial("guard_refused", "8613999123456")
    assert (result.outcome, result.q850_cause, result.refused) == ("failed", 21, True)
    assert result.cause_text.startswith("refused: message: region rule xinjiang-mobile-message")


def test_answered_but_the_survey_could_not_run() -> None:
    result, _ = dial("agi_unreachable", "8613800000204")
    assert result.outcome == "failed" and result.cause_text == "answered, but agi-unreachable"


def test_ami_disconnect_during_the_call_ends_the_wait() -> None:
    """The connection drops after the answer: the end of the call is never reported, so the
    attempt fails once the ring time and the longest call have passed."""
    result, replay = dial("answered", "8613800000201", cut_after="Event: OriginateResponse",
                          ring_timeout_s=1, max_call_s=0.5)
    assert result.outcome == "failed" and result.cause_text == "no end of call reported by Asterisk"
    assert replay.played < len(replay.messages)


@pytest.mark.parametrize("cut", [{"cut_after": "successfully queued"},
                                 {"cut_before": "successfully queued"}],
                         ids=["after-queued", "before-any-answer"])
def test_ami_disconnect_before_the_originate_is_answered(cut: dict[str, str]) -> None:
    """The connection drops before Asterisk said how the originate went: the wait is bounded,
    and the action is not sent again when panoramisk reconnects (the call may be placed anyway;
    a second Originate would ring the customer twice)."""
    result, replay = dial("answered", "8613800000201", ring_timeout_s=1, setup_s=0.5, **cut)
    assert result.outcome == "failed" and "AMI connection" in result.cause_text
    assert list(replay.manager.awaiting_actions) == []
    assert replay.manager.protocol.responses == {}


def test_ami_reconnect_before_the_originate_is_answered() -> None:
    """The answer to the Originate is lost with the connection, which comes back at once: the
    call's events arrive on the new one (OriginateResponse as an event) and it is classified as
    usual, with nothing sent twice."""
    result, replay = dial("answered", "8613800000201", cut_before="successfully queued",
                          reconnect=True)
    assert (result.outcome, result.sip_code) == ("answered", 200)
    assert result.uniqueid == _field(replay, "OriginateResponse", "Uniqueid")
    assert len(replay.sent()) == 1 and list(replay.manager.awaiting_actions) == []


def test_originate_refused_by_ami() -> None:
    """Asterisk answers the action itself with an error (here: the AMI user may not originate).
    A one-message transcript written after Asterisk's manager.c, not recorded."""
    async def run() -> DialResult:
        replay = Replay("answered")
        replay.messages = [b"Response: Error\nActionID: ivr-x\nMessage: Permission denied\n\n"]
        player = asyncio.create_task(replay.play())
        result = await AmiOriginator(replay.manager, token=lambda: "x").dial(
            CallVariables(phone="+8613800000201", caller_id=CALLER))
        await player
        return result

    result = asyncio.run(run())
    assert (result.outcome, result.cause_text) == ("failed", "AMI refused: Permission denied")


def _field(replay: Replay, event: str, key: str) -> str:
    for message in replay.messages:
        lines = dict(line.split(": ", 1) for line in message.decode().strip().splitlines()
                     if ": " in line)
        if lines.get("Event") == event:
            return lines[key]
    raise AssertionError(f"no {event} in the transcript")


def test_a_replay_leaves_panoramisk_as_it_found_it() -> None:
    """A real AMI connection in the same process after a replay must still split Asterisk's
    '\r\n\r\n' framing (the replay's Manager changes it for the process)."""
    from panoramisk import utils

    assert utils.EOL == "\r\n"
