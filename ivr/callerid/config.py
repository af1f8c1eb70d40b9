"""The caller-ID pool file (``config/numbers.yaml``): numbers, pools and the health policy.

Validated with pydantic; every error names file, line and field. Provinces default to what
``phonenumbers`` geocodes for the number itself, so local presence needs no hand-written table.
"""

from __future__ import annotations

from datetime import tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ivr.config import load_settings
from ivr.phone import InvalidNumber, number_info, parse_e164
from ivr.yamlfile import load_model, repeated


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HealthPolicy(_Strict):
    """Thresholds of the health check. Rates are fractions (0.3 = 30 %)."""

    # Sliding windows, in minutes, each judged on its own; the worst window decides.
    # A short one catches a number blocked this morning, a long one a slow decline.
    windows_minutes: list[int] = Field(default_factory=lambda: [60, 1440], min_length=1)
    # Minimum sample sizes: below them a criterion is not judged (one bad call never flags).
    min_calls: int = Field(default=20, ge=1)  # counted attempts for answer / rejection rates
    min_answered: int = Field(default=10, ge=1)  # answered calls for the short-call rate
    min_rejections: int = Field(default=3, ge=1)  # explicit rejections before they can flag
    # Answer rate below this fraction of the pool's median answer rate is a breach.
    answer_ratio_min: float = Field(default=0.5, gt=0, le=1)
    # Absolute floor of the answer rate (0 disables it).
    answer_rate_min: float = Field(default=0.0, ge=0, le=1)
    # Answered calls hung up within short_call_s seconds are "short calls".
    short_call_s: float = Field(default=5.0, gt=0)
    short_call_rate_max: float = Field(default=0.4, gt=0, le=1)
    # Explicit rejections: SIP final responses and Q.850 causes that mean "the network refused".
    reject_sip_codes: list[int] = [603, 607, 608]
    reject_q850_causes: list[int] = [21]
    rejection_rate_max: float = Field(default=0.15, gt=0, le=1)
    # Outcomes counted as calls for the answer rate; failed / congestion are our trunk's trouble.
    counted_outcomes: list[str] = ["answered", "busy", "no_answer", "rejected"]
    # Score = 100 - penalties; each penalty grows to its weight as its metric reaches the limit.
    weight_answer: float = Field(default=50, ge=0)
    weight_short: float = Field(default=50, ge=0)
    weight_rejections: float = Field(default=60, ge=0)
    flag_below_score: float = Field(default=50, ge=0, le=100)
    # Out-of-rotation period after a flag; re-admission also needs a clean re-check.
    cooldown_minutes: int = Field(default=1440, ge=0)
    # How often the dialer's HealthMonitor re-checks during a campaign.
    check_interval_s: float = Field(default=60, gt=0)

    @field_validator("windows_minutes")
    @classmethod
    def _windows(cls, v: list[int]) -> list[int]:
        if any(w <= 0 for w in v):
            raise ValueError("every window must be a positive number of minutes")
        return sorted(set(v))

    @field_validator("counted_outcomes")
    @classmethod
    def _outcomes(cls, v: list[str]) -> list[str]:
        from ivr.dialer.types import OUTCOMES

        bad = [o for o in v if o not in OUTCOMES]
        if bad or "answered" not in v:
            raise ValueError(f"must include 'answered' and only known outcomes {list(OUTCOMES)}"
                             f"{'; unknown: ' + str(bad) if bad else ''}")
        return v


class RotationPolicy(_Strict):
    # A callee whose sticky number is at its daily cap waits ("wait") or gets another ("reassign").
    sticky_over_cap: str = Field(default="wait", pattern="^(wait|reassign)$")


class NumberConfig(_Strict):
    number: str
    trunk: str = "carrier"
    pool: str = "default"
    region: str = ""  # province for local presence; "" = what phonenumbers geocodes
    city: str = ""
    daily_cap: int = Field(default=500, ge=1)
    verified: bool = False  # authenticated / registered with the carrier (e.g. STIR or 号码认证)
    retired: bool = False
    note: str = ""

    @field_validator("number", mode="before")
    @classmethod
    def _number(cls, v: Any) -> str:
        if isinstance(v, int):
            raise ValueError(f"write E.164 numbers in quotes (\"+{v}\"): unquoted, YAML drops '+'")
        try:
            return parse_e164(v)
        except InvalidNumber as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("trunk", "pool")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v or not all(c.isalnum() or c in "_-" for c in v):
            raise ValueError("may hold only letters, digits, '_' and '-'")
        return v

    @model_validator(mode="after")
    def _geo(self) -> NumberConfig:
        if not self.region or not self.city:
            info = number_info(self.number)
            object.__setattr__(self, "region", self.region or info.region)
            object.__setattr__(self, "city", self.city or info.city)
        return self


class PoolConfig(_Strict):
    # Day boundary for daily caps and "used today".
    timezone: str = "Asia/Shanghai"
    default_pool: str = "default"
    health: HealthPolicy = Field(default_factory=HealthPolicy)
    rotation: RotationPolicy = Field(default_factory=RotationPolicy)
    numbers: list[NumberConfig] = []
    source: str = ""  # file it was loaded from (set by load_pool)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @model_validator(mode="after")
    def _unique(self) -> PoolConfig:
        seen: set[str] = set()
        for n in self.numbers:
            if n.number in seen:
                raise ValueError(f"number {n.number} is listed twice")
            seen.add(n.number)
        return self

    @property
    def tz(self) -> tzinfo:
        return ZoneInfo(self.timezone)

    @property
    def pools(self) -> list[str]:
        return sorted({n.pool for n in self.numbers} | {self.default_pool})

    def get(self, number: str) -> NumberConfig | None:
        return next((n for n in self.numbers if n.number == number), None)

    def in_pool(self, pool_name: str) -> list[NumberConfig]:
        return [n for n in self.numbers if n.pool == pool_name]


def load_pool(path: str | Path | None = None) -> PoolConfig:
    """Load and validate the pool file (default: the settings' ``numbers``); raises
    YamlConfigError listing file:line: field: problem."""
    file = Path(path) if path else load_settings().numbers
    return load_model(PoolConfig, file, extra={"source": str(file)}, check=lambda doc: repeated(
        doc, "numbers", "number", lambda n, first: f"{n} is already listed at numbers[{first}]"))
