"""A database made by an older version opens with the columns added and its rows kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ivr.store import open_db


def test_answers_of_an_old_database_gain_confirmed(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE answers (id INTEGER PRIMARY KEY, call_id TEXT, seq INTEGER, "
                 "node TEXT, intent TEXT)")
    conn.execute("INSERT INTO answers (call_id, seq, node, intent) VALUES ('c1', 1, 'q', 'yes')")
    conn.commit()
    conn.close()
    db = open_db(path)
    assert "confirmed" in db["answers"].columns_dict
    assert [(r["node"], r["intent"], r["confirmed"]) for r in db["answers"].rows] == [
        ("q", "yes", None)]
    open_db(path)  # idempotent
