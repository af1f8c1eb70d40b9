"""The survey over a real call with voice answers: AudioSocket turns + Vosk grammars + DTMF.

ask       one AudioSocket turn: the prompt streams to the caller while the caller's audio streams
          into a :class:`~ivr.speech.recognizer.TurnRecognizer` (grammar of the question). Speech
          during the prompt stops it (barge-in, when the question allows it); the turn ends on the
          recogniser's endpoint, a key press (AudioSocket DTMF) or no input. An unsure but
          plausible recognition is confirmed by a yes/no turn when the script has a ``confirm``
          section ("배송 문제, 맞으세요?"); otherwise, or on anything but yes, it is a no-match:
          the engine asks again, then falls back to keys.
say, record, transfer, hangup and keys-only questions go through :class:`AgiDtmfDialog`.

The AudioSocket server and the speech model live once per process (FastAGI daemon or classic AGI
process); each call gets its own recogniser per turn.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ivr.call.audiosocket import AudioSocketServer, Turn, TurnOutcome
from ivr.call.dtmf_dialog import AgiDtmfDialog, hangups_as_dialog_hangup
from ivr.config import Settings
from ivr.speech.confidence import ConfidenceModel, confidence_for, confidence_with
from ivr.speech.grammar import GrammarError, question_grammar
from ivr.speech.intents import Hypothesis
from ivr.speech.models import LoadedModel, ModelError, get_model
from ivr.speech.recognizer import TurnEvent, TurnRecognizer
from ivr.speech.tts import TtsEngine
from ivr.survey.dialog import DialogHangup, InputMode, Question, Recording, TurnResult

log = logging.getLogger(__name__)

_server: AudioSocketServer | None = None
_server_lock = asyncio.Lock()


async def audiosocket_server(host: str = "127.0.0.1") -> AudioSocketServer:
    """The process's AudioSocket server, started on first use on a free loopback port."""
    global _server
    async with _server_lock:
        if _server is None:
            server = AudioSocketServer(host=host, port=0)
            await server.start()
            _server = server
        return _server


class WallClockListener:
    """Adapts a TurnRecognizer to AudioSocket turns with a wall-clock no-input timer.

    AudioSocket delivers frames only while the far end sends RTP, so counting frames cannot
    measure silence; the timer starts when the prompt ends (or at once without a prompt).
    """

    def __init__(self, recognizer: TurnRecognizer, no_input_ms: int) -> None:
        self.rec = recognizer
        self.no_input_ms = no_input_ms
        self.deadline: float | None = None
        self.speech_started_at: float | None = None
        self.speech_ended_at: float | None = None

    def prompt_ended(self) -> None:
        self.deadline = time.monotonic() + self.no_input_ms / 1000

    def feed(self, pcm: bytes) -> str | None:
        event = self.rec.feed(pcm)
        now = time.monotonic()
        if event is TurnEvent.SPEECH_START:
            self.speech_started_at = now
            return "speech_start"
        if event is TurnEvent.END:
            self.speech_ended_at = now
            return "end"
        if self.rec.state == "waiting" and self.deadline is not None and now > self.deadline:
            return "no_input"
        return None

    def result(self) -> Hypothesis:
        return self.rec.result()


