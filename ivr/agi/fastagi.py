"""The FastAGI daemon: asyncio TCP server (panoramisk's Application as the router).

Asterisk connects for ``AGI(agi://host:port/<name>,args)``; the ``agi_network_script`` header picks
the handler registered under ``<name>`` (see :mod:`ivr.agi.registry`). One coroutine per call; a
hangup or a broken connection ends that coroutine cleanly and is recorded, nothing else is affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from typing import Any

from panoramisk.fast_agi import Application, Request

from ivr.agi.channel import AGIChannel, AGIError, AGIHangup, AGIResponse, parse_response
from ivr.agi.registry import load_handlers, run_handler
from ivr.config import Settings
from ivr.store import open_db

log = logging.getLogger(__name__)
MAX_HEADER_BYTES = 64 * 1024


class StreamTransport:
    """AGI over an asyncio stream pair; turns EOF / reset / HANGUP into :class:`AGIHangup`."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.reader = request.reader
        self.writer = request.writer
        self.lock = asyncio.Lock()

    async def command(self, line: str) -> AGIResponse:
        async with self.lock:  # one command in flight per channel, as AGI requires
            try:
                self.writer.write((line.strip() + "\n").encode(self.request.encoding))
                await self.writer.drain()
                while True:
                    raw = await self.reader.readline()
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

    async def _skip_usage(self) -> None:
        while True:
            raw = await self.reader.readline()
            if not raw or raw.startswith(b"520 "):
                return

    async def close(self) -> None:
        try:
            self.writer.close()
            await self.writer.wait_closed()
        except (ConnectionError, BrokenPipeError):
            pass


class FastAGIServer(Application):
    """panoramisk's Application with our handler registry and a robust header reader."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(default_encoding="utf-8")
        self.settings = settings
        self.db = open_db(settings.db_path)
        self.active: set[asyncio.Task[Any]] = set()
        for name in load_handlers():
            self.add_route(name, self._endpoint(name))

    def _endpoint(self, name: str) -> Any:
        async def endpoint(request: Request) -> None:
            transport = StreamTransport(request)
            agi = AGIChannel(transport, dict(request.headers))
            await run_handler(name, agi, self.settings, "fastagi", db=self.db)

        return endpoint

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.active.add(task)
        try:
            headers = await self._read_headers(reader)
            if headers is None:
                return
            script = headers.get("agi_network_script", "")
            name = script.strip("/").split("/", 1)[0]
            route = self._route.get(name)
            if route is None:
                log.error("no AGI handler for %r", script)
                writer.write(b'VERBOSE "ivr: no such AGI handler" 1\n')
                await writer.drain()
                return
            await route(Request(self, headers, reader, writer, self.default_encoding))
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            log.info("AGI connection dropped: %r", exc)
        finally:
            with contextlib.suppress(Exception):
                writer.close()
            if task is not None:
                self.active.discard(task)

    async def _read_headers(self, reader: asyncio.StreamReader) -> OrderedDict[str, str] | None:
        headers: OrderedDict[str, str] = OrderedDict()
        size = 0
        while True:
            raw = await reader.readline()
            if not raw:
                return None  # Asterisk went away before the request was complete
            size += len(raw)
            if size > MAX_HEADER_BYTES:
                log.error("AGI header block too large; dropping connection")
                return None
            line = raw.decode(self.default_encoding, errors="replace").rstrip("\r\n")
            if not line:
                return headers
            if ": " in line:
                key, value = line.split(": ", 1)
                headers[key] = value


async def serve(settings: Settings, ready: asyncio.Event | None = None) -> None:
    """Run the daemon until cancelled."""
    app = FastAGIServer(settings)
    server = await asyncio.start_server(app.handler, settings.agi.host, settings.agi.port)
    log.info("FastAGI listening on %s:%s", settings.agi.host, settings.agi.port)
    if ready is not None:
        ready.set()
    async with server:
        try:
            await server.serve_forever()
        finally:
            for task in list(app.active):
                task.cancel()
