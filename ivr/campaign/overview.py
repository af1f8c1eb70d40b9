"""What a campaign looks like now: the list of campaigns and one campaign's state, for
``ivr campaign list / status --json``, the API and the console."""

from __future__ import annotations

from typing import Any

import sqlite_utils

from ivr.campaign.lease import lease_holder
from ivr.campaign.runner import get_campaign


def campaign_rows(db: sqlite_utils.Database, status: str | None = None,
                  limit: int = 200) -> list[dict[str, Any]]:
    """Campaigns newest first, with contacts by state, attempts and answered attempts."""
    sql = ("SELECT id, name, status, status_reason, kind, script, language, created_at, "
           "starts_at, ends_at FROM campaigns")
    params: list[Any] = []
    if status:
        sql += " WHERE status = ?"
        params.append(status)
    rows = [dict(r) for r in db.query(sql + " ORDER BY created_at DESC LIMIT ?",
                                      [*params, limit])]
    counts: dict[str, dict[str, int]] = {}
    for cid, state, n in db.execute(
            f"SELECT campaign_id, state, count(*) FROM contacts WHERE campaign_id IN "
            f"({','.join('?' * len(rows)) or 'NULL'}) GROUP BY 1, 2", [r["id"] for r in rows]):
        counts.setdefault(cid, {})[state] = int(n)
    att: dict[str, tuple[int, int]] = {}
    for cid, n, answered in db.execute(
            f"SELECT campaign_id, count(*), coalesce(sum(outcome = 'answered'), 0) FROM attempts "
            f"WHERE campaign_id IN ({','.join('?' * len(rows)) or 'NULL'}) GROUP BY 1",
            [r["id"] for r in rows]):
        att[cid] = (int(n), int(answered))
    for r in rows:
        states = counts.get(r["id"], {})
        r["contacts"] = sum(states.values())
        r["contact_states"] = states
        r["attempts"], r["answered"] = att.get(r["id"], (0, 0))
    return rows


def campaign_state(db: sqlite_utils.Database, campaign_id: str) -> dict[str, Any]:
    """The campaign row (without its policy), contacts by state, attempts by outcome, the
    funnel so far and the dialer's lease. Raises CampaignError for an unknown id."""
    camp = get_campaign(db, campaign_id)
    camp.pop("policy", None)
    states = [dict(r) for r in db.query(
        "SELECT state, coalesce(final_outcome, '') AS final_outcome, count(*) AS contacts, "
        "coalesce(sum(attempts), 0) AS attempts, min(next_attempt_at) AS next_attempt_at "
        "FROM contacts WHERE campaign_id = ? GROUP BY 1, 2 ORDER BY 1, 2", [campaign_id])]
    outcomes = [dict(r) for r in db.query(
        "SELECT coalesce(outcome, state) AS outcome, sip_code, q850_cause, count(*) AS attempts "
        "FROM attempts WHERE campaign_id = ? GROUP BY 1, 2, 3 ORDER BY 4 DESC", [campaign_id])]
    funnel = db.execute(
        "SELECT count(*), sum(attempts > 0), "
        "(SELECT count(DISTINCT contact_id) FROM attempts WHERE campaign_id = ? AND "
        " outcome = 'answered'), "
        "(SELECT count(DISTINCT contact_id) FROM calls WHERE campaign_id = ? AND "
        " outcome IN ('completed', 'recovered')), "
        "(SELECT count(*) FROM attempts WHERE campaign_id = ? AND coalesce(state, '') != "
        " 'ended') FROM contacts WHERE campaign_id = ?",
        [campaign_id] * 4).fetchone()
    return {
        "campaign": camp, "states": states, "attempt_outcomes": outcomes,
        "funnel": {"contacts": funnel[0] or 0, "dialed": funnel[1] or 0,
                   "answered": funnel[2] or 0, "completed": funnel[3] or 0,
                   "in_flight": funnel[4] or 0},
        "lease": lease_holder(db, campaign_id),
    }
