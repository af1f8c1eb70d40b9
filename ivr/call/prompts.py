"""Prompt audio for Asterisk: text + voice profile -> the path Asterisk plays (no extension).

The seam between the AGI handlers and :class:`ivr.speech.tts.TtsEngine`: one engine per process
and cache directory, voice profiles from ``settings.speech.voices_dir``, a default voice per
language when the caller does not choose one.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

from ivr.config import Settings
from ivr.speech.tts import TtsEngine, playable
from ivr.speech.voices import load_voices

DEFAULT_VOICES = {"cmn": "cmn-calm-male", "ko": "ko-calm-male", "en": "en-neutral"}


@functools.cache
def _engine(cache_dir: Path, voices_dir: Path, backend: str) -> TtsEngine:
    return TtsEngine(cache_dir, load_voices(voices_dir), backend=backend)  # type: ignore[arg-type]


def engine(settings: Settings) -> TtsEngine:
    return _engine(settings.prompts_dir / "tts", Path(settings.speech.voices_dir),
                   settings.speech.tts_backend)


def default_voice(settings: Settings, language: str | None = None) -> str:
    lang = language or settings.language
    return DEFAULT_VOICES.get(lang, DEFAULT_VOICES["cmn"])


def prompt_file(settings: Settings, text: str, voice: str | None = None,
                language: str | None = None) -> str:
    """Render (or reuse) ``text`` and return the path Asterisk plays (no extension)."""
    path = engine(settings).render(text, voice or default_voice(settings, language))
    return playable(path)


def system_prompt(settings: Settings, name: str, text: str) -> Path:
    """Fixed prompts the dialplan plays by name (e.g. ``system/apology``)."""
    src = engine(settings).render(text, default_voice(settings))
    dst = settings.prompts_dir / "system" / f"{name}.wav"
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists() or dst.read_bytes() != src.read_bytes():
        shutil.copyfile(src, dst)
    return dst
