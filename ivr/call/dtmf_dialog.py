"""The survey over a real AGI channel with DTMF answers.

say       STREAM FILE of the rendered prompt (keys interrupt it when barge-in is allowed); the
          key that interrupted it is kept as the first key of the next question (type-ahead)
ask       GET DATA with the rendered prompt, timeout and max digits (barge-in); without barge-in
          the prompt is played uninterruptible, then digits are collected with WAIT FOR DIGIT.
          With a key typed ahead the prompt is skipped: the caller has answered already, and the
          rest of a multi-key answer is collected with WAIT FOR DIGIT
record    the prompt, then RECORD FILE into the recordings directory (# ends it)
transfer  SET VARIABLE for the order context and IVR_TRANSFER_TARGET, then SET CONTEXT /
          EXTENSION / PRIORITY so the dialplan continues in the agent context when the AGI ends
hangup    HANGUP

A key typed ahead belongs to the next question only: an open answer (record), a transfer or a
hangup discards it, so it can never answer a later question.

Every hangup of the channel (AGIHangup) becomes the survey's own :class:`DialogHangup`, so the
engine never sees Asterisk.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from ivr.agi.channel import AGIChannel, AGIHangup
from ivr.files import private_dir
from ivr.speech.tts import playable
from ivr.survey.dialog import DialogHangup, Question, Recording, TurnResult

TtsRender = Callable[[str, str], Path]  # (text, voice) -> audio file Asterisk can play
Transcriber = Callable[[Path], str | None]  # recording -> transcript (None: cannot)

ALL_KEYS = "0123456789*#"
AGENT_CONTEXT = "ivr-agent"


@contextlib.contextmanager
def hangups_as_dialog_hangup() -> Iterator[None]:
    """The channel's hangup, in the survey's terms."""
    try:
        yield
    except AGIHangup as exc:
        raise DialogHangup(str(exc)) from exc


class AgiDtmfDialog:
    def __init__(
        self,
        agi: AGIChannel,
        tts_render: TtsRender,
        *,
        recordings_dir: Path | str = "var/recordings",
        agent_context: str = AGENT_CONTEXT,
        default_voice: str = "",
        record_format: str = "wav",
        silence_s: int = 3,
        transcribe: Transcriber | None = None,
    ) -> None:
        self.agi = agi
        self.tts_render = tts_render
        self.recordings_dir = Path(recordings_dir)
        self.agent_context = agent_context
        self.default_voice = default_voice
        self.record_format = record_format
        self.silence_s = silence_s
        self.transcribe = transcribe
        self._typeahead = ""  # the key that cut the last statement short, for the next question

    @property
    def typeahead(self) -> str:
        return self._typeahead

    def _file(self, text: str, voice: str | None) -> str:
        return playable(self.tts_render(text, voice or self.default_voice))

    async def say(self, text: str, *, voice: str | None, barge_in: bool) -> None:
        with hangups_as_dialog_hangup():
            key = await self.agi.stream_file(self._file(text, voice),
                                             ALL_KEYS if barge_in else "")
        if key and key != "#":  # '#' only skips the statement
            self._typeahead = (self._typeahead + key)[-1:]

    async def ask(self, question: Question) -> TurnResult:
        timeout_ms = int(question.timeout_s * 1000)
        ahead, self._typeahead = self._typeahead, ""
        with hangups_as_dialog_hangup():
            if ahead:
                digits = await self.collect(timeout_ms, question.max_digits, ahead)
            elif question.barge_in:
                path = self._file(question.text, question.voice)
                digits, _timed_out = await self.agi.get_data(path, timeout_ms,
                                                             question.max_digits)
            else:
                await self.agi.stream_file(self._file(question.text, question.voice), "")
                digits = await self.collect(timeout_ms, question.max_digits)
        digits = digits.strip()
        if not digits:
            return TurnResult("noinput")
        intent = question.match_dtmf(digits)
        return TurnResult("match" if intent else "nomatch", intent=intent,
                          confidence=1.0 if intent else 0.0, dtmf=digits, input_mode="dtmf")

    async def collect(self, timeout_ms: int, max_digits: int, digits: str = "") -> str:
        """Keys typed after ``digits`` until ``max_digits``, '#' or a timeout."""
        with hangups_as_dialog_hangup():
            while len(digits) < max_digits:
                d = await self.agi.wait_for_digit(timeout_ms)
                if not d or d == "#":
                    break
                digits += d
        return digits

    async def record(self, text: str, *, voice: str | None, max_s: float, node: str,
                     barge_in: bool = True) -> Recording:
        base = self.recordings_dir / f"{self.agi.uniqueid or 'call'}-{node}"
        if base.parent != self.recordings_dir:
            # uniqueid and node are validated upstream; a recording never leaves its folder.
            raise ValueError(f"recording name {base.name!r} leaves {self.recordings_dir}")
        private_dir(base.parent)
        self._typeahead = ""
        with hangups_as_dialog_hangup():
            await self.agi.stream_file(self._file(text, voice), "")
            r = await self.agi.record_file(str(base), self.record_format, "#",
                                           int(max_s * 1000), self.silence_s)
        if r.value < 0:
            raise DialogHangup(f"hangup while recording at {node}")
        audio = base.with_name(f"{base.name}.{self.record_format}")
        transcript = None
        if self.transcribe is not None and audio.exists():
            transcript = await asyncio.to_thread(self.transcribe, audio)
        return Recording(str(audio), transcript)

    async def transfer(self, target: str, variables: Mapping[str, str]) -> None:
        self._typeahead = ""
        with hangups_as_dialog_hangup():
            for name, value in {"IVR_TRANSFER_TARGET": target, **variables}.items():
                # "__": the agent's channel inherits the order context through Dial().
                await self.agi.set_variable(f"__{name}", value)
            await self.agi.goto(self.agent_context, target, 1)

    async def hangup(self) -> None:
        with hangups_as_dialog_hangup():
            await self.agi.hangup()
