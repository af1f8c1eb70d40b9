"""Turn "this customer answers 2, then says 환불, then hangs up" into a sipp customer.

The survey engine is walked ahead of time with a planning dialog that knows how long every prompt
lasts (rendered with the same TTS engine the call will use), so the customer presses keys while
a question is being asked and speaks after it, as a person would. Voice customers stream one
continuous audio track for the whole call (silence between answers, as a phone sends), so the
IVR hears real RTP all along.
"""

from __future__ import annotations

import asyncio
import subprocess
import wave
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ivr.farend.sipp import Action, Customer, Dtmf, HangUp, Say, Wait
from ivr.speech.tts import TtsEngine
from ivr.store import CallRecorder, open_db
from ivr.survey.dialog import DialogHangup, Question, Recording, TurnResult
from ivr.survey.engine import SurveyRun
from ivr.survey.script import Script

STEP_MS = 250  # AGI round trips + DB writes between two prompts (generous)
KEY_INTO_PROMPT_MS = 1500  # press a key this far into the question prompt
SPEAK_AFTER_PROMPT_MS = 400
ENDPOINT_MS = 400  # the recogniser's trailing silence before it ends a turn (speech.endpoint_ms)
OPEN_SPEAK_AFTER_PROMPT_MS = 800  # an open question: RECORD FILE starts after the prompt
OPEN_KEY_AFTER_SPEECH_MS = 1000  # then # ends the recording (before its 3 s silence limit)


@dataclass(frozen=True)
class Answer:
    """One answer of the customer, in order of the questions asked."""

    key: str | None = None  # DTMF digits
    speech: Path | None = None  # audio of the customer saying something
    intent: str | None = None  # what the speech should be recognised as (drives the plan)
    silent: bool = False  # say nothing (no-input)
    barge_in_ms: int | None = None  # speak this far into the prompt instead of after it
    hangup: bool = False  # hang up while this question is asked
    # Press ``key`` during the statement before this question (type-ahead), not its prompt.
    during_statement: bool = False
    # For an open question (recorded, not recognised): say ``speech`` (or nothing) after the
    # prompt, then press #. Open questions without such an answer get silence and # as before.
    open: bool = False
    # The IVR is expected to confirm ``heard`` (the phrase it should hear in ``speech``); the
    # customer replies with ``confirm_reply`` after that prompt, meaning yes when ``confirmed``.
    heard: str | None = None
    confirm_reply: Path | None = None
    confirmed: bool = True


def wav_ms(path: Path) -> int:
    with wave.open(str(path)) as w:
        return int(w.getnframes() * 1000 / w.getframerate())


