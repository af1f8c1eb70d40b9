"""Every branch of the Korean survey on real calls, answered by voice (issue #4's decisive test).

sipp customers speak Korean (espeak-ng) over the PJSIP trunk; the IVR hears them through
AudioSocket and the Korean Vosk model, with surveys/platform_satisfaction.ko.yaml as written. The
words each customer says come FROM THE SCRIPT: for every (question, intent) a call needs, the first
of the intent's phrases that the recogniser hears reliably (support.phrase_check: telephone
audio decoded as a real turn at 16 start phases of the 20 ms frame grid) with one of a few espeak
voices. Every answer is spoken: an intent none of whose phrases is heard reliably fails the test
with the measurements (the customer presses its key instead, so the other checks still run).

All calls run at once in one bed (one sipp UAS serves every customer), so the file costs about one
full survey's time. Several branches share a call: 5 unhappy buyers cover 3 remedies x 5 reasons x
the 3 outcome rules; global intents are said at different questions.
"""

from __future__ import annotations

import asyncio
import os
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.phrase_check import PhraseCheck, reliable_phrase, speak

from ivr.call.variables import CallVariables
from ivr.config import PROJECT_ROOT, Settings
from ivr.dialer.ami import AmiOriginator
from ivr.dialer.types import DialResult
from ivr.farend.bed import Bed
from ivr.farend.customer_plan import Answer, plan_customer
from ivr.farend.sipp import Customer, Say, Wait
from ivr.speech.audio import rms
from ivr.speech.models import get_model
from ivr.speech.tts import engine
from ivr.survey.callback import callback_time
from ivr.survey.loader import load_script
from ivr.survey.orders import order_context
from ivr.survey.script import Script

pytestmark = [pytest.mark.asterisk, pytest.mark.asr, pytest.mark.usefixtures("telephony")]

# IVR_TEST_KO_SCRIPT: try candidate phrases on real calls in a copy of the script, before
# changing the script itself.
SCRIPT = Path(os.environ.get("IVR_TEST_KO_SCRIPT")
              or PROJECT_ROOT / "surveys" / "platform_satisfaction.ko.yaml")
VOICE = "ko-calm-male"  # the IVR's prompts
PLATFORM = "예시몰"
TIMEZONE = "Asia/Seoul"
ORDER = {"product": "유아용 물티슈", "category": "baby", "price": 12900.0,
         "merchant": "행복맘 공식몰", "host": "민지", "platform": PLATFORM,
         "order_time": "2026-11-20T20:15:00+09:00"}
# Customer voices tried for a phrase, in order (espeak voice, words per minute). ko+f3@150 is the
# measured default of test_voice_calls.py; the others hear some words the default does not
# (measured: 내일 16/16 only with ko+m3@170, 안 사요 and 아니요 with ko+m1@150).
COMBOS = (("ko+f3", 150), ("ko+f3", 170), ("ko+m1", 150), ("ko+m3", 150), ("ko+f2", 170),
          ("ko+m3", 170))
