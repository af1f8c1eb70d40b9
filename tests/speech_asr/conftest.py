"""Shared fixtures: the real Korean model (loaded once) and espeak-ng telephone audio."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from support.speech import ko_model  # noqa: F401  (pytest fixture)

HAVE_TOOLS = bool(shutil.which("espeak-ng") and shutil.which("sox"))


@pytest.fixture(scope="session")
def speak(tmp_path_factory: pytest.TempPathFactory):
    """speak(text, voice="ko+f2", speed=160, lead=0.4, tail=0.8) -> 8 kHz s16le PCM bytes."""
    if not HAVE_TOOLS:
        pytest.skip("espeak-ng and sox are needed")
    folder = tmp_path_factory.mktemp("speech")
    made: dict[tuple[str, str, int, float, float], bytes] = {}

    def _speak(text: str, voice: str = "ko+f2", speed: int = 160, lead: float = 0.4,
               tail: float = 0.8) -> bytes:
        key = (text, voice, speed, lead, tail)
        if key not in made:
            wav = folder / f"{len(made)}.wav"
            raw = folder / f"{len(made)}.raw"
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), text],
                           check=True, capture_output=True)
            subprocess.run(["sox", str(wav), "-r", "8000", "-c", "1", "-b", "16", "-e",
                            "signed-integer", "-t", "raw", str(raw), "gain", "-3", "rate", "-h",
                            "pad", str(lead), str(tail)], check=True, capture_output=True)
            made[key] = Path(raw).read_bytes()
        return made[key]

    return _speak
