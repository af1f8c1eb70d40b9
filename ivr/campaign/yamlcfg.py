"""Operator-edited YAML validated by pydantic, with errors that name file, line and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from ivr.config import ConfigError

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]


class CampaignConfigError(ConfigError):
    """A segments/policy file (or a campaign's stored policy) is invalid; nothing is dialed."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _key_lines(node: yaml.Node, loc: Loc, out: dict[Loc, int]) -> None:
    """Remember the line of every key and list item so a pydantic location maps to a line."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*loc, str(key.value))
            out[sub] = key.start_mark.line + 1
            _key_lines(value, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            sub = (*loc, i)
            out[sub] = item.start_mark.line + 1
            _key_lines(item, sub, out)


def _line_for(loc: Loc, lines: dict[Loc, int]) -> int | None:
    for n in range(len(loc), 0, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def format_errors(exc: ValidationError, source: str, lines: dict[Loc, int] | None = None) -> str:
    parts = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        field = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_for(loc, lines or {})
        where = f"{source}:{line}" if line else source
        parts.append(f"{where}: {field}: {err['msg']}")
    return "\n".join(parts)


def load_yaml_model(model: type[M], path: str | Path) -> M:
    """Parse ``path`` and validate it as ``model``; :class:`CampaignConfigError` on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CampaignConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise CampaignConfigError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise CampaignConfigError(f"{path}:1: the top level must be a mapping")
    lines: dict[Loc, int] = {}
    if node is not None:
        _key_lines(node, (), lines)
    return validate_model(model, data, str(path), lines)


def validate_model(model: type[M], data: Any, source: str,
                   lines: dict[Loc, int] | None = None) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise CampaignConfigError(format_errors(exc, source, lines)) from exc
