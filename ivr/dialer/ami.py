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
from dataclasses import replace
from types import TracebackType
from typing import Any

from panoramisk import Manager

from ivr.asterisk.render import ami_secret
from ivr.config import Settings
from ivr.dialer.types import DialRequest, DialResult, Outcome
from ivr.dialer.variables import CORE, REQUEST, VariableError, check
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


class AmiOriginator:
    """``async with AmiOriginator.from_settings(s) as o: result = await o.dial(request)``."""

    def __init__(self, host: str, port: int, username: str, secret: str,
                 max_call_s: float = 1800.0) -> None:
        self.manager = Manager(host=host, port=port, username=username, secret=secret,
                               ping_delay=10, reconnect_timeout=2)
        self.max_call_s = max_call_s
        self._waiters: dict[str, asyncio.Future[dict[str, str]]] = {}
        self._failed: dict[str, str] = {}  # token -> reason, from UserEvent(IvrCallFailed)
        self._originated: dict[str, asyncio.Future[dict[str, str]]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> AmiOriginator:
        return cls(settings.ami.host, settings.ami.port, settings.ami.username,
                   ami_secret(settings))

    async def __aenter__(self) -> AmiOriginator:
        await self.connect()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.close()

    async def connect(self) -> None:
        self.manager.register_event("UserEvent", self._on_user_event)
        self.manager.register_event("OriginateResponse", self._on_originate_response)
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

    async def dial(self, request: DialRequest) -> DialResult:
        digits = dial_digits(request.phone)  # re-validated: nothing but digits reaches AMI
        token = uuid.uuid4().hex
        action_id = f"ivr-{token}"
        try:
            variables = {**check(request.variables, REQUEST), **check({
                "IVR_TOKEN": token,
                "IVR_PHONE": request.phone,
                "IVR_CALLER_ID": request.caller_id,
                "IVR_TRUNK": request.trunk,
                "IVR_ATTEMPT": str(request.attempt_id),
                "IVR_CAMPAIGN": request.campaign_id,
                "IVR_CONTACT": str(request.contact_id),
                "IVR_RING_TIMEOUT": str(request.ring_timeout_s),
                "IVR_DIAL_PREFIX": request.prefix,
            }, CORE)}
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
        try:
            # panoramisk returns [Response, OriginateResponse] for an Async originate, once the
            # call is answered or has failed.
            response = await self.manager.send_action(action)
            messages = response if isinstance(response, list) else [response]
            if messages[0].get("Response") == "Error":
                return DialResult("failed", cause_text=f"AMI refused: {messages[0].get('Message')}",
                                  ended_at=now_iso())
            origin = next((dict(m) for m in messages if m.get("Event") == "OriginateResponse"),
                          None)
            if origin is None:
                origin = await self._wait_originate(originated, ended, request)
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
            self._failed.pop(token, None)
            self._waiters.pop(token, None)
            self._originated.pop(action_id, None)

    async def _wait_originate(self, originated: asyncio.Future[dict[str, str]],
                              ended: asyncio.Future[dict[str, str]],
                              request: DialRequest) -> dict[str, str] | None:
        done, _ = await asyncio.wait({originated, ended}, timeout=request.ring_timeout_s + 30,
                                     return_when=asyncio.FIRST_COMPLETED)
        if originated in done:
            return originated.result()
        return None


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
