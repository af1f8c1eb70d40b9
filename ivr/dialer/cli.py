"""``ivr call``: originate one survey call over the SIP trunk and report its outcome."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace

import click

from ivr.call.variables import SURVEY, CallVariables, VariableError, check
from ivr.cli import settings_from
from ivr.dialer.types import DialResult
from ivr.phone import InvalidNumber, parse_e164


def describe(result: DialResult) -> str:
    parts: list[str] = [result.outcome]
    if result.sip_code:
        parts.append(f"SIP {result.sip_code}")
    if result.q850_cause is not None:
        parts.append(f"Q.850 cause {result.q850_cause}")
    if result.cause_text:
        parts.append(f"({result.cause_text})")
    if result.duration_s is not None:
        parts.append(f"talk {result.duration_s:.0f} s")
    if result.uniqueid:
        parts.append(f"call id {result.uniqueid}")
    return " ".join(parts)


@click.command()
@click.argument("number")
@click.option("--caller-id", help="E.164 number to present (default: trunk.caller_id).")
@click.option("--ring-timeout", default=30, show_default=True, type=click.IntRange(1, 300),
              help="Seconds to let it ring.")
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE",
              help="Survey channel variable (repeatable): IVR_ORDER_ID, IVR_SCRIPT, "
                   "IVR_LANGUAGE, IVR_VOICE, IVR_SEGMENT or IVR_AMD. The trunk, prefix and "
                   "caller ID are not variables: the region rules and --caller-id decide them.")
@click.pass_context
def call(ctx: click.Context, number: str, caller_id: str | None, ring_timeout: int,
         variables: tuple[str, ...]) -> None:
    """Originate one survey call to NUMBER (E.164, e.g. +8613912345678) through AMI.

    The number is validated before anything reaches Asterisk; the dialplan guard checks it again
    (do-not-call, region rules: which trunk and prefix) and refuses what they forbid.
    Exit status: 0 answered, 1 not answered / failed, 2 invalid input.

    \b
    Examples:
      ivr call +8613912345678
      ivr call +8613912345678 --caller-id +8601012345678 --var IVR_ORDER_ID=A1001
      ivr call +8613912345678 --var IVR_SCRIPT=surveys/platform_satisfaction.ko.yaml \
          --var IVR_LANGUAGE=ko
    """
    try:
        phone = parse_e164(number)
        cid = parse_e164(caller_id) if caller_id else None
    except InvalidNumber as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    asked: dict[str, str] = {}
    for item in variables:
        name, sep, value = item.partition("=")
        if not sep or not name:
            click.echo(f"error: --var expects NAME=VALUE, got {item!r}", err=True)
            sys.exit(2)
        asked[name] = value
    try:
        extra = check(asked, SURVEY)
    except VariableError as exc:
        click.echo(f"error: --var {exc}", err=True)
        sys.exit(2)
    settings = settings_from(ctx)
    from ivr.dialer.ami import AmiOriginator

    async def run() -> DialResult:
        async with AmiOriginator.from_settings(settings) as originator:
            return await originator.dial(replace(
                # No trunk: the guard takes the one the region rules route the number over.
                CallVariables.from_channel(extra), phone=phone,
                caller_id=cid or settings.trunk.caller_id, ring_timeout_s=ring_timeout))

    try:
        result = asyncio.run(run())
    except (OSError, TimeoutError) as exc:
        raise click.ClickException(
            f"cannot reach AMI at {settings.ami.host}:{settings.ami.port}: {exc!r} "
            "(is Asterisk running? ivr asterisk start)") from exc
    click.echo(f"{phone}: {describe(result)}")
    sys.exit(0 if result.outcome == "answered" else 1)
