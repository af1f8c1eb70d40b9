"""Load a survey script and report every problem in it at once, each with file, line and node.

The file is read by the operator-file loader (:mod:`ivr.yamlfile`: UTF-8, YAML 1.2 booleans so
intents may be named yes/no/on, bounded aliases); lines come from the YAML node marks, so a message
points at the key the operator has to fix, and a key written twice is one of the problems.
Structure is checked per node with pydantic (a broken node does not hide the problems of the
others), then the graph and the data: unknown targets, unreachable nodes, nodes
without exit, template fields the orders do not have, missing phrases, duplicate DTMF keys, bad
outcomes and result fields, and (given a vocabulary) phrase words the speech model does not know.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
import sqlite_utils
from pydantic import BaseModel, ValidationError

from ivr.errors import ConfigError
from ivr.store import campaign_schema
from ivr.survey.render import all_templates, template_fields
from ivr.survey.script import (
    BOOL_FIELDS,
    CALLBACK_RELATIVE,
    CALLBACK_SPECS,
    DTMF_KEY,
    KIND_FIELDS,
    OUTCOMES,
    REMEDIES,
    RESULT_FIELDS,
    CallbackPolicy,
    Confirm,
    Defaults,
    Intent,
    Meta,
    Node,
    Script,
    TransferPolicy,
)
from ivr.yamlfile import YamlConfigError, parse, read_text

Vocabulary = Callable[[str], bool]
Path_ = tuple[Any, ...]
M = TypeVar("M", bound=BaseModel)

TOP_KEYS = ("survey", "start", "defaults", "callback", "transfer", "global_intents", "confirm",
            "nodes")
REPROMPT_FIELDS = frozenset({"prompt"})  # extra template variable in reprompts
CONFIRM_FIELDS = frozenset({"answer"})  # the phrase heard, in the confirmation prompt


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    where: str  # "node 'x'", "global intent 'y'", "survey", ...
    message: str

    def __str__(self) -> str:
        loc = f"{self.file}:{self.line}" if self.line else self.file
        return f"{loc}: {self.where}: {self.message}" if self.where else f"{loc}: {self.message}"


class ScriptError(ConfigError):
    """A script cannot be used; ``problems`` lists every reason, str() is readable."""

    def __init__(self, problems: list[Problem]) -> None:
        n = len(problems)
        head = f"{n} problem{'s' if n != 1 else ''} in survey script:"
        super().__init__([head, *(f"  {p}" for p in problems)],
                         path=problems[0].file if problems else None)
        self.problems = problems


@lru_cache(maxsize=1)
def order_fields() -> frozenset[str]:
    """The columns of the shared ``orders`` table: what a prompt may use."""
    db = sqlite_utils.Database(memory=True)
    campaign_schema(db)
    return frozenset(db["orders"].columns_dict)


# --- the checker ------------------------------------------------------------------------------
class _Checker:
    def __init__(self, file: str, lines: dict[Path_, int]) -> None:
        self.file = file
        self.lines = lines
        self.problems: list[Problem] = []

    def line(self, path: Path_) -> int:
        for n in range(len(path), 0, -1):
            hit = self.lines.get(tuple(path[:n]))
            if hit:
                return hit
        return self.lines.get((), 0)

    def add(self, path: Path_, message: str) -> None:
        self.problems.append(Problem(self.file, self.line(path), where_of(path), message))

    def model(self, cls: type[M], data: Any, path: Path_) -> M | None:
        if data is not None and not isinstance(data, dict):
            fields = ", ".join(list(cls.model_fields)[:4])
            self.add(path, f"must be a mapping ({fields}, ...), not {data!r}")
            return None
        try:
            return cls.model_validate(data if data is not None else {})
        except ValidationError as exc:
            self._pydantic(exc, path)
            return None

    def _pydantic(self, exc: ValidationError, base: Path_) -> None:
        by_loc: dict[Path_, list[dict[str, Any]]] = {}
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not _is_type_tag(p))
            by_loc.setdefault(loc, []).append(dict(err))
        for loc, errs in by_loc.items():
            name = ".".join(str(p) for p in loc) or "(value)"
            first = errs[0]
            if first["type"] == "extra_forbidden":
                msg = f"unknown field {loc[-1]!r}"
            elif first["type"] == "missing":
                msg = f"missing required field {name!r}"
            elif len(errs) > 1:
                msg = f"{name}: invalid value {first.get('input')!r} ({errs[0]['msg']}, or " \
                      f"{errs[1]['msg'][0].lower()}{errs[1]['msg'][1:]})"
            else:
                msg = f"{name}: {first['msg']}"
            self.add(base + loc, msg)


def _is_type_tag(part: Any) -> bool:
    """pydantic adds union member names (``list[str]``, ``function-before[...]``) to locs."""
    return isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "bool"})


def _as_problem(text: str, file: str) -> Problem:
    """The loader's 'file:line: message' as a Problem (a file that is no YAML at all)."""
    head, _, message = text.removeprefix(f"{file}:").partition(": ")
    return Problem(file, int(head), "", message) if head.isdigit() else \
        Problem(file, 0, "", text.removeprefix(f"{file}: "))


