"""Caller-ID health and rotation on real calls (issue 6).

Caller ID B is rejected (603/608) by every callee while A is answered: B's health drops, the
HealthMonitor running inside the campaign flags it, and every later call goes out on A. A callee
keeps its caller ID across retries (busy, then answered). A Xinjiang mobile number is not dialed;
its follow-up message is queued instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ivr.campaign.wiring import REGION_MESSAGE_KIND, run_campaign
from ivr.config import PROJECT_ROOT
from ivr.farend import campaign as helpers
from ivr.farend.bed import Bed
from ivr.farend.campaign import invites_from
from ivr.farend.sipp import Customer, HangUp, Wait

pytestmark = [pytest.mark.asterisk, pytest.mark.usefixtures("telephony")]

MINI = PROJECT_ROOT / "tests" / "data" / "mini.cmn.yaml"
A, B = "+862150001001", "+861060001001"  # Shanghai, Beijing; callees are in Zhejiang
XINJIANG = "+8613999123456"


def quick(digits: str) -> Customer:
    """Answers, stays a second (the survey starts), hangs up."""
    return Customer(digits, actions=[Wait(1000), HangUp()])


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    home = tmp_path_factory.mktemp("callerid-bed")
    numbers = home / "numbers.yaml"
    numbers.write_text(yaml.safe_dump({
        "health": {"windows_minutes": [60], "min_calls": 1000, "min_answered": 1000,
                   "min_rejections": 2, "rejection_rate_max": 0.15, "cooldown_minutes": 60,
                   "check_interval_s": 1},
        "numbers": [{"number": A, "daily_cap": 100}, {"number": B, "daily_cap": 100}],
    }))
    with Bed(home, numbers=str(numbers), platform="快购") as b:
        yield b


def test_same_callee_keeps_its_caller_id_across_retries(bed: Bed, tmp_path: Path) -> None:
    s1, s2, s3 = (f"+86139057100{i:02d}" for i in (1, 2, 3))
    plan = helpers.import_and_plan(bed, tmp_path, "sticky", [s1, s2, s3], script=MINI,
                                   voice="cmn-calm-male", max_concurrent=1, cps=2,
                                   backoff_s=6.0, days_ago=20, days=25)
    cid = plan["campaign_id"]
    bed.start_customers([Customer(s1[1:], reject=486), quick(s2[1:]), quick(s3[1:])])

    async def go() -> Any:
        run = asyncio.create_task(run_campaign(bed.settings, bed.db(), cid,
                                               handle_signals=False, poll_interval_s=0.2))
        # After the busy attempt and the others' calls, s1 answers its retry.
        while True:
            ended = bed.rows("SELECT phone, outcome FROM attempts WHERE campaign_id = ? AND "
                         "state = 'ended'", [cid])
            if len(ended) >= 3 or run.done():
                break
            await asyncio.sleep(0.1)
        bed.start_customers([quick(s1[1:])])
        return await run

    stats = asyncio.run(go())
    assert stats.status == "done", (stats, bed.diagnostics())
    attempts = bed.rows("SELECT phone, caller_id, outcome FROM attempts WHERE campaign_id = ? "
                    "ORDER BY id", [cid])
    first = [a for a in attempts if a["phone"] == s1]
    assert [a["outcome"] for a in first] == ["busy", "answered"], (attempts, bed.diagnostics())
    assert first[0]["caller_id"] == first[1]["caller_id"]
    # Rotation was live: when s1 was retried, the least-used number was the other one.
    used = [a["caller_id"] for a in attempts if a["phone"] != s1]
    assert set(used + [first[0]["caller_id"]]) == {A, B}, attempts
    assert bed.sipp is not None
    # What the trunk presented, from the INVITEs the callee saw.
    presented = {frm for n, frm in invites_from(bed.sipp.messages()) if n == s1[1:]}
    assert presented == {first[0]["caller_id"][1:]}, presented


def test_rejected_caller_id_is_flagged_and_rotated_out_mid_campaign(bed: Bed,
                                                                   tmp_path: Path) -> None:
    callees = [f"+86139057101{i:02d}" for i in range(12)]
    plan = helpers.import_and_plan(bed, tmp_path, "reject", [*callees, XINJIANG], script=MINI,
                                   voice="cmn-calm-male", max_concurrent=2, cps=2,
                                   days_ago=1, days=5)
    cid = plan["campaign_id"]
    # The planner skipped the Xinjiang number with the rule's reason and queued its message.
    assert plan["pending"] == len(callees) and plan["skipped"] == 1, plan
    assert plan["region_messages"] == 1
    (xj,) = bed.rows("SELECT state, skip_reason FROM contacts WHERE campaign_id = ? AND "
                 "phone = ?", [cid, XINJIANG])
    assert xj["state"] == "skipped" and "xinjiang-mobile-message" in xj["skip_reason"]
    (msg,) = bed.rows("SELECT phone, kind, text, dedup_key FROM outbox WHERE campaign_id = ?",
                  [cid])
    assert (msg["phone"], msg["kind"]) == (XINJIANG, REGION_MESSAGE_KIND)
    assert "快购" in msg["text"] and "婴儿湿巾" in msg["text"]

    customers: list[Customer] = []
    for i, c in enumerate(callees):
        customers += [Customer(c[1:], reject=603 if i % 2 else 608, from_user=B[1:]),
                      quick(c[1:])]
    bed.start_customers(customers)
    stats = asyncio.run(run_campaign(bed.settings, bed.db(), cid, handle_signals=False,
                                     poll_interval_s=0.2))
    assert stats.status == "done", (stats, bed.diagnostics())

    attempts = bed.rows("SELECT * FROM attempts WHERE campaign_id = ? ORDER BY started_at",
                    [cid])
    on_b = [a for a in attempts if a["caller_id"] == B]
    # B's calls were declined by the callee; a B call picked just before the flag is refused by
    # the dialplan guard (the second line of defence) and retried on A.
    sent_b = [a for a in on_b if a["outcome"] == "rejected"]
    refused_b = [a for a in on_b if a["outcome"] == "failed"]
    assert len(sent_b) >= 2 and all(a["sip_code"] in (603, 608) for a in sent_b), (
        attempts, bed.diagnostics())
    assert all("caller ID refused" in (a["detail"] or "") for a in refused_b), refused_b
    assert all(a["outcome"] == "answered" for a in attempts if a["caller_id"] == A), attempts
    (number_b,) = bed.rows("SELECT * FROM numbers WHERE number = ?", [B])
    # Out of rotation: flagged, then cooling down (a clean re-check only starts the cool-down).
    assert number_b["state"] in ("flagged", "cooling_down"), number_b
    flagged = bed.rows("SELECT at, source, reason FROM number_events WHERE number = ? AND "
                   "to_state = 'flagged' AND at >= ?", [B, attempts[0]["started_at"]])
    assert flagged and flagged[0]["source"] == "monitor", flagged  # during the campaign
    assert "explicit rejections" in flagged[0]["reason"]
    flag_at = flagged[0]["at"]
    after = [a for a in attempts if a["started_at"] > flag_at]
    assert len(after) >= 3, (flag_at, attempts)
    assert {a["caller_id"] for a in after} == {A}  # later calls all on A
    # No INVITE ever went out on B after it was flagged: B's INVITEs = B's declined attempts.
    assert bed.sipp is not None
    sent = invites_from(bed.sipp.messages())
    assert sum(1 for _, frm in sent if frm == B[1:]) == len(sent_b)
    assert XINJIANG[1:] not in {n for n, _ in sent}
    # Contacts declined on B are finished, never retried; one refused by the guard is retried
    # (and answered) on A.
    declined = {a["phone"] for a in sent_b}
    refused = {a["phone"] for a in refused_b}
    for c in bed.rows("SELECT phone, state, final_outcome, attempts FROM contacts WHERE "
                  "campaign_id = ? AND phone != ?", [cid, XINJIANG]):
        expected = (("done", "rejected", 1) if c["phone"] in declined else
                    ("done", "answered", 2) if c["phone"] in refused else
                    ("done", "answered", 1))
        assert (c["state"], c["final_outcome"], c["attempts"]) == expected, c
    print(f"B declined {len(sent_b)}x, refused by the guard {len(refused_b)}x, flagged at "
          f"{flag_at}; {len(after)} later attempts all on A")
