"""Pluggable senders. In the box: a JSON-lines file and a webhook; SMS gateways are plugins.

A sender is any object with ``name``, ``idempotent`` and ``async send(message) -> SendResult``;
it may also offer ``async status(idempotency_key) -> bool | None`` (True: delivered, False: never
received, None: cannot tell), which lets a message interrupted mid-send be settled exactly.

Plugins are found by :func:`load_sender` from a spec ``NAME:ARG``: ``file:PATH``, ``webhook:URL``,
the name of an entry point in the group ``ivr.outbox_senders``, or a dotted path
``package.module.factory``; the factory is called with ARG (a string, possibly empty).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ivr.store import now_iso

ENTRY_POINT_GROUP = "ivr.outbox_senders"


@dataclass(frozen=True)
class OutboundMessage:
    id: int
    phone: str
    text: str
    kind: str
    idempotency_key: str
    campaign_id: str | None = None


@dataclass(frozen=True)
class SendResult:
    receipt: str = ""  # the gateway's message id, when it gives one


class SendError(Exception):
    """Sending failed. ``retryable=False`` means trying again cannot help (e.g. HTTP 400)."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@runtime_checkable
class Sender(Protocol):
    name: str
    # True when sending the same idempotency key twice delivers once (the gateway de-duplicates).
    idempotent: bool

    async def send(self, message: OutboundMessage) -> SendResult: ...


class FileSender:
    """Appends one JSON line per message (a stand-in gateway; also an audit trail)."""

    name = "file"
    idempotent = False  # appending twice writes two lines; status() settles interrupted sends

    def __init__(self, path: str | Path) -> None:
        if not str(path).strip():
            raise ValueError("file sender needs a path: file:PATH")
        self.path = Path(path)

    async def send(self, message: OutboundMessage) -> SendResult:
        line = json.dumps({**asdict(message), "sent_at": now_iso()}, ensure_ascii=False)
        await asyncio.to_thread(self._append, line)
        return SendResult(receipt=f"file:{message.idempotency_key}")

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    async def status(self, idempotency_key: str) -> bool | None:
        return await asyncio.to_thread(self._contains, idempotency_key)

    def _contains(self, key: str) -> bool:
        if not self.path.exists():
            return False
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    if json.loads(line).get("idempotency_key") == key:
                        return True
                except json.JSONDecodeError:
                    continue  # a line torn by a crash was never a complete send
        return False


class WebhookSender:
    """POSTs the message as JSON with an ``Idempotency-Key`` header.

    2xx is success (``id`` of a JSON body becomes the receipt); 408, 429, 5xx and network errors
    are retried; other 4xx are permanent. The receiver is expected to honour the idempotency key,
    so a message interrupted mid-send is posted again with the same key.
    """

    name = "webhook"
    idempotent = True

    def __init__(self, url: str, *, timeout: float = 10.0,
                 headers: dict[str, str] | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook sender needs an http(s) URL, got {url!r}")
        self.url = url
        self.timeout = timeout
        self.headers = headers or {}

    async def send(self, message: OutboundMessage) -> SendResult:
        return await asyncio.to_thread(self._post, message)

    def _post(self, message: OutboundMessage) -> SendResult:
        body = json.dumps(asdict(message), ensure_ascii=False).encode("utf-8")
        req = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": message.idempotency_key, **self.headers})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                payload = resp.read()
        except urllib.error.HTTPError as exc:
            retryable = exc.code in (408, 429) or exc.code >= 500
            raise SendError(f"webhook answered HTTP {exc.code} {exc.reason}",
                            retryable=retryable) from exc
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SendError(f"webhook unreachable: {reason}") from exc
        try:
            receipt = str(json.loads(payload).get("id", "")) if payload else ""
        except (json.JSONDecodeError, AttributeError):
            receipt = ""
        return SendResult(receipt=receipt)


def load_sender(spec: str) -> Any:
    """Build a sender from ``NAME:ARG`` (see module docstring). Raises ValueError when unknown."""
    name, _, arg = spec.partition(":")
    if name == "file":
        return FileSender(arg)
    if name == "webhook":
        return WebhookSender(arg)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return _checked(ep.load()(arg), spec)
    if "." in name:
        module_name, _, attr = name.rpartition(".")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"sender {spec!r}: cannot load {name}: {exc}") from exc
        return _checked(factory(arg), spec)
    known = ["file", "webhook", *sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))]
    raise ValueError(f"unknown sender {spec!r}; use one of {known} as NAME:ARG "
                     "or a dotted path package.module.factory:ARG")


def _checked(sender: Any, spec: str) -> Any:
    if not isinstance(sender, Sender):
        raise ValueError(f"sender {spec!r} lacks name / idempotent / async send(message)")
    return sender
