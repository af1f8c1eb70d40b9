"""One invalid script per validation rule, each with its precise message (file:line: node: ...)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.survey import line_of, write

from ivr.survey.loader import ScriptError, load_script, order_fields
from ivr.survey.script import OUTCOMES

BASE = """\
survey:
  name: t
  language: cmn
  fields: [product, price]
start: hello
defaults:
  fallback: bye
global_intents:
  agent:
    phrases: {cmn: ["人工"]}
    dtmf: "0"
    goto: agent
nodes:
  hello:
    kind: statement
    prompt: "您好，您买了{{ product }}，{{ price }}元。"
    next: q1
  q1:
    kind: question
    prompt: 满意吗？
    intents:
      yes:
        phrases: {cmn: ["满意"]}
        dtmf: "1"
        set: {satisfied: 1}
        goto: bye
      no:
        phrases: {cmn: ["不 满意"]}
        dtmf: "2"
        set: {satisfied: 0}
        goto: bye
  agent:
    kind: transfer
    target: agents
  bye:
    kind: end
    prompt: 再见
    outcome: completed
"""
KEY0, KEY1 = 'dtmf: "0"', 'dtmf: "1"'
ORDERS_LIST = ", ".join(sorted(order_fields()))


def problems(path: Path, **kw: object) -> list[str]:
    with pytest.raises(ScriptError) as info:
        load_script(path, **kw)  # type: ignore[arg-type]
    return [str(p) for p in info.value.problems]


def mutate(tmp_path: Path, old: str, new: str, nth: int = 1) -> tuple[Path, str]:
    assert BASE.count(old) >= nth, old
    parts = BASE.split(old)
    text = old.join(parts[:nth]) + new + old.join(parts[nth:])
    return write(tmp_path, text), text


def test_base_script_is_valid(tmp_path: Path) -> None:
    s = load_script(write(tmp_path, BASE))
    assert list(s.nodes) == ["hello", "q1", "agent", "bye"]
    assert s.line("nodes", "q1", "intents", "no", "goto") == line_of(BASE, "goto: bye", 2)


def test_unknown_target(tmp_path: Path) -> None:
    p, text = mutate(tmp_path, "goto: bye", "goto: nowhere")
    assert problems(p) == [
        f"{p}:{line_of(text, 'goto: nowhere')}: node 'q1': unknown target node 'nowhere' "
        f"(intent 'yes' goto)"
    ]


def test_unreachable_node(tmp_path: Path) -> None:
    p, text = mutate(tmp_path, "  bye:\n", "  orphan:\n    kind: end\n    prompt: x\n  bye:\n")
    assert problems(p) == [
        f"{p}:{line_of(text, 'orphan:')}: node 'orphan': unreachable node (no path from start "
        f"node 'hello')"
    ]


def test_intent_without_exit(tmp_path: Path) -> None:
    p, text = mutate(tmp_path, "        goto: bye\n", "", nth=2)
    assert problems(p) == [
        f"{p}:{line_of(text, '      no:')}: node 'q1': node without exit: intent 'no' has no "
        f"'goto'"
    ]


def test_statement_without_exit(tmp_path: Path) -> None:
    p, text = mutate(tmp_path, "    next: q1\n", "")
    found = problems(p)
    assert found[0] == (f"{p}:{line_of(text, '  hello:')}: node 'hello': node without exit: a "
                        f"statement node needs 'next'")
    # nothing after it can be reached either; all is reported at once
    nth = {"q1": 1, "agent": 2, "bye": 1}  # "  agent:" is also a global intent
    assert found[1:] == [
        f"{p}:{line_of(text, f'  {n}:', k)}: node {n!r}: unreachable node (no path from start "
        f"node 'hello')" for n, k in nth.items()
    ]


def test_template_field_orders_do_not_have(tmp_path: Path) -> None:
    p, text = mutate(tmp_path, "{{ product }}", "{{ colour }}")
    assert problems(p) == [
        f"{p}:{line_of(text, 'colour')}: node 'hello': template field 'colour' is not an order "
        f"field (orders have: {ORDERS_LIST})"
    ]


def test_template_field_not_declared(tmp_path: Path) -> None:
    p, text = mutate(tmp_path, "prompt: 再见", "prompt: 再见，{{ host }}")
    assert problems(p) == [
        f"{p}:{line_of(text, '{{ host }}')}: node 'bye': template field 'host' is not listed in "
        f"survey.fields"
    ]


def test_missing_phrases_for_script_language(tmp_path: Path) -> None:
    p, text = mutate(tmp_path, 'phrases: {cmn: ["满意"]}', 'phrases: {ko: ["네"]}')
    assert problems(p) == [
        f"{p}:{line_of(text, 'ko:')}: node 'q1': intent 'yes' has no phrases for the script "
        f"language 'cmn'"
    ]


def test_duplicate_dtmf_key(tmp_path: Path) -> None:
    p, text = mutate(tmp_path, 'dtmf: "2"', 'dtmf: "1"')
    assert problems(p) == [
        f"{p}:{line_of(text, KEY1, 2)}: node 'q1': duplicate DTMF key '1' (intents "
        f"'yes' and 'no')"
    ]


def test_dtmf_key_clashes_with_global_intent(tmp_path: Path) -> None:
    p, text = mutate(tmp_path, 'dtmf: "1"', 'dtmf: "0"')
    assert problems(p) == [
        f"{p}:{line_of(text, KEY0, 2)}: node 'q1': duplicate DTMF key '0' (intents "
        f"'agent' and 'yes')"
    ]


def test_bad_outcome(tmp_path: Path) -> None:
    p, text = mutate(tmp_path, "outcome: completed", "outcome: finished")
    assert problems(p) == [
        f"{p}:{line_of(text, 'outcome: finished')}: node 'bye': bad outcome 'finished' "
        f"(allowed: {', '.join(OUTCOMES)})"
    ]


def test_phrase_word_outside_vocabulary(tmp_path: Path) -> None:
    p = write(tmp_path, BASE)
    vocab = {"满意", "人工"}
    assert problems(p, vocabulary=vocab.__contains__) == [
        f"{p}:{line_of(BASE, '不 满意')}: node 'q1': word '不' of phrase '不 满意' (intent 'no') "
        f"is not in the speech model vocabulary"
    ]


def test_global_intent_word_outside_vocabulary(tmp_path: Path) -> None:
    p = write(tmp_path, BASE)
    assert problems(p, vocabulary=lambda w: w != "人工") == [
        f"{p}:{line_of(BASE, '人工')}: global intent 'agent': word '人工' of phrase '人工' "
        f"(intent 'agent') is not in the speech model vocabulary"
    ]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = (BASE.replace("goto: bye", "goto: nowhere", 1)
            .replace("outcome: completed", "outcome: finished")
            .replace('phrases: {cmn: ["不 满意"]}', "phrases: {}"))
    p = write(tmp_path, text)
    found = problems(p)
    assert [f.split(": ", 2)[2] for f in found] == [
        "unknown target node 'nowhere' (intent 'yes' goto)",
        "intent 'no' has no phrases for the script language 'cmn'",
        f"bad outcome 'finished' (allowed: {', '.join(OUTCOMES)})",
    ]
    assert str(ScriptError([])).startswith("0 problems")


def test_structure_errors_name_field_line_and_node(tmp_path: Path) -> None:
    text = BASE.replace("    prompt: 满意吗？", "    promt: 满意吗？").replace(
        "kind: transfer", "kind: transfr")
    p = write(tmp_path, text)
    found = problems(p)
    assert found == [
        f"{p}:{line_of(text, 'promt')}: node 'q1': unknown field 'promt'",
        f"{p}:{line_of(text, 'transfr')}: node 'agent': kind: Input should be 'statement', "
        f"'question', 'open', 'transfer' or 'end'",
    ]


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    text = BASE.replace("    next: q1", "    next: [q1")
    p = write(tmp_path, text)
    found = problems(p)
    assert len(found) == 1 and found[0].startswith(f"{p}:")
    assert "not valid YAML" in found[0]


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    p, text = mutate(tmp_path, "    next: q1\n", "    next: q1\n    next: q1\n")
    assert problems(p) == [
        f"{p}:{line_of(text, 'next: q1', 2)}: node 'hello': duplicate key 'next' (the later one "
        f"would silently win)"
    ]


def test_bad_result_field_and_values(tmp_path: Path) -> None:
    p, text = mutate(tmp_path, "set: {satisfied: 1}", "set: {satisfied: maybe, mood: ok}")
    line = line_of(text, "mood")
    assert problems(p) == [
        f"{p}:{line}: node 'q1': satisfied must be 0/1 (or true/false), not 'maybe'",
        f"{p}:{line}: node 'q1': cannot set 'mood': result fields are satisfied, remedy_offered, "
        f"remedy_accepted, reason, would_buy_again, callback_at",
    ]


def test_misplaced_field_for_kind(tmp_path: Path) -> None:
    p, text = mutate(tmp_path, "    target: agents\n", "    target: agents\n    next: bye\n")
    assert problems(p) == [
        f"{p}:{line_of(text, 'next: bye')}: node 'agent': field 'next' does not apply to a "
        f"transfer node"
    ]


def test_yes_and_no_stay_intent_names(tmp_path: Path) -> None:
    """YAML 1.1 would read the keys yes/no as booleans; scripts use YAML 1.2 booleans."""
    s = load_script(write(tmp_path, BASE))
    assert set(s.nodes["q1"].intents) == {"yes", "no"}


def test_missing_file() -> None:
    with pytest.raises(ScriptError, match="cannot read survey script"):
        load_script("/nonexistent/survey.yaml")
