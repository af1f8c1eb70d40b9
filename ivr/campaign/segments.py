"""Segmentation as data: rules (category, price, RFM scores) -> segment -> voice + calling windows.

The rules compile to one SQL ``CASE`` expression so a million buyers are segmented inside SQLite;
:meth:`SegmentsConfig.segment_for` is the same logic in Python (used by tests and single contacts).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_serializer, field_validator, model_validator

from ivr.campaign.yamlcfg import Strict, load_yaml_model

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DayName = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_DAY_SETS = {"all": range(7), "weekdays": range(5), "weekends": range(5, 7)}
_HHMM = re.compile(r"([01]?[0-9]|2[0-4]):([0-5][0-9])")


def parse_hhmm(value: Any) -> int:
    """'13:30' -> 810 minutes after midnight; '24:00' is the end of the day."""
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 13:00 as the base-60 integer 780: refuse to guess.
        raise ValueError("write times as quoted strings, e.g. '13:00'")
    if not isinstance(value, str) or not _HHMM.fullmatch(value.strip()):
        raise ValueError(f"time must be 'HH:MM' (00:00-24:00), got {value!r}")
    hh, mm = (int(p) for p in value.strip().split(":"))
    minutes = hh * 60 + mm
    if minutes > 1440:
        raise ValueError(f"time {value!r} is after 24:00")
    return minutes


def format_hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


class LocalTimes(Strict):
    """A start and end time of day ("HH:MM", "24:00" allowed), stored as minutes."""

    start: int
    end: int

    @field_validator("start", "end", mode="before")
    @classmethod
    def _time(cls, v: Any) -> int:
        return parse_hhmm(v)

    @field_serializer("start", "end")
    def _text(self, v: int) -> str:
        return format_hhmm(v)


class Window(LocalTimes):
    days: list[DayName] | Literal["all", "weekdays", "weekends"] = "all"

    @model_validator(mode="after")
    def _order(self) -> Window:
        if self.start >= self.end:
            raise ValueError("start must be before end (a window cannot cross midnight; "
                             "split it into two windows)")
        return self

    def weekdays(self) -> set[int]:
        if isinstance(self.days, str):
            return set(_DAY_SETS[self.days])
        if not self.days:
            raise ValueError("days is empty")
        return {DAY_NAMES.index(d) for d in self.days}


class Segment(Strict):
    voice: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")  # voice profile name (a channel variable)
    windows: list[Window] = Field(min_length=1)
    description: str = ""


ScoreRange = tuple[int, int]


class Rule(Strict):
    """First matching rule wins. Every condition given must hold; categories match case-blind."""

    segment: str
    categories: list[str] = []  # exact category names
    category_contains: list[str] = []  # substrings of the category
    min_price: float | None = None
    max_price: float | None = None
    recency: ScoreRange | None = None  # [low, high] RFM score, 1 = oldest buyers
    frequency: ScoreRange | None = None
    monetary: ScoreRange | None = None

    @field_validator("categories", "category_contains")
    @classmethod
    def _fold(cls, v: list[str]) -> list[str]:
        if any(not s.strip() for s in v):
            raise ValueError("empty category name")
        return [s.strip().lower() for s in v]


class SegmentsConfig(Strict):
    rfm_quantiles: int = Field(default=5, ge=2, le=10)
    default_segment: str
    segments: dict[str, Segment] = Field(min_length=1)
    rules: list[Rule] = []

    @model_validator(mode="after")
    def _refs(self) -> SegmentsConfig:
        if self.default_segment not in self.segments:
            raise ValueError(f"default_segment {self.default_segment!r} is not defined under "
                             f"segments ({', '.join(sorted(self.segments))})")
        for i, rule in enumerate(self.rules):
            if rule.segment not in self.segments:
                raise ValueError(f"rules[{i}].segment {rule.segment!r} is not defined under "
                                 f"segments")
            for name in ("recency", "frequency", "monetary"):
                rng = getattr(rule, name)
                if rng and not (1 <= rng[0] <= rng[1] <= self.rfm_quantiles):
                    raise ValueError(f"rules[{i}].{name} must be [low, high] within "
                                     f"1..{self.rfm_quantiles}")
        for name, seg in self.segments.items():
            for w in seg.windows:
                try:
                    w.weekdays()
                except ValueError as exc:
                    raise ValueError(f"segments.{name}.windows: {exc}") from exc
        return self

    def segment_for(self, category: str, price: float, r: int, f: int, m: int) -> str:
        cat = (category or "").lower()
        for rule in self.rules:
            if _matches(rule, cat, price, {"recency": r, "frequency": f, "monetary": m}):
                return rule.segment
        return self.default_segment

    def sql_case(self, category: str, price: str, r: str, f: str, m: str) -> tuple[str, list[Any]]:
        """The rules as ``CASE ... END`` over the given SQL column expressions, with parameters."""
        params: list[Any] = []
        whens = []
        scores = {"recency": r, "frequency": f, "monetary": m}
        for rule in self.rules:
            conds = []
            if rule.categories:
                conds.append(f"lower({category}) IN ({','.join('?' * len(rule.categories))})")
                params.extend(rule.categories)
            if rule.category_contains:
                conds.append("(" + " OR ".join(f"instr(lower({category}), ?) > 0"
                                               for _ in rule.category_contains) + ")")
                params.extend(rule.category_contains)
            if rule.min_price is not None:
                conds.append(f"{price} >= ?")
                params.append(rule.min_price)
            if rule.max_price is not None:
                conds.append(f"{price} <= ?")
                params.append(rule.max_price)
            for name, col in scores.items():
                rng = getattr(rule, name)
                if rng:
                    conds.append(f"{col} BETWEEN ? AND ?")
                    params.extend(rng)
            whens.append(f"WHEN {' AND '.join(conds) or '1'} THEN ?")
            params.append(rule.segment)
        params.append(self.default_segment)
        if not whens:
            return "?", params
        return f"CASE {' '.join(whens)} ELSE ? END", params


def _matches(rule: Rule, cat: str, price: float, scores: dict[str, int]) -> bool:
    if rule.categories and cat not in rule.categories:
        return False
    if rule.category_contains and not any(s in cat for s in rule.category_contains):
        return False
    if rule.min_price is not None and not price >= rule.min_price:
        return False
    if rule.max_price is not None and not price <= rule.max_price:
        return False
    for name, value in scores.items():
        rng = getattr(rule, name)
        if rng and not rng[0] <= value <= rng[1]:
            return False
    return True


def load_segments(path: str | Path) -> SegmentsConfig:
    return load_yaml_model(SegmentsConfig, path)
