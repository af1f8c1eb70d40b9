"""Streaming recognition of one answer (one turn of one call).

Audio arrives as 16-bit signed little-endian mono PCM in any chunk size (AudioSocket: 320-byte
20 ms frames at 8 kHz). An energy voice-activity detector with an adaptive noise floor drives the
turn: SPEECH_START (barge-in) after ``speech_start_ms`` of voiced audio, END after
``end_silence_ms`` of trailing silence or ``max_speech_ms`` of speech, NO_INPUT when nobody spoke
within ``no_input_ms``. Vosk only sees audio from shortly before the speech onset, so a silent line
costs almost no CPU. The model is shared; create one TurnRecognizer per turn.

Besides the main decoder (question grammar, n-best alternatives) the same audio can go to
second-opinion decoders, named in ``checks``: ``"conf"`` (same grammar, no alternatives: Vosk then
reports a confidence per word) and ``"garbage"`` (grammar plus filler words, see
:func:`ivr.speech.grammar.check_grammar`). :func:`ivr.speech.intents.classify` uses their
agreement to veto unsure answers. Each costs about one more grammar decode of CPU.
"""

from __future__ import annotations

import enum
import json
import math
import operator
import sys
from array import array
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from ivr.speech.grammar import check_grammar
from ivr.speech.intents import (
    Hypothesis,
    Thresholds,
    check_features,
    check_rejection,
    classify,
    thresholds_for,
)
from ivr.speech.models import LoadedModel

FRAME_MS = 20
# Second-opinion decoders run by default. bench/asr.py (dev split): the filler-word decode's
# agreement is the strongest single veto against out-of-grammar speech; the "conf" pass's word
# confidences added nothing on top of it and cost another decode, so it is off by default.
DEFAULT_CHECKS: tuple[str, ...] = ("garbage",)


class TurnEvent(enum.Enum):
    SPEECH_START = "speech_start"
    END = "end"
    NO_INPUT = "no_input"


def frame_db(frame: bytes) -> float:
    """RMS level of a 16-bit LE frame in dBFS (-100 for digital silence)."""
    samples = array("h")
    samples.frombytes(frame)
    if sys.byteorder != "little":
        samples.byteswap()
    if not samples:
        return -100.0
    power = sum(map(operator.mul, samples, samples)) / len(samples)
    return 10 * math.log10(power / (32768.0 * 32768.0)) if power > 0 else -100.0


