"""Classic AGI entry point (``ivr-agi``): the same handlers, over stdin/stdout via pyst2.

Dialplan: ``AGI(ivr-agi,<handler>,args...)`` (the rendered wrapper in astagidir points here).
pyst2 reads the ``agi_*`` environment block and catches SIGHUP (Asterisk sends it when the
caller hangs up); we keep its framing and do the line parsing ourselves so both transports report
hangups and errors identically.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from asterisk.agi import AGI

from ivr.agi.channel import AGIChannel, AGIHangup, AGIResponse, parse_response
from ivr.agi.registry import run_handler
from ivr.config import ConfigError, load_settings
from ivr.files import private_umask
from ivr.store import StoreError

log = logging.getLogger("ivr.agi.classic")


class Pyst2Transport:
    def __init__(self, agi: AGI) -> None:
        self.agi = agi

    async def command(self, line: str) -> AGIResponse:
        if getattr(self.agi, "_got_sighup", False):
            raise AGIHangup("SIGHUP from Asterisk: the caller hung up")
        try:
            self.agi.send_command(line)
            while True:
                raw = self.agi.stdin.readline()
                if not raw:
                    raise AGIHangup("stdin closed by Asterisk")
                text = raw.rstrip("\r\n")
                if text == "HANGUP" or text.startswith("100 "):
                    continue
                return parse_response(text)
        except (BrokenPipeError, ConnectionError, OSError) as exc:
            raise AGIHangup(f"AGI pipe lost: {exc!r}") from exc

    async def close(self) -> None:
        return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    private_umask()
    logging.basicConfig(
        level=os.environ.get("IVR_LOG_LEVEL", "WARNING"), stream=sys.stderr,
        format="ivr-agi %(levelname)s %(name)s: %(message)s",
    )
    if not argv:
        print("usage: ivr-agi <handler> [args...]  (run by Asterisk: AGI(ivr-agi,survey))",
              file=sys.stderr)
        return 2
    name = argv[0]
    agi = AGI()  # reads the agi_* block from stdin, installs the SIGHUP handler
    # Asterisk passes AGI(ivr-agi,survey,x) as argv = [survey, x] (and as agi_arg_1..n);
    # re-number so handlers see [x], as they do over FastAGI.
    env = {k: v for k, v in agi.env.items() if not k.startswith("agi_arg_")}
    for i, value in enumerate(argv[1:], start=1):
        env[f"agi_arg_{i}"] = value
    try:
        settings = load_settings()
    except ConfigError as exc:
        log.error("%s", exc)
        # one problem per line in the message: one AGI command line here
        agi.verbose(f"ivr-agi: configuration error: {'; '.join(map(str, exc.problems))}")
        return 1
    channel = AGIChannel(Pyst2Transport(agi), env)
    try:
        outcome = asyncio.run(run_handler(name, channel, settings, "classic"))
    except StoreError as exc:  # the database cannot be used: the dialplan fails closed
        log.error("%s", exc)
        agi.verbose(f"ivr-agi: {exc}")
        return 1
    return 0 if outcome in ("ok", "hangup") else 1


if __name__ == "__main__":
    sys.exit(main())
