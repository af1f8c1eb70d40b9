from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ivr.campaign import runner as dm
from ivr.campaign.runner import CampaignRunner
from ivr.campaign.yamlcfg import CampaignConfigError
from ivr.dialer.types import DialResult
from ivr.store import add_dnc

FAST_RETRY = {"max_attempts": 3, "multiplier": 1.0,
              "backoff_s": {"busy": 0.05, "no_answer": 0.05, "congestion": 0.05, "failed": 0.05}}


def run(d: CampaignRunner, timeout: float = 20) -> dm.RunStats:
    return asyncio.run(asyncio.wait_for(d.run(), timeout))


def contacts(db: Any, cid: str) -> dict[str, dict[str, Any]]:
    return {r["phone"]: dict(r) for r in db["contacts"].rows_where("campaign_id = ?", [cid])}


def attempts(db: Any, phone: str) -> list[dict[str, Any]]:
    return [dict(r) for r in db["attempts"].rows_where("phone = ?", [phone], order_by="id")]


def test_outcomes_retries_and_no_retry_after_rejection(db: Any, fake: Any, h: Any) -> None:
    busy, decline, noans, ok, sip608, q21 = h.phones(6)
    cid = h.make_campaign(db, [busy, decline, noans, ok, sip608, q21],
                        h.open_policy(retry=FAST_RETRY))
    orig = fake({
        busy: [DialResult("busy", sip_code=486, q850_cause=17), DialResult("answered")],
        decline: [DialResult("rejected", sip_code=603, q850_cause=21)],
        noans: [DialResult("no_answer", q850_cause=19)],
        sip608: [DialResult("busy", sip_code=608)],  # rejection codes win over the outcome
        q21: [DialResult("failed", q850_cause=21)],
    })
    stats = run(CampaignRunner(db, cid, orig, cps=100, poll_interval_s=0.02))
    c = contacts(db, cid)
    assert (c[busy]["state"], c[busy]["final_outcome"], c[busy]["attempts"]) == \
        ("done", "answered", 2)
    assert (c[decline]["state"], c[decline]["final_outcome"], c[decline]["attempts"]) == \
        ("done", "rejected", 1)
    assert (c[noans]["state"], c[noans]["final_outcome"], c[noans]["attempts"]) == \
        ("failed", "no_answer", 3)  # one budget: max_attempts in all
    assert (c[ok]["state"], c[ok]["attempts"]) == ("done", 1)
    for p in (decline, sip608, q21):
        assert orig.dialed(p) == 1 and c[p]["final_outcome"] == "rejected"
    assert orig.dialed(noans) == 3 and orig.dialed(busy) == 2
    assert stats.status == "done"
    # Every attempt ended with its outcome and codes stored; caller ID sticky across retries.
    a = attempts(db, busy)
    assert [x["outcome"] for x in a] == ["busy", "answered"]
    assert a[0]["sip_code"] == 486 and a[0]["q850_cause"] == 17
    assert len({x["caller_id"] for x in attempts(db, noans)}) == 1
    assert all(x["state"] == "ended" for x in db["attempts"].rows)


def test_variables_and_request(db: Any, fake: Any, h: Any) -> None:
    (p,) = h.phones(1)
    cid = h.make_campaign(db, [p], language="cmn")
    orig = fake()
    run(CampaignRunner(db, cid, orig, default_caller_id="+8610000001", cps=100,
                       poll_interval_s=0.02))
    (_, req), = orig.requests
    contact = contacts(db, cid)[p]
    att = attempts(db, p)[0]
    assert req.phone == p and req.caller_id == "+8610000001" and req.attempt_id == att["id"]
    assert req.to_channel() == {
        "IVR_PHONE": p, "IVR_CALLER_ID": "+8610000001", "IVR_TRUNK": "carrier",
        "IVR_CAMPAIGN": cid, "IVR_CONTACT": str(contact["id"]), "IVR_ATTEMPT": str(att["id"]),
        "IVR_ORDER_ID": contact["order_id"], "IVR_VOICE": "v1", "IVR_SEGMENT": "general",
        "IVR_SCRIPT": "surveys/s.yaml", "IVR_LANGUAGE": "cmn", "IVR_RING_TIMEOUT": "30",
        "IVR_DIAL_PREFIX": ""}


