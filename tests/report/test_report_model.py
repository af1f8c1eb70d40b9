"""The report of the hand-made campaign in conftest.py against figures worked out by hand."""

from __future__ import annotations

from fractions import Fraction

import pytest
import sqlite_utils

from ivr.report.model import Rate, ReportError, build_report, local_hour


def _counts(funnel: object, names: str) -> dict[str, int]:
    return {n: getattr(funnel, n) for n in names.split()}


def test_funnel_matches_hand_computed(db: sqlite_utils.Database) -> None:
    f = build_report(db, "c1").funnel
    assert _counts(f, "contacts dialed attempts answered machine completed") == {
        # 9 contacts; #7 never dialed; #6 dialed twice, never answered; 12 dials in all
        "contacts": 9, "dialed": 8, "attempts": 12, "answered": 7, "machine": 1,
        # decisive outcomes: completed #1 #3 #8 (2nd call), recovered #2
        "completed": 4}
    assert _counts(f, "satisfaction_answered satisfied unsatisfied") == {
        "satisfaction_answered": 5, "satisfied": 1, "unsatisfied": 4}
    assert _counts(f, "remedy_offered remedy_accepted remedy_refund remedy_voucher") == {
        "remedy_offered": 4, "remedy_accepted": 3, "remedy_refund": 2, "remedy_voucher": 1}
    assert _counts(f, "would_buy_again_answered would_buy_again recovered") == {
        "would_buy_again_answered": 4, "would_buy_again": 3, "recovered": 2}
    assert f.answer_rate == Rate(7, 8)
    assert f.completion_rate.value == Fraction(4, 7)
    assert f.complaint_rate.value == Fraction(4, 5)
    assert f.remedy_acceptance_rate.value == Fraction(3, 4)
    # unhappy: #2 voucher+rebuy, #3 declined remedy, #4 refund but hung up before the rebuy
    # question, #8 refund+rebuy -> 2 of 4
    assert f.recovery_rate == Rate(2, 4)
    assert f.recovery_rate.value == Fraction(1, 2)


def test_decisive_call_prefers_an_outcome_over_callback(db: sqlite_utils.Database) -> None:
    # contact 8: first call asked for a callback, the second completed -> counted as completed,
    # and only once
    by_seg = {g.key: g.funnel for g in build_report(db, "c1").breakdowns["segment"]}
    assert by_seg["A"].completed == 4  # contacts 1, 2, 3, 8
    assert by_seg["A"].answered == 5


def test_hour_breakdown_is_per_attempt_in_callee_local_time(db: sqlite_utils.Database) -> None:
    hours = {g.key: g.funnel for g in build_report(db, "c1").breakdowns["hour"]}
    assert sorted(hours, key=int) == ["9", "10", "11", "14", "15"]
    table = {h: (f.contacts, f.dialed, f.answered, f.completed) for h, f in hours.items()}
    assert table == {"9": (2, 2, 0, 0), "10": (3, 3, 3, 2), "11": (2, 2, 1, 0),
                     "14": (3, 3, 3, 1), "15": (2, 2, 1, 1)}
    assert hours["10"].answer_rate.value == 1
    assert hours["11"].answer_rate.value == Fraction(1, 2)
    assert hours["9"].completion_rate.value is None  # nothing answered: undefined, not 0
    assert sum(f.dialed for f in hours.values()) == 12


@pytest.mark.parametrize("dim", ["segment", "voice", "caller_id", "region"])
def test_contact_breakdowns_add_up_to_the_totals(db: sqlite_utils.Database, dim: str) -> None:
    report = build_report(db, "c1")
    rows = report.breakdowns[dim]
    for name in ("contacts", "dialed", "answered", "completed", "unsatisfied", "recovered"):
        assert sum(getattr(g.funnel, name) for g in rows) == getattr(report.funnel, name)