def where_of(path: Path_) -> str:
    if len(path) >= 2 and path[0] == "nodes":
        return f"node {path[1]!r}"
    if len(path) >= 2 and path[0] == "global_intents":
        return f"global intent {path[1]!r}"
    return str(path[0]) if path else ""


def load_script(path: str | Path, *, vocabulary: Vocabulary | None = None) -> Script:
    """Load and validate ``path``; raise :class:`ScriptError` listing every problem."""
    path = Path(path)
    file = str(path)
    try:
        text = read_text(path)
    except YamlConfigError as exc:
        problem = _as_problem(str(exc), file)  # not UTF-8 has a line; a missing file has none
        if not problem.line:
            problem = Problem(file, 0, "", f"cannot read survey script: {problem.message}")
        raise ScriptError([problem]) from exc
    try:
        doc = parse(text, file)
    except YamlConfigError as exc:
        raise ScriptError([_as_problem(str(p), file) for p in exc.problems]) from exc
    data = doc.data
    ck = _Checker(file, dict(doc.lines))
    for dpath in doc.duplicates:
        ck.add(dpath, f"duplicate key {dpath[-1]!r} (the later one would silently win)")
    if not isinstance(data, dict):
        ck.add((), "the top level must be a mapping with 'survey', 'start' and 'nodes'")
        raise ScriptError(ck.problems)
    script, broken = _build(ck, data, path)
    if script is not None:
        check_script(ck, script, vocabulary, broken=broken)
    if ck.problems:
        raise ScriptError(ck.problems)
    assert script is not None
    return script


def _build(ck: _Checker, data: dict[str, Any], path: Path) -> tuple[Script | None, set[str]]:
    """The script from the parts that validate, and the names of nodes that did not."""
    for key in data:
        if key not in TOP_KEYS:
            ck.add((key,), f"unknown top-level key {key!r} (expected one of {', '.join(TOP_KEYS)})")
    meta = ck.model(Meta, data.get("survey"), ("survey",)) if "survey" in data else None
    if "survey" not in data:
        ck.add((), "missing 'survey' section (name, language, voice, fields)")
    start = data.get("start")
    if not isinstance(start, str) or not start:
        ck.add(("start",), "missing or empty 'start' (the first node)")
    defaults = ck.model(Defaults, data.get("defaults"), ("defaults",))
    callback = ck.model(CallbackPolicy, data.get("callback"), ("callback",))
    transfer = ck.model(TransferPolicy, data.get("transfer"), ("transfer",))
    for var in transfer.variables if transfer is not None else ():
        _check_variable_name(ck, var, ("transfer", "variables", var))
    globals_: dict[str, Intent] = {}
    for name, raw in _mapping(ck, data.get("global_intents"), ("global_intents",)).items():
        spec = ck.model(Intent, raw, ("global_intents", name))
        if spec is not None:
            globals_[str(name)] = spec
    confirm = ck.model(Confirm, data["confirm"], ("confirm",)) if data.get("confirm") else None
    nodes: dict[str, Node] = {}
    raw_nodes = _mapping(ck, data.get("nodes"), ("nodes",))
    if not raw_nodes and isinstance(data.get("nodes"), dict | None):
        ck.add(("nodes",), "no nodes: a script needs at least a start node")
    broken: set[str] = set()
    for name, raw in raw_nodes.items():
        node = ck.model(Node, raw, ("nodes", name))
        if node is None:
            broken.add(str(name))
        else:
            nodes[str(name)] = node
    if meta is None or defaults is None or callback is None or transfer is None:
        return None, broken
    script = Script(path=path, meta=meta, start=start if isinstance(start, str) else "",
                    defaults=defaults, callback=callback, transfer=transfer,
                    global_intents=globals_, nodes=nodes, confirm=confirm, lines=ck.lines)
    return script, broken