class AgiVoiceDialog:
    def __init__(self, dtmf: AgiDtmfDialog, tts: TtsEngine, model: LoadedModel, *,
                 language: str, source: str, default_voice: str,
                 end_silence_ms: int = 500, denoise: bool = True,
                 confidence: ConfidenceModel | None = None,
                 on_turn: Callable[[dict[str, Any]], None] | None = None) -> None:
        """``on_turn(row)``: each question's turn as it ends (node, result, confidence,
        latency_s), for the store's turn log and the service's metrics."""
        self.dtmf = dtmf
        self.agi = dtmf.agi
        self.tts = tts
        self.model = model
        self.language = language
        self.source = source
        self.default_voice = default_voice
        self.end_silence_ms = end_silence_ms
        self.denoise = denoise
        self.confidence = confidence or confidence_for(model.language)
        self.turns: list[dict[str, Any]] = []  # timings per turn, for benchmarks and logs
        self.on_turn = on_turn
        self._speech_ended: float | None = None  # the caller's last end of speech (monotonic ms)

    # -- delegated ------------------------------------------------------------------------------
    async def say(self, text: str, *, voice: str | None, barge_in: bool) -> None:
        await self.dtmf.say(text, voice=voice, barge_in=barge_in)

    async def record(self, text: str, *, voice: str | None, max_s: float, node: str,
                     barge_in: bool = True) -> Recording:
        return await self.dtmf.record(text, voice=voice, max_s=max_s, node=node,
                                      barge_in=barge_in)

    async def transfer(self, target: str, variables: Mapping[str, str]) -> None:
        await self.dtmf.transfer(target, variables)

    async def hangup(self) -> None:
        await self.dtmf.hangup()

    # -- voice turn -----------------------------------------------------------------------------
    async def ask(self, question: Question) -> TurnResult:
        if question.dtmf_only or not question.phrases or self.dtmf.typeahead:
            # a key pressed during the statement before answers this question by keys
            return await self.dtmf.ask(question)
        outcome = await self._turn(question, self.confidence)
        timing = self.turns[-1]  # this question's turn (a confirmation adds one of its own)
        result = await self._result(question, outcome)
        if self.on_turn is not None:
            try:
                self.on_turn(_turn_row(question, result, timing))
            except Exception:  # noqa: BLE001 - the turn log must never break a call
                log.exception("turn log failed")
        return result

    async def _turn(self, question: Question, confidence: ConfidenceModel
                    ) -> TurnOutcome[Hypothesis]:
        """One AudioSocket turn: the prompt plays while the caller's audio is recognised."""
        grammar = question_grammar(dict(question.phrases), self.model, language=self.language,
                                   question=question.node, source=self.source)
        no_input_ms = int(question.timeout_s * 1000)
        # No-input is timed by the wall clock after the prompt (WallClockListener), never by the
        # recogniser's frame count, which runs from the first frame of the prompt.
        rec = TurnRecognizer(self.model, grammar, dict(question.phrases),
                             end_silence_ms=self.end_silence_ms, no_input_ms=24 * 3600 * 1000,
                             denoise=self.denoise, confidence=confidence)
        listener = WallClockListener(rec, no_input_ms)
        voice = question.voice or self.default_voice
        prompt = await asyncio.to_thread(self.tts.render_pcm, question.text, voice)
        server = await audiosocket_server()
        key = str(uuid.uuid4())
        future = server.register(key, Turn(prompt=prompt, listener=listener,
                                           barge_in=question.barge_in, accept_dtmf=True,
                                           max_listen_ms=no_input_ms + 10_000,
                                           name=question.node))
        try:
            with hangups_as_dialog_hangup():
                await self.agi.exec("AudioSocket", server.app_args(key))
        except Exception:
            server.cancel(key)
            raise
        outcome = await future
        self._log_turn(question, outcome, listener)
        return outcome

    async def _confirm(self, q: Question, hyp: Hypothesis) -> TurnResult | None:
        """Ask whether the caller meant the unsure answer; the answer's TurnResult on a clear
        yes, None otherwise (no, silence, anything else: the question is asked again)."""
        spec = q.confirm
        text = spec.texts.get(hyp.transcript) if spec is not None else None
        if spec is None or not text or hyp.best_intent is None:
            return None
        check = Question(node=f"{q.node}.confirm", text=text, voice=q.voice,
                         language=q.language, phrases=spec.phrases, dtmf=spec.dtmf,
                         timeout_s=spec.timeout_s, barge_in=True, attempt=q.attempt)
        outcome = await self._turn(check, self.confidence.for_confirmation())
        if outcome.event == "hangup":
            raise DialogHangup("caller hung up during a confirmation")
        if outcome.event == "dtmf":
            said = check.match_dtmf(outcome.dtmf or "")
            mode: InputMode = "dtmf"
        elif outcome.event == "end" and outcome.result is not None:
            said, mode = outcome.result.intent, "voice"
        else:
            said, mode = None, "voice"
        log.info("confirm %s %r (p=%.2f): %s", q.node, hyp.transcript, hyp.confidence, said)
        if said != "yes":
            return None
        return TurnResult("match", intent=hyp.best_intent, confidence=float(hyp.confidence),
                          transcript=hyp.transcript or None, input_mode="voice", confirmed=True,
                          extra={"reason": "confirmed", "confirmed_by": mode,
                                 "best_intent": hyp.best_intent})

    async def _result(self, q: Question, outcome: TurnOutcome[Hypothesis]) -> TurnResult:
        event = outcome.event
        if event == "hangup":
            raise DialogHangup("caller hung up during the question")
        if event == "dtmf":
            digits = outcome.dtmf or ""
            if q.max_digits > 1 and len(digits) < q.max_digits and q.match_dtmf(digits) is None:
                with hangups_as_dialog_hangup():
                    for _ in range(q.max_digits - len(digits)):
                        more = await self.agi.wait_for_digit(int(q.timeout_s * 1000))
                        if not more:
                            break
                        digits += more
            intent = q.match_dtmf(digits)
            return TurnResult("match" if intent else "nomatch", intent=intent,
                              confidence=1.0 if intent else 0.0, dtmf=digits, input_mode="dtmf")
        if event == "end":
            hyp = outcome.result
            if hyp is None:
                return TurnResult("nomatch", input_mode="voice")
            if hyp.intent is None and hyp.confirmable and q.confirm is not None:
                confirmed = await self._confirm(q, hyp)
                if confirmed is not None:
                    return confirmed
            return TurnResult("match" if hyp.intent else "nomatch", intent=hyp.intent,
                              confidence=float(hyp.confidence), transcript=hyp.transcript or None,
                              input_mode="voice",
                              extra={"reason": hyp.reason, "best_intent": hyp.best_intent})
        if event in ("no_input", "timeout", "played"):
            return TurnResult("noinput")
        # error / no_connect: the audio path failed; keys still work on this call.
        log.error("voice turn %s failed (%s: %s); asking by keys", q.node, event, outcome.error)
        return await self.dtmf.ask(q)

    def _log_turn(self, q: Question, outcome: TurnOutcome[Hypothesis],
                  listener: WallClockListener) -> None:
        t = outcome.timings
        hyp = outcome.result
        feats = getattr(hyp, "features", None) or {}
        log.info("turn %s try %d: %s dtmf=%s intent=%s conf=%.2f text=%r why=%s frames=%d barge=%s "
                 "features=%s", q.node, q.attempt, outcome.event, outcome.dtmf,
                 getattr(hyp, "intent", None), float(getattr(hyp, "confidence", 0.0) or 0.0),
                 getattr(hyp, "transcript", ""), getattr(hyp, "reason", ""), outcome.caller_frames,
                 outcome.barged_in, {k: round(v, 2) for k, v in feats.items()})
        # Turn latency as the caller hears it: their last answer's end to this prompt's start.
        latency = (t.prompt_started - self._speech_ended) / 1000 if (
            t.prompt_started is not None and self._speech_ended is not None) else None
        self._speech_ended = t.speech_end
        self.turns.append({
            "node": q.node, "event": outcome.event, "barged_in": outcome.barged_in,
            "prompt_started": t.prompt_started, "prompt_stopped": t.prompt_stopped,
            "speech_start": t.speech_start, "speech_end": t.speech_end, "closed": t.closed,
            "latency_s": latency,
        })


