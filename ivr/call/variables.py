"""The call contract: every channel variable the dialer sets, typed, in one place.

Whoever decides to dial (the campaign runner, ``ivr call``, the bed, the service) builds a
:class:`CallVariables`; the originator (:mod:`ivr.dialer.ami`) puts :meth:`~CallVariables.
to_channel` on the Local channel with the ``__`` prefix, so both legs inherit them; the dialplan
(``dialplans/ivr-outbound.conf``) reads the dialing ones and the AGI handlers read the call's
with :meth:`~CallVariables.from_channel`. Nothing else writes or parses an ``IVR_*`` call variable.

Every value is checked by the validator of its variable (:data:`VALIDATORS`, types from
:mod:`ivr.fields`) on the way out, before the Originate is sent, and again on the way in (an
Originate by hand may set anything): AMI ``Variable:`` headers are split by Asterisk on commas
(and lose quotes and backslashes), and the values end up in dialplan expressions and AGI handlers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ivr import fields
from ivr.errors import ConfigError

log = logging.getLogger(__name__)
Validator = Callable[[str], str]

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


def _flag(value: str) -> str:
    if value not in ("0", "1", ""):
        raise fields.FieldError(f"{value[:20]!r}: use 0 or 1")
    return value


def _count(value: str) -> str:
    return fields.integer(value, 0, 10**9)


def _label_or_empty(value: str) -> str:
    return value and fields.label(value)


def _token(value: str) -> str:
    if not value.isalnum() or len(value) > 64:
        raise fields.FieldError("the token is 1-64 letters or digits")
    return value


# The dialing side: set from the typed fields by the runner / ivr call / the originator only.
CORE: dict[str, Validator] = {
    "IVR_TOKEN": _token,
    "IVR_PHONE": fields.e164,
    "IVR_CALLER_ID": lambda v: v and fields.e164(v),
    "IVR_TRUNK": lambda v: v and fields.trunk_name(v),
    "IVR_ATTEMPT": _count,
    "IVR_CAMPAIGN": lambda v: v and fields.name(v),
    "IVR_CONTACT": _count,
    "IVR_RING_TIMEOUT": lambda v: fields.integer(v, 1, 300),
    "IVR_DIAL_PREFIX": fields.digits,
}
# The survey context: which order, script, language, voice, segment; answering-machine detection.
# What ``ivr call --var`` may set; never the trunk, the prefix or the caller ID.
SURVEY: dict[str, Validator] = {
    "IVR_ORDER_ID": lambda v: v and fields.order_id(v),
    "IVR_SCRIPT": lambda v: v and fields.path_text(v),
    "IVR_LANGUAGE": lambda v: v and fields.language(v),
    "IVR_VOICE": _label_or_empty,
    "IVR_SEGMENT": _label_or_empty,
    "IVR_AMD": _flag,
}
VALIDATORS: dict[str, Validator] = {**CORE, **SURVEY}
assert set(VALIDATORS) == set(CHANNEL.values())  # one validator per variable of the contract

_AMI_BAD = re.compile(r'[,"\\\x00-\x1f\x7f-\x9f]')


class VariableError(ConfigError, ValueError):
    """A channel variable that may not be set, or a value its type refuses."""


def check(values: Mapping[str, str], allowed: Mapping[str, Validator]) -> dict[str, str]:
    """``values`` validated against ``allowed`` (name -> validator); VariableError names the first
    variable that is not allowed or not valid."""
    out: dict[str, str] = {}
    for key, value in values.items():
        validator = allowed.get(key)
        if validator is None:
            raise VariableError(f"{key} may not be set here (allowed: {', '.join(allowed)})")
        try:
            text = validator(str(value))
        except fields.FieldError as exc:
            raise VariableError(f"{key}: {exc}") from None
        # The AMI boundary itself: a comma would start another variable, a line break another
        # header; quotes and backslashes Asterisk would silently drop.
        if _AMI_BAD.search(text):
            raise VariableError(f"{key}: {text[:40]!r} cannot travel in an AMI Variable header")
        out[key] = text
    return out


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
        """Channel variable -> value (without the ``__`` the originator adds), each checked by
        its validator; :class:`VariableError` names the first one that may not travel."""
        out: dict[str, str] = {}
        for name, var in CHANNEL.items():
            value = getattr(self, name)
            if isinstance(value, bool):
                text = "1" if value else ""
            else:
                text = "" if value is None else str(value)
            if text or name in self.ALWAYS:
                out[var] = text
        return check(out, VALIDATORS)

    @classmethod
    def from_channel(cls, values: Mapping[str, str | None]) -> CallVariables:
        """The variables as Asterisk reports them (missing and empty are the same); a value its
        validator refuses is left out and logged, never used."""
        kwargs: dict[str, Any] = {}
        for name, var in CHANNEL.items():
            raw = (values.get(var) or "").strip()
            if not raw:
                continue
            try:
                raw = check({var: raw}, VALIDATORS)[var]
            except VariableError as exc:
                log.warning("ignoring call variable %s", exc)
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