def test_attempt_is_persisted_before_dial(db: Any, fake: Any, h: Any) -> None:
    (p,) = h.phones(1)
    cid = h.make_campaign(db, [p])
    seen: list[tuple[str, str]] = []

    def check(req: Any) -> None:  # runs inside dial(): the DB must already say "originating"
        row = db["attempts"].get(req.attempt_id)
        seen.append((row["state"], db["contacts"].get(req.contact_id)["state"]))

    run(CampaignRunner(db, cid, fake(on_dial=check), cps=100, poll_interval_s=0.02))
    assert seen == [("originating", "dialing")]


def test_concurrency_limit(db: Any, fake: Any, h: Any) -> None:
    nums = h.phones(12)
    cid = h.make_campaign(db, nums)
    orig = fake(delay=0.15)
    stats = run(CampaignRunner(db, cid, orig, max_concurrent=3, cps=200, poll_interval_s=0.02))
    assert orig.max_in_flight == 3 and stats.max_in_flight == 3
    assert len(orig.requests) == 12


def test_cps_limit(db: Any, fake: Any, h: Any) -> None:
    nums = h.phones(8)
    cid = h.make_campaign(db, nums)
    orig = fake(delay=0.0)
    run(CampaignRunner(db, cid, orig, max_concurrent=10, cps=10, poll_interval_s=0.02))
    starts = [t for t, _ in orig.requests]
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert len(starts) == 8 and min(gaps) >= 0.1 * 0.95, gaps
    assert starts[-1] - starts[0] >= 0.7 * 0.95


def test_pause_and_resume(db: Any, fake: Any, h: Any) -> None:
    nums = h.phones(6)
    cid = h.make_campaign(db, nums)
    orig = fake(delay=0.02)

    def pause_after_two(req: Any) -> None:
        if len(orig.requests) == 2:
            dm.pause(db, cid)

    orig.on_dial = pause_after_two

    async def scenario() -> dm.RunStats:
        d = CampaignRunner(db, cid, orig, max_concurrent=1, cps=100, poll_interval_s=0.02)
        task = asyncio.create_task(d.run())
        await asyncio.sleep(0.5)
        assert len(orig.requests) == 2 and dm.get_campaign(db, cid)["status"] == "paused"
        dm.resume(db, cid)
        return await asyncio.wait_for(task, 10)

    stats = asyncio.run(scenario())
    assert stats.status == "done" and len(orig.requests) == 6


def test_circuit_breaker_stops_the_campaign(db: Any, fake: Any, h: Any) -> None:
    nums = h.phones(20)
    pol = h.open_policy(retry=FAST_RETRY, circuit_breaker={
        "window": 5, "min_attempts": 5, "max_failure_rate": 0.6})
    cid = h.make_campaign(db, nums, pol)
    orig = fake(default=DialResult("congestion", sip_code=503, q850_cause=34))
    stats = run(CampaignRunner(db, cid, orig, max_concurrent=1, cps=100, poll_interval_s=0.02))
    assert stats.status == "stopped" and "circuit breaker" in (stats.reason or "")
    assert len(orig.requests) == 5
    camp = dm.get_campaign(db, cid)
    assert camp["status"] == "stopped" and camp["status_reason"].startswith("circuit breaker")


def test_policy_rechecked_at_dial_time(db: Any, fake: Any, h: Any) -> None:
    a, b = h.phones(2)
    cid = h.make_campaign(db, [a, b])
    add_dnc(db, a, "opt-out", "test")  # after planning
    orig = fake()
    run(CampaignRunner(db, cid, orig, cps=100, poll_interval_s=0.02))
    c = contacts(db, cid)
    assert orig.dialed(a) == 0 and c[a]["state"] == "dnc"
    assert orig.dialed(b) == 1