def _mapping(ck: _Checker, raw: Any, path: Path_) -> dict[Any, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        ck.add(path, f"'{path[-1]}' must be a mapping of names to definitions")
        return {}
    return raw


def check_script(ck: _Checker, script: Script, vocabulary: Vocabulary | None, *,
                 broken: set[str]) -> None:
    """The semantic rules (graph, data, vocabulary). ``broken``: nodes whose body failed."""
    known = set(script.nodes) | broken  # a broken node still exists as a target

    def target(t: str | None, path: Path_, how: str) -> None:
        if t is not None and t not in known:
            ck.add(path, f"unknown target node {t!r} ({how})")

    if script.start:
        target(script.start, ("start",), "start")
    target(script.defaults.fallback, ("defaults", "fallback"), "defaults fallback")
    try:
        ZoneInfo(script.callback.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        ck.add(("callback", "timezone"), f"unknown time zone {script.callback.timezone!r}")
    orders = order_fields()
    for i, f in enumerate(script.meta.fields):
        if f not in orders:
            ck.add(("survey", "fields", i), f"field {f!r} is not an order field "
                                            f"(orders have: {', '.join(sorted(orders))})")
    for name, spec in script.global_intents.items():
        base: Path_ = ("global_intents", name)
        if not spec.goto:
            ck.add(base, "global intent without exit: it has no 'goto'")
        target(spec.goto, base + ("goto",), f"global intent {name!r} goto")
        _check_intent(ck, script, name, spec, base, vocabulary)
    for name, node in script.nodes.items():
        _check_node(ck, script, name, node, target, vocabulary)
    if script.confirm is not None:
        _check_confirm(ck, script, script.confirm, vocabulary)
    _check_templates(ck, script, orders)
    if not broken:  # a broken node's transitions are unknown: no false "unreachable"
        _check_reachable(ck, script)


def _check_node(ck: _Checker, script: Script, name: str, node: Node,
                target: Callable[[str | None, Path_, str], None],
                vocabulary: Vocabulary | None) -> None:
    base: Path_ = ("nodes", name)
    kind = node.kind
    for f in sorted(node.model_fields_set - KIND_FIELDS[kind]):
        ck.add(base + (f,), f"field {f!r} does not apply to a {kind} node")
    if isinstance(node.prompt, dict) and script.language not in node.prompt:
        ck.add(base + ("prompt",), f"no prompt for the script language {script.language!r}")
    if kind in ("statement", "open"):
        if not node.next:
            ck.add(base, f"node without exit: a {kind} node needs 'next'")
        target(node.next, base + ("next",), "next")
    if kind == "question":
        intents = script.intents_of(node)
        if not node.intents and not intents:
            ck.add(base, "node without exit: a question node needs intents")
        for iname, spec in node.intents.items():
            ipath = base + ("intents", iname)
            if not spec.goto:
                ck.add(ipath, f"node without exit: intent {iname!r} has no 'goto'")
            target(spec.goto, ipath + ("goto",), f"intent {iname!r} goto")
            _check_intent(ck, script, iname, spec, ipath, vocabulary)
        fb = script.fallback_of(node)
        if fb is None:
            ck.add(base, "question has no 'fallback' (where to go when nothing is understood; "
                         "set it here or in defaults)")
        target(node.fallback, base + ("fallback",), "fallback")
        if isinstance(node.globals, list):
            for i, g in enumerate(node.globals):
                if g not in script.global_intents:
                    ck.add(base + ("globals", i), f"unknown global intent {g!r}")
        _check_dtmf(ck, script, node, base)
        _check_phrase_clash(ck, script, node, base)
    if kind == "transfer" and not node.target:
        ck.add(base, "transfer node needs 'target' (agent queue or extension)")
    elif kind == "transfer" and not _TRANSFER_TARGET.fullmatch(str(node.target)):
        ck.add(base + ("target",), f"target {node.target!r}: an extension of the agent context "
               "(2-40 of a-z, 0-9, '_' and '-', starting with a letter or digit)")
    for var in node.variables:
        _check_variable_name(ck, var, base + ("variables", var))
    if kind in ("end", "transfer"):
        _check_outcome(ck, node, base)
    _check_set(ck, node.set, base + ("set",))


# The agent context matches _[a-z0-9]. ; the names the dialer and the guard own are not a
# script's to set.
_TRANSFER_TARGET = re.compile(r"[a-z0-9][a-z0-9_-]{1,39}")
_VARIABLE = re.compile(r"[A-Z][A-Z0-9_]{0,39}")
_RESERVED_VARIABLES = ("IVR_TOKEN", "IVR_PHONE", "IVR_CALLER_ID", "IVR_TRUNK", "IVR_DIAL_PREFIX",
                       "IVR_RING_TIMEOUT", "IVR_ATTEMPT", "IVR_CAMPAIGN", "IVR_CONTACT",
                       "IVR_TRANSFER_TARGET", "IVR_CALL_ID")


def _check_variable_name(ck: _Checker, var: str, path: Path_) -> None:
    if not _VARIABLE.fullmatch(var) or var.startswith(("IVR_GUARD", "IVR_DIAL_", "AGI")) \
            or var in _RESERVED_VARIABLES:
        ck.add(path, f"channel variable {var!r}: use A-Z, 0-9 and '_' (max 40), not a name the "
               "dialer or the guard sets")


def _check_intent(ck: _Checker, script: Script, name: str, spec: Intent, path: Path_,
                  vocabulary: Vocabulary | None) -> None:
    lang = script.language
    phrases = spec.phrases_for(lang, lang)
    if not phrases and spec.dtmf_pattern is None:
        where = path + ("phrases",) if "phrases" in spec.model_fields_set else path
        ck.add(where, f"intent {name!r} has no phrases for the script language {lang!r}")
    if spec.dtmf_pattern is not None:
        try:
            re.compile(spec.dtmf_pattern)
        except re.error as exc:
            ck.add(path + ("dtmf_pattern",), f"intent {name!r}: bad dtmf_pattern: {exc}")
    _check_set(ck, spec.set, path + ("set",))
    if vocabulary is None:
        return
    ppath = path + ("phrases",) if isinstance(spec.phrases, list) else path + ("phrases", lang)
    for i, phrase in enumerate(phrases):
        for word in phrase.split():
            if not vocabulary(word):
                ck.add(ppath + (i,), f"word {word!r} of phrase {phrase!r} (intent {name!r}) is "
                                     f"not in the speech model vocabulary")


def _check_confirm(ck: _Checker, script: Script, confirm: Confirm,
                   vocabulary: Vocabulary | None) -> None:
    base: Path_ = ("confirm",)
    if not confirm.prompt_for(script.language, script.language):
        ck.add(base + ("prompt",), f"no confirmation prompt for the script language "
                                   f"{script.language!r}")
    for name in ("yes", "no"):
        spec: Intent = getattr(confirm, name)
        if spec.goto or spec.set:
            ck.add(base + (name,), f"confirmation {name!r} takes only phrases and dtmf "
                                   f"(the answer being confirmed decides where to go)")
        _check_intent(ck, script, name, spec, base + (name,), vocabulary)
    yes = set(confirm.yes.phrases_for(script.language, script.language))
    both = yes & set(confirm.no.phrases_for(script.language, script.language))
    if both:
        ck.add(base, f"phrases {sorted(both)} are both yes and no")
    keys = set(confirm.yes.dtmf) & set(confirm.no.dtmf)
    if keys:
        ck.add(base, f"keys {sorted(keys)} are both yes and no")


def _check_dtmf(ck: _Checker, script: Script, node: Node, base: Path_) -> None:
    owner: dict[str, str] = {}
    entries: list[tuple[str, Intent, Path_]] = [
        (g, spec, ("global_intents", g)) for g, spec in script.active_globals(node).items()
    ] + [(i, spec, base + ("intents", i)) for i, spec in node.intents.items()]
    for iname, spec, ipath in entries:
        for k, key in enumerate(spec.dtmf):
            kpath = ipath + ("dtmf", k) if ipath[0] == "nodes" else base
            if not DTMF_KEY.match(key):
                ck.add(kpath, f"intent {iname!r}: DTMF key {key!r} is not made of 0-9 * #")
            elif len(key) > node.max_digits:
                ck.add(kpath, f"intent {iname!r}: DTMF key {key!r} is longer than max_digits "
                              f"{node.max_digits}")
            other = owner.get(key)
            if other is not None and other != iname:
                ck.add(kpath, f"duplicate DTMF key {key!r} (intents {other!r} and {iname!r})")
            owner.setdefault(key, iname)


def _check_phrase_clash(ck: _Checker, script: Script, node: Node, base: Path_) -> None:
    lang = script.language
    owner: dict[str, str] = {}
    for iname, spec in script.intents_of(node).items():
        for phrase in spec.phrases_for(lang, lang):
            norm = " ".join(phrase.split())
            other = owner.get(norm)
            if other is not None and other != iname:
                ck.add(base + ("intents", iname) if iname in node.intents else base,
                       f"phrase {norm!r} belongs to two intents ({other!r} and {iname!r})")
            owner.setdefault(norm, iname)


def _check_outcome(ck: _Checker, node: Node, base: Path_) -> None:
    rules = node.outcome
    if rules is None:
        return
    if isinstance(rules, str):
        if rules not in OUTCOMES:
            ck.add(base + ("outcome",), f"bad outcome {rules!r} (allowed: {', '.join(OUTCOMES)})")
        return
    for i, rule in enumerate(rules):
        if rule.then not in OUTCOMES:
            ck.add(base + ("outcome", i, "then"),
                   f"bad outcome {rule.then!r} (allowed: {', '.join(OUTCOMES)})")
        for f in rule.when:
            if f not in RESULT_FIELDS:
                ck.add(base + ("outcome", i, "when", f),
                       f"outcome rule tests {f!r}, which is not a result field "
                       f"({', '.join(RESULT_FIELDS)})")


def _check_set(ck: _Checker, values: dict[str, Any], path: Path_) -> None:
    for f, v in values.items():
        p = path + (f,)
        if f not in RESULT_FIELDS:
            ck.add(p, f"cannot set {f!r}: result fields are {', '.join(RESULT_FIELDS)}")
        elif f in BOOL_FIELDS and v not in (0, 1, True, False):
            ck.add(p, f"{f} must be 0/1 (or true/false), not {v!r}")
        elif f == "remedy_accepted" and v not in REMEDIES:
            ck.add(p, f"remedy_accepted must be one of {', '.join(REMEDIES)}, not {v!r}")
        elif f == "callback_at" and not (
            v in CALLBACK_SPECS or (isinstance(v, str) and CALLBACK_RELATIVE.match(v))
        ):
            ck.add(p, f"callback_at must be one of {', '.join(CALLBACK_SPECS)} or a delay like "
                      f"'+2h' / '+30m' / '+1d', not {v!r}")
        elif f in ("remedy_offered", "reason") and not isinstance(v, str):
            ck.add(p, f"{f} must be text, not {v!r}")


def _check_templates(ck: _Checker, script: Script, orders: frozenset[str]) -> None:
    declared = set(script.meta.fields)
    sources: list[tuple[Path_, str, frozenset[str]]] = []
    for name, node in script.nodes.items():
        for sub, src in all_templates(node):
            extra = REPROMPT_FIELDS if sub[0] in ("noinput", "nomatch", "dtmf_reprompt") \
                else frozenset()
            sources.append((("nodes", name) + sub, src, extra))
    for key in ("noinput", "nomatch"):
        for i, src in enumerate(getattr(script.defaults, key)):
            sources.append((("defaults", key, i), src, REPROMPT_FIELDS))
    if script.defaults.dtmf_reprompt:
        sources.append((("defaults", "dtmf_reprompt"), script.defaults.dtmf_reprompt,
                        REPROMPT_FIELDS))
    if script.confirm is not None:
        prompts = script.confirm.prompt
        for lang, src in (prompts.items() if isinstance(prompts, dict) else [(None, prompts)]):
            path = ("confirm", "prompt") if lang is None else ("confirm", "prompt", lang)
            sources.append((path, src, CONFIRM_FIELDS))
    for path, src, extra in sources:
        try:
            used = template_fields(src)
        except jinja2.TemplateSyntaxError as exc:
            ck.add(path, f"template syntax error: {exc.message}")
            continue
        for f in sorted(used - extra):
            if f not in orders:
                ck.add(path, f"template field {f!r} is not an order field "
                             f"(orders have: {', '.join(sorted(orders))})")
            elif declared and f not in declared:
                ck.add(path, f"template field {f!r} is not listed in survey.fields")


def reachable(script: Script) -> set[str]:
    seen: set[str] = set()
    todo = [script.start] if script.start in script.nodes else []
    while todo:
        name = todo.pop()
        if name in seen or name not in script.nodes:
            continue
        seen.add(name)
        todo.extend(t for _label, t in script.targets(name))
    return seen


def _check_reachable(ck: _Checker, script: Script) -> None:
    if script.start not in script.nodes:
        return
    seen = reachable(script)
    for name in script.nodes:
        if name not in seen:
            ck.add(("nodes", name), f"unreachable node (no path from start node "
                                    f"{script.start!r})")


def iter_phrases(script: Script) -> Iterable[tuple[str, str, str]]:
    """(node or '*', intent, phrase) of every phrase in the script language."""
    lang = script.language
    for gname, spec in script.global_intents.items():
        for p in spec.phrases_for(lang, lang):
            yield "*", gname, p
    for name, node in script.nodes.items():
        for iname, spec in node.intents.items():
            for p in spec.phrases_for(lang, lang):
                yield name, iname, p
