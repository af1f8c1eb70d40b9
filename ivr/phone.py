"""Phone numbers: strict E.164 validation and what the number tells about the callee.

Everything that puts a number into a dial string goes through :func:`parse_e164` first, so a
malformed or hostile string (``100&PJSIP/999``) never reaches AMI or the dialplan. Region, carrier
and time zone come from the ``phonenumbers`` library, never from hand-written prefix tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import carrier, geocoder, timezone

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
# What people write in an order export: digits, an optional '+', spaces and separators.
_WRITTEN = re.compile(r"\+?[0-9 ().\-]{5,30}")


class InvalidNumber(ValueError):
    """The text is not a dialable E.164 number; the message says why."""


def _text(text: object) -> str:
    raw = "" if text is None else str(text).strip()
    if not raw:
        raise InvalidNumber("empty phone number")
    return raw


def _parse(raw: str, region: str | None) -> phonenumbers.PhoneNumber:
    try:
        return phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumber(f"invalid phone number {raw!r}: {exc}") from exc


def parse_e164(text: str) -> str:
    """Return the canonical E.164 form of ``text`` or raise :class:`InvalidNumber`.

    Only ``+`` followed by 7-15 digits is accepted: no spaces, dashes, letters or separators,
    so nothing but digits can ever reach a dial string.
    """
    raw = _text(text)
    if not _E164.fullmatch(raw):
        bad = sorted({c for c in raw[1:] if not c.isdigit()}) if raw.startswith("+") else []
        if not raw.startswith("+"):
            why = "must start with '+' and the country code (E.164)"
        elif bad:
            why = f"contains non-digit characters {''.join(bad)!r}"
        else:
            why = "must be '+' followed by 7 to 15 digits"
        raise InvalidNumber(f"invalid phone number {raw!r}: {why}")
    num = _parse(raw, None)
    if not phonenumbers.is_possible_number(num):
        raise InvalidNumber(f"invalid phone number {raw!r}: wrong length for its country")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def normalise_phone(text: object, region: str = "CN") -> str:
    """A number as people write it (13912345678, +86 139 1234 5678, local to ``region``) ->
    E.164, or InvalidNumber. Stricter than :func:`parse_e164` on what it accepts: the number must
    be valid (assigned ranges), not only of a possible length."""
    raw = _text(text)
    if not _WRITTEN.fullmatch(raw):
        raise InvalidNumber(f"invalid phone number {raw!r}: only digits, '+', spaces, "
                            "'-', '.', '(' and ')' are allowed")
    num = _parse(raw, region)
    if not phonenumbers.is_valid_number(num):
        raise InvalidNumber(f"invalid phone number {raw!r}: not a valid number")
    return parse_e164(phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164))


def dial_digits(e164: str) -> str:
    """The digits the trunk dials (without '+'); input must already be valid E.164."""
    return parse_e164(e164)[1:]


@dataclass(frozen=True)
class NumberInfo:
    e164: str
    country: str  # ISO region code, e.g. CN
    region: str  # province / state in English ("Xinjiang"), "" when unknown
    city: str  # as the geocoder gives it, "" when unknown
    carrier: str  # "China Mobile", "" when unknown
    timezones: tuple[str, ...]
    is_mobile: bool


@lru_cache(maxsize=65536)
def number_info(e164: str) -> NumberInfo:
    """Region, carrier and time zones of a valid E.164 number (cached: planning asks a lot)."""
    num = phonenumbers.parse(parse_e164(e164), None)
    description = geocoder.description_for_number(num, "en") or ""
    country = phonenumbers.region_code_for_number(num) or ""
    city, region = _split_geo(description)
    ntype = phonenumbers.number_type(num)
    return NumberInfo(
        e164=e164,
        country=country,
        region=region,
        city=city,
        carrier=carrier.name_for_number(num, "en") or "",
        timezones=tuple(tz for tz in timezone.time_zones_for_number(num) if tz != "Etc/Unknown"),
        is_mobile=ntype in (phonenumbers.PhoneNumberType.MOBILE,
                            phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE),
    )


def callee_zones(phone: str | None, stored: str | None = None) -> tuple[str, ...]:
    """The callee's IANA time zones: those stored with the contact (comma-separated, as the
    planner writes ``contacts.timezone``), else what phonenumbers knows of the number; () when
    neither says (an invalid number included)."""
    zones = tuple(z for z in (stored or "").split(",") if z)
    if zones or not phone:
        return zones
    try:
        return number_info(phone).timezones
    except InvalidNumber:
        return ()


def _split_geo(description: str) -> tuple[str, str]:
    """'Urumqi, Xinjiang' -> ('Urumqi', 'Xinjiang'); 'Xinjiang' -> ('', 'Xinjiang')."""
    if "," in description:
        city, region = (p.strip() for p in description.rsplit(",", 1))
        return city, region
    return "", description.strip()
