"""Asterisk's side of the AMI connection, replayed from transcripts recorded on the bed.

The transcripts (``transcripts/*.ami``, made by ``record.py``) hold what Asterisk sent after one
real Originate, message by message. :class:`Replay` plays one through ``panoramisk.testing``'s
Manager (a connected AMI protocol over a mock transport): once the originator has written its
action, each recorded message is handed to the protocol as if it came off the socket, in order,
so responses are matched to the action by its ActionID and events are dispatched as they would
be. panoramisk's own ``stream=`` replay stops at the message that answers the action; the events
that come later in a call (the dialing leg's UserEvent at the end) are why this plays the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from panoramisk import testing, utils

TRANSCRIPTS = Path(__file__).parent / "transcripts"


@pytest.fixture(autouse=True)
def _real_ami_framing_afterwards() -> Iterator[None]:
    """panoramisk.testing.Manager sets panoramisk's line ending to '\n' for the whole process;
    a real AMI connection later in the same test process would then never see the end of a
    message ('\r\n\r\n'): put it back."""
    eol = utils.EOL
    yield
    utils.EOL = eol


def transcript(name: str) -> list[bytes]:
    data = (TRANSCRIPTS / f"{name}.ami").read_bytes()
    return [m.strip() + b"\n\n" for m in data.split(b"\n\n") if m.strip()]


class Replay:
    def __init__(self, name: str, *, cut_after: str | None = None,
                 cut_before: str | None = None, reconnect: bool = False) -> None:
        """The connection drops right after (before) the first message containing ``cut_after``
        (``cut_before``); with ``reconnect`` it comes back at once, less that message, and the
        rest of the transcript follows on it."""
        self.messages = transcript(name)
        self.cut_after = cut_after.encode() if cut_after else None
        self.cut_before = cut_before.encode() if cut_before else None
        self.reconnect = reconnect
        # No reconnect or ping during a test: both would reach for a real socket.
        self.manager = testing.Manager(reconnect_timeout=3600, ping_delay=3600)
        # The testing Manager marks its protocol closed while connecting it (Manager.
        # connection_made closes the previous protocol, which is the same object): open it, so
        # a dropped connection takes panoramisk's own path (requeue, on_disconnect).
        self.manager.protocol.closed = False
        self.played = 0

    def sent(self) -> list[dict[str, list[str]]]:
        """The actions the originator wrote, header -> values (Variable repeats)."""
        out = []
        for call in self.manager.protocol.transport.write.call_args_list:
            action: dict[str, list[str]] = {}
            for line in call.args[0].decode().splitlines():
                key, sep, value = line.partition(": ")
                if sep:
                    action.setdefault(key, []).append(value)
            out.append(action)
        return out

    async def play(self) -> None:
        while not self.manager.protocol.transport.write.called:  # the Originate goes out first
            await asyncio.sleep(0)
        for message in self.messages:
            if self.cut_before is not None and self.cut_before in message:
                self.manager.protocol.connection_lost(None)
                if not self.reconnect:
                    return
                self.manager.protocol.closed = False  # the next connection; this message is lost
                continue
            self.manager.protocol.data_received(message)
            self.played += 1
            await asyncio.sleep(0)
            if self.cut_after is not None and self.cut_after in message:
                self.manager.protocol.connection_lost(None)
                return
