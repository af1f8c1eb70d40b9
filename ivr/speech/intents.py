"""Turn a Vosk result into a decision: an intent, or no-match when we are not sure.

A wrong stored answer is worse than asking again, so every hypothesis must pass all checks in
:class:`Thresholds` before it is accepted:

* the best transcript must be exactly one declared phrase (Vosk's grammar is a bigram over the
  phrase words, so it happily strings words of different answers together; fillers and the unk
  token in the best transcript mean out-of-grammar speech);
* its n-best posterior (alternatives' scores, softmax-ed and summed per interpretation) must be
  high, and its score must lead the best alternative with a *different* interpretation by a margin
  (an alternative that is not a phrase counts as a competitor too);
* the recognised words must cover the speech the endpointer heard: speech left unexplained before,
  after or between the words means the caller said more than the phrase (e.g. "불만족" decoded
  as "만족" with "불" dropped into silence).

Thresholds are data: tuned on a development split by ``bench/asr.py --tune`` and kept per language
in :data:`THRESHOLDS`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ivr.speech.grammar import normalize_phrase


@dataclass(frozen=True)
class Thresholds:
    """Acceptance rules for one language/model (all must hold)."""

    # n-best posterior of the winning interpretation (scores scaled by posterior_scale).
    min_posterior: float = 0.80
    posterior_scale: float = 1.0
    # Score lead over the best alternative that means something else. Vosk keeps alternatives
    # within its lattice beam (2.0 for the small models); a lone alternative gets `lone_margin`.
    min_margin: float = 1.0
    lone_margin: float = 2.0
    # Share of the detected speech span covered by recognised words, and the largest stretch of
    # speech (ms) left unexplained at either edge.
    min_coverage: float = 0.55
    max_edge_gap_ms: float = 350.0
    # Shortest speech that can be an answer at all (clicks, coughs).
    min_speech_ms: float = 120.0
    # Longest answer accepted, in seconds of speech per phrase word (rambling = not an answer).
    max_sec_per_word: float = 1.6
    # Second opinions (see ivr.speech.recognizer): the same grammar decoded without alternatives
    # gives per-word confidences; the grammar plus filler words must decode to the same phrase.
    # 1.0 = required, 0.0 = ignored (a check that did not run is never required).
    min_word_conf: float = 0.0
    require_conf_agree: float = 0.0
    require_garbage_agree: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


# Per-language thresholds (data, tuned by bench/asr.py on its DEV split). Unknown languages use
# DEFAULT_THRESHOLDS, which are deliberately strict.
DEFAULT_THRESHOLDS = Thresholds()
# ko: `python3 bench/asr.py --tune` on the DEV voices (ko+m3, ko+f3, ko+m1); no set reached 0.99
# precision at every noise level there, this one reached 0.95 (dev 0.98 / 0.96 / 1.00).
THRESHOLDS: dict[str, Thresholds] = {
    "ko": Thresholds(min_posterior=0.0, min_margin=0.0, min_coverage=0.7, max_edge_gap_ms=250.0,
                     max_sec_per_word=1.2, require_garbage_agree=1.0),
}


def thresholds_for(language: str) -> Thresholds:
    return THRESHOLDS.get(language, DEFAULT_THRESHOLDS)


@dataclass
class Alternative:
    text: str
    score: float
    intent: str | None  # None: not exactly a declared phrase


@dataclass
class Hypothesis:
    """The outcome of one turn. ``intent`` None means no-match: ask again."""

    intent: str | None
    confidence: float
    transcript: str
    alternatives: list[Alternative] = field(default_factory=list)
    reason: str = ""
    # The raw best guess before rejection (for logs, reports and tuning).
    best_intent: str | None = None
    features: dict[str, float] = field(default_factory=dict)

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


def _alternatives(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    alts = result.get("alternatives")
    if isinstance(alts, list):
        return [a for a in alts if isinstance(a, dict)]
    # SetMaxAlternatives(0) shape: one transcript, word confidences, no total score.
    return [{"text": result.get("text", ""), "confidence": 0.0, "result": result.get("result", [])}]


def classify(
    result: Mapping[str, Any],
    intents: Mapping[str, Sequence[str]],
    *,
    unk_token: str,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    speech_span: tuple[float, float] | None = None,
    checks: Mapping[str, Mapping[str, Any]] | None = None,
) -> Hypothesis:
    """Decide on one Vosk result (``FinalResult()`` parsed, SetWords + SetMaxAlternatives).

    ``speech_span`` is (start_s, end_s) of the speech the endpointer detected, on the same clock
    as Vosk's word times; without it the coverage checks are skipped. ``checks`` are the
    second-opinion decodes of the same audio (``"conf"``: same grammar, no alternatives;
    ``"garbage"``: grammar plus fillers), each one result with ``text`` and word ``result``.
    """
    index = phrase_index(intents)
    raw = _alternatives(result)
    alts = [
        Alternative(text=normalize_phrase(str(a.get("text", ""))),
                    score=float(a.get("confidence", 0.0)),
                    intent=index.get(normalize_phrase(str(a.get("text", "")))))
        for a in raw
    ]
    if not alts or not alts[0].text:
        return Hypothesis(None, 0.0, "", alts, reason="no words recognised")
    top = alts[0]
    words = [w for w in raw[0].get("result", []) or [] if isinstance(w, dict)]
    feats = _features(alts, words, thresholds, speech_span)
    feats.update(check_features(top.text, checks or {}))
    hyp = Hypothesis(None, feats["posterior"], top.text, alts, best_intent=top.intent,
                     features=feats)
    if unk_token in top.text.split():
        hyp.reason = "unknown word in transcript"
    elif top.intent is None:
        hyp.reason = f"transcript {top.text!r} is not one of the phrases"
    else:
        feats["n_words"] = float(len(top.text.split()))
        problem = rejection(feats, thresholds)
        if problem:
            hyp.reason = problem
        else:
            hyp.intent = top.intent
            hyp.reason = "accepted"
    return hyp


def check_features(transcript: str, checks: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """Agreement of the second-opinion decodes with ``transcript`` (and the conf pass's word
    confidences, which only count when it heard the same words)."""
    feats: dict[str, float] = {}
    for name, res in checks.items():
        text = normalize_phrase(str(res.get("text", "")))
        agree = text == normalize_phrase(transcript) and bool(text)
        feats[f"{name}_agree"] = 1.0 if agree else 0.0
        if name == "conf":
            confs = [float(w.get("conf", 0.0)) for w in res.get("result", []) or []
                     if isinstance(w, dict)]
            feats["conf_min"] = min(confs) if agree and confs else 0.0
    return feats


def check_rejection(feats: Mapping[str, float], t: Thresholds) -> str | None:
    """Why the second opinions veto an answer (None: no veto; missing checks never veto)."""
    if "conf_agree" in feats:
        if t.require_conf_agree and not feats["conf_agree"]:
            return "confidence pass heard something else"
        if feats.get("conf_min", 0.0) < t.min_word_conf:
            return f"word confidence {feats.get('conf_min', 0.0):.2f} < {t.min_word_conf}"
    if "garbage_agree" in feats and t.require_garbage_agree and not feats["garbage_agree"]:
        return "the filler-word decode heard something else"
    return None


def rejection(feats: Mapping[str, float], t: Thresholds) -> str | None:
    """Why a phrase-matching hypothesis with these features is not sure enough (None: accept)."""
    vetoed = check_rejection(feats, t)
    if vetoed:
        return vetoed
    if feats["posterior"] < t.min_posterior:
        return f"posterior {feats['posterior']:.2f} < {t.min_posterior}"
    if feats["margin"] < t.min_margin:
        return f"margin {feats['margin']:.2f} < {t.min_margin} over another meaning"
    if "coverage" not in feats:
        return None
    if feats["speech_ms"] < t.min_speech_ms:
        return f"speech too short ({feats['speech_ms']:.0f} ms)"
    if feats["coverage"] < t.min_coverage:
        return f"words cover only {feats['coverage']:.0%} of the speech"
    if feats["edge_gap_ms"] > t.max_edge_gap_ms:
        return f"{feats['edge_gap_ms']:.0f} ms of speech outside the recognised words"
    if feats["speech_ms"] / 1000 > t.max_sec_per_word * max(1.0, feats.get("n_words", 1.0)):
        return "speech much longer than the phrase"
    return None


def _features(
    alts: list[Alternative],
    words: list[dict[str, Any]],
    t: Thresholds,
    speech_span: tuple[float, float] | None,
) -> dict[str, float]:
    top = alts[0]
    # n-best posterior per interpretation; non-phrases are each their own interpretation.
    best = max(a.score for a in alts)
    weights = [math.exp(t.posterior_scale * (a.score - best)) for a in alts]
    same = sum(w for a, w in zip(alts, weights, strict=True)
               if a.intent is not None and a.intent == top.intent)
    if top.intent is None:
        same = weights[0]
    posterior = same / sum(weights)
    rivals = [a.score for a in alts[1:] if a.intent is None or a.intent != top.intent]
    margin = top.score - max(rivals) if rivals else t.lone_margin
    feats = {"posterior": posterior, "margin": margin, "n_alternatives": float(len(alts))}
    confs = [float(w["conf"]) for w in words if "conf" in w]
    if confs:
        feats["min_word_conf"] = min(confs)
    if speech_span is not None and words:
        s0, s1 = speech_span
        speech = max(s1 - s0, 1e-3)
        w0 = min(float(w["start"]) for w in words)
        w1 = max(float(w["end"]) for w in words)
        covered = sum(max(0.0, min(float(w["end"]), s1) - max(float(w["start"]), s0))
                      for w in words)
        feats["speech_ms"] = speech * 1000
        feats["coverage"] = min(1.0, covered / speech)
        feats["edge_gap_ms"] = max(0.0, w0 - s0, s1 - w1) * 1000
    return feats


def with_overrides(base: Thresholds, **changes: float) -> Thresholds:
    return replace(base, **changes)
