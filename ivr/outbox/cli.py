"""``ivr outbox``: list, lint, add, queue, send and retry follow-up messages."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click
import sqlite_utils
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from ivr.cli import Group, settings_from
from ivr.outbox.config import OutboxConfig, load_outbox_config
from ivr.outbox.deliver import deliver
from ivr.outbox.followup import queue_followups
from ivr.outbox.lint import lint as lint_text
from ivr.outbox.senders import load_sender
from ivr.outbox.store import BLOCKED, FAILED, STATES, UNCERTAIN, enqueue, list_messages, requeue
from ivr.phone import InvalidNumber
from ivr.store import open_db
from ivr.terminal import cell

_RULES_KEY = "ivr.outbox.rules"  # ctx.meta is shared by the whole command chain


def _config(ctx: click.Context) -> OutboxConfig:
    return load_outbox_config(ctx.meta.get(_RULES_KEY), settings=settings_from(ctx))


def _db(ctx: click.Context) -> sqlite_utils.Database:
    return open_db(settings_from(ctx).db_path)


@click.group(cls=Group)
@click.option("--rules", "rules", type=click.Path(dir_okay=False, path_type=Path),
              help="Outbox rules file (default: `outbox` in ivr.yaml).")
@click.pass_context
def outbox(ctx: click.Context, rules: Path | None) -> None:
    """Follow-up messages to buyers: queued, linted, sent once, retried on failure.

    \b
    Examples:
      ivr outbox lint '【示例平台】详情见 https://h5.example.cn/r/1 回T退订'
      ivr outbox queue may-recall --h5-url https://h5.example.cn/s/may
      ivr outbox send --sender webhook:http://127.0.0.1:8080/sms
      ivr outbox list --state failed
      ivr outbox retry --failed
    """
    ctx.meta[_RULES_KEY] = rules


@outbox.command("list")
@click.option("--state", type=click.Choice(STATES), help="Only messages in this state.")
@click.option("--campaign", help="Only messages of this campaign.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@click.pass_context
def list_cmd(ctx: click.Context, state: str | None, campaign: str | None, limit: int,
             as_json: bool) -> None:
    """List messages, newest first, with state, tries and the last error.

    \b
    Examples:
      ivr outbox list
      ivr outbox list --state failed --limit 200
      ivr outbox list --campaign may-recall --json
    """
    rows = list_messages(open_db(settings_from(ctx).db_path, read_only_ok=True), state=state,
                         campaign_id=campaign, limit=limit)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        return
    table = Table(title=f"Outbox ({len(rows)} shown)", title_justify="left")
    for col in ("id", "state", "tries", "kind", "phone", "text", "next try", "last error"):
        table.add_column(col, overflow="fold")
    for r in rows:
        style = {"failed": "red", "blocked": "red", "uncertain": "yellow",
                 "sent": "green"}.get(r["state"])
        table.add_row(*map(cell, (r["id"], r["state"], r["tries"] or 0, r["kind"] or "",
                                  r["phone"], r["text"], r["next_attempt_at"] or "",
                                  r["last_error"] or "")), style=style)
    Console().print(table)


@outbox.command("lint")
@click.argument("text")
@click.pass_context
def lint_cmd(ctx: click.Context, text: str) -> None:
    """Check a message text: links with spaces, blocked words, length and SMS parts.

    TEXT '-' reads the text from standard input. Exit status 1 when there are errors.

    \b
    Examples:
      ivr outbox lint '【示例平台】退款已受理，详情 https://h5.example.cn/r/1 回T退订'
      echo '点击https://t.cn/x领取' | ivr outbox lint -
    """
    if text == "-":
        text = sys.stdin.read().rstrip("\n")
    result = lint_text(text, _config(ctx))
    click.echo(result.summary())
    if not result.ok:
        ctx.exit(1)


@outbox.command("add")
@click.argument("phone")
@click.argument("text")
@click.option("--kind", default="manual", show_default=True)
@click.option("--campaign", help="Campaign the message belongs to.")
@click.option("--dedup-key", help="The same key is never queued twice (default: phone+text).")
@click.pass_context
def add_cmd(ctx: click.Context, phone: str, text: str, kind: str, campaign: str | None,
            dedup_key: str | None) -> None:
    """Queue one message by hand (it is linted when sent).

    \b
    Examples:
      ivr outbox add +8613900000001 '【示例平台】您的退款已受理。回T退订'
    """
    result = lint_text(text, _config(ctx))
    click.echo(result.summary(), err=True)
    try:
        mid = enqueue(_db(ctx), phone, text, kind=kind, campaign_id=campaign,
                      dedup_key=dedup_key or f"manual:{phone}:{text}")
    except (InvalidNumber, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"queued message {mid}")


@outbox.command("queue")
@click.argument("campaign")
@click.option("--h5-url", help="Link for the 'h5' messages (default: h5_url in the rules).")
@click.pass_context
def queue_cmd(ctx: click.Context, campaign: str, h5_url: str | None) -> None:
    """Queue a campaign's follow-ups: remedy confirmations and H5 links for skipped contacts.

    Safe to run again: a buyer never gets the same follow-up twice.

    \b
    Examples:
      ivr outbox queue may-recall
      ivr outbox queue may-recall --h5-url https://h5.example.cn/s/may
    """
    settings = settings_from(ctx)
    counts = queue_followups(open_db(settings.db_path), campaign, _config(ctx),
                             platform=settings.platform, h5_url=h5_url)
    click.echo(", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing to queue")


@outbox.command("send")
@click.option("--sender", "spec", default=None,
              help="file:PATH | webhook:URL | <entry point>:ARG | package.module.factory:ARG "
                   "(default: file:<home>/outbox/sent.jsonl).")
@click.option("--limit", type=click.IntRange(min=1), help="Send at most this many.")
@click.pass_context
def send_cmd(ctx: click.Context, spec: str | None, limit: int | None) -> None:
    """Send every due message once (lint errors and do-not-call numbers block a message).

    \b
    Examples:
      ivr outbox send
      ivr outbox send --sender webhook:http://127.0.0.1:8080/sms
      ivr outbox send --sender mycorp_sms.gateway.factory:prod --limit 500
    """
    settings = settings_from(ctx)
    try:
        sender = load_sender(spec or f"file:{settings.home / 'outbox' / 'sent.jsonl'}")
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    config = _config(ctx)
    db = open_db(settings.db_path)
    err = Console(stderr=True)
    with Progress(TextColumn("sending"), BarColumn(), MofNCompleteColumn(), console=err,
                  transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("send", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        counts = asyncio.run(deliver(db, sender, config=config, limit=limit,
                                     progress=progress))
    click.echo(", ".join(f"{k} {v}" for k, v in counts.items()))
    if counts["failed"] or counts["blocked"] or counts["uncertain"]:
        click.echo("see `ivr outbox list --state failed|blocked|uncertain` for the reasons",
                   err=True)


@outbox.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--failed", "failed", is_flag=True, help="Requeue failed messages.")
@click.option("--blocked", "blocked", is_flag=True,
              help="Requeue blocked messages (after fixing the text or the rules).")
@click.option("--uncertain", "uncertain", is_flag=True,
              help="Requeue messages interrupted mid-send (check the gateway first!).")
@click.pass_context
def retry_cmd(ctx: click.Context, ids: tuple[int, ...], failed: bool, blocked: bool,
              uncertain: bool) -> None:
    """Put failed (default), blocked or uncertain messages back in the queue with fresh tries.

    A sent message is never requeued.

    \b
    Examples:
      ivr outbox retry                  all failed messages
      ivr outbox retry 12 15            just these (if failed)
      ivr outbox retry --blocked 12     after fixing message 12's problem
    """
    states = tuple(s for s, on in ((FAILED, failed), (BLOCKED, blocked),
                                   (UNCERTAIN, uncertain)) if on) or (FAILED,)
    n = requeue(_db(ctx), ids=list(ids) or None, states=states)
    click.echo(f"requeued {n} message(s)")
