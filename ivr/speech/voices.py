"""Voice profiles: operator-edited YAML files (one profile per file in ``voices/``).

A profile names an espeak-ng voice plus a variant (``cmn`` + ``f3`` -> ``cmn+f3``), a rate, a pitch
and a volume. Everything is checked when the files are loaded: pyttsx3 silently keeps the previous
voice when given a bad name, so an unknown voice or variant must never reach the synthesiser.
"""

from __future__ import annotations

import functools
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ivr.errors import ConfigError
from ivr.yamlfile import YamlConfigError, load_yaml

LANGUAGES = ("cmn", "ko", "en")
GENDERS = ("male", "female")
RATE_RANGE = (80, 450)  # espeak-ng words per minute
PITCH_RANGE = (0, 100)
VOLUME_RANGE = (0.1, 2.0)  # 1.0 = espeak amplitude 100
_FIELDS = ("name", "language", "espeak_voice", "gender", "variant", "rate", "pitch", "volume",
           "description")
_REQUIRED = ("name", "language", "espeak_voice", "gender")


class VoiceError(ConfigError, ValueError):
    """A voice profile is invalid; the message names the file, line and field."""


@dataclass(frozen=True)
class VoiceProfile:
    name: str
    language: str  # cmn | ko | en: how numbers, prices and dates are read (ivr.speech.spoken)
    espeak_voice: str  # e.g. "cmn", "ko", "en-us"
    gender: str  # male | female
    variant: str | None = None  # e.g. "m3", "f3"; None = espeak's default (male) voice
    rate: int = 175
    pitch: int = 50
    volume: float = 1.0
    description: str = ""

    @property
    def espeak_name(self) -> str:
        """The name given to espeak (``SetVoiceByName`` / ``espeak-ng -v``)."""
        return f"{self.espeak_voice}+{self.variant}" if self.variant else self.espeak_voice

    def synth_fields(self) -> dict[str, Any]:
        """What changes the sound (the description does not): part of the TTS cache key."""
        d = asdict(self)
        d.pop("description")
        d.pop("name")
        return d


@functools.cache
def espeak_voices() -> frozenset[str]:
    """Names espeak-ng accepts as a voice: the voice files' basenames (``cmn``, ``ko``, ``en-us``).

    Language codes alone are not enough (``zh`` is listed for cmn yet does not select it).
    """
    out = _espeak_list("--voices")
    names = set()
    for line in out.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5:
            names.add(cols[4].rsplit("/", 1)[-1].lower())
    return frozenset(names)


@functools.cache
def espeak_variants() -> dict[str, str]:
    """Variant id (``m3``, ``f3``, ``Annie``...) -> "male" | "female" as espeak-ng lists them."""
    out = _espeak_list("--voices=variant")
    variants: dict[str, str] = {}
    for line in out.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5 and cols[4].startswith("!v/"):
            gender = cols[2].rsplit("/", 1)[-1]
            variants[cols[4][3:]] = "female" if gender == "F" else "male"
    return variants


def _espeak_list(arg: str) -> str:
    try:
        return subprocess.run(["espeak-ng", arg], check=True, capture_output=True,
                              text=True, timeout=20).stdout
    except FileNotFoundError as exc:
        raise VoiceError("espeak-ng is not installed (apt-get install espeak-ng)") from exc


def parse_profile(data: Any, source: str = "<profile>", lines: dict[str, int] | None = None
                  ) -> VoiceProfile:
    """Validate one profile mapping. Raises :class:`VoiceError` naming ``source:line`` and field."""
    lines = lines or {}

    def fail(field: str | None, msg: str) -> VoiceError:
        where = f"{source}:{lines[field]}" if field and field in lines else source
        return VoiceError(f"{where}: {field + ': ' if field else ''}{msg}")

    if not isinstance(data, dict):
        raise fail(None, "a voice profile must be a mapping of fields")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise fail(unknown[0], f"unknown field (known: {', '.join(_FIELDS)})")
    for field in _REQUIRED:
        if data.get(field) in (None, ""):
            raise fail(field, "is required")
    for field in ("name", "language", "espeak_voice", "gender", "description"):
        if field in data and not isinstance(data[field], str):
            raise fail(field, f"must be text, got {data[field]!r}")

    name = data["name"]
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise fail("name", f"{name!r} may hold only letters, digits, '_' and '-'")
    language = data["language"]
    if language not in LANGUAGES:
        raise fail("language", f"{language!r} is not supported (supported: {', '.join(LANGUAGES)})")
    espeak_voice = data["espeak_voice"].lower()
    if espeak_voice not in espeak_voices():
        close = sorted(v for v in espeak_voices() if v.startswith(espeak_voice[:2]))[:8]
        raise fail("espeak_voice", f"unknown espeak-ng voice {data['espeak_voice']!r}"
                   f" (see `espeak-ng --voices`; similar: {', '.join(close) or 'none'})")
    gender = data["gender"]
    if gender not in GENDERS:
        raise fail("gender", f"{gender!r} must be one of {', '.join(GENDERS)}")

    variant = data.get("variant")
    if variant is not None:
        variant = str(variant)
        variants = espeak_variants()
        if variant not in variants:
            raise fail("variant", f"unknown espeak-ng variant {variant!r} (e.g. m1-m8 male, "
                       "f1-f5 female; see `espeak-ng --voices=variant`)")
        if variants[variant] != gender:
            raise fail("variant", f"variant {variant!r} is a {variants[variant]} voice but gender "
                       f"is {gender!r}")
    elif gender == "female":
        raise fail("variant", "espeak-ng's base voices are male: a female profile needs a female "
                   "variant such as f3")

    rate = _number(data.get("rate", 175), int, RATE_RANGE, "rate", fail)
    pitch = _number(data.get("pitch", 50), int, PITCH_RANGE, "pitch", fail)
    volume = _number(data.get("volume", 1.0), float, VOLUME_RANGE, "volume", fail)
    return VoiceProfile(name=name, language=language, espeak_voice=espeak_voice, gender=gender,
                        variant=variant, rate=int(rate), pitch=int(pitch), volume=float(volume),
                        description=data.get("description") or "")


def _number(value: Any, kind: type, bounds: tuple[float, float], field: str, fail: Any) -> float:
    ok_types = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_types):
        raise fail(field, f"must be {'a whole number' if kind is int else 'a number'}, "
                   f"got {value!r}")
    lo, hi = bounds
    if not lo <= value <= hi:
        raise fail(field, f"{value} is out of range {lo}-{hi}")
    return float(value)


def load_voice_file(path: Path) -> VoiceProfile:
    try:
        doc = load_yaml(path)  # the operator-file loader: UTF-8, no repeated keys or alias bombs
    except YamlConfigError as exc:
        raise VoiceError(exc.problems, path=path) from exc
    lines = {str(loc[0]): line for loc, line in doc.lines.items() if len(loc) == 1}
    return parse_profile(doc.data, str(path), lines)


def load_voices(directory: Path | str) -> dict[str, VoiceProfile]:
    """Load and validate every ``*.yaml``/``*.yml`` profile in ``directory`` (name -> profile)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise VoiceError(f"{directory}: voices directory not found")
    voices: dict[str, VoiceProfile] = {}
    origin: dict[str, Path] = {}
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    for path in files:
        profile = load_voice_file(path)
        if profile.name in voices:
            raise VoiceError(f"{path}: name: {profile.name!r} is already defined in "
                             f"{origin[profile.name]}")
        voices[profile.name] = profile
        origin[profile.name] = path
    if not voices:
        raise VoiceError(f"{directory}: no voice profiles (*.yaml) found")
    return voices
