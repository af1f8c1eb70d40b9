from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from ivr.cli import root
from ivr.store import open_db


def test_import_plan_status_pause_resume(tmp_path: Path, h: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("IVR_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "orders.csv"
    src.write_text(
        "order_id,phone,product,category,price,merchant,host,order_time\n"
        "1,13912345678,奶瓶,母婴,89,店,主播,2025-06-10 10:00\n"
        "2,139,薯片,零食,5,店,主播,2025-06-10 10:00\n"
        "3,13912345679,薯片,零食,5,店,主播,2025-06-11 10:00\n", encoding="utf-8")
    runner = CliRunner()
    r = runner.invoke(root, ["campaign", "import", str(src)])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output.strip().splitlines()[-1])
    assert (summary["inserted"], summary["rejected"]) == (2, 1)
    assert (tmp_path / "orders.csv.rejects.csv").exists()

    r = runner.invoke(root, ["campaign", "plan", "june", "--script", "s.yaml",
                             "--reference", "2025-06-15T12:00:00+08:00", "--ends", "2025-06-30"])
    assert r.exit_code == 0, r.output
    plan = json.loads(r.output.strip().splitlines()[-1])
    cid = plan["campaign_id"]
    assert plan["contacts"] == 2 and plan["segments"] == {"mothers": 1, "students": 1}

    r = runner.invoke(root, ["campaign", "status", cid])
    assert r.exit_code == 0 and "planned" in r.output and "mothers" in r.output, r.output
    assert runner.invoke(root, ["campaign", "pause", cid]).exit_code == 0
    db = open_db(tmp_path / "home" / "ivr.db")
    status = "SELECT status FROM campaigns WHERE id = ?"
    assert db.execute(status, [cid]).fetchone()[0] == "paused"
    assert runner.invoke(root, ["campaign", "resume", cid]).exit_code == 0
    assert db.execute(status, [cid]).fetchone()[0] == "running"
    bad = runner.invoke(root, ["campaign", "status", "nope"])
    assert bad.exit_code != 0 and "no campaign 'nope'" in bad.output


def test_plan_with_invalid_policy_fails_clearly(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("IVR_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    pol = tmp_path / "p.yaml"
    pol.write_text("caps:\n  per_day: -1\n", encoding="utf-8")
    r = CliRunner().invoke(root, ["campaign", "plan", "x", "--script", "s", "--policy", str(pol)])
    assert r.exit_code != 0 and "p.yaml:2: caps.per_day" in r.output
