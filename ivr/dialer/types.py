"""The contract between whoever decides to dial (the campaign runner, ``ivr call``) and AMI.

An :class:`Originator` places one call, described by its
:class:`~ivr.call.variables.CallVariables` (the one call contract: callee, caller ID, trunk,
campaign, contact, attempt, order, voice, script, ring time ...), and returns when it has ended,
with a final outcome. The real one (:mod:`ivr.dialer.ami`) originates through Asterisk's AMI over
the PJSIP trunk; tests may pass a fake with the same signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from ivr.call.variables import CallVariables

Outcome = Literal["answered", "busy", "no_answer", "rejected", "congestion", "failed"]
OUTCOMES: tuple[str, ...] = ("answered", "busy", "no_answer", "rejected", "congestion", "failed")


@dataclass(frozen=True)
class DialResult:
    outcome: Outcome
    sip_code: int | None = None  # final SIP response code when known (486, 603, ...)
    q850_cause: int | None = None  # Q.850 hangup cause (16 normal, 17 busy, 21 rejected, ...)
    cause_text: str = ""
    channel: str | None = None
    uniqueid: str | None = None  # Asterisk uniqueid; = calls.id of the survey call when answered
    answered_at: str | None = None
    ended_at: str | None = None
    duration_s: float | None = None  # answered talk time
    # Our own dialplan guard refused the destination or caller ID: not the callee's decision.
    refused: bool = False


class Originator(Protocol):
    async def dial(self, request: CallVariables) -> DialResult:
        """Place the call and return once it has ended (or failed to connect)."""
        ...
