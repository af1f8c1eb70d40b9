"""Every branch of the default script, Mandarin and Korean, answered by keypad, by intent and by
phrase text; the stored call row and answers are checked field by field."""

from __future__ import annotations

from typing import Any

import pytest
import sqlite_utils
from support.survey import ORDERS, results, run_answers

from ivr.store import is_dnc
from ivr.survey.script import Script

S, U = "satisfaction", "suggestions"
HAPPY = ["intro", S, U, "buy_again", "thanks"]
UNHAPPY = ["intro", S, "remedy", "reason", U, "buy_again", "thanks"]
OFFERED = {"remedy_offered": "refund_or_voucher"}

# Callback times for NOW (2024-05-06 06:00Z = 14:00 Shanghai = 15:00 Seoul).
CALLBACK = {
    "cmn": {"tonight": "2024-05-06T12:00:00Z", "tomorrow": "2024-05-07T02:00:00Z",
            "default": "2024-05-06T08:00:00Z", "20": "2024-05-06T12:00:00Z"},
    "ko": {"tonight": "2024-05-06T11:00:00Z", "tomorrow": "2024-05-07T01:00:00Z",
           "default": "2024-05-06T08:00:00Z", "20": "2024-05-06T11:00:00Z"},
}

# name: (answers as intent names / open text / "-" / digits, path, stored fields, answers)
BRANCHES: dict[str, tuple[list[str], list[str], dict[str, Any], list[tuple[str, Any]]]] = {
    "satisfied": (
        ["satisfied", "多做直播", "yes"], HAPPY,
        {"satisfied": 1, "would_buy_again": 1, "outcome": "completed"},
        [(S, "satisfied"), (U, None), ("buy_again", "yes")]),
    "satisfied_wont_buy": (
        ["satisfied", "-", "no"], HAPPY,
        {"satisfied": 1, "would_buy_again": 0, "outcome": "completed"},
        [(S, "satisfied"), (U, None), ("buy_again", "no")]),
    "refund_quality_recovered": (
        ["unsatisfied", "refund", "quality", "要把关质量", "yes"], UNHAPPY,
        {"satisfied": 0, **OFFERED, "remedy_accepted": "refund", "reason": "quality",
         "would_buy_again": 1, "outcome": "recovered"},
        [(S, "unsatisfied"), ("remedy", "refund"), ("reason", "quality"), (U, None),
         ("buy_again", "yes")]),
    "voucher_taste": (
        ["unsatisfied", "voucher", "taste", "-", "no"], UNHAPPY,
        {"satisfied": 0, **OFFERED, "remedy_accepted": "voucher",
         "reason": "taste_or_not_as_described", "would_buy_again": 0, "outcome": "completed"},
        [(S, "unsatisfied"), ("remedy", "voucher"), ("reason", "taste"), (U, None),
         ("buy_again", "no")]),
    "none_logistics_declined": (
        ["unsatisfied", "none", "logistics", "-", "no"], UNHAPPY,
        {"satisfied": 0, **OFFERED, "remedy_accepted": "none", "reason": "logistics",
         "would_buy_again": 0, "outcome": "declined"},
        [(S, "unsatisfied"), ("remedy", "none"), ("reason", "logistics"), (U, None),
         ("buy_again", "no")]),
    "none_service_recovered": (
        ["unsatisfied", "none", "service", "-", "yes"], UNHAPPY,
        {"satisfied": 0, **OFFERED, "remedy_accepted": "none", "reason": "service",
         "would_buy_again": 1, "outcome": "recovered"},
        [(S, "unsatisfied"), ("remedy", "none"), ("reason", "service"), (U, None),
         ("buy_again", "yes")]),
    "voucher_other": (
        ["unsatisfied", "voucher", "other", "-", "yes"], UNHAPPY,
        {"satisfied": 0, **OFFERED, "remedy_accepted": "voucher", "reason": "other",
         "would_buy_again": 1, "outcome": "recovered"},
        [(S, "unsatisfied"), ("remedy", "voucher"), ("reason", "other"), (U, None),
         ("buy_again", "yes")]),
    "remedy_unanswered": (  # silence, reprompt, DTMF-only reprompt, then on to the reason
        ["unsatisfied", "-", "-", "-", "quality", "-", "no"], UNHAPPY,
        {"satisfied": 0, **OFFERED, "reason": "quality", "would_buy_again": 0,
         "outcome": "completed"},
        [(S, "unsatisfied"), ("remedy", None), ("reason", "quality"), (U, None),
         ("buy_again", "no")]),
    "no_answer": (
        ["-", "-", "-"], ["intro", S, "no_answer"], {"outcome": "partial"}, [(S, None)]),
    "callback_tonight": (
        ["callback", "tonight"], ["intro", S, "callback_time", "callback_bye"],
        {"callback_at": "tonight", "outcome": "callback_requested"},
        [(S, "callback"), ("callback_time", "tonight")]),
    "callback_tomorrow": (
        ["callback", "tomorrow"], ["intro", S, "callback_time", "callback_bye"],
        {"callback_at": "tomorrow", "outcome": "callback_requested"},
        [(S, "callback"), ("callback_time", "tomorrow")]),
    "callback_anytime": (
        ["callback", "anytime"], ["intro", S, "callback_time", "callback_bye"],
        {"callback_at": "default", "outcome": "callback_requested"},
        [(S, "callback"), ("callback_time", "anytime")]),
    "callback_hour": (
        ["callback", "20"], ["intro", S, "callback_time", "callback_bye"],
        {"callback_at": "20", "outcome": "callback_requested"},
        [(S, "callback"), ("callback_time", "at_hour")]),
    "callback_unanswered": (
        ["callback", "-", "?", "-", "-"], ["intro", S, "callback_time", "callback_default"],
        {"callback_at": "default", "outcome": "callback_requested"},
        [(S, "callback"), ("callback_time", None)]),
    "callback_during_remedy": (
        ["unsatisfied", "callback", "tomorrow"],
        ["intro", S, "remedy", "callback_time", "callback_bye"],
        {"satisfied": 0, **OFFERED, "callback_at": "tomorrow", "outcome": "callback_requested"},
        [(S, "unsatisfied"), ("remedy", "callback"), ("callback_time", "tomorrow")]),
    "opt_out": (
        ["opt_out"], ["intro", S, "opt_out_bye"], {"outcome": "opted_out"},
        [(S, "opt_out")]),
    "opt_out_instead_of_callback_time": (
        ["callback", "opt_out"], ["intro", S, "callback_time", "opt_out_bye"],
        {"outcome": "opted_out"}, [(S, "callback"), ("callback_time", "opt_out")]),
    "agent": (
        ["agent"], ["intro", S, "transfer_agent"], {"outcome": "transferred"}, [(S, "agent")]),
    "agent_during_reason": (
        ["unsatisfied", "refund", "agent"], ["intro", S, "remedy", "reason", "transfer_agent"],
        {"satisfied": 0, **OFFERED, "remedy_accepted": "refund", "outcome": "transferred"},
        [(S, "unsatisfied"), ("remedy", "refund"), ("reason", "agent")]),
}


