"""The report as named tables of raw cells: the one source for terminal, CSV and HTML output.

Cells keep their raw types (int, str, bool, :class:`Rate`, None); each output formats them, so
the outputs cannot disagree on a figure. :func:`report_to_dict` is the JSON form of the same report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ivr.report.model import COUNT_NAMES, DIMENSIONS, RATE_NAMES, Funnel, RankRow, Rate, Report

Cell = int | str | bool | Rate | None

# Columns of the breakdown tables (the full set of counts and rates is in the funnel and the JSON).
BREAKDOWN_COLUMNS = ("contacts", "dialed", "answered", "answer_rate", "completed",
                     "completion_rate", "satisfied", "unsatisfied", "complaint_rate",
                     "remedy_accepted", "would_buy_again", "recovered", "recovery_rate")


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Cell, ...]]


def report_tables(report: Report) -> list[Table]:
    """Every table of the report, in display order."""
    tables = [
        Table("funnel", "Funnel", ("metric", "value"), _funnel_rows(report.funnel)),
    ]
    for dim in DIMENSIONS:
        unit = {"hour": "attempts, callee local hour",
                "day": "attempts, callee local day"}.get(dim, "contacts")
        tables.append(Table(
            f"by_{dim}", f"By {dim.replace('_', ' ')} ({unit})",
            (dim, *BREAKDOWN_COLUMNS),
            [(g.key, *(_get(g.funnel, c) for c in BREAKDOWN_COLUMNS))
             for g in report.breakdowns[dim]],
        ))
    for kind, rows in (("merchant", report.merchants), ("host", report.hosts)):
        tables.append(Table(
            f"{kind}s", f"{kind.capitalize()} ranking by complaint rate "
            f"(rectify above {_pct(report)} with at least {report.min_count} rated)",
            ("rank", kind, "answered", "satisfaction_answered", "unsatisfied", "complaint_rate",
             "rectify", "reasons"),
            [_rank_row(i, r) for i, r in enumerate(rows, 1)],
        ))
    tables.append(Table(
        "reasons", "Complaint reasons (unsatisfied contacts)", ("reason", "contacts"),
        [(reason, n) for reason, n in report.reasons]))
    tables.append(Table(
        "caller_ids", "Caller-ID health (pool state now, this campaign's attempts)",
        ("caller_id", "state", "score", "attempts", "answered", "answer_rate", "rejected"),
        [(c.number, c.state, None if c.score is None else f"{c.score:g}", c.attempts,
          c.answered, c.answer_rate, c.rejected) for c in report.caller_ids]))
    tables.append(Table(
        "webhooks", "Webhook deliveries to the platform", ("event", "state", "deliveries"),
        list(report.webhooks)))
    tables.append(Table(
        "suggestions", "Open answers (suggestions)",
        ("call_id", "phone", "merchant", "node", "transcript", "dtmf", "recording",
         "answered_at"),
        [(s.call_id, s.phone, s.merchant, s.node, s.transcript, s.dtmf, s.recording,
          s.answered_at) for s in report.suggestions],
    ))
    return tables


def _pct(report: Report) -> str:
    return f"{float(report.rectify_threshold) * 100:g}%"


def _get(funnel: Funnel, name: str) -> Cell:
    value = getattr(funnel, name)
    assert isinstance(value, int | Rate)
    return value


def _funnel_rows(funnel: Funnel) -> list[tuple[Cell, ...]]:
    order = ("contacts", "dialed", "attempts", "answered", "answer_rate", "machine", "completed",
             "completion_rate", "satisfaction_answered", "satisfied", "satisfaction_rate",
             "unsatisfied", "complaint_rate", "remedy_offered", "remedy_accepted",
             "remedy_refund", "remedy_voucher", "remedy_acceptance_rate",
             "would_buy_again_answered", "would_buy_again", "would_buy_again_rate",
             "recovered", "recovery_rate")
    assert set(order) == set(COUNT_NAMES) | set(RATE_NAMES)
    return [(name, _get(funnel, name)) for name in order]


def _rank_row(rank: int, row: RankRow) -> tuple[Cell, ...]:
    reasons = "; ".join(f"{reason} x{n}" for reason, n in row.reasons)
    return (rank, row.name, row.answered, row.satisfaction_answered, row.unsatisfied,
            row.complaint_rate, row.rectify, reasons)


def rate_dict(rate: Rate) -> dict[str, Any]:
    value = rate.value
    return {"num": rate.num, "den": rate.den, "value": None if value is None else float(value)}


def funnel_dict(funnel: Funnel) -> dict[str, Any]:
    out: dict[str, Any] = {"unit": funnel.unit}
    out.update({n: getattr(funnel, n) for n in COUNT_NAMES})
    out.update({n: rate_dict(getattr(funnel, n)) for n in RATE_NAMES})
    return out


def report_to_dict(report: Report) -> dict[str, Any]:
    """The JSON form: counts as integers, rates as {num, den, value}."""
    def rank(r: RankRow) -> dict[str, Any]:
        return {"name": r.name, "answered": r.answered,
                "satisfaction_answered": r.satisfaction_answered, "satisfied": r.satisfied,
                "unsatisfied": r.unsatisfied, "complaint_rate": rate_dict(r.complaint_rate),
                "rectify": r.rectify, "reasons": [[k, n] for k, n in r.reasons]}

    return {
        "campaign": {"id": report.campaign_id, "name": report.campaign_name,
                     "status": report.campaign_status},
        "generated_at": report.generated_at,
        "rectify_threshold": {"num": report.rectify_threshold.numerator,
                              "den": report.rectify_threshold.denominator,
                              "value": float(report.rectify_threshold)},
        "min_count": report.min_count,
        "funnel": funnel_dict(report.funnel),
        "breakdowns": {dim: [{"key": g.key, **funnel_dict(g.funnel)} for g in rows]
                       for dim, rows in report.breakdowns.items()},
        "merchants": [rank(r) for r in report.merchants],
        "merchants_to_rectify": rate_dict(report.merchants_to_rectify),
        "hosts": [rank(r) for r in report.hosts],
        "hosts_to_rectify": rate_dict(report.hosts_to_rectify),
        "suggestions": [s.__dict__.copy() for s in report.suggestions],
        "reasons": [[k, n] for k, n in report.reasons],
        "webhooks": [{"event": e, "state": s, "deliveries": n} for e, s, n in report.webhooks],
        "caller_ids": [{"number": c.number, "state": c.state, "score": c.score,
                        "attempts": c.attempts, "answered": c.answered,
                        "answer_rate": rate_dict(c.answer_rate), "rejected": c.rejected}
                       for c in report.caller_ids],
    }
