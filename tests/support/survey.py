"""Shared helpers for the survey tests: scripts, orders, a fixed clock and a run helper."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from ivr.config import PROJECT_ROOT
from ivr.store import CallRecorder, open_db
from ivr.survey.dialog import Dialog
from ivr.survey.engine import RunResult, SurveyRun
from ivr.survey.loader import load_script
from ivr.survey.script import RESULT_FIELDS, Script
from ivr.survey.simulate import ScriptedDialog

SURVEYS = PROJECT_ROOT / "surveys"
CMN = SURVEYS / "platform_satisfaction.cmn.yaml"
KO = SURVEYS / "platform_satisfaction.ko.yaml"

# 2024-05-06 06:00 UTC = 14:00 in Shanghai, 15:00 in Seoul.
NOW = datetime(2024, 5, 6, 6, 0, tzinfo=UTC)

ORDERS: dict[str, dict[str, Any]] = {
    "cmn": {"order_id": "A-1", "phone": "+8613912345678", "platform": "快乐购",
            "product": "丹东草莓", "price": 39.9, "merchant": "鲜果旗舰店", "host": "小李",
            "buyer_name": "王女士", "order_time": "2024-05-03T20:15:00+08:00"},
    "ko": {"order_id": "K-1", "phone": "+821012345678", "platform": "예시몰",
           "product": "딸기", "price": 15000.0, "merchant": "과일가게", "host": "민지",
           "buyer_name": "김민수", "order_time": "2024-05-03T20:15:00+09:00"},
}


def run(script: Script, dialog: Dialog, db: sqlite_utils.Database, call_id: str = "call-1",
        order: Mapping[str, Any] | None = None, **kw: Any) -> tuple[RunResult, CallRecorder]:
    rec = CallRecorder(db, call_id)
    order = dict(order or ORDERS[script.language])
    result = asyncio.run(SurveyRun(script, order, dialog, rec, clock=lambda: NOW, **kw).run())
    return result, rec


def run_answers(script: Script, answers: list[str], db: sqlite_utils.Database,
                call_id: str = "call-1", **kw: Any) -> tuple[RunResult, CallRecorder,
                                                            ScriptedDialog]:
    dialog = ScriptedDialog(answers)
    result, rec = run(script, dialog, db, call_id, **kw)
    return result, rec, dialog


def results(rec: CallRecorder) -> dict[str, Any]:
    row = rec.get() or {}
    return {f: row.get(f) for f in (*RESULT_FIELDS, "outcome", "state", "current_node")}


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based line of the nth line containing ``needle``."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    return hits[nth - 1]


def write(tmp: Path, text: str, name: str = "s.yaml") -> Path:
    p = tmp / name
    p.write_text(text, encoding="utf-8")
    return p


# --- fixtures (imported by the conftest.py of tests/survey and tests/call) ---
@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite_utils.Database]:
    d = open_db(tmp_path / "ivr.db")
    yield d
    d.conn.close()


@pytest.fixture(scope="session")
def cmn() -> Script:
    return load_script(CMN)


@pytest.fixture(scope="session")
def ko() -> Script:
    return load_script(KO)


@pytest.fixture(scope="session")
def scripts(cmn: Script, ko: Script) -> dict[str, Script]:
    return {"cmn": cmn, "ko": ko}
