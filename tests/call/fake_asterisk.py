"""A fake Asterisk AudioSocket() client: connects, sends the uuid, streams caller audio paced at
20 ms per frame, and records every prompt frame it receives (with its arrival time)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid as uuidlib
from dataclasses import dataclass, field

from ivr.call.audiosocket import (
    KIND_AUDIO,
    KIND_DTMF,
    KIND_HANGUP,
    KIND_UUID,
    encode,
    read_message,
)


@dataclass
class Recording:
    prompt_frames: list[tuple[float, bytes]] = field(default_factory=list)  # (monotonic ms, pcm)
    hangup_received: bool = False
    closed_at: float | None = None
    sent_at: list[float] = field(default_factory=list)  # monotonic ms of each caller frame sent


def now_ms() -> float:
    return time.monotonic() * 1000


class FakeAsterisk:
    def __init__(self, port: int, call_uuid: str) -> None:
        self.port = port
        self.uuid = call_uuid
        self.rec = Recording()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._recv: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(encode(KIND_UUID, uuidlib.UUID(self.uuid).bytes))
        await self.writer.drain()
        self._recv = asyncio.create_task(self._receive())

    async def _receive(self) -> None:
        assert self.reader is not None
        while True:
            msg = await read_message(self.reader)
            if msg is None:
                break
            kind, payload = msg
            if kind == KIND_AUDIO:
                self.rec.prompt_frames.append((now_ms(), payload))
            elif kind == KIND_HANGUP:
                self.rec.hangup_received = True
        self.rec.closed_at = now_ms()

    @property
    def closed(self) -> bool:
        return self.rec.closed_at is not None

    async def stream(self, pcm: bytes, frame_ms: int = 20) -> None:
        """Send caller audio in real time until done or the server closed the socket."""
        assert self.writer is not None
        start = time.monotonic()
        for i, off in enumerate(range(0, len(pcm), 320)):
            if self.closed:
                return
            delay = start + i * frame_ms / 1000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            chunk = pcm[off:off + 320].ljust(320, b"\x00")
            try:
                self.writer.write(encode(KIND_AUDIO, chunk))
                self.rec.sent_at.append(now_ms())
                await self.writer.drain()
            except ConnectionError:
                return

    async def dtmf(self, digit: str) -> None:
        assert self.writer is not None
        self.writer.write(encode(KIND_DTMF, digit.encode()))
        await self.writer.drain()

    async def hangup(self, clean: bool = True) -> None:
        assert self.writer is not None
        if clean:
            self.writer.write(encode(KIND_HANGUP))
        self.writer.close()

    async def wait_closed(self, timeout: float = 5.0) -> None:
        assert self._recv is not None
        await asyncio.wait_for(self._recv, timeout)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self._recv is not None:
            self._recv.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._recv
