"""A webhook receiver for tests: a real HTTP server on loopback that records every request,
can be 'down' (the port closed, as when the receiver's host is gone) and comes back on the same
port, verifies each signature, and drops repeats of an idempotency key as a receiver should."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ivr.webhooks.deliver import verify


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    signed: bool


@dataclass
class Receiver:
    secret: str
    port: int = 0
    status: int = 200  # what it answers (e.g. 503 to refuse)
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Receiver:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items()}
                owner.received.append(Received(self.path, headers, json.loads(raw),
                                               verify(owner.secret, headers, raw)))
                self.send_response(owner.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.allow_reuse_address = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def keys(self, event: str | None = None) -> list[str]:
        return [r.headers["Idempotency-Key"] for r in self.received
                if r.headers.get("Idempotency-Key") and (event is None or
                                                          r.body.get("event") == event)]
