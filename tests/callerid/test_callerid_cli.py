"""`ivr numbers ...` through click's CliRunner: output and exit status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cid_helpers import BJ, GZ, NJ, SH, add_attempts, mix
from click.testing import CliRunner

from ivr.callerid.cli import numbers
from ivr.callerid.state import iso, utc
from ivr.store import open_db


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("IVR_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("IVR_CONFIG", raising=False)
    return tmp_path / "home"


def run(pool_file: Path, *args: str):
    return CliRunner().invoke(numbers, ["--file", str(pool_file), *args], catch_exceptions=False)


def pool_path(write_pool) -> Path:
    return Path(write_pool().source)


def test_check_healthy_pool_exits_zero(home: Path, write_pool) -> None:
    f = pool_path(write_pool)
    db = open_db(home / "ivr.db")
    now = utc(None)
    for n in (SH, BJ, GZ, NJ):
        add_attempts(db, n, mix(12, 8), at=now)
    result = run(f, "check", "--campaign-size", "300")
    assert result.exit_code == 0, result.output
    out = result.output
    for col in ("number", "calls", "answer", "short", "rejections", "flags", "score", "state",
                "why"):
        assert col in out
    assert f"{SH}" in out and "60%" in out and "active" in out
    assert "OK: pool 'default' can serve the campaign for 300 calls" in out


def test_check_unhealthy_pool_exits_one(home: Path, write_pool) -> None:
    f = Path(write_pool(numbers=[{"number": SH}, {"number": BJ}]).source)
    db = open_db(home / "ivr.db")
    now = utc(None)
    add_attempts(db, SH, ["rejected"] * 6, sip_code=603, at=now)
    add_attempts(db, BJ, mix(2, 3), at=now)
    assert run(f, "flag", BJ, "--reason", "360 guard: harassment").exit_code == 0
    result = run(f, "check")
    assert result.exit_code == 1, result.output
    assert "CANNOT SERVE: pool 'default' has no healthy number (2 flagged)" in result.output
    assert "active->flagged" in result.output and "explicit rejections" in result.output
    assert "360 guard: harassment" in result.output
    # JSON for machines, same verdict
    result = run(f, "check", "--json")
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["ok"] is False
    by = {n["number"]: n for n in data["numbers"]}
    # the rejections came before the flag; the re-check finds no fresh ones: cool-down begins
    assert by[SH]["state"] == "cooling_down" and by[SH]["previous_state"] == "flagged"
    assert by[SH]["rejections"] == 0 and any("cooling down until" in w for w in by[SH]["why"])
    assert by[BJ]["state"] == "flagged"
    assert by[BJ]["flags"] == ["manual: 360 guard: harassment"]


def test_check_capacity_below_campaign_size(home: Path, write_pool) -> None:
    f = Path(write_pool(numbers=[{"number": SH, "daily_cap": 100},
                                 {"number": BJ, "daily_cap": 50}]).source)
    assert run(f, "check", "--campaign-size", "150").exit_code == 0
    result = run(f, "check", "--campaign-size", "151", "--json")
    assert result.exit_code == 1
    assert json.loads(result.output)["problems"] == [
        "pool 'default' can make 150 more calls today on healthy numbers; the campaign needs 151"]


def test_unflag_starts_cooldown(home: Path, write_pool) -> None:
    f = pool_path(write_pool)
    run(f, "flag", SH, "--reason", "test")
    result = run(f, "unflag", SH, "--reason", "delisted")
    assert result.exit_code == 0 and "state cooling_down" in result.output
    result = run(f, "unflag", SH, "--reason", "urgent", "--skip-cooldown")
    assert "state active" in result.output
    hist = run(f, "history", SH)
    assert "cooling_down" in hist.output and "delisted" in hist.output


def test_flags_import_cli(home: Path, write_pool, tmp_path: Path) -> None:
    f = pool_path(write_pool)
    feed = tmp_path / "feed.csv"
    feed.write_text(f"number,reason\n{SH},spam\nbad,spam\n", encoding="utf-8")
    result = CliRunner().invoke(
        numbers, ["--file", str(f), "flags", "import", str(feed)])
    assert result.exit_code == 1
    assert "flagged 1, cleared 0, errors 1" in result.stdout
    assert f"{feed}:3: number:" in result.stderr
    listed = run(f, "flags", "list").output
    assert SH in listed and "csv:feed.csv" in listed


def test_bad_pool_file_exit_two_with_line(home: Path, tmp_path: Path) -> None:
    f = tmp_path / "numbers.yaml"
    f.write_text("numbers:\n  - number: '+862150001001'\n    daily_cap: zero\n", encoding="utf-8")
    result = run(f, "check")
    assert result.exit_code == 2
    assert f"{f}:3: numbers[0].daily_cap:" in result.output


def test_bad_number_argument(home: Path, write_pool) -> None:
    result = run(pool_path(write_pool), "flag", "12345", "--reason", "x")
    assert result.exit_code == 2 and "invalid phone number" in result.output


def test_iso_helper_roundtrip() -> None:
    now = utc(None)
    assert iso(now).endswith("Z")
