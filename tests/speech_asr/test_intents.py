"""Intent decisions on crafted Vosk results (no model needed) and DTMF mapping."""

from __future__ import annotations

from typing import Any

from ivr.speech.intents import Thresholds, classify, dtmf_intent

INTENTS = {"yes": ["네", "예"], "no": ["아니요"], "refund": ["환불 해 주세요"]}
T = Thresholds(min_posterior=0.8, min_margin=1.0, min_coverage=0.6, max_edge_gap_ms=300,
               min_speech_ms=100, max_sec_per_word=2.0)


def alt(text: str, score: float, start: float = 0.5, end: float = 0.9) -> dict[str, Any]:
    words = text.split()
    step = (end - start) / max(1, len(words))
    return {"text": text, "confidence": score,
            "result": [{"word": w, "start": start + i * step, "end": start + (i + 1) * step}
                       for i, w in enumerate(words)]}


def result(*alts: dict[str, Any]) -> dict[str, Any]:
    return {"alternatives": list(alts)}


def test_clear_answer_accepted() -> None:
    h = classify(result(alt("네", 50.0)), INTENTS, unk_token="<UNK>", thresholds=T,
                 speech_span=(0.48, 0.92))
    assert h.intent == "yes" and h.accepted and h.reason == "accepted"
    assert h.confidence == 1.0 and h.transcript == "네"


def test_same_meaning_alternatives_do_not_compete() -> None:
    h = classify(result(alt("네", 50.0), alt("예", 49.9)), INTENTS, unk_token="<UNK>",
                 thresholds=T)
    assert h.intent == "yes"
    assert h.features["margin"] == T.lone_margin  # no rival meaning in the n-best


def test_close_rival_meaning_rejected() -> None:
    h = classify(result(alt("네", 50.0), alt("아니요", 49.5)), INTENTS, unk_token="<UNK>",
                 thresholds=T)
    assert h.intent is None and h.best_intent == "yes"
    assert "posterior" in h.reason or "margin" in h.reason


def test_non_phrase_rival_counts_as_competitor() -> None:
    h = classify(result(alt("네", 50.0), alt("네 오늘", 49.6)), INTENTS, unk_token="<UNK>",
                 thresholds=T)
    assert h.intent is None


def test_concatenated_words_are_not_a_phrase() -> None:
    h = classify(result(alt("네 아니요", 60.0)), INTENTS, unk_token="<UNK>", thresholds=T)
    assert h.intent is None and "not one of the phrases" in h.reason


def test_unk_and_empty() -> None:
    assert classify(result(alt("<UNK>", 60.0)), {"x": ["<UNK>"]}, unk_token="<UNK>",
                    thresholds=T).intent is None
    h = classify({"alternatives": [{"text": "", "confidence": 10.0}]}, INTENTS,
                 unk_token="<UNK>", thresholds=T)
    assert h.intent is None and h.reason == "no words recognised"


def test_speech_outside_words_rejected() -> None:
    # "불만족" heard as "만족": the first syllable left as unexplained speech before the word.
    h = classify(result(alt("네", 50.0, start=0.8, end=1.0)), INTENTS, unk_token="<UNK>",
                 thresholds=T, speech_span=(0.3, 1.0))
    assert h.intent is None
    assert "outside" in h.reason or "cover" in h.reason


def test_rambling_rejected() -> None:
    h = classify(result(alt("네", 50.0, start=0.5, end=3.9)), INTENTS, unk_token="<UNK>",
                 thresholds=T, speech_span=(0.5, 3.9))
    assert h.intent is None and "longer" in h.reason


def test_single_result_shape_is_understood() -> None:
    r = {"text": "환불 해 주세요", "result": [
        {"word": "환불", "start": 0.1, "end": 0.5, "conf": 0.9},
        {"word": "해", "start": 0.5, "end": 0.7, "conf": 0.8},
        {"word": "주세요", "start": 0.7, "end": 1.1, "conf": 0.95}]}
    h = classify(r, INTENTS, unk_token="<UNK>", thresholds=T, speech_span=(0.1, 1.1))
    assert h.intent == "refund" and h.features["min_word_conf"] == 0.8


def test_dtmf() -> None:
    m = {"1": "yes", "2": "no"}
    assert dtmf_intent("1", m) == "yes"
    assert dtmf_intent(" 2 ", m) == "no"
    assert dtmf_intent("3", m) is None
    assert dtmf_intent("12", m) is None
    assert dtmf_intent("x", {"x": "yes"}) is None


def test_filler_decode_disagreement_vetoes() -> None:
    t = Thresholds(min_posterior=0.0, min_margin=0.0, require_garbage_agree=1.0)
    agree = {"garbage": {"text": "네", "result": [{"word": "네", "conf": 1.0}]}}
    other = {"garbage": {"text": "오늘 네", "result": []}}
    assert classify(result(alt("네", 50.0)), INTENTS, unk_token="<UNK>", thresholds=t,
                    checks=agree).intent == "yes"
    h = classify(result(alt("네", 50.0)), INTENTS, unk_token="<UNK>", thresholds=t, checks=other)
    assert h.intent is None and h.best_intent == "yes" and "filler" in h.reason
    # A check that did not run never vetoes.
    assert classify(result(alt("네", 50.0)), INTENTS, unk_token="<UNK>", thresholds=t).intent \
        == "yes"


def test_conf_pass_word_confidence() -> None:
    t = Thresholds(min_posterior=0.0, min_margin=0.0, min_word_conf=0.9)
    sure = {"conf": {"text": "네", "result": [{"word": "네", "conf": 0.97}]}}
    unsure = {"conf": {"text": "네", "result": [{"word": "네", "conf": 0.6}]}}
    elsewhere = {"conf": {"text": "아니요", "result": [{"word": "아니요", "conf": 0.99}]}}
    for checks, want in ((sure, "yes"), (unsure, None), (elsewhere, None)):
        h = classify(result(alt("네", 50.0)), INTENTS, unk_token="<UNK>", thresholds=t,
                     checks=checks)
        assert h.intent == want, (checks, h.reason)
