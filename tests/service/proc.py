"""``ivr serve`` as a real process against a test bed: start, stop (SIGTERM), kill -9, and API
calls with a token."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from ivr.config import PROJECT_ROOT
from ivr.farend.bed import Bed
from ivr.service.auth import create_token, set_user
from ivr.store import open_db


class ServiceProc:
    def __init__(self, bed: Bed) -> None:
        self.bed = bed
        self.port = bed.settings.service.port
        self.base = f"http://127.0.0.1:{self.port}"
        db = open_db(bed.settings.db_path)
        self.token = create_token(db, "tests", "write")
        self.read_token = create_token(db, "tests-read", "read")
        set_user(db, "admin", "管理员 password", "write")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = bed.home / "service.out"
        self.client = httpx.Client(base_url=self.base, timeout=30, trust_env=False,
                                   headers={"Authorization": f"Bearer {self.token}"})

    def start(self, timeout: float = 30) -> ServiceProc:
        out = self.log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "ivr", "serve"], env=self.bed.env(),
                                     cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("ivr serve exited:\n" + self.output())
            try:
                if httpx.get(self.base + "/v1/openapi.json", timeout=1,
                             trust_env=False).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("ivr serve did not listen:\n" + self.output())

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:] if self.log.exists() else ""

    def service_log(self) -> list[str]:
        path = self.bed.settings.service_log
        return path.read_text(encoding="utf-8").splitlines() if path.exists() else []

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> ServiceProc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def get(self, path: str, **kw: Any) -> Any:
        resp = self.client.get(path, **kw)
        assert resp.status_code < 400, (path, resp.status_code, resp.text)
        return resp.json()

    def post(self, path: str, **kw: Any) -> Any:
        resp = self.client.post(path, **kw)
        assert resp.status_code < 400, (path, resp.status_code, resp.text)
        return resp.json()


def quiet_pool(home: Path) -> Path:
    """The shipped caller-ID pool with health judging off: declines in these tests are the
    callees' answers under test, not a verdict on the numbers (test_callerid_calls covers it)."""
    import yaml

    pool = yaml.safe_load((PROJECT_ROOT / "config" / "numbers.yaml").read_text())
    pool["health"] = {**pool["health"], "min_calls": 10**6, "min_answered": 10**6,
                      "min_rejections": 10**6}
    path = home / "quiet-numbers.yaml"
    path.write_text(yaml.safe_dump(pool))
    return path


def service_config(home: Path, *, port: int, rules: list[dict[str, Any]],
                   receiver_url: str | None = None, backoff_s: float = 1.0,
                   max_backoff_s: float = 3.0) -> dict[str, Any]:
    """The bed's ``service:`` section: rules file, all-day policy, webhooks to the receiver
    (none without ``receiver_url``)."""
    import yaml

    from ivr.farend.campaign import all_day_policy, all_day_segments

    events = home / "events.yaml"
    events.write_text(yaml.safe_dump({"rules": rules}, allow_unicode=True), encoding="utf-8")
    return {
        "port": port, "events": str(events), "recurring": None, "scan_s": 0.5, "poll_s": 0.5,
        "policy": str(all_day_policy(home / "service-policy.yaml", backoff_s=1.0,
                                     max_concurrent=2, cps=2, ring_timeout_s=5)),
        "segments": str(all_day_segments(home / "service-segments.yaml")),
        "scripts": [str(PROJECT_ROOT / "surveys"), str(PROJECT_ROOT / "tests" / "data")],
        "webhooks": {} if receiver_url is None else {
            "call_finished": f"{receiver_url}/calls", "fulfilment": f"{receiver_url}/fulfil",
            "secret": "test-webhook-secret", "backoff_s": backoff_s, "factor": 1.5,
            "max_backoff_s": max_backoff_s, "max_tries": 1000, "timeout_s": 3},
    }
