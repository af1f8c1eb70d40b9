"""Operator-edited YAML with line numbers, so every error names file, line and field.

PyYAML's ``safe_load`` drops positions; composing the node tree once more gives the line of every
key and list item, and :func:`format_errors` maps pydantic's error locations back to those lines.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

Loc = tuple[str | int, ...]


class YamlConfigError(ValueError):
    """An operator file is missing or invalid; ``str()`` lists every problem as file:line: field."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = str(path)
        self.problems = problems
        super().__init__("\n".join(problems))


def load_yaml(path: Path | str) -> tuple[Any, dict[Loc, int]]:
    """Parse ``path``; return the data and a map from key path to 1-based line number."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise YamlConfigError(file, [f"{file}: file not found"]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise YamlConfigError(file, [f"{file}: cannot read: {exc}"]) from exc
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark is not None else str(file)
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlConfigError(file, [f"{where}: not valid YAML: {problem}"]) from exc
    lines: dict[Loc, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return data, lines


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[loc + (key,)] = key_node.start_mark.line + 1
            _walk(value_node, loc + (key,), lines)
            # keep the key's line (the value may start on the next line)
            lines[loc + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, loc + (i,), lines)


def line_of(lines: dict[Loc, int], loc: Iterable[str | int]) -> int | None:
    """Line of the deepest known prefix of ``loc``."""
    parts = tuple(loc)
    for n in range(len(parts), -1, -1):
        if parts[:n] in lines:
            return lines[parts[:n]]
    return None


def dotted(loc: Iterable[str | int]) -> str:
    """('numbers', 3, 'daily_cap') -> 'numbers[3].daily_cap'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def problem(path: Path | str, lines: dict[Loc, int], loc: Loc, msg: str) -> str:
    line = line_of(lines, loc)
    where = f"{path}:{line}" if line else str(path)
    return f"{where}: {dotted(loc)}: {msg}"


def format_errors(path: Path | str, lines: dict[Loc, int], exc: ValidationError,
                  base: Loc = ()) -> list[str]:
    """One 'file:line: field: message' string per pydantic error."""
    out = []
    for err in exc.errors():
        # pydantic puts the validator kind in the location of union/tagged errors; drop those
        loc = base + tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        msg = err["msg"].removeprefix("Value error, ")
        out.append(problem(path, lines, loc, msg))
    return out
