"""Kill -9 the dialer mid-campaign, start it again: nobody dialed twice, no attempt lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ivr.campaign.runner import LOST_DETAIL

RUNNER = Path(__file__).with_name("crash_runner.py")
RETRYABLE = {"busy", "no_answer", "congestion", "failed"}


def start(db_path: Path, cid: str, log: Path, root: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.Popen([sys.executable, str(RUNNER), str(db_path), cid, str(log)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def log_lines(log: Path) -> list[tuple[int, int, str]]:
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        a, c, p = line.split()
        out.append((int(a), int(c), p))
    return out


def test_kill_and_restart(db: Any, h: Any, tmp_path: Path) -> None:
    retry = {"max_attempts": 3, "multiplier": 1.0,
             "backoff_s": {"busy": 0.3, "no_answer": 0.3, "congestion": 0.3, "failed": 0.3}}
    nums = h.phones(24)
    cid = h.make_campaign(db, nums, h.open_policy(retry=retry))
    db_path = Path(db.conn.execute("PRAGMA database_list").fetchone()[2])
    log = tmp_path / "dials.log"
    proc = start(db_path, cid, log, h.root)
    try:
        deadline = time.monotonic() + 30
        while len(log_lines(log)) < 9 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGKILL)  # calls are in flight: 4 concurrent, 0.25 s each
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    open_at_crash = db.execute("SELECT count(*) FROM attempts WHERE state != 'ended'")
    assert open_at_crash.fetchone()[0] >= 1  # the crash really hit calls in progress
    proc = start(db_path, cid, log, h.root)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert out.decode().strip() == "done"

    dials = log_lines(log)
    attempts = {r["id"]: dict(r) for r in db["attempts"].rows_where("campaign_id = ?", [cid])}
    # No attempt lost: every dial has its attempt row, every attempt is resolved.
    assert {a for a, _, _ in dials} <= set(attempts)
    assert len({a for a, _, _ in dials}) == len(dials)  # one dial per attempt
    assert all(a["state"] == "ended" and a["outcome"] for a in attempts.values())
    lost = [a for a in attempts.values() if a["detail"] == LOST_DETAIL]
    assert lost  # the attempts open at the crash were resolved and counted
    # No one dialed twice: a contact is dialed again only after a retryable or lost attempt,
    # never after an answer, and never beyond the budget.
    by_contact: dict[int, list[dict[str, Any]]] = {}
    for a in sorted(attempts.values(), key=lambda a: a["id"]):
        by_contact.setdefault(a["contact_id"], []).append(a)
    for rows in by_contact.values():
        assert len(rows) <= 3
        for earlier in rows[:-1]:
            assert earlier["outcome"] in RETRYABLE, rows
        assert [r["outcome"] for r in rows].count("answered") <= 1
    contacts = {r["id"]: dict(r) for r in db["contacts"].rows_where("campaign_id = ?", [cid])}
    assert all(c["state"] in ("done", "failed") for c in contacts.values())
    for cid_, c in contacts.items():
        assert c["attempts"] == len(by_contact.get(cid_, []))
    assert len(contacts) == 24
