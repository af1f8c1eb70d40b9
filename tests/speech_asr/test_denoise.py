"""The noise suppressor: transparent without noise, streaming-exact, and it removes line noise."""

from __future__ import annotations

import numpy as np
import pytest

from ivr.speech.denoise import DELAY_SAMPLES, NoiseSuppressor, noise_spectrum

RATE = 8000


def run(sup: NoiseSuppressor, x: np.ndarray, chunk: int) -> np.ndarray:
    pcm = x.astype("<i2").tobytes()
    out = b"".join(sup.process(pcm[i:i + chunk]) for i in range(0, len(pcm), chunk)) + sup.flush()
    return np.frombuffer(out, dtype="<i2")[DELAY_SAMPLES:DELAY_SAMPLES + len(x)].astype(float)


@pytest.mark.parametrize("chunk", [320, 154, 1600, 2])
def test_without_noise_the_output_is_the_input(chunk: int) -> None:
    x = np.random.default_rng(0).normal(0, 3000, RATE).clip(-32768, 32767).round()
    y = run(NoiseSuppressor(None), x, chunk)
    assert len(y) == len(x) and np.abs(y - x).max() == 0


def test_stationary_noise_is_removed_and_speech_kept() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(2 * RATE) / RATE
    tone = 6000 * np.sin(2 * np.pi * 440 * t) * (t >= 1.0)
    noise = rng.normal(0, 1000, len(t))
    x = (tone + noise).round()
    spectrum = noise_spectrum([x[:RATE // 2].astype("<i2").tobytes()])
    assert spectrum is not None
    y = run(NoiseSuppressor(spectrum), x, 320)
    quiet_before = np.sqrt((x[:RATE] ** 2).mean())
    quiet_after = np.sqrt((y[:RATE] ** 2).mean())
    assert 20 * np.log10(quiet_before / quiet_after) > 6  # the noise-only second
    assert np.corrcoef(y[RATE + 800:], tone[RATE + 800:])[0, 1] > 0.99


def test_too_little_noise_and_bad_settings() -> None:
    assert noise_spectrum([b"\0\0" * 100]) is None
    with pytest.raises(ValueError, match="floor"):
        NoiseSuppressor(None, floor=0.0)
    with pytest.raises(ValueError, match="alpha"):
        NoiseSuppressor(None, alpha=-1.0)
