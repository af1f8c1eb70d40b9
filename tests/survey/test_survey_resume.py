"""Resuming from stored state, hangups at every step, opt-out and callback side effects."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlite_utils
from support.survey import NOW, ORDERS, results, run, run_answers

from ivr.store import CallRecorder, is_dnc
from ivr.survey.callback import callback_time, parse_hour
from ivr.survey.dialog import DialogHangup, Question, TurnResult
from ivr.survey.engine import SurveyRun
from ivr.survey.script import CallbackPolicy, Script
from ivr.survey.simulate import ScriptedDialog


class Crash(Exception):
    """The AGI request dies (daemon restart, network) without a hangup."""


class CrashingDialog(ScriptedDialog):
    """Answers from a list, then the request dies at the next question."""

    async def ask(self, question: Question) -> TurnResult:
        if self.used >= len(self.answers):
            raise Crash(question.node)
        return await super().ask(question)


class HangupAtStep(ScriptedDialog):
    """The callee hangs up at the n-th dialog action (say, ask, record or transfer)."""

    def __init__(self, answers: list[str], step: int) -> None:
        super().__init__(answers)
        self.step, self.actions = step, 0

    def _tick(self) -> None:
        self.actions += 1
        if self.actions == self.step:
            raise DialogHangup(f"step {self.step}")

    async def say(self, text: str, **kw: Any) -> None:
        self._tick()
        await super().say(text, **kw)

    async def ask(self, question: Question) -> TurnResult:
        self._tick()
        return await super().ask(question)

    async def record(self, text: str, **kw: Any) -> Any:
        self._tick()
        return await super().record(text, **kw)

    async def transfer(self, target: str, variables: Any) -> None:
        self._tick()
        await super().transfer(target, variables)


FULL = ["2", "1", "3", "多检查质量", "1"]  # unsatisfied, refund, logistics, suggestion, yes


def test_resume_after_a_crash_does_not_reask(cmn: Script, db: sqlite_utils.Database) -> None:
    with pytest.raises(Crash):
        run(cmn, CrashingDialog(FULL[:2]), db)
    rec = CallRecorder(db, "call-1")
    assert results(rec)["current_node"] == "reason"
    assert [a["node"] for a in rec.answers()] == ["satisfaction", "remedy"]

    retry = ScriptedDialog(FULL[2:])
    result, rec = run(cmn, retry, db)
    assert result.path == ["reason", "suggestions", "buy_again", "thanks"]
    assert not any("satisfaction" in line or "remedy" in line for line in retry.log)
    assert results(rec) == {
        "satisfied": 0, "remedy_offered": "refund_or_voucher", "remedy_accepted": "refund",
        "reason": "logistics", "would_buy_again": 1, "callback_at": None,
        "outcome": "recovered", "state": "completed", "current_node": "thanks"}
    assert [(a["seq"], a["node"]) for a in rec.answers()] == [
        (1, "satisfaction"), (2, "remedy"), (3, "reason"), (4, "suggestions"), (5, "buy_again")]


def test_resume_when_the_answer_was_stored_but_not_the_transition(
        cmn: Script, db: sqlite_utils.Database) -> None:
    rec = CallRecorder(db, "call-1")
    rec.start(phone=ORDERS["cmn"]["phone"])
    rec.answer("satisfaction", intent="unsatisfied", dtmf="2", input_mode="dtmf", tries=1)
    assert results(rec)["current_node"] == "satisfaction"

    result, rec, dialog = run_answers(cmn, FULL[1:], db)
    assert result.path == ["remedy", "reason", "suggestions", "buy_again", "thanks"]
    assert results(rec)["satisfied"] == 0  # re-applied from the stored answer
    assert len(rec.answers()) == 5


def test_resume_from_a_stored_callback_answer_keeps_the_hour(
        cmn: Script, db: sqlite_utils.Database) -> None:
    rec = CallRecorder(db, "call-1")
    rec.start()
    rec.answer("callback_time", intent="at_hour", dtmf="21", input_mode="dtmf")
    result, rec, _d = run_answers(cmn, [], db)
    assert result.path == ["callback_bye"]
    assert results(rec)["callback_at"] == "2024-05-06T13:00:00Z"  # 21:00 Shanghai


def test_unknown_stored_node_starts_over(cmn: Script, db: sqlite_utils.Database) -> None:
    rec = CallRecorder(db, "call-1")
    rec.start(current_node="renamed_in_new_version")
    result, _rec, _d = run_answers(cmn, ["1", "-", "1"], db)
    assert result.path[0] == "intro" and result.outcome == "completed"


def _full_run_actions(script: Script, answers: list[str], db: sqlite_utils.Database) -> int:
    probe = HangupAtStep(answers, step=10_000)
    run(script, probe, db, call_id="probe")
    return probe.actions


@pytest.mark.parametrize("lang", ["cmn", "ko"])
@pytest.mark.parametrize("answers", [
    FULL, ["1", "建议", "2"], ["7", "20"], ["9"], ["0"], ["-", "-", "-"],
], ids=["unhappy", "happy", "callback", "opt_out", "agent", "silent"])
def test_hangup_at_every_step_leaves_a_consistent_record(
        answers: list[str], lang: str, scripts: dict[str, Script],
        db: sqlite_utils.Database) -> None:
    cmn = scripts[lang]
    steps = _full_run_actions(cmn, answers, db)
    assert steps >= 2
    for step in range(1, steps + 1):
        call_id = f"hangup-{step}"
        dialog = HangupAtStep(answers, step)
        result, rec = run(cmn, dialog, db, call_id=call_id)
        row = results(rec)
        assert result.ended_by == "hangup", step
        assert row["state"] == "hangup"
        assert row["current_node"] == result.path[-1]  # where the callee left
        node = cmn.nodes[result.path[-1]]
        terminal = node.kind in ("end", "transfer")
        assert row["outcome"] == (result.outcome if terminal else "partial")
        # every stored answer's result fields are stored, and nothing else is
        expected: dict[str, Any] = {}
        for name in result.path:
            expected.update(cmn.nodes[name].set)
        for a in rec.answers():
            spec = cmn.intents_of(cmn.nodes[a["node"]]).get(a["intent"] or "")
            if spec is not None:
                expected.update(spec.set)
        for f in ("satisfied", "remedy_offered", "remedy_accepted", "reason", "would_buy_again"):
            assert row[f] == expected.get(f), (step, f)
        assert (row["callback_at"] is None) == ("callback_at" not in expected)
        # answers are exactly the questions completed before the hangup
        asked = [n for n in result.path if cmn.nodes[n].kind in ("question", "open")]
        assert [a["node"] for a in rec.answers()] == asked[:len(rec.answers())]
        assert len(rec.answers()) in (len(asked), len(asked) - 1)


def test_opt_out_writes_dnc_before_the_goodbye(cmn: Script, db: sqlite_utils.Database) -> None:
    phone = ORDERS["cmn"]["phone"]
    seen: list[bool] = []

    class Watch(ScriptedDialog):
        async def say(self, text: str, **kw: Any) -> None:
            seen.append(is_dnc(db, phone))
            await super().say(text, **kw)

    result, rec = run(cmn, Watch(["1", "-", "9"]), db)
    assert result.outcome == "opted_out"
    assert seen == [False, True]  # intro before, goodbye after the DNC write
    row = db.table("dnc").get(phone)
    assert row["source"] == "survey" and "opt_out_bye" in row["reason"]


def test_opt_out_then_hangup_keeps_dnc_and_outcome(cmn: Script,
                                                     db: sqlite_utils.Database) -> None:
    phone = ORDERS["cmn"]["phone"]
    dialog = HangupAtStep(["9"], step=3)  # intro, question, goodbye <- hangup
    result, rec = run(cmn, dialog, db)
    assert is_dnc(db, phone)
    assert (results(rec)["outcome"], results(rec)["state"]) == ("opted_out", "hangup")


def test_custom_dnc_callback(cmn: Script, db: sqlite_utils.Database) -> None:
    calls: list[str] = []
    result, _rec, _d = run_answers(cmn, ["9"], db, dnc_callback=calls.append)
    assert len(calls) == 1 and "platform_satisfaction" in calls[0]
    assert not is_dnc(db, ORDERS["cmn"]["phone"])


def test_mark_machine(cmn: Script, db: sqlite_utils.Database) -> None:
    rec = CallRecorder(db, "m-1")
    dialog = ScriptedDialog([])
    engine = SurveyRun(cmn, ORDERS["cmn"], dialog, rec)
    asyncio.run(engine.mark_machine("MACHINE/LONGGREETING"))
    assert results(rec)["outcome"] == "machine" and results(rec)["state"] == "completed"
    assert dialog.hung_up and rec.answers() == []


POLICY = CallbackPolicy(timezone="Asia/Shanghai", default_delay_min=90, tonight_hour=20,
                        tomorrow_hour=10)


@pytest.mark.parametrize("spec,dtmf,said,now,expected", [
    ("tonight", None, None, NOW, "2024-05-06T12:00:00Z"),
    # 20:30 local: "tonight" has passed -> the default delay
    ("tonight", None, None, datetime(2024, 5, 6, 12, 30, tzinfo=UTC), "2024-05-06T14:00:00Z"),
    ("tomorrow", None, None, NOW, "2024-05-07T02:00:00Z"),
    ("default", None, None, NOW, "2024-05-06T07:30:00Z"),
    ("+3h", None, None, NOW, "2024-05-06T09:00:00Z"),
    ("+1d", None, None, NOW, "2024-05-07T06:00:00Z"),
    ("hour", "09", None, NOW, "2024-05-07T01:00:00Z"),  # 09:00 has passed today
    ("hour", "14", None, NOW, "2024-05-07T06:00:00Z"),  # now is 14:00: not within 30 min
    ("hour", "15", None, NOW, "2024-05-06T07:00:00Z"),
    ("hour", None, "晚上8点", NOW, "2024-05-06T12:00:00Z"),
    ("hour", None, "저녁 8시", NOW, "2024-05-06T12:00:00Z"),
    ("hour", "99", None, NOW, "2024-05-06T07:30:00Z"),  # nonsense -> default
])
def test_callback_time(spec: str, dtmf: str | None, said: str | None, now: datetime,
                       expected: str) -> None:
    assert callback_time(spec, now=now, policy=POLICY, dtmf=dtmf, transcript=said) == expected


def test_callback_uses_the_contact_timezone(cmn: Script, db: sqlite_utils.Database) -> None:
    order = dict(ORDERS["cmn"], timezone="Asia/Urumqi")  # UTC+6
    _r, rec = run(cmn, ScriptedDialog(["7", "1"]), db, order=order)
    assert results(rec)["callback_at"] == "2024-05-06T14:00:00Z"


def test_parse_hour() -> None:
    assert [parse_hour("7", None), parse_hour("23#", None), parse_hour(None, "8 点"),
            parse_hour(None, "明天"), parse_hour("24", None)] == [7, 23, 8, None, None]
