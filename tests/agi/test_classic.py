"""The classic entry point (ivr-agi) over stdin/stdout runs the same handlers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from support.agi_peer import header_block

from ivr.store import open_db


def test_classic_hangup_handler_records_cause(tmp_path: Path) -> None:
    cfg = tmp_path / "ivr.yaml"
    cfg.write_text(yaml.safe_dump({"home": str(tmp_path)}))
    db = open_db(tmp_path / "ivr.db")
    db["calls"].insert({"id": "1700000000.9", "state": "in_progress"})
    env = {**os.environ, "IVR_CONFIG": str(cfg)}
    proc = subprocess.run(
        [sys.executable, "-m", "ivr.agi.classic", "hangup", "16"],
        input=header_block("", uniqueid="1700000000.9"), capture_output=True, env=env,
        timeout=60)
    assert proc.returncode == 0, proc.stderr
    row = open_db(tmp_path / "ivr.db")["calls"].get("1700000000.9")
    assert (row["state"], row["hangup_cause"]) == ("hangup", "16")


def test_classic_without_handler_name_explains_usage() -> None:
    proc = subprocess.run([sys.executable, "-m", "ivr.agi.classic"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "usage" in proc.stderr
