"""The AGI handlers the dialplans call, registered by name.

``survey``  the conversation with an answered customer (:mod:`ivr.call.handler`)
``guard``   refuses a destination the rules forbid (called before dialing, fail closed)
``hangup``  the h extension: records the final state whatever happened before
``failed``  the dialplan's failure path when the survey AGI could not run
``machine`` an answering machine picked up (AMD)
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from ivr.agi.registry import CallContext, handler
from ivr.call.variables import CallVariables
from ivr.phone import InvalidNumber, parse_e164
from ivr.store import (
    CALL_COMPLETED,
    CALL_FAILED,
    CALL_HANGUP,
    CallRecorder,
    is_dnc,
    iso,
    now_iso,
)

log = logging.getLogger(__name__)

@handler("guard")
async def guard(call: CallContext) -> None:
    """Sets IVR_GUARD=allow only for a valid number that no rule forbids."""
    digits = call.args[0] if call.args else ""
    dialed = await CallVariables.read(call.agi.get_variable, ("caller_id", "trunk"))
    caller_id, trunk = dialed.caller_id, dialed.trunk
    known = [t.name for t in call.settings.all_trunks]
    if trunk and trunk not in known:
        allowed, reason = False, f"unknown trunk {trunk!r} (configured: {', '.join(known)})"
    else:
        allowed, reason = destination_allowed(call, digits, caller_id)
    # UserEvent fields are comma separated: keep the reason to one field.
    await call.agi.set_variable("IVR_GUARD_REASON", reason.replace(",", ";"))
    await call.agi.set_variable("IVR_GUARD", "allow" if allowed else "deny")
    if not allowed:
        await call.agi.verbose(f"ivr guard refused {digits}: {reason}")


def destination_allowed(call: CallContext, digits: str,
                        caller_id: str | None = None) -> tuple[bool, str]:
    """Fail closed: a bad number, a do-not-call entry, a region rule or a bad caller ID refuse."""
    from ivr.callerid import load_pool, sync_pool
    from ivr.regions.guard import default_rules, guard_allows
    from ivr.yamlfile import YamlConfigError

    try:
        e164 = parse_e164("+" + digits)
    except InvalidNumber as exc:
        return False, str(exc)
    if is_dnc(call.db, e164):
        return False, "number is on the do-not-call list"
    try:
        rules = default_rules(call.settings.regions)
        if caller_id:
            # The pool file is the truth about which numbers may be presented.
            sync_pool(call.db, load_pool(call.settings.numbers))
    except YamlConfigError as exc:
        return False, f"configuration does not load: {exc.problems[0] if exc.problems else exc}"
    return guard_allows(e164, rules=rules, db=call.db, caller_id=caller_id or None)


@handler("hangup")
async def hangup(call: CallContext) -> None:
    """The h extension: close the call row with the cause, keeping a final state already set."""
    cause = call.args[0] if call.args else ""
    rec = call.recorder()
    row = rec.get()
    if row is None:
        return  # the survey never started (e.g. machine, or failed before the AGI)
    rec.finish(CALL_HANGUP, hangup_cause=cause or None)


async def _call_row(call: CallContext, *, answered: bool = False) -> CallRecorder:
    """The call's row, created from the channel variables if the survey never started one.
    ``answered``: this runs on the answered leg, so the row gets the time the customer picked up
    (set by the dialplan as IVR_ANSWERED_EPOCH)."""
    rec = call.recorder()
    if rec.get() is None:
        fields = (await CallVariables.read(call.agi.get_variable)).call_fields()
        if answered:
            epoch = await call.agi.get_variable("IVR_ANSWERED_EPOCH")
            # IVR_ANSWERED_EPOCH is the dialplan's ${EPOCH} (Unix seconds)
            fields["answered_at"] = (iso(datetime.fromtimestamp(int(epoch), UTC))
                                     if epoch and epoch.isdigit() else now_iso())
        rec.start(channel=call.agi.channel_name, transport=call.transport, **fields)
    return rec


@handler("failed")
async def failed(call: CallContext) -> None:
    reason = call.args[0] if call.args else "failed"
    rec = await _call_row(call, answered=True)
    rec.finish(CALL_FAILED, error=reason, outcome="failed")


@handler("machine")
async def machine(call: CallContext) -> None:
    cause = call.args[0] if call.args else ""
    rec = await _call_row(call, answered=True)
    rec.finish(CALL_COMPLETED, outcome="machine", error=None,
               context=json.dumps({"amd_cause": cause}))
