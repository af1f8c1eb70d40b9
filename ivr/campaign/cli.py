"""``ivr campaign``: import | plan | run | status | pause | resume."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ivr.campaign import runner as runner_mod
from ivr.campaign.exports import ColumnMap
from ivr.campaign.importer import ImportPolicy, import_orders
from ivr.campaign.lease import lease_holder
from ivr.campaign.overview import campaign_rows, campaign_state
from ivr.campaign.planner import plan_campaign
from ivr.campaign.policy import load_policy
from ivr.campaign.segments import load_segments
from ivr.campaign.wiring import queue_region_messages, run_campaign
from ivr.cli import Group, echo_json, json_option, settings_from
from ivr.store import open_db
from ivr.terminal import cell, markup

console = Console()


def _db(ctx: click.Context, *, reads_only: bool = False) -> Any:
    """``reads_only``: the command still works on a database it may not write."""
    return open_db(settings_from(ctx).db_path, read_only_ok=reads_only)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(),
                    TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                    console=console, transient=True)


def parse_when(text: str, tz: str = "Asia/Shanghai") -> datetime:
    """'2025-06-30' (end of that day, exclusive: next midnight in ``tz``) or an ISO date-time."""
    try:
        if len(text) == 10:
            day = datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz))
            return (day + timedelta(days=1)).astimezone(UTC)
        dt = datetime.fromisoformat(text)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not a date (2025-06-30) or ISO date-time") from exc
    return (dt if dt.tzinfo else dt.replace(tzinfo=ZoneInfo(tz))).astimezone(UTC)


@click.group(cls=Group)
def campaign() -> None:
    """Import orders, plan a campaign, run it, watch and control it.

    \b
    Examples:
      ivr campaign import orders.csv --rejects rejects.csv
      ivr campaign plan "live-stream buyers" --script surveys/platform_satisfaction.cmn.yaml
      ivr campaign run live-stream-buyers-20261201093000-3f2a --until-idle
      ivr campaign status live-stream-buyers-20261201093000-3f2a
      ivr campaign list
    """


@campaign.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--rejects", type=click.Path(dir_okay=False, path_type=Path),
              help="Rejects CSV (default: FILE.rejects.csv).")
@click.option("--region", default="CN", show_default=True,
              help="Country for phone numbers written without +country code.")
@click.option("--tz", "tz", default="Asia/Shanghai", show_default=True,
              help="Time zone of order times written without an offset.")
@click.option("--encoding", default="auto", show_default=True,
              type=click.Choice(["auto", "utf-8", "gbk", "gb18030"], case_sensitive=False),
              help="Text encoding of a CSV (auto: UTF-8 with or without BOM, else GBK/GB18030).")
@click.option("--columns", "columns_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Column mapping file (YAML: columns: {订单号: order_id, ...}, encoding, "
                   "sheet).")
@click.option("--strict", is_flag=True, help="Exit 1 when any row is rejected.")
@click.pass_context
def import_cmd(ctx: click.Context, file: Path, rejects: Path | None, region: str,
               tz: str, encoding: str, columns_path: Path | None, strict: bool) -> None:
    """Import orders from a CSV, xlsx or JSON-lines FILE; bad rows go to the rejects CSV.

    Headers may be the field names or the usual Chinese export names (订单号, 手机号, 商品名称,
    实付金额, 下单时间, 店铺名称, 主播, 类目 ...); other names are mapped by --columns. Only
    order_id, phone, product, price and order_time are required. Exit status 1 when the file
    had rows and none was imported (or, with --strict, when any row was rejected).

    The rejects file starts with the import policy (ivr.yaml orders:): control characters in
    text become spaces, text over its length cap, bad order ids and order times in the future
    reject the row, and repeated order ids are listed with the line of their first occurrence.

    \b
    Examples:
      ivr campaign import orders.csv --rejects rejects.csv
      ivr campaign import orders-kr.jsonl --region KR --tz Asia/Seoul
      ivr campaign import 订单导出.csv --encoding gbk --columns config/columns.yaml
      ivr campaign import export.xlsx --strict
    """
    columns = ColumnMap.load(columns_path) if columns_path else None
    db = _db(ctx)
    size = file.stat().st_size or 1
    with _progress() as bar:
        task = bar.add_task(f"importing {file.name}", total=size)
        summary = import_orders(db, file, rejects_path=rejects, region=region, default_tz=tz,
                                policy=ImportPolicy.from_settings(settings_from(ctx).orders),
                                encoding=encoding, columns=columns,
                                progress=lambda done: bar.update(task, completed=done))
    console.print(f"{summary.rows} rows ({summary.encoding}): {summary.inserted} inserted, "
                  f"{summary.updated} updated, {summary.unchanged} unchanged, "
                  f"{summary.duplicates} repeated in the file, "
                  f"[bold]{summary.rejected} rejected[/bold] -> {markup(summary.rejects_file)}")
    for reason, n in sorted(summary.reasons.items(), key=lambda kv: -kv[1]):
        console.print(f"  {n:>7}  {markup(reason)}")
    click.echo(json.dumps(summary.as_dict(), ensure_ascii=False))
    if summary.rejected and (strict or summary.imported == 0):
        ctx.exit(1)


@campaign.command()
@click.argument("name")
@click.option("--script", required=True, help="Survey script the calls run.")
@click.option("--language", default=None, help="Survey language (default: settings).")
@click.option("--days", type=click.IntRange(1, 3650), help="Orders of the last N days "
              "(default: the policy's selection.days, 30).")
@click.option("--segments", "segments_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Segments file (default: `segments` in ivr.yaml).")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Contact policy file (default: `policy` in ivr.yaml).")
@click.option("--starts", help="No call before this (date or ISO date-time; default now).")
@click.option("--ends", help="Campaign end: no call from then on (date = end of that day).")
@click.option("--reference", help="The 'now' of the order window (default now).")
@click.pass_context
def plan(ctx: click.Context, name: str, script: str, language: str | None, days: int | None,
         segments_path: Path | None, policy_path: Path | None, starts: str | None,
         ends: str | None,
         reference: str | None) -> None:
    """Select, segment and schedule buyers into a new campaign NAME (prints its id).

    \b
    Examples:
      ivr campaign plan "live-stream buyers" --script surveys/platform_satisfaction.cmn.yaml
      ivr campaign plan "double-12 recall" --script surveys/platform_satisfaction.cmn.yaml \\
          --days 7 --starts 2026-12-13T09:00 --ends 2026-12-20
      ivr campaign plan "may recall" --script surveys/platform_satisfaction.cmn.yaml \\
          --reference 2026-05-31 --segments config/segments.yaml
    """
    settings = settings_from(ctx)
    from ivr.regions.rules import load_rules

    policy = load_policy(policy_path or settings.policy)
    segments = load_segments(segments_path or settings.segments)
    rules = load_rules(settings.regions)
    db = open_db(settings.db_path)
    with _progress() as bar:
        task = bar.add_task(f"planning {name}", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = plan_campaign(
            db, name, script=script, language=language or settings.language, policy=policy,
            segments=segments, days=days,
            reference=parse_when(reference) if reference else None,
            starts_at=parse_when(starts) if starts else None,
            ends_at=parse_when(ends) if ends else None,
            trunk=settings.trunk.name, progress=progress, region_decider=rules.decide)
    messages = queue_region_messages(db, result.campaign_id, rules, platform=settings.platform)
    console.print(f"campaign [bold]{result.campaign_id}[/bold]: {result.contacts} contacts "
                  f"({result.pending} pending, {result.skipped} skipped), "
                  f"{result.excluded_dnc} on the do-not-call list and "
                  f"{result.excluded_test_phones} test/internal numbers left out, "
                  f"{result.seconds:.1f} s; {messages} follow-up messages queued instead of calls")
    click.echo(json.dumps({**result.as_dict(), "region_messages": messages}, ensure_ascii=False))


@campaign.command()
@click.argument("campaign_id")
@click.option("--max-concurrent", type=click.IntRange(1, 1000), help="Default: the policy's.")
@click.option("--cps", type=click.FloatRange(0.01, 500), help="Calls per second (default: "
              "the policy's).")
@click.option("--until-idle", is_flag=True, help="Return when nothing is due now instead of "
              "waiting for later calling windows.")
@click.option("--health-interval", type=click.FloatRange(0.1, 86400),
              help="Seconds between caller-ID health checks (default: numbers.yaml "
              "health.check_interval_s).")
@click.pass_context
def run(ctx: click.Context, campaign_id: str, max_concurrent: int | None, cps: float | None,
        until_idle: bool, health_interval: float | None) -> None:
    """Dial the campaign through AMI with region rules, caller-ID rotation and health checks
    (Ctrl-C: finish calls in progress, then stop). One run per campaign at a time.

    \b
    Examples:
      ivr campaign run live-stream-buyers-20261201093000-3f2a
      ivr campaign run live-stream-buyers-20261201093000-3f2a --max-concurrent 10 --cps 2
      ivr campaign run live-stream-buyers-20261201093000-3f2a --until-idle
    """
    settings = settings_from(ctx)
    db = open_db(settings.db_path)
    _prerender(settings, db, campaign_id)
    line = ProgressLine(sys.stderr)
    try:
        stats = asyncio.run(run_campaign(
            settings, db, campaign_id, max_concurrent=max_concurrent, cps=cps,
            stop_when_idle=until_idle, health_interval_s=health_interval,
            progress=line.update))
    except (OSError, TimeoutError) as exc:
        raise click.ClickException(f"cannot reach Asterisk's AMI at {settings.ami.host}:"
                                   f"{settings.ami.port}: {exc}") from exc
    finally:
        line.close()
    console.print(markup(f"campaign {campaign_id}: {stats.status}"
                         + (f" ({stats.reason})" if stats.reason else "")))
    click.echo(json.dumps(stats.as_dict(), ensure_ascii=False))


class ProgressLine:
    """``dialed / answered / in flight / next window`` on stderr while a campaign dials: one
    line rewritten in place on a terminal, a new line when it changes (at most every 10 s)
    otherwise (a log file)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.last = ""
        self.last_at = 0.0
        self.width = 0

    def text(self, runner: runner_mod.CampaignRunner) -> str:
        s = runner.stats
        nxt = runner.next_due_at()
        now = datetime.now(UTC)
        if nxt is None:
            when = "-"
        elif nxt <= now:
            when = "now"
        else:
            wait = int((nxt - now).total_seconds())
            local = nxt.astimezone(ZoneInfo("Asia/Shanghai"))
            when = f"{local:%m-%d %H:%M} (in {wait // 3600}h{wait % 3600 // 60:02d}m)" \
                if wait >= 60 else f"in {wait}s"
        return (f"dialed {s.dialed} / answered {s.answered} / in flight {runner.in_flight} / "
                f"retries {s.retries_scheduled} / next window {when}")

    def update(self, runner: runner_mod.CampaignRunner) -> None:
        import time

        text = self.text(runner)
        if self.tty:
            pad = max(0, self.width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self.width = len(text)
            self.stream.flush()
        elif text != self.last and time.monotonic() - self.last_at >= 10:
            self.stream.write(text + "\n")
            self.stream.flush()
            self.last, self.last_at = text, time.monotonic()

    def close(self) -> None:
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()


def _prerender(settings: Any, db: Any, campaign_id: str) -> None:
    """Render every prompt of the pending contacts before the first dial (progress bar)."""
    from ivr.speech.tts import default_voice, engine
    from ivr.survey.prerender import campaign_prompts

    items = list(campaign_prompts(db, campaign_id, platform=settings.platform,
                                  default_voice=default_voice(settings)))
    report = engine(settings).prerender(items, progress=sys.stderr.isatty())
    console.print(f"prompts: {report.rendered} rendered, {report.cached} already cached"
                  + (f", {len(report.errors)} FAILED" if report.errors else ""))
    if report.errors:
        text, voice, why = report.errors[0]
        raise click.ClickException(f"prompt {text[:30]!r} ({voice}) cannot be rendered: {why}")


@campaign.command("list")
@click.option("--status", "status_filter", help="Only campaigns in this status (planned, "
              "running, paused, done, stopped).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100000))
@json_option
@click.pass_context
def list_cmd(ctx: click.Context, status_filter: str | None, limit: int, as_json: bool) -> None:
    """Campaigns, newest first: id, name, status, contacts, attempts, answered.

    \b
    Examples:
      ivr campaign list
      ivr campaign list --status running --json
    """
    rows = campaign_rows(_db(ctx), status_filter, limit)
    if as_json:
        echo_json(rows)
        return
    table = Table("id", "name", "status", "kind", "contacts", "attempts", "answered", "created")
    for r in rows:
        table.add_row(r["id"], r["name"] or "", r["status"] or "", r["kind"] or "batch",
                      str(r["contacts"]), str(r["attempts"]), str(r["answered"]),
                      (r["created_at"] or "")[:19])
    console.print(table if rows else "no campaigns yet (ivr campaign plan ...)")


@campaign.command()
@click.argument("campaign_id")
@json_option
@click.pass_context
def status(ctx: click.Context, campaign_id: str, as_json: bool) -> None:
    """Contacts by state and outcome, attempts by outcome.

    \b
    Examples:
      ivr campaign status live-stream-buyers-20261201093000-3f2a
      ivr campaign status live-stream-buyers-20261201093000-3f2a --json
    """
    db = _db(ctx, reads_only=True)
    camp = runner_mod.get_campaign(db, campaign_id)
    if as_json:
        echo_json(campaign_state(db, campaign_id))
        return
    console.print(f"[bold]{markup(camp['name'])}[/bold] ({markup(campaign_id)}): "
                  f"[bold]{markup(camp['status'])}[/bold]"
                  + (f" - {markup(camp['status_reason'])}" if camp.get("status_reason") else ""))
    console.print(markup(f"script {camp['script']}, language {camp['language']}, "
                         f"ends {camp.get('ends_at') or '-'}"))
    holder = lease_holder(db, campaign_id)
    if holder:
        console.print(f"runner: process {holder['pid']} on {holder['host']}, "
                      f"heartbeat {holder['heartbeat_at']}")
    table = Table("state", "final outcome", "segment", "contacts", "attempts", "next call")
    for row in db.execute(
            "SELECT state, coalesce(final_outcome, ''), segment, count(*), sum(attempts), "
            "min(next_attempt_at) FROM contacts WHERE campaign_id = ? "
            "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3", [campaign_id]):
        table.add_row(*(cell(v if v is not None else "-") for v in row))
    console.print(table)
    att = Table("attempt outcome", "sip", "q850", "attempts")
    for row in db.execute(
            "SELECT coalesce(outcome, state), sip_code, q850_cause, count(*) FROM attempts "
            "WHERE campaign_id = ? GROUP BY 1, 2, 3 ORDER BY 4 DESC", [campaign_id]):
        att.add_row(*(cell(v if v is not None else "-") for v in row))
    console.print(att)
    skipped = list(db.execute(
        "SELECT skip_reason, count(*) FROM contacts WHERE campaign_id = ? AND skip_reason IS "
        "NOT NULL GROUP BY 1 ORDER BY 2 DESC LIMIT 10", [campaign_id]))
    if skipped:
        why = Table("skip reason", "contacts")
        for reason, n in skipped:
            why.add_row(cell(reason), cell(n))
        console.print(why)


@campaign.command()
@click.argument("campaign_id")
@click.pass_context
def pause(ctx: click.Context, campaign_id: str) -> None:
    """Start no new calls (calls in progress finish).

    \b
    Example:
      ivr campaign pause live-stream-buyers-20261201093000-3f2a
    """
    runner_mod.pause(_db(ctx), campaign_id)
    console.print(f"campaign {campaign_id} paused")


@campaign.command()
@click.argument("campaign_id")
@click.pass_context
def resume(ctx: click.Context, campaign_id: str) -> None:
    """Let a paused (or breaker-stopped) campaign dial again.

    \b
    Example:
      ivr campaign resume live-stream-buyers-20261201093000-3f2a
    """
    previous = runner_mod.resume(_db(ctx), campaign_id)
    console.print(f"campaign {campaign_id} running again (was {previous})")
