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
import re
from datetime import UTC, datetime

from ivr.agi.registry import CallContext, handler
from ivr.call.variables import CHANNEL, CallVariables
from ivr.store import (
    CALL_COMPLETED,
    CALL_FAILED,
    CALL_HANGUP,
    CallRecorder,
    iso,
    now_iso,
)

log = logging.getLogger(__name__)

# What the dialer asks of the dialing leg; the guard checks each (raw: a value the contract
# refuses is a refusal here, not a default) before anything is dialed.
DIAL_REQUEST_VARIABLES = tuple(CHANNEL[f] for f in ("trunk", "dial_prefix", "caller_id",
                                                    "ring_timeout_s"))


@handler("guard")
async def guard(call: CallContext) -> None:
    """Checks the complete dial target (number, trunk, prefix, caller ID, ring time) and sets
    IVR_DIAL_TARGET / IVR_DIAL_CALLER_ID / IVR_DIAL_TIMEOUT from the checked values, then
    IVR_GUARD=allow; anything the rules forbid leaves IVR_GUARD=deny and a reason."""
    from ivr.regions.guard import check_dial

    digits = call.args[0] if call.args else ""
    asked = {name: (await call.agi.get_variable(name) or "") for name in DIAL_REQUEST_VARIABLES}
    verdict = check_dial(call.settings, call.db, digits, trunk=asked["IVR_TRUNK"],
                         prefix=asked["IVR_DIAL_PREFIX"], caller_id=asked["IVR_CALLER_ID"],
                         ring_timeout=asked["IVR_RING_TIMEOUT"])
    # The reason ends up in a UserEvent field: one field, nothing an application would split.
    reason = re.sub(r'[,"\\|]', ";", verdict.reason)
    await call.agi.set_variable("IVR_GUARD_REASON", reason)
    if verdict.allowed:
        await call.agi.set_variable("IVR_DIAL_TARGET", verdict.target)
        await call.agi.set_variable("IVR_DIAL_CALLER_ID", verdict.caller_id)
        await call.agi.set_variable("IVR_DIAL_TIMEOUT", str(verdict.timeout_s))
    await call.agi.set_variable("IVR_GUARD", "allow" if verdict.allowed else "deny")
    if not verdict.allowed:
        await call.agi.verbose(f"ivr guard refused {digits}: {reason}")


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
