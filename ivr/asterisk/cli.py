"""``ivr setup``, ``ivr asterisk ...`` and ``ivr dialplan ...``."""

from __future__ import annotations

import sys
import time

import click

from ivr.asterisk import dialplan as dp
from ivr.asterisk.install import InstallError, ensure_root, missing_host_tools
from ivr.asterisk.process import Asterisk, AsteriskError
from ivr.asterisk.render import DIALPLANS_DIR, RenderError, render
from ivr.cli import Group, echo_json, json_option, settings_from


@click.command()
@click.pass_context
def setup(ctx: click.Context) -> None:
    """Install Asterisk 22 (Debian forky root, cached) and check the host tools.

    Idempotent: a second run finds everything in place and takes well under a second.

    \b
    Example:
      ivr setup
    """
    settings = settings_from(ctx)
    started = time.monotonic()
    missing = missing_host_tools()
    if missing:
        raise click.ClickException(
            "missing Debian packages: " + " ".join(missing)
            + f"\n  install them with: apt-get install -y {' '.join(missing)}")
    try:
        root = ensure_root(settings.asterisk.root, log=lambda m: click.echo(m, err=True))
    except InstallError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        render(settings)
    except RenderError as exc:
        raise click.ClickException(f"configuration not rendered: {exc}") from exc
    click.echo(f"Asterisk root: {root.path} ({root.version()})")
    click.echo(f"configs rendered into {settings.run_dir / 'etc'}")
    click.echo(f"setup took {time.monotonic() - started:.1f} s")


@click.group(cls=Group)
def asterisk() -> None:
    """Run the local Asterisk (forky binaries through their own loader).

    \b
    Examples:
      ivr asterisk start            render configs and boot (background)
      ivr asterisk rx "pjsip show endpoints"
      ivr asterisk stop
    """


@asterisk.command("render")
@click.pass_context
def render_cmd(ctx: click.Context) -> None:
    """Render the configs into <home>/asterisk/etc without starting anything (the systemd
    unit's ExecStartPre; see ``ivr service units``).

    \b
    Example:
      ivr -c /etc/ivr/ivr.yaml asterisk render
    """
    from ivr.asterisk.render import render

    click.echo(f"rendered {render(settings_from(ctx))}")


@asterisk.command()
@click.pass_context
def start(ctx: click.Context) -> None:
    """Render configs and start Asterisk in the background.

    \b
    Examples:
      ivr asterisk start
      ivr -c /etc/ivr/ivr.yaml asterisk start
    """
    ast = Asterisk(settings_from(ctx))
    try:
        ast.start()
    except AsteriskError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Asterisk running (pid {ast._pid()}), configs in {ast.conf.parent}")


@asterisk.command()
@click.pass_context
def stop(ctx: click.Context) -> None:
    """Stop the local Asterisk.

    \b
    Example:
      ivr asterisk stop
    """
    Asterisk(settings_from(ctx)).stop()
    click.echo("Asterisk stopped")


@asterisk.command()
@json_option
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Say whether Asterisk runs, and show the trunk endpoint (exit 1 if it does not run).

    \b
    Examples:
      ivr asterisk status
      ivr asterisk status || ivr asterisk start
    """
    ast = Asterisk(settings_from(ctx))
    if not ast.running():
        if as_json:
            echo_json({"running": False})
        else:
            click.echo("Asterisk is not running")
        sys.exit(1)
    uptime = ast.rx("core show uptime").strip()
    endpoints = ast.rx("pjsip show endpoints").strip()
    if as_json:
        echo_json({"running": True, "pid": ast._pid(), "uptime": uptime,
                   "endpoints": endpoints})
        return
    click.echo(uptime)
    click.echo(endpoints)


@asterisk.command()
@click.argument("command")
@click.pass_context
def rx(ctx: click.Context, command: str) -> None:
    """Run one Asterisk CLI COMMAND.

    \b
    Examples:
      ivr asterisk rx "pjsip show endpoints"
      ivr asterisk rx "core show channels"
      ivr asterisk rx "dialplan show ivr-survey"
    """
    try:
        click.echo(Asterisk(settings_from(ctx)).rx(command).rstrip())
    except AsteriskError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group(cls=Group)
def dialplan() -> None:
    """Check and reload the dialplans in dialplans/.

    \b
    Examples:
      ivr dialplan check            lint every dialplans/*.conf (file:line: problem)
      ivr dialplan reload           check, then reload into the running Asterisk
    """


def _applications(settings_ast: Asterisk) -> list[str] | None:
    if not settings_ast.running():
        return None
    return dp.parse_applications(settings_ast.rx("core show applications", check=False))


@dialplan.command()
@json_option
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@click.pass_context
def check(ctx: click.Context, files: tuple[str, ...], as_json: bool) -> None:
    """Lint dialplan FILES (default: dialplans/*.conf); exit 1 on any problem.

    When Asterisk runs, applications are also checked against the ones it has loaded.

    \b
    Examples:
      ivr dialplan check
      ivr dialplan check dialplans/ivr-outbound.conf
    """
    from pathlib import Path

    paths = [Path(f) for f in files] or sorted(DIALPLANS_DIR.glob("*.conf"))
    if not paths:
        # nothing checked is not "OK": an installation without its dialplans cannot place a call
        raise click.ClickException(f"no dialplan files found in {DIALPLANS_DIR}")
    ast = Asterisk(settings_from(ctx))
    problems = dp.lint(paths, _applications(ast))
    if as_json:
        echo_json({"files": [str(p) for p in paths], "ok": not problems,
                   "problems": [str(p) for p in problems]})
        sys.exit(1 if problems else 0)
    for p in problems:
        click.echo(str(p), err=True)
    if problems:
        sys.exit(1)
    click.echo(f"{len(paths)} dialplan file(s) OK")


@dialplan.command()
@click.pass_context
def reload(ctx: click.Context) -> None:
    """Lint, then reload the dialplans into the running Asterisk without a restart.

    \b
    Example:
      ivr dialplan reload
    """
    settings = settings_from(ctx)
    ast = Asterisk(settings)
    if not ast.running():
        raise click.ClickException("Asterisk is not running (ivr asterisk start)")
    paths = sorted(DIALPLANS_DIR.glob("*.conf"))
    problems = dp.lint(paths, _applications(ast))
    if problems:
        for p in problems:
            click.echo(str(p), err=True)
        raise click.ClickException("dialplan not reloaded: fix the problems above")
    render(settings)  # a new dialplan file must be listed in extensions.conf
    out = ast.rx("dialplan reload")
    click.echo(out.strip() or "Dialplan reloaded.")
