"""The call contract: every channel variable the dialer sets, typed, in one place.

Whoever decides to dial (the campaign runner, ``ivr call``, the bed) builds a
:class:`CallVariables`; the originator (:mod:`ivr.dialer.ami`) puts :meth:`~CallVariables.
to_channel` on the Local channel with the ``__`` prefix, so both legs inherit them; the dialplan
(``dialplans/ivr-outbound.conf``) reads the dialing ones and the AGI handlers read the call's
with :meth:`~CallVariables.from_channel`. Nothing else writes or parses an ``IVR_*`` call variable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

# field -> channel variable
CHANNEL: dict[str, str] = {
    "phone": "IVR_PHONE",
    "caller_id": "IVR_CALLER_ID",
    "trunk": "IVR_TRUNK",
    "campaign_id": "IVR_CAMPAIGN",
    "contact_id": "IVR_CONTACT",
    "attempt_id": "IVR_ATTEMPT",
    "order_id": "IVR_ORDER_ID",
    "voice": "IVR_VOICE",
    "segment": "IVR_SEGMENT",
    "script": "IVR_SCRIPT",
    "language": "IVR_LANGUAGE",
    "amd": "IVR_AMD",
    "token": "IVR_TOKEN",
    "ring_timeout_s": "IVR_RING_TIMEOUT",
    "dial_prefix": "IVR_DIAL_PREFIX",
}
_INT = frozenset({"contact_id", "attempt_id", "ring_timeout_s"})
_BOOL = frozenset({"amd"})


@dataclass(frozen=True)
class CallVariables:
    """One call as the dialplan and the answered call see it."""

    phone: str = ""  # the callee, E.164 (the originator validates it again)
    caller_id: str = ""  # E.164 presented; "" = the trunk's default caller ID
    trunk: str = ""  # PJSIP endpoint; "" = the trunk of ivr.yaml
    campaign_id: str = ""
    contact_id: int | None = None
    attempt_id: int | None = None
    order_id: str = ""  # the survey reads the order's fields from the store
    voice: str = ""  # voice profile of the contact's segment
    segment: str = ""
    script: str = ""  # survey script: a path, or a file name under surveys/
    language: str = ""
    amd: bool = False  # answering-machine detection before the survey
    # The dialing leg's own: the AMI events' correlation token, ring time and dialed prefix.
    token: str = ""
    ring_timeout_s: int = 30
    dial_prefix: str = ""

    # Set even when empty (an unset variable reads as empty everywhere else): the channel's
    # IVR_DIAL_PREFIX, empty too, is what the dialplan dials with, as it always has been.
    ALWAYS: ClassVar[frozenset[str]] = frozenset({"dial_prefix"})
    # What the AGI reads back into the call's row (calls has a column of each name).
    CALL_FIELDS: ClassVar[tuple[str, ...]] = (
        "phone", "caller_id", "campaign_id", "contact_id", "attempt_id", "order_id", "voice",
        "segment", "script", "language")

    def to_channel(self) -> dict[str, str]:
        """Channel variable -> value (without the ``__`` the originator adds)."""
        out: dict[str, str] = {}
        for name, var in CHANNEL.items():
            value = getattr(self, name)
            if isinstance(value, bool):
                text = "1" if value else ""
            else:
                text = "" if value is None else str(value)
            if text or name in self.ALWAYS:
                out[var] = text
        return out

    @classmethod
    def from_channel(cls, values: Mapping[str, str | None]) -> CallVariables:
        """The variables as Asterisk reports them (missing and empty are the same)."""
        kwargs: dict[str, Any] = {}
        for name, var in CHANNEL.items():
            raw = (values.get(var) or "").strip()
            if not raw:
                continue
            if name in _BOOL:
                kwargs[name] = raw == "1"
            elif name in _INT:
                if raw.isdigit():  # anything else is not ours: ignore it rather than crash
                    kwargs[name] = int(raw)
            else:
                kwargs[name] = raw
        return cls(**kwargs)

    @classmethod
    async def read(cls, get_variable: Callable[[str], Awaitable[str | None]],
                   names: tuple[str, ...] = CALL_FIELDS) -> CallVariables:
        """Read ``names`` over AGI (``AGIChannel.get_variable``), one GET VARIABLE each."""
        return cls.from_channel({CHANNEL[n]: await get_variable(CHANNEL[n]) for n in names})

    def call_fields(self) -> dict[str, object]:
        """The call row's columns this call knows (set ones only, as the AGI stores them)."""
        return {n: getattr(self, n) for n in self.CALL_FIELDS
                if getattr(self, n) not in ("", None)}


def field_of(variable: str) -> str | None:
    """``IVR_ORDER_ID`` -> ``order_id``; None for a name that is not part of the contract."""
    return next((f for f, v in CHANNEL.items() if v == variable), None)
