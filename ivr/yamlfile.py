"""The one loader of operator files: ``ivr.yaml``, segments, policy, numbers, regions, outbox,
voices and survey scripts all go through :func:`parse`, so they follow the same rules.

* UTF-8 only: other bytes are reported with their line and byte offset.
* YAML 1.2 booleans: only ``true``/``false`` (any case). ``yes``/``no``/``on``/``off`` stay text,
  so an intent called ``no`` or the country code ``NO`` keeps its name (a pydantic ``bool`` field
  still reads ``yes`` as true).
* A key written twice in one mapping is an error (PyYAML silently keeps the last one).
* Aliases may add at most :data:`MAX_ALIAS_NODES` nodes when the document is expanded, and none
  may contain itself: a few hundred bytes of nested aliases otherwise grow to gigabytes once
  walked or validated.
* Every problem is one line ``file:line: key: problem``; lines come from the YAML node marks and
  pydantic's error locations are mapped back to the line of their key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from ivr.errors import ConfigError

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)

# Far more than any operator file's aliases add (most use none), far less than an alias bomb's
# billions: expanding stays in milliseconds and megabytes.
MAX_ALIAS_NODES = 10_000
_MERGE = "tag:yaml.org,2002:merge"


class YamlConfigError(ConfigError, ValueError):
    """An operator file is missing or invalid; ``str()`` lists every problem as file:line: field."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 booleans."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _first in "tTfF":
    _Loader.yaml_implicit_resolvers.setdefault(_first, []).insert(0, (
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")))


def dotted(loc: Iterable[str | int]) -> str:
    """('numbers', 3, 'daily_cap') -> 'numbers[3].daily_cap'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


@dataclass(frozen=True)
class YamlDoc:
    """A parsed operator file: its data, the line of every key and item, and repeated keys."""

    path: str
    data: Any
    lines: Mapping[Loc, int]
    duplicates: tuple[Loc, ...] = ()  # where a key is written again (the later one)

    def line(self, loc: Iterable[str | int]) -> int | None:
        """Line of the deepest known prefix of ``loc``."""
        parts = tuple(loc)
        for n in range(len(parts), -1, -1):
            hit = self.lines.get(parts[:n])
            if hit:
                return hit
        return None

    def problem(self, loc: Loc, message: str) -> str:
        line = self.line(loc)
        where = f"{self.path}:{line}" if line else self.path
        return f"{where}: {dotted(loc)}: {message}"

    def duplicate_problems(self) -> list[str]:
        return [self.problem(loc, f"duplicate key {loc[-1]!r} (the later one would silently "
                                  f"win)") for loc in self.duplicates]

    def errors(self, exc: ValidationError, base: Loc = ()) -> list[str]:
        """One ``file:line: key: problem`` per pydantic error."""
        out = []
        for err in exc.errors():
            # pydantic adds union members and validator kinds ('function-after[...]') to locs
            loc = base + tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
            out.append(self.problem(loc, err["msg"].removeprefix("Value error, ")))
        return out


def read_text(path: Path | str) -> str:
    """The file's text; :class:`YamlConfigError` when it is missing, unreadable or not UTF-8."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError as exc:
        raise YamlConfigError(f"{file}: file not found", path=file) from exc
    except OSError as exc:
        raise YamlConfigError(f"{file}: cannot read: {exc.strerror or exc}", path=file) from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise YamlConfigError(f"{file}:{line}: not UTF-8 text: byte 0x{raw[exc.start]:02x} at "
                              f"offset {exc.start} (save the file as UTF-8)", path=file) from exc


def parse(text: str, source: str) -> YamlDoc:
    """Parse ``text`` (read from ``source``) by the rules above; :class:`YamlConfigError` for
    text that is not YAML, an alias bomb or a recursive alias. Repeated keys are returned in
    :attr:`YamlDoc.duplicates` for the caller to report with its other problems."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDoc(source, None, {})
        lines: dict[Loc, int] = {(): node.start_mark.line + 1}
        duplicates: list[Loc] = []
        _check_aliases(node, source)
        _walk(node, (), lines, duplicates, set())
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise YamlConfigError(f"{where}: not valid YAML: {exc.problem or exc}",
                              path=source) from exc
    except yaml.YAMLError as exc:  # reader errors (control characters) carry a position only
        position = getattr(exc, "position", None)
        where = f"{source}:{text.count(chr(10), 0, position) + 1}" if position is not None \
            else source
        raise YamlConfigError(f"{where}: not valid YAML: {exc}", path=source) from exc
    except RecursionError as exc:
        raise YamlConfigError(f"{source}: not valid YAML: nested too deeply",
                              path=source) from exc
    finally:
        loader.dispose()
    return YamlDoc(source, data, lines, tuple(duplicates))


def load_yaml(path: Path | str) -> YamlDoc:
    """Read and parse an operator file; a repeated key is an error here."""
    doc = parse(read_text(path), str(path))
    if doc.duplicates:
        raise YamlConfigError(doc.duplicate_problems(), path=path)
    return doc


def validate(model: type[M], data: Any, doc: YamlDoc, *,
             error: type[ConfigError] = YamlConfigError) -> M:
    """``data`` (``doc.data`` or a part of it, with defaults added) as ``model``; every problem
    reported with its file and line."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(doc.errors(exc), path=doc.path) from exc


def load_model(model: type[M], path: Path | str, *, error: type[ConfigError] = YamlConfigError,
               empty_ok: bool = True, check: Callable[[YamlDoc], list[str]] | None = None,
               extra: Mapping[str, Any] | None = None) -> M:
    """Load ``path`` (a mapping at the top) as ``model``. ``check`` reports what the model
    cannot place on a line (see :func:`repeated`); ``extra`` adds fields the file does not hold."""
    try:
        doc = load_yaml(path)
    except YamlConfigError as exc:
        raise error(exc.problems, path=path) from exc
    data = mapping(doc, error=error, empty_ok=empty_ok)
    problems = check(doc) if check is not None else []
    if problems:
        raise error(problems, path=path)
    return validate(model, {**data, **(extra or {})}, doc, error=error)


def repeated(doc: YamlDoc, section: str, key: str,
             message: Callable[[str, int], str]) -> list[str]:
    """One problem per item of the top-level list ``section`` whose ``key`` repeats an earlier
    item's, reported at the later item: ``message(value, index of the first)``. A model can only
    say 'twice'; this says where."""
    items = doc.data.get(section) if isinstance(doc.data, dict) else None
    if not isinstance(items, list):
        return []
    first: dict[str, int] = {}
    out = []
    for i, item in enumerate(items):
        value = item.get(key) if isinstance(item, dict) else None
        if not isinstance(value, str):
            continue
        value = value.strip()
        if value in first:
            out.append(doc.problem((section, i, key), message(value, first[value])))
        else:
            first[value] = i
    return out


def mapping(doc: YamlDoc, *, error: type[ConfigError] = YamlConfigError,
            empty_ok: bool = True) -> dict[Any, Any]:
    """The document's top level, which must be a mapping (an empty file is ``{}``)."""
    if doc.data is None and empty_ok:
        return {}
    if not isinstance(doc.data, dict):
        raise error(f"{doc.path}:{doc.line(()) or 1}: the top level must be a mapping",
                    path=doc.path)
    return doc.data


# --- the node graph ------------------------------------------------------------------------------
def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_aliases(root: yaml.Node, source: str) -> None:
    """Refuse a document whose aliases expand it by more than MAX_ALIAS_NODES nodes or that
    contains itself. Sizes are memoised per node, so a bomb is found in linear time."""
    distinct: set[int] = set()
    todo = [root]
    while todo:
        node = todo.pop()
        if id(node) not in distinct:
            distinct.add(id(node))
            todo.extend(_children(node))
    limit = len(distinct) + MAX_ALIAS_NODES
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_:
            raise YamlConfigError(f"{source}:{node.start_mark.line + 1}: an alias refers to "
                                  f"the node that contains it", path=source)
        open_.add(key)
        total = 1
        for child in _children(node):
            total += size(child)
            if total > limit:
                raise YamlConfigError(  # at the value that holds too much
                    f"{source}:{node.start_mark.line + 1}: aliases expand the file beyond "
                    f"{MAX_ALIAS_NODES} extra nodes (write the values out instead)", path=source)
        open_.discard(key)
        sizes[key] = total
        return total

    size(root)


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int], duplicates: list[Loc],
          seen: set[int]) -> None:
    """Lines of keys and items, and repeated keys. A node reached again through an alias is not
    walked again: problems inside it are reported at the alias's key."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: set[tuple[str, Any]] = set()
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                _walk(value_node, loc, lines, duplicates, seen)
                continue
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            if (key_node.tag, key) in keys:
                duplicates.append(loc + (key,))
            keys.add((key_node.tag, key))
            lines[loc + (key,)] = key_node.start_mark.line + 1
            _walk(value_node, loc + (key,), lines, duplicates, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.setdefault(loc + (i,), item.start_mark.line + 1)
            _walk(item, loc + (i,), lines, duplicates, seen)
