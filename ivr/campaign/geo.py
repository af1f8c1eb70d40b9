"""Region and time zones of many numbers, fast: cached per number block.

``ivr.phone.number_info`` costs ~60 us a number (type, carrier); a million-contact plan cannot
afford that. libphonenumber's region and time-zone data are prefix tables (longest prefix wins,
at most ``GEOCODE_LONGEST_PREFIX`` digits), so this module walks those same tables directly and
caches by that prefix. Numbers are assumed valid (the importer checked them); the test suite checks
the answers equal ``number_info``'s. Only China (whose mobiles libphonenumber geocodes by
prefix) takes the fast path; elsewhere ``number_info`` is asked once per prefix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

import phonenumbers
from phonenumbers import geocoder
from phonenumbers.geodata import GEOCODE_DATA, GEOCODE_LONGEST_PREFIX
from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

from ivr.phone import InvalidNumber, number_info

# Country codes whose mobile numbers libphonenumber geocodes by prefix like fixed lines (China);
# every other country goes through number_info (once per prefix).
FAST_COUNTRIES = frozenset({86})
_KEY = 1 + max(GEOCODE_LONGEST_PREFIX, TIMEZONE_LONGEST_PREFIX)  # '+' and the digits
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


@lru_cache(maxsize=512)
def _country_name(cc: int) -> str:
    region = phonenumbers.COUNTRY_CODE_TO_REGION_CODE[cc][0]
    example = phonenumbers.example_number(region)
    return geocoder.country_name_for_number(example, "en") if example else ""


def split_geo(description: str) -> tuple[str, str]:
    """'Urumqi, Xinjiang' -> ('Urumqi', 'Xinjiang'), as ``ivr.phone.number_info`` does."""
    if "," in description:
        city, region = (p.strip() for p in description.rsplit(",", 1))
        return city, region
    return "", description.strip()


def _country_code(digits: str) -> int | None:
    for n in (1, 2, 3):
        if int(digits[:n]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return int(digits[:n])
    return None


_TABLE_LENGTHS: dict[tuple[str, str], tuple[int, ...]] = {}


def _longest(table_name: str, table: Mapping[str, object], digits: str, cc: str) -> object | None:
    """The entry of the longest prefix of ``digits`` in ``table`` (as libphonenumber does),
    trying only the key lengths that exist for that country code."""
    lengths = _TABLE_LENGTHS.get((table_name, cc))
    if lengths is None:
        lengths = tuple(sorted({len(k) for k in table if k.startswith(cc)}, reverse=True))
        _TABLE_LENGTHS[(table_name, cc)] = lengths
    for n in lengths:
        if n <= len(digits):
            found = table.get(digits[:n])
            if found:
                return found
    return None


class PrefixGeo:
    def __init__(self) -> None:
        self._cache: dict[str, tuple[str, tuple[str, ...]]] = {}

    def __len__(self) -> int:
        return len(self._cache)

    def lookup(self, e164: str) -> tuple[str, tuple[str, ...]]:
        """(region, time zones) of a valid E.164 number; ('', ()) when unknown."""
        key = e164[:_KEY]
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self._compute(e164)
        return hit

    @staticmethod
    def _compute(e164: str) -> tuple[str, tuple[str, ...]]:
        if not _E164.fullmatch(e164):
            return "", ()
        digits = e164[1:]
        cc = _country_code(digits)
        if cc is None:
            return "", ()
        if cc not in FAST_COUNTRIES:
            # Mobiles may be non-geographical (country-wide zones): ask the library properly.
            try:
                info = number_info(e164)
            except InvalidNumber:
                return "", ()
            return info.region, info.timezones
        found = _longest("tz", TIMEZONE_DATA, digits, str(cc))
        zones = tuple(z for z in found if z != "Etc/Unknown") if isinstance(found, tuple) else ()
        description = ""
        if not digits[len(str(cc)):].startswith("0"):
            names = _longest("geo", GEOCODE_DATA, digits, str(cc))
            if isinstance(names, dict):
                description = names.get("en") or ""
            elif len(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[cc]) == 1:
                # No area data: the library falls back to the country's name, same for all.
                description = _country_name(cc)
        if not description:  # mobile tokens, leading zeros, no area data: the library's way
            try:
                num = phonenumbers.parse(e164, None)
            except phonenumbers.NumberParseException:
                return "", zones
            description = geocoder.description_for_valid_number(num, "en") or ""
        return split_geo(description)[1], zones
