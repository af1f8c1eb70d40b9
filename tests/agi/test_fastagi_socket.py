"""The FastAGI daemon as Asterisk sees it: AGI spoken over a loopback socket."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from support.agi_peer import Step, play_fastagi

from ivr.agi.fastagi import serve
from ivr.asterisk.render import agi_secret
from ivr.config import Settings
from ivr.farend.bed import free_port
from ivr.store import open_db


def settings_for(tmp_path: Path) -> Settings:
    s = Settings(home=tmp_path)
    s.agi.port = free_port()
    return s


def run_session(settings: Settings, script: str, steps: list[Step], **headers: str) -> list[str]:
    async def main() -> list[str]:
        ready = asyncio.Event()
        server = asyncio.create_task(serve(settings, ready))
        await ready.wait()
        try:
            t = await play_fastagi("127.0.0.1", settings.agi.port, script, steps,
                                   secret=agi_secret(settings), **headers)
            await asyncio.sleep(0.1)  # let the handler's last writes land
            assert not t.unexpected, t.unexpected
            return t.commands
        finally:
            server.cancel()

    return asyncio.run(main())


MINI = str(Path(__file__).parent.parent / "data" / "mini.cmn.yaml")


@pytest.fixture
def prompts(monkeypatch: pytest.MonkeyPatch) -> None:
    # Rendering is tested elsewhere; here only the AGI conversation matters.
    monkeypatch.setattr("ivr.call.handler.prompt_file", lambda s, text, *a, **k: "/tmp/p")


def vars_steps(values: dict[str, str]) -> list[Step]:
    """Asterisk's answers to the AGI reading the call's variables (CallVariables.read)."""
    from ivr.call.variables import CHANNEL, CallVariables

    return [("GET VARIABLE", f"200 result=1 ({values[v]})" if v in values else "200 result=0")
            for v in (CHANNEL[f] for f in CallVariables.CALL_FIELDS)]


def test_survey_over_socket_stores_answer(tmp_path: Path, prompts: None) -> None:
    settings = settings_for(tmp_path)
    steps = [*vars_steps({"IVR_PHONE": "+8613912345678", "IVR_ATTEMPT": "7", "IVR_SCRIPT": MINI}),
             ("ANSWER", "200 result=0"), ("STREAM FILE", "200 result=0 endpos=100"),
             ("GET DATA", "200 result=2"), ("GET DATA", "200 result=1"),
             ("STREAM FILE", "200 result=0 endpos=100"), ("HANGUP", "200 result=1")]
    run_session(settings, "survey", steps, agi_uniqueid="1700000000.5")
    db = open_db(settings.db_path)
    call = db["calls"].get("1700000000.5")
    assert (call["state"], call["satisfied"], call["would_buy_again"], call["attempt_id"]) == (
        "completed", 0, 1, 7)
    answers = list(db["answers"].rows)
    assert [(a["node"], a["intent"], a["dtmf"]) for a in answers] == [
        ("satisfaction", "unsatisfied", "2"), ("again", "yes", "1")]


def test_hangup_mid_question_is_recorded_cleanly(tmp_path: Path, prompts: None) -> None:
    settings = settings_for(tmp_path)
    steps = [*vars_steps({"IVR_PHONE": "+8613912345678", "IVR_SCRIPT": MINI}),
             ("ANSWER", "200 result=0"),
             ("STREAM FILE", "200 result=0 endpos=1"), ("GET DATA", None)]  # caller hangs up
    run_session(settings, "survey", steps, agi_uniqueid="1700000000.6")
    call = open_db(settings.db_path)["calls"].get("1700000000.6")
    assert call["state"] == "hangup" and call["ended_at"]
    assert call["error"] is None


def test_511_dead_channel_ends_handler(tmp_path: Path, prompts: None) -> None:
    settings = settings_for(tmp_path)
    steps = [*vars_steps({"IVR_SCRIPT": MINI}), ("ANSWER", "200 result=0"),
             ("STREAM FILE", "511 Command Not Permitted on a dead channel")]
    run_session(settings, "survey", steps, agi_uniqueid="1700000000.7")
    assert open_db(settings.db_path)["calls"].get("1700000000.7")["state"] == "hangup"


def test_guard_refuses_bad_and_dnc_numbers(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    from ivr.store import add_dnc

    add_dnc(open_db(settings.db_path), "+8613900000009", "asked", "test")
    # +8613999123456 is a Xinjiang mobile number: the default region rules send a message instead.
    for digits, verdict in (("8613912345678", "allow"), ("8613900000009", "deny"),
                            ("12", "deny"), ("8613999123456", "deny")):
        steps: list[Step] = [("GET VARIABLE IVR_TRUNK", "200 result=0"),
                             ("GET VARIABLE IVR_DIAL_PREFIX", "200 result=0"),
                             ("GET VARIABLE IVR_CALLER_ID", "200 result=0"),
                             ("GET VARIABLE IVR_RING_TIMEOUT", "200 result=0"),
                             ("SET VARIABLE IVR_GUARD_REASON", "200 result=1")]
        commands = run_session(settings, "guard", steps,
                               agi_arg_1=digits)
        assert f'SET VARIABLE IVR_GUARD "{verdict}"' in commands


def test_unknown_handler_does_not_crash_daemon(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    commands = run_session(settings, "nope", [])
    assert any("no such AGI handler" in c for c in commands)
