from __future__ import annotations

import time
from pathlib import Path

import pytest

from ivr.speech import audio
from ivr.speech.tts import TtsEngine, TtsError, playable
from ivr.speech.voices import VoiceProfile

TEXT = "您在示例平台购买的39.9元的蓝牙耳机，您满意吗？"


@pytest.fixture()
def engine(tmp_path, voices):
    return TtsEngine(tmp_path / "cache", voices)


def test_render_format_is_asterisk_ready(engine):
    path = engine.render(TEXT, "cmn-friendly-female")
    info = audio.wav_info(path)
    assert (info.rate, info.channels, info.sample_width) == (8000, 1, 2)
    assert info.seconds > 1.0
    assert audio.rms(audio.pcm(path)) > 300  # real speech, not silence
    assert playable(path) == str(path)[:-4]
    assert len(engine.pcm(path)) == info.frames * 2


def test_second_render_is_a_cache_hit(engine):
    first = engine.render(TEXT, "cmn-calm-male")
    assert not engine.last_hit
    mtime = first.stat().st_mtime_ns
    t0 = time.perf_counter()
    second = engine.render(TEXT, "cmn-calm-male")
    elapsed = time.perf_counter() - t0
    assert engine.last_hit and second == first and first.stat().st_mtime_ns == mtime
    assert elapsed < 0.05
    # the same words written differently normalise to the same prompt
    same = "您在示例平台购买的三十九点九元的蓝牙耳机，您满意吗？"
    assert engine.render(same, "cmn-calm-male") == first


def test_other_voice_or_text_is_a_miss(engine, voices):
    a = engine.render(TEXT, "cmn-calm-male")
    b = engine.render(TEXT, "cmn-friendly-female")
    assert not engine.last_hit and a != b
    c = engine.render(TEXT.replace("39.9", "49.9"), "cmn-calm-male")
    assert not engine.last_hit and c != a
    # a changed profile field (rate) is a different sound: a miss
    changed = dict(voices)
    p = voices["cmn-calm-male"]
    changed["cmn-calm-male"] = VoiceProfile(**{**p.__dict__, "rate": p.rate + 20})
    other = TtsEngine(engine.cache_dir, changed)
    d = other.render(TEXT, "cmn-calm-male")
    assert not other.last_hit and d != a
    assert audio.wav_info(d).seconds < audio.wav_info(a).seconds  # faster speech is shorter


def median_f0(path: Path) -> float:
    """Crude pitch: autocorrelation peak (50-400 Hz) over the 15 loudest 40 ms frames."""
    from array import array
    from statistics import median

    s = array("h")
    s.frombytes(audio.pcm(path))
    frames = [s[i:i + 320] for i in range(0, len(s) - 320, 320)]
    loud = sorted(frames, key=lambda f: -sum(abs(x) for x in f))[:15]
    f0s = []
    for f in loud:
        best = max(range(20, 161), key=lambda lag: sum(f[i] * f[i + lag] for i in range(320 - lag)))
        f0s.append(8000 / best)
    return median(f0s)


def test_female_voice_is_higher_than_male(engine):
    text = "구매하신 상품에 만족하십니까"
    male = median_f0(engine.render(text, "ko-calm-male"))
    female = median_f0(engine.render(text, "ko-friendly-female"))
    assert female > male * 1.3, (female, male)


def test_errors(engine):
    with pytest.raises(TtsError, match="unknown voice 'nope'"):
        engine.render("hi", "nope")
    with pytest.raises(TtsError, match="empty"):
        engine.render("  ", "en-neutral")


def test_no_partial_files_left(engine):
    engine.render("hello there", "en-neutral")
    leftovers = [p.name for p in engine.cache_dir.iterdir() if not p.name.endswith(".wav")
                 or p.name.startswith(".")]
    assert leftovers == []


def test_prerender_reports_progress_and_failures(engine):
    items = [(f"您在平台购买的{p}元的商品", v) for p in (19.9, 29.9) for v in
             ("cmn-calm-male", "cmn-friendly-female")]
    report = engine.prerender(items + [("hi", "missing-voice"), items[0]], progress=False)
    assert report.rendered == 4 and report.cached == 0
    assert len(report.errors) == 1 and report.errors[0][1] == "missing-voice"
    again = engine.prerender(items, progress=False)
    assert again.cached == 4 and again.rendered == 0 and again.ok
