"""How sure is a recognition? A small logistic model over decoder and signal features.

Raw grammar decoding on telephone audio is often wrong, and a wrong stored answer is worse than
asking again. Each hypothesis is described by a few numbers (:data:`FEATURES`, computed by
:func:`ivr.speech.intents.classify`): how far the chosen phrase is behind the decoder's best path
and ahead of the best phrase that means something else, its n-best posterior, the line's SNR, how
long the speech was for the phrase, and how much of it the phrase's words explain. A logistic
model turns them into the probability that the answer is right; below the model's threshold the
turn is a no-match (ask again, then keys).

Models are data: one JSON file per language in ``ivr/speech/data/`` (fitted by
``python3 bench/asr.py --tune`` on the DEV voices of its test set, never the TEST voices). A
language without its own file uses the Korean one with a stricter threshold
(:data:`UNTUNED_MARGIN`): the features are model-agnostic scores, but the fit is not checked there.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ivr.config import ConfidenceSettings

DATA_DIR = Path(__file__).resolve().parent / "data"
FALLBACK_LANGUAGE = "ko"
UNTUNED_MARGIN = 0.05  # added to the fallback model's threshold for a language it was not fit on

# What classify() computes, in this order; models may use any subset.
FEATURES: tuple[str, ...] = (
    "behind_best",  # score gap from the decoder's best path to the chosen phrase (0: it is best)
    "margin",  # score lead over the best phrase of another intent (capped)
    "posterior",  # n-best posterior of the chosen intent
    "top_is_phrase",  # 1 when the decoder's best path is exactly the chosen phrase
    "n_words",  # words in the chosen phrase
    "snr_db",  # speech level over the line's noise floor before the answer
    "sec_per_unit",  # seconds of detected speech per syllable of the phrase
    "coverage",  # share of the detected speech covered by the phrase's words
    "edge_gap_ms",  # speech left unexplained before or after the phrase's words
)


class ConfidenceError(ValueError):
    """A confidence model file is unreadable or inconsistent; the message names the file."""


@dataclass(frozen=True)
class ConfidenceModel:
    """p(right) = sigmoid(bias + sum(weight * (feature - mean) / scale)); accept at >= threshold
    (:meth:`threshold_for`)."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    threshold: float
    # A noisy line (SNR below noisy_snr_db) needs noisy_threshold: there the decoder is most
    # often confidently wrong (measured: DEV answers at 10 dB SNR).
    noisy_threshold: float | None = None
    noisy_snr_db: float = 15.0
    # Hard floor independent of the fit: clicks and coughs are never answers.
    min_speech_ms: float = 120.0
    # Unsure answers at or above confirm_floor may be confirmed by a yes/no turn ("X, right?")
    # whose "yes" needs confirm_threshold (its own operating point: a two-word grammar, and only
    # a false yes does harm). None: no confirmation.
    confirm_floor: float | None = None
    confirm_threshold: float | None = None
    source: str = ""
    notes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.features)
        where = self.source or "confidence model"
        if not n or any(len(v) != n for v in (self.weights, self.mean, self.scale)):
            raise ConfidenceError(f"{where}: features, weights, mean and scale must have the same "
                                  f"non-zero length")
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown:
            raise ConfidenceError(f"{where}: unknown features {unknown} (known: {list(FEATURES)})")
        if any(s <= 0 for s in self.scale):
            raise ConfidenceError(f"{where}: every scale must be > 0")
        for name, t in (("threshold", self.threshold), ("noisy_threshold", self.noisy_threshold),
                        ("confirm_floor", self.confirm_floor),
                        ("confirm_threshold", self.confirm_threshold)):
            if t is not None and not 0.0 <= t <= 1.0:
                raise ConfidenceError(f"{where}: {name} must be in [0, 1], got {t}")

    def probability(self, feats: Mapping[str, float]) -> float:
        """p(right); a feature the hypothesis lacks counts as the training mean (no evidence)."""
        z = self.bias
        for name, w, m, s in zip(self.features, self.weights, self.mean, self.scale, strict=True):
            z += w * (float(feats.get(name, m)) - m) / s
        return _sigmoid(z)

    def threshold_for(self, feats: Mapping[str, float]) -> float:
        """The acceptance threshold for a hypothesis (stricter on a noisy line)."""
        snr = feats.get("snr_db")
        if self.noisy_threshold is not None and snr is not None and snr < self.noisy_snr_db:
            return max(self.threshold, self.noisy_threshold)
        return self.threshold

    def with_threshold(self, threshold: float,
                       noisy_threshold: float | None = None) -> ConfidenceModel:
        return replace(self, threshold=threshold, noisy_threshold=noisy_threshold)

    def can_confirm(self, probability: float) -> bool:
        """True when an unsure answer this likely is worth a yes/no confirmation."""
        return (self.confirm_floor is not None and self.confirm_threshold is not None
                and probability >= self.confirm_floor)

    def for_confirmation(self) -> ConfidenceModel:
        """The model a confirmation turn's yes/no is decided with."""
        t = self.confirm_threshold if self.confirm_threshold is not None else self.threshold
        return replace(self, threshold=t, noisy_threshold=t, confirm_floor=None)

    def stricter(self, by: float) -> ConfidenceModel:
        def up(t: float | None) -> float | None:
            return None if t is None else min(1.0, t + by)
        return replace(self, threshold=min(1.0, self.threshold + by),
                       noisy_threshold=up(self.noisy_threshold),
                       confirm_floor=up(self.confirm_floor),
                       confirm_threshold=up(self.confirm_threshold))

    def to_json(self) -> str:
        d = asdict(self)
        d.pop("source")
        return json.dumps(d, ensure_ascii=False, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "") -> ConfidenceModel:
        try:
            d = json.loads(text)
            return cls(features=tuple(d["features"]), weights=tuple(map(float, d["weights"])),
                       bias=float(d["bias"]), mean=tuple(map(float, d["mean"])),
                       scale=tuple(map(float, d["scale"])), threshold=float(d["threshold"]),
                       noisy_threshold=(None if d.get("noisy_threshold") is None
                                        else float(d["noisy_threshold"])),
                       noisy_snr_db=float(d.get("noisy_snr_db", 15.0)),
                       min_speech_ms=float(d.get("min_speech_ms", 120.0)),
                       confirm_floor=_opt_float(d.get("confirm_floor")),
                       confirm_threshold=_opt_float(d.get("confirm_threshold")), source=source,
                       notes=dict(d.get("notes", {})))
        except (ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, ConfidenceError):
                raise
            raise ConfidenceError(f"{source or 'confidence model'}: not a confidence model "
                                  f"({type(exc).__name__}: {exc})") from exc


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def model_path(language: str) -> Path:
    return DATA_DIR / f"confidence.{language}.json"


