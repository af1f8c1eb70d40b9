"""Prompt audio for Asterisk: text + voice profile -> the path Asterisk plays (no extension).

The seam between the AGI handlers and the settings' TTS engine (:func:`ivr.speech.tts.engine`):
prompts rendered (or reused from the cache) as files Asterisk plays, and the fixed ones the
dialplan plays by name.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ivr.config import Settings
from ivr.speech.tts import default_voice, engine, playable


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
