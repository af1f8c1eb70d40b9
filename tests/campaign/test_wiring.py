"""The wired campaign run (ivr.campaign.wiring) on a fake originator: region rules, follow-ups,
caller-ID pool and checks, trunk routing, the one-dialer lease, guard refusals."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ivr.campaign.lease import CampaignLease
from ivr.campaign.policy import Retry
from ivr.campaign.runner import CampaignError, CampaignRunner, next_step
from ivr.campaign.wiring import REGION_MESSAGE_KIND, build_runner
from ivr.config import Settings
from ivr.dialer.types import DialResult

A, B, WEST = "+862150001001", "+861060001001", "+862880001001"
XINJIANG, SICHUAN, ZHEJIANG = "+8613999123456", "+8613980812345", "+8613905710001"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    numbers = tmp_path / "numbers.yaml"
    numbers.write_text(yaml.safe_dump({"numbers": [
        {"number": A}, {"number": B}, {"number": WEST, "pool": "west", "trunk": "carrier2"}]}))
    rules = tmp_path / "regions.yaml"
    rules.write_text(yaml.safe_dump({"rules": [
        {"name": "xj", "match": {"country": "CN", "region": "Xinjiang", "type": "mobile"},
         "action": "message", "message": "【{{ platform }}】{{ product }} 满意吗？回复TD退订"},
        {"name": "sc", "match": {"country": "CN", "region": "Sichuan"}, "action": "call",
         "trunk": "carrier2", "caller_pool": "west"}]}, allow_unicode=True))
    return Settings(home=tmp_path, numbers=numbers, regions=rules, platform="快购")


def run(dialer: CampaignRunner) -> Any:
    return asyncio.run(dialer.run())


def test_region_rules_pool_and_follow_ups(db: Any, settings: Settings, fake: Any,
                                          h: Any) -> None:
    cid = h.make_campaign(db, [XINJIANG, SICHUAN, ZHEJIANG])  # planned without region rules
    orig = fake()
    dialer, _svc = build_runner(settings, db, cid, orig, poll_interval_s=0.01, cps=100)
    stats = run(dialer)
    assert stats.status == "done"
    sent = {r.phone: r for _, r in orig.requests}
    assert set(sent) == {SICHUAN, ZHEJIANG}  # Xinjiang is never dialed
    assert (sent[SICHUAN].trunk, sent[SICHUAN].caller_id) == ("carrier2", WEST)
    assert sent[ZHEJIANG].trunk == "carrier" and sent[ZHEJIANG].caller_id in (A, B)
    for key in ("IVR_ORDER_ID", "IVR_VOICE", "IVR_SEGMENT", "IVR_SCRIPT", "IVR_LANGUAGE"):
        assert sent[ZHEJIANG].to_channel()[key], key
    row = db.execute("SELECT state, skip_reason FROM contacts WHERE phone = ?",
                     [XINJIANG]).fetchone()
    assert row[0] == "skipped" and row[1].startswith("region rule xj")
    msgs = list(db.execute("SELECT phone, kind, text FROM outbox"))
    assert msgs == [(XINJIANG, REGION_MESSAGE_KIND, "【快购】p 满意吗？回复TD退订")]
    # A second run queues nothing twice.
    build_runner(settings, db, cid, fake())
    assert db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 1


def test_flagged_number_is_never_dialed(db: Any, settings: Settings, fake: Any,
                                        h: Any) -> None:
    from ivr.callerid import add_flag

    cid = h.make_campaign(db, [f"+86139057100{i:02d}" for i in range(4)])  # Zhejiang
    dialer, svc = build_runner(settings, db, cid, fake(), poll_interval_s=0.01, cps=100)
    add_flag(db, B, "carrier says spam", "manual")
    svc.monitor.check_now()
    run(dialer)
    used = {r[0] for r in db.execute("SELECT caller_id FROM attempts")}
    assert used == {A}


def test_guard_refusal_is_retried_not_a_rejection() -> None:
    retry = Retry(max_attempts=3)
    refused = DialResult("failed", q850_cause=21, cause_text="refused: caller ID refused: x")
    assert next_step(refused, 1, retry).state == "retry"
    declined = DialResult("rejected", sip_code=603, q850_cause=21)
    assert next_step(declined, 1, retry).state == "done"


def test_second_dialer_on_the_same_campaign_is_refused(db: Any, fake: Any, h: Any) -> None:
    cid = h.make_campaign(db, h.phones(2))
    holder = CampaignLease(db, cid)
    holder.acquire()  # a live holder: this very process
    with pytest.raises(CampaignError, match="already being dialed"):
        run(CampaignRunner(db, cid, fake(), poll_interval_s=0.01))
    holder.release()
    assert run(CampaignRunner(db, cid, fake(), poll_interval_s=0.01, cps=100)).status == "done"
    assert db.execute("SELECT count(*) FROM campaign_leases").fetchone()[0] == 0


def test_lease_of_a_dead_process_is_taken_over(db: Any, h: Any) -> None:
    cid = h.make_campaign(db, h.phones(1))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    lease = CampaignLease(db, cid)
    lease.acquire()
    db.execute("UPDATE campaign_leases SET pid = ?, owner = 'gone'", [pid])
    assert not _alive(pid)
    CampaignLease(db, cid).acquire()  # no wait for the stale period


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
