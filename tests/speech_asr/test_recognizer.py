"""TurnRecognizer events on synthetic audio and real espeak speech; decisions on real decodes."""

from __future__ import annotations

import math
import random
from array import array
from typing import Any

import pytest

from ivr.speech.grammar import question_grammar
from ivr.speech.models import LoadedModel
from ivr.speech.recognizer import TurnEvent, TurnRecognizer, recognize_pcm

pytestmark = pytest.mark.asr
RATE = 8000
CONFIRM = {"yes": ["네", "예"], "no": ["아니요", "아니오"],
           "agent": ["상담원 연결 해 주세요"]}


def silence(ms: int) -> bytes:
    return bytes(RATE * ms // 1000 * 2)


def noise(ms: int, level: float, seed: int = 1) -> bytes:
    rnd = random.Random(seed)
    return array("h", (int(rnd.gauss(0, level)) for _ in range(RATE * ms // 1000))).tobytes()


def tone(ms: int, amp: int = 8000, hz: float = 440.0) -> bytes:
    return array("h", (int(amp * math.sin(2 * math.pi * hz * i / RATE))
                       for i in range(RATE * ms // 1000))).tobytes()


def run(model: LoadedModel, pcm: bytes, chunk: int = 320, **kw: Any) -> Any:
    grammar = question_grammar(CONFIRM, model, language="ko", question="confirm", source="test")
    rec = TurnRecognizer(model, grammar, CONFIRM, **kw)
    events: list[tuple[TurnEvent, int]] = []
    for i in range(0, len(pcm), chunk):
        ev = rec.feed(pcm[i:i + chunk])
        while ev is not None:
            events.append((ev, rec.frames * 20))
            ev = rec.feed(b"")
    return rec, events


def test_silence_gives_no_input(ko_model: LoadedModel) -> None:
    rec, events = run(ko_model, silence(3000), no_input_ms=2000)
    assert events == [(TurnEvent.NO_INPUT, 2000)]
    assert rec.result().intent is None and rec.result().reason == "no input"
    assert rec.fed_from == -1  # Vosk never ran on the silent line


def test_line_noise_and_clicks_do_not_start_speech(ko_model: LoadedModel) -> None:
    pcm = noise(1000, 300) + noise(40, 9000, seed=2) + noise(1500, 300, seed=3)
    rec, events = run(ko_model, pcm, no_input_ms=2400)
    assert [e for e, _ in events] == [TurnEvent.NO_INPUT]


def test_tone_burst_start_and_end(ko_model: LoadedModel) -> None:
    pcm = noise(600, 100) + tone(900) + noise(1500, 100)
    rec, events = run(ko_model, pcm, end_silence_ms=500)
    (start, t_start), (end, t_end) = events
    assert start is TurnEvent.SPEECH_START and 600 < t_start <= 800  # within 200 ms of onset
    assert end is TurnEvent.END and 1500 + 500 <= t_end <= 1500 + 500 + 60
    assert rec.end_reason == "trailing silence"
    span = rec.speech_span
    assert span is not None and abs((span[1] - span[0]) - 0.9) < 0.06


def test_end_silence_is_tunable(ko_model: LoadedModel) -> None:
    pcm = noise(600, 100) + tone(500) + noise(2000, 100)
    _, ev300 = run(ko_model, pcm, end_silence_ms=300)
    _, ev800 = run(ko_model, pcm, end_silence_ms=800)
    assert ev800[-1][1] - ev300[-1][1] == pytest.approx(500, abs=40)


def test_max_speech(ko_model: LoadedModel) -> None:
    rec, events = run(ko_model, noise(400, 100) + tone(4000), max_speech_ms=2000)
    assert events[-1][0] is TurnEvent.END and rec.end_reason == "max speech length"
    assert events[-1][1] <= 400 + 2000 + 200


def test_odd_chunk_sizes_same_events(ko_model: LoadedModel) -> None:
    pcm = noise(600, 100) + tone(700) + noise(1000, 100)
    _, a = run(ko_model, pcm, chunk=320)
    _, b = run(ko_model, pcm, chunk=77 * 2)
    assert [e for e, _ in a] == [e for e, _ in b]
    assert abs(a[0][1] - b[0][1]) <= 20 and abs(a[1][1] - b[1][1]) <= 20


def test_real_speech_events_and_decision(ko_model: LoadedModel, speak) -> None:
    pcm = speak("아니요", "ko+f2", 160, lead=0.6, tail=1.0)
    grammar = question_grammar(CONFIRM, ko_model, language="ko", question="confirm",
                               source="test")
    hyp, events = recognize_pcm(ko_model, grammar, CONFIRM, pcm)
    kinds = [e for e, _ in events]
    assert kinds == [TurnEvent.SPEECH_START, TurnEvent.END]
    assert 600 <= events[0][1] <= 800
    assert hyp.best_intent == "no" and hyp.transcript in ("아니요", "아니오")
    assert hyp.intent in ("no", None)  # never a wrong intent


def test_out_of_grammar_speech_is_rejected(ko_model: LoadedModel, speak) -> None:
    grammar = question_grammar(CONFIRM, ko_model, language="ko", question="confirm",
                               source="test")
    for text in ("오늘 날씨 좋네요", "택배 아직 안 왔어요"):
        hyp, _ = recognize_pcm(ko_model, grammar, CONFIRM, speak(text, "ko+f2"))
        assert hyp.intent is None, (text, hyp)


def test_one_decoder_with_nbest_and_the_line_noise_measured(ko_model: LoadedModel,
                                                           speak) -> None:
    """The turn hears the answer through the noise suppressor (noise spectrum from the quiet
    line before the onset) and knows the SNR; Vosk's word times line up with the VAD span."""
    grammar = question_grammar(CONFIRM, ko_model, language="ko", question="confirm",
                               source="test")
    assert grammar == ["네", "예", "아니요", "아니오", "상담원 연결 해 주세요", "<UNK>"]
    speech = array("h", speak("아니요", "ko+f2", 160, lead=0.6, tail=1.0))
    rnd = random.Random(5)
    noisy = array("h", (max(-32768, min(32767, s + int(rnd.gauss(0, 300)))) for s in speech))
    results = {}
    for denoise in (True, False):
        rec = TurnRecognizer(ko_model, grammar, CONFIRM, denoise=denoise)
        pcm = noisy.tobytes()
        for i in range(0, len(pcm), 320):
            rec.feed(pcm[i:i + 320])
        hyp = rec.result()
        results[denoise] = (rec, hyp)
        assert (rec._suppressor is not None) == denoise
        alts = rec.raw_results()[-1]["alternatives"]
        assert len(alts) >= 1 and "confidence" in alts[0]
    rec, hyp = results[True]
    assert rec.snr_db is not None and 15 < rec.snr_db < 45
    assert hyp.features["snr_db"] == pytest.approx(rec.snr_db)
    assert hyp.best_intent == "no" and hyp.intent in ("no", None)
    assert hyp.features["coverage"] > 0.5  # the words sit inside the detected speech
    # Without the suppressor Vosk's clock is the VAD's; with it, 16 ms later.
    span_raw, span_dn = results[False][0].speech_span, rec.speech_span
    assert span_raw is not None and span_dn is not None
    assert span_dn[0] - span_raw[0] == pytest.approx(0.016)
