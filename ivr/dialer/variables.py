"""The channel variables an originate carries, each checked by the validator of its type.

AMI ``Variable:`` headers are split by Asterisk on commas (and lose quotes and backslashes), and
the values end up in dialplan expressions and AGI handlers, so every value is validated here,
before the Originate is sent; a bad value is a clear error naming the variable, never a call.

``CORE`` variables come from the :class:`~ivr.dialer.types.DialRequest` fields only; ``SURVEY``
variables are what a request's ``variables`` (and ``ivr call --var``) may set. Nothing else is
accepted: a caller cannot override the trunk, the prefix or the caller ID through ``variables``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from ivr import fields

Validator = Callable[[str], str]


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

# Survey context: which order, script, language, voice, segment; answering-machine detection.
SURVEY: dict[str, Validator] = {
    "IVR_ORDER_ID": lambda v: v and fields.order_id(v),
    "IVR_SCRIPT": lambda v: v and fields.path_text(v),
    "IVR_LANGUAGE": lambda v: v and fields.language(v),
    "IVR_VOICE": _label_or_empty,
    "IVR_SEGMENT": _label_or_empty,
    "IVR_AMD": _flag,
}

# The campaign dialer also repeats its ids among the survey variables (same values as CORE).
REQUEST = {**SURVEY, **{k: CORE[k] for k in ("IVR_CAMPAIGN", "IVR_CONTACT", "IVR_ATTEMPT")}}


_AMI_BAD = re.compile(r'[,"\\\x00-\x1f\x7f-\x9f]')


class VariableError(ValueError):
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