@dataclass
class _Planner:
    tts: TtsEngine
    voice: str
    answers: list[Answer]
    t: int = 600  # AGI start, call variables, ANSWER, first render
    events: list[tuple[int, Action]] = field(default_factory=list)
    speech: list[tuple[int, Path]] = field(default_factory=list)
    hung_up: bool = False
    used: int = 0
    statement: tuple[int, int] | None = None  # (start, length) of the last interruptible one

    def prompt_ms(self, text: str, voice: str | None) -> int:
        return wav_ms(self.tts.render(text, voice or self.voice))

    async def say(self, text: str, *, voice: str | None, barge_in: bool) -> None:
        dur = self.prompt_ms(text, voice)
        self.statement = (self.t, dur) if barge_in else None
        self.t += dur + STEP_MS

    async def ask(self, q: Question) -> TurnResult:
        if self.used >= len(self.answers):
            raise DialogHangup("plan ran out of answers")
        a = self.answers[self.used]
        self.used += 1
        statement, self.statement = self.statement, None
        if a.key is not None and a.during_statement:
            if statement is None:
                raise ValueError(f"{q.node}: no interruptible statement before it")
            # The key cuts the statement short; the IVR skips the question's prompt.
            press = statement[0] + min(KEY_INTO_PROMPT_MS, statement[1] // 2)
            self.events.append((press, Dtmf(a.key)))
            self.t = press + 300 * len(a.key) + STEP_MS
            intent = q.match_dtmf(a.key)
            return TurnResult("match" if intent else "nomatch", intent=intent, dtmf=a.key,
                              input_mode="dtmf")
        start = self.t
        dur = self.prompt_ms(q.text, q.voice)
        if a.hangup:
            self.events.append((start + min(KEY_INTO_PROMPT_MS, dur // 2), HangUp()))
            self.hung_up = True
            raise DialogHangup(q.node)
        if a.key is not None:
            press = start + min(KEY_INTO_PROMPT_MS, max(200, dur - 300))
            self.events.append((press, Dtmf(a.key)))
            self.t = press + 300 * len(a.key) + STEP_MS
            intent = q.match_dtmf(a.key)
            return TurnResult("match" if intent else "nomatch", intent=intent, dtmf=a.key,
                              input_mode="dtmf")
        if a.speech is not None:
            at = start + (dur + SPEAK_AFTER_PROMPT_MS if a.barge_in_ms is None
                          else min(a.barge_in_ms, dur))
            self.speech.append((at, a.speech))
            self.t = at + wav_ms(a.speech) + ENDPOINT_MS + STEP_MS
            if a.confirm_reply is not None and q.confirm is not None and a.heard is not None:
                text = q.confirm.texts[" ".join(a.heard.split())]
                at = self.t + self.prompt_ms(text, q.voice) + SPEAK_AFTER_PROMPT_MS
                self.speech.append((at, a.confirm_reply))
                self.t = at + wav_ms(a.confirm_reply) + ENDPOINT_MS + STEP_MS
                if not a.confirmed:
                    return TurnResult("nomatch", input_mode="voice")
            if a.intent is None:
                return TurnResult("nomatch", input_mode="voice")
            return TurnResult("match", intent=a.intent, input_mode="voice")
        # silent: the IVR waits for its no-input timeout after the prompt
        self.t = start + dur + int(q.timeout_s * 1000) + STEP_MS
        return TurnResult("noinput")

    async def record(self, text: str, *, voice: str | None, max_s: float, node: str,
                     barge_in: bool = True) -> Recording:
        # The customer says its planned words (or nothing) and presses # to end the recording,
        # as the prompt asks.
        spoken = None
        self.statement = None
        if self.used < len(self.answers) and self.answers[self.used].open:
            spoken = self.answers[self.used].speech
            self.used += 1
        press = self.t + self.prompt_ms(text, voice) + 1500
        if spoken is not None:
            at = press - 1500 + OPEN_SPEAK_AFTER_PROMPT_MS
            self.speech.append((at, spoken))
            press = at + wav_ms(spoken) + OPEN_KEY_AFTER_SPEECH_MS
        self.events.append((press, Dtmf("#")))
        self.t = press + 300 + STEP_MS
        return Recording(None, None)

    async def transfer(self, target: str, variables: Mapping[str, str]) -> None:
        return None

    async def hangup(self) -> None:
        return None


def plan_customer(number: str, script: Script, context: Mapping[str, object],
                  answers: Sequence[Answer], tts: TtsEngine, *, voice: str, language: str,
                  work_dir: Path, name: str = "", linger_ms: int = 8000) -> Customer:
    """A sipp customer that gives ``answers`` to ``script`` at the right moments."""
    planner = _Planner(tts, voice, list(answers))
    db = open_db(work_dir / f"plan-{number}.db")
    run = SurveyRun(script, context, planner, CallRecorder(db, f"plan-{number}"),
                    language=language, voice=voice, dnc_callback=lambda reason: None)
    asyncio.run(run.run())
    actions: list[Action] = []
    if planner.speech:
        track = work_dir / f"customer-{number}.wav"
        build_track(planner.speech, planner.t + linger_ms, track)
        # One continuous stream started at answer; keys and hangup are timed on top of it.
        timeline = sorted(planner.events, key=lambda e: e[0])
        actions = _interleave_track(track, timeline)
    else:
        now = 0
        for at, action in sorted(planner.events, key=lambda e: e[0]):
            actions += [Wait(max(0, at - now)), action]
            now = at
        if not planner.hung_up:
            actions.append(Wait(max(0, planner.t - now) + linger_ms))
    return Customer(number, actions=actions, name=name)


def _interleave_track(track: Path, timeline: list[tuple[int, Action]]) -> list[Action]:
    """Start the track at once (no wait for it to finish), then the timed keys / hangup."""
    actions: list[Action] = [Say(track, background=True)]
    now = 0
    for at, action in timeline:
        actions += [Wait(max(0, at - now)), action]
        now = at
    if not any(isinstance(a, HangUp) for _, a in timeline):
        actions.append(Wait(max(0, wav_ms(track) - now)))
    return actions


def build_track(speech: Sequence[tuple[int, Path]], total_ms: int, out: Path) -> None:
    """Silence with each utterance placed at its start time (8 kHz mono 16-bit)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    frames = bytearray(total_ms * 16)  # 8000 Hz * 2 bytes / 1000 ms
    for at, path in speech:
        pcm = _pcm8k(path)
        start = at * 16
        end = min(len(frames), start + len(pcm))
        frames[start:end] = pcm[: end - start]
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(frames))


def _pcm8k(path: Path) -> bytes:
    # -D: no random dither, so a customer's audio is the same on every run (see sipp.py)
    proc = subprocess.run(["sox", "-D", str(path), "-r", "8000", "-c", "1", "-b", "16", "-e",
                           "signed-integer", "-t", "raw", "-"], capture_output=True, check=True)
    return proc.stdout