class TurnRecognizer:
    """Endpointing + grammar decoding + intent decision for one turn."""

    def __init__(
        self,
        model: LoadedModel,
        grammar: Sequence[str],
        intents: Mapping[str, Sequence[str]],
        *,
        sample_rate: int = 8000,
        end_silence_ms: int = 500,
        max_speech_ms: int = 8000,
        no_input_ms: int = 5000,
        speech_start_ms: int = 100,
        vad_threshold_db: float = 7.0,
        min_level_db: float = -55.0,
        preroll_ms: int = 400,
        max_alternatives: int = 8,
        thresholds: Thresholds | None = None,
        checks: Sequence[str] = DEFAULT_CHECKS,
    ) -> None:
        import vosk

        self.model = model
        self.intents = intents
        self.sample_rate = sample_rate
        self.thresholds = thresholds or thresholds_for(model.language)

        def decoder(words: Sequence[str], alternatives: int) -> Any:
            rec = vosk.KaldiRecognizer(model.model, float(sample_rate),
                                       json.dumps(list(words), ensure_ascii=False))
            rec.SetWords(True)
            rec.SetMaxAlternatives(alternatives)
            return rec

        self._rec = decoder(grammar, max_alternatives)
        self._checks: dict[str, Any] = {}
        for name in checks:
            if name == "conf":
                self._checks[name] = decoder(grammar, 0)
            elif name == "garbage":
                self._checks[name] = decoder(
                    check_grammar(grammar, model, language=model.language), 0)
            else:
                raise ValueError(f"unknown check decoder {name!r} (known: conf, garbage)")
        self._check_segments: dict[str, list[dict[str, Any]]] = {n: [] for n in self._checks}
        self._frame_bytes = sample_rate * FRAME_MS // 1000 * 2
        self._end_frames = max(1, end_silence_ms // FRAME_MS)
        self._max_frames = max(1, max_speech_ms // FRAME_MS)
        self._no_input_frames = max(1, no_input_ms // FRAME_MS)
        self._start_frames = max(1, speech_start_ms // FRAME_MS)
        self._window: deque[bool] = deque(maxlen=self._start_frames + 2)
        self._preroll: deque[bytes] = deque(maxlen=max(1, preroll_ms // FRAME_MS))
        self._calib_frames = 5
        self._threshold_db = vad_threshold_db
        self._min_level_db = min_level_db
        self._floor_db: float | None = None
        self._buf = b""
        self._pending: list[TurnEvent] = []
        self._vosk_buf = bytearray()
        self._segments: list[dict[str, Any]] = []
        self.frames = 0  # frames seen this turn
        self.fed_from = -1  # frame index of the first frame given to Vosk
        self.speech_start_frame = -1  # first voiced frame of the speech that started the turn
        self.last_voiced_frame = -1
        self.state = "waiting"  # waiting -> speaking -> done
        self.end_reason = ""
        self._hyp: Hypothesis | None = None

    # ---- audio in ---------------------------------------------------------------------------
    def feed(self, pcm: bytes) -> TurnEvent | None:
        """Process audio; returns the next event, if any (call with b"" to drain queued ones)."""
        if self.state != "done":
            self._buf += pcm
            n = len(self._buf) // self._frame_bytes * self._frame_bytes
            chunk, self._buf = self._buf[:n], self._buf[n:]
            for i in range(0, n, self._frame_bytes):
                self._frame(chunk[i:i + self._frame_bytes])
                if self.state == "done":
                    break
        return self._pending.pop(0) if self._pending else None

    def finish(self) -> TurnEvent | None:
        """The audio stopped (hangup, end of file): end the turn now."""
        if self.state == "speaking":
            self._end("audio ended")
        elif self.state == "waiting":
            self._no_input()
        return self._pending.pop(0) if self._pending else None

    def _frame(self, frame: bytes) -> None:
        idx = self.frames
        self.frames += 1
        level = frame_db(frame)
        voiced = self._is_voiced(level)
        if self.state == "waiting":
            self._preroll.append(frame)
            self._window.append(voiced)
            if voiced and sum(self._window) >= self._start_frames:
                onset = idx - len(self._window) + 1 + list(self._window).index(True)
                self.speech_start_frame = onset
                self.last_voiced_frame = idx
                self.state = "speaking"
                self.fed_from = idx - len(self._preroll) + 1
                for f in self._preroll:
                    self._to_vosk(f)
                self._preroll.clear()
                self._pending.append(TurnEvent.SPEECH_START)
            elif idx + 1 >= self._no_input_frames:
                self._no_input()
            return
        self._to_vosk(frame)
        if voiced:
            self.last_voiced_frame = idx
        if idx - self.last_voiced_frame >= self._end_frames:
            self._end("trailing silence")
        elif idx - self.speech_start_frame + 1 >= self._max_frames:
            self._end("max speech length")

    def _is_voiced(self, level: float) -> bool:
        if self._floor_db is None or self.frames <= self._calib_frames:
            # The first frames calibrate the line's noise floor.
            self._floor_db = level if self._floor_db is None else min(self._floor_db, level)
            return False
        voiced = level >= self._min_level_db and level >= self._floor_db + self._threshold_db
        if level < self._floor_db:
            self._floor_db = level * 0.5 + self._floor_db * 0.5  # follow the floor down fast
        elif not voiced:
            self._floor_db = self._floor_db * 0.97 + level * 0.03  # and up slowly
        return voiced

    def _to_vosk(self, frame: bytes) -> None:
        self._vosk_buf += frame
        if len(self._vosk_buf) >= 5 * self._frame_bytes:
            self._accept()

    def _accept(self) -> None:
        if self._vosk_buf:
            data = bytes(self._vosk_buf)
            if self._rec.AcceptWaveform(data):
                self._segments.append(json.loads(self._rec.Result()))
            for name, rec in self._checks.items():
                if rec.AcceptWaveform(data):
                    self._check_segments[name].append(json.loads(rec.Result()))
        self._vosk_buf.clear()

    def _no_input(self) -> None:
        self.state = "done"
        self.end_reason = "no input"
        self._hyp = Hypothesis(None, 0.0, "", reason="no input")
        self._pending.append(TurnEvent.NO_INPUT)

    def _end(self, why: str) -> None:
        self._accept()
        self._segments.append(json.loads(self._rec.FinalResult()))
        for name, rec in self._checks.items():
            self._check_segments[name].append(json.loads(rec.FinalResult()))
        self.state = "done"
        self.end_reason = why
        self._pending.append(TurnEvent.END)

    # ---- decision ---------------------------------------------------------------------------
    @property
    def speech_span(self) -> tuple[float, float] | None:
        """(start_s, end_s) of the detected speech on Vosk's clock (since the first fed frame)."""
        if self.speech_start_frame < 0:
            return None
        s0 = (self.speech_start_frame - self.fed_from) * FRAME_MS / 1000
        s1 = (self.last_voiced_frame + 1 - self.fed_from) * FRAME_MS / 1000
        return (s0, s1)

    def result(self) -> Hypothesis:
        """The decision for this turn (after END or NO_INPUT; ends the turn if still open)."""
        if self.state != "done":
            self.finish()
        if self._hyp is None:
            self._hyp = self._decide()
        return self._hyp

    def raw_results(self) -> list[dict[str, Any]]:
        """Vosk's results for this turn (one per Vosk segment), for logs and tuning."""
        return list(self._segments)

    def check_results(self) -> dict[str, dict[str, Any]]:
        """The second-opinion decodes of this turn, each merged into one result."""
        return {name: merge_results(segs) for name, segs in self._check_segments.items()}

    def _decide(self) -> Hypothesis:
        return decide(self._segments, self.check_results(), self.intents,
                      unk_token=self.model.unk_token, thresholds=self.thresholds,
                      speech_span=self.speech_span)


def merge_results(segments: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Vosk results of consecutive segments (no alternatives) as one result."""
    words = [w for s in segments for w in s.get("result", []) or [] if isinstance(w, dict)]
    text = " ".join(str(s.get("text", "")).strip() for s in segments if s.get("text"))
    return {"text": " ".join(text.split()), "result": words}


def decide(
    segments: Sequence[Mapping[str, Any]],
    checks: Mapping[str, Mapping[str, Any]],
    intents: Mapping[str, Sequence[str]],
    *,
    unk_token: str,
    thresholds: Thresholds,
    speech_span: tuple[float, float] | None,
) -> Hypothesis:
    """The turn decision from the main decoder's segments and the second opinions."""
    segments = [s for s in segments if has_words(s)]
    unk = unk_token
    if not segments:
        return classify({}, intents, unk_token=unk, thresholds=thresholds)
    if len(segments) == 1:
        return classify(segments[0], intents, unk_token=unk, thresholds=thresholds,
                        speech_span=speech_span, checks=checks)
    # Vosk cut the answer into pieces: accept only if every piece says the same thing.
    hyps = [classify(s, intents, unk_token=unk, thresholds=thresholds) for s in segments]
    transcript = " ".join(h.transcript for h in hyps)
    found = {h.intent for h in hyps}
    if len(found) == 1 and None not in found:
        best = min(hyps, key=lambda h: h.confidence)
        best.transcript = transcript
        best.features.update(check_features(transcript, checks))
        vetoed = check_rejection(best.features, thresholds)
        if vetoed:
            best.intent, best.reason = None, vetoed
        return best
    return Hypothesis(None, min(h.confidence for h in hyps), transcript,
                      [a for h in hyps for a in h.alternatives],
                      reason="answer split into pieces that disagree",
                      best_intent=hyps[0].best_intent)


def has_words(result: Mapping[str, Any]) -> bool:
    """True when a Vosk result (either shape) recognised any word."""
    alts = result.get("alternatives")
    if isinstance(alts, list):
        return bool(alts) and bool(str(alts[0].get("text", "")).strip())
    return bool(str(result.get("text", "")).strip())


def recognize_pcm(
    model: LoadedModel,
    grammar: Sequence[str],
    intents: Mapping[str, Sequence[str]],
    pcm: bytes,
    **kwargs: Any,
) -> tuple[Hypothesis, list[tuple[TurnEvent, int]]]:
    """Decode a whole recording as a turn (20 ms chunks); returns the decision and the events
    with the time (ms since the start) each was raised."""
    rec = TurnRecognizer(model, grammar, intents, **kwargs)
    step = rec._frame_bytes
    events: list[tuple[TurnEvent, int]] = []
    for i in range(0, len(pcm), step):
        ev = rec.feed(pcm[i:i + step])
        while ev is not None:
            events.append((ev, rec.frames * FRAME_MS))
            ev = rec.feed(b"")
        if rec.state == "done":
            break
    ev = rec.finish()
    while ev is not None:
        events.append((ev, rec.frames * FRAME_MS))
        ev = rec.feed(b"")
    return rec.result(), events
