"""The ``ivr`` command line: one root group; each feature package contributes its own group.

Feature packages expose a click command or group in ``ivr/<package>/cli.py``; :data:`SUBCOMMANDS`
lists them so ``ivr --help`` shows every command and a broken import fails loudly. Every group is
a :class:`Group`, which prints any operator-facing error (:class:`~ivr.errors.ConfigError`) the
same way: ``Error: <file:line: key: problem>`` and its exit code.
"""

from __future__ import annotations

import importlib
import json
import logging
import sqlite3
import sys

import click

from ivr import __version__
from ivr.config import Settings, load_settings
from ivr.errors import ConfigError
from ivr.files import private_umask

# command name -> "module:attribute" of a click command/group
SUBCOMMANDS: dict[str, str] = {
    "setup": "ivr.asterisk.cli:setup",
    "asterisk": "ivr.asterisk.cli:asterisk",
    "dialplan": "ivr.asterisk.cli:dialplan",
    "agi": "ivr.agi.cli:agi",
    "call": "ivr.dialer.cli:call",
    "demo": "ivr.demo:demo",
    "speech": "ivr.speech.cli:speech",
    "survey": "ivr.survey.cli:survey",
    "simulate": "ivr.survey.cli:simulate",
    "campaign": "ivr.campaign.cli:campaign",
    "numbers": "ivr.callerid.cli:numbers",
    "regions": "ivr.regions.cli:regions",
    "report": "ivr.report.cli:report",
    "outbox": "ivr.outbox.cli:outbox",
    "status": "ivr.report.cli:status",
    "serve": "ivr.service.cli:serve",
    "service": "ivr.service.cli:service",
    "dnc": "ivr.dnc.cli:dnc",
}


# Exit status of any command that could not use its database (read-only, full disk, corrupt...).
EXIT_DATABASE = 3


class OperatorError(click.ClickException):
    """A :class:`ConfigError` as the command line shows it."""

    def __init__(self, exc: ConfigError) -> None:
        super().__init__(str(exc))
        # click declares exit_code a class variable but reads it through the instance
        setattr(self, "exit_code", exc.exit_code)  # noqa: B010


class Group(click.Group):
    """A command group whose commands report every ConfigError as an :class:`OperatorError`."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise OperatorError(exc) from exc


class LazyGroup(Group):
    """Imports a subcommand's module only when it is used (keeps ``ivr call`` fast).

    A database that cannot be used ends any command with one line saying which file, why and what
    to do (exit status 3), never a traceback.
    """

    def invoke(self, ctx: click.Context) -> object:
        from ivr.store import StoreError, explain

        try:
            return super().invoke(ctx)
        except (StoreError, sqlite3.OperationalError, sqlite3.DatabaseError) as exc:
            # Only what the file or the disk causes; an IntegrityError or a ProgrammingError is
            # a bug and keeps its traceback.
            if type(exc) not in (StoreError, sqlite3.OperationalError, sqlite3.DatabaseError):
                raise
            click.echo(f"error: {explain(exc)}", err=True)
            ctx.exit(EXIT_DATABASE)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(SUBCOMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in SUBCOMMANDS:
            mod_name, attr = SUBCOMMANDS[cmd_name].split(":")
            try:
                mod = importlib.import_module(mod_name)
            except ModuleNotFoundError as exc:
                if exc.name and mod_name.startswith(exc.name):
                    return None  # feature not installed in this build
                raise
            cmd = getattr(mod, attr)
            assert isinstance(cmd, click.Command)
            return cmd
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="ivr")
@click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False),
              help="Path to ivr.yaml (default: $IVR_CONFIG or ./ivr.yaml).")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.pass_context
def root(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """ivr - outbound survey and customer-recall IVR engine on Asterisk.

    \b
    Examples:
      ivr setup                      install Asterisk 22 (forky root), check sipp/espeak-ng/sox
      ivr demo                       run a demo campaign end to end on the local bed
      ivr call +8613912345678        originate one survey call over the SIP trunk
      ivr dialplan check             lint the dialplans (file:line) before reloading
      ivr serve                      the always-on service: API, console, dialers, rules
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    private_umask()  # buyer data, recordings, logs and secrets: private from the first byte
    ctx.obj = _LazySettings(config_path)


class _LazySettings:
    """Settings are loaded on first use, so ``--help`` works without a config file."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._settings: Settings | None = None

    def get(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.path)
        return self._settings


def settings_from(ctx: click.Context) -> Settings:
    """For subcommands: the validated settings of this invocation."""
    obj = ctx.find_root().obj
    if isinstance(obj, _LazySettings):
        return obj.get()
    return load_settings()


pass_settings = click.make_pass_decorator(_LazySettings)

# Every read command takes --json: the same facts, machine-readable (non-ASCII kept as is).
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print JSON instead of text.")


def echo_json(data: object) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def main() -> None:
    try:
        root(prog_name="ivr")
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
