"""``ivr serve`` (the always-on service) and ``ivr service`` (tokens, users, units, checks)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ivr.cli import settings_from
from ivr.store import open_db


@click.command()
@click.option("--host", help="Bind address (default: service.host, loopback).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default: service.port).")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the service: HTTP API (/v1), web console (/console), /health, /metrics, the dialer
    of every running campaign, recurring campaigns and event rules. SIGTERM / Ctrl-C: no new
    dials, calls in progress end, then it exits.

    \b
    Examples:
      ivr serve                              loopback:8080 from ./ivr.yaml
      ivr -c /etc/ivr/ivr.yaml serve --port 8090
      ivr service token create ops --scope write    then: curl -H "Authorization: Bearer ..."
    """
    from ivr.service.app import serve as run
    from ivr.service.logs import configure

    settings = settings_from(ctx)
    updates = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    if updates:
        try:
            settings.service = settings.service.model_validate(
                {**settings.service.model_dump(), **updates})
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    root = ctx.find_root()
    verbose = int(root.params.get("verbose") or 0)
    configure(settings.service_log, max_bytes=settings.service.log_max_bytes,
              backups=settings.service.log_backups,
              level=logging.DEBUG if verbose >= 2 else logging.INFO)
    click.echo(f"ivr service on http://{settings.service.host}:{settings.service.port} "
               f"(console /console/, API /v1, log {settings.service_log})", err=True)
    from ivr.config import ConfigError
    from ivr.yamlfile import YamlConfigError

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run(settings))
    except (ConfigError, YamlConfigError) as exc:  # a rule / policy / pool file is invalid
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:  # e.g. the port is taken
        raise click.ClickException(f"cannot serve on {settings.service.host}:"
                                   f"{settings.service.port}: {exc}") from exc


@click.group()
def service() -> None:
    """Administer the service: API tokens, console users, systemd units, rule files.

    \b
    Examples:
      ivr service token create crm --scope write     prints the token once
      ivr service user add admin --scope write       asks for the password
      ivr service units --out /etc/systemd/system --user ivr
      ivr service check                              validate events.yaml / recurring.yaml
    """


@service.group()
def token() -> None:
    """API tokens (stored hashed; shown once when created).

    \b
    Examples:
      ivr service token create crm --scope write
      ivr service token list --json
      ivr service token revoke 3
    """


@token.command("create")
@click.argument("name")
@click.option("--scope", type=click.Choice(["read", "write"]), default="read", show_default=True)
@click.pass_context
def token_create(ctx: click.Context, name: str, scope: str) -> None:
    """Create a token NAME and print it (only now: the database keeps its hash).

    \b
    Examples:
      ivr service token create grafana
      ivr service token create order-system --scope write
    """
    from ivr.service.auth import AuthError, create_token

    try:
        value = create_token(open_db(settings_from(ctx).db_path), name, scope)
    except AuthError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(value)


@token.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.pass_context
def token_list(ctx: click.Context, as_json: bool) -> None:
    """Tokens with scope, prefix, last use (never the token).

    \b
    Examples:
      ivr service token list
      ivr service token list --json
    """
    from ivr.service.auth import list_tokens

    rows = list_tokens(open_db(settings_from(ctx).db_path))
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table("id", "name", "prefix", "scope", "created", "last used", "revoked")
    for r in rows:
        table.add_row(*(str(r[k] or "") for k in ("id", "name", "prefix", "scope", "created_at",
                                                   "last_used_at", "revoked_at")))
    Console().print(table)


@token.command("revoke")
@click.argument("token_id", type=int)
@click.pass_context
def token_revoke(ctx: click.Context, token_id: int) -> None:
    """Revoke token TOKEN_ID (its requests get 401 from now on).

    \b
    Example:
      ivr service token revoke 3
    """
    from ivr.service.auth import revoke_token

    if not revoke_token(open_db(settings_from(ctx).db_path), token_id):
        raise click.ClickException(f"no active token {token_id}")
    click.echo(f"token {token_id} revoked")


@service.group()
def user() -> None:
    """Console users (password hashed with scrypt).

    \b
    Examples:
      ivr service user add admin --scope write
      ivr service user disable admin
    """


@user.command("add")
@click.argument("name")
@click.option("--scope", type=click.Choice(["read", "write"]), default="read", show_default=True)
@click.option("--password", envvar="IVR_CONSOLE_PASSWORD", prompt=True, hide_input=True,
              confirmation_prompt=True, help="Asked for when not given (or $IVR_CONSOLE_PASSWORD).")
@click.pass_context
def user_add(ctx: click.Context, name: str, scope: str, password: str) -> None:
    """Add a console user NAME, or set its password and scope.

    \b
    Examples:
      ivr service user add admin --scope write
      IVR_CONSOLE_PASSWORD=... ivr service user add viewer
    """
    from ivr.service.auth import AuthError, set_user

    try:
        set_user(open_db(settings_from(ctx).db_path), name, password, scope)
    except AuthError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"console user {name} ({scope})")


@user.command("disable")
@click.argument("name")
@click.pass_context
def user_disable(ctx: click.Context, name: str) -> None:
    """Disable console user NAME.

    \b
    Example:
      ivr service user disable admin
    """
    from ivr.service.auth import disable_user

    if not disable_user(open_db(settings_from(ctx).db_path), name):
        raise click.ClickException(f"no active console user {name!r}")
    click.echo(f"console user {name} disabled")


@service.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Write the unit files here (default: print them).")
@click.option("--user", "unit_user", default="ivr", show_default=True,
              help="Unix user the units run as.")
@click.pass_context
def units(ctx: click.Context, out: Path | None, unit_user: str) -> None:
    """systemd units for Asterisk, the FastAGI daemon and the service.

    \b
    Examples:
      ivr -c /etc/ivr/ivr.yaml service units
      ivr -c /etc/ivr/ivr.yaml service units --out /etc/systemd/system --user ivr
      systemctl daemon-reload && systemctl enable --now ivr-asterisk ivr-fastagi ivr
    """
    from ivr.config import CONFIG_ENV
    from ivr.service.units import render_units

    settings = settings_from(ctx)
    root = ctx.find_root()
    config = Path(root.params.get("config_path") or os.environ.get(CONFIG_ENV) or "ivr.yaml")
    files = render_units(settings, config, user=unit_user)
    if out is None:
        for name, text in files.items():
            click.echo(f"# {name}\n{text}")
        return
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")
        click.echo(f"wrote {out / name}")


@service.command()
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.pass_context
def check(ctx: click.Context, as_json: bool) -> None:
    """Validate the event rules and recurring campaigns (file:line: field on any problem).

    \b
    Examples:
      ivr service check
      ivr service check --json
    """
    from ivr.config import ConfigError
    from ivr.service.events import load_event_rules, rules_as_json
    from ivr.service.recurring import load_recurring

    settings = settings_from(ctx)
    try:
        rules = load_event_rules(settings.service.events)
        recurring = load_recurring(settings.service.recurring)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    data = {"event_rules": rules_as_json(rules),
            "recurring": [r.model_dump(mode="json") for r in recurring.campaigns]}
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    click.echo(f"{settings.service.events}: {len(rules.rules)} event rules")
    for r in rules.rules:
        click.echo(f"  {r.name}: {r.event} -> {r.action} after {r.delay:g} s"
                   f"{'' if r.enabled else ' (disabled)'}")
    click.echo(f"{settings.service.recurring}: {len(recurring.campaigns)} recurring campaigns")
    for c in recurring.campaigns:
        click.echo(f"  {c.name}: {c.schedule!r} {c.script.name}")
