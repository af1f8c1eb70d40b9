"""The wheel carries everything an installed engine needs: built with ``pip wheel .``, installed
into a fresh venv outside the checkout, its CLI finds the shipped configs, dialplans, templates and
surveys (package data), and ``ivr setup`` renders working configs from them."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with only the built wheel installed; the dependencies come from our environment
    through a plain path line (not a site dir, so the editable install's hooks never load)."""
    base = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(base / "dist"), str(CHECKOUT)], check=True, timeout=300)
    (wheel,) = (base / "dist").glob("ivr-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in ("config/numbers.yaml", "dialplans/ivr-outbound.conf",
                    "asterisk_conf/pjsip.conf.j2", "surveys/platform_satisfaction.cmn.yaml",
                    "voices/cmn-calm-male.yaml"):
        assert f"ivr/_shipped/{shipped}" in names, shipped
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps",
                    "--no-index", str(wheel)], check=True, timeout=300)
    purelib = subprocess.run([venv / "bin" / "python", "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    (Path(purelib) / "ivr-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def _ivr(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    env["IVR_CACHE"] = os.environ.get("IVR_CACHE", str(Path.home() / ".cache" / "ivr"))
    return subprocess.run([str(venv / "bin" / "ivr"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_installed_wheel_runs_outside_the_checkout(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run([installed / "bin" / "python", "-c",
                            "import ivr, ivr.config as c; print(ivr.__file__); "
                            "print(c.PROJECT_ROOT)"], cwd=tmp_path, check=True,
                           capture_output=True, text=True).stdout.split()
    assert where[0].startswith(str(installed)), where
    assert where[1].startswith(str(installed)) and where[1].endswith("_shipped"), where
    shipped = Path(where[1])

    version = _ivr(installed, tmp_path, "--version")
    assert version.returncode == 0 and "0.1.0" in version.stdout
    numbers = _ivr(installed, tmp_path, "numbers", "check")
    assert numbers.returncode == 0, numbers.stderr
    assert "can serve the campaign" in numbers.stdout
    dialplan = _ivr(installed, tmp_path, "dialplan", "check")
    assert dialplan.returncode == 0, dialplan.stderr
    assert "2 dialplan file(s) OK" in dialplan.stdout
    sim = _ivr(installed, tmp_path, "simulate",
               str(shipped / "surveys" / "platform_satisfaction.cmn.yaml"),
               "--answers", "2,1,1,-,1")
    assert sim.returncode == 0, sim.stderr
    assert "refund" in sim.stdout
    setup = _ivr(installed, tmp_path, "setup")
    assert setup.returncode == 0, setup.stderr
    extensions = (tmp_path / "var" / "asterisk" / "etc" / "extensions.conf").read_text()
    assert f'#include "{shipped}/dialplans/ivr-outbound.conf"' in extensions


def test_dialplan_check_of_nothing_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from ivr.asterisk import cli as ast_cli
    from ivr.cli import root

    monkeypatch.setattr(ast_cli, "DIALPLANS_DIR", tmp_path)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(root, ["dialplan", "check"])
    assert result.exit_code == 1
    assert "no dialplan files found" in result.output
