"""Turn a Vosk result into a decision: an intent, or no-match when we are not sure.

Vosk's grammar mode is a word bigram estimated from the phrase list (with a fixed 0.5 backoff),
so its best path often strings words of different answers together ("연락 바꿔 하지 마세요").
The decision therefore reads the whole n-best list: the chosen hypothesis is the best
alternative that is *exactly* one declared phrase (on the Korean model this alone took the raw
answer accuracy on clean espeak telephone audio from 61% to 89%, bench/asr.py TEST voices).

A wrong stored answer is worse than asking again, so the chosen phrase must then convince the
language's :class:`~ivr.speech.confidence.ConfidenceModel`: its features say how far the phrase is
behind the best path, how far ahead of the best phrase that means something else, its n-best
posterior, the line's SNR, and whether the phrase's words explain the speech the endpointer heard
(a caller who said more than the phrase, or something else, leaves speech unexplained).
No words, only the unknown-word token, or no phrase in the n-best are no-matches outright.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ivr.speech.confidence import ConfidenceModel, confidence_for
from ivr.speech.grammar import normalize_phrase

# Score gaps are capped: beyond the lattice beam they are "far", whatever their value.
SCORE_CAP = 8.0


@dataclass
class Alternative:
    text: str
    score: float
    intent: str | None  # None: not exactly a declared phrase


@dataclass
class Signal:
    """What the endpointer measured about the turn's audio (on Vosk's clock)."""

    speech_span: tuple[float, float] | None = None  # (start_s, end_s) of the detected speech
    snr_db: float | None = None  # speech level over the line's noise floor


@dataclass
class Hypothesis:
    """The outcome of one turn. ``intent`` None means no-match: ask again."""

    intent: str | None
    confidence: float
    transcript: str
    alternatives: list[Alternative] = field(default_factory=list)
    reason: str = ""
    # The best phrase's intent before rejection (for logs, reports and tuning).
    best_intent: str | None = None
    features: dict[str, float] = field(default_factory=dict)
    # Unsure but plausible: a yes/no confirmation of best_intent may settle it.
    confirmable: bool = False

    @property
    def accepted(self) -> bool:
        return self.intent is not None


def phrase_index(intents: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """normalized phrase -> intent."""
    return {normalize_phrase(p): intent for intent, ps in intents.items() for p in ps}


def dtmf_intent(digit: str, dtmf_map: Mapping[str, str]) -> str | None:
    """The intent a keypad digit stands for in this question, None if the digit means nothing."""
    digit = digit.strip()
    return dtmf_map.get(digit) if len(digit) == 1 and digit in "0123456789*#" else None


def _raw_alternatives(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    alts = result.get("alternatives")
    if isinstance(alts, list):
        return [a for a in alts if isinstance(a, dict)]
    # SetMaxAlternatives(0) shape: one transcript, word confidences, no total score.
    return [{"text": result.get("text", ""), "confidence": 0.0, "result": result.get("result", [])}]


def syllables(phrase: str) -> int:
    """Spoken units of a phrase: one per Hangul/CJK character, one per other word."""
    n = 0
    for word in phrase.split():
        cjk = sum(1 for ch in word if _is_cjk(ch))
        n += cjk if cjk else 1
    return max(1, n)


def _is_cjk(ch: str) -> bool:
    name = unicodedata.name(ch, "")
    return name.startswith(("HANGUL SYLLABLE", "CJK UNIFIED IDEOGRAPH"))


def classify(
    result: Mapping[str, Any],
    intents: Mapping[str, Sequence[str]],
    *,
    unk_token: str,
    confidence: ConfidenceModel | None = None,
    signal: Signal | None = None,
    language: str = "ko",
) -> Hypothesis:
    """Decide on one Vosk result (``FinalResult()`` parsed, SetWords + SetMaxAlternatives)."""
    model = confidence or confidence_for(language)
    index = phrase_index(intents)
    raw = _raw_alternatives(result)
    alts = [Alternative(text=normalize_phrase(str(a.get("text", ""))),
                        score=float(a.get("confidence", 0.0)),
                        intent=index.get(normalize_phrase(str(a.get("text", "")))))
            for a in raw]
    if not alts or not alts[0].text:
        return Hypothesis(None, 0.0, "", alts, reason="no words recognised")
    top = alts[0]
    chosen = next((k for k, a in enumerate(alts) if a.intent is not None), None)
    if chosen is None:
        why = ("only the unknown-word token" if set(top.text.split()) == {unk_token}
               else f"no phrase among the {len(alts)} alternatives (best {top.text!r})")
        return Hypothesis(None, 0.0, top.text, alts, reason=why)
    pick = alts[chosen]
    words = [w for w in raw[chosen].get("result", []) or [] if isinstance(w, dict)]
    feats = features(alts, chosen, words, signal or Signal())
    hyp = Hypothesis(None, 0.0, pick.text, alts, best_intent=pick.intent, features=feats)
    if "speech_ms" in feats and feats["speech_ms"] < model.min_speech_ms:
        hyp.reason = f"speech too short ({feats['speech_ms']:.0f} ms)"
        return hyp
    hyp.confidence = model.probability(feats)
    threshold = model.threshold_for(feats)
    if hyp.confidence >= threshold:
        hyp.intent, hyp.reason = pick.intent, "accepted"
    else:
        hyp.reason = f"confidence {hyp.confidence:.2f} < {threshold:.2f}"
        hyp.confirmable = model.can_confirm(hyp.confidence)
    return hyp


def features(alts: Sequence[Alternative], chosen: int, words: Sequence[Mapping[str, Any]],
             signal: Signal) -> dict[str, float]:
    """The numbers a confidence model reads (see ivr.speech.confidence.FEATURES)."""
    pick = alts[chosen]
    best = alts[0].score
    # n-best posterior per interpretation; non-phrases are each their own interpretation.
    weights = [math.exp(a.score - best) for a in alts]
    same = sum(w for a, w in zip(alts, weights, strict=True) if a.intent == pick.intent)
    rivals = [a.score for a in alts if a.intent is not None and a.intent != pick.intent]
    feats = {
        "behind_best": min(SCORE_CAP, best - pick.score),
        "margin": min(SCORE_CAP, pick.score - max(rivals)) if rivals else SCORE_CAP,
        "posterior": same / sum(weights),
        "top_is_phrase": 1.0 if chosen == 0 else 0.0,
        "n_words": float(len(pick.text.split())),
        "n_alternatives": float(len(alts)),
    }
    if signal.snr_db is not None:
        feats["snr_db"] = max(0.0, min(60.0, signal.snr_db))
    if signal.speech_span is not None:
        s0, s1 = signal.speech_span
        speech = max(s1 - s0, 1e-3)
        feats["speech_ms"] = speech * 1000
        feats["sec_per_unit"] = speech / syllables(pick.text)
        if words:
            w0 = min(float(w["start"]) for w in words)
            w1 = max(float(w["end"]) for w in words)
            covered = sum(max(0.0, min(float(w["end"]), s1) - max(float(w["start"]), s0))
                          for w in words)
            feats["coverage"] = min(1.0, covered / speech)
            feats["edge_gap_ms"] = max(0.0, w0 - s0, s1 - w1) * 1000
    return feats
