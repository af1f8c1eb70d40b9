"""Audio in the form Asterisk wants: 8 kHz mono signed 16-bit little-endian (slin).

Conversion goes through sox (proper anti-alias resampling, -3 dB headroom against clipping);
pydub is the fallback when sox is missing. 20 ms of slin is 320 bytes: one AudioSocket frame.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
import wave
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SAMPLE_RATE = 8000
SAMPLE_WIDTH = 2
FRAME_MS = 20
FRAME_BYTES = SAMPLE_RATE * SAMPLE_WIDTH * FRAME_MS // 1000  # 320


class AudioError(RuntimeError):
    """Audio could not be converted or is not in the expected format."""


@dataclass(frozen=True)
class WavInfo:
    rate: int
    channels: int
    sample_width: int
    frames: int

    @property
    def seconds(self) -> float:
        return self.frames / self.rate if self.rate else 0.0

    @property
    def is_asterisk_ready(self) -> bool:
        return (self.rate, self.channels, self.sample_width) == (SAMPLE_RATE, 1, SAMPLE_WIDTH)


def wav_info(path: Path | str) -> WavInfo:
    try:
        with wave.open(str(path), "rb") as w:
            return WavInfo(w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise AudioError(f"{path}: not a readable PCM WAV file ({exc})") from exc


def to_asterisk_wav(src: Path, dst: Path, gain_db: float = -3.0) -> None:
    """Convert any WAV to 8 kHz mono s16 WAV at ``dst`` (written atomically: temp + rename)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".conv-", suffix=".wav", dir=dst.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if shutil.which("sox"):
            proc = subprocess.run(
                ["sox", "-V1", str(src), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16",
                 "-e", "signed-integer", str(tmp), "gain", f"{gain_db:g}"],
                capture_output=True, text=True, timeout=120)
            if proc.returncode != 0:
                raise AudioError(f"sox failed on {src}: {proc.stderr.strip()}")
        else:
            _pydub_convert(src, tmp, gain_db)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def _pydub_convert(src: Path, dst: Path, gain_db: float) -> None:
    from pydub import AudioSegment  # imported lazily: only needed without sox

    seg = AudioSegment.from_wav(str(src))
    seg = seg.set_frame_rate(SAMPLE_RATE).set_channels(1).set_sample_width(SAMPLE_WIDTH)
    seg.apply_gain(gain_db).export(str(dst), format="wav")


def pcm(path: Path | str) -> bytes:
    """Raw 8 kHz mono s16le samples of an Asterisk-ready WAV (what AudioSocket streams)."""
    info = wav_info(path)
    if not info.is_asterisk_ready:
        raise AudioError(f"{path}: {info.rate} Hz, {info.channels} ch, {8 * info.sample_width}-bit;"
                         " expected 8000 Hz mono 16-bit (render it through TtsEngine)")
    with wave.open(str(path), "rb") as w:
        return w.readframes(w.getnframes())


def frames(data: bytes, size: int = FRAME_BYTES) -> Iterator[bytes]:
    """Split PCM into fixed frames; the last one is padded with silence."""
    for i in range(0, len(data), size):
        chunk = data[i:i + size]
        yield chunk if len(chunk) == size else chunk + b"\x00" * (size - len(chunk))


def silence(ms: int) -> bytes:
    return b"\x00" * (SAMPLE_RATE * SAMPLE_WIDTH * ms // 1000)


def seconds(data: bytes) -> float:
    return len(data) / (SAMPLE_RATE * SAMPLE_WIDTH)


def rms(data: bytes) -> float:
    """Root mean square of s16le samples (0..32768): a cheap speech/silence measure."""
    samples = array("h")
    samples.frombytes(data[: len(data) - len(data) % 2])
    if sys.byteorder == "big":
        samples.byteswap()  # slin is little-endian
    if not samples:
        return 0.0
    return math.sqrt(sum(s * s for s in samples) / len(samples))