# Voices for answers none of COMBOS gets through at every phase, tried first. Found by screening
# every espeak-ng Korean variant (101) at 130/150/170/190 wpm (`tests/support/phrase_check.py
# surveys/platform_satisfaction.ko.yaml reason/quality satisfaction/callback ...`), re-screened
# for the n-best recogniser with its confidence model (a phrase it is unsure of is rejected, never
# taken for another). Measured with the script as it is: 물건 불량 16/16 with ko+Hugo@170;
# 나중에 전화 주세요 with ko+Diogo/Henrique@150 at the satisfaction question, @190 at the others;
# 배송 문제 with ko+Diogo@190; 서비스 문제 with ko+Hugo@130-170 (0.76 on a call at 150: 130 scores
# higher) and ko+Henrique@130/170; 다른 이유 with
# ko+Andrea@130 (다른 문제 with the klatt voices); 사람 바꿔 주세요 at the reason question with
# ko+Diogo@150-190 and dozens of voices at 190; 좋아요 with ko+Annie@130-190; 내일 with
# ko+Andrea@150/190 (all with HEADROOM over the confidence threshold, see support.phrase_check).
CALL_ME_LATER = (("ko+Diogo", 150), ("ko+Henrique", 150), ("ko+Henrique", 190), ("ko+Diogo", 190))
PREFERRED: dict[tuple[str, str], tuple[tuple[str, int], ...]] = {
    ("reason", "quality"): (("ko+Hugo", 170), ("ko+Hugo", 190)),
    ("reason", "logistics"): (("ko+Diogo", 190), ("ko+Antonio", 190), ("ko+Belinda", 190)),
    ("reason", "service"): (("ko+Hugo", 130), ("ko+Henrique", 130), ("ko+Hugo", 150)),
    ("reason", "other"): (("ko+Andrea", 130), ("ko+klatt4", 150), ("ko+klatt5", 150)),
    ("reason", "agent"): (("ko+Diogo", 170), ("ko+Henrique", 190)),
    ("satisfaction", "satisfied"): (("ko+Annie", 150), ("ko+Annie", 170), ("ko+klatt5", 150)),
    ("callback_time", "tomorrow"): (("ko+Andrea", 150), ("ko+Demonic", 150), ("ko+Andrea", 190)),
    ("satisfaction", "callback"): CALL_ME_LATER,
    ("remedy", "callback"): CALL_ME_LATER,
    ("reason", "callback"): CALL_ME_LATER,
}
SUGGESTION = "라이브 방송 상품 품질을 더 꼼꼼히 확인해 주세요"  # said at the open question
SPEAK, SILENT = "speak", "silent"  # how a customer answers the open question
MACHINE_GREETING = ("안녕하세요 지금은 전화를 받을 수 없습니다 삐 소리가 나면 이름과 전화번호를 "
                    "남겨 주시면 바로 연락드리겠습니다 감사합니다")


@dataclass(frozen=True)
class Case:
    """One call: the answers in order (question, intent) and what must be stored."""

    number: str  # digits dialed (a Korean mobile number)
    path: tuple[tuple[str, str], ...]  # ("suggestions", SPEAK | SILENT) for the open question
    outcome: str
    fields: dict[str, Any] = field(default_factory=dict)  # expected calls columns

    @property
    def id(self) -> str:
        return "-".join(i for _, i in self.path)


