"""The contract between whoever decides to dial (campaign dialer, ``ivr call``) and AMI.

An :class:`Originator` places one call and returns when it has ended, with a final outcome. The
real one (:mod:`ivr.dialer.ami`) originates through Asterisk's AMI over the PJSIP trunk; tests may
pass a fake with the same signature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

Outcome = Literal["answered", "busy", "no_answer", "rejected", "congestion", "failed"]
OUTCOMES: tuple[str, ...] = ("answered", "busy", "no_answer", "rejected", "congestion", "failed")


@dataclass(frozen=True)
class DialRequest:
    phone: str  # E.164, already validated with ivr.phone.parse_e164
    caller_id: str  # E.164 presented on the trunk
    # PJSIP endpoint name of the trunk; "" lets the dialplan guard take the region rule's trunk
    # or the default one. The guard refuses a trunk that is not configured or not the rule's.
    trunk: str = ""
    campaign_id: str = ""
    contact_id: int = 0
    attempt_id: int = 0
    # Survey channel variables (order id, script, voice, segment ...; ivr.dialer.variables.SURVEY
    # lists which), checked by type before the originate; nothing else may be set.
    variables: dict[str, str] = field(default_factory=dict)
    ring_timeout_s: int = 30
    # The region rule's prefix for this number (the guard refuses any other).
    prefix: str = ""


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
    async def dial(self, request: DialRequest) -> DialResult:
        """Place the call and return once it has ended (or failed to connect)."""
        ...
