"""The call tests' fixtures: the survey ones, a tone and espeak-ng speech as 8 kHz PCM."""

from __future__ import annotations

import math
import shutil
import struct
import subprocess

import pytest
from support.speech import ko_model  # noqa: F401  (pytest fixtures)
from support.survey import cmn, db  # noqa: F401

from ivr.speech.audio import SAMPLE_RATE


def tone(ms: int, freq: float = 440.0, amp: int = 8000) -> bytes:
    n = SAMPLE_RATE * ms // 1000
    return b"".join(struct.pack("<h", int(amp * math.sin(2 * math.pi * freq * i / SAMPLE_RATE)))
                    for i in range(n))


@pytest.fixture(scope="session")
def espeak_pcm(tmp_path_factory) -> bytes:
    """Real speech (espeak-ng, Korean) as 8 kHz s16le PCM."""
    if not shutil.which("espeak-ng") or not shutil.which("sox"):
        pytest.skip("espeak-ng and sox are needed")
    d = tmp_path_factory.mktemp("speech")
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(d / "s.wav"), "네 만족합니다"], check=True)
    subprocess.run(["sox", str(d / "s.wav"), "-r", "8000", "-c", "1", "-b", "16",
                    "-e", "signed-integer", "-t", "raw", str(d / "s.raw")], check=True)
    return (d / "s.raw").read_bytes()
