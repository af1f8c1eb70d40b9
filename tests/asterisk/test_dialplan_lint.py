from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.asterisk.dialplan import lint, lint_file, parse_applications
from ivr.asterisk.render import DIALPLANS_DIR
from ivr.cli import root


def test_shipped_dialplans_are_clean() -> None:
    assert lint(sorted(DIALPLANS_DIR.glob("*.conf"))) == []


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("exten => s,1,NoOp()\n", 1, "outside any [context]"),
        ("[c]\nexten => s,2,NoOp()\n", 2, "must start at priority 1"),
        ("[c]\nsame => n,NoOp()\n", 2, "without a preceding"),
        ("[c]\nexten => s,1,Set(X=${FOO)\n", 2, "unbalanced"),
        ("[c]\nexten => s,1,Set(X=${FOO\n", 2, "unclosed"),
        ("[c]\nexten => s,1,NoOp(a))\n", 2, "unbalanced"),
        ("[c]\nexten => s,1,NoOp()\n same => n(x),NoOp()\n same => n(x),NoOp()\n", 4,
         "duplicate label"),
        ("[c]\nexten => s,1,GotoIf($[1]?nowhere)\n", 2, "not defined"),
        ("[c]\nexten => s\n", 2, "pattern,priority"),
        ("[c]\nfoo bar\n", 2, "unknown statement"),
    ],
)
def test_problems_have_file_and_line(tmp_path: Path, body: str, line: int, message: str) -> None:
    f = tmp_path / "bad.conf"
    f.write_text(body)
    problems = lint_file(f)
    assert problems, body
    assert problems[0].line == line and message in problems[0].message
    assert str(problems[0]).startswith(f"{f}:{line}: ")


def test_unknown_application_when_list_known(tmp_path: Path) -> None:
    f = tmp_path / "x.conf"
    f.write_text("[c]\nexten => s,1,Dail(PJSIP/1)\n")
    apps = parse_applications("  -= Registered Asterisk Applications =-\n  Dial: Attempt ...\n")
    assert "unknown application 'Dail'" in lint_file(f, apps)[0].message


def test_check_command_exit_status(tmp_path: Path) -> None:
    bad = tmp_path / "bad.conf"
    bad.write_text("[c]\nexten => s,3,NoOp()\n")
    runner = CliRunner()
    res = runner.invoke(root, ["dialplan", "check", str(bad)], env={"IVR_HOME": str(tmp_path)})
    assert res.exit_code == 1 and f"{bad}:2:" in res.output
    good = runner.invoke(root, ["dialplan", "check"], env={"IVR_HOME": str(tmp_path)})
    assert good.exit_code == 0, good.output
