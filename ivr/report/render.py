"""Report outputs: rich terminal tables, JSON, one CSV per table, a self-contained HTML page.

All four read the same :class:`~ivr.report.model.Report` through :mod:`ivr.report.tables`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from rich.console import Console
from rich.table import Table as RichTable

from ivr.i18n import label
from ivr.report import charts
from ivr.report.model import Rate, Report
from ivr.report.tables import Cell, Table, report_tables, report_to_dict
from ivr.report.template import CSS, FRAGMENT, PAGE
from ivr.terminal import cell, markup


def raw_cell(cell: Cell) -> str:
    """Exact machine form: ints as digits, rates as ``num/den``, booleans as true/false."""
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, Rate):
        return f"{cell.num}/{cell.den}"
    return str(cell)


def csv_cell(cell: Cell) -> str:
    """CSV form: rates as the nearest float (spreadsheets read '3/4' as a date); blank if
    undefined."""
    if isinstance(cell, Rate):
        value = cell.value
        return "" if value is None else repr(float(value))
    return raw_cell(cell)


def show_cell(cell: Cell) -> str:
    """Human form for the terminal and HTML: rates as a percentage with their counts."""
    if isinstance(cell, Rate):
        return str(cell)
    if isinstance(cell, bool):
        return "yes" if cell else ""
    return "" if cell is None else str(cell)


def to_json(report: Report) -> str:
    return json.dumps(report_to_dict(report), ensure_ascii=False, indent=2)


def write_csv(report: Report, directory: Path) -> list[Path]:
    """Write ``<table>.csv`` for every table into ``directory``; returns the files."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for table in report_tables(report):
        path = directory / f"{table.name}.csv"
        # utf-8-sig: Excel reads UTF-8 (Chinese names) only with the byte-order mark
        with path.open("w", newline="", encoding="utf-8-sig") as fh:
            writer = csv.writer(fh)
            writer.writerow(table.columns)
            writer.writerows([csv_cell(c) for c in row] for row in table.rows)
        paths.append(path)
    return paths


RecordingUrl = Callable[[str, int], str]  # (call id, answer seq) -> URL of the audio


def _render(template: str, report: Report, lang: str, recording_url: RecordingUrl | None,
            **extra: Any) -> str:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    f = report.funnel
    kpis = [
        ("contacts_dialed", f"{f.dialed}/{f.contacts}"),
        ("answer_rate", f.answer_rate.percent()),
        ("completion_rate", f.completion_rate.percent()),
        ("satisfaction_rate", f.satisfaction_rate.percent()),
        ("complaint_rate", f.complaint_rate.percent()),
        ("remedy_acceptance_rate", f.remedy_acceptance_rate.percent()),
        ("recovery_rate", f.recovery_rate.percent()),
        ("merchants_to_rectify", f"{report.merchants_to_rectify.num}/"
                                 f"{report.merchants_to_rectify.den}"),
    ]
    chart_list = [("funnel", charts.funnel_svg(report, lang)),
                  ("trend", charts.trend_svg(report, lang)),
                  ("satisfaction", charts.satisfaction_svg(report, lang)),
                  ("reasons", charts.reasons_svg(report, lang)),
                  ("hour", charts.hour_svg(report, lang)),
                  ("merchants", charts.ranking_svg(report, "merchant", lang=lang)),
                  ("hosts", charts.ranking_svg(report, "host", lang=lang))]

    def row_class(table: Table, row: tuple[Cell, ...]) -> str:
        if table.name in ("merchants", "hosts") and row[table.columns.index("rectify")] is True:
            return "rectify"
        return ""

    def title(cell: Cell) -> str:
        return f"{cell.num}/{cell.den}" if isinstance(cell, Rate) else ""

    def title_of(table: Table) -> str:
        text = label(f"t_{table.name}", lang)
        return table.title if text == f"t_{table.name}" or lang != "zh" else text

    by_call = {(s.call_id, s.recording): s.seq for s in report.suggestions}

    def audio(row: tuple[Cell, ...]) -> str:
        if recording_url is None:
            return ""
        seq = by_call.get((str(row[0]), str(row[6])))
        return recording_url(str(row[0]), seq) if seq else ""

    def show_localised(cell: Cell) -> str:
        if isinstance(cell, bool):
            return label("yes", lang) if cell else ""
        return show_cell(cell)

    return env.from_string(template).render(
        r=report, kpis=kpis, charts=chart_list, tables=report_tables(report), font=charts.FONT,
        raw=raw_cell, show=show_localised, title=title, row_class=row_class,
        t=lambda key: label(str(key), lang), title_of=title_of, audio=audio, lang=lang,
        **extra)


def report_fragment(report: Report, *, lang: str = "zh",
                    recording_url: RecordingUrl | None = None, **_ignored: Any) -> str:
    """The report's content (headings, KPIs, charts, tables) for embedding in a page."""
    return _render(FRAGMENT, report, lang, recording_url)


def report_css() -> str:
    return jinja2.Environment(autoescape=False).from_string(CSS).render(font=charts.FONT)


def to_html(report: Report, *, lang: str = "zh",
            recording_url: RecordingUrl | None = None) -> str:
    """A self-contained page (no external resource unless ``recording_url`` is given)."""
    fragment = report_fragment(report, lang=lang, recording_url=recording_url)
    return _render(PAGE, report, lang, recording_url, css=report_css(), fragment=fragment)


def write_html(report: Report, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_html(report), encoding="utf-8")
    return path


_SHORT = {"contacts": "cont", "dialed": "dial", "answered": "ans", "answer_rate": "ans%",
          "completed": "done", "completion_rate": "done%", "satisfied": "sat",
          "unsatisfied": "unsat", "complaint_rate": "cmpl%", "remedy_accepted": "remedy",
          "would_buy_again": "rebuy", "recovered": "recov", "recovery_rate": "recov%"}


def print_report(report: Report, console: Console | None = None) -> None:
    console = console or Console()
    # Names, products and transcripts are data: cells are Text (never markup), and the heading
    # escapes them.
    console.print(f"[bold]Campaign {markup(report.campaign_name)}[/] "
                  f"({markup(report.campaign_id)}, {markup(report.campaign_status)})")
    for table in report_tables(report):
        if table.name == "suggestions" and not table.rows:
            continue
        out = RichTable(title=table.title, title_justify="left", show_lines=False)
        compact = table.name.startswith("by_")  # wide tables: short headers, bare percentages
        for col in table.columns:
            out.add_column(_SHORT.get(col, col) if compact else col, overflow="fold")
        for row in table.rows:
            style = "red" if table.name in ("merchants", "hosts") and row[6] is True else None
            out.add_row(*(cell(c.percent() if compact and isinstance(c, Rate) else show_cell(c))
                          for c in row), style=style)
        if not table.rows:
            out.add_row(*(["(none)"] + [""] * (len(table.columns) - 1)))
        console.print(out)
