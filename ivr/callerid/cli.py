"""``ivr numbers``: the caller-ID pool for admins (health check, flags, history, flag endpoint)."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

import click
import sqlite_utils
from rich.console import Console
from rich.table import Table

from ivr.callerid.config import PoolConfig, load_pool
from ivr.callerid.flags import ImportResult, import_csv
from ivr.callerid.health import CheckReport, check_pool
from ivr.callerid.state import (
    ACTIVE,
    COOLING_DOWN,
    FLAGGED,
    RETIRED,
    active_flags,
    add_flag,
    clear_flags,
    ensure_schema,
    events,
    get_number,
    iso,
    parse_iso,
    set_state,
    sync_pool,
    utc,
)
from ivr.cli import Group, echo_json, json_option, settings_from
from ivr.phone import InvalidNumber, parse_e164
from ivr.store import open_db
from ivr.terminal import cell, markup
from ivr.yamlfile import YamlConfigError

_FILE_KEY = "ivr.numbers_file"
STATE_STYLE = {"active": "green", "flagged": "red", "cooling_down": "yellow", "retired": "dim"}


def _console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 180, highlight=False)


def _pool(ctx: click.Context) -> PoolConfig:
    """The pool file given with --file, else the one ivr.yaml names (what the dialer uses)."""
    return load_pool(ctx.meta.get(_FILE_KEY) or settings_from(ctx).numbers)


def _db(ctx: click.Context) -> sqlite_utils.Database:
    db = open_db(settings_from(ctx).db_path)
    ensure_schema(db)
    return db


def _synced_db(ctx: click.Context) -> sqlite_utils.Database:
    """The database with numbers.yaml applied; a broken pool file does not stop a manual flag."""
    db = _db(ctx)
    try:
        sync_pool(db, _pool(ctx))
    except YamlConfigError as exc:
        click.echo(f"warning: pool file not applied: {exc}", err=True)
    return db


def _number(text: str) -> str:
    try:
        return parse_e164(text)
    except InvalidNumber as exc:
        raise click.BadParameter(str(exc)) from exc


@click.group(cls=Group)
@click.option("--file", "-f", "numbers_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Caller-ID pool file (default: `numbers` in ivr.yaml).")
@click.pass_context
def numbers(ctx: click.Context, numbers_file: Path | None) -> None:
    """Caller-ID numbers: health check, rotation state, reputation flags.

    \b
    Examples:
      ivr numbers check --campaign-size 2000   exit 1 if the pool cannot serve it
      ivr numbers flag +862150001001 --reason "user reports: 骚扰电话"
      ivr numbers flags import feed.csv        columns number,reason[,source,expires_at,action]
      ivr numbers serve-flags --port 8765      POST JSON flags to http://127.0.0.1:8765/flags
    """
    ctx.meta[_FILE_KEY] = numbers_file


@numbers.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--campaign-size", type=click.IntRange(min=0),
              help="Calls the campaign needs; exit 1 if healthy capacity today is below it.")
@click.option("--pool", "pool_name", help="Pool the campaign uses (default: default_pool).")
@click.pass_context
def check(ctx: click.Context, as_json: bool, campaign_size: int | None,
          pool_name: str | None) -> None:
    """Recompute health, apply state changes, show the pool; exit 1 if it cannot serve.

    \b
    Examples:
      ivr numbers check
      ivr numbers check --campaign-size 2000 --pool west
      ivr numbers -f config/numbers.yaml check --json
    """
    pool = _pool(ctx)
    report = check_pool(_db(ctx), pool, campaign_size=campaign_size, pool_name=pool_name,
                        source="cli")
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        _print_report(report)
    ctx.exit(0 if report.ok else 1)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0%}"


def _print_report(report: CheckReport) -> None:
    console = _console()
    table = Table(title=f"Caller-ID health at {report.checked_at}", show_lines=False)
    for col in ("number", "pool", "region"):
        table.add_column(col, no_wrap=True)
    for col in ("calls", "answer", "short", "rejections", "flags", "score", "today"):
        table.add_column(col, justify="right")
    table.add_column("state", no_wrap=True)
    table.add_column("why", overflow="fold")
    for n in report.numbers:
        state = n.state if n.state == n.previous_state else f"{n.previous_state}->{n.state}"
        table.add_row(
            n.number, n.pool, n.region or "-", str(n.attempts), _pct(n.answer_rate),
            _pct(n.short_rate), str(n.rejections), str(len(n.flags)) if n.flags else "-",
            f"{n.score:g}", f"{n.used_today}/{n.daily_cap}",
            cell(state, STATE_STYLE.get(n.state, "")), cell("; ".join(n.why)),
        )
    console.print(table)
    caps = ", ".join(f"{p}: {c}" for p, c in sorted(report.capacity_today.items()))
    console.print(f"healthy capacity left today: {caps}")
    if report.problems:
        for p in report.problems:
            console.print(f"[red]CANNOT SERVE[/]: {markup(p)}")
    else:
        need = f" for {report.campaign_size} calls" if report.campaign_size is not None else ""
        console.print(f"[green]OK[/]: pool {report.target_pool!r} can serve the campaign{need}")


@numbers.command()
@click.argument("number")
@click.option("--reason", required=True, help="Why (shown in the check and the history).")
@click.option("--expires", help="ISO 8601 time the flag lapses (default: until unflagged).")
@click.pass_context
def flag(ctx: click.Context, number: str, reason: str, expires: str | None) -> None:
    """Flag NUMBER by hand: it leaves rotation at once.

    \b
    Examples:
      ivr numbers flag +862150001001 --reason "user reports: 骚扰电话"
      ivr numbers flag +861060001001 --reason "carrier label" --expires 2027-01-01T00:00:00+08:00
    """
    num = _number(number)
    until = None
    if expires:
        until = parse_iso(expires)
        if until is None:
            raise click.BadParameter(f"not an ISO 8601 time: {expires}", param_hint="--expires")
    db = _synced_db(ctx)
    add_flag(db, num, reason.strip(), "manual", expires_at=until)
    row = get_number(db, num)
    where = f"state {row['state']}" if row else "not in the pool yet; the flag is kept"
    click.echo(f"flagged {num} ({where}): {reason}")


@numbers.command()
@click.argument("number")
@click.option("--reason", required=True, help="Why the flag is lifted.")
@click.option("--skip-cooldown", is_flag=True,
              help="Put it back in rotation now instead of after the cool-down.")
@click.pass_context
def unflag(ctx: click.Context, number: str, reason: str, skip_cooldown: bool) -> None:
    """Lift every active flag of NUMBER; it re-enters rotation after cool-down and a clean check.

    \b
    Examples:
      ivr numbers unflag +862150001001 --reason "label removed by the carrier"
      ivr numbers unflag +862150001001 --reason "flagged by mistake" --skip-cooldown
    """
    num = _number(number)
    db = _synced_db(ctx)
    n = clear_flags(db, num, reason.strip())
    row = get_number(db, num)
    now = utc(None)
    if row is not None and row["state"] != RETIRED and not active_flags(db, num, now=now):
        if skip_cooldown:
            set_state(db, num, ACTIVE, f"unflagged, cool-down skipped: {reason}", "manual",
                      now=now)
        elif row["state"] == FLAGGED:
            # health is re-checked before re-admission (cooling_down -> active needs a clean check)
            until = now + timedelta(minutes=_pool(ctx).health.cooldown_minutes)
            set_state(db, num, COOLING_DOWN, f"unflagged: {reason}; cool-down started", "manual",
                      now=now, cooldown_until=iso(until))
    row = get_number(db, num)
    click.echo(f"cleared {n} flag(s) of {num}; state {row['state'] if row else 'not in pool'}")


@numbers.command()
@click.argument("number", required=False)
@click.option("--limit", default=30, show_default=True)
@json_option
@click.pass_context
def history(ctx: click.Context, number: str | None, limit: int, as_json: bool) -> None:
    """State changes (newest first), of NUMBER or of the whole pool.

    \b
    Examples:
      ivr numbers history
      ivr numbers history +862150001001 --limit 10
    """
    db = _db(ctx)
    rows = events(db, _number(number) if number else None, limit=limit)
    if as_json:
        echo_json(rows)
        return
    table = Table(title="caller-ID state history")
    for col in ("at", "number", "from", "to", "source", "reason"):
        table.add_column(col, overflow="fold")
    for e in rows:
        table.add_row(*map(cell, (e["at"], e["number"], e["from_state"] or "-", e["to_state"],
                                  e["source"], e["reason"])))
    _console().print(table)


@numbers.group()
def flags() -> None:
    """External / manual flags.

    \b
    Examples:
      ivr numbers flags list
      ivr numbers flags import feed.csv        columns number,reason[,source,expires_at,action]
    """


@flags.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--source", help="Source name stored with each flag (default: csv:<file name>).")
@click.pass_context
def flags_import(ctx: click.Context, file: Path, source: str | None) -> None:
    """Import flags from a CSV (number,reason[,source,expires_at,action]); exit 1 on bad rows.

    \b
    Examples:
      ivr numbers flags import feed.csv
      ivr numbers flags import carrier-2025-06.csv --source carrier-feed
    """
    result = import_csv(_db(ctx), file, source=source)
    _print_import(result)
    ctx.exit(1 if result.errors else 0)


def _print_import(result: ImportResult) -> None:
    click.echo(f"flagged {len(result.flagged)}, cleared {len(result.cleared)}, "
               f"errors {len(result.errors)}")
    for n in result.unknown:
        click.echo(f"note: {n} is not in the caller-ID pool (flag kept)")
    for e in result.errors:
        click.echo(f"error: {e}", err=True)


@flags.command("list")
@json_option
@click.pass_context
def flags_list(ctx: click.Context, as_json: bool) -> None:
    """Active flags.

    \b
    Example:
      ivr numbers flags list
    """
    found = active_flags(_db(ctx))
    if as_json:
        echo_json(found)
        return
    table = Table(title="active caller-ID flags")
    for col in ("id", "number", "source", "reason", "since", "expires"):
        table.add_column(col, overflow="fold")
    for f in found:
        table.add_row(*map(cell, (f["id"], f["number"], f["source"], f["reason"],
                                  f["created_at"], f["expires_at"] or "-")))
    _console().print(table)


@numbers.command("serve-flags")
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address only.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.pass_context
def serve_flags(ctx: click.Context, host: str, port: int) -> None:
    """Serve POST /flags (JSON) on the loopback interface until Ctrl-C.

    \b
    Examples:
      ivr numbers serve-flags --port 8765
      curl -d '{"number": "+862150001001", "reason": "user reports"}' \\
          http://127.0.0.1:8765/flags
    """
    from ivr.callerid.flagserver import FlagServer

    try:
        server = FlagServer(settings_from(ctx).db_path, host=host, port=port)
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"flag endpoint on {server.url}/flags (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
