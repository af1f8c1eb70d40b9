"""Prompt audio for Asterisk: text + voice -> an 8 kHz WAV path (without extension) to play.

Rendering is cached by content, so the same prompt is synthesised once. This module is the seam
between the AGI handlers and the TTS engine in :mod:`ivr.speech.tts`.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from pathlib import Path

from ivr.config import Settings

DEFAULT_VOICES = {"cmn": "cmn", "ko": "ko", "en": "en-us"}


def prompt_file(settings: Settings, text: str, voice: str | None = None,
                language: str | None = None) -> str:
    """Render (or reuse) ``text`` and return the path Asterisk plays (no extension)."""
    lang = language or settings.language
    espeak_voice = voice or DEFAULT_VOICES.get(lang, lang)
    key = hashlib.sha256(f"espeak-ng|{espeak_voice}|{text}".encode()).hexdigest()[:24]
    out = settings.prompts_dir / "cache" / f"{key}.wav"
    if not out.exists():
        _render(text, espeak_voice, out)
    return str(out.with_suffix(""))


def system_prompt(settings: Settings, name: str, text: str) -> Path:
    """Fixed prompts the dialplan plays by name (e.g. system/apology)."""
    src = Path(prompt_file(settings, text)).with_suffix(".wav")
    dst = settings.prompts_dir / "system" / f"{name}.wav"
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists() or dst.read_bytes() != src.read_bytes():
        dst.write_bytes(src.read_bytes())
    return dst


def _render(text: str, voice: str, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        raw = Path(tmp) / "raw.wav"
        conv = Path(tmp) / "out.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), text], check=True,
                       capture_output=True)
        subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", "-e",
                        "signed-integer", str(conv), "gain", "-3"], check=True, capture_output=True)
        conv.replace(out)