def _turn_row(q: Question, result: TurnResult, timing: dict[str, Any]) -> dict[str, Any]:
    if result.input_mode == "dtmf":
        kind = "dtmf"
    elif result.kind == "noinput":
        kind = "no_input"
    elif result.kind == "match":
        kind = "confirmed" if result.confirmed else "accepted"
    else:
        kind = "rejected"
    return {"node": q.node, "try": q.attempt, "result": kind, "intent": result.intent,
            "confidence": float(result.confidence or 0.0), "latency_s": timing.get("latency_s"),
            "barged_in": int(bool(timing.get("barged_in")))}


def voice_dialog_for(settings: Settings, keys: AgiDtmfDialog, language: str, voice: str,
                     source: str, *, on_turn: Callable[[dict[str, Any]], None] | None = None
                     ) -> AgiVoiceDialog | None:
    """A voice dialog over ``keys``' channel when a speech model for ``language`` is installed;
    None means DTMF only. ``on_turn``: see :class:`AgiVoiceDialog`."""
    from ivr.speech.tts import engine

    if settings.speech.input == "dtmf" or language not in settings.speech.models:
        return None
    try:
        model = get_model(language, settings)
    except ModelError as exc:
        if settings.speech.input == "voice":
            raise
        log.warning("no speech model for %s, answers by keys only: %s", language, exc)
        return None
    return AgiVoiceDialog(keys, engine(settings), model, language=language,
                          source=source, default_voice=voice,
                          end_silence_ms=settings.speech.endpoint_ms,
                          denoise=settings.speech.denoise,
                          confidence=confidence_with(language,
                                                     settings.speech.confidence.get(language)),
                          on_turn=on_turn)


__all__ = ["AgiVoiceDialog", "GrammarError", "WallClockListener", "audiosocket_server",
           "voice_dialog_for"]