def intent_keys(script: Script) -> dict[str, tuple[str | None, list[str]]]:
    """intent -> (first DTMF key, phrases); intent names are unique in the default scripts."""
    out: dict[str, tuple[str | None, list[str]]] = {}
    specs = list(script.global_intents.items()) + [
        (i, s) for n in script.nodes.values() for i, s in n.intents.items()]
    for name, spec in specs:
        assert name not in out, f"intent {name} used twice"
        out[name] = (spec.dtmf[0] if spec.dtmf else None,
                     spec.phrases_for(script.language, script.language))
    return out


def answers_for(script: Script, tokens: list[str], mode: str) -> list[str]:
    keys = intent_keys(script)
    out = []
    for t in tokens:
        if t not in keys:
            out.append(t)
        elif mode == "dtmf":
            key = keys[t][0]
            assert key, f"intent {t} has no DTMF key"
            out.append(key)
        elif mode == "phrase":
            out.append(keys[t][1][-1].replace(" ", "") if script.language == "cmn"
                       else keys[t][1][-1])
        else:
            out.append(t)
    return out


@pytest.mark.parametrize("mode", ["dtmf", "intent", "phrase"])
@pytest.mark.parametrize("lang", ["cmn", "ko"])
@pytest.mark.parametrize("branch", list(BRANCHES))
def test_branch(branch: str, lang: str, mode: str, scripts: dict[str, Script],
                db: sqlite_utils.Database) -> None:
    tokens, path, fields, answers = BRANCHES[branch]
    script = scripts[lang]
    result, rec, dialog = run_answers(script, answers_for(script, tokens, mode), db)

    assert result.path == path
    assert dialog.used == len(tokens), "every scripted answer is consumed, no more"
    expected: dict[str, Any] = {f: None for f in results(rec)}
    expected.update(fields, state="completed", current_node=path[-1])
    if expected["callback_at"] is not None:
        expected["callback_at"] = CALLBACK[lang][expected["callback_at"]]
    assert results(rec) == expected

    stored = rec.answers()
    assert [(a["node"], a["intent"]) for a in stored] == answers
    assert [a["seq"] for a in stored] == list(range(1, len(stored) + 1))
    for a in stored:
        if a["intent"] is None:
            continue
        if mode == "dtmf" or a["intent"] == "at_hour":
            assert (a["input_mode"], a["transcript"]) == ("dtmf", None) and a["dtmf"]
        else:
            assert (a["input_mode"], a["dtmf"]) == ("voice", None) and a["transcript"]
        assert a["confidence"] == 1.0
    phone = ORDERS[lang]["phone"]
    assert is_dnc(db, phone) == (fields["outcome"] == "opted_out")
    if fields["outcome"] == "transferred":
        assert [t for t, _v in dialog.transfers] == ["agents"]
        variables = dialog.transfers[0][1]
        assert variables["IVR_ORDER_ID"] == ORDERS[lang]["order_id"]
        assert variables["IVR_PRODUCT"] == ORDERS[lang]["product"]
        assert variables["IVR_CALL_ID"] == "call-1"
        assert not dialog.hung_up, "a transferred call continues in the dialplan"
    else:
        assert dialog.transfers == [] and dialog.hung_up


