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


class InvalidNumber(ValueError):
    """The text is not a dialable E.164 number; the message says why."""


def parse_e164(text: str) -> str:
    """Return the canonical E.164 form of ``text`` or raise :class:`InvalidNumber`.

    Only ``+`` followed by 7-15 digits is accepted: no spaces, dashes, letters or separators,
    so nothing but digits can ever reach a dial string.
    """
    if text is None or not str(text).strip():
        raise InvalidNumber("empty phone number")
    raw = str(text).strip()
    if not _E164.fullmatch(raw):
        bad = sorted({c for c in raw[1:] if not c.isdigit()}) if raw.startswith("+") else []
        if not raw.startswith("+"):
            why = "must start with '+' and the country code (E.164)"
        elif bad:
            why = f"contains non-digit characters {''.join(bad)!r}"
        else:
            why = "must be '+' followed by 7 to 15 digits"
        raise InvalidNumber(f"invalid phone number {raw!r}: {why}")
    try:
        num = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumber(f"invalid phone number {raw!r}: {exc}") from exc
    if not phonenumbers.is_possible_number(num):
        raise InvalidNumber(f"invalid phone number {raw!r}: wrong length for its country")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


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


def _split_geo(description: str) -> tuple[str, str]:
    """'Urumqi, Xinjiang' -> ('Urumqi', 'Xinjiang'); 'Xinjiang' -> ('', 'Xinjiang')."""
    if "," in description:
        city, region = (p.strip() for p in description.rsplit(",", 1))
        return city, region
    return "", description.strip()
