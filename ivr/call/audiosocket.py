"""AudioSocket server: play a prompt to a call and listen to the caller at the same time.

Asterisk's ``AudioSocket(uuid,host:port)`` (app_audiosocket) connects to this server, sends the
uuid, then streams the caller's audio and plays whatever audio we send back. Protocol (checked
against Asterisk 22's res_audiosocket.c): every message is 1 byte kind + 2 bytes big-endian payload
length + payload. Kinds: 0x00 hangup, 0x01 uuid (16 raw bytes), 0x03 DTMF (1 ASCII byte, sent since
Asterisk 22.4), 0x10 slin 8 kHz mono s16le (320 bytes = 20 ms), 0xff error. Asterisk accepts only
audio and hangup from the server (anything else hangs the channel up), writes our audio to the
channel as soon as it arrives (so we pace it at 20 ms per frame), needs header and payload in one
write (it polls only 5 ms for the payload), and returns from AudioSocket() without hanging up when
we send 0x00 or close the socket, so the AGI script carries on.

Use from an (async) AGI handler::

    fut = server.register(call_uuid, Turn(prompt=pcm, listener=recognizer, barge_in=True))
    await agi.exec("AudioSocket", server.app_args(call_uuid))
    outcome = await fut          # TurnOutcome(event="end", result=..., timings=...)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

from ivr.speech import audio

log = logging.getLogger(__name__)

KIND_HANGUP = 0x00
KIND_UUID = 0x01
KIND_DTMF = 0x03
KIND_AUDIO = 0x10
KIND_ERROR = 0xFF

# Events a listener's feed() may return.
SPEECH_START, END, NO_INPUT = "speech_start", "end", "no_input"
# How a turn ended: the listener's endpoint, its no-input, a key, the prompt played out (play-only
# turn), the caller hung up, max_listen_ms passed, an error, or AudioSocket() never connected.
TurnEnd = Literal["end", "no_input", "dtmf", "played", "hangup", "timeout", "error", "no_connect"]
# What the listener makes of a turn (the voice dialog's: ivr.speech.intents.Hypothesis).
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


@runtime_checkable
class Listener(Protocol[R_co]):
    """What the server feeds caller audio into (the voice dialog wraps a TurnRecognizer).

    ``feed`` gets 8 kHz s16le PCM (normally 20 ms) and returns "speech_start", "end", "no_input"
    (or an Enum whose values are those strings) or None. Optional: ``prompt_ended()`` is called
    when the prompt stops, so a no-input timer can start then; "no_input" returned while the
    prompt still plays is ignored.
    """

    def feed(self, pcm: bytes) -> Any: ...

    def result(self) -> R_co: ...


def encode(kind: int, payload: bytes = b"") -> bytes:
    """One AudioSocket message (header and payload together: Asterisk wants one write)."""
    return struct.pack(">BH", kind, len(payload)) + payload


async def read_message(reader: asyncio.StreamReader) -> tuple[int, bytes] | None:
    """Next (kind, payload), or None when the peer closed the socket."""
    try:
        header = await reader.readexactly(3)
        kind, length = struct.unpack(">BH", header)
        payload = await reader.readexactly(length) if length else b""
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return kind, payload


def now_ms() -> float:
    return time.monotonic() * 1000.0


@dataclass
class Turn(Generic[R]):
    """One prompt-and-answer exchange. ``listener=None`` makes a play-only turn (a statement)."""

    prompt: bytes = b""  # 8 kHz s16le PCM (TtsEngine.pcm(path))
    listener: Listener[R] | None = None
    barge_in: bool = True  # caller speech (or DTMF) during the prompt stops the prompt
    accept_dtmf: bool = True  # a DTMF digit ends the turn
    max_listen_ms: int = 20_000  # safety net after the prompt if the listener never decides
    connect_timeout_ms: int = 10_000  # AudioSocket() must connect within this after register()
    # A key event in the first moments of a turn is the tail of a press made during the previous
    # question (nobody reacts to a new prompt that fast): ignore it.
    dtmf_guard_ms: int = 300
    name: str = ""


@dataclass
class TurnTimings:
    """Monotonic milliseconds (time.monotonic() * 1000); None when it did not happen."""

    registered: float | None = None
    connected: float | None = None
    prompt_started: float | None = None
    prompt_stopped: float | None = None
    speech_start: float | None = None
    speech_end: float | None = None
    closed: float | None = None

    @property
    def barge_in_stop_ms(self) -> float | None:
        """From detected caller speech to the last prompt frame sent."""
        if self.speech_start is None or self.prompt_stopped is None:
            return None
        return max(0.0, self.prompt_stopped - self.speech_start)

    @property
    def end_to_close_ms(self) -> float | None:
        if self.speech_end is None or self.closed is None:
            return None
        return self.closed - self.speech_end


@dataclass
class TurnOutcome(Generic[R]):
    uuid: str
    event: TurnEnd
    result: R | None = None  # listener.result(); None for a play-only turn or a failed listener
    dtmf: str | None = None
    barged_in: bool = False
    prompt_frames_sent: int = 0
    prompt_frames_total: int = 0
    caller_frames: int = 0
    error: str | None = None
    timings: TurnTimings = field(default_factory=TurnTimings)


def normalize_uuid(value: str | uuidlib.UUID) -> str:
    return str(value if isinstance(value, uuidlib.UUID) else uuidlib.UUID(str(value)))


@dataclass
class _Pending(Generic[R]):
    turn: Turn[R]
    future: asyncio.Future[TurnOutcome[R]]
    timings: TurnTimings
    timer: asyncio.TimerHandle | None = None


class AudioSocketServer:
    """An asyncio AudioSocket server for many concurrent calls; one registered turn per uuid."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, lead_frames: int = 2,
                 frame_ms: int = audio.FRAME_MS) -> None:
        self.host = host
        self._port = port
        self.lead_frames = lead_frames  # frames sent ahead of real time (absorbs loop jitter)
        self.frame_ms = frame_ms
        self._server: asyncio.base_events.Server | None = None
        self._pending: dict[str, _Pending[Any]] = {}
        self._sessions: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    def app_args(self, call_uuid: str | uuidlib.UUID) -> str:
        """Arguments for the dialplan app: ``AudioSocket(<this>)``."""
        return f"{normalize_uuid(call_uuid)},{self.host}:{self.port}"

    async def start(self) -> AudioSocketServer:
        self._server = await asyncio.start_server(self._on_connect, self.host, self._port)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._sessions):
            task.cancel()
        for task in list(self._sessions):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for key in list(self._pending):
            self.cancel(key)

    async def __aenter__(self) -> AudioSocketServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def register(self, call_uuid: str | uuidlib.UUID, turn: Turn[R]
                 ) -> asyncio.Future[TurnOutcome[R]]:
        """Announce the turn for ``call_uuid`` before executing AudioSocket(); call on the loop.

        The future resolves with a :class:`TurnOutcome` (event "no_connect" if Asterisk never
        connects within ``turn.connect_timeout_ms``).
        """
        key = normalize_uuid(call_uuid)
        if key in self._pending:
            raise ValueError(f"a turn is already registered for {key}")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[TurnOutcome[R]] = loop.create_future()
        pending = _Pending(turn, future, TurnTimings(registered=now_ms()))
        pending.timer = loop.call_later(turn.connect_timeout_ms / 1000, self._expire, key)
        self._pending[key] = pending
        return pending.future

    def cancel(self, call_uuid: str | uuidlib.UUID) -> None:
        """Drop a registered turn that will not connect (e.g. the AudioSocket app failed)."""
        key = normalize_uuid(call_uuid)
        pending = self._pending.pop(key, None)
        if pending is None:
            return
        if pending.timer:
            pending.timer.cancel()
        if not pending.future.done():
            pending.timings.closed = now_ms()
            pending.future.set_result(TurnOutcome(key, "no_connect", timings=pending.timings,
                                                  error="cancelled before AudioSocket connected"))

    def _expire(self, key: str) -> None:
        pending = self._pending.pop(key, None)
        if pending and not pending.future.done():
            pending.timings.closed = now_ms()
            pending.future.set_result(TurnOutcome(key, "no_connect", timings=pending.timings,
                                                  error="AudioSocket did not connect in time"))

    async def _on_connect(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        try:
            await self._serve(reader, writer)
        except Exception:  # a broken connection must never take the server down
            log.exception("audiosocket session failed")
        finally:
            self._sessions.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await asyncio.wait_for(read_message(reader), 5.0)
        except TimeoutError:
            first = None
        if first is None or first[0] != KIND_UUID or len(first[1]) != 16:
            log.warning("audiosocket: connection did not start with a uuid message: %r", first)
            return
        key = str(uuidlib.UUID(bytes=first[1]))
        pending = self._pending.pop(key, None)
        if pending is None:
            log.warning("audiosocket: no turn registered for %s; closing", key)
            with contextlib.suppress(ConnectionError):
                writer.write(encode(KIND_HANGUP))
            return
        if pending.timer:
            pending.timer.cancel()
        pending.timings.connected = now_ms()
        session = _Session(key, pending, reader, writer, self.lead_frames, self.frame_ms)
        await session.run()


class _Session(Generic[R]):
    """One connected turn: a paced prompt player and a reader feeding the listener."""

    def __init__(self, key: str, pending: _Pending[R], reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, lead_frames: int, frame_ms: int) -> None:
        self.key = key
        self.turn = pending.turn
        self.future = pending.future
        self.t = pending.timings
        self.reader = reader
        self.writer = writer
        self.lead = lead_frames
        self.frame_s = frame_ms / 1000
        self.frames = list(audio.frames(self.turn.prompt)) if self.turn.prompt else []
        self.sent = 0
        self.caller_frames = 0
        self.playing = bool(self.frames)
        self.barged = False
        self.outcome: TurnOutcome[R] | None = None
        self.listen_deadline: float | None = None
        self.player: asyncio.Task[None] | None = None
        self.filler: asyncio.Task[None] | None = None
        self.wake = asyncio.Event()

    async def run(self) -> None:
        if self.frames:
            self.player = asyncio.create_task(self._play())
        else:
            self._prompt_done()
        read: asyncio.Task[tuple[int, bytes] | None] | None = None
        try:
            while self.outcome is None:
                if read is None:
                    read = asyncio.create_task(read_message(self.reader))
                woken = asyncio.create_task(self.wake.wait())
                timeout = None
                if self.listen_deadline is not None:
                    timeout = max(0.0, self.listen_deadline - time.monotonic())
                done, _ = await asyncio.wait({read, woken}, timeout=timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
                self.wake.clear()
                if read in done:
                    msg, read = read.result(), None
                    if self.outcome is None:
                        self._on_message(msg)
                elif not done and self.outcome is None:
                    self._finish("timeout")
        finally:
            for task in (self.player, self.filler, read):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            if self.outcome is None:
                self._finish("hangup")
            assert self.outcome is not None
            if self.outcome.event != "hangup":
                with contextlib.suppress(ConnectionError, RuntimeError):
                    self.writer.write(encode(KIND_HANGUP))
                    await self.writer.drain()

    async def _play(self) -> None:
        self.t.prompt_started = now_ms()
        start = time.monotonic()
        try:
            for i, frame in enumerate(self.frames):
                if not self.playing:
                    return
                delay = start + (i - self.lead) * self.frame_s - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                    if not self.playing:
                        return
                self.writer.write(encode(KIND_AUDIO, frame))
                self.sent += 1
                await self.writer.drain()
        except ConnectionError:
            return
        # let the frames sent ahead of time finish playing before the turn moves on
        remaining = start + len(self.frames) * self.frame_s - time.monotonic()
        if remaining > 0:
            await asyncio.sleep(remaining)
        if self.playing:
            self._prompt_done()

    def _stop_prompt(self) -> None:
        if self.playing:
            self.playing = False
            self.t.prompt_stopped = now_ms()
        if self.filler is None and self.outcome is None and self.turn.listener is not None:
            self.filler = asyncio.create_task(self._send_silence())

    async def _send_silence(self) -> None:
        """Keep sending silence while listening: app_audiosocket gives up after 2 s without
        activity, which happens when the caller's side sends no RTP (silence suppression)."""
        frame = encode(KIND_AUDIO, bytes(audio.FRAME_BYTES))
        start = time.monotonic()
        i = 0
        with contextlib.suppress(ConnectionError, RuntimeError):
            while self.outcome is None:
                self.writer.write(frame)
                await self.writer.drain()
                i += 1
                await asyncio.sleep(max(0.0, start + i * self.frame_s - time.monotonic()))

    def _prompt_done(self) -> None:
        self._stop_prompt()
        listener = self.turn.listener
        if listener is None:
            self._finish("played")
            self._wake_reader()
            return
        hook = getattr(listener, "prompt_ended", None)
        if callable(hook):
            try:
                hook()
            except Exception as exc:  # the listener's bug must not crash the call
                self._finish("error", error=f"listener.prompt_ended: {exc!r}")
                self._wake_reader()
                return
        self.listen_deadline = time.monotonic() + self.turn.max_listen_ms / 1000
        self._wake_reader()

    def _wake_reader(self) -> None:
        """The reader re-checks its state (finished, new listening deadline)."""
        self.wake.set()

    def _on_message(self, msg: tuple[int, bytes] | None) -> None:
        if msg is None or msg[0] == KIND_HANGUP:
            self._finish("hangup")
            return
        kind, payload = msg
        if kind == KIND_ERROR:
            self._finish("error", error=f"asterisk error 0x{payload.hex() or '00'}")
        elif kind == KIND_DTMF:
            digit = payload[:1].decode("ascii", "replace")
            since = now_ms() - (self.t.connected or now_ms())
            if since < self.turn.dtmf_guard_ms:
                log.info("audiosocket %s: ignoring key %s %d ms into the turn", self.key, digit,
                         since)
                return
            log.info("audiosocket %s: key %s %d ms into the turn", self.key, digit, since)
            if self.turn.accept_dtmf and (not self.playing or self.turn.barge_in):
                self._stop_prompt()
                self._finish("dtmf", dtmf=digit)
        elif kind == KIND_AUDIO:
            self.caller_frames += 1
            self._on_audio(payload)
        else:
            log.debug("audiosocket %s: ignoring message kind 0x%02x", self.key, kind)

    def _on_audio(self, pcm: bytes) -> None:
        listener = self.turn.listener
        if listener is None or (self.playing and not self.turn.barge_in):
            return  # play-only, or no barge-in: the caller is not heard during the prompt
        try:
            event = listener.feed(pcm)
        except Exception as exc:
            self._finish("error", error=f"listener.feed: {exc!r}")
            return
        event = getattr(event, "value", event)  # str or an Enum with str values (TurnEvent)
        if event == SPEECH_START:
            if self.t.speech_start is None:
                self.t.speech_start = now_ms()
            if self.playing:
                self.barged = True
                self._stop_prompt()
                if self.player is not None:
                    self.player.cancel()
                # listening has begun: the no-input/timeout clock starts now
                self.listen_deadline = time.monotonic() + self.turn.max_listen_ms / 1000
        elif event == END:
            self.t.speech_end = now_ms()
            self._stop_prompt()
            self._finish("end")
        elif event == NO_INPUT and not self.playing:
            self._finish("no_input")

    def _finish(self, event: TurnEnd, dtmf: str | None = None, error: str | None = None) -> None:
        if self.outcome is not None:
            return
        self._stop_prompt()
        self.t.closed = now_ms()
        result: R | None = None
        if self.turn.listener is not None:
            try:
                result = self.turn.listener.result()
            except Exception as exc:
                error = error or f"listener.result: {exc!r}"
        self.outcome = TurnOutcome(
            uuid=self.key, event=event, result=result, dtmf=dtmf, barged_in=self.barged,
            prompt_frames_sent=self.sent, prompt_frames_total=len(self.frames),
            caller_frames=self.caller_frames, error=error, timings=self.t)
        if not self.future.done():
            self.future.set_result(self.outcome)
        self.wake.set()
