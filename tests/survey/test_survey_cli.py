"""The commands: ivr survey validate/show and ivr simulate, through the real root group."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from support.survey import CMN, KO, line_of, write

from ivr.cli import root
from ivr.store import CallRecorder, open_db


def invoke(*args: str, input: str | None = None) -> tuple[int, str]:
    r = CliRunner().invoke(root, list(args), input=input, catch_exceptions=False)
    return r.exit_code, r.output


def test_validate_default_scripts() -> None:
    code, out = invoke("survey", "validate", str(CMN), str(KO))
    assert code == 0
    assert out.splitlines() == [
        f"OK {CMN}: 13 nodes, 5 questions, language cmn",
        f"OK {KO}: 13 nodes, 5 questions, language ko",
    ]


def test_validate_prints_every_problem_and_exits_1(tmp_path: Path) -> None:
    text = CMN.read_text(encoding="utf-8").replace("goto: suggestions", "goto: sugestions", 1)
    text = text.replace("outcome: opted_out", "outcome: opted-out")
    bad = write(tmp_path, text, "bad.yaml")
    code, out = invoke("survey", "validate", str(bad))
    assert code == 1
    assert out.splitlines() == [
        f"{bad}:{line_of(text, 'goto: sugestions')}: node 'satisfaction': unknown target node "
        f"'sugestions' (intent 'satisfied' goto)",
        f"{bad}:{line_of(text, 'opted-out')}: node 'opt_out_bye': bad outcome 'opted-out' "
        f"(allowed: completed, recovered, declined, opted_out, transferred, callback_requested, "
        f"machine, partial)",
    ]


def test_show_lists_nodes_and_dot() -> None:
    code, out = invoke("survey", "show", str(CMN))
    assert code == 0
    assert "  * global opt_out [9] -> opt_out_bye" in out
    assert any(line.split()[:2] == ["remedy", "question"] and "refund[1] -> reason" in line
               for line in out.splitlines())
    code, dot = invoke("survey", "show", "--dot", str(CMN))
    assert dot.startswith('digraph "platform_satisfaction"')
    assert '"satisfaction" -> "remedy" [label="unsatisfied"];' in dot


def test_simulate_runs_the_default_script_to_completion() -> None:
    code, out = invoke("simulate", str(CMN), "--answers", "2,1,5,多关注直播品质,1")
    assert code == 0, out
    assert ("path: intro -> satisfaction -> remedy -> reason -> suggestions -> buy_again -> "
            "thanks") in out
    assert "outcome: recovered" in out
    assert "  remedy_accepted  refund" in out and "  reason           other" in out
    assert "多关注直播品质" in out


def test_simulate_with_order_and_db_then_resume(tmp_path: Path) -> None:
    db_path = tmp_path / "sim.db"
    order = json.dumps({"product": "蓝莓", "price": 25})
    code, out = invoke("simulate", str(CMN), "--order", order, "--db", str(db_path),
                       "--answers", "2,2")
    assert code == 0 and "蓝莓" in out and "ended by: hangup" in out
    code, out = invoke("simulate", str(CMN), "--db", str(db_path), "--answers", "1,-,2")
    assert code == 0 and "path: reason -> suggestions -> buy_again -> thanks" in out
    db = open_db(db_path)
    row = CallRecorder(db, "simulated-call").get()
    assert row is not None
    assert (row["remedy_accepted"], row["reason"], row["would_buy_again"], row["outcome"]) == (
        "voucher", "quality", 0, "completed")
    db.conn.close()


def test_simulate_korean_typed_answers() -> None:
    code, out = invoke("simulate", str(KO), input="아니요\n전액 환불\n물건 불량\n좋아요\n네 구매\n")
    assert code == 0
    assert "outcome: recovered" in out and "  reason           quality" in out


def test_simulate_rejects_bad_order_json() -> None:
    r = CliRunner().invoke(root, ["simulate", str(CMN), "--order", "{nope", "--answers", "1"])
    assert r.exit_code == 2 and "--order" in r.output
