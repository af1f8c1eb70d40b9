"""The dialplan guard checks the complete dial target (#13): number, trunk, prefix, caller ID and
ring time as an Originate asked for them; the target it hands Dial() is built only from what it
checked, so no variable can steer a call to a number the rules forbid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ivr.config import Settings, TrunkSettings
from ivr.regions.guard import check_dial
from ivr.regions.rules import load_rules
from ivr.store import add_dnc, open_db

RULES = """
rules:
  - name: xinjiang
    match: {region: Xinjiang}
    action: skip
    reason: does not connect
  - name: sichuan-via-carrier2
    match: {region: Sichuan}
    action: call
    trunk: carrier2
  - name: national-fixed
    match: {country: CN, type: fixed_line}
    action: call
    strip: "86"
    prefix: "0"
"""
JIANGSU = "8613912345678"
SICHUAN = "8613880012345"
BEIJING_FIXED = "861062345678"
DNC = "8613900000009"


@pytest.fixture
def env(tmp_path: Path) -> tuple[Settings, Any, Any]:
    (tmp_path / "regions.yaml").write_text(RULES, encoding="utf-8")
    s = Settings(home=tmp_path, regions=tmp_path / "regions.yaml",
                 trunks=[TrunkSettings(name="carrier2", dial_prefix="00",
                                       caller_id="+862880001001")])
    db = open_db(s.db_path)
    add_dnc(db, "+" + DNC, "asked", "test")
    return s, db, load_rules(tmp_path / "regions.yaml")


def check(env: tuple[Settings, Any, Any], digits: str, **asked: str) -> Any:
    s, db, rules = env
    return check_dial(s, db, digits, rules=rules, **asked)


def test_a_plain_number_gets_a_target_built_from_checked_values(env: Any) -> None:
    v = check(env, JIANGSU)
    assert (v.allowed, v.target, v.caller_id, v.timeout_s) == (
        True, f"PJSIP/{JIANGSU}@carrier", "+862150001001", 30)
    v = check(env, JIANGSU, trunk="carrier2", ring_timeout="45")
    assert (v.target, v.caller_id, v.timeout_s) == (f"PJSIP/00{JIANGSU}@carrier2",
                                                    "+862880001001", 45)


def test_region_rules_decide_trunk_and_rewrite(env: Any) -> None:
    assert check(env, SICHUAN).target == f"PJSIP/00{SICHUAN}@carrier2"
    assert check(env, BEIJING_FIXED).target == "PJSIP/01062345678@carrier"
    assert check(env, BEIJING_FIXED, prefix="0").allowed


@pytest.mark.parametrize(("digits", "asked", "why"), [
    (DNC, {}, "do-not-call"),
    ("8613999123456", {}, "skip: region rule xinjiang"),
    (JIANGSU, {"prefix": "0099912345678@carrier&PJSIP/"}, "dial prefix"),
    (JIANGSU, {"prefix": "00999"}, "dial prefix '00999' refused"),
    (DNC[2:], {"prefix": "86"}, "dial prefix '86' refused"),  # prefix + digits = a DNC number
    (JIANGSU, {"trunk": "carrier/../x"}, "unknown trunk"),
    (JIANGSU, {"trunk": "PJSIP/0099912345678@carrier&PJSIP/x"}, "unknown trunk"),
    (SICHUAN, {"trunk": "carrier"}, "routes this number via carrier2"),
    (JIANGSU, {"caller_id": "+8613900000009,1"}, "caller ID refused"),
    (JIANGSU, {"caller_id": "+862150009999"}, "not in the caller-ID pool"),
    (JIANGSU, {"ring_timeout": "30,U(evil)"}, "ring timeout"),
    (JIANGSU, {"ring_timeout": "99999"}, "ring timeout"),
    ("0099912345678@carrier&PJSIP/1", {}, "invalid phone number"),
    ("", {}, "invalid phone number"),
])
def test_anything_forbidden_or_malformed_is_refused(env: Any, digits: str,
                                                    asked: dict[str, str], why: str) -> None:
    v = check(env, digits, **asked)
    assert not v.allowed and why in v.reason, v
    assert (v.target, v.caller_id) == ("", "")
