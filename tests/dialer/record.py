"""Record the AMI traffic of real calls on the bed, for the replay tests of the originator.

    python3 tests/dialer/record.py [OUT_DIR]   (default: tests/dialer/transcripts)

One call per scenario (answered, busy, declined with 603, refused by the dialplan guard, answered
while the FastAGI daemon is down), each originated with a fixed token so the replay can match it.
Everything Asterisk sent on the AMI connection after the Originate is kept (panoramisk's
``save_stream``), less the events the originator never reads, which only make the files long
(kept: responses, OriginateResponse, UserEvent, Newchannel, Hangup, DialEnd: the call's shape).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from ivr.call.variables import CallVariables
from ivr.dialer.ami import AmiOriginator
from ivr.farend.bed import Bed
from ivr.farend.sipp import Customer, HangUp, Wait

HERE = Path(__file__).resolve().parent
KEEP = ("Response:", "Event: OriginateResponse", "Event: UserEvent", "Event: Newchannel",
        "Event: Hangup", "Event: DialEnd")
SCENARIOS = {
    # name: (dialed digits, the customer at that number)
    "answered": ("8613800000201", Customer("8613800000201", actions=[Wait(1500), HangUp()])),
    "busy": ("8613800000202", Customer("8613800000202", reject=486)),
    "declined_603": ("8613800000203", Customer("8613800000203", reject=603)),
    "guard_refused": ("8613999123456", Customer("8613999123456", actions=[Wait(1000)])),
}
# Recorded on a bed whose FastAGI daemon is not running: the dialplan apologises.
NO_AGI = {"agi_unreachable": ("8613800000204",
                              Customer("8613800000204", actions=[Wait(12000), HangUp()]))}


def replay_token(name: str) -> str:
    """The fixed token of a scenario's call (a call token is letters and digits only)."""
    return "replay" + name.replace("_", "")


def keep(message: str) -> bool:
    return message.strip().startswith(KEEP)


async def record(bed: Bed, name: str, digits: str, raw: Path) -> None:
    originator = AmiOriginator.from_settings(bed.settings, token=lambda: replay_token(name))
    with raw.open("wb") as stream:  # a path would be opened in text mode (panoramisk 1.4)
        originator.manager.save_stream = stream
        async with originator as o:
            result = await o.dial(CallVariables(phone="+" + digits, caller_id="+862150001001",
                                                ring_timeout_s=8))
            print(name, result, file=sys.stderr)
            await asyncio.sleep(1)  # the last events of the call


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for scenarios, start_agi in ((SCENARIOS, True), (NO_AGI, False)):
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            with Bed(home, [c for _d, c in scenarios.values()], start_agi=start_agi) as bed:
                for name, (digits, _customer) in scenarios.items():
                    raw = home / f"{name}.raw"
                    asyncio.run(record(bed, name, digits, raw))
                    text = raw.read_text(encoding="utf-8").replace("\r\n", "\n")
                    start = text.index("Response: Success\nActionID: ivr-")  # after the login
                    messages = [m.strip() for m in text[start:].split("\n\n")]
                    (out_dir / f"{name}.ami").write_text(
                        "\n\n".join(m for m in messages if m and keep(m)) + "\n\n",
                        encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "transcripts")
