from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ivr.asterisk.render import render
from ivr.config import ConfigError, Settings, load_settings


def test_trunk_and_ami_come_from_config(tmp_path: Path) -> None:
    s = Settings(home=tmp_path)
    s.trunk.host, s.trunk.port, s.trunk.codecs = "127.0.0.9", 5099, ["alaw"]
    s.trunk.username, s.trunk.password = "acct", "pw"
    etc = render(s).parent
    pjsip = (etc / "pjsip.conf").read_text()
    assert "contact = sip:127.0.0.9:5099" in pjsip and "allow = alaw" in pjsip
    assert "outbound_auth = carrier-auth" in pjsip and "password = pw" in pjsip
    manager = (etc / "manager.conf").read_text()
    secret = (tmp_path / "secrets" / "ami_secret").read_text().strip()
    assert len(secret) >= 24 and f"secret = {secret}" in manager
    assert stat.S_IMODE((tmp_path / "secrets" / "ami_secret").stat().st_mode) == 0o600
    assert "bindaddr = 127.0.0.1" in manager
    # a second render keeps the generated secret
    render(s)
    assert (tmp_path / "secrets" / "ami_secret").read_text().strip() == secret


def test_two_installations_get_different_secrets(tmp_path: Path) -> None:
    render(Settings(home=tmp_path / "a"))
    render(Settings(home=tmp_path / "b"))
    a = (tmp_path / "a" / "secrets" / "ami_secret").read_text()
    assert a != (tmp_path / "b" / "secrets" / "ami_secret").read_text()


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("trunk: {codecs: [speex9]}", "trunk.codecs"),
        ("trunk: {port: 70000}", "trunk.port"),
        ("trunk: {name: 'bad name'}", "trunk.name"),
        ("bogus: 1", "bogus"),
        ("trunk: [", "not valid YAML"),
    ],
)
def test_invalid_config_is_a_clear_error(tmp_path: Path, yaml_text: str, message: str) -> None:
    f = tmp_path / "ivr.yaml"
    f.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_settings(f)
    assert str(f) in str(err.value) and message in str(err.value)


def test_rendered_files_are_private_and_reveal_no_build(tmp_path: Path) -> None:
    import os

    from ivr.asterisk.render import agi_secret

    old = os.umask(0o022)  # an operator's permissive shell must not matter
    try:
        s = Settings(home=tmp_path / "home")
        s.trunk.username, s.trunk.password = "acct", "pw;x"
        etc = render(s).parent
    finally:
        os.umask(old)
    for p in [s.home, *s.home.rglob("*")]:
        if p.is_symlink():
            continue
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode & 0o077 == 0, (p, oct(mode))
        if p.is_dir():
            assert mode == 0o700, p
    assert stat.S_IMODE((s.run_dir / "agi-bin" / "ivr-agi").stat().st_mode) == 0o700
    pjsip = (etc / "pjsip.conf").read_text()
    assert "user_agent = ivr\n" in pjsip and "sdp_session = ivr\n" in pjsip
    assert "password = pw\\;x\n" in pjsip
    manager = (etc / "manager.conf").read_text()
    assert "read = call,user\nwrite = originate\n" in manager
    rights = [line for line in manager.splitlines() if line.startswith(("read =", "write ="))]
    assert rights == ["read = call,user", "write = originate"]
    ext = (etc / "extensions.conf").read_text()
    assert f"IVR_AGI_SECRET = {agi_secret(s)}\n" in ext
    assert "live_dangerously = no" in (etc / "asterisk.conf").read_text()