_cache: dict[str, ConfidenceModel] = {}


def confidence_for(language: str) -> ConfidenceModel:
    """The language's model (cached); the Korean one, stricter, when the language has none."""
    cached = _cache.get(language)
    if cached is not None:
        return cached
    path = model_path(language)
    if path.is_file():
        model = ConfidenceModel.from_json(path.read_text(encoding="utf-8"), str(path))
    else:
        model = confidence_for(FALLBACK_LANGUAGE).stricter(UNTUNED_MARGIN)
    _cache[language] = model
    return model


def confidence_with(language: str,
                    overrides: ConfidenceSettings | None = None) -> ConfidenceModel:
    """The language's model with an operator's overrides (ivr.config.ConfidenceSettings)."""
    model = confidence_for(language)
    if overrides is None:
        return model
    changes: dict[str, float | None] = {
        k: v for k in ("threshold", "noisy_threshold", "confirm_floor", "confirm_threshold")
        if (v := getattr(overrides, k)) is not None}
    if not overrides.confirm:
        changes["confirm_floor"] = None
    return replace(model, **changes) if changes else model  # type: ignore[arg-type]


def fit(rows: Sequence[Mapping[str, float]], labels: Sequence[int], *,
        features: Sequence[str] = FEATURES, l2: float = 1.0, iterations: int = 50,
        threshold: float = 0.5) -> ConfidenceModel:
    """L2-regularised logistic regression by Newton's method (pure Python: a handful of
    features and a few thousand rows). Features are standardised first."""
    if len(rows) != len(labels) or not rows:
        raise ValueError("fit needs as many labels as rows, and at least one row")
    k = len(features)
    mean = [sum(float(r[f]) for r in rows) / len(rows) for f in features]
    scale = [max(1e-6, math.sqrt(sum((float(r[f]) - m) ** 2 for r in rows) / len(rows)))
             for f, m in zip(features, mean, strict=True)]
    xs = [[1.0] + [(float(r[f]) - m) / s for f, m, s in zip(features, mean, scale, strict=True)]
          for r in rows]
    w = [0.0] * (k + 1)
    for _ in range(iterations):
        grad = [0.0] * (k + 1)
        hess = [[0.0] * (k + 1) for _ in range(k + 1)]
        for x, y in zip(xs, labels, strict=True):
            p = _sigmoid(sum(a * b for a, b in zip(w, x, strict=True)))
            g = p - y
            h = p * (1 - p)
            for i in range(k + 1):
                grad[i] += g * x[i]
                hi = h * x[i]
                row = hess[i]
                for j in range(k + 1):
                    row[j] += hi * x[j]
        for i in range(1, k + 1):  # no penalty on the bias
            grad[i] += l2 * w[i]
            hess[i][i] += l2
        step = _solve(hess, grad)
        w = [a - b for a, b in zip(w, step, strict=True)]
        if max(abs(s) for s in step) < 1e-7:
            break
    return ConfidenceModel(tuple(features), tuple(w[1:]), w[0], tuple(mean), tuple(scale),
                           threshold)


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Solve a x = b (Gaussian elimination with partial pivoting; a is small and SPD)."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[p] = m[p], m[c]
        if abs(m[c][c]) < 1e-12:
            continue
        for r in range(c + 1, n):
            f = m[r][c] / m[c][c]
            for j in range(c, n + 1):
                m[r][j] -= f * m[c][j]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        s = m[r][n] - sum(m[r][j] * x[j] for j in range(r + 1, n))
        x[r] = s / m[r][r] if abs(m[r][r]) >= 1e-12 else 0.0
    return x
