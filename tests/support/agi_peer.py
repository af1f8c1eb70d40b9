"""Play Asterisk's side of an AGI session from a script, for fast tests of the AGI layer.

A script is a list of ``(command_prefix, reply)``: each command the handler sends must start with
the prefix (case-insensitive), and gets the reply line. ``reply=None`` closes the connection there
(the caller hung up), like Asterisk does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

Step = tuple[str, str | None]


def header_block(script: str, uniqueid: str = "1700000000.1", **extra: str) -> bytes:
    env = {
        "agi_network": "yes",
        "agi_network_script": script,
        "agi_request": f"agi://127.0.0.1/{script}",
        "agi_channel": "PJSIP/carrier-00000001",
        "agi_language": "en",
        "agi_type": "PJSIP",
        "agi_uniqueid": uniqueid,
        "agi_callerid": "8613912345678",
        "agi_context": "ivr-survey",
        "agi_extension": "s",
        "agi_priority": "6",
        **extra,
    }
    return ("".join(f"{k}: {v}\n" for k, v in env.items()) + "\n").encode()


@dataclass
class Transcript:
    commands: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


async def play_fastagi(host: str, port: int, script_name: str, steps: Sequence[Step],
                       uniqueid: str = "1700000000.1", secret: str | None = None,
                       **headers: str) -> Transcript:
    """Connect to a FastAGI server as Asterisk would and answer its commands from ``steps``.
    ``secret``: answer the daemon's secret check (GET FULL VARIABLE) with it first."""
    reader, writer = await asyncio.open_connection(host, port)
    out = Transcript()
    writer.write(header_block(script_name, uniqueid, **headers))
    await writer.drain()
    if secret is not None:
        steps = [("GET FULL VARIABLE", f"200 result=1 ({secret})"), *steps]
    try:
        for prefix, reply in steps:
            raw = await asyncio.wait_for(reader.readline(), timeout=10)
            if not raw:
                return out
            cmd = raw.decode().strip()
            out.commands.append(cmd)
            if not cmd.upper().startswith(prefix.upper()):
                out.unexpected.append(f"expected {prefix!r}, got {cmd!r}")
            if reply is None:
                return out
            writer.write((reply + "\n").encode())
            await writer.drain()
        # Answer anything further with a plain success until the handler closes.
        while True:
            raw = await asyncio.wait_for(reader.readline(), timeout=10)
            if not raw:
                return out
            out.commands.append(raw.decode().strip())
            writer.write(b"200 result=0\n")
            await writer.drain()
    finally:
        writer.close()
