"""``ivr report`` and ``ivr status`` through the real root command."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.cli import root
from ivr.store import open_db


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fill_db: Callable[..., None]) -> Path:
    monkeypatch.chdir(tmp_path)  # no stray ./ivr.yaml
    monkeypatch.setenv("IVR_HOME", str(tmp_path / "var"))
    monkeypatch.delenv("IVR_CONFIG", raising=False)
    db = open_db(tmp_path / "var" / "ivr.db")
    fill_db(db)
    db.conn.close()
    return tmp_path


def test_report_json_csv_html(home: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(root, ["report", "c1", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["funnel"]["answered"] == 7
    assert data["funnel"]["recovery_rate"]["num"] == 2
    res = runner.invoke(root, ["report", "c1", "--csv", "out", "--html", "r.html",
                               "--threshold", "20%", "--min-count", "2"])
    assert res.exit_code == 0, res.output
    assert (home / "out" / "merchants.csv").read_text(encoding="utf-8").count("true") == 2
    assert "<svg" in (home / "r.html").read_text(encoding="utf-8")


def test_report_terminal_and_errors(home: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(root, ["report", "c1"])
    assert res.exit_code == 0, res.output
    assert "Merchant ranking" in res.output and "M2" in res.output
    res = runner.invoke(root, ["report", "nope"])
    assert res.exit_code == 1 and "unknown campaign 'nope'" in res.output
    res = runner.invoke(root, ["report", "c1", "--threshold", "abc"])
    assert res.exit_code == 2 and "not a rate" in res.output


def test_help_has_examples() -> None:
    runner = CliRunner()
    for args in (["report", "--help"], ["status", "--help"]):
        res = runner.invoke(root, args)
        assert res.exit_code == 0 and "Examples:" in res.output


def test_status(home: Path) -> None:
    db = open_db(home / "var" / "ivr.db")
    db["calls"].insert({"id": "live1", "phone": "+8613900000042", "campaign_id": "c1",
                        "state": "in_progress", "current_node": "satisfaction",
                        "started_at": "2024-05-01T08:00:00.000Z"})
    db["calls"].insert({"id": "bad1", "phone": "+8613900000043", "campaign_id": "c1",
                        "state": "error", "error": "KeyError: 'price'",
                        "started_at": "2024-05-01T08:01:00.000Z",
                        "ended_at": "2024-05-01T08:01:05.000Z"})
    db["attempts"].insert({"id": 500, "campaign_id": "c1", "phone": "+8613900000044",
                           "outcome": "failed", "sip_code": 503, "q850_cause": 34,
                           "started_at": "2024-05-01T08:02:00.000Z"})
    res = CliRunner().invoke(root, ["status", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [c["id"] for c in data["campaigns"]] == ["c1"]
    assert data["campaigns"][0]["contacts"] == 9
    assert [c["id"] for c in data["live_calls"]] == ["live1"]
    assert "*" in data["live_calls"][0]["phone"]
    errors = [(e["source"], e["id"]) for e in data["errors"]]
    assert errors[:2] == [("attempt", "500"), ("call", "bad1")]
    assert "SIP 503, Q.850 34" in data["errors"][0]["detail"]
    # the caller-ID package's table, if present, is summarised (read defensively)
    if "numbers" in db.table_names():
        assert data["number_pool"] is not None
    else:
        assert data["number_pool"] is None
    res = CliRunner().invoke(root, ["status"])
    assert res.exit_code == 0 and "Live calls: 1" in res.output and "KeyError" in res.output


def test_status_reads_a_minimal_numbers_table(home: Path) -> None:
    db = open_db(home / "var" / "ivr.db")
    if "numbers" in db.table_names():
        db.execute("DELETE FROM numbers")
        db["numbers"].insert_all([
            {"number": "+861080000001", "state": "active", "score": 0.9},
            {"number": "+861080000002", "state": "flagged", "score": 0.2}])
    else:
        db["numbers"].insert_all([
            {"number": "+861080000001", "state": "active", "score": 0.9},
            {"number": "+861080000002", "state": "flagged", "score": 0.2}], pk="number")
    data = json.loads(CliRunner().invoke(root, ["status", "--json"]).stdout)
    pool = data["number_pool"]
    assert pool["total"] == 2 and pool["by_state"] == {"active": 1, "flagged": 1}
    assert pool["lowest"][0]["number"] == "+861080000002"


def test_report_never_reads_data_as_markup(home: Path) -> None:
    """Merchant, host, campaign name and transcripts are data (#13): shown literally, never as
    rich markup or terminal control sequences."""
    db = open_db(home / "var" / "ivr.db")
    hostile = {"o1": "[/oops]", "o2": "[bold red]M1[/]", "o3": "[link=http://x]M2",
               "o4": "\x1b[2J\x1b]0;pwned\x07M2", "o5": "M3\\"}
    for oid, merchant in hostile.items():
        db["orders"].update(oid, {"merchant": merchant, "host": merchant})
    db["campaigns"].update("c1", {"name": "[/] [bold]五一"})
    db["answers"].update(2, {"transcript": "[/red]希望\x1b[31m"})
    db.conn.close()
    res = CliRunner().invoke(root, ["report", "c1", "--min-count", "1"],
                             env={"COLUMNS": "400"})  # rich folds long cells otherwise
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "Campaign [/] [bold]五一" in out
    for text in ("[/oops]", "[bold red]M1[/]", "[link=http://x]M2", "M3\\",
                 "\\x1b[2J\\x1b]0;pwned\\x07M2", "[/red]希望\\x1b[31m"):
        assert text in out, (text, out)
    assert "\x1b" not in out and "\x07" not in out
