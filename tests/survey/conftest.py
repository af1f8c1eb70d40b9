from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlite_utils

sys.path.insert(0, str(Path(__file__).parent))  # survey_helpers, whatever the import mode

from survey_helpers import CMN, KO  # noqa: E402

from ivr.store import open_db
from ivr.survey.loader import load_script
from ivr.survey.script import Script


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
