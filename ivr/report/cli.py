"""``ivr report`` and ``ivr status``."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from ivr.cli import settings_from
from ivr.report.model import (
    DEFAULT_MIN_COUNT,
    DEFAULT_RECTIFY_THRESHOLD,
    REPORT_STEPS,
    Report,
    ReportError,
    build_report,
)
from ivr.report.render import print_report, to_json, write_csv, write_html
from ivr.report.status import collect_status
from ivr.store import open_db
from ivr.terminal import cell, markup


def _threshold(_ctx: click.Context, _param: click.Parameter, value: str) -> Fraction:
    try:
        text = value.strip().rstrip("%")
        frac = Fraction(text) / (100 if value.strip().endswith("%") else 1)
    except (ValueError, ZeroDivisionError) as exc:
        raise click.BadParameter(f"{value!r} is not a rate like 0.3, 30% or 3/10") from exc
    if not 0 <= frac <= 1:
        raise click.BadParameter(f"{value!r} must be between 0 and 1 (0%..100%)")
    return frac


@click.command()
@click.argument("campaign")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--csv", "csv_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write one CSV per table into this directory.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a self-contained HTML page with charts (opens offline).")
@click.option("--threshold", default=str(DEFAULT_RECTIFY_THRESHOLD), show_default=True,
              callback=_threshold,
              help="Complaint rate above which a merchant/host is marked for rectification "
                   "(0.3, 30% or 3/10).")
@click.option("--min-count", default=DEFAULT_MIN_COUNT, show_default=True,
              type=click.IntRange(min=1),
              help="Rated calls a merchant/host needs before it can be marked.")
@click.pass_context
def report(ctx: click.Context, campaign: str, as_json: bool, csv_dir: Path | None,
           html_file: Path | None, threshold: Fraction, min_count: int) -> None:
    """Campaign report: funnel, breakdowns, merchant/host ranking, suggestions.

    \b
    Examples:
      ivr report may-recall                     terminal tables
      ivr report may-recall --json > may.json   machine-readable (rates as num/den)
      ivr report may-recall --csv out/          one CSV per table
      ivr report may-recall --html may.html     page with charts, opens offline
      ivr report may-recall --threshold 20% --min-count 5
    """
    settings = settings_from(ctx)
    db = open_db(settings.db_path, read_only_ok=True)
    err = Console(stderr=True)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), console=err,
                      transient=True, disable=as_json or not err.is_terminal) as bar:
            task = bar.add_task("report", total=REPORT_STEPS)

            def step(name: str) -> None:
                bar.update(task, advance=1, description=f"report: {name}")

            result: Report = build_report(db, campaign, rectify_threshold=threshold,
                                          min_count=min_count, progress=step)
    except ReportError as exc:
        raise click.ClickException(str(exc)) from exc
    wrote = []
    if csv_dir:
        wrote += [str(p) for p in write_csv(result, csv_dir)]
    if html_file:
        wrote.append(str(write_html(result, html_file)))
    if as_json:
        click.echo(to_json(result))
    elif not wrote:
        print_report(result)
    for path in wrote:
        err.print(f"wrote {path}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option("--errors", default=10, show_default=True, type=click.IntRange(min=0),
              help="How many recent errors to show.")
@click.pass_context
def status(ctx: click.Context, as_json: bool, errors: int) -> None:
    """Running campaigns, live calls, caller-ID pool health, outbox and the last errors.

    \b
    Examples:
      ivr status
      ivr status --errors 30
      ivr status --json | jq .live_calls
    """
    settings = settings_from(ctx)
    data = collect_status(open_db(settings.db_path, read_only_ok=True), errors=errors)
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    console = Console()
    _print_status(console, data)


def _print_status(console: Console, data: dict[str, Any]) -> None:
    t = Table(title="Running campaigns", title_justify="left")
    for col in ("id", "name", "contacts", "states", "attempts", "answered"):
        t.add_column(col)
    for c in data["campaigns"]:
        states = ", ".join(f"{k} {v}" for k, v in sorted(c["contact_states"].items()))
        t.add_row(*map(cell, (c["id"], c["name"] or "", c["contacts"], states, c["attempts"],
                              c["answered"])))
    console.print(t if data["campaigns"] else "[dim]No running campaigns.[/]")
    t = Table(title=f"Live calls: {len(data['live_calls'])}", title_justify="left")
    for col in ("call", "phone", "campaign", "node", "caller ID", "age"):
        t.add_column(col)
    for c in data["live_calls"]:
        age = "" if c["age_s"] is None else f"{c['age_s']}s"
        t.add_row(*map(cell, (c["id"], c["phone"], c["campaign_id"] or "",
                              c["current_node"] or "", c["caller_id"] or "", age)))
    console.print(t)
    pool = data["number_pool"]
    if pool is None:
        console.print("[dim]Caller-ID pool: not set up (no numbers table).[/]")
    else:
        states = ", ".join(f"{k} {v}" for k, v in sorted(pool["by_state"].items()))
        console.print(f"[bold]Caller-ID pool[/]: {pool['total']} numbers ({markup(states)}); "
                      f"average score {pool['avg_score']}, lowest {pool['min_score']}")
        for n in pool["lowest"]:
            console.print(markup(f"  {n['number']}  {n['state']}  score {n['score']}"))
    if data["outbox"] is not None:
        console.print("[bold]Outbox[/]: " + markup(", ".join(
            f"{k} {v}" for k, v in sorted(data["outbox"].items())) or "empty"))
    t = Table(title="Last errors", title_justify="left")
    for col in ("at", "source", "id", "campaign", "phone", "detail"):
        t.add_column(col, overflow="fold")
    for e in data["errors"]:
        t.add_row(*map(cell, (e["at"] or "", e["source"], e["id"], e["campaign_id"] or "",
                              e["phone"], e["detail"] or "")), style="red")
    console.print(t if data["errors"] else "[green]No errors recorded.[/]")
