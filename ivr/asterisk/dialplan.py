"""Lint dialplans (``extensions.conf`` syntax) with file and line, before Asterisk reloads them.

Asterisk itself only logs a warning and drops a bad line on reload, leaving a half-working dialplan;
this checker finds those mistakes first: lines outside a context, broken ``exten``/``same`` lines,
a new extension not starting at priority 1, unbalanced ``${ }``, ``$[ ]`` and parentheses, duplicate
or missing labels in ``Goto``/``GotoIf``, and (when the list is given) unknown applications.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

_CONTEXT = re.compile(r"^\[(?P<name>[^\]]+)\](?:\((?P<opts>[^)]*)\))?\s*$")
_EXTEN = re.compile(r"^(?P<kw>exten|same)\s*=>?\s*(?P<rest>.*)$")
_OTHER = re.compile(r"^(include|ignorepat|switch|lswitch|eswitch)\s*=>")
_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\s*=")
_PRIO = re.compile(r"^(?P<prio>\d+|n|hint|n\+\d+|s)(?:\((?P<label>[A-Za-z0-9_-]+)\))?$")
_GOTOIF_TARGETS = re.compile(r"\?([^)]*)\)\s*$")
_GENERAL_SECTIONS = {"general", "globals"}


@dataclass(frozen=True)
class Problem:
    file: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass
class _Extension:
    context: str
    name: str
    line: int
    labels: dict[str, int] = field(default_factory=dict)
    gotos: list[tuple[int, str]] = field(default_factory=list)


def _strip_comment(line: str) -> str:
    # ';' starts a comment unless escaped as '\;'
    out, i = [], 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line):
            out.append(line[i:i + 2])
            i += 2
            continue
        if ch == ";":
            break
        out.append(ch)
        i += 1
    return "".join(out).strip()


def _balance(text: str) -> str | None:
    """Check ${...}, $[...] and (...) nesting; returns a message or None."""
    stack: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch in "([{":
            if ch in "[{" and (i == 0 or text[i - 1] != "$"):
                i += 1
                continue  # plain [ or { are literal text outside expressions
            stack.append(ch)
        elif ch in ")]}":
            if ch in "]}" and (not stack or stack[-1] != pairs[ch]):
                i += 1
                continue
            if not stack or stack[-1] != pairs[ch]:
                return f"unbalanced '{ch}'"
            stack.pop()
        i += 1
    if stack:
        return f"unclosed '{stack[-1]}'"
    return None


def lint_file(path: Path, applications: Iterable[str] | None = None) -> list[Problem]:
    apps = {a.lower() for a in applications} if applications is not None else None
    problems: list[Problem] = []
    context: str | None = None
    current: _Extension | None = None
    extensions: list[_Extension] = []
    seen_ext: dict[tuple[str, str], int] = {}

    def problem(line_no: int, msg: str) -> None:
        problems.append(Problem(path, line_no, msg))

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem(path, 0, f"cannot read: {exc}")]
    for no, raw in enumerate(lines, start=1):
        line = _strip_comment(raw)
        if not line or line.startswith("#include") or line.startswith("#exec"):
            continue
        m = _CONTEXT.match(line)
        if m:
            context = m.group("name").strip()
            current = None
            continue
        if context is None:
            problem(no, "line outside any [context]")
            continue
        if context in _GENERAL_SECTIONS:
            if not _ASSIGN.match(line):
                problem(no, f"expected NAME = value in [{context}]")
            continue
        if _OTHER.match(line):
            continue
        m = _EXTEN.match(line)
        if not m:
            problem(no, f"unknown statement {line[:40]!r} (expected exten =>, same =>, include =>)")
            continue
        kw, rest = m.group("kw"), m.group("rest")
        if kw == "exten":
            parts = rest.split(",", 2)
            if len(parts) < 3:
                problem(no, "exten needs 'pattern,priority,Application(args)'")
                continue
            name, prio, app = parts[0].strip(), parts[1].strip(), parts[2].strip()
            pm = _PRIO.match(prio)
            key = (context, name)
            if not pm:
                problem(no, f"bad priority {prio!r}")
                continue
            if key not in seen_ext and pm.group("prio") not in ("1", "hint"):
                problem(no, f"extension {name!r} must start at priority 1, not {prio!r}")
            seen_ext.setdefault(key, no)
            current = next((e for e in extensions if (e.context, e.name) == key), None)
            if current is None:
                current = _Extension(context, name, no)
                extensions.append(current)
        else:
            if current is None:
                problem(no, "'same =>' without a preceding 'exten =>' in this context")
                continue
            parts = rest.split(",", 1)
            if len(parts) < 2:
                problem(no, "same needs 'priority,Application(args)'")
                continue
            prio, app = parts[0].strip(), parts[1].strip()
            pm = _PRIO.match(prio)
            if not pm:
                problem(no, f"bad priority {prio!r}")
                continue
        label = pm.group("label")
        if label:
            if label in current.labels:
                problem(no, f"duplicate label {label!r} in {current.context},{current.name} "
                            f"(first at line {current.labels[label]})")
            current.labels[label] = no
        msg = _balance(app)
        if msg:
            problem(no, msg)
        app_name = app.split("(", 1)[0].strip()
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", app_name):
            problem(no, f"bad application name {app_name!r}")
        elif apps is not None and app_name.lower() not in apps:
            problem(no, f"unknown application {app_name!r} (not loaded in this Asterisk)")
        if app_name.lower() in ("goto", "gotoif"):
            current.gotos.append((no, app))
    for ext in extensions:
        for no, app in ext.gotos:
            for target in _local_labels(app):
                if target not in ext.labels:
                    problems.append(Problem(path, no, f"Goto target label {target!r} not defined "
                                                      f"in {ext.context},{ext.name}"))
    return problems


def _local_labels(app: str) -> list[str]:
    """Labels a Goto/GotoIf jumps to inside the same extension (no context/exten part)."""
    if app.lower().startswith("gotoif"):
        m = _GOTOIF_TARGETS.search(app)
        targets = m.group(1).split(":") if m else []
    else:
        inner = app[app.find("(") + 1: app.rfind(")")]
        targets = [inner]
    out = []
    for t in targets:
        t = t.strip()
        if t and "," not in t and "$" not in t and not t.isdigit():
            out.append(t)
    return out


def lint(paths: Iterable[Path], applications: Iterable[str] | None = None) -> list[Problem]:
    apps = list(applications) if applications is not None else None
    out: list[Problem] = []
    for p in paths:
        out.extend(lint_file(p, apps))
    return out


def parse_applications(core_show_applications: str) -> list[str]:
    """Names from the output of ``core show applications``."""
    names = []
    for line in core_show_applications.splitlines():
        m = re.match(r"^\s*([A-Za-z][A-Za-z0-9_]*):", line)
        if m:
            names.append(m.group(1))
    return names
