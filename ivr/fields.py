"""One validator per field type, for everything that leaves Python for Asterisk or a file.

Configuration keys (``ivr.yaml``), channel variables the dialer sets, values rendered into Asterisk
configs and headers the FastAGI daemon receives are each checked by the validator of their type
here, once, where they enter (load, import, originate, request) - never again per call. Each
validator returns the value or raises :class:`FieldError` with the reason; pydantic models use the
``Annotated`` aliases at the bottom, so a bad ``ivr.yaml`` value is reported with its key
(``trunk.host: ...``).

Encoders for the places where data must be written, not refused:
:func:`conf_value` (an Asterisk config value that Asterisk reads back whole) and
:func:`clean_text` (order text without control characters).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator

# C0/C1 controls, DEL, Unicode line/paragraph separators and the bidirectional overrides that can
# make a report show something else than the data says.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile(r"\s+")


class FieldError(ValueError):
    """A value that its field type does not allow; the message says why."""


def _printable(value: str, what: str) -> None:
    bad = CONTROL.search(value)
    if bad:
        raise FieldError(f"{what} contains the control character {bad.group()!r}")


def clean_text(value: object, max_chars: int | None = None) -> str:
    """Text with every run of control characters and whitespace made one space, trimmed, and
    cut to ``max_chars``: what order fields become before they are stored or spoken."""
    text = _SPACES.sub(" ", CONTROL.sub(" ", str(value))).strip()
    return text if max_chars is None else text[:max_chars]


# --- network -----------------------------------------------------------------------------------
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def host(value: str) -> str:
    """A DNS host name or an IP address literal (what a SIP contact, AMI or AGI address takes)."""
    value = str(value)
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    labels = value.split(".")
    if len(value) > 253 or not all(_LABEL.fullmatch(label) for label in labels) or \
            labels[-1].isdigit():
        raise FieldError(f"{value!r} is not a host name or IP address")
    return value


def ip(value: str) -> str:
    """An IP address literal (bind addresses)."""
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError as exc:
        raise FieldError(f"{value!r} is not an IP address") from exc


def network(value: str) -> str:
    """An IP address or network (``10.0.0.5``, ``10.0.0.0/24``): an AGI ``allow`` entry."""
    try:
        return str(ipaddress.ip_network(str(value), strict=False))
    except ValueError as exc:
        raise FieldError(f"{value!r} is not an IP address or network") from exc


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def host_port(hostname: str, port: int) -> str:
    """``host:port`` as URIs and PJSIP binds write it (IPv6 literals in brackets)."""
    return f"[{hostname}]:{port}" if ":" in hostname else f"{hostname}:{port}"


def uri_host(hostname: str) -> str:
    return f"[{hostname}]" if ":" in hostname else hostname


# --- names -------------------------------------------------------------------------------------
def _matching(pattern: str, why: str) -> Callable[[str], str]:
    """A validator accepting exactly ``pattern``; ``why`` (with ``{value}``) says what it wants."""
    rx = re.compile(pattern)

    def check(value: str) -> str:
        text = str(value)
        if not rx.fullmatch(text):
            raise FieldError(why.format(value=repr(text[:80])))
        return text

    return check


# Section names the rendered pjsip.conf / manager.conf use themselves.
RESERVED_SECTIONS = frozenset({"general", "global", "system", "trunk-defaults"})
# A section / endpoint / trunk / pool name.
name = _matching(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}", "{value}: use only letters, digits, '_' and "
                 "'-' (max 63, starting with a letter or digit)")
# A voice profile or segment name.
label = _matching(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}",
                  "{value}: use only letters, digits, '_', '.' and '-'")


def trunk_name(value: str) -> str:
    name(value)
    if value in RESERVED_SECTIONS or value.startswith("transport-") or value.endswith("-auth"):
        raise FieldError(f"{value!r} is reserved for a section of the rendered pjsip.conf "
                         "(general, global, system, trunk-defaults, transport-*, *-auth)")
    return value


# A SIP or AMI user name.
user = _matching(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}",
                 "{value} is not a user name (letters, digits and . _ @ + -, max 128)")


def ami_user(value: str) -> str:
    user(value)
    if value in RESERVED_SECTIONS:
        raise FieldError(f"{value!r} is the name of manager.conf's own section")
    return value


def secret(value: str) -> str:
    """A password or secret: printable, no surrounding spaces (Asterisk trims them), max 256.
    Rendered with :func:`conf_value`, so ';' and the like are read back whole."""
    value = str(value)
    _printable(value, "the secret")
    if not value or len(value) > 256:
        raise FieldError("a secret needs 1 to 256 characters")
    if value != value.strip():
        raise FieldError("a secret must not start or end with a space (Asterisk trims it)")
    return value


# A generated-style secret that may appear in a dialplan.
token = _matching(r"[A-Za-z0-9_-]{16,128}", "use 16 to 128 letters, digits, '_' or '-'")


# --- telephony ---------------------------------------------------------------------------------
def e164(value: str) -> str:
    from ivr.phone import InvalidNumber, parse_e164

    try:
        return parse_e164(str(value))
    except InvalidNumber as exc:
        raise FieldError(str(exc)) from exc


def digits(value: str, max_len: int = 20) -> str:
    if not re.fullmatch(rf"[0-9]{{0,{max_len}}}", str(value)):
        raise FieldError(f"{value!r}: only digits (at most {max_len})")
    return str(value)


KNOWN_CODECS = frozenset({"ulaw", "alaw", "gsm", "g722", "slin", "opus", "g729"})


def codecs(values: list[str]) -> list[str]:
    bad = [c for c in values if c not in KNOWN_CODECS]
    if bad or not values:
        raise FieldError(f"unknown or empty codec list {bad or values}; known: "
                         f"{sorted(KNOWN_CODECS)}")
    return values


_DIAL_PART = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,15}/[A-Za-z0-9_.+*#:-]{1,80}"
                        r"(?:@[A-Za-z0-9_.-]{1,80})?")


def dial_string(value: str) -> str:
    """A Dial() target: ``Tech/resource[@where]``, several joined by '&' (no options, no
    variables: nothing a dialplan would evaluate)."""
    parts = str(value).split("&")
    if not all(_DIAL_PART.fullmatch(p) for p in parts):
        raise FieldError(f"{value!r} is not a dial string like PJSIP/agents@carrier (several "
                         "joined by '&'; no spaces, commas, quotes or ${...})")
    return str(value)


module = _matching(r"[a-z][a-z0-9_]{0,62}\.so",
                   "{value} is not an Asterisk module file name like app_queue.so")
language = _matching(r"[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?",
                     "{value} is not a language code like cmn, ko or en-US")


# Characters a path may not hold where it is written into an Asterisk config or dialplan
# (comment, argument separators, quotes, variable and expression syntax) or a shell line.
_PATH_BAD = re.compile(r"[;,\"'\\$`()\[\]{}|&<>]")


def path_text(value: object) -> str:
    text = str(value)
    _printable(text, "the path")
    bad = _PATH_BAD.search(text)
    if bad:
        raise FieldError(f"{text!r}: the character {bad.group()!r} is not allowed in a path "
                         "that Asterisk reads")
    if not text or text != text.strip() or len(text) > 1024 or \
            any(len(part.encode()) > 255 for part in text.split("/")):
        raise FieldError(f"{text[:80]!r}: empty, too long (1024 characters, 255 bytes a "
                         "component), or starts or ends with a space")
    return text


def text(value: str, max_chars: int = 64) -> str:
    """Free text an operator writes that callers hear (e.g. the platform name)."""
    value = str(value)
    _printable(value, "the text")
    if len(value) > max_chars:
        raise FieldError(f"{len(value)} characters; at most {max_chars}")
    return value


def http_url(value: str) -> str:
    """An http(s) URL the engine POSTs to (webhooks): printable, no spaces, bounded."""
    value = str(value)
    _printable(value, "the URL")
    if not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", value) or len(value) > 2048:
        raise FieldError(f"{value[:80]!r} is not an http(s)://host/... URL (at most 2048 "
                         "characters, no spaces)")
    return value


# --- call data ---------------------------------------------------------------------------------
# An order id travels in channel variables and AMI events: nothing an application would split
# or evaluate.
order_id = _matching(r"[A-Za-z0-9][A-Za-z0-9._:#/@+-]{0,63}",
                     "bad order_id {value} (1-64 letters, digits and . _ : # / @ + -)")
# An Asterisk channel uniqueid (1700000000.42, optionally "systemname-" first).
uniqueid = _matching(r"(?:[A-Za-z0-9_-]{1,32}-)?[0-9]{1,20}\.[0-9]{1,10}",
                     "{value} is not an Asterisk uniqueid")


# Longest channel variable value set from order data (the importer's caps are far below).
MAX_CHANNEL_TEXT = 200


def channel_value(field: str, value: object) -> str:
    """A channel variable value from order data, by the field it comes from: an order id that is
    not one becomes "" (the agent sees no id rather than a forged one); any text loses control
    characters and is bounded. The AGI encoder quotes it on the way to Asterisk."""
    if value is None:
        return ""
    if field in ("order_id", "IVR_ORDER_ID"):
        try:
            return order_id(str(value))
        except FieldError:
            return ""
    return clean_text(value, MAX_CHANNEL_TEXT)


def integer(value: str, low: int, high: int) -> str:
    if not re.fullmatch(r"[0-9]{1,9}", str(value)) or not low <= int(value) <= high:
        raise FieldError(f"{str(value)[:20]!r} is not a whole number from {low} to {high}")
    return str(value)


# --- writing Asterisk configs ------------------------------------------------------------------
def conf_value(value: object) -> str:
    """One value as Asterisk's config reader gets it back unchanged: ';' (a comment) escaped as
    '\\;', anything the reader would drop or split (line breaks, control characters, surrounding
    spaces) refused."""
    text = str(value)
    _printable(text, "a configuration value")
    if text != text.strip():
        raise FieldError(f"{text!r} starts or ends with a space, which Asterisk would drop")
    return text.replace(";", "\\;")


def _lift(fn: Callable[[str], str]) -> AfterValidator:
    def check(value: str) -> str:
        try:
            return fn(value)
        except FieldError as exc:
            raise ValueError(str(exc)) from None

    return AfterValidator(check)


Host = Annotated[str, _lift(host)]
IPAddress = Annotated[str, _lift(ip)]
Network = Annotated[str, _lift(network)]
Name = Annotated[str, _lift(name)]
TrunkName = Annotated[str, _lift(trunk_name)]
User = Annotated[str, _lift(user)]
AmiUser = Annotated[str, _lift(ami_user)]
Secret = Annotated[str, _lift(secret)]
Token = Annotated[str, _lift(token)]
E164 = Annotated[str, _lift(e164)]
Digits = Annotated[str, _lift(digits)]
DialString = Annotated[str, _lift(dial_string)]
Module = Annotated[str, _lift(module)]
Language = Annotated[str, _lift(language)]
PathText = Annotated[str, _lift(path_text)]
Text = Annotated[str, _lift(text)]
HttpUrl = Annotated[str, _lift(http_url)]
