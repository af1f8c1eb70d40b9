from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ivr.campaign  # noqa: F401  (registers the campaign schema)
from ivr.call.variables import CallVariables
from ivr.campaign.policy import PolicyConfig
from ivr.campaign.segments import SegmentsConfig
from ivr.dialer.types import DialResult
from ivr.store import open_db

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db(tmp_path: Path) -> Any:
    d = open_db(tmp_path / "ivr.db")
    yield d
    d.conn.close()


def all_day_segments(**extra: Any) -> SegmentsConfig:
    """One segment callable around the clock (dialer tests are about the dialer, not hours)."""
    data: dict[str, Any] = {
        "default_segment": "general",
        "segments": {"general": {"voice": "v1", "windows": [{"start": "00:00", "end": "24:00"}]}},
    }
    data.update(extra)
    return SegmentsConfig.model_validate(data)


def open_policy(**over: Any) -> PolicyConfig:
    data: dict[str, Any] = {"quiet_hours": None, "caps": {"per_day": None, "per_window": None}}
    data.update(over)
    return PolicyConfig.model_validate(data)


def add_orders(db: Any, phones: list[str], *, days_ago: float = 1.0, category: str = "零食",
               price: float = 10.0, prefix: str = "O") -> None:
    from datetime import UTC, datetime, timedelta

    when = (datetime.now(UTC) - timedelta(days=days_ago)).isoformat(timespec="seconds")
    db.conn.executemany(
        "INSERT INTO orders (order_id, phone, product, category, price, merchant, host, "
        "order_time, is_test) VALUES (?, ?, 'p', ?, ?, 'm', 'h', ?, 0)",
        [(f"{prefix}{i}", p, category, price, when) for i, p in enumerate(phones)])


def make_campaign(db: Any, phones: list[str], policy: PolicyConfig | None = None,
                  segments: SegmentsConfig | None = None, **kw: Any) -> str:
    from ivr.campaign.planner import plan_campaign

    add_orders(db, phones)
    result = plan_campaign(db, "test", script="surveys/s.yaml", policy=policy or open_policy(),
                           segments=segments or all_day_segments(), **kw)
    return result.campaign_id


def phones(n: int, start: int = 0) -> list[str]:
    return [f"+86139{i:08d}" for i in range(start, start + n)]



class FakeOriginator:
    def __init__(self, outcomes: dict[str, list[DialResult]] | None = None,
                 default: DialResult | None = None, delay: float = 0.01,
                 on_dial: Callable[[CallVariables], None] | None = None) -> None:
        self.outcomes = {k: list(v) for k, v in (outcomes or {}).items()}
        self.default = default or DialResult("answered", sip_code=200, q850_cause=16)
        self.delay = delay
        self.on_dial = on_dial
        self.requests: list[tuple[float, CallVariables]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def dial(self, request: CallVariables) -> DialResult:
        self.requests.append((time.monotonic(), request))
        if self.on_dial:
            self.on_dial(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        script = self.outcomes.get(request.phone)
        if script:
            return script.pop(0) if len(script) > 1 else script[0]
        return self.default

    def dialed(self, phone: str) -> int:
        return sum(1 for _, r in self.requests if r.phone == phone)


@pytest.fixture
def fake() -> type[FakeOriginator]:
    """The fake Originator class (scripted outcomes per phone, records requests)."""
    return FakeOriginator


class Helpers:
    """Test helpers handed out as a fixture (no imports between test modules)."""

    make_campaign = staticmethod(make_campaign)
    add_orders = staticmethod(add_orders)
    open_policy = staticmethod(open_policy)
    all_day_segments = staticmethod(all_day_segments)
    phones = staticmethod(phones)
    root = ROOT


@pytest.fixture
def h() -> type[Helpers]:
    return Helpers
