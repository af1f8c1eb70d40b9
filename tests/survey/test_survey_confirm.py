"""The script's `confirm` section: validated like the rest, rendered per phrase, pre-rendered."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from support.survey import CMN, KO, ORDERS, write
from test_survey_validation import BASE, problems

from ivr.store import CallRecorder, open_db
from ivr.survey.dialog import Question, Recording, TurnResult
from ivr.survey.engine import SurveyRun
from ivr.survey.loader import load_script
from ivr.survey.prerender import script_prompts

CONFIRM = """\
confirm:
  prompt: "您是说{{ answer }}，对吗？"
  yes: {phrases: {cmn: ["对", "是 的"]}, dtmf: "1"}
  no: {phrases: {cmn: ["不 对"]}, dtmf: "2"}
"""


def with_confirm(tmp_path: Path, block: str = CONFIRM) -> Path:
    return write(tmp_path, BASE.replace("nodes:\n", block + "nodes:\n", 1))


def test_shipped_scripts_confirm_unsure_answers() -> None:
    for path in (CMN, KO):
        script = load_script(path)
        assert script.confirm is not None
        assert script.confirm.yes.dtmf == ["1"] and script.confirm.no.dtmf == ["2"]


def test_confirmation_words_are_checked_against_the_model(tmp_path: Path) -> None:
    path = with_confirm(tmp_path)
    load_script(path)
    msgs = problems(path, vocabulary=lambda w: w != "是")
    line = path.read_text(encoding="utf-8").splitlines().index(
        '  yes: {phrases: {cmn: ["对", "是 的"]}, dtmf: "1"}') + 1
    assert msgs == [f"{path}:{line}: confirm: word '是' of phrase '是 的' (intent 'yes') is not "
                    f"in the speech model vocabulary"]


@pytest.mark.parametrize("block, message", [
    (CONFIRM.replace('["不 对"]', '["对"]'), "phrases ['对'] are both yes and no"),
    (CONFIRM.replace('dtmf: "2"', 'dtmf: "1"'), "keys ['1'] are both yes and no"),
    (CONFIRM.replace("{{ answer }}", "{{ anwser }}"), "template field 'anwser'"),
    (CONFIRM.replace('"您是说{{ answer }}，对吗？"', '{ko: "{{ answer }}, 맞으세요?"}'),
     "no confirmation prompt for the script language 'cmn'"),
    (CONFIRM.replace('dtmf: "1"}', 'dtmf: "1", goto: bye}'), "takes only phrases and dtmf"),
    (CONFIRM.replace('  no: {phrases: {cmn: ["不 对"]}, dtmf: "2"}\n', ""),
     "confirm: missing required field 'no'"),
])
def test_bad_confirmation_is_refused_with_its_place(tmp_path: Path, block: str,
                                                    message: str) -> None:
    msgs = problems(with_confirm(tmp_path, block))
    assert any(message in m for m in msgs), msgs
    assert all(m.startswith(str(tmp_path)) for m in msgs)


class Capture:
    """A dialog that answers every question with its first key and keeps the questions."""

    def __init__(self) -> None:
        self.questions: list[Question] = []

    async def say(self, text: str, *, voice: str | None, barge_in: bool) -> None:
        return None

    async def ask(self, question: Question) -> TurnResult:
        self.questions.append(question)
        key = next(iter(question.dtmf))
        return TurnResult("match", intent=question.dtmf[key], dtmf=key, input_mode="dtmf")

    async def record(self, text: str, *, voice: str | None, max_s: float, node: str,
                     barge_in: bool = True) -> Recording:
        return Recording(None, None)

    async def transfer(self, target: str, variables: object) -> None:
        return None

    async def hangup(self) -> None:
        return None


def test_questions_carry_a_rendered_confirmation_per_phrase(tmp_path: Path) -> None:
    script = load_script(CMN)
    dialog = Capture()
    run = SurveyRun(script, ORDERS["cmn"], dialog, CallRecorder(open_db(tmp_path / "d.db"), "c"),
                    language="cmn", dnc_callback=lambda reason: None)
    asyncio.run(run.run())
    q = dialog.questions[0]
    assert q.confirm is not None
    assert q.confirm.texts["不 满意"] == "您是说不满意，对吗？请说对或者不对。"
    assert set(q.confirm.texts) == {p for ps in q.phrases.values() for p in ps}
    assert q.confirm.phrases["yes"][0] == "对" and q.confirm.dtmf == {"1": "yes", "2": "no"}
    # every confirmation a call can speak is among the prompts rendered before dialing
    prompts = set(script_prompts(script, ORDERS["cmn"], "cmn"))
    for question in dialog.questions:
        if question.confirm is not None:
            assert set(question.confirm.texts.values()) <= prompts


def test_a_question_can_opt_out_and_keys_only_tries_never_confirm(tmp_path: Path) -> None:
    text = BASE.replace("nodes:\n", CONFIRM + "nodes:\n", 1).replace(
        "    prompt: 满意吗？\n", "    prompt: 满意吗？\n    confirm: false\n")
    script = load_script(write(tmp_path, text))
    dialog = Capture()
    run = SurveyRun(script, {"product": "茶", "price": 9}, dialog,
                    CallRecorder(open_db(tmp_path / "d.db"), "c"), language="cmn",
                    dnc_callback=lambda reason: None)
    asyncio.run(run.run())
    assert dialog.questions and all(q.confirm is None for q in dialog.questions)
