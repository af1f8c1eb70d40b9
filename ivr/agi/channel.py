"""The AGI channel every handler talks to, whatever the transport.

A handler gets an :class:`AGIChannel` and awaits its methods. The FastAGI daemon implements the
transport over a TCP socket (asyncio), the classic entry point over stdin/stdout (pyst2), and tests
over a scripted fake; the handler cannot tell them apart. Hangups and protocol errors surface as the
exceptions below, which the runner turns into a recorded, clean end of the call.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Protocol

from ivr.agi import encode
from ivr.agi.encode import UnsafeCommand


class AGIError(Exception):
    """Asterisk refused or failed a command (510/520, result=-1 from an application)."""


class AGIHangup(AGIError):
    """The channel is gone (511, HANGUP, EOF or broken pipe). Ends the handler cleanly."""


class AGIRefused(AGIError):
    """The AGI layer refused to send a command (control character, open quote, too long)."""


_RESULT = re.compile(r"^(?P<code>\d{3})(?:[ -](?P<rest>.*))?$")
_KV = re.compile(r"(?P<key>\w+)=(?P<value>\S*)(?:\s+\((?P<data>[^)]*)\))?")


@dataclass(frozen=True)
class AGIResponse:
    """A parsed ``200 result=... (data) key=value`` line."""

    code: int
    result: str
    data: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    line: str = ""

    @property
    def value(self) -> int:
        try:
            return int(self.result)
        except ValueError:
            return 0


def parse_response(line: str) -> AGIResponse:
    """Parse one AGI response line; raise :class:`AGIHangup` / :class:`AGIError` on failure."""
    line = line.rstrip("\r\n")
    if line == "HANGUP":
        raise AGIHangup("channel hung up")
    m = _RESULT.match(line)
    if not m:
        raise AGIError(f"unparsable AGI response {line!r}")
    code = int(m.group("code"))
    rest = m.group("rest") or ""
    if code == 511:
        raise AGIHangup(f"command on a dead channel: {line}")
    if code != 200:
        raise AGIError(f"AGI error {line}")
    result, data, extra = "", "", {}
    for kv in _KV.finditer(rest):
        if kv.group("key") == "result":
            result = kv.group("value")
            data = kv.group("data") or ""
        else:
            extra[kv.group("key")] = kv.group("value")
    return AGIResponse(code=code, result=result, data=data, extra=extra, line=line)


def quote(arg: object) -> str:
    """Quote one AGI argument (:func:`ivr.agi.encode.arg`: no control character, bounded)."""
    return encode.arg(arg)


class Transport(Protocol):
    async def command(self, line: str) -> AGIResponse: ...

    async def close(self) -> None: ...


class AGIChannel:
    """High-level commands over a transport. ``env`` holds the ``agi_*`` header variables."""

    def __init__(self, transport: Transport, env: dict[str, str]) -> None:
        self.transport = transport
        self.env = env
        self.hung_up = False

    # --- identity -------------------------------------------------------------------------
    @property
    def uniqueid(self) -> str:
        return self.env.get("agi_uniqueid", "")

    @property
    def channel_name(self) -> str:
        return self.env.get("agi_channel", "")

    @property
    def args(self) -> list[str]:
        """Arguments the dialplan passed: ``AGI(agi://h/survey,a,b)`` -> ['a', 'b']."""
        out = []
        i = 1
        while f"agi_arg_{i}" in self.env:
            out.append(self.env[f"agi_arg_{i}"])
            i += 1
        return out

    # --- raw --------------------------------------------------------------------------------
    async def command(self, line: str) -> AGIResponse:
        try:
            encode.check_command(line)
        except UnsafeCommand as exc:
            raise AGIRefused(str(exc)) from exc
        try:
            return await self.transport.command(line)
        except AGIHangup:
            self.hung_up = True
            raise
        except (BrokenPipeError, ConnectionError, EOFError) as exc:
            self.hung_up = True
            raise AGIHangup(f"AGI connection lost: {exc!r}") from exc

    # --- commands ---------------------------------------------------------------------------
    async def answer(self) -> None:
        await self.command("ANSWER")

    async def hangup(self) -> None:
        with contextlib.suppress(AGIHangup):
            await self.command("HANGUP")

    async def verbose(self, message: str, level: int = 1) -> None:
        await self.command(f"VERBOSE {quote(message)} {level}")

    async def set_variable(self, name: str, value: object) -> None:
        await self.command(f"SET VARIABLE {self._name(name)} {quote(value)}")

    async def get_variable(self, name: str) -> str | None:
        r = await self.command(f"GET VARIABLE {self._name(name)}")
        return r.data if r.result == "1" else None

    async def get_full_variable(self, expression: str) -> str | None:
        """Asterisk evaluates ``expression`` (e.g. ``${GLOBAL(X)}``) on this channel."""
        r = await self.command(f"GET FULL VARIABLE {quote(expression)}")
        return r.data if r.result == "1" else None

    async def goto(self, context: str, extension: str, priority: int = 1) -> None:
        """Where the dialplan continues when the AGI ends (SET CONTEXT / EXTENSION / PRIORITY)."""
        try:
            words = [encode.dialplan_word(w) for w in (context, extension, str(int(priority)))]
        except UnsafeCommand as exc:
            raise AGIRefused(str(exc)) from exc
        for what, word in zip(("CONTEXT", "EXTENSION", "PRIORITY"), words, strict=True):
            await self.command(f"SET {what} {word}")

    @staticmethod
    def _name(name: str) -> str:
        try:
            return encode.variable_name(name)
        except UnsafeCommand as exc:
            raise AGIRefused(str(exc)) from exc

    async def stream_file(self, path: str, escape_digits: str = "") -> str:
        """Play a sound file (path without extension). Returns the digit that interrupted it."""
        r = await self.command(f"STREAM FILE {quote(path)} {quote(escape_digits)}")
        if r.value < 0:
            raise AGIHangup("channel hung up during playback")
        return chr(r.value) if r.value > 0 else ""

    async def get_data(self, path: str, timeout_ms: int, max_digits: int = 1) -> tuple[str, bool]:
        """Play a prompt and collect DTMF. Returns (digits, timed_out)."""
        r = await self.command(f"GET DATA {quote(path)} {int(timeout_ms)} {int(max_digits)}")
        if r.value < 0 or r.result == "-1":
            raise AGIHangup("channel hung up while collecting digits")
        return r.result, r.data == "timeout"

    async def wait_for_digit(self, timeout_ms: int) -> str:
        r = await self.command(f"WAIT FOR DIGIT {int(timeout_ms)}")
        if r.value < 0:
            raise AGIHangup("channel hung up while waiting for a digit")
        return chr(r.value) if r.value > 0 else ""

    async def exec(self, app: str, args: str = "") -> AGIResponse:
        """Run a dialplan application (e.g. ``AudioSocket``, ``Dial``, ``AMD``)."""
        try:
            app = encode.app_name(app)
        except UnsafeCommand as exc:
            raise AGIRefused(str(exc)) from exc
        return await self.command(f"EXEC {app} {quote(args)}" if args else f"EXEC {app}")

    async def record_file(
        self, path: str, fmt: str = "wav", escape_digits: str = "#", timeout_ms: int = 10000,
        silence_s: int = 2,
    ) -> AGIResponse:
        return await self.command(
            f"RECORD FILE {quote(path)} {quote(fmt)} {quote(escape_digits)} {int(timeout_ms)} "
            f"s={int(silence_s)}"
        )
