"""A model-free listener for the AudioSocket tests: speech is frames louder than a threshold."""

from __future__ import annotations

from typing import Any

from ivr.call.audiosocket import END, NO_INPUT, SPEECH_START
from ivr.speech import audio


class EnergyListener:
    """A model-free listener: speech is frames louder than ``threshold`` RMS.

    speech_start after ``start_frames`` loud frames in a row; end after ``end_silence_ms`` of quiet
    following speech; no_input when nobody spoke ``no_input_ms`` after the prompt ended. Useful
    as a reference for TurnRecognizer.
    """

    def __init__(self, threshold: float = 500.0, start_frames: int = 3,
                 end_silence_ms: int = 800, no_input_ms: int = 5000) -> None:
        self.threshold = threshold
        self.start_frames = start_frames
        self.end_silence_ms = end_silence_ms
        self.no_input_ms = no_input_ms
        self._loud = 0
        self._quiet_ms = 0.0
        self._waited_ms = 0.0
        self._speaking = False
        self._heard_ms = 0.0
        self._listening = False
        self.done: str | None = None

    def prompt_ended(self) -> None:
        self._listening = True
        self._waited_ms = 0.0

    def feed(self, pcm: bytes) -> str | None:
        if self.done:
            return None
        ms = audio.seconds(pcm) * 1000
        loud = audio.rms(pcm) >= self.threshold
        if not self._speaking:
            self._loud = self._loud + 1 if loud else 0
            if self._loud >= self.start_frames:
                self._speaking = True
                self._quiet_ms = 0.0
                return SPEECH_START
            if self._listening:
                self._waited_ms += ms
                if self._waited_ms >= self.no_input_ms:
                    self.done = NO_INPUT
                    return NO_INPUT
            return None
        self._heard_ms += ms
        self._quiet_ms = 0.0 if loud else self._quiet_ms + ms
        if self._quiet_ms >= self.end_silence_ms:
            self.done = END
            return END
        return None

    def result(self) -> dict[str, Any]:
        return {"speech": self._speaking, "speech_ms": round(self._heard_ms), "event": self.done}
