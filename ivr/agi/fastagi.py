"""The FastAGI daemon: asyncio TCP server (panoramisk's Application as the router).

Asterisk connects for ``AGI(agi://host:port/<name>,args)``; the ``agi_network_script`` header picks
the handler registered under ``<name>`` (see :mod:`ivr.agi.registry`). One coroutine per call; a
hangup or a broken connection ends that coroutine cleanly and is recorded, nothing else is affected.

Every connection is a stranger until it proves otherwise, and nothing of ours - no order data, no
database, no file - is touched before that:

1. its address must be loopback or in ``agi.allow``;
2. it sends a complete, valid header block (``agi_uniqueid`` and every other header checked)
   within ``agi.header_timeout_s``;
3. it answers ``GET FULL VARIABLE ${GLOBAL(IVR_AGI_SECRET)}`` with this installation's secret
   (compared in constant time). Only our Asterisk can: the secret sits in its 0600 extensions.conf,
   and a global cannot be replaced by a channel variable.

A refused connection is logged with its peer and the reason, told ``failure`` (Asterisk then takes
the dialplan's failure path: AGISTATUS=FAILURE) and closed. At most ``max_sessions``
calls are served at once; at most ``max_pending`` connections may still be proving themselves, the
oldest being dropped for a new one, so idle connections cannot lock Asterisk out.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import re
import resource
from collections import OrderedDict
from typing import Any

from panoramisk.fast_agi import Application, Request

from ivr import fields
from ivr.agi.channel import AGIChannel, AGIError, AGIHangup, AGIResponse, parse_response
from ivr.agi.registry import load_handlers, run_handler
from ivr.config import Settings
from ivr.store import open_db

log = logging.getLogger(__name__)
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 200
MAX_HEADER_VALUE = 1024
SECRET_EXPRESSION = "${GLOBAL(IVR_AGI_SECRET)}"
_HEADER_NAME = re.compile(r"agi_[a-z0-9_]{1,40}")
_SCRIPT = re.compile(r"[a-z][a-z0-9_-]{0,40}(?:/[A-Za-z0-9_./-]{0,200})?")


class Refused(Exception):
    """A connection that is not (or not yet) a request from our Asterisk; the message says why."""


class StreamTransport:
    """AGI over an asyncio stream pair; turns EOF / reset / HANGUP / silence into AGIHangup."""

    def __init__(self, request: Request, idle_timeout_s: float = 600.0) -> None:
        self.request = request
        self.reader = request.reader
        self.writer = request.writer
        self.idle_timeout_s = idle_timeout_s
        self.lock = asyncio.Lock()

    async def command(self, line: str) -> AGIResponse:
        async with self.lock:  # one command in flight per channel, as AGI requires
            try:
                self.writer.write((line.strip() + "\n").encode(self.request.encoding))
                await self.writer.drain()
                while True:
                    raw = await self._readline()
                    if not raw:
                        raise AGIHangup("AGI connection closed by Asterisk")
                    text = raw.decode(self.request.encoding, errors="replace").rstrip("\r\n")
                    if text == "HANGUP":
                        # Asterisk tells us asynchronously; the command's own reply still follows.
                        continue
                    if text.startswith("100 "):
                        continue
                    if text.startswith("520-"):
                        await self._skip_usage()
                        raise AGIError(f"AGI usage error for command {line!r}")
                    return parse_response(text)
            except (ConnectionError, BrokenPipeError) as exc:
                raise AGIHangup(f"AGI connection lost: {exc!r}") from exc

    async def _readline(self) -> bytes:
        try:
            return await asyncio.wait_for(self.reader.readline(), self.idle_timeout_s)
        except TimeoutError as exc:
            raise AGIHangup(f"no reply from Asterisk within {self.idle_timeout_s:.0f} s "
                            "(agi.idle_timeout_s)") from exc
        except ValueError as exc:  # a line longer than the stream limit
            raise AGIHangup(f"unreadable reply from Asterisk: {exc}") from exc

    async def _skip_usage(self) -> None:
        while True:
            raw = await self._readline()
            if not raw or raw.startswith(b"520 "):
                return

    async def close(self) -> None:
        try:
            self.writer.close()
            await self.writer.wait_closed()
        except (ConnectionError, BrokenPipeError):
            pass


def check_headers(headers: dict[str, str]) -> None:
    """Raise :class:`Refused` unless every header is one Asterisk would send, well formed."""
    for key, value in headers.items():
        if not _HEADER_NAME.fullmatch(key):
            raise Refused(f"unexpected header {key[:40]!r}")
        if len(value) > MAX_HEADER_VALUE or fields.CONTROL.search(value) or "\ufffd" in value:
            raise Refused(f"header {key} is not a printable UTF-8 value of at most "
                          f"{MAX_HEADER_VALUE} characters")
    if headers.get("agi_network") != "yes":
        raise Refused("not a FastAGI request (agi_network is not 'yes')")
    if not _SCRIPT.fullmatch(headers.get("agi_network_script", "")):
        raise Refused(f"bad agi_network_script {headers.get('agi_network_script', '')[:60]!r}")
    try:
        fields.uniqueid(headers.get("agi_uniqueid", ""))
    except fields.FieldError as exc:
        raise Refused(f"bad agi_uniqueid: {exc}") from None


class FastAGIServer(Application):
    """panoramisk's Application with our handler registry, authentication and limits."""

    def __init__(self, settings: Settings, secret: str) -> None:
        super().__init__(default_encoding="utf-8")
        self.settings = settings
        self.conf = settings.agi
        self._secret = secret.encode()
        self.allowed = [ipaddress.ip_network(n) for n in self.conf.allow]
        self.db = open_db(settings.db_path)
        self.active: set[asyncio.Task[Any]] = set()
        self.sessions = 0
        self.pending: OrderedDict[asyncio.Task[Any], asyncio.StreamWriter] = OrderedDict()
        self.refused = 0
        for name in load_handlers():
            self.add_route(name, self._endpoint(name))

    def _endpoint(self, name: str) -> Any:
        async def endpoint(request: Request) -> None:
            transport = StreamTransport(request, self.conf.idle_timeout_s)
            agi = AGIChannel(transport, dict(request.headers))
            await run_handler(name, agi, self.settings, "fastagi", db=self.db)

        return endpoint

    def _address_allowed(self, host: str) -> bool:
        try:
            addr = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        mapped = getattr(addr, "ipv4_mapped", None)
        if mapped is not None:
            addr = mapped
        return addr.is_loopback or any(addr in net for net in self.allowed)

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.active.add(task)
        peer = writer.get_extra_info("peername") or ("?", 0)
        try:
            try:
                headers = await self._admit(task, peer, reader, writer)
            except Refused as exc:
                self.refused += 1
                log.warning("refused AGI connection from %s:%s: %s", peer[0], peer[1], exc)
                # Asterisk reads a first line "failure" as AGISTATUS=FAILURE: the call gets the
                # apology and is recorded as failed instead of being hung up in silence.
                with contextlib.suppress(ConnectionError, RuntimeError):
                    writer.write(b"failure\n")
                    await writer.drain()
                return
            if headers is None:
                return
            script = headers["agi_network_script"]
            route = self._route.get(script.split("/", 1)[0])
            if route is None:
                log.error("no AGI handler for %r", script)
                writer.write(b'VERBOSE "ivr: no such AGI handler" 1\n')
                await writer.drain()
                return
            self.sessions += 1
            try:
                await route(Request(self, headers, reader, writer, self.default_encoding))
            finally:
                self.sessions -= 1
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            log.info("AGI connection dropped: %r", exc)
        finally:
            with contextlib.suppress(Exception):
                writer.close()
            if task is not None:
                self.active.discard(task)

    async def _admit(self, task: asyncio.Task[Any] | None, peer: Any,
                     reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> OrderedDict[str, str] | None:
        """The request's headers once it proved it comes from our Asterisk; None if the peer
        went away; :class:`Refused` otherwise."""
        if not self._address_allowed(str(peer[0])):
            raise Refused("address not loopback and not in agi.allow")
        if task is not None:
            while len(self.pending) >= self.conf.max_pending:
                old_task, old_writer = self.pending.popitem(last=False)
                old_writer.close()
                old_task.cancel()
                log.warning("dropped an AGI connection that sent no request yet: more than %d "
                            "pending (agi.max_pending)", self.conf.max_pending)
            self.pending[task] = writer
        try:
            async with asyncio.timeout(self.conf.header_timeout_s):
                headers = await self._read_headers(reader)
                if headers is None:
                    return None
                check_headers(headers)
                await self._authenticate(reader, writer)
        except TimeoutError:
            raise Refused(f"no complete request within {self.conf.header_timeout_s:g} s "
                          "(agi.header_timeout_s)") from None
        except asyncio.CancelledError:
            if task is not None and task not in self.pending:
                raise Refused("dropped for a newer connection (agi.max_pending)") from None
            raise
        finally:
            if task is not None:
                self.pending.pop(task, None)
        if self.sessions >= self.conf.max_sessions:
            raise Refused(f"{self.sessions} calls in progress (agi.max_sessions)")
        return headers

    async def _authenticate(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        writer.write(f'GET FULL VARIABLE "{SECRET_EXPRESSION}"\n'.encode())
        await writer.drain()
        while True:
            raw = await reader.readline()
            if not raw:
                raise Refused("closed before proving the secret")
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if text != "HANGUP":  # a hung-up channel (h extension) still answers
                break
        try:
            answer = parse_response(text)
        except AGIError:
            raise Refused("no answer to the secret check") from None
        given = answer.data.encode() if answer.result == "1" else b""
        if not hmac.compare_digest(given, self._secret):
            raise Refused("wrong or missing secret (IVR_AGI_SECRET)")

    async def _read_headers(self, reader: asyncio.StreamReader) -> OrderedDict[str, str] | None:
        headers: OrderedDict[str, str] = OrderedDict()
        size = 0
        while True:
            try:
                raw = await reader.readline()
            except ValueError:
                raise Refused("header line too long") from None
            if not raw:
                return None  # the peer went away before the request was complete
            size += len(raw)
            if size > MAX_HEADER_BYTES or len(headers) >= MAX_HEADERS:
                raise Refused("header block too large")
            line = raw.decode(self.default_encoding, errors="replace").rstrip("\r\n")
            if not line:
                return headers
            key, sep, value = line.partition(": ")
            if not sep:
                raise Refused(f"malformed header line {line[:40]!r}")
            headers[key] = value


def _raise_fd_limit() -> None:
    """Many idle connections must not exhaust the daemon's file descriptors first."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


async def serve(settings: Settings, ready: asyncio.Event | None = None) -> None:
    """Run the daemon until cancelled."""
    from ivr.asterisk.render import agi_secret

    _raise_fd_limit()
    app = FastAGIServer(settings, agi_secret(settings))
    server = await asyncio.start_server(app.handler, settings.agi.host, settings.agi.port,
                                        backlog=1024)
    log.info("FastAGI listening on %s:%s", settings.agi.host, settings.agi.port)
    if ready is not None:
        ready.set()
    async with server:
        try:
            await server.serve_forever()
        finally:
            for task in list(app.active):
                task.cancel()