UNHAPPY = {"satisfied": 0, "remedy_offered": "refund_or_voucher"}
CASES = (
    Case("821012340001", (("satisfaction", "satisfied"), ("suggestions", SPEAK),
                          ("buy_again", "yes")), "completed",
         {"satisfied": 1, "remedy_offered": None, "remedy_accepted": None, "reason": None,
          "would_buy_again": 1}),
    Case("821012340002", (("satisfaction", "unsatisfied"), ("remedy", "refund"),
                          ("reason", "quality"), ("suggestions", SILENT), ("buy_again", "yes")),
         "recovered", {**UNHAPPY, "remedy_accepted": "refund", "reason": "quality",
                       "would_buy_again": 1}),
    Case("821012340003", (("satisfaction", "unsatisfied"), ("remedy", "voucher"),
                          ("reason", "taste"), ("suggestions", SPEAK), ("buy_again", "no")),
         "completed", {**UNHAPPY, "remedy_accepted": "voucher",
                       "reason": "taste_or_not_as_described", "would_buy_again": 0}),
    Case("821012340004", (("satisfaction", "unsatisfied"), ("remedy", "none"),
                          ("reason", "logistics"), ("suggestions", SILENT), ("buy_again", "no")),
         "declined", {**UNHAPPY, "remedy_accepted": "none", "reason": "logistics",
                      "would_buy_again": 0}),
    Case("821012340005", (("satisfaction", "unsatisfied"), ("remedy", "refund"),
                          ("reason", "service"), ("suggestions", SILENT), ("buy_again", "yes")),
         "recovered", {**UNHAPPY, "remedy_accepted": "refund", "reason": "service",
                       "would_buy_again": 1}),
    Case("821012340006", (("satisfaction", "unsatisfied"), ("remedy", "voucher"),
                          ("reason", "other"), ("suggestions", SILENT), ("buy_again", "no")),
         "completed", {**UNHAPPY, "remedy_accepted": "voucher", "reason": "other",
                       "would_buy_again": 0}),
    # "call me later" (global) at three different questions, each callback time by voice
    Case("821012340007", (("satisfaction", "callback"), ("callback_time", "tonight")),
         "callback_requested", {"satisfied": None}),
    Case("821012340008", (("satisfaction", "unsatisfied"), ("remedy", "callback"),
                          ("callback_time", "tomorrow")),
         "callback_requested", {"satisfied": 0, "remedy_offered": "refund_or_voucher",
                                "remedy_accepted": None}),
    Case("821012340009", (("satisfaction", "unsatisfied"), ("remedy", "refund"),
                          ("reason", "callback"), ("callback_time", "anytime")),
         "callback_requested", {**UNHAPPY, "remedy_accepted": "refund", "reason": None}),
    # "don't call me again" and "let me talk to a person" (globals)
    Case("821012340010", (("satisfaction", "opt_out"),), "opted_out",
         {"satisfied": None, "callback_at": None}),
    Case("821012340011", (("satisfaction", "unsatisfied"), ("remedy", "none"),
                          ("reason", "agent")), "transferred",
         {**UNHAPPY, "remedy_accepted": "none", "reason": None, "would_buy_again": None}),
)
MACHINE = "821012340099"
def order_id(number: str) -> str:
    return f"KO{number}"


@dataclass
class Batch:
    bed: Bed
    script: Script
    picks: dict[tuple[str, str], PhraseCheck | None]
    checks: dict[tuple[str, str], list[PhraseCheck]]
    results: dict[str, DialResult]


def pick_phrases(script: Script, work: Path, cache: Any) -> tuple[
        dict[tuple[str, str], PhraseCheck | None], dict[tuple[str, str], list[PhraseCheck]]]:
    """The phrase (and customer voice) for every (question, intent) a call needs. Checks are
    remembered in pytest's cache (``cache`` None: not remembered), keyed by everything that
    decides them."""
    model = get_model("ko", Settings())
    stored: dict[str, list[str | None]] = {}
    if cache is not None:
        stored.update(cache.get("ivr/phrase_check", {}))
    picks: dict[tuple[str, str], PhraseCheck | None] = {}
    tried: dict[tuple[str, str], list[PhraseCheck]] = {}
    for case in CASES:
        for node, intent in case.path:
            if node == "suggestions" or (node, intent) in picks:
                continue
            picks[(node, intent)], tried[(node, intent)] = reliable_phrase(
                model, script, node, intent, work,
                combos=PREFERRED.get((node, intent), ()) + COMBOS, cache=stored)
    if cache is not None:
        cache.set("ivr/phrase_check", stored)
    return picks, tried


def keyed(case: Case, picks: dict[tuple[str, str], PhraseCheck | None]) -> set[tuple[str, str]]:
    """The steps of this call answered with keys: no phrase of the intent is heard reliably."""
    return {step for step in case.path if step[0] != "suggestions" and picks.get(step) is None}


def answers_for(case: Case, script: Script, picks: dict[tuple[str, str], PhraseCheck | None],
                work: Path, suggestion: Path) -> list[Answer]:
    out = []
    for node, intent in case.path:
        if node == "suggestions":
            out.append(Answer(open=True, speech=suggestion if intent == SPEAK else None))
            continue
        pick = picks[(node, intent)]
        if pick is None:
            out.append(Answer(key=script.intents_of(script.nodes[node])[intent].dtmf[0]))
            continue
        out.append(Answer(speech=speak(pick.phrase, work, pick.voice, pick.wpm), intent=intent))
    return out


