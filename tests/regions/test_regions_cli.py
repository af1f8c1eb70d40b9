"""`ivr regions check` / `ivr regions rules` through CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from ivr.regions.cli import regions

REPO_RULES = Path(__file__).parents[2] / "config" / "regions.yaml"


def test_check_prints_decision_per_number() -> None:
    result = CliRunner().invoke(regions, ["--rules", str(REPO_RULES), "check",
                                          "+8613999123456", "+8613912345678", "+86abc"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    xj = next(line for line in lines if "+8613999123456" in line)
    assert "Xinjiang" in xj and "message" in xj and "xinjiang-mobile-message" in xj
    js = next(line for line in lines if "+8613912345678" in line)
    assert "Jiangsu" in js and " call " in js
    assert "skip" in next(line for line in lines if "+86abc" in line)


def test_check_json() -> None:
    result = CliRunner().invoke(regions, ["--rules", str(REPO_RULES), "check", "--json",
                                          "+8613999123456"])
    data = json.loads(result.output)
    assert data[0]["action"] == "message" and data[0]["info"]["city"] == "Urumchi"


def test_rules_lists_rules_in_order() -> None:
    result = CliRunner().invoke(regions, ["--rules", str(REPO_RULES), "rules"])
    assert result.exit_code == 0
    out = result.output
    assert out.index("xinjiang-mobile-message") < out.index("sichuan-via-carrier2")
    assert "region=Xinjiang" in out


def test_broken_rules_file_exit_two(tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text("rules:\n  - name: x\n    match: {region: Sinkiang}\n    action: call\n",
                 encoding="utf-8")
    result = CliRunner().invoke(regions, ["--rules", str(f), "rules"])
    assert result.exit_code == 2
    assert f"{f}:3: rules[0].match: region 'Sinkiang'" in result.output


def test_reachable_from_the_ivr_root_command() -> None:
    from ivr.cli import root

    result = CliRunner().invoke(root, ["regions", "--rules", str(REPO_RULES), "check",
                                       "+8613999123456"])
    assert result.exit_code == 0 and "message" in result.output
    assert CliRunner().invoke(root, ["numbers", "--help"]).exit_code == 0
