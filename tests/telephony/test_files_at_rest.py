"""Secrets and buyer data stay private on disk (#13): after ``ivr setup``, ``ivr asterisk start``,
the FastAGI daemon, a campaign and a recorded answer - all run as an operator would, from a
permissive shell (umask 022) - every file under the installation's home is 0600 and every
directory 0700, and so is the import's rejects file (it holds raw order rows)."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ivr.config import PROJECT_ROOT, Settings, load_settings
from ivr.farend import campaign as helpers
from ivr.farend.bed import LOOPBACK, bed_config, free_udp_range
from ivr.farend.customer_plan import Answer, plan_customer
from ivr.farend.sipp import SippCustomer
from ivr.speech.tts import engine
from ivr.survey.loader import load_script

pytestmark = [pytest.mark.asterisk, pytest.mark.usefixtures("telephony")]

SCRIPT = PROJECT_ROOT / "surveys" / "platform_satisfaction.cmn.yaml"
VOICE = "cmn-calm-male"
NUMBER = "8613800139201"


def ivr(cfg: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("IVR_CONFIG", "IVR_HOME")}
    p = subprocess.run([sys.executable, "-m", "ivr", "-c", str(cfg), *args], env=env,
                       capture_output=True, text=True, timeout=timeout, cwd=PROJECT_ROOT)
    assert p.returncode == 0, f"ivr {' '.join(args)}: {p.stdout}\n{p.stderr}"
    return p


def loose(root: Path) -> list[str]:
    """Everything under ``root`` that group or others could read, write or enter."""
    out = []
    for p in [root, *root.rglob("*")]:
        if p.is_symlink():
            continue
        mode = stat.S_IMODE(p.lstat().st_mode)
        if mode & 0o077 or (p.is_dir() and mode != 0o700):
            out.append(f"{oct(mode)} {p.relative_to(root)}")
    return out


def test_files_at_rest_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    home = tmp_path / "home"
    cfg = tmp_path / "ivr.yaml"
    work = tmp_path / "work"  # the test's own files (customer audio, sipp) live outside home
    work.mkdir()
    cfg.write_text(yaml.safe_dump(bed_config(home, platform="快购"), allow_unicode=True))
    settings: Settings = load_settings(cfg)
    agi = asterisk_started = sipp = None
    try:
        ivr(cfg, "setup")
        assert loose(home) == []
        # The customer: satisfied, silent at the suggestion question (recorded), buys again.
        planner = Settings(home=tmp_path / "planner")
        orders = helpers.write_orders(work / "orders.csv", ["+" + NUMBER])
        customer = plan_customer(NUMBER, load_script(SCRIPT),
                                 {"platform": "快购", "product": "婴儿湿巾", "price": 39.9,
                                  "merchant": "好妈妈旗舰店", "host": "小李"},
                                 [Answer(key="1"), Answer(key="1")], engine(planner),
                                 voice=VOICE, language="cmn", work_dir=work)
        sipp = SippCustomer([customer], host=LOOPBACK, port=settings.trunk.port,
                            media_port=free_udp_range(4), work_dir=work / "sipp")
        sipp.start()
        agi_log = (work / "fastagi.log").open("ab")
        agi = subprocess.Popen([sys.executable, "-m", "ivr", "-c", str(cfg), "agi", "serve"],
                               stdout=agi_log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
                               start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection((LOOPBACK, settings.agi.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        ivr(cfg, "asterisk", "start")
        asterisk_started = True
        ivr(cfg, "campaign", "import", str(orders))
        plan = json.loads(ivr(
            cfg, "campaign", "plan", "private", "--script", str(SCRIPT), "--language", "cmn",
            "--policy", str(helpers.all_day_policy(work / "policy.yaml")),
            "--segments", str(helpers.all_day_segments(work / "segments.yaml", VOICE)),
        ).stdout.strip().splitlines()[-1])
        ivr(cfg, "campaign", "run", plan["campaign_id"], "--until-idle")
    finally:
        if asterisk_started:
            ivr(cfg, "asterisk", "stop")
        if agi is not None:
            agi.terminate()
            agi.wait(timeout=10)
        if sipp is not None:
            sipp.stop()
        os.umask(old)
    recordings = list(settings.recordings_dir.glob("*.wav"))
    assert recordings, (work / "fastagi.log").read_text(errors="replace")[-3000:]
    for must in (settings.db_path, settings.run_dir / "etc" / "pjsip.conf",
                 settings.run_dir / "etc" / "extensions.conf", home / "secrets" / "agi_secret",
                 home / "secrets" / "ami_secret", settings.run_dir / "log" / "messages.log",
                 *recordings):
        assert must.exists(), must
    assert list(settings.prompts_dir.rglob("*.wav")), "prompts were rendered"
    assert loose(home) == []
    rejects = work / "orders.csv.rejects.csv"
    assert stat.S_IMODE(rejects.stat().st_mode) == 0o600
