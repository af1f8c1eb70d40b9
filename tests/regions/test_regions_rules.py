"""Region rules: matching on phonenumbers' facts, actions, validation with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.regions import MessageTemplateError, guard_allows, load_rules
from ivr.regions.guard import default_rules
from ivr.yamlfile import YamlConfigError

REPO_RULES = Path(__file__).parents[2] / "config" / "regions.yaml"
XINJIANG_MOBILE = "+8613999123456"  # Urumqi ("Urumchi"), Xinjiang, China Mobile
XINJIANG_FIXED = "+869918001001"  # Urumqi land line
SICHUAN_MOBILE = "+8613700991234"  # Yibin, Sichuan
JIANGSU_MOBILE = "+8613912345678"  # Changzhou, Jiangsu
BEIJING_UNICOM = "+8618612345678"
GUANGZHOU_FIXED = "+862087654321"


def rules_file(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "regions.yaml"
    f.write_text(text, encoding="utf-8")
    return f


def test_default_xinjiang_mobile_rule_sends_a_message() -> None:
    rules = load_rules(REPO_RULES)
    d = rules.decide(XINJIANG_MOBILE)
    assert d.action == "message" and not d.calls and not d.allowed
    assert d.reason.startswith("region rule xinjiang-mobile-message: ")
    assert d.rule_name == "xinjiang-mobile-message"
    assert "Xinjiang" in d.reason
    assert d.info["region"] == "Xinjiang" and d.info["carrier"] == "China Mobile"
    text = d.render_message({"product": "蓝牙耳机", "platform": "示例平台"})
    assert "蓝牙耳机" in text and "示例平台" in text
    # a land line in Xinjiang and a mobile elsewhere are called normally
    assert rules.decide(XINJIANG_FIXED).action == "call"
    plain = rules.decide(JIANGSU_MOBILE)
    assert plain.action == "call" and plain.rule_name is None and plain.dial == "8613912345678"


def test_route_province_via_other_trunk_and_pool(tmp_path: Path) -> None:
    rules = load_rules(rules_file(tmp_path, """
rules:
  - name: sichuan-via-carrier2
    match: {country: CN, region: Sichuan}
    action: call
    trunk: carrier2
    caller_pool: west
    reason: Sichuan routes better over carrier2
"""))
    d = rules.decide(SICHUAN_MOBILE)
    assert (d.action, d.trunk, d.caller_pool, d.rule_name) == (
        "call", "carrier2", "west", "sichuan-via-carrier2")
    other = rules.decide(JIANGSU_MOBILE)
    assert other.trunk is None and other.caller_pool is None


def test_rewrite_prefix(tmp_path: Path) -> None:
    rules = load_rules(rules_file(tmp_path, """
rules:
  - name: national-fixed
    match: {country: CN, type: fixed_line}
    action: call
    strip: "86"
    prefix: "0"
  - name: ip-prefix-unicom
    match: {carrier: China Unicom}
    action: call
    prefix: "17951"
"""))
    d = rules.decide(GUANGZHOU_FIXED)
    assert d.dial == "02087654321" and d.prefix == "0" and d.strip == "86"
    u = rules.decide(BEIJING_UNICOM)
    assert u.dial == "179518618612345678" and u.prefix == "17951" and u.strip == ""
    assert rules.decide(JIANGSU_MOBILE).dial == "8613912345678"  # China Mobile: unchanged


def test_skip_with_reason_first_match_wins_and_disabled_rules(tmp_path: Path) -> None:
    rules = load_rules(rules_file(tmp_path, """
rules:
  - name: disabled-one
    enabled: false
    match: {region: Jiangsu}
    action: skip
    reason: never used
  - name: changzhou
    match: {city: Changzhou}
    action: skip
    reason: local holiday
  - name: jiangsu
    match: {region: [Jiangsu, Zhejiang]}
    action: call
    trunk: east
"""))
    d = rules.decide(JIANGSU_MOBILE)
    assert (d.action, d.rule_name, d.reason) == (
        "skip", "changzhou", "region rule changzhou: local holiday")
    assert not d.allowed
    lianyungang = rules.decide("+8613851234567")  # Jiangsu, another city
    assert (lianyungang.action, lianyungang.rule_name, lianyungang.trunk) == (
        "call", "jiangsu", "east")
    assert rules.decide("+8613957123456").rule_name == "jiangsu"  # Hangzhou, Zhejiang
    assert rules.decide(SICHUAN_MOBILE).rule_name is None


def test_city_matches_part_of_a_joined_geocoder_name(tmp_path: Path) -> None:
    rules = load_rules(rules_file(tmp_path, """
rules:
  - name: chengdu
    match: {city: Chengdu}
    action: skip
    reason: test
