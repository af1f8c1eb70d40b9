"""The pyttsx3 backend: many prompts in a row through one worker, checked against espeak-cli."""

from __future__ import annotations

import hashlib
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from ivr.speech import audio
from ivr.speech.tts import TtsEngine, TtsError

from .test_tts import median_f0

VOICES = ("cmn-calm-male", "cmn-friendly-female", "ko-calm-male", "ko-friendly-female")
CMN = ["您好，这里是示例平台关于{item}的回访电话。",
       "您在示例平台购买的{p}元的{item}，您满意吗？",
       "关于{item}，满意请说满意，不满意请说不满意。",
       "非常抱歉，我们可以为您退款{p}元，或者送您一张十元代金券。",
       "请问您对{item}不满意的原因是什么？",
       "感谢您对{item}的宝贵建议，祝您生活愉快，再见。",
       "您以后还会在我们平台购买{item}吗？",
       "好的，{p}元的退款将在三个工作日内到账。"]
KO = ["안녕하세요, 고객님. {item} 관련 전화입니다.",
      "구매하신 {p}원 {item}에 만족하십니까?",
      "{item}에 대해 네 또는 아니요로 대답해 주세요.",
      "불편을 드려 죄송합니다. {p}원을 환불해 드릴 수 있습니다.",
      "{item}이 불만족하신 이유를 말씀해 주세요.",
      "{item}에 대한 소중한 의견 감사합니다. 좋은 하루 보내세요.",
      "다음에도 {item}을 구매하시겠습니까?",
      "{p}원 환불은 삼 일 안에 처리됩니다."]
ITEMS = {"cmn": ["蓝牙耳机", "保温杯", "运动鞋", "电饭煲"],
         "ko": ["이어폰", "보온병", "운동화", "전기밥솥"]}


def prompts() -> list[tuple[str, str]]:
    """32 different (text, voice) pairs: 16 per language, male and female alternating."""
    out = []
    for i in range(32):
        voice = VOICES[i % 4]
        lang = voice.split("-")[0]
        n = (i // 4) * 2 + i % 2  # 0..15 within the language
        template = (CMN if lang == "cmn" else KO)[n % 8]
        text = template.format(p=f"{19.9 + 10 * n:.1f}", item=ITEMS[lang][(n + n // 8) % 4])
        out.append((text, voice))
    return out


@pytest.fixture(scope="module")
def py_engine(tmp_path_factory, voices):
    eng = TtsEngine(tmp_path_factory.mktemp("py") / "cache", voices, backend="pyttsx3")
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def cli_engine(tmp_path_factory, voices):
    return TtsEngine(tmp_path_factory.mktemp("cli") / "cache", voices, backend="espeak-cli")


def test_many_prompts_in_a_row_match_espeak_cli(py_engine, cli_engine, capfd):
    items = prompts()
    assert len({t for t, _ in items}) == len(items)
    digests = {}
    for text, voice in items:
        path = py_engine.render(text, voice)
        assert not py_engine.last_hit and path.exists()
        info = audio.wav_info(path)
        assert info.is_asterisk_ready, (text, info)
        pcm = audio.pcm(path)
        assert audio.rms(pcm) > 300, text  # speech, not silence
        ref = audio.wav_info(cli_engine.render(text, voice)).seconds
        assert 0.8 * ref <= info.seconds <= 1.2 * ref, (text, voice, info.seconds, ref)
        digests[hashlib.sha256(pcm).hexdigest()] = text
    assert len(digests) == len(items)  # no two prompts share audio (no stale/late file)
    stats = py_engine.worker().stats
    assert stats.started == 1 and stats.retried == 0  # one persistent worker did them all
    assert stats.renders >= len(items)
    assert "Audio saved" not in capfd.readouterr().out  # the driver's chatter is suppressed
    # cache: same prompt again is a hit, and the cache key differs from espeak-cli's
    text, voice = items[0]
    assert py_engine.render(text, voice) == py_engine.path_for(text, voice)
    assert py_engine.last_hit
    assert py_engine.cache_key(text, voice) != cli_engine.cache_key(text, voice)


def test_rate_pitch_volume_are_applied(py_engine, voices):
    text = "구매하신 상품에 만족하십니까"
    base = voices["ko-calm-male"]
    variants = {"base": base, "fast": replace(base, rate=base.rate + 60),
                "high": replace(base, pitch=90), "low": replace(base, pitch=10),
                "quiet": replace(base, volume=0.4)}
    eng = TtsEngine(py_engine.cache_dir, variants, backend="pyttsx3")
    try:
        paths = {name: eng.render(text, name) for name in variants}
    finally:
        eng.close()
    secs = {n: audio.wav_info(p).seconds for n, p in paths.items()}
    assert secs["fast"] < 0.85 * secs["base"], secs
    assert median_f0(paths["high"]) > 1.2 * median_f0(paths["low"])
    assert audio.rms(audio.pcm(paths["quiet"])) < 0.6 * audio.rms(audio.pcm(paths["base"]))


def test_bad_voice_is_reported_and_the_worker_survives(py_engine, voices):
    good = voices["cmn-calm-male"]
    profiles = {"good": good, "bogus": replace(good, espeak_voice="zz-bogus", variant=None),
                "badvariant": replace(good, variant="zz9")}
    eng = TtsEngine(py_engine.cache_dir / "bad", profiles, backend="pyttsx3")
    try:
        with pytest.raises(TtsError, match="zz-bogus"):
            eng.render("您好", "bogus")
        with pytest.raises(TtsError, match="cmn\\+zz9.*variant"):
            eng.render("您好", "badvariant")
        assert not list(eng.cache_dir.glob("*.wav"))  # nothing rendered with a wrong voice
        pid = eng.worker().pid
        ok = eng.render("您好", "good")
        assert audio.wav_info(ok).is_asterisk_ready
        assert eng.worker().pid == pid  # a bad voice does not cost a worker restart
    finally:
        eng.close()


def test_dead_worker_is_replaced(voices, tmp_path):
    eng = TtsEngine(tmp_path / "cache", voices, backend="pyttsx3")
    try:
        first = eng.render("您好，再见。", "cmn-calm-male")
        pid = eng.worker().pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        second = eng.render("안녕히 계세요.", "ko-calm-male")
        assert audio.wav_info(second).is_asterisk_ready and second != first
        assert eng.worker().stats.started == 2 and eng.worker().pid not in (None, pid)
    finally:
        eng.close()
    assert eng.worker().pid is None


def test_concurrent_renders_are_serialised(voices, tmp_path, cli_engine):
    eng = TtsEngine(tmp_path / "cache", voices, backend="pyttsx3")
    items = prompts()[:8]
    try:
        with ThreadPoolExecutor(4) as pool:
            paths = list(pool.map(lambda it: eng.render(*it), items))
        pcms = [audio.pcm(p) for p in paths]
        assert len({hashlib.sha256(p).digest() for p in pcms}) == len(items)
        for (text, voice), pcm in zip(items, pcms, strict=True):  # each file is its own text
            ref = audio.wav_info(cli_engine.render(text, voice)).seconds
            assert audio.seconds(pcm) == pytest.approx(ref, rel=0.2), text
        assert eng.worker().stats.started == 1
    finally:
        eng.close()


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown TTS backend"):
        TtsEngine("/tmp/x", {}, backend="festival")  # type: ignore[arg-type]
