"""Confirmation of unsure voice answers on real calls ("네 만족, 맞으세요?").

tests/data/mini.ko.yaml with the Korean survey's `confirm` section; the bed's confidence model is
overridden (speech.confidence.ko: threshold 1.0, confirm_floor 0.0) so that every voice answer is
"unsure" and must be confirmed: the stored answer then depends on what the customer says to the
confirmation, heard by the real Korean model over the SIP trunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.phrase_check import speak

from ivr.config import PROJECT_ROOT
from ivr.dialer.types import DialResult
from ivr.farend.bed import Bed
from ivr.farend.customer_plan import Answer, plan_customer
from ivr.speech.tts import engine
from ivr.survey.loader import load_script

pytestmark = [pytest.mark.asterisk, pytest.mark.asr, pytest.mark.usefixtures("telephony")]

MINI = Path(__file__).parent.parent / "data" / "mini.ko.yaml"
KO = PROJECT_ROOT / "surveys" / "platform_satisfaction.ko.yaml"
VOICE = "ko-calm-male"
ANSWER_VOICE = ("ko+f3", 150)  # as in test_voice_calls.py
# Confirmation replies: 네 and 아니요 by ko+f3 at 170 wpm scored >= 0.82 at 8 start phases with
# the confirmation's grammar and threshold (0.55).
REPLY_VOICE = ("ko+f3", 170)


def confirm_script(tmp: Path) -> Path:
    """mini.ko.yaml plus the confirm section of the shipped Korean survey."""
    ko = KO.read_text(encoding="utf-8")
    block = ko[ko.index("confirm:\n"):ko.index("global_intents:")]
    text = MINI.read_text(encoding="utf-8").replace("nodes:\n", block + "nodes:\n", 1)
    out = tmp / "confirm.ko.yaml"
    out.write_text(text, encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def script_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return confirm_script(tmp_path_factory.mktemp("script"))


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory, script_path: Path) -> Iterator[Bed]:
    home = tmp_path_factory.mktemp("confirm-bed")
    words = home / "words"

    def say(text: str, who: tuple[str, int] = ANSWER_VOICE) -> Path:
        return speak(text, words, *who)

    yes, no = say("네", REPLY_VOICE), say("아니요", REPLY_VOICE)
    plans = {
        # confirmed twice: both answers stored by voice at the first try
        "821000000011": [Answer(speech=say("네 만족"), intent="satisfied", heard="네 만족",
                                confirm_reply=yes),
                         Answer(speech=say("환불"), intent="refund", heard="환불",
                                confirm_reply=yes)],
        # "no" to the confirmation: asked again; then 아니요 confirmed; remedy by key
        "821000000012": [Answer(speech=say("네 만족"), heard="네 만족", confirm_reply=no,
                                confirmed=False),
                         Answer(speech=say("아니요"), intent="unsatisfied", heard="아니요",
                                confirm_reply=yes),
                         Answer(key="2")],
    }
    overrides = {"speech": {"confidence": {"ko": {"threshold": 1.0, "noisy_threshold": 1.0,
                                                  "confirm_floor": 0.0}}}}
    with Bed(home, platform="예시몰", language="ko", **overrides) as b:
        script = load_script(script_path)
        b.start_customers([plan_customer(number, script, {"platform": "예시몰"}, answers,
                                         engine(b.settings), voice=VOICE, language="ko",
                                         work_dir=home)
                           for number, answers in plans.items()])
        yield b


def call(bed: Bed, number: str, script: Path) -> DialResult:
    return bed.dial_survey(number, script, language="ko", voice=VOICE)


def test_confirmed_answers_are_stored(bed: Bed, script_path: Path) -> None:
    r = call(bed, "821000000011", script_path)
    log = bed.fastagi_log()
    assert bed.answers(r.uniqueid) == [("satisfaction", "satisfied", "voice", 1),
                                       ("remedy", "refund", "voice", 1)], log[-4000:]
    assert "confirm satisfaction '네 만족'" in log and "confirm remedy '환불'" in log
    flags = [a["confirmed"] for a in bed.db()["answers"].rows_where("call_id = ?", [r.uniqueid])]
    assert flags == [1, 1]
    row = bed.call_row(r.uniqueid)
    assert (row["satisfied"], row["remedy_accepted"]) == (1, "refund")


def test_denied_answer_is_asked_again(bed: Bed, script_path: Path) -> None:
    r = call(bed, "821000000012", script_path)
    log = bed.fastagi_log()
    got = bed.answers(r.uniqueid)
    # never stored as satisfied: the caller said no to "네 만족, 맞으세요?"
    assert got == [("satisfaction", "unsatisfied", "voice", 2),
                   ("remedy", "voucher", "dtmf", 1)], log[-4000:]
    assert "confirm satisfaction '네 만족' (p=" in log and "): no" in log
    flags = [a["confirmed"] for a in bed.db()["answers"].rows_where("call_id = ?", [r.uniqueid],
                                                                     order_by="seq")]
    assert flags == [1, 0]  # the keyed remedy needed no confirmation
