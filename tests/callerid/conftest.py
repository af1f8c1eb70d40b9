"""Fixtures: a fresh database and a pool file written per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
import yaml
from cid_helpers import BJ, GZ, NJ, SH, SMALL_HEALTH

from ivr.callerid.config import PoolConfig, load_pool
from ivr.store import open_db


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite_utils.Database]:
    d = open_db(tmp_path / "ivr.db")
    yield d
    d.conn.close()


@pytest.fixture
def write_pool(tmp_path: Path) -> Callable[..., PoolConfig]:
    def write(numbers: list[dict[str, Any]] | None = None, **top: Any) -> PoolConfig:
        data: dict[str, Any] = {"timezone": "Asia/Shanghai", "health": dict(SMALL_HEALTH)}
        data["health"].update(top.pop("health", {}))
        data.update(top)
        data["numbers"] = numbers if numbers is not None else [
            {"number": n, "daily_cap": 100} for n in (SH, BJ, GZ, NJ)]
        path = tmp_path / "numbers.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        return load_pool(path)

    return write
