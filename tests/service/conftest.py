"""Fixtures for the service's fast tests: a Service on a temporary home (no Asterisk: the API,
the event rules and the stores run for real; dialing is the real-call tests' business)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from ivr.config import PROJECT_ROOT, load_settings
from ivr.farend.campaign import all_day_policy, all_day_segments
from ivr.service.app import create_app
from ivr.service.auth import create_token, set_user
from ivr.service.core import Service

MINI = PROJECT_ROOT / "tests" / "data" / "mini.cmn.yaml"


def order(i: int, phone: str | None = None, **over: Any) -> dict[str, Any]:
    when = (datetime.now(UTC) - timedelta(hours=2)).isoformat(timespec="seconds")
    row = {"order_id": f"A{i:05d}", "phone": phone or f"+86138001{i:05d}", "product": "婴儿湿巾",
           "category": "baby", "price": "39.9", "merchant": "好妈妈旗舰店", "host": "小李",
           "order_time": when}
    row.update(over)
    return row


def write_service_config(home: Path, *, rules: list[dict[str, Any]] | None = None,
                         extra: dict[str, Any] | None = None) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    events = home / "events.yaml"
    events.write_text(yaml.safe_dump({"rules": rules if rules is not None else [{
        "name": "not-dispatched", "event": "order.not_dispatched", "action": "call",
        "when": [{"field": "data.hours_since_order", "gte": 1}],
        "script": str(MINI), "delay": "2s", "outside_window": "message",
        "message": "【{{ platform }}】您的{{ product }}暂未发货，正在加急。回T退订",
        "dedupe": {"by": "order", "window": "1h"}}]}, allow_unicode=True), encoding="utf-8")
    cfg: dict[str, Any] = {
        "home": str(home),
        "service": {
            "port": 8080, "events": str(events), "recurring": None,
            "policy": str(all_day_policy(home / "policy.yaml")),
            "segments": str(all_day_segments(home / "segments.yaml")),
            "scripts": [str(PROJECT_ROOT / "surveys"), str(PROJECT_ROOT / "tests" / "data")],
        },
    }
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    path = home / "ivr.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return path


class Api:
    def __init__(self, client: TestClient, service: Service, tokens: dict[str, str]) -> None:
        self.client = client
        self.service = service
        self.tokens = tokens

    def call(self, method: str, path: str, scope: str | None = "write",
             **kw: Any) -> Any:
        headers = kw.pop("headers", {})
        if scope is not None:
            headers["Authorization"] = f"Bearer {self.tokens[scope]}"
        return self.client.request(method, path, headers=headers, **kw)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings = load_settings(write_service_config(tmp_path / "home"))
    service = Service(settings)
    tokens = {scope: create_token(service.db, f"test-{scope}", scope)
              for scope in ("read", "write")}
    set_user(service.db, "admin", "correct horse", "write")
    set_user(service.db, "viewer", "viewer pass", "read")
    with TestClient(create_app(service), base_url="http://127.0.0.1") as client:
        yield Api(client, service, tokens)
