"""Database failures are reasons, not tracebacks (#13): a read-only database (read commands still
work), a full disk (the real cause, not the rollback's error) and a corrupt file (named, left
untouched, with what to do). Each case is real: a read-only bind mount, a small tmpfs filled up,
a file with garbage, all in a private mount namespace; every command runs as an operator would
run it (``python -m ivr``), and the database file is byte-for-byte unchanged afterwards."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from ivr.cli import root

MINI = Path(__file__).parent / "data" / "mini.cmn.yaml"
DRIVER = r'''
import hashlib, json, subprocess, sys
cfg, db, cmds = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
digest = lambda: hashlib.sha256(open(db, "rb").read()).hexdigest()
before = digest()
out = []
for cmd in cmds:
    p = subprocess.run([sys.executable, "-m", "ivr", "-c", cfg, *cmd], capture_output=True,
                       text=True, timeout=120)
    out.append({"cmd": cmd, "rc": p.returncode, "out": p.stdout, "err": p.stderr,
                "unchanged": digest() == before})
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory,
              mount_namespaces: None) -> dict[str, Any]:
    """A home with imported orders and a planned campaign."""
    tmp = tmp_path_factory.mktemp("store")
    home = tmp / "home"
    cfg = tmp / "ivr.yaml"
    cfg.write_text(yaml.safe_dump({"home": str(home)}))
    orders = tmp / "orders.csv"
    rows = "".join(f"O{i},139{i:08d},奶瓶,母婴,89,店,主播,2025-06-10 10:00\n"
                   for i in range(50))
    orders.write_text("order_id,phone,product,category,price,merchant,host,order_time\n" + rows,
                      encoding="utf-8")
    more = tmp / "more.csv"
    more.write_text("order_id,phone,product,category,price,merchant,host,order_time\n" + "".join(
        f"N{i},138{i:08d},{'x' * 40},零食,5,店,主播,2025-06-11 10:00\n" for i in range(3000)),
        encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(root, ["-c", str(cfg), "campaign", "import", str(orders)]).exit_code == 0
    r = runner.invoke(root, ["-c", str(cfg), "campaign", "plan", "june", "--script", str(MINI),
                             "--reference", "2025-06-15T12:00:00+08:00"])
    assert r.exit_code == 0, r.output
    cid = json.loads(r.output.strip().splitlines()[-1])["campaign_id"]
    conn = sqlite3.connect(home / "ivr.db")  # everything in the main file, none in the WAL
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return {"tmp": tmp, "home": home, "cfg": cfg, "cid": cid, "more": more,
            "db": home / "ivr.db"}


def reads(p: dict[str, Any]) -> list[list[str]]:
    return [["report", p["cid"]], ["status"], ["campaign", "status", p["cid"]]]


def writes(p: dict[str, Any]) -> list[list[str]]:
    return [["campaign", "import", str(p["more"])],
            ["campaign", "plan", "again", "--script", str(MINI)],
            ["campaign", "pause", p["cid"]]]


def in_namespace(p: dict[str, Any], setup: str, cmds: list[list[str]],
                 db: Path | None = None) -> list[dict[str, Any]]:
    driver = p["tmp"] / "driver.py"
    driver.write_text(DRIVER)
    args = " ".join(f"'{a}'" for a in (sys.executable, driver, p["cfg"], db or p["db"]))
    script = f"set -e\n{setup}\nexec {args} '{json.dumps(cmds)}'\n"
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout.strip().splitlines()[-1]))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_reason(result: dict[str, Any], *words: str) -> None:
    assert result["rc"] == 3, result
    assert "Traceback" not in result["err"], result["err"]
    line = result["err"].strip().splitlines()[-1]
    assert line.startswith("error: ") and all(w in line for w in words), line
    assert result["unchanged"], result


def test_read_only_database_reads_work_writes_say_why(populated: dict[str, Any]) -> None:
    p = populated
    before = sha(p["db"])
    home = p["home"]
    setup = f"mount --bind '{home}' '{home}'\nmount -o remount,bind,ro '{home}'"
    results = in_namespace(p, setup, reads(p) + writes(p))
    for r in results[:3]:
        assert r["rc"] == 0 and "Traceback" not in r["err"], r
        assert r["unchanged"]
    assert "Campaign june" in results[0]["out"] and "june" in results[2]["out"]
    for r in results[3:]:
        assert_reason(r, str(p["db"]), "read-only", "Read commands", "still work")
    assert sha(p["db"]) == before


def test_full_disk_shows_the_real_cause(populated: dict[str, Any]) -> None:
    p = populated
    home = p["tmp"] / "full-home"
    home.mkdir()
    cfg = p["tmp"] / "full.yaml"
    cfg.write_text(yaml.safe_dump({"home": str(home)}))
    db = home / "ivr.db"
    # A 1 MiB tmpfs with the database, filled up to 36 KiB: room for the WAL index (32 KiB) so
    # reads work, none for a WAL frame (4 KiB + header), so every write meets a full disk.
    setup = (f"mount -t tmpfs -o size=1m tmpfs '{home}'\ncp '{p['db']}' '{db}'\n"
             f"dd if=/dev/zero of='{home}/fill' bs=4096 2>/dev/null || true\n"
             f"truncate -s -36K '{home}/fill'")
    q = {**p, "cfg": cfg}
    results = in_namespace(q, setup, reads(q) + writes(q), db=db)
    for r in results[:3]:
        assert r["rc"] == 0 and r["unchanged"], r
    for r in results[3:]:
        assert_reason(r, str(db), "the disk is full", "Free space")
        assert "rollback" not in r["err"] and "no transaction is active" not in r["err"]


@pytest.mark.parametrize("damage", ["garbage", "pages"])
def test_corrupt_database_is_named_left_untouched_with_what_to_do(
        populated: dict[str, Any], tmp_path: Path, damage: str) -> None:
    p = populated
    home = tmp_path / "home"
    home.mkdir()
    db = home / "ivr.db"
    data = bytearray(p["db"].read_bytes())
    if damage == "garbage":
        data = bytearray(os.urandom(len(data)))
    else:  # a valid header and schema page, every table page overwritten
        data[4096:] = b"\xa5" * (len(data) - 4096)
    db.write_bytes(bytes(data))
    cfg = tmp_path / "ivr.yaml"
    cfg.write_text(yaml.safe_dump({"home": str(home)}))
    before = sha(db)
    q = {**p, "cfg": cfg, "tmp": tmp_path}
    for r in in_namespace(q, "true", reads(q) + writes(q), db=db):
        assert_reason(r, str(db), "not a usable ivr database", "left untouched",
                      f"mv {db} {db}.corrupt", ".recover")
    assert sha(db) == before
    assert not (home / "ivr.db-wal").exists() or (home / "ivr.db-wal").stat().st_size == 0


def test_a_full_disk_during_import_is_raised_not_hidden_by_the_rollback(tmp_path: Path) -> None:
    """SQLite rolls a transaction back by itself on SQLITE_FULL; the importer's own rollback used
    to fail then ('no transaction is active') and hide the cause. (Injected: max_page_count.)"""
    from ivr.campaign.importer import import_orders
    from ivr.store import explain, open_db

    db = open_db(tmp_path / "ivr.db")
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages + 2}")
    src = tmp_path / "o.csv"
    src.write_text("order_id,phone,product,category,price,merchant,host,order_time\n" + "".join(
        f"N{i},138{i:08d},{'x' * 50},零食,5,店,主播,2025-06-11 10:00\n" for i in range(2000)),
        encoding="utf-8")
    with pytest.raises(sqlite3.OperationalError, match="database or disk is full") as err:
        import_orders(db, src)
    assert explain(err.value, tmp_path / "ivr.db").kind == "full"
    assert db["orders"].count == 0 and not db.conn.in_transaction
