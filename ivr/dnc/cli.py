"""``ivr dnc``: the do-not-call list from the command line (the API and console do the same)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ivr.cli import settings_from
from ivr.dnc import store
from ivr.phone import InvalidNumber
from ivr.store import open_db


@click.group()
def dnc() -> None:
    """Do-not-call list: every number on it is never dialed again, even when already planned.

    \b
    Examples:
      ivr dnc add 13912345678 --reason "asked on the phone"
      ivr dnc import complaints.csv --source "12315 complaints"
      ivr dnc list --json
      ivr dnc remove +8613912345678 --reason "added by mistake"
    """


@dnc.command()
@click.argument("phone")
@click.option("--reason", default="", help="Why (shown to operators).")
@click.option("--source", default="cli", show_default=True, help="Who asked.")
@click.pass_context
def add(ctx: click.Context, phone: str, reason: str, source: str) -> None:
    """Put PHONE on the list (local or +E.164 form).

    \b
    Example:
      ivr dnc add 13912345678 --reason "opted out by SMS" --source sms
    """
    try:
        e164 = store.add(open_db(settings_from(ctx).db_path), phone, reason=reason,
                         source=source)
    except (InvalidNumber, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{e164} is on the do-not-call list")


@dnc.command()
@click.argument("phone")
@click.option("--reason", default="", help="Why it is taken off.")
@click.pass_context
def remove(ctx: click.Context, phone: str, reason: str) -> None:
    """Take PHONE off the list.

    \b
    Example:
      ivr dnc remove +8613912345678 --reason "added by mistake"
    """
    try:
        gone = store.remove(open_db(settings_from(ctx).db_path), phone, reason=reason,
                            source="cli")
    except (InvalidNumber, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if not gone:
        raise click.ClickException(f"{phone} is not on the do-not-call list")
    click.echo(f"{phone} removed")


@dnc.command("list")
@click.option("--search", help="Substring of phone, reason or source.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100000))
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.pass_context
def list_cmd(ctx: click.Context, search: str | None, limit: int, as_json: bool) -> None:
    """Entries, newest first, with reason and source.

    \b
    Examples:
      ivr dnc list
      ivr dnc list --search sms --json
    """
    db = open_db(settings_from(ctx).db_path)
    rows = store.entries(db, search=search, limit=limit)
    if as_json:
        click.echo(json.dumps({"total": store.count(db), "entries": rows}, ensure_ascii=False,
                              indent=2))
        return
    table = Table("phone", "reason", "source", "added", title=f"{store.count(db)} numbers",
                  title_justify="left")
    for r in rows:
        table.add_row(r["phone"], r["reason"] or "", r["source"] or "", r["added_at"] or "")
    Console().print(table)


@dnc.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--source", default="csv", show_default=True, help="Source of rows without one.")
@click.option("--reason", default="", help="Reason of rows without one.")
@click.pass_context
def import_cmd(ctx: click.Context, file: Path, source: str, reason: str) -> None:
    """Import a CSV (phone[,reason,source] with a header, or one number per line).

    \b
    Example:
      ivr dnc import complaints.csv --source "12315" --reason "complaint"
    """
    result = store.import_csv(open_db(settings_from(ctx).db_path),
                              file.read_text(encoding="utf-8", errors="replace"),
                              source=source, default_reason=reason, name=str(file))
    for line in result.errors:
        click.echo(line, err=True)
    click.echo(json.dumps(result.as_dict(), ensure_ascii=False))


@dnc.command("reply")
@click.argument("phone")
@click.argument("text")
@click.pass_context
def reply(ctx: click.Context, phone: str, text: str) -> None:
    """Apply an inbound SMS reply by hand: an opt-out (T, TD, 退订 ...) lists the sender.

    \b
    Example:
      ivr dnc reply +8613912345678 "TD"
    """
    if not store.is_opt_out(text):
        click.echo(f"{text!r} is not an opt-out; nothing changed")
        return
    try:
        e164 = store.add(open_db(settings_from(ctx).db_path), phone,
                         reason=f"SMS reply: {text.strip()[:60]}", source="sms")
    except (InvalidNumber, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{e164} opted out")
