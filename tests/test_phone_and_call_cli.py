from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from ivr.cli import root
from ivr.phone import InvalidNumber, number_info, parse_e164


@pytest.mark.parametrize("bad", ["+86 139-abc", "100&PJSIP/999", "", "13912345678", "+861",
                                 "+8613912345678,1", "+86139123456789999"])
def test_bad_numbers_are_refused(bad: str) -> None:
    with pytest.raises(InvalidNumber):
        parse_e164(bad)


def test_number_info_from_phonenumbers() -> None:
    info = number_info("+8613999123456")
    assert (info.country, info.region, info.carrier) == ("CN", "Xinjiang", "China Mobile")
    assert info.timezones == ("Asia/Shanghai",) and info.is_mobile


def refused_before_ami(tmp_path: Path, *args: str) -> str:
    """``ivr call ARGS`` with an AMI port that records any connection: exit 2, nothing reached
    it; returns the output."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.2)
        cfg = tmp_path / "ivr.yaml"
        cfg.write_text(yaml.safe_dump({"home": str(tmp_path),
                                       "ami": {"port": listener.getsockname()[1]}}))
        res = CliRunner().invoke(root, ["--config", str(cfg), "call", *args])
        assert res.exit_code == 2, res.output
        with pytest.raises(TimeoutError):
            listener.accept()
        return res.output


@pytest.mark.parametrize("bad", ["+86 139-abc", "100&PJSIP/999", ""])
def test_ivr_call_refuses_before_ami(tmp_path: Path, bad: str) -> None:
    out = refused_before_ami(tmp_path, bad)
    assert "invalid phone number" in out or "empty phone number" in out


@pytest.mark.parametrize("var", [
    "IVR_DIAL_PREFIX=8613900000009@carrier&PJSIP/",  # the guard bypass of issue 13
    "IVR_TRUNK=carrier2", "IVR_CALLER_ID=+8613900000009", "IVR_PHONE=+8613900000009",
    "IVR_RING_TIMEOUT=30,U(evil)", "IVR_TOKEN=x", "IVR_DIAL_TARGET=PJSIP/0099912345678@carrier",
    "IVR_GUARD=allow", "AGIEXECFULL=yes", "__IVR_TRUNK=x", "IVR_ORDER_ID=A1,IVR_TRUNK=x",
    "IVR_ORDER_ID=A\nB", "IVR_SCRIPT=/etc/passwd,x", "IVR_AMD=yes", "IVR_LANGUAGE=ko;x", "=1",
])
def test_ivr_call_var_accepts_only_survey_variables(tmp_path: Path, var: str) -> None:
    assert "error: --var" in refused_before_ami(tmp_path, "+8613912345678", "--var", var)
