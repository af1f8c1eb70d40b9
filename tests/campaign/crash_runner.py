"""Run a campaign's dialer with a fake originator that logs each dial (fsync) before 'ringing'.

Used by test_crash.py: the test kills this process with SIGKILL mid-campaign and starts it again.
    python3 crash_runner.py DB CAMPAIGN_ID LOG
"""

from __future__ import annotations

import asyncio
import os
import sys

import ivr.campaign  # noqa: F401
from ivr.call.variables import CallVariables
from ivr.campaign.runner import CampaignRunner
from ivr.dialer.types import DialResult
from ivr.store import open_db


class LoggingOriginator:
    def __init__(self, log_path: str) -> None:
        self.log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115

    async def dial(self, request: CallVariables) -> DialResult:
        self.log.write(f"{request.attempt_id} {request.contact_id} {request.phone}\n")
        self.log.flush()
        os.fsync(self.log.fileno())
        await asyncio.sleep(0.25)
        # Every third number does not answer the first time (a retry path through the crash).
        if int(request.phone[-1]) % 3 == 0 and request.attempt_id and \
                not _answered_before(request):
            return DialResult("no_answer", q850_cause=19)
        return DialResult("answered", sip_code=200, q850_cause=16)


_SEEN: set[int] = set()


def _answered_before(request: CallVariables) -> bool:
    first = request.contact_id not in _SEEN
    _SEEN.add(request.contact_id)
    return not first


def main() -> None:
    db_path, cid, log_path = sys.argv[1:4]
    db = open_db(db_path)
    dialer = CampaignRunner(db, cid, LoggingOriginator(log_path), max_concurrent=4, cps=40,
                            poll_interval_s=0.05)
    stats = asyncio.run(dialer.run())
    print(stats.status)


if __name__ == "__main__":
    main()
