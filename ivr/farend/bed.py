"""A complete local telephony bed: Asterisk + FastAGI daemon + sipp customers, all on loopback.

Used by the real-call tests and by ``ivr demo``. Every process it starts, it stops; every port is a
free one on 127.0.0.1, so beds never collide with each other or with a running installation.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ivr.asterisk.process import Asterisk
from ivr.config import PROJECT_ROOT, Settings, load_settings
from ivr.farend.sipp import Customer, SippCustomer
from ivr.files import open_private_log
from ivr.store import open_db

if TYPE_CHECKING:
    from ivr.dialer.types import DialResult

LOOPBACK = "127.0.0.1"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def free_udp_range(size: int) -> int:
    """A start port with ``size`` consecutive free UDP ports (even, for RTP)."""
    for _ in range(200):
        start = free_port(socket.SOCK_DGRAM) & ~1
        if start + size >= 65000:
            continue
        socks = []
        try:
            for p in range(start, start + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((LOOPBACK, p))
            return start
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free UDP port range on loopback")


def bed_config(home: Path, *, transport: str = "fastagi", **overrides: Any) -> dict[str, Any]:
    rtp = free_udp_range(200)
    cfg: dict[str, Any] = {
        "home": str(home),
        "agi": {"host": LOOPBACK, "port": free_port(), "transport": transport},
        "ami": {"host": LOOPBACK, "port": free_port(), "username": "ivr"},
        "asterisk": {"bind": LOOPBACK, "sip_port": free_port(socket.SOCK_DGRAM),
                     "rtp_start": rtp, "rtp_end": rtp + 199},
        "trunk": {"host": LOOPBACK, "port": free_port(socket.SOCK_DGRAM)},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    return cfg


class Bed:
    """``with Bed(tmp_path, customers=[...]) as bed: ...`` starts everything, stops it after."""

    def __init__(self, home: Path, customers: Sequence[Customer] = (), *,
                 transport: str = "fastagi", start_agi: bool = True,
                 extra_trunks: Sequence[str] = (), **overrides: Any) -> None:
        """``extra_trunks``: names of further carrier trunks, each with its own sipp."""
        self.home = home
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_file = home / "ivr.yaml"
        if extra_trunks:
            overrides["trunks"] = [{"name": name, "host": LOOPBACK,
                                    "port": free_port(socket.SOCK_DGRAM)}
                                   for name in extra_trunks]
        self.config_file.write_text(yaml.safe_dump(bed_config(home, transport=transport,
                                                              **overrides), allow_unicode=True))
        self.trunk_sipps: dict[str, SippCustomer] = {}
        self.settings: Settings = load_settings(self.config_file)
        self.customers = list(customers)
        self.start_agi = start_agi
        self.asterisk = Asterisk(self.settings)
        self.agi_proc: subprocess.Popen[bytes] | None = None
        self.sipp: SippCustomer | None = None
        self._old_env: dict[str, str | None] = {}

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> Bed:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["IVR_CONFIG"] = str(self.config_file)
        env.pop("IVR_HOME", None)
        return env

    def ivr(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``ivr ARGS`` run the way an operator runs it, against this bed's ivr.yaml."""
        return subprocess.run([sys.executable, "-m", "ivr", *args], env=self.env(),
                              capture_output=True, text=True, timeout=timeout, cwd=PROJECT_ROOT)

    def start(self) -> None:
        # Asterisk inherits IVR_CONFIG, so classic AGI processes find this bed's settings.
        for key, value in (("IVR_CONFIG", str(self.config_file)), ("IVR_HOME", None)):
            self._old_env[key] = os.environ.get(key)
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        from ivr.call.prompts import system_prompt

        system_prompt(self.settings, "apology",
                      "抱歉，系统暂时无法处理您的通话，我们稍后再与您联系。再见。")
        if self.customers:
            self.start_customers(self.customers)
        if self.start_agi:
            self.start_fastagi()
        self.asterisk.start()

    def start_customers(self, customers: Sequence[Customer]) -> None:
        if self.sipp is not None:
            self.sipp.stop()
        self.sipp = SippCustomer(customers, host=LOOPBACK, port=self.settings.trunk.port,
                                 media_port=free_udp_range(4),
                                 work_dir=self.home / "sipp")
        self.sipp.start()

    def start_trunk_customers(self, trunk: str, customers: Sequence[Customer]) -> SippCustomer:
        """sipp customers behind a further trunk (``extra_trunks``)."""
        conf = next(t for t in self.settings.trunks if t.name == trunk)
        if trunk in self.trunk_sipps:
            self.trunk_sipps[trunk].stop()
        sipp = SippCustomer(customers, host=LOOPBACK, port=conf.port,
                            media_port=free_udp_range(4), work_dir=self.home / f"sipp-{trunk}")
        sipp.start()
        self.trunk_sipps[trunk] = sipp
        return sipp

    def start_fastagi(self) -> None:
        log = open_private_log(self.home / "fastagi.log")
        self.agi_proc = subprocess.Popen(
            [sys.executable, "-m", "ivr", "-v", "agi", "serve"], env=self.env(),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.agi_proc.poll() is not None:
                raise RuntimeError("FastAGI daemon exited: " + self.fastagi_log())
            try:
                with socket.create_connection((LOOPBACK, self.settings.agi.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("FastAGI daemon did not start listening")

    def stop_fastagi(self) -> None:
        if self.agi_proc is not None and self.agi_proc.poll() is None:
            self.agi_proc.terminate()
            try:
                self.agi_proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.agi_proc.kill()
                self.agi_proc.wait()
        self.agi_proc = None

    def stop(self) -> None:
        try:
            self.asterisk.stop()
        finally:
            self.stop_fastagi()
            if self.sipp is not None:
                self.sipp.stop()
            for sipp in self.trunk_sipps.values():
                sipp.stop()
            for key, value in self._old_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    # -- helpers for tests ------------------------------------------------------------------------
    def fastagi_log(self) -> str:
        p = self.home / "fastagi.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def db(self) -> Any:
        return open_db(self.settings.db_path)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of a query on the bed's database, as dicts."""
        return list(self.db().query(sql, list(params)))

    def call_row(self, call_id: str, *, settled: bool = True, timeout: float = 10.0) -> Any:
        """The calls row, once the hangup handler has run (it may trail the dialer's result)."""
        deadline = time.monotonic() + timeout
        db = self.db()
        while True:
            rows = list(db["calls"].rows_where("id = ?", [call_id]))
            row = rows[0] if rows else None
            done = row is not None and (not settled or (row["ended_at"] and row["state"] !=
                                                        "in_progress" and row["hangup_cause"]))
            if done or time.monotonic() > deadline:
                return row
            time.sleep(0.1)

    def dial_survey(self, number: str, script: Path, *, language: str,
                    voice: str) -> DialResult:
        """Originate one survey call to ``number`` (digits) over AMI; asserts it was answered."""
        import asyncio

        from ivr.call.variables import CallVariables
        from ivr.dialer.ami import AmiOriginator

        async def run() -> DialResult:
            async with AmiOriginator.from_settings(self.settings) as o:
                return await o.dial(CallVariables(
                    phone="+" + number, caller_id=self.settings.trunk.caller_id,
                    script=str(script), language=language, voice=voice))

        result = asyncio.run(run())
        assert result.outcome == "answered", self.diagnostics()
        return result

    def answers(self, call_id: str) -> list[tuple[str, str | None, str, int]]:
        """(node, intent, input_mode, tries) of each stored answer of the call, in order."""
        rows = self.db()["answers"].rows_where("call_id = ?", [call_id], order_by="seq")
        return [(r["node"], r["intent"], r["input_mode"], r["tries"]) for r in rows]

    def diagnostics(self) -> str:
        """Everything useful when a real-call test fails."""
        parts = ["--- asterisk messages.log (tail) ---", self.asterisk.log_tail(80),
                 "--- fastagi.log (tail) ---", "\n".join(self.fastagi_log().splitlines()[-40:])]
        if self.sipp is not None:
            parts += ["--- sipp (tail) ---",
                      "\n".join(self.sipp.log_file.read_text(errors="replace").splitlines()[-20:])
                      if self.sipp.log_file.exists() else ""]
        return "\n".join(parts)
