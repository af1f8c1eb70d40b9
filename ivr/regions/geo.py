"""What phonenumbers knows about places and carriers: the callee's number type, and the names a
rule may use (so a typo such as 'Xinjang' is an error at load time, not a silently dead rule).

Names are the English ones of phonenumbers' geocoder / carrier data, which is what
:func:`ivr.phone.number_info` returns; nothing here is a hand-written table.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import phonenumbers
from phonenumbers import PhoneNumberType

# Rule vocabulary -> phonenumbers types. FIXED_LINE_OR_MOBILE (countries where the two cannot be
# told apart) counts as both.
NUMBER_TYPES: dict[str, frozenset[int]] = {
    "mobile": frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}),
    "fixed_line": frozenset({PhoneNumberType.FIXED_LINE, PhoneNumberType.FIXED_LINE_OR_MOBILE}),
    "toll_free": frozenset({PhoneNumberType.TOLL_FREE}),
    "premium_rate": frozenset({PhoneNumberType.PREMIUM_RATE}),
    "shared_cost": frozenset({PhoneNumberType.SHARED_COST}),
    "voip": frozenset({PhoneNumberType.VOIP}),
    "personal_number": frozenset({PhoneNumberType.PERSONAL_NUMBER}),
    "pager": frozenset({PhoneNumberType.PAGER}),
    "uan": frozenset({PhoneNumberType.UAN}),
    "voicemail": frozenset({PhoneNumberType.VOICEMAIL}),
    "unknown": frozenset({PhoneNumberType.UNKNOWN}),
}


@lru_cache(maxsize=65536)
def number_types(e164: str) -> frozenset[str]:
    """Rule type names that fit ``e164`` (a valid E.164 number)."""
    kind = phonenumbers.number_type(phonenumbers.parse(e164, None))
    return frozenset(name for name, kinds in NUMBER_TYPES.items() if kind in kinds)


def city_parts(city: str) -> set[str]:
    """The geocoder joins neighbouring cities: 'Chengdu/Ziyang/Meishan' matches each of them."""
    parts = {p.strip().lower() for p in city.split("/") if p.strip()}
    return parts | ({city.strip().lower()} if city.strip() else set())


def _on_disk(kind: str, country: str | None,
             compute: Callable[[], list[list[str]]]) -> list[list[str]]:
    """``compute()`` cached in a file per phonenumbers version: scanning the geocoder's data takes
    about a second, and the dialplan guard is a fresh process for every call."""
    from ivr.files import private_dir, write_private

    folder = Path(os.environ.get("IVR_CACHE", Path.home() / ".cache" / "ivr")) / "phonenumbers"
    path = folder / f"{phonenumbers.__version__}-{kind}-{country or 'all'}.json"
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(cached, list) and all(isinstance(part, list) for part in cached):
            return cached
    except (OSError, ValueError):
        pass
    value = compute()
    with contextlib.suppress(OSError):  # a read-only cache only costs the scan
        write_private(private_dir(folder) / path.name, json.dumps(value, ensure_ascii=False))
    return value


@lru_cache(maxsize=256)
def known_places(country: str | None) -> tuple[frozenset[str], frozenset[str]]:
    """(regions, cities) the geocoder can return for ISO ``country`` (all countries if None)."""
    regions, cities = _on_disk("places", country, lambda: _scan_places(country))
    return frozenset(regions), frozenset(cities)


def _scan_places(country: str | None) -> list[list[str]]:
    from phonenumbers.geodata import GEOCODE_DATA

    prefixes = _prefixes(country)
    regions: set[str] = set()
    cities: set[str] = set()
    for key, names in GEOCODE_DATA.items():
        if prefixes and not key.startswith(prefixes):
            continue
        desc = names.get("en") if isinstance(names, dict) else None
        if not desc:
            continue
        if "," in desc:
            city, region = (p.strip() for p in desc.rsplit(",", 1))
            regions.add(region.lower())
            cities |= city_parts(city)
        else:
            regions.add(desc.strip().lower())
    return [sorted(regions), sorted(cities)]


@lru_cache(maxsize=256)
def known_carriers(country: str | None) -> frozenset[str]:
    return frozenset(_on_disk("carriers", country, lambda: [_scan_carriers(country)])[0])


def _scan_carriers(country: str | None) -> list[str]:
    from phonenumbers.carrierdata import CARRIER_DATA

    prefixes = _prefixes(country)
    return sorted({
        names["en"].strip().lower() for key, names in CARRIER_DATA.items()
        if isinstance(names, dict) and names.get("en")
        and (not prefixes or key.startswith(prefixes))
    })


def _prefixes(country: str | None) -> tuple[str, ...]:
    if not country:
        return ()
    code = phonenumbers.country_code_for_region(country.upper())
    return (str(code),) if code else ()


def is_known_country(country: str) -> bool:
    return country.upper() in phonenumbers.SUPPORTED_REGIONS


def suggest(name: str, known: frozenset[str]) -> str:
    close = difflib.get_close_matches(name.lower(), sorted(known), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
