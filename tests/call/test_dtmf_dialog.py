"""AgiDtmfDialog against a scripted fake AGI transport (what Asterisk would answer)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from support.survey import NOW, ORDERS, results

from ivr.agi.channel import AGIChannel, AGIResponse, parse_response
from ivr.call.dtmf_dialog import AgiDtmfDialog, playable
from ivr.store import CallRecorder, is_dnc
from ivr.survey.dialog import DialogHangup, Question
from ivr.survey.engine import SurveyRun
from ivr.survey.script import Script


class FakeTransport:
    """Answers AGI commands like Asterisk: keys typed for GET DATA / WAIT FOR DIGIT come from
    ``keys`` ("" = timeout, "!" = the channel hangs up)."""

    def __init__(self, keys: list[str], stream_keys: list[str] | None = None) -> None:
        self.keys = list(keys)
        self.stream_keys = list(stream_keys or [])  # key pressed during each STREAM FILE
        self.sent: list[str] = []
        self.closed = False

    async def command(self, line: str) -> AGIResponse:
        self.sent.append(line)
        verb = " ".join(line.split()[:2])
        if verb in ("GET DATA", "WAIT FOR"):
            key = self.keys.pop(0) if self.keys else "!"
            if key == "!":
                return parse_response("200 result=-1")
            if verb == "WAIT FOR":
                return parse_response(f"200 result={ord(key[0]) if key else 0}")
            return parse_response(f"200 result={key} (timeout)" if not key
                                  else f"200 result={key}")
        if verb == "RECORD FILE":
            return parse_response("200 result=0 (timeout) endpos=16000")
        if verb == "HANGUP":
            return parse_response("200 result=1")
        if verb == "STREAM FILE":
            key = self.stream_keys.pop(0) if self.stream_keys else ""
            return parse_response(f"200 result={ord(key) if key else 0} endpos=8000")
        return parse_response("200 result=1")  # SET VARIABLE / SET CONTEXT / ...

    async def close(self) -> None:
        self.closed = True

    def verbs(self) -> list[str]:
        return [" ".join(c.split()[:2]) for c in self.sent]


class Tts:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.calls: list[tuple[str, str]] = []

    def __call__(self, text: str, voice: str) -> Path:
        self.calls.append((text, voice))
        return self.tmp / f"prompt{len(self.calls)}.wav"


def agi_run(script: Script, keys: list[str], db: sqlite_utils.Database, tmp: Path,
            call_id: str = "1700000000.1", **kw: Any) -> tuple[Any, CallRecorder,
                                                               FakeTransport, Tts]:
    transport = FakeTransport(keys)
    agi = AGIChannel(transport, {"agi_uniqueid": call_id, "agi_channel": "PJSIP/carrier-1"})
    tts = Tts(tmp)
    dialog = AgiDtmfDialog(agi, tts, recordings_dir=tmp / "rec", **kw)
    rec = CallRecorder(db, call_id)
    result = asyncio.run(SurveyRun(script, ORDERS[script.language], dialog, rec,
                                   clock=lambda: NOW).run())
    return result, rec, transport, tts


def test_dtmf_only_call_of_the_mandarin_script(cmn: Script, db: sqlite_utils.Database,
                                               tmp_path: Path) -> None:
    result, rec, t, tts = agi_run(cmn, ["2", "", "1", "3", "2"], db, tmp_path)
    assert result.path == ["intro", "satisfaction", "remedy", "reason", "suggestions",
                           "buy_again", "thanks"]
    assert results(rec) == {
        "satisfied": 0, "remedy_offered": "refund_or_voucher", "remedy_accepted": "refund",
        "reason": "logistics", "would_buy_again": 0, "callback_at": None,
        "outcome": "completed", "state": "completed", "current_node": "thanks"}
    assert t.verbs() == ["STREAM FILE", "GET DATA", "GET DATA", "GET DATA", "GET DATA",
                         "STREAM FILE", "RECORD FILE", "GET DATA", "STREAM FILE", "HANGUP"]
    prompt = str(tmp_path / "prompt2")
    assert t.sent[1] == f'GET DATA "{prompt}" 6000 1'  # extension stripped, 6 s, one key
    assert t.sent[0].endswith(' "0123456789*#"')  # barge-in: any key interrupts the intro
    assert t.sent[6] == (f'RECORD FILE "{tmp_path}/rec/1700000000.1-suggestions" "wav" "#" 30000 '
                         's=3')
    assert all(voice == "cmn-friendly-female" for _text, voice in tts.calls)
    assert "丹东草莓" in tts.calls[0][0] and "39.9元" in tts.calls[0][0]
    remedy = [a for a in rec.answers() if a["node"] == "remedy"][0]
    assert (remedy["intent"], remedy["tries"], remedy["dtmf"]) == ("refund", 2, "1")
    sugg = [a for a in rec.answers() if a["node"] == "suggestions"][0]
    assert sugg["recording"] == f"{tmp_path}/rec/1700000000.1-suggestions.wav"
    assert sugg["input_mode"] == "voice"


def test_transfer_sets_variables_and_continues_in_agent_context(
        cmn: Script, db: sqlite_utils.Database, tmp_path: Path) -> None:
    result, rec, t, _tts = agi_run(cmn, ["0"], db, tmp_path)
    assert result.ended_by == "transfer" and results(rec)["outcome"] == "transferred"
    sets = [c for c in t.sent if c.startswith("SET ")]
    assert sets[0] == 'SET VARIABLE __IVR_TRANSFER_TARGET "agents"'
    assert 'SET VARIABLE __IVR_ORDER_ID "A-1"' in sets
    assert 'SET VARIABLE __IVR_PRODUCT "丹东草莓"' in sets
    assert 'SET VARIABLE __IVR_PRICE "39.9"' in sets
    assert 'SET VARIABLE __IVR_CALL_ID "1700000000.1"' in sets
    assert 'SET VARIABLE __IVR_SURVEY "platform_satisfaction"' in sets
    assert sets[-3:] == ["SET CONTEXT ivr-agent", "SET EXTENSION agents", "SET PRIORITY 1"]
    assert "HANGUP" not in t.verbs()


def test_callback_with_two_digit_hour(cmn: Script, db: sqlite_utils.Database,
                                      tmp_path: Path) -> None:
    result, rec, t, _tts = agi_run(cmn, ["7", "20"], db, tmp_path)
    assert results(rec)["callback_at"] == "2024-05-06T12:00:00Z"
    assert t.sent[2].endswith(" 6000 2")  # callback_time collects up to two digits


def test_opt_out_over_agi(cmn: Script, db: sqlite_utils.Database, tmp_path: Path) -> None:
    result, rec, t, _tts = agi_run(cmn, ["9"], db, tmp_path)
    assert is_dnc(db, ORDERS["cmn"]["phone"]) and result.outcome == "opted_out"
    assert t.verbs()[-2:] == ["STREAM FILE", "HANGUP"]


def test_hangup_during_a_question(cmn: Script, db: sqlite_utils.Database,
                                  tmp_path: Path) -> None:
    result, rec, t, _tts = agi_run(cmn, ["2", "!"], db, tmp_path)
    assert result.ended_by == "hangup"
    assert results(rec)["satisfied"] == 0
    assert (results(rec)["state"], results(rec)["current_node"], results(rec)["outcome"]) == (
        "hangup", "remedy", "partial")
    assert t.verbs()[-1] == "GET DATA"  # nothing sent after the hangup


@pytest.mark.parametrize("line", ["HANGUP", "511 Command Not Permitted on a dead channel"])
def test_dead_channel_during_playback(line: str, cmn: Script, db: sqlite_utils.Database,
                                      tmp_path: Path) -> None:
    class Dead(FakeTransport):
        async def command(self, cmd: str) -> AGIResponse:
            self.sent.append(cmd)
            return parse_response(line)

    agi = AGIChannel(Dead([]), {"agi_uniqueid": "x"})
    rec = CallRecorder(db, "x")
    dialog = AgiDtmfDialog(agi, Tts(tmp_path))
    result = asyncio.run(SurveyRun(cmn, ORDERS["cmn"], dialog, rec).run())
    assert result.ended_by == "hangup" and results(rec)["current_node"] == "intro"


def test_no_barge_in_plays_then_waits_for_digits(tmp_path: Path) -> None:
    transport = FakeTransport(["2", "1"])
    dialog = AgiDtmfDialog(AGIChannel(transport, {}), Tts(tmp_path))
    q = Question(node="q", text="t", voice="v", language="cmn", phrases={},
                 dtmf={"21": "x"}, max_digits=2, timeout_s=5, barge_in=False)
    turn = asyncio.run(dialog.ask(q))
    assert (turn.kind, turn.intent, turn.dtmf) == ("match", "x", "21")
    assert transport.sent == [f'STREAM FILE "{tmp_path}/prompt1" ""', "WAIT FOR DIGIT 5000",
                              "WAIT FOR DIGIT 5000"]


def test_key_pressed_during_a_statement_answers_the_next_question(tmp_path: Path) -> None:
    transport = FakeTransport(["1"], stream_keys=["2"])
    dialog = AgiDtmfDialog(AGIChannel(transport, {}), Tts(tmp_path))
    q = Question(node="q", text="t", voice=None, language="cmn", phrases={},
                 dtmf={"1": "yes", "2": "no"})
    asyncio.run(dialog.say("intro", voice=None, barge_in=True))
    first, second = asyncio.run(dialog.ask(q)), asyncio.run(dialog.ask(q))
    # the typed-ahead 2 is the first answer (its prompt is skipped), never shifted to the next
    assert (first.intent, first.dtmf, second.intent) == ("no", "2", "yes")
    assert transport.verbs() == ["STREAM FILE", "GET DATA"]


def test_typed_ahead_key_starts_a_multi_key_answer_and_an_open_answer_drops_it(
        tmp_path: Path) -> None:
    transport = FakeTransport(["3", "#"], stream_keys=["1", "5"])
    dialog = AgiDtmfDialog(AGIChannel(transport, {}), Tts(tmp_path),
                           recordings_dir=tmp_path / "rec")
    q = Question(node="q", text="t", voice=None, language="cmn", phrases={},
                 dtmf={}, dtmf_patterns=((r"\d{1,2}", "hour"),), max_digits=2)
    asyncio.run(dialog.say("intro", voice=None, barge_in=True))
    assert asyncio.run(dialog.ask(q)).dtmf == "13"
    asyncio.run(dialog.say("intro", voice=None, barge_in=True))
    asyncio.run(dialog.record("tell us", voice=None, max_s=5, node="s"))
    assert dialog.typeahead == ""


def test_hash_only_skips_a_statement(tmp_path: Path) -> None:
    dialog = AgiDtmfDialog(AGIChannel(FakeTransport([], stream_keys=["#"]), {}), Tts(tmp_path))
    asyncio.run(dialog.say("intro", voice=None, barge_in=True))
    assert dialog.typeahead == ""


def test_unknown_key_is_no_match_and_timeout_is_no_input(tmp_path: Path) -> None:
    dialog = AgiDtmfDialog(AGIChannel(FakeTransport(["8", ""]), {}), Tts(tmp_path))
    q = Question(node="q", text="t", voice=None, language="cmn", phrases={}, dtmf={"1": "a"})
    first, second = asyncio.run(dialog.ask(q)), asyncio.run(dialog.ask(q))
    assert (first.kind, first.dtmf, first.intent) == ("nomatch", "8", None)
    assert (second.kind, second.dtmf) == ("noinput", None)


def test_open_answer_is_transcribed_when_possible(tmp_path: Path) -> None:
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "c1-s.wav").write_bytes(b"RIFF")
    dialog = AgiDtmfDialog(AGIChannel(FakeTransport([]), {"agi_uniqueid": "c1"}), Tts(tmp_path),
                           recordings_dir=tmp_path / "rec", transcribe=lambda p: f"heard {p.name}")
    got = asyncio.run(dialog.record("tell us", voice=None, max_s=10, node="s"))
    assert got == (f"{tmp_path}/rec/c1-s.wav", "heard c1-s.wav")


def test_playable_strips_sound_extensions() -> None:
    assert [playable("/a/b.wav"), playable("/a/b.sln"), playable("/a/b")] == ["/a/b"] * 3


class Dead(FakeTransport):
    """A channel that is gone: every command answers ``line``."""

    def __init__(self, line: str = "511 Command Not Permitted on a dead channel") -> None:
        super().__init__([])
        self.line = line

    async def command(self, cmd: str) -> AGIResponse:
        self.sent.append(cmd)
        return parse_response(self.line)


QUESTION = Question(node="q", text="t", voice=None, language="cmn", phrases={}, dtmf={"1": "a"},
                    max_digits=2)


@pytest.mark.parametrize("line", ["HANGUP", "511 Command Not Permitted on a dead channel"])
@pytest.mark.parametrize("step", ["say", "ask", "ask without barge-in", "record", "transfer"])
def test_every_channel_hangup_reaches_the_survey_as_dialog_hangup(step: str, line: str,
                                                                   tmp_path: Path) -> None:
    dialog = AgiDtmfDialog(AGIChannel(Dead(line), {"agi_uniqueid": "x"}), Tts(tmp_path),
                           recordings_dir=tmp_path)
    steps = {
        "say": lambda: dialog.say("t", voice=None, barge_in=True),
        "ask": lambda: dialog.ask(QUESTION),
        "ask without barge-in": lambda: dialog.ask(replace(QUESTION, barge_in=False)),
        "record": lambda: dialog.record("t", voice=None, max_s=5, node="q"),
        "transfer": lambda: dialog.transfer("agents", {"IVR_ORDER_ID": "A-1"}),
    }
    with pytest.raises(DialogHangup):
        asyncio.run(steps[step]())
    asyncio.run(dialog.hangup())  # hanging up a channel that is gone is no error


def test_voice_turn_on_a_dead_channel_is_a_dialog_hangup(ko_model: Any, tmp_path: Path) -> None:
    """AudioSocket() on a channel that hung up: DialogHangup, and the turn is unregistered."""
    from ivr.call.voice_dialog import AgiVoiceDialog, audiosocket_server

    class Silent:
        def render_pcm(self, text: str, voice: str) -> bytes:
            return b""

    dead = Dead()
    tts: Any = Silent()
    dialog = AgiVoiceDialog(AgiDtmfDialog(AGIChannel(dead, {"agi_uniqueid": "x"}), Tts(tmp_path)),
                            tts, ko_model, language="ko", source="test", default_voice="v")
    q = replace(QUESTION, language="ko", phrases={"a": ("네",)})

    async def ask() -> int:
        with pytest.raises(DialogHangup):
            await dialog.ask(q)
        return len((await audiosocket_server())._pending)

    assert asyncio.run(ask()) == 0
    assert [c.split()[:2] for c in dead.sent] == [["EXEC", "AudioSocket"]]
