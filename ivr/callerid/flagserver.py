"""A small local HTTP endpoint where reputation feeds POST flags as JSON.

``POST /flags``  one object or a list: {"number": "+86...", "reason": "...", "source": "...",
                 "expires_at": "...", "action": "flag|clear"} -> 200 {"flagged": [...], ...}
                 (400 when nothing in the body was usable, with the errors)
``GET /flags``   active flags; ``GET /health`` -> {"ok": true}

Bound to loopback only (a feed relay on the same host posts to it); one request at a time, so
the SQLite writes never race.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import sqlite_utils

from ivr.callerid.flags import import_json
from ivr.callerid.state import active_flags, ensure_schema
from ivr.store import open_db

log = logging.getLogger(__name__)
MAX_BODY = 1 << 20


class FlagServer:
    """``start()`` serves in a background thread; ``stop()`` shuts it down and closes the socket."""

    def __init__(self, db_path: str | Path, host: str = "127.0.0.1", port: int = 0,
                 clock: Callable[[], datetime | None] = lambda: None) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the flag endpoint binds to loopback only, not {host}")
        self.db_path = Path(db_path)
        self.clock = clock
        self._db: sqlite_utils.Database | None = None
        self._lock = threading.Lock()
        self.httpd = HTTPServer((host, port), _handler_for(self))
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.httpd.server_address[0]!s}:{self.port}"

    def db(self) -> sqlite_utils.Database:
        if self._db is None:
            self._db = open_db(self.db_path)
            ensure_schema(self._db)
        return self._db

    def start(self) -> FlagServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="ivr-flag-server",
                                        daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.httpd.server_close()
        if self._db is not None:
            self._db.conn.close()
            self._db = None

    def __enter__(self) -> FlagServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler_for(server: FlagServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "ivr-flags/1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            log.info("flag endpoint %s: " + format, self.client_address[0], *args)

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            if self.path == "/health":
                self._send(200, {"ok": True})
            elif self.path == "/flags":
                with server._lock:
                    flags = active_flags(server.db(), now=server.clock())
                self._send(200, {"flags": flags})
            else:
                self._send(404, {"error": "not found; use POST /flags, GET /flags, GET /health"})

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            if self.path != "/flags":
                self._send(404, {"error": "not found; POST flags to /flags"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length <= 0 or length > MAX_BODY:
                self._send(400 if length <= 0 else 413,
                           {"error": f"body must be 1..{MAX_BODY} bytes of JSON"})
                return
            raw = self.rfile.read(length)
            try:
                payload = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                self._send(400, {"error": f"body is not valid JSON: {exc}"})
                return
            try:
                with server._lock:
                    result = import_json(server.db(), payload, now=server.clock())
            except Exception as exc:  # noqa: BLE001 - a feed must never take the endpoint down
                log.exception("flag import failed")
                self._send(500, {"error": f"{type(exc).__name__}: {exc}"})
                return
            accepted = result.flagged or result.cleared
            self._send(200 if accepted or not result.errors else 400, result.to_dict())

    return Handler
