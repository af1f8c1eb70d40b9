"""Intent decisions on crafted Vosk results (no model needed), DTMF mapping, confidence models."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from typing import Any

import pytest

from ivr.config import ConfidenceSettings
from ivr.speech import confidence as conf
from ivr.speech.confidence import (
    ConfidenceError,
    ConfidenceModel,
    confidence_for,
    confidence_with,
    fit,
)
from ivr.speech.intents import Signal, classify, dtmf_intent, syllables

INTENTS = {"yes": ["네", "예"], "no": ["아니요"], "refund": ["환불 해 주세요"]}
# A hand-made model: trusts a phrase that leads its rivals and is the decoder's best path.
MODEL = ConfidenceModel(features=("margin", "behind_best", "coverage"),
                        weights=(2.0, -2.0, 1.0), bias=0.0, mean=(2.0, 1.0, 0.5),
                        scale=(1.0, 1.0, 0.25), threshold=0.8)


def alt(text: str, score: float, start: float = 0.5, end: float = 0.9) -> dict[str, Any]:
    words = text.split()
    step = (end - start) / max(1, len(words))
    return {"text": text, "confidence": score,
            "result": [{"word": w, "start": start + i * step, "end": start + (i + 1) * step}
                       for i, w in enumerate(words)]}


def result(*alts: dict[str, Any]) -> dict[str, Any]:
    return {"alternatives": list(alts)}


def decide(r: dict[str, Any], span: tuple[float, float] | None = (0.48, 0.92),
           model: ConfidenceModel = MODEL) -> Any:
    return classify(r, INTENTS, unk_token="<UNK>", confidence=model, signal=Signal(span, 30.0))


def test_clear_answer_accepted() -> None:
    h = decide(result(alt("네", 50.0)))
    assert h.intent == "yes" and h.accepted and h.reason == "accepted"
    assert h.confidence > 0.99 and h.transcript == "네"
    f = h.features
    assert f["behind_best"] == 0 and f["top_is_phrase"] == 1 and f["snr_db"] == 30.0
    assert f["margin"] == 8.0  # no rival meaning in the n-best: capped


def test_best_phrase_is_taken_from_the_nbest() -> None:
    # Vosk's bigram grammar strings words of different answers together; the best alternative
    # that is exactly a phrase is the hypothesis.
    h = decide(result(alt("환불 해 네 주세요", 50.0), alt("환불 해 주세요", 49.8),
                      alt("아니요", 40.0)))
    assert h.best_intent == "refund" and h.transcript == "환불 해 주세요"
    assert h.features["behind_best"] == pytest.approx(0.2)
    assert h.features["margin"] == 8.0  # 9.8 ahead of "아니요": capped
    assert h.features["top_is_phrase"] == 0


def test_close_rival_meaning_is_unsure() -> None:
    clear = decide(result(alt("네", 50.0), alt("아니요", 40.0)))
    close = decide(result(alt("네", 50.0), alt("아니요", 49.5)))
    assert clear.intent == "yes"
    assert close.intent is None and close.best_intent == "yes"
    assert close.confidence < clear.confidence and "confidence" in close.reason


def test_same_meaning_alternatives_add_up() -> None:
    h = decide(result(alt("네", 50.0), alt("예", 49.9)))
    assert h.features["posterior"] == pytest.approx(1.0)


def test_no_phrase_unk_and_empty() -> None:
    h = decide(result(alt("네 아니요", 60.0), alt("오늘 네 아니요", 59.0)))
    assert h.intent is None and h.best_intent is None and "no phrase among the 2" in h.reason
    h = decide(result(alt("<UNK>", 60.0)))
    assert h.intent is None and h.reason == "only the unknown-word token"
    h = decide({"alternatives": [{"text": "", "confidence": 10.0}]})
    assert h.intent is None and h.reason == "no words recognised"


def test_speech_features() -> None:
    # "불만족" heard as "만족"-like: speech before the words is left unexplained.
    h = decide(result(alt("네", 50.0, start=0.8, end=1.0), alt("아니요", 48.0)), span=(0.3, 1.0))
    assert h.features["edge_gap_ms"] == pytest.approx(500)
    assert h.features["coverage"] == pytest.approx(0.2 / 0.7)
    assert h.features["sec_per_unit"] == pytest.approx(0.7)
    assert h.intent is None  # the hand model distrusts low coverage ...
    full = decide(result(alt("네", 50.0, start=0.3, end=1.0), alt("아니요", 48.0)), span=(0.3, 1.0))
    assert full.intent == "yes" and full.confidence > h.confidence  # ... not the same words
    assert decide(result(alt("네", 50.0, start=0.5, end=0.55)), span=(0.5, 0.55)).reason \
        .startswith("speech too short")


def test_single_result_shape_is_understood() -> None:
    r = {"text": "환불 해 주세요", "result": [
        {"word": "환불", "start": 0.1, "end": 0.5, "conf": 0.9},
        {"word": "해", "start": 0.5, "end": 0.7, "conf": 0.8},
        {"word": "주세요", "start": 0.7, "end": 1.1, "conf": 0.95}]}
    h = decide(r, span=(0.1, 1.1))
    assert h.intent == "refund" and h.features["coverage"] == pytest.approx(1.0)


def test_syllables() -> None:
    assert syllables("환불 해 주세요") == 6
    assert syllables("不 满意") == 3
    assert syllables("yes please") == 2
    assert syllables("") == 1


def test_dtmf() -> None:
    m = {"1": "yes", "2": "no"}
    assert dtmf_intent("1", m) == "yes"
    assert dtmf_intent(" 2 ", m) == "no"
    assert dtmf_intent("3", m) is None
    assert dtmf_intent("12", m) is None
    assert dtmf_intent("x", {"x": "yes"}) is None


# ---- confidence models -----------------------------------------------------------------------
def test_model_round_trip_and_missing_feature_is_neutral() -> None:
    again = ConfidenceModel.from_json(MODEL.to_json(), "x.json")
    assert again.features == MODEL.features and again.threshold == MODEL.threshold
    at_mean = {"margin": 2.0, "behind_best": 1.0, "coverage": 0.5}
    assert MODEL.probability(at_mean) == pytest.approx(0.5)
    assert MODEL.probability({"margin": 2.0, "behind_best": 1.0}) == pytest.approx(0.5)


@pytest.mark.parametrize("change, message", [
    ({"features": ["margin", "nope"], "weights": [1, 1], "mean": [0, 0], "scale": [1, 1]},
     "unknown features"),
    ({"weights": [1.0]}, "same non-zero length"),
    ({"scale": [1.0, 0.0, 1.0]}, "scale must be > 0"),
    ({"threshold": 1.5}, "threshold must be in"),
    ({"bias": "high"}, "not a confidence model"),
])
def test_bad_model_files_are_refused_with_the_reason(change: dict[str, Any], message: str) -> None:
    d = json.loads(MODEL.to_json())
    d.update(change)
    with pytest.raises(ConfidenceError, match=message) as err:
        ConfidenceModel.from_json(json.dumps(d), "speech/data/confidence.xx.json")
    assert "confidence.xx.json" in str(err.value)
    with pytest.raises(ConfidenceError, match="not a confidence model"):
        ConfidenceModel.from_json("{", "f.json")


def test_fit_learns_a_separable_rule() -> None:
    rnd = random.Random(3)
    rows, labels = [], []
    for _ in range(400):
        margin, gap = rnd.uniform(0, 8), rnd.uniform(0, 8)
        rows.append({"margin": margin, "behind_best": gap})
        labels.append(1 if margin - gap > 1 else 0)
    m = fit(rows, labels, features=("margin", "behind_best"))
    assert m.weights[0] > 0 > m.weights[1]
    right = sum((m.probability(r) >= 0.5) == bool(y) for r, y in zip(rows, labels, strict=True))
    assert right / len(rows) > 0.95
    with pytest.raises(ValueError):
        fit([], [])


def test_noisy_line_needs_more_confidence() -> None:
    m = MODEL.with_threshold(0.8, 0.95)
    assert m.threshold_for({"snr_db": 30.0}) == 0.8
    assert m.threshold_for({"snr_db": 12.0}) == 0.95
    assert m.threshold_for({}) == 0.8  # unknown SNR: the normal threshold
    r = result(alt("네", 50.0), alt("아니요", 48.7))  # p(right) ~0.9
    calm = classify(r, INTENTS, unk_token="<UNK>", confidence=m, signal=Signal((0.48, 0.92), 30))
    noisy = classify(r, INTENTS, unk_token="<UNK>", confidence=m, signal=Signal((0.48, 0.92), 9))
    assert calm.confidence == noisy.confidence  # this model does not read the SNR itself
    assert calm.intent == "yes" and noisy.intent is None and "0.95" in noisy.reason


def test_shipped_korean_model_and_strict_fallback() -> None:
    ko = confidence_for("ko")
    assert ko.features and 0.5 <= ko.threshold < 1.0
    assert ko.noisy_threshold is not None and ko.noisy_threshold >= ko.threshold
    assert set(ko.features) <= set(conf.FEATURES)
    other = confidence_for("xx")
    assert other.weights == ko.weights
    assert other.threshold == pytest.approx(min(1.0, ko.threshold + conf.UNTUNED_MARGIN))


def test_unsure_answer_above_the_floor_is_confirmable() -> None:
    m = replace(MODEL, confirm_floor=0.3, confirm_threshold=0.6)
    unsure = result(alt("네", 50.0), alt("아니요", 49.5))  # p ~0.65: below 0.8
    h = classify(unsure, INTENTS, unk_token="<UNK>", confidence=m, signal=Signal((0.48, 0.92)))
    assert h.intent is None and h.best_intent == "yes" and h.confirmable
    far = result(alt("네 예", 52.0), alt("네", 50.0), alt("아니요", 49.9))
    low = classify(far, INTENTS, unk_token="<UNK>", confidence=m, signal=Signal((0.48, 0.92)))
    assert low.confidence < 0.3 and not low.confirmable
    # without confirmation settings nothing is confirmable; a sure answer needs none
    assert not decide(unsure).confirmable
    assert not classify(result(alt("네", 50.0)), INTENTS, unk_token="<UNK>", confidence=m,
                        signal=Signal((0.48, 0.92))).confirmable
    # too short to be speech: refused before any confidence, never confirmed
    short = classify(unsure, INTENTS, unk_token="<UNK>", confidence=m,
                     signal=Signal((0.50, 0.55)))
    assert "too short" in short.reason and not short.confirmable


def test_confirmation_operating_point_round_trips_and_is_overridable() -> None:
    m = replace(MODEL, confirm_floor=0.2, confirm_threshold=0.55)
    again = ConfidenceModel.from_json(m.to_json(), "x.json")
    assert (again.confirm_floor, again.confirm_threshold) == (0.2, 0.55)
    yes = again.for_confirmation()
    assert yes.threshold == yes.threshold_for({"snr_db": 5.0}) == 0.55
    assert yes.confirm_floor is None  # a confirmation is never itself confirmed
    assert m.stricter(0.1).confirm_floor == pytest.approx(0.3)
    d = json.loads(m.to_json())
    d["confirm_threshold"] = 2
    with pytest.raises(ConfidenceError, match="confirm_threshold must be in"):
        ConfidenceModel.from_json(json.dumps(d), "x.json")
    ko = confidence_for("ko")
    assert confidence_with("ko") is ko
    tight = confidence_with("ko", ConfidenceSettings(threshold=0.95, confirm_floor=0.4))
    assert (tight.threshold, tight.confirm_floor, tight.weights) == (0.95, 0.4, ko.weights)
    assert confidence_with("ko", ConfidenceSettings(confirm=False)).confirm_floor is None
    assert not confidence_with("ko", ConfidenceSettings(confirm=False)).can_confirm(0.7)
