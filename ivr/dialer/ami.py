"""Originate survey calls through Asterisk's AMI (panoramisk) over the PJSIP trunk.

Each call is ``Originate Local/<digits>@ivr-dial -> ivr-survey,s,1``: the dialing leg runs the guard
and ``Dial(PJSIP/...@trunk)``, and its ``h`` extension sends one ``UserEvent(IvrDialEnd)`` carrying
DIALSTATUS, the Q.850 cause and the SIP cause. That event, matched by a per-call token, is the
single source of an attempt's final outcome; ``OriginateResponse`` supplies the survey channel's
uniqueid (``calls.id``) and catches originations that never reached the dialplan.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType
from typing import Any

from panoramisk import Manager

from ivr.asterisk.render import ami_secret
from ivr.call.variables import CallVariables, VariableError
from ivr.config import Settings
from ivr.dialer.types import DialResult, Outcome
from ivr.phone import dial_digits
from ivr.store import now_iso

log = logging.getLogger(__name__)

REJECT_SIP = {403, 603, 607, 608}
CONGESTION_SIP = {480, 500, 502, 503, 504}
_SIP = re.compile(r"SIP (\d{3})")


def classify(dial_status: str, q850: int | None, sip: int | None, refused: bool) -> Outcome:
    """Map what the dialing leg saw to one attempt outcome."""
    if refused:
        return "failed"
    status = (dial_status or "").upper()
    if status == "ANSWER":
        return "answered"
    if sip in REJECT_SIP or q850 == 21:
        return "rejected"
    if status == "BUSY" or sip in (486, 600) or q850 == 17:
        return "busy"
    if status == "NOANSWER" or sip in (408, 480) or q850 in (18, 19):
        return "no_answer"
    if status == "CONGESTION" or sip in CONGESTION_SIP or q850 == 34:
        return "congestion"
    return "failed"


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def new_token() -> str:
    return uuid.uuid4().hex


class AmiOriginator:
    """``async with AmiOriginator.from_settings(s) as o: result = await o.dial(request)``.

    ``manager`` is a panoramisk Manager (the tests pass ``panoramisk.testing.Manager`` and replay
    recorded AMI traffic); ``token`` makes the per-call token (random; fixed in those tests)."""

    def __init__(self, manager: Manager, *, max_call_s: float = 1800.0, setup_s: float = 30.0,
                 token: Callable[[], str] = new_token) -> None:
        self.manager = manager
        self.max_call_s = max_call_s
        # Beyond the ring time, how long an originate's result may take to show as an event
        # (after its answer was lost with the AMI connection, or came without it).
        self.setup_s = setup_s
        self.token = token
        self._waiters: dict[str, asyncio.Future[dict[str, str]]] = {}
        self._failed: dict[str, str] = {}  # token -> reason, from UserEvent(IvrCallFailed)
        self._originated: dict[str, asyncio.Future[dict[str, str]]] = {}
        self._lost: set[asyncio.Future[None]] = set()  # resolved when the AMI connection drops
        manager.register_event("UserEvent", self._on_user_event)
        manager.register_event("OriginateResponse", self._on_originate_response)
        previous = manager.on_disconnect

        def on_disconnect(m: Manager, exc: Exception) -> None:
            previous(m, exc)
            for waiter in list(self._lost):
                if not waiter.done():
                    waiter.set_result(None)

        manager.on_disconnect = on_disconnect

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> AmiOriginator:
        manager = Manager(host=settings.ami.host, port=settings.ami.port,
                          username=settings.ami.username, secret=ami_secret(settings),
                          ping_delay=10, reconnect_timeout=2)
        return cls(manager, **kwargs)

    async def __aenter__(self) -> AmiOriginator:
        await self.connect()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.close()

    async def connect(self) -> None:
        await asyncio.wait_for(self.manager.connect(), timeout=10)

    def close(self) -> None:
        self.manager.close()

    def _on_user_event(self, manager: Any, message: Any) -> None:
        if message.get("UserEvent") == "IvrCallFailed":
            # Answered, but the survey AGI could not run: the attempt failed.
            self._failed[message.get("Token", "")] = message.get("Reason", "failed")
            return
        if message.get("UserEvent") != "IvrDialEnd":
            return
        fut = self._waiters.get(message.get("Token", ""))
        if fut is not None and not fut.done():
            fut.set_result(dict(message))

    def _on_originate_response(self, manager: Any, message: Any) -> None:
        fut = self._originated.get(message.get("ActionID", ""))
        if fut is not None and not fut.done():
            fut.set_result(dict(message))

    async def dial(self, request: CallVariables) -> DialResult:
        digits = dial_digits(request.phone)  # re-validated: nothing but digits reaches AMI
        token = self.token()
        action_id = f"ivr-{token}"
        try:
            variables = replace(request, token=token).to_channel()
        except VariableError as exc:
            return DialResult("failed", cause_text=f"refused before dialing: {exc}",
                              ended_at=now_iso(), refused=True)
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[dict[str, str]] = loop.create_future()
        originated: asyncio.Future[dict[str, str]] = loop.create_future()
        self._waiters[token] = ended
        self._originated[action_id] = originated
        action = {
            "Action": "Originate",
            "ActionID": action_id,
            "Channel": f"Local/{digits}@ivr-dial",
            "Context": "ivr-survey",
            "Exten": "s",
            "Priority": "1",
            "CallerID": request.caller_id,
            # Ring time plus the guard's own time; Asterisk gives up on the ;1 leg after this.
            "Timeout": str((request.ring_timeout_s + 15) * 1000),
            "Async": "true",
            "Variable": [f"__{k}={v}" for k, v in variables.items()],
        }
        lost: asyncio.Future[None] = loop.create_future()
        self._lost.add(lost)
        try:
            # panoramisk returns [Response, OriginateResponse] for an Async originate, once the
            # call is answered or has failed (Asterisk gives up after Timeout).
            sent = asyncio.ensure_future(self.manager.send_action(action))
            await asyncio.wait({sent, lost}, return_when=asyncio.FIRST_COMPLETED)
            if sent.done():
                response = sent.result()
                messages = response if isinstance(response, list) else [response]
            else:
                # The connection dropped before AMI answered: the answer is gone with it, the
                # events of the call come over the next connection.
                sent.cancel()
                _forget_action(self.manager, action_id)
                messages = [{}]
            if messages[0].get("Response") == "Error":
                return DialResult("failed", cause_text=f"AMI refused: {messages[0].get('Message')}",
                                  ended_at=now_iso())
            origin = next((dict(m) for m in messages if m.get("Event") == "OriginateResponse"),
                          None)
            if origin is None:
                origin = await self._wait_originate(originated, ended, request)
                if origin is None and not ended.done() and lost.done():
                    return DialResult("failed", cause_text="AMI connection lost before the "
                                      "originate was answered", ended_at=now_iso())
            answered_at = now_iso() if origin and origin.get("Response") == "Success" else None
            if origin is not None and origin.get("Response") == "Failure" and not ended.done():
                # Never reached the dialplan's h extension? give it a moment, then give up.
                try:
                    await asyncio.wait_for(asyncio.shield(ended), timeout=5)
                except TimeoutError:
                    return DialResult("failed", cause_text=f"originate failed (reason "
                                      f"{origin.get('Reason')})", ended_at=now_iso())
            try:
                end = await asyncio.wait_for(
                    ended, timeout=request.ring_timeout_s + self.max_call_s)
            except TimeoutError:
                return DialResult("failed", cause_text="no end of call reported by Asterisk",
                                  ended_at=now_iso())
            result = _result(end, origin, answered_at)
            if token in self._failed:
                result = replace(result, outcome="failed",
                                 cause_text=f"answered, but {self._failed[token]}")
            return result
        finally:
            self._lost.discard(lost)
            self._failed.pop(token, None)
            self._waiters.pop(token, None)
            self._originated.pop(action_id, None)

    async def _wait_originate(self, originated: asyncio.Future[dict[str, str]],
                              ended: asyncio.Future[dict[str, str]],
                              request: CallVariables) -> dict[str, str] | None:
        done, _ = await asyncio.wait({originated, ended},
                                     timeout=request.ring_timeout_s + self.setup_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        if originated in done:
            return originated.result()
        return None


def _forget_action(manager: Manager, action_id: str) -> None:
    """panoramisk sends an action that got no answer again once it has reconnected; never an
    Originate we gave up on: the call may be up already, a second one would ring twice."""
    queue = manager.awaiting_actions
    for queued in list(queue):
        if getattr(queued, "action_id", None) == action_id:
            queue.remove(queued)
    if manager.protocol is not None:
        manager.protocol.responses.pop(action_id, None)


def _result(end: dict[str, str], origin: dict[str, str] | None,
            answered_at: str | None) -> DialResult:
    tech = end.get("Tech", "")
    m = _SIP.search(tech)
    sip = int(m.group(1)) if m else None
    q850 = _int(end.get("Cause"))
    refused = end.get("Refused") == "1"
    outcome = classify(end.get("DialStatus", ""), q850, sip, refused)
    answered = _int(end.get("Answered"))
    uniqueid = (origin or {}).get("Uniqueid") if outcome == "answered" else None
    cause = f"refused: {end.get('Reason', '')}" if refused else tech or end.get("DialStatus", "")
    return DialResult(
        outcome=outcome,
        sip_code=sip,
        q850_cause=q850,
        cause_text=cause,
        channel=(origin or {}).get("Channel"),
        uniqueid=uniqueid or None,
        answered_at=answered_at if outcome == "answered" else None,
        ended_at=now_iso(),
        duration_s=float(answered) if answered is not None and outcome == "answered" else None,
        refused=refused,
    )
