"""The default rule set for a process, and the yes/no the dialplan guard asks.

The guard fails closed: an invalid number, a rules file that does not load, or a caller ID that
must not be presented all refuse the call, each with a reason for the channel variable and log.
"""

from __future__ import annotations

import threading
from pathlib import Path

import sqlite_utils

from ivr.phone import InvalidNumber, parse_e164
from ivr.regions.rules import Decision, RuleSet, default_rules_path, load_rules
from ivr.yamlfile import YamlConfigError

_lock = threading.Lock()
_cache: dict[Path, tuple[float, RuleSet]] = {}


def default_rules(path: str | Path | None = None) -> RuleSet:
    """The rules of ``path`` (default config/regions.yaml), reloaded when the file changes."""
    file = Path(path) if path else default_rules_path()
    try:
        mtime = file.stat().st_mtime
    except OSError:
        mtime = -1.0
    with _lock:
        hit = _cache.get(file)
        if hit is not None and hit[0] == mtime:
            return hit[1]
    rules = load_rules(file)  # raises YamlConfigError with file:line
    with _lock:
        _cache[file] = (mtime, rules)
    return rules


def decide(e164: str, rules: RuleSet | None = None) -> Decision:
    """Decision for ``e164`` under ``rules`` (default: the configured rules file)."""
    return (rules if rules is not None else default_rules()).decide(e164)


def guard_allows(e164: str, *, rules: RuleSet | None = None,
                 db: sqlite_utils.Database | None = None,
                 caller_id: str | None = None) -> tuple[bool, str]:
    """(allowed, reason) for a call about to be dialed. ``e164`` may lack its '+' (dial digits).

    With ``db`` and ``caller_id`` the caller ID is checked too (flagged / retired numbers refused).
    """
    text = str(e164 or "").strip()
    candidate = text if text.startswith("+") else "+" + text
    try:
        number = parse_e164(candidate)
    except InvalidNumber as exc:
        return False, str(exc)
    try:
        decision = decide(number, rules)
    except YamlConfigError as exc:
        return False, f"region rules do not load: {exc.problems[0] if exc.problems else exc}"
    if decision.action != "call":
        return False, f"{decision.action}: {decision.reason}"
    if db is not None and caller_id:
        from ivr.callerid.rotation import usable_reason

        why = usable_reason(db, caller_id)
        if why is not None:
            return False, f"caller ID refused: {why}"
    return True, "ok" if decision.rule_name is None else f"ok (rule {decision.rule_name})"
