"""External flags (CSV, HTTP POST on 127.0.0.1) and manual flags take a number out at once."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from cid_helpers import BJ, GZ, SH, T0

from ivr.callerid.flags import import_csv
from ivr.callerid.flagserver import FlagServer
from ivr.callerid.health import check_pool
from ivr.callerid.rotation import CallerIdUnusable, assert_usable, pick_caller_id
from ivr.callerid.state import ACTIVE, FLAGGED, active_flags, add_flag, get_number, sync_pool
from ivr.store import open_db


def test_csv_import_flags_and_reports_bad_rows(db, write_pool, tmp_path: Path) -> None:
    pool = write_pool()
    sync_pool(db, pool, now=T0)
    feed = tmp_path / "feed.csv"
    feed.write_text(
        "number,reason,score,expires_at\n"                       # 1 (score: extra column, ignored)
        f"{SH},marked as harassment by 360 phone guard,97,\n"   # 2
        "+86abc,spam,50,\n"                                      # 3 bad number
        f"{BJ},,10,\n"                                           # 4 no reason
        f"{GZ},spam,80,yesterday\n"                              # 5 bad time
        "+8613800138000,not ours,1,\n",                         # 6 unknown to the pool: kept
        encoding="utf-8")
    result = import_csv(db, feed, now=T0)
    assert result.flagged == [SH, "+8613800138000"]
    assert result.unknown == ["+8613800138000"]
    assert [e.split(": ")[0] for e in result.errors] == [f"{feed}:3", f"{feed}:4", f"{feed}:5"]
    assert "reason" in result.errors[1] and "expires_at" in result.errors[2]
    assert get_number(db, SH)["state"] == FLAGGED
    assert get_number(db, BJ)["state"] == ACTIVE
    flags = active_flags(db, SH, now=T0)
    assert flags[0]["source"] == "csv:feed.csv"
    with pytest.raises(CallerIdUnusable, match="360 phone guard"):
        assert_usable(db, SH, now=T0)


def test_csv_without_required_header_imports_nothing(db, tmp_path: Path) -> None:
    feed = tmp_path / "feed.csv"
    feed.write_text(f"phone,why\n{SH},spam\n", encoding="utf-8")
    result = import_csv(db, feed, now=T0)
    assert result.flagged == [] and "header must name columns" in result.errors[0]
    assert active_flags(db, now=T0) == []


def test_flag_expires(db, write_pool) -> None:
    pool = write_pool()
    sync_pool(db, pool, now=T0)
    add_flag(db, SH, "temporary listing", "feed", now=T0, expires_at=T0 + timedelta(hours=1))
    assert active_flags(db, SH, now=T0 + timedelta(minutes=59))
    assert not active_flags(db, SH, now=T0 + timedelta(minutes=61))


def _post(url: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_http_post_flags_a_number(tmp_path: Path, write_pool) -> None:
    db_path = tmp_path / "ivr.db"
    db = open_db(db_path)
    pool = write_pool()
    sync_pool(db, pool, now=T0)
    assert pick_caller_id(db, pool, "+8613912345678", now=T0) != ""
    server = FlagServer(db_path, port=0, clock=lambda: T0).start()
    try:
        assert server.httpd.server_address[0] == "127.0.0.1"
        status, body = _post(f"{server.url}/flags", json.dumps(
            {"number": SH, "reason": "carrier reputation: spam", "source": "carrier-feed"}
        ).encode())
        assert status == 200 and body["flagged"] == [SH]
        status, body = _post(f"{server.url}/flags", json.dumps(
            [{"number": BJ, "reason": "app: harassment"}, {"number": "12", "reason": "x"}]
        ).encode())
        assert status == 200 and body["flagged"] == [BJ] and body["errors"][0].startswith("item 1")
        status, body = _post(f"{server.url}/flags", b"{not json")
        assert status == 400 and "not valid JSON" in body["error"]
        status, body = _post(f"{server.url}/flags", json.dumps({"number": GZ}).encode())
        assert status == 400 and "reason" in body["errors"][0]
        with urllib.request.urlopen(f"{server.url}/flags", timeout=5) as resp:
            listed = json.loads(resp.read())["flags"]
        assert {f["number"] for f in listed} == {SH, BJ}
    finally:
        server.stop()
    # the flags landed in the database and took the numbers out of rotation
    assert get_number(db, SH)["state"] == FLAGGED
    assert active_flags(db, SH, now=T0)[0]["source"] == "carrier-feed"
    assert get_number(db, BJ)["state"] == FLAGGED
    for _ in range(10):
        assert pick_caller_id(db, pool, "+8613912345678", now=T0) in (GZ, "+862580001001")
    # and the socket is closed
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{server.url}/health", timeout=1)


def test_flag_server_refuses_non_loopback(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        FlagServer(tmp_path / "ivr.db", host="0.0.0.0")


def test_manual_flag_survives_clean_health(db, write_pool) -> None:
    pool = write_pool()
    sync_pool(db, pool, now=T0)
    add_flag(db, SH, "customer complaint", "manual", now=T0)
    report = check_pool(db, pool, now=T0 + timedelta(hours=5))
    sh = next(n for n in report.numbers if n.number == SH)
    assert sh.state == FLAGGED and sh.score == 0 and sh.flags == ["manual: customer complaint"]
