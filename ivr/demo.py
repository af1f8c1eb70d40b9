"""``ivr demo``: the whole product on this machine, end to end, with simulated customers.

Boots a private bed (Asterisk 22 from the forky root, the FastAGI daemon, sipp customers on the
PJSIP trunk, all on 127.0.0.1), places real calls through AMI, and prints what was stored.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ivr.dialer.ami import AmiOriginator
from ivr.dialer.cli import describe
from ivr.dialer.types import DialRequest, DialResult
from ivr.testing.bed import Bed
from ivr.testing.sipp import Customer, Dtmf, HangUp, Wait

DEMO_CUSTOMERS = [
    Customer("8613800000001", name="happy buyer (presses 1)",
             actions=[Wait(8500), Dtmf("1"), Wait(20000)]),
    Customer("8613800000002", name="unhappy buyer (presses 2)",
             actions=[Wait(8500), Dtmf("2"), Wait(20000)]),
    Customer("8613800000003", name="hangs up during the question", actions=[Wait(7000), HangUp()]),
    Customer("8613800000004", name="busy (486)", reject=486),
    Customer("8613800000005", name="declines (603)", reject=603),
]


async def _place_calls(bed: Bed, console: Console) -> list[tuple[Customer, DialResult, float]]:
    results = []
    async with AmiOriginator.from_settings(bed.settings) as originator:
        for c in DEMO_CUSTOMERS:
            started = time.monotonic()
            console.print(f"calling +{c.number} ({c.name}) ...")
            result = await originator.dial(DialRequest(phone="+" + c.number,
                                                       caller_id=bed.settings.trunk.caller_id))
            elapsed = time.monotonic() - started
            console.print(f"  -> {describe(result)} [{elapsed:.1f} s]")
            results.append((c, result, elapsed))
    return results


@click.command()
@click.option("--home", type=click.Path(file_okay=False), default="var/demo", show_default=True,
              help="Where the demo's database, configs and logs go (wiped first).")
def demo(home: str) -> None:
    """Run the demo on the local bed and print the stored results.

    \b
    Example:
      ivr demo
    """
    console = Console()
    home_path = Path(home).resolve()
    if home_path.exists():
        shutil.rmtree(home_path)
    t0 = time.monotonic()
    with Bed(home_path, DEMO_CUSTOMERS) as bed:
        console.print(f"[bold]bed up[/] in {time.monotonic() - t0:.1f} s: Asterisk "
                      f"{bed.asterisk.root.version().split()[1]}, trunk -> sipp on "
                      f"127.0.0.1:{bed.settings.trunk.port}, FastAGI on :{bed.settings.agi.port}")
        results = asyncio.run(_place_calls(bed, console))
        db = bed.db()
        table = Table(title="stored results (SQLite: calls + answers)")
        for col in ("number", "customer", "dial outcome", "call state", "answer", "satisfied"):
            table.add_column(col)
        for c, r, _ in results:
            row = bed.call_row(r.uniqueid) if r.uniqueid else None
            answers = list(db["answers"].rows_where("call_id = ?", [r.uniqueid])) if row else []
            answer = ", ".join(f"{a['node']}={a['intent']} (dtmf {a['dtmf']})" for a in answers)
            table.add_row("+" + c.number, c.name, r.outcome, row["state"] if row else "-",
                          answer or "-", "-" if not row or row["satisfied"] is None
                          else ("yes" if row["satisfied"] else "no"))
        console.print(table)
    console.print(f"demo finished in {time.monotonic() - t0:.1f} s; database: "
                  f"{home_path / 'ivr.db'}")