async def dial_all(bed: Bed, numbers: list[str]) -> dict[str, DialResult]:
    async with AmiOriginator.from_settings(bed.settings) as o:
        async def one(i: int, number: str) -> DialResult:
            await asyncio.sleep(0.4 * i)  # stagger call setup a little
            return await o.dial(CallVariables(
                phone="+" + number, caller_id=bed.settings.trunk.caller_id, script=str(SCRIPT),
                language="ko", voice=VOICE, order_id=order_id(number), amd=number == MACHINE))

        results = await asyncio.gather(*(one(i, n) for i, n in enumerate(numbers)))
    return dict(zip(numbers, results, strict=True))


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
          ) -> Iterator[Batch]:
    home = tmp_path_factory.mktemp("ko-survey-bed")
    work = tmp_path_factory.mktemp("ko-words")
    script = load_script(SCRIPT)
    picks, tried = pick_phrases(script, work, getattr(pytestconfig, "cache", None))
    suggestion = speak(SUGGESTION, work, *COMBOS[0])
    with Bed(home, agent_dial="Local/100@ivr-test-agent", platform=PLATFORM,
             language="ko") as b:
        db = b.db()
        tts = engine(b.settings)
        customers: list[Customer] = []
        for case in CASES:
            db["orders"].insert({**ORDER, "order_id": order_id(case.number),
                                 "phone": "+" + case.number})
            context = order_context(db, order_id(case.number), phone="+" + case.number,
                                    platform=PLATFORM, timezone=TIMEZONE)
            customers.append(plan_customer(case.number, script, context,
                                           answers_for(case, script, picks, work, suggestion),
                                           tts,
                                           voice=VOICE, language="ko", work_dir=home))
        # An answering machine: talks on without a pause from the moment it picks up.
        greeting = speak(MACHINE_GREETING, work, "ko+m1", 175)
        customers.append(Customer(MACHINE, actions=[Say(greeting), Wait(8000)]))
        b.start_customers(customers)
        numbers = [c.number for c in customers]
        results = asyncio.run(dial_all(b, numbers))
        yield Batch(b, script, picks, tried, results)


def stored_answers(bed: Bed, call_id: str) -> list[dict[str, Any]]:
    return list(bed.db()["answers"].rows_where("call_id = ?", [call_id], order_by="seq"))


def why(batch: Batch) -> str:
    """Log tails and every voice turn (a rejected answer shows as "intent=None")."""
    turns = "\n".join(line for line in batch.bed.fastagi_log().splitlines() if " turn " in line)
    return f"{batch.bed.diagnostics()}\n--- voice turns ---\n{turns[-6000:]}"


