"""Streaming recognition of one answer (one turn of one call).

Audio arrives as 16-bit signed little-endian mono PCM in any chunk size (AudioSocket: 320-byte
20 ms frames at 8 kHz). An energy voice-activity detector with an adaptive noise floor drives the
turn: SPEECH_START (barge-in) after ``speech_start_ms`` of voiced audio, END after
``end_silence_ms`` of trailing silence or ``max_speech_ms`` of speech, NO_INPUT when nobody spoke
within ``no_input_ms``. Vosk only sees audio from shortly before the speech onset, so a silent line
costs almost no CPU. The model is shared; create one TurnRecognizer per turn.

The quiet frames heard before the onset are the line's noise: with ``denoise`` their spectrum is
subtracted from what Vosk hears (:mod:`ivr.speech.denoise`), and the VAD's floor against the
speech level gives the turn's SNR, a feature of the confidence model. One decoder runs per turn
(question grammar, n-best alternatives): a second opinion from another decoder doubled the CPU
(the acoustic model dominates it) for little more precision (bench/asr.py).
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

from ivr.speech.confidence import ConfidenceModel, confidence_for
from ivr.speech.denoise import DELAY_SAMPLES, NoiseSuppressor, noise_spectrum
from ivr.speech.intents import Hypothesis, Signal, classify
from ivr.speech.models import LoadedModel

FRAME_MS = 20
# Quiet frames kept before the onset to estimate the line's noise (the newest few are left out:
# a soft speech onset may hide in them).
NOISE_FRAMES = 25
NOISE_GUARD_FRAMES = 3


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
    """Endpointing + noise suppression + grammar decoding + intent decision for one turn."""

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
        max_alternatives: int = 30,
        confidence: ConfidenceModel | None = None,
        denoise: bool = True,
    ) -> None:
        import vosk

        self.model = model
        self.intents = intents
        self.sample_rate = sample_rate
        self.confidence = confidence or confidence_for(model.language)
        self.denoise = denoise
        self._rec = vosk.KaldiRecognizer(model.model, float(sample_rate),
                                         json.dumps(list(grammar), ensure_ascii=False))
        self._rec.SetWords(True)
        self._rec.SetMaxAlternatives(max_alternatives)
        self._suppressor: NoiseSuppressor | None = None
        self._frame_bytes = sample_rate * FRAME_MS // 1000 * 2
        self._end_frames = max(1, end_silence_ms // FRAME_MS)
        self._max_frames = max(1, max_speech_ms // FRAME_MS)
        self._no_input_frames = max(1, no_input_ms // FRAME_MS)
        self._start_frames = max(1, speech_start_ms // FRAME_MS)
        self._window: deque[bool] = deque(maxlen=self._start_frames + 2)
        self._preroll: deque[bytes] = deque(maxlen=max(1, preroll_ms // FRAME_MS))
        self._quiet: deque[bytes] = deque(maxlen=NOISE_FRAMES + NOISE_GUARD_FRAMES)
        self._calib_frames = 5
        self._threshold_db = vad_threshold_db
        self._min_level_db = min_level_db
        self._floor_db: float | None = None
        self._onset_floor_db: float | None = None
        self._voiced_power = 0.0
        self._voiced_count = 0
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
            if not voiced:
                self._quiet.append(frame)
            if voiced and sum(self._window) >= self._start_frames:
                onset = idx - len(self._window) + 1 + list(self._window).index(True)
                self.speech_start_frame = onset
                self.last_voiced_frame = idx
                self.state = "speaking"
                self._onset_floor_db = self._floor_db
                self._start_suppressor()
                self.fed_from = idx - len(self._preroll) + 1
                for k, f in enumerate(self._preroll):
                    if self.fed_from + k >= onset:
                        self._count_voiced(f)
                    self._to_vosk(f)
                self._preroll.clear()
                self._pending.append(TurnEvent.SPEECH_START)
            elif idx + 1 >= self._no_input_frames:
                self._no_input()
            return
        self._to_vosk(frame)
        if voiced:
            self.last_voiced_frame = idx
            self._count_voiced(frame)
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

    def _count_voiced(self, frame: bytes) -> None:
        self._voiced_power += 10 ** (frame_db(frame) / 10)
        self._voiced_count += 1

    def _start_suppressor(self) -> None:
        if not self.denoise:
            return
        quiet = list(self._quiet)[:-NOISE_GUARD_FRAMES] or list(self._quiet)
        self._suppressor = NoiseSuppressor(noise_spectrum(quiet))

    def _to_vosk(self, frame: bytes) -> None:
        self._vosk_buf += frame
        if len(self._vosk_buf) >= 5 * self._frame_bytes:
            self._accept()

    def _accept(self, final: bool = False) -> None:
        data = bytes(self._vosk_buf)
        self._vosk_buf.clear()
        if self._suppressor is not None:
            data = self._suppressor.process(data) + (self._suppressor.flush() if final else b"")
        if data and self._rec.AcceptWaveform(data):
            self._segments.append(json.loads(self._rec.Result()))

    def _no_input(self) -> None:
        self.state = "done"
        self.end_reason = "no input"
        self._hyp = Hypothesis(None, 0.0, "", reason="no input")
        self._pending.append(TurnEvent.NO_INPUT)

    def _end(self, why: str) -> None:
        self._accept(final=True)
        self._segments.append(json.loads(self._rec.FinalResult()))
        self.state = "done"
        self.end_reason = why
        self._pending.append(TurnEvent.END)

    # ---- decision ---------------------------------------------------------------------------
    @property
    def speech_span(self) -> tuple[float, float] | None:
        """(start_s, end_s) of the detected speech on Vosk's clock (since the first fed frame;
        the noise suppressor delays what Vosk hears by a few milliseconds)."""
        if self.speech_start_frame < 0:
            return None
        shift = DELAY_SAMPLES / self.sample_rate if self._suppressor is not None else 0.0
        s0 = (self.speech_start_frame - self.fed_from) * FRAME_MS / 1000 + shift
        s1 = (self.last_voiced_frame + 1 - self.fed_from) * FRAME_MS / 1000 + shift
        return (s0, s1)

    @property
    def snr_db(self) -> float | None:
        """Mean level of the voiced frames over the noise floor at the onset."""
        if not self._voiced_count or self._onset_floor_db is None:
            return None
        level = 10 * math.log10(max(self._voiced_power / self._voiced_count, 1e-12))
        return level - self._onset_floor_db

    def result(self) -> Hypothesis:
        """The decision for this turn (after END or NO_INPUT; ends the turn if still open)."""
        if self.state != "done":
            self.finish()
        if self._hyp is None:
            self._hyp = decide(self._segments, self.intents, unk_token=self.model.unk_token,
                               confidence=self.confidence,
                               signal=Signal(self.speech_span, self.snr_db))
        return self._hyp

    def raw_results(self) -> list[dict[str, Any]]:
        """Vosk's results for this turn (one per Vosk segment), for logs and tuning."""
        return list(self._segments)


def decide(
    segments: Sequence[Mapping[str, Any]],
    intents: Mapping[str, Sequence[str]],
    *,
    unk_token: str,
    confidence: ConfidenceModel,
    signal: Signal,
) -> Hypothesis:
    """The turn decision from the decoder's segments."""
    segments = [s for s in segments if has_words(s)]
    if not segments:
        return classify({}, intents, unk_token=unk_token, confidence=confidence)
    if len(segments) == 1:
        return classify(segments[0], intents, unk_token=unk_token, confidence=confidence,
                        signal=signal)
    # Vosk cut the answer into pieces (its own endpoint): accept only if every piece says the
    # same thing; timing features do not apply to a piece.
    hyps = [classify(s, intents, unk_token=unk_token, confidence=confidence,
                     signal=Signal(None, signal.snr_db)) for s in segments]
    transcript = " ".join(h.transcript for h in hyps)
    found = {h.intent for h in hyps}
    if len(found) == 1 and None not in found:
        best = min(hyps, key=lambda h: h.confidence)
        best.transcript = transcript
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