def test_breakdown_values(db: sqlite_utils.Database) -> None:
    report = build_report(db, "c1")
    region = {g.key: g.funnel for g in report.breakdowns["region"]}
    assert set(region) == {"Beijing", "Shanghai", "(none)"}
    assert (region["Beijing"].dialed, region["Beijing"].answered) == (4, 3)
    assert (region["Shanghai"].contacts, region["Shanghai"].dialed) == (4, 3)
    voice = {g.key: g.funnel for g in report.breakdowns["voice"]}
    assert voice["female"].recovery_rate == Rate(2, 2)
    assert voice["male"].recovery_rate == Rate(0, 2)


def test_merchant_and_host_ranking(db: sqlite_utils.Database) -> None:
    report = build_report(db, "c1", rectify_threshold="3/10", min_count=3)
    m = [(r.name, r.answered, r.satisfaction_answered, r.unsatisfied, r.rectify)
         for r in report.merchants]
    # M2: 3 of 3 unhappy -> rectify; M1: 1 of 2 is over 30% but below the minimum count;
    # M3: nobody answered the satisfaction question -> undefined rate, ranked last
    assert m == [("M2", 3, 3, 3, True), ("M1", 2, 2, 1, False), ("M3", 2, 0, 0, False)]
    assert report.merchants[0].complaint_rate.value == 1
    assert report.merchants[2].complaint_rate.value is None
    assert dict(report.merchants[0].reasons) == {"包装破损": 1, "发货慢": 1, "质量差": 1}
    h = [(r.name, r.satisfaction_answered, r.unsatisfied, r.rectify) for r in report.hosts]
    assert h == [("H2", 2, 2, False), ("H1", 3, 2, True)]
    assert report.merchants_to_rectify == Rate(1, 3)


def test_threshold_is_strict_and_configurable(db: sqlite_utils.Database) -> None:
    hosts = {r.name: r for r in build_report(db, "c1", rectify_threshold=Fraction(2, 3)).hosts}
    assert not hosts["H1"].rectify  # 2/3 is not above 2/3
    hosts = {r.name: r for r in build_report(db, "c1", min_count=2).hosts}
    assert hosts["H2"].rectify and hosts["H1"].rectify


def test_suggestions_listed_with_transcript_or_recording(db: sqlite_utils.Database) -> None:
    s = build_report(db, "c1").suggestions
    assert [(x.call_id, x.transcript, x.recording, x.merchant) for x in s] == [
        ("k1", "希望包装更好", "", "M1"),
        ("k3", "", "/var/ivr/recordings/k3-suggestions.wav", "M2")]
    assert s[0].phone.startswith("+861") and "*" in s[0].phone and s[0].phone.endswith("0001")


def test_other_campaigns_do_not_leak(db: sqlite_utils.Database) -> None:
    other = build_report(db, "other").funnel
    assert (other.contacts, other.answered, other.unsatisfied) == (1, 1, 1)


def test_unknown_campaign_is_a_clear_error(db: sqlite_utils.Database) -> None:
    with pytest.raises(ReportError, match="unknown campaign 'nope'.*c1"):
        build_report(db, "nope")
    with pytest.raises(ReportError, match="between 0 and 1"):
        build_report(db, "c1", rectify_threshold=1.5)


def test_local_hour_fallbacks() -> None:
    assert local_hour("2024-05-01T23:30:00Z", "Asia/Shanghai", None) == 7
    assert local_hour("2024-05-01T23:30:00", None, "+8613900000001") == 7  # naive = UTC
    assert local_hour("2024-05-01T23:30:00Z", "Not/AZone", None) == 23  # unknown -> UTC
    assert local_hour("garbage", None, None) is None


def test_webhook_deliveries_and_caller_ids_of_the_campaign_only(db: sqlite_utils.Database) -> None:
    report = build_report(db, "c1")
    assert report.webhooks == [("call.finished", "delivered", 1), ("call.finished", "queued", 1)]
    assert sum(c.attempts for c in report.caller_ids) == db.execute(
        "SELECT count(*) FROM attempts WHERE campaign_id = 'c1' AND caller_id IS NOT NULL"
    ).fetchone()[0]