"""))
    # the geocoder says "Chengdu/Ziyang/Meishan" for this land line
    assert rules.decide("+862880001001").rule_name == "chengdu"


def test_invalid_number_is_skipped() -> None:
    d = load_rules(REPO_RULES).decide("+86abc")
    assert d.action == "skip" and "invalid phone number" in d.reason


@pytest.mark.parametrize("body,expected", [
    ("rules:\n  - name: a\n    match: {region: Xinjang}\n    action: skip\n    reason: x\n",
     ":3: rules[0].match: region 'Xinjang' is not a name phonenumbers knows; did you mean"
     " 'xinjiang'"),
    ("rules:\n  - name: a\n    match: {region: Xinjiang}\n    action: skip\n",
     ":2: rules[0]: action 'skip' needs a reason"),
    ("rules:\n  - name: a\n    match: {region: Xinjiang}\n    action: message\n",
     ":2: rules[0]: action 'message' needs a message template"),
    ("rules:\n  - name: a\n    match: {region: Xinjiang}\n    action: skip\n    reason: r\n"
     "    trunk: t2\n", ":2: rules[0]: trunk only apply to action 'call'"),
    ("rules:\n  - name: a\n    match: {type: cellphone}\n    action: call\n",
     ":3: rules[0].match.type: unknown number type(s) ['cellphone']"),
    ("rules:\n  - name: a\n    match: {country: XX}\n    action: call\n",
     ":3: rules[0].match.country: unknown ISO country code(s) ['XX']"),
    ("rules:\n  - name: a\n    match: {}\n    action: call\n",
     ":3: rules[0].match: an empty match would catch every number"),
    ("rules:\n  - name: a\n    match: {region: Tibet}\n    action: call\n    prefix: '+0'\n",
     ":5: rules[0].prefix: String should match pattern"),
    ("rules:\n  - name: a\n    match: {region: Tibet}\n    action: message\n"
     "    message: 'hi {{ name '\n", ":5: rules[0].message: message template:"),
    ("rules:\n  - name: a\n    match: {region: Tibet}\n    action: call\n"
     "  - name: a\n    match: {region: Tibet}\n    action: call\n",
     ":5: rules[1].name: rule name 'a' is already used by rules[0]"),
])
def test_validation_errors_name_line_and_field(tmp_path: Path, body: str, expected: str) -> None:
    f = rules_file(tmp_path, body)
    with pytest.raises(YamlConfigError) as err:
        load_rules(f)
    assert f"{f}{expected}" in str(err.value)


def test_message_template_missing_field_is_an_error(tmp_path: Path) -> None:
    rules = load_rules(rules_file(tmp_path, """
rules:
  - name: m
    match: {region: Xinjiang}
    action: message
    message: "您好 {{ buyer_name }}"
"""))
    d = rules.decide(XINJIANG_MOBILE)
    assert d.render_message({"buyer_name": "王女士"}) == "您好 王女士"
    with pytest.raises(MessageTemplateError, match="buyer_name"):
        d.render_message({})


def test_guard_allows(tmp_path: Path) -> None:
    rules = load_rules(REPO_RULES)
    ok, why = guard_allows("8613999123456", rules=rules)  # dial digits, as the dialplan has them
    assert not ok and "xinjiang-mobile-message" in why and "Xinjiang" in why
    assert guard_allows("+8613912345678", rules=rules) == (True, "ok")
    ok, why = guard_allows("100&PJSIP/999", rules=rules)
    assert not ok and "invalid phone number" in why


def test_guard_fails_closed_on_broken_rules_and_reloads_on_change(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = rules_file(tmp_path, "rules: [\n")
    monkeypatch.setenv("IVR_REGIONS", str(f))
    ok, why = guard_allows("+8613912345678")
    assert not ok and "region rules do not load" in why and str(f) in why
    f.write_text("rules:\n  - name: js\n    match: {region: Jiangsu}\n    action: skip\n"
                 "    reason: paused\n", encoding="utf-8")
    import os
    os.utime(f, (1, 1))  # make sure the modification time differs from the broken version
    ok, why = guard_allows("+8613912345678")
    assert not ok and "paused" in why
    assert default_rules().source == str(f)


def test_guard_refuses_flagged_caller_id(tmp_path: Path) -> None:
    from ivr.callerid.config import NumberConfig, PoolConfig
    from ivr.callerid.state import add_flag, sync_pool
    from ivr.store import open_db

    db = open_db(tmp_path / "ivr.db")
    sync_pool(db, PoolConfig(numbers=[NumberConfig(number="+862150001001")]))
    rules = load_rules(REPO_RULES)
    assert guard_allows("+8613912345678", rules=rules, db=db, caller_id="+862150001001")[0]
    add_flag(db, "+862150001001", "spam", "manual")
    ok, why = guard_allows("+8613912345678", rules=rules, db=db, caller_id="+862150001001")
    assert not ok and "caller ID refused" in why and "spam" in why
    db.conn.close()


def test_campaign_planner_reads_decisions_correctly() -> None:
    """The planner's reader of decision-like objects must deny message and skip decisions."""
    from ivr.campaign.planner import decision_allows

    rules = load_rules(REPO_RULES)
    verdict = decision_allows(rules.decide(XINJIANG_MOBILE))
    assert not verdict.allowed and verdict.reason.startswith("region")
    assert decision_allows(rules.decide(JIANGSU_MOBILE)).allowed
