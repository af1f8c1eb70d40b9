"""Fixtures of the report tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlite_utils
from report_data import fill

from ivr.store import open_db


@pytest.fixture()
def db(tmp_path: Path) -> sqlite_utils.Database:
    database = open_db(tmp_path / "ivr.db")
    fill(database)
    # noise from another campaign must not leak into c1's figures
    database["campaigns"].insert({"id": "other", "name": "other", "status": "done"})
    database["contacts"].insert({"id": 100, "campaign_id": "other", "phone": "+8613900000001",
                                 "state": "done"})
    database["attempts"].insert({"id": 100, "campaign_id": "other", "contact_id": 100,
                                 "outcome": "answered", "started_at": "2024-05-01T02:00:00Z"})
    database["calls"].insert({"id": "x1", "campaign_id": "other", "contact_id": 100,
                              "attempt_id": 100, "outcome": "completed", "satisfied": 0})
    return database