def expected_callback(script: Script, intent: str, answered_at: str) -> set[str]:
    """What the engine computes for this answer (it reads the clock right after storing it)."""
    spec = str(script.nodes["callback_time"].intents[intent].set["callback_at"])
    t = datetime.fromisoformat(answered_at.replace("Z", "+00:00"))
    return {callback_time(spec, now=t + timedelta(seconds=s), policy=script.callback,
                          timezone=TIMEZONE) for s in (0, 1)}


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_branch_by_voice(batch: Batch, case: Case) -> None:
    keys = keyed(case, batch.picks)
    missing = [f"{n}/{i}: " + "; ".join(str(c) for c in batch.checks[(n, i)])
               for n, i in sorted(keys)]
    assert not missing, ("no phrase of these intents is heard reliably on telephone audio "
                         "(hits per 16 start phases):\n" + "\n".join(missing))
    bed = batch.bed
    r = batch.results[case.number]
    assert r.outcome == "answered", why(batch)
    assert r.uniqueid
    row = bed.call_row(r.uniqueid)
    got = stored_answers(bed, r.uniqueid)
    want_path = [(n, None if n == "suggestions" else i) for n, i in case.path]
    assert [(a["node"], a["intent"]) for a in got] == want_path, why(batch)

    # The calls row, field by field.
    assert (row["state"], row["outcome"]) == ("completed", case.outcome), why(batch)
    expected = {"satisfied": None, "remedy_offered": None, "remedy_accepted": None,
                "reason": None, "would_buy_again": None, "callback_at": None, **case.fields}
    callback = next((i for n, i in case.path if n == "callback_time"), None)
    if callback is not None:
        at = next(a for a in got if a["node"] == "callback_time")
        assert row["callback_at"] in expected_callback(batch.script, callback,
                                                       at["answered_at"])
        expected.pop("callback_at")
    assert {k: row[k] for k in expected} == expected
    assert (row["language"], row["voice"], row["order_id"], row["script"]) == (
        "ko", VOICE, order_id(case.number), "platform_satisfaction_ko")
    assert row["phone"] == "+" + case.number
    assert row["answered_at"] <= row["ended_at"]

    # Every answer row.
    for a, (node, how) in zip(got, case.path, strict=True):
        assert a["asked_at"] and a["answered_at"] and a["asked_at"] <= a["answered_at"]
        assert a["answered_at"] <= row["ended_at"]
        if node == "suggestions":
            rec = Path(a["recording"])
            assert rec.exists(), a
            level = recording_level(rec)
            # Transcribed after the call (ivr.speech.transcribe): free-form words for the
            # spoken sentence (the small model gets few of them right on espeak audio), ''
            # for silence (transcribed, nothing heard).
            transcript = transcript_of(bed, a["id"])
            if how == SPEAK:
                # the customer's sentence is in the recording (a silent one is near -inf dB)
                assert a["input_mode"] == "voice" and level > 200, (a, level)
                assert len(transcript.split()) >= 2, (a, transcript)
            else:
                assert transcript == "", (a, transcript)
            continue
        assert (a["input_mode"], a["tries"], a["dtmf"]) == ("voice", 1, None), (a, why(batch))
        assert a["transcript"] and a["confidence"] > 0, a
        phrases = batch.script.intents_of(batch.script.nodes[node])[how].phrases_for("ko", "ko")
        assert " ".join(a["transcript"].split()) in phrases, a

    if case.outcome == "opted_out":
        dnc = bed.db()["dnc"].get("+" + case.number)
        assert dnc["source"] == "survey"
        assert _ts(dnc["added_at"]) < _ts(row["ended_at"])  # inside the call
    if case.outcome == "transferred":
        log = bed.asterisk.log_file.read_text()
        # The stand-in agent reports the order context it received in its channel variables.
        assert (f"IvrTestAgent,Exten: 100,Order: {order_id(case.number)},"
                f"Product: {ORDER['product']}") in log


def transcript_of(bed: Bed, answer_id: int, timeout_s: float = 120.0) -> str:
    """The answer's transcript once the daemon's background worker has written it."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = bed.db()["answers"].get(answer_id)["transcript"]
        if value is not None:
            return str(value)
        if time.monotonic() > deadline:
            pytest.fail(f"answer {answer_id} was not transcribed within {timeout_s:.0f} s\n"
                        f"{bed.fastagi_log()[-3000:]}")
        time.sleep(0.5)


def recording_level(path: Path) -> float:
    with wave.open(str(path)) as w:
        return rms(w.readframes(w.getnframes()))


def test_answering_machine_is_marked_and_left(batch: Batch) -> None:
    """IVR_AMD=1 and a customer that talks on like a greeting: AMD says MACHINE, no survey."""
    r = batch.results[MACHINE]
    assert r.outcome == "answered" and r.uniqueid, why(batch)
    row = batch.bed.call_row(r.uniqueid)
    assert (row["state"], row["outcome"]) == ("completed", "machine"), why(batch)
    assert "amd_cause" in (row["context"] or "")
    assert stored_answers(batch.bed, r.uniqueid) == []
    assert row["answered_at"] and row["answered_at"] <= row["ended_at"]
    assert r.duration_s is not None and r.duration_s < 15  # hung up, not surveyed