def test_caps_count_attempts_from_other_campaigns(db: Any, fake: Any, h: Any) -> None:
    (p,) = h.phones(1)
    pol = h.open_policy(caps={"per_day": None, "per_window": 1, "window_days": 1})
    cid = h.make_campaign(db, [p], pol)
    db["attempts"].insert({"campaign_id": "other", "phone": p, "state": "ended",
                           "started_at": dm.iso(dm.utcnow()), "outcome": "answered"})
    orig = fake()
    d = CampaignRunner(db, cid, orig, cps=100, poll_interval_s=0.02, stop_when_idle=True)
    run(d)
    c = contacts(db, cid)[p]
    assert orig.dialed(p) == 0 and c["state"] == "pending"
    assert c["next_attempt_at"] > dm.iso(dm.utcnow())  # deferred ~1 day, not dropped


def test_campaign_end_date(db: Any, fake: Any, h: Any) -> None:
    (p,) = h.phones(1)
    cid = h.make_campaign(db, [p])
    db.execute("UPDATE campaigns SET ends_at = ? WHERE id = ?", [dm.iso(dm.utcnow()), cid])
    orig = fake()
    run(CampaignRunner(db, cid, orig, cps=100, poll_interval_s=0.02))
    assert orig.dialed(p) == 0 and contacts(db, cid)[p]["state"] == "skipped"


def test_invalid_stored_policy_stops_without_dialing(db: Any, fake: Any, h: Any) -> None:
    (p,) = h.phones(1)
    cid = h.make_campaign(db, [p])
    db.execute("UPDATE campaigns SET policy = replace(policy, '\"max_attempts\": 3', "
               "'\"max_attempts\": 0') WHERE id = ?", [cid])
    with pytest.raises(CampaignConfigError, match="retry.max_attempts"):
        CampaignRunner(db, cid, fake())
    camp = dm.get_campaign(db, cid)
    assert camp["status"] == "stopped" and "invalid policy" in camp["status_reason"]
    assert db["attempts"].count == 0


def test_originator_exception_is_a_failed_attempt(db: Any, fake: Any, h: Any) -> None:
    (p,) = h.phones(1)
    cid = h.make_campaign(db, [p], h.open_policy(retry=FAST_RETRY))

    class Broken:
        calls = 0

        async def dial(self, request: Any) -> DialResult:
            Broken.calls += 1
            if Broken.calls == 1:
                raise ConnectionError("AMI gone")
            return DialResult("answered")

    run(CampaignRunner(db, cid, Broken(), cps=100, poll_interval_s=0.02))
    a = attempts(db, p)
    assert [x["outcome"] for x in a] == ["failed", "answered"]
    assert "AMI gone" in a[0]["detail"]


def test_region_decider_and_picker_at_dial_time(db: Any, fake: Any, h: Any) -> None:
    a, b = h.phones(2)
    cid = h.make_campaign(db, [a, b])

    class Deny:
        allowed = False
        reason = "region rule xj: not called"

    orig = fake()
    run(CampaignRunner(db, cid, orig, cps=100, poll_interval_s=0.02,
                       region_decider=lambda ph: Deny() if ph == a else None,
                       caller_id_picker=lambda ph: "+8610000777"))
    c = contacts(db, cid)
    assert c[a]["state"] == "skipped" and c[a]["skip_reason"] == "region rule xj: not called"
    assert orig.requests[0][1].caller_id == "+8610000777" == c[b]["caller_id"]


def test_health_hook_runs(db: Any, fake: Any, h: Any) -> None:
    cid = h.make_campaign(db, h.phones(3))
    calls: list[int] = []

    async def hook() -> None:
        calls.append(1)

    run(CampaignRunner(db, cid, fake(delay=0.1), max_concurrent=1, cps=100,
                       poll_interval_s=0.02, health_hook=hook, health_interval_s=0.05))
    assert len(calls) >= 2


def test_next_step_budget_is_per_contact() -> None:
    from ivr.campaign.policy import Retry

    r = Retry(max_attempts=2)
    assert dm.next_step(DialResult("busy", sip_code=486), 1, r).state == "retry"
    assert dm.next_step(DialResult("congestion", sip_code=503), 2, r).state == "failed"
    assert dm.next_step(DialResult("no_answer"), 1, r).backoff_s == 3600
    assert dm.next_step(DialResult("rejected", sip_code=607), 1, r).final_outcome == "rejected"
