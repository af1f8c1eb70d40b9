"""``ivr regions``: see which region rule applies to a number, and list the rules."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ivr.cli import Group, echo_json, json_option, settings_from
from ivr.regions.rules import RuleSet, load_rules

_FILE_KEY = "ivr.regions_file"
ACTION_STYLE = {"call": "green", "skip": "red", "message": "yellow"}


def _console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 180, highlight=False)


def _rules(ctx: click.Context) -> RuleSet:
    """The rules given with --rules, else the ones ivr.yaml names (what the guard uses)."""
    return load_rules(ctx.meta.get(_FILE_KEY) or settings_from(ctx).regions)


@click.group(cls=Group)
@click.option("--rules", "-r", "rules_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Rules file (default: `regions` in ivr.yaml).")
@click.pass_context
def regions(ctx: click.Context, rules_file: Path | None) -> None:
    """Region dialing exceptions (skip, follow-up message, other trunk / caller pool / prefix).

    \b
    Examples:
      ivr regions check +8613999123456 +8613912345678
      ivr regions rules
    """
    ctx.meta[_FILE_KEY] = rules_file


@regions.command()
@click.argument("numbers", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def check(ctx: click.Context, numbers: tuple[str, ...], as_json: bool) -> None:
    """Print the decision for each NUMBER (E.164). Exit 0 whatever the decisions are.

    \b
    Examples:
      ivr regions check +8613999123456 +8613912345678
      ivr regions check --json +8613999123456
      ivr regions --rules config/regions.yaml check +8613912345678
    """
    rules = _rules(ctx)
    decisions = [rules.decide(n) for n in numbers]
    if as_json:
        click.echo(json.dumps([d.to_dict() for d in decisions], ensure_ascii=False, indent=2))
        return
    table = Table(title=f"region decisions ({rules.source})")
    for col in ("number", "region", "city", "carrier", "type", "action", "rule", "route",
                "reason / message"):
        table.add_column(col, overflow="fold")
    for d in decisions:
        route = ", ".join(x for x in (
            f"trunk {d.trunk}" if d.trunk else "", f"pool {d.caller_pool}" if d.caller_pool else "",
            f"dial {d.dial}" if d.strip or d.prefix else "") if x) or "-"
        text = d.reason + (f"\nmessage: {d.render_message_safe()}" if d.message else "")
        table.add_row(d.e164, d.info.get("region", "") or "-", d.info.get("city", "") or "-",
                      d.info.get("carrier", "") or "-", "/".join(d.info.get("types", [])) or "-",
                      f"[{ACTION_STYLE[d.action]}]{d.action}[/]", d.rule_name or "-", route, text)
    _console().print(table)


@regions.command("rules")
@json_option
@click.pass_context
def list_rules(ctx: click.Context, as_json: bool) -> None:
    """List the rules in the order they are tried.

    \b
    Examples:
      ivr regions rules
      ivr regions --rules config/regions.yaml rules
    """
    rules = _rules(ctx)
    if as_json:
        echo_json({"source": str(rules.source),
                   "rules": [r.model_dump(mode="json") for r in rules.rules]})
        return
    table = Table(title=f"region rules ({rules.source}); first enabled match wins")
    for col in ("#", "name", "on", "match", "action", "details"):
        table.add_column(col, overflow="fold")
    for i, r in enumerate(rules.rules, 1):
        m = r.match
        match = "; ".join(f"{k}={'|'.join(v)}" for k, v in (
            ("country", m.country), ("region", m.region), ("city", m.city),
            ("carrier", m.carrier), ("type", m.type)) if v)
        details = ", ".join(x for x in (
            f"trunk {r.trunk}" if r.trunk else "", f"pool {r.caller_pool}" if r.caller_pool else "",
            f"strip {r.strip}" if r.strip else "", f"prefix {r.prefix}" if r.prefix else "",
            r.reason) if x)
        table.add_row(str(i), r.name, "yes" if r.enabled else "[dim]no[/]", match,
                      f"[{ACTION_STYLE[r.action]}]{r.action}[/]", details or "-")
    _console().print(table)
