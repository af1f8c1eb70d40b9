"""Outbox rules (``config/outbox.yaml``): blocked words, length limits, retries, message templates.

Operator-edited, so every error names the file, the line and the field.
"""

from __future__ import annotations

import os
import string
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ivr.config import PROJECT_ROOT

DEFAULT_PATH = PROJECT_ROOT / "config" / "outbox.yaml"
CONFIG_ENV = "IVR_OUTBOX_CONFIG"
# Fields a message template may use (filled from the call, its order and the campaign).
TEMPLATE_FIELDS = frozenset({"product", "price", "merchant", "host", "platform", "order_id",
                             "buyer_name", "h5_url", "remedy", "remedy_text"})


class OutboxConfigError(ValueError):
    """config/outbox.yaml is missing or invalid; the message lists file:line: field: problem."""


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


def default_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_PATH)


def load_outbox_config(path: str | Path | None = None) -> OutboxConfig:
    """Load and validate the outbox rules; defaults when the default file does not exist."""
    file = Path(path) if path else default_path()
    if not file.exists():
        if path:
            raise OutboxConfigError(f"{file}: file not found")
        return OutboxConfig()
    try:
        text = file.read_text(encoding="utf-8")
        data = yaml.safe_load(text) or {}
        lines = _key_lines(yaml.compose(text, Loader=yaml.SafeLoader))
    except (OSError, UnicodeDecodeError) as exc:
        raise OutboxConfigError(f"{file}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark is not None else str(file)
        raise OutboxConfigError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise OutboxConfigError(f"{file}:1: the top level must be a mapping")
    try:
        return OutboxConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            line = _nearest_line(lines, loc)
            field = ".".join(str(p) for p in loc) or "(top level)"
            problems.append(f"{file}:{line}: {field}: {err['msg']}")
        raise OutboxConfigError("\n".join(problems)) from exc


def _key_lines(node: Any, loc: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    lines: dict[tuple[Any, ...], int] = {}
    if node is None:
        return lines
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            lines.update(_key_lines(value, loc + (key.value,)))
            lines[loc + (key.value,)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.update(_key_lines(item, loc + (i,)))
    return lines


def _nearest_line(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int:
    while loc and loc not in lines:
        loc = loc[:-1]
    return lines.get(loc, 1)
