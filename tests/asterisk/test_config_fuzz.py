"""Config fuzz (#13): any string in any ivr.yaml field either fails validation with an error that
names the key, or renders configs whose sections and keys are exactly the expected ones and whose
values Asterisk reads back whole (parsed back with Asterisk's own rules, conf_reader)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from conf_reader import Conf, read_conf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ivr.asterisk.render import render
from ivr.config import ConfigError, Settings, load_settings

# Every string-valued key of ivr.yaml (lists fuzzed through their first element).
FIELDS = [
    "home", "language", "platform", "agent_dial", "survey", "regions", "numbers",
    "asterisk.root", "asterisk.bind", "asterisk.extra_modules.0",
    "trunk.name", "trunk.host", "trunk.username", "trunk.password", "trunk.codecs.0",
    "trunk.caller_id", "trunk.dial_prefix", "trunk.from_domain", "trunk.transport",
    "trunk.dtmf_mode",
    "trunks.0.name", "trunks.0.host", "trunks.0.password", "trunks.0.from_domain",
    "ami.host", "ami.username", "ami.secret",
    "agi.host", "agi.secret", "agi.allow.0", "agi.transport",
    "speech.voices_dir", "speech.models.ko", "speech.input", "speech.tts_backend",
]
NASTY = ["a\nb", "a\rb", "x\n[evil]\ncontext=ivr-dial", "p;w", "p\\;w", "p;--w--;x", " pw",
         "pw ", "${SHELL(id)}", "a,b", 'a"b', "a\x00b", "\x1b[2J", "a\u2028b", "[x]", "x=y",
         "#include /etc/passwd", "127.0.0.1:5060", "PJSIP/x@y,30,U(evil)", "x" * 300, "",
         "ünïcödé", "0.0.0.0", "::1", "carrier-auth", "transport-udp", "global"]


def base(tmp: Path) -> dict[str, Any]:
    return {"home": str(tmp / "home"),
            "trunk": {"username": "acct", "password": "pw"},
            "trunks": [{"name": "carrier2", "host": "127.0.0.2", "username": "u2",
                        "password": "p2"}]}


def put(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    cur: Any = data
    for k in keys[:-1]:
        nxt = int(k) if k.isdigit() else k
        if isinstance(cur, list):
            cur = cur[nxt]  # type: ignore[index]
        else:
            cur = cur.setdefault(nxt, [{}] if keys[keys.index(k) + 1].isdigit() else {})
    last = keys[-1]
    if last.isdigit():
        cur[int(last)] = value
    else:
        cur[last] = value


def expected_pjsip(s: Settings) -> list[tuple[str, list[str]]]:
    out = [("global", ["type", "user_agent"])]
    for proto in sorted({t.transport for t in s.all_trunks}):
        out.append((f"transport-{proto}", ["type", "protocol", "bind"]))
    out.append(("trunk-defaults", ["type", "context", "direct_media", "rtp_symmetric",
                                   "rewrite_contact", "send_pai", "trust_id_outbound",
                                   "sdp_session"]))
    for t in s.all_trunks:
        endpoint = ["transport", "disallow", "allow", "dtmf_mode", "aors"]
        endpoint += ["outbound_auth"] if t.username else []
        endpoint += ["from_domain"] if t.from_domain else []
        out += [(t.name, endpoint), (t.name, ["type", "contact", "qualify_frequency"]),
                (t.name, ["type", "endpoint", "match"])]
        if t.username:
            out.append((f"{t.name}-auth", ["type", "auth_type", "username", "password"]))
    return out


def check_rendered(s: Settings) -> None:
    etc = s.run_dir / "etc"
    pjsip = read_conf((etc / "pjsip.conf").read_text("utf-8"))
    assert not pjsip.problems and not pjsip.directives
    assert [(x.name, x.keys) for x in pjsip.sections] == expected_pjsip(s)
    for t in s.all_trunks:
        ep = [x for x in pjsip.sections if x.name == t.name]
        assert ep[0].options == "(trunk-defaults)" and ep[0].get("allow") == ",".join(t.codecs)
        assert ep[1].get("contact") in (f"sip:{t.host}:{t.port}", f"sip:[{t.host}]:{t.port}")
        assert ep[2].get("match") == t.host
        if t.username:
            auth = pjsip.section(f"{t.name}-auth")
            assert (auth.get("username"), auth.get("password")) == (t.username, t.password)
    manager = read_conf((etc / "manager.conf").read_text("utf-8"))
    assert [(x.name, x.keys) for x in manager.sections] == [
        ("general", ["enabled", "port", "bindaddr"]),
        (s.ami.username, ["secret", "deny", "permit", "read", "write", "writetimeout"])]
    assert manager.section(s.ami.username).get("write") == "originate"
    if s.ami.secret:
        assert manager.section(s.ami.username).get("secret") == s.ami.secret
    ext = read_conf((etc / "extensions.conf").read_text("utf-8"))
    assert [x.name for x in ext.sections] == ["general", "globals"]
    globals_ = dict(ext.section("globals").items)
    assert sorted(globals_) == sorted([
        "IVR_AGI", "IVR_AGI_TRANSPORT", "IVR_AGI_SECRET", "IVR_CLASSIC", "IVR_TRUNK",
        "IVR_TRUNKS", "IVR_DEFAULT_CALLER_ID", "IVR_DIAL_PREFIX", "IVR_PROMPTS",
        "IVR_AGENT_DIAL"])
    # pbx_config substitutes ${...} and $[...] in global values: none may hold any.
    assert not any("$" in v for v in globals_.values())
    assert globals_["IVR_AGENT_DIAL"] == s.agent_dial
    assert all(d.startswith('#include "') for d in ext.directives)
    for name in ("asterisk.conf", "rtp.conf", "modules.conf", "logger.conf"):
        conf: Conf = read_conf((etc / name).read_text("utf-8"))
        assert not conf.problems and not conf.directives, name
    modules = read_conf((etc / "modules.conf").read_text("utf-8")).section("modules")
    loads = [v for k, v in modules.items if k == "load"]
    assert set(modules.keys) == {"autoload", "load"} and "func_env.so" not in loads
    if s.asterisk.extra_modules:
        assert loads[-len(s.asterisk.extra_modules):] == s.asterisk.extra_modules
    wrapper = (s.run_dir / "agi-bin" / "ivr-agi").read_text("utf-8").splitlines()[-1]
    words = shlex.split(wrapper)
    assert words[0] == f"IVR_CONFIG={s.run_dir / 'ivr-effective.json'}"
    assert words[1] == f"IVR_HOME={s.home}" and words[2] == "exec" and words[-1] == "$@"


def attempt(tmp: Path, dotted: str, value: Any) -> None:
    tmp.mkdir(parents=True, exist_ok=True)
    data = base(tmp)
    put(data, dotted, value)
    cfg = tmp / "ivr.yaml"
    try:
        cfg.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    except UnicodeEncodeError:
        return  # not a string a YAML file can hold
    try:
        s = load_settings(cfg)
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith(f"{cfg}:")  # file: or file:line:
        top = dotted.split(".")[0]
        assert top in message or "(top level)" in message, message
        return
    render(s)
    check_rendered(s)


@pytest.mark.parametrize("dotted", FIELDS)
def test_nasty_values_are_refused_or_rendered_exactly(tmp_path: Path, dotted: str) -> None:
    for i, value in enumerate(NASTY):
        if dotted in ("home",):
            value = str(tmp_path / f"h{i}" / value.replace("/", "_").replace(".", "_"))
        attempt(tmp_path / f"n{i}", dotted, value)


@pytest.mark.parametrize("dotted", FIELDS)
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(value=st.text(max_size=40))
@example(value="secret;with;semicolons")
def test_any_string_in_any_field(tmp_path: Path, dotted: str, value: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
        if dotted == "home":
            value = str(Path(tmp) / "h" / value.replace("/", "_").replace(".", "_"))
        attempt(Path(tmp), dotted, value)


def test_a_password_asterisk_would_cut_is_escaped_and_read_back_whole(tmp_path: Path) -> None:
    s = Settings(home=tmp_path)
    s.trunk.username, s.trunk.password = "acct", "p;w--;x\\;y"
    render(s)
    auth = read_conf((s.run_dir / "etc" / "pjsip.conf").read_text()).section("carrier-auth")
    assert auth.get("password") == "p;w--;x\\;y"


@pytest.mark.parametrize(("key", "value", "why"), [
    ("trunk.host", "127.0.0.1\n[evil]\ntype=endpoint\ncontext=ivr-dial", "not a host name"),
    ("trunk.password", "pw\n[evil]", "control character"),
    ("trunk.password", " pw", "must not start or end with a space"),
    ("trunk.name", "global", "reserved"),
    ("trunk.caller_id", "+86 1", "invalid phone number"),
    ("agent_dial", "PJSIP/agents@carrier,30,U(evil)", "not a dial string"),
    ("agent_dial", "${SHELL(id)}", "not a dial string"),
    ("home", "/srv/ivr;x", "not allowed in a path"),
    ("ami.username", "general", "manager.conf's own section"),
    ("asterisk.extra_modules", ["app_system.so\nload => x"], "not an Asterisk module"),
    ("agi.secret", "short", "16 to 128"),
])
def test_clear_errors_name_the_key(tmp_path: Path, key: str, value: Any, why: str) -> None:
    data = base(tmp_path)
    put(data, key, value)
    cfg = tmp_path / "ivr.yaml"
    cfg.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert key.split(".")[0] in str(err.value) and why in str(err.value), str(err.value)
