"""``ivr agi``: run the FastAGI daemon."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import click

from ivr.cli import Group, echo_json, json_option, settings_from


@click.group(cls=Group)
def agi() -> None:
    """The FastAGI daemon that Asterisk hands answered calls to.

    \b
    Examples:
      ivr agi serve                 listen on agi.host:agi.port from ivr.yaml
      ivr agi handlers              list the handler names a dialplan can call
    """


@agi.command()
@click.pass_context
def serve(ctx: click.Context) -> None:
    """Serve FastAGI requests until interrupted (SIGINT/SIGTERM end it cleanly).

    Only Asterisk gets served: connections from loopback or agi.allow that send valid headers
    within agi.header_timeout_s and prove this installation's secret (home/secrets/agi_secret);
    every other connection is refused and logged with its address and the reason.

    \b
    Examples:
      ivr agi serve                         listen on agi.host:agi.port from ./ivr.yaml
      ivr -c /etc/ivr/ivr.yaml agi serve &  same, with another config, in the background
    """
    from ivr.agi.fastagi import serve as run

    settings = settings_from(ctx)

    async def main() -> None:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)  # type: ignore[union-attr]
        ready = asyncio.Event()
        server = asyncio.create_task(run(settings, ready))
        await ready.wait()
        click.echo(f"FastAGI listening on {settings.agi.host}:{settings.agi.port}", err=True)
        await server

    with contextlib.suppress(asyncio.CancelledError):
        asyncio.run(main())


@agi.command()
@json_option
def handlers(as_json: bool) -> None:
    """List registered AGI handlers.

    \b
    Example:
      ivr agi handlers              names a dialplan passes to the AGI (guard, survey, hangup...)
    """
    from ivr.agi.registry import load_handlers

    found = {name: ((fn.__doc__ or "").strip().splitlines() or [""])[0]
             for name, fn in sorted(load_handlers().items())}
    if as_json:
        echo_json(found)
        return
    for name, doc in found.items():
        click.echo(f"{name:12} {doc}")
