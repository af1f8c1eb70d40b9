"""Outbox rules (``config/outbox.yaml``): blocked words, length limits, retries, message templates.

Operator-edited, so every error names the file, the line and the field.
"""

from __future__ import annotations

import string
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ivr.config import Settings, load_settings
from ivr.errors import ConfigError
from ivr.yamlfile import load_model

# Fields a message template may use (filled from the call, its order and the campaign).
TEMPLATE_FIELDS = frozenset({"product", "price", "merchant", "host", "platform", "order_id",
                             "buyer_name", "h5_url", "remedy", "remedy_text"})


class OutboxConfigError(ConfigError, ValueError):
    """The outbox rules file is missing or invalid; the message lists file:line: field: problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RetryPolicy(_Strict):
    max_tries: int = Field(default=5, ge=1, le=100)
    backoff_s: float = Field(default=60.0, gt=0)  # wait after the first failure
    factor: float = Field(default=2.0, ge=1)  # each further failure waits this much longer
    max_backoff_s: float = Field(default=3600.0, gt=0)

    def delay_s(self, tries: int) -> float:
        """Wait before try ``tries + 1`` after ``tries`` failed tries."""
        return float(min(self.max_backoff_s, self.backoff_s * self.factor ** max(0, tries - 1)))


class OutboxConfig(_Strict):
    # Substrings carriers' filters block (case-insensitive); a hit blocks the message.
    blocked_words: list[str] = []
    # A message longer than this many SMS parts is refused (each part is billed).
    max_segments: int = Field(default=3, ge=1, le=20)
    # Carrier-registered signature such as 【示例平台】;
    # when set, a message must start or end with it.
    signature: str | None = None
    retry: RetryPolicy = RetryPolicy()
    # A message left 'sending' longer than this (a crash mid-send) is recovered on the next run.
    sending_lease_s: float = Field(default=300.0, gt=0)
    # kind -> text with {field} placeholders (see TEMPLATE_FIELDS).
    templates: dict[str, str] = {}
    # Contacts skipped with a skip_reason starting with one of these get the 'h5' message instead.
    h5_skip_reasons: list[str] = []
    h5_url: str | None = None

    @field_validator("blocked_words")
    @classmethod
    def _words(cls, v: list[str]) -> list[str]:
        if any(not w.strip() for w in v):
            raise ValueError("blocked words must not be empty")
        return v

    @field_validator("templates")
    @classmethod
    def _templates(cls, v: dict[str, str]) -> dict[str, str]:
        for kind, text in v.items():
            try:
                names = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
            except ValueError as exc:
                raise ValueError(f"template {kind!r}: {exc}") from exc
            unknown = sorted(n for n in names if n not in TEMPLATE_FIELDS)
            if unknown:
                raise ValueError(f"template {kind!r} uses unknown field(s) {unknown}; "
                                 f"known: {sorted(TEMPLATE_FIELDS)}")
        return v


def load_outbox_config(path: str | Path | None = None, *,
                       settings: Settings | None = None) -> OutboxConfig:
    """Load and validate the outbox rules of ``path``, else of the settings' ``outbox`` (the
    built-in defaults when that file does not exist)."""
    if path:
        return load_model(OutboxConfig, path, error=OutboxConfigError)
    file = (settings or load_settings()).outbox
    return load_model(OutboxConfig, file, error=OutboxConfigError) if file.exists() \
        else OutboxConfig()