def test_every_node_is_covered_by_the_branches(scripts: dict[str, Script]) -> None:
    covered = {n for _t, path, _f, _a in BRANCHES.values() for n in path}
    for script in scripts.values():
        assert covered == set(script.nodes)


def test_tries_and_reprompts_are_counted(cmn: Script, db: sqlite_utils.Database) -> None:
    result, rec, dialog = run_answers(cmn, ["?", "-", "1", "-", "1"], db)
    first = rec.answers()[0]
    assert (first["node"], first["intent"], first["tries"]) == ("satisfaction", "satisfied", 3)
    asked = [line for line in dialog.log if line.startswith("  IVR (satisfaction")]
    assert "抱歉，没有听清楚" in asked[1] and "抱歉，没有听到您的回答" in asked[2]
    assert "[DTMF only]" not in asked[2]


def test_dtmf_only_reprompt_ignores_speech(cmn: Script, db: sqlite_utils.Database) -> None:
    # Two silences exceed max_noinput (1); the DTMF-only try does not accept speech.
    result, rec, dialog = run_answers(cmn, ["-", "-", "满意"], db)
    assert result.path == ["intro", "satisfaction", "no_answer"]
    assert any("[DTMF only]" in line and "请直接用电话按键选择" in line for line in dialog.log)
    row = rec.answers()[0]
    assert (row["intent"], row["tries"], row["transcript"]) == (None, 3, "满意")


def test_phrase_text_matching_in_mandarin(cmn: Script, db: sqlite_utils.Database) -> None:
    # typed Chinese without spaces; "不满意" must not be taken for "满意"
    result, rec, _d = run_answers(cmn, ["我不满意", "全额退款吧", "快递太慢", "-", "不会了"], db)
    assert (results(rec)["remedy_accepted"], results(rec)["outcome"]) == ("refund", "completed")
    assert [(a["intent"]) for a in rec.answers()] == [
        "unsatisfied", "refund", "logistics", None, "no"]


def test_korean_phrases_from_the_vocabulary(ko: Script, db: sqlite_utils.Database) -> None:
    result, rec, _d = run_answers(ko, ["아니요", "할인권", "택배 문제", "-", "네 구매"], db)
    assert results(rec) == {
        "satisfied": 0, "remedy_offered": "refund_or_voucher", "remedy_accepted": "voucher",
        "reason": "logistics", "would_buy_again": 1, "callback_at": None,
        "outcome": "recovered", "state": "completed", "current_node": "thanks"}
