"""The default rule set for a process, and the yes/no the dialplan guard asks.

The guard fails closed: an invalid number, a rules file that does not load, or a caller ID that
must not be presented all refuse the call, each with a reason for the channel variable and log.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import sqlite_utils

from ivr.phone import InvalidNumber, parse_e164
from ivr.regions.rules import Decision, RuleSet, default_rules_path, load_rules
from ivr.yamlfile import YamlConfigError

if TYPE_CHECKING:
    from ivr.config import Settings

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


@dataclass(frozen=True)
class DialVerdict:
    """The guard's answer for one dial: when allowed, the complete target it checked."""

    allowed: bool
    reason: str
    target: str = ""  # PJSIP/<digits>@<trunk>, built only from checked values
    caller_id: str = ""  # E.164 presented
    timeout_s: int = 0


MAX_RING_S = 300


def check_dial(settings: Settings, db: sqlite_utils.Database, digits: str, *, trunk: str = "",
               prefix: str = "", caller_id: str = "", ring_timeout: str = "",
               rules: RuleSet | None = None) -> DialVerdict:
    """Check everything the dialing leg would use - number, trunk, prefix, caller ID, ring time -
    as the dialer (or whoever originated) asked for them, and build the dial target from the
    checked values. Fails closed: anything unknown, malformed or forbidden refuses the call.

    The number must be on no do-not-call list and allowed by the region rules; the trunk must be
    configured (and the one a rule routes the number over); a requested prefix must be exactly
    the rule's; the dialed digits are the trunk's ``dial_prefix`` + the rule's rewrite.
    """
    from ivr.store import is_dnc

    def refuse(reason: str) -> DialVerdict:
        return DialVerdict(False, reason)

    try:
        e164 = parse_e164("+" + str(digits))
    except InvalidNumber as exc:
        return refuse(str(exc))
    if is_dnc(db, e164):
        return refuse("number is on the do-not-call list")
    try:
        decision = decide(e164, rules if rules is not None else default_rules(settings.regions))
    except YamlConfigError as exc:
        return refuse(f"region rules do not load: {exc.problems[0] if exc.problems else exc}")
    if decision.action != "call":
        return refuse(f"{decision.action}: {decision.reason}")
    trunks = {t.name: t for t in settings.all_trunks}
    name = trunk or decision.trunk or settings.trunk.name
    if name not in trunks:
        return refuse(f"unknown trunk {name[:40]!r} (configured: {' '.join(trunks)})")
    if decision.trunk and name != decision.trunk:
        return refuse(f"trunk {name} refused: rule {decision.rule_name} routes this number via "
                      f"{decision.trunk}")
    if prefix and prefix != decision.prefix:
        return refuse(f"dial prefix {prefix[:40]!r} refused: the rules give "
                      f"{decision.prefix!r} for this number")
    presented = caller_id or trunks[name].caller_id
    try:
        presented = parse_e164(presented)
    except InvalidNumber as exc:
        return refuse(f"caller ID refused: {exc}")
    if caller_id:
        from ivr.callerid import load_pool, sync_pool
        from ivr.callerid.rotation import usable_reason

        try:
            # The pool file is the truth about which numbers may be presented.
            sync_pool(db, load_pool(settings.numbers))
        except YamlConfigError as exc:
            return refuse(f"configuration does not load: {exc}")
        why = usable_reason(db, presented)
        if why is not None:
            return refuse(f"caller ID refused: {why}")
    ring = ring_timeout or "30"
    if not ring.isdigit() or not 1 <= int(ring) <= MAX_RING_S:
        return refuse(f"ring timeout {ring[:20]!r} refused: whole seconds from 1 to {MAX_RING_S}")
    dial = trunks[name].dial_prefix + decision.dial
    ok = "ok" if decision.rule_name is None else f"ok (rule {decision.rule_name})"
    return DialVerdict(True, ok, target=f"PJSIP/{dial}@{name}", caller_id=presented,
                       timeout_s=int(ring))
