"""Handlers registered by name, one typed signature, shared by both AGI transports.

A handler is ``async def handler(call: CallContext) -> None``. Adding a feature is adding a module
that decorates its handler with ``@handler("name")``; the dialplan reaches it as
``AGI(agi://127.0.0.1/name,...)`` (FastAGI) or ``AGI(ivr-agi,name,...)`` (classic).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import sqlite_utils

from ivr.agi.channel import AGIChannel, AGIError, AGIHangup
from ivr.config import Settings
from ivr.store import CALL_ERROR, CALL_HANGUP, CallRecorder, explain, open_db

log = logging.getLogger(__name__)

# Modules whose import registers handlers. Kept explicit so a typo fails loudly at start-up.
HANDLER_MODULES = ("ivr.agi.handlers", "ivr.call.handler")


@dataclass
class CallContext:
    """What a handler gets: the channel, the store, the settings and the handler's arguments."""

    agi: AGIChannel
    db: sqlite_utils.Database
    settings: Settings
    args: list[str]
    transport: str

    @property
    def call_id(self) -> str:
        return self.agi.uniqueid

    def recorder(self) -> CallRecorder:
        return CallRecorder(self.db, self.call_id)


Handler = Callable[[CallContext], Awaitable[None]]
_HANDLERS: dict[str, Handler] = {}


def handler(name: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        if name in _HANDLERS and _HANDLERS[name] is not fn:
            raise ValueError(f"AGI handler {name!r} registered twice")
        _HANDLERS[name] = fn
        return fn

    return deco


def load_handlers() -> dict[str, Handler]:
    for mod in HANDLER_MODULES:
        importlib.import_module(mod)
    return dict(_HANDLERS)


def resolve(script: str) -> tuple[str, Handler | None]:
    """``agi_network_script`` may be 'survey' or 'survey/x'; the first segment is the name.
    Modules are imported in order until one registers it: the classic guard, a new process for
    every call, never pays for the survey and speech imports."""
    name = script.strip("/").split("/", 1)[0].split("?", 1)[0]
    for mod in HANDLER_MODULES:
        if name in _HANDLERS:
            break
        importlib.import_module(mod)
    return name, _HANDLERS.get(name)


async def run_handler(
    name: str, agi: AGIChannel, settings: Settings, transport: str,
    db: sqlite_utils.Database | None = None,
) -> str:
    """Run one AGI request to its end; never raises. Returns how it ended."""
    _, fn = resolve(name)
    if fn is None:
        log.error("no AGI handler named %r", name)
        try:
            await agi.verbose(f"ivr: no AGI handler named {name}")
            await agi.set_variable("IVR_RESULT", "no-handler")
        except AGIError:
            pass
        return "no-handler"
    db = db if db is not None else open_db(settings.db_path)
    ctx = CallContext(agi=agi, db=db, settings=settings, args=agi.args, transport=transport)
    try:
        await fn(ctx)
        return "ok"
    except AGIHangup as exc:
        # The callee hung up: the normal end of many calls, not an error; record the partial state.
        log.info("call %s hung up in handler %s: %s", agi.uniqueid, name, exc)
        _finish(ctx, CALL_HANGUP, None)
        return "hangup"
    except Exception as exc:  # noqa: BLE001 - one bad call must never take the daemon down
        log.exception("handler %s failed on call %s", name, agi.uniqueid)
        _finish(ctx, CALL_ERROR, f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(AGIError):
            await agi.set_variable("IVR_RESULT", "error")
        return "error"


def _finish(ctx: CallContext, state: str, error: str | None) -> None:
    if not ctx.call_id:
        return
    try:
        rec = ctx.recorder()
        if rec.get() is None:
            return
        fields = {"error": error} if error else {}
        rec.finish(state, **fields)
    except sqlite3.Error as exc:  # e.g. a full disk: say so, and let the call end cleanly
        log.error("call %s: cannot record its end: %s", ctx.call_id, explain(exc))
