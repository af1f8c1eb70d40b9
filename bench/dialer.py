"""Campaign dialer throughput through the real bed (Asterisk + PJSIP trunk + sipp answering).

    python3 bench/dialer.py [--calls 40] [--max-concurrent 4] [--cps 2]

Plans N contacts, runs the wired campaign dialer (AMI, caller-ID pool, health monitor) against
a private bed whose customers answer and hang up after ``--talk-ms``, and reports what it observed
from the attempts table: peak concurrent calls (overlapping started..ended intervals), call
starts per second (median over the run's 1 s windows with calls and overall), attempts lost.
Last stdout line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr.campaign.wiring import run_campaign  # noqa: E402
from ivr.farend.bed import Bed  # noqa: E402
from ivr.farend.campaign import import_and_plan, invites_per_number  # noqa: E402
from ivr.farend.sipp import Customer, HangUp, Wait  # noqa: E402

SCRIPT = ROOT / "tests" / "data" / "mini.cmn.yaml"


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def peak_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals],
                    key=lambda x: (x[0], x[1]))
    cur = peak = 0
    for _, d in events:
        cur += d
        peak = max(peak, cur)
    return peak


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=40)
    ap.add_argument("--max-concurrent", type=int, default=4)
    ap.add_argument("--cps", type=float, default=2.0)
    ap.add_argument("--talk-ms", type=int, default=1500)
    args = ap.parse_args()
    phones = [f"+86139057120{i:02d}" if i < 100 else f"+8613905713{i:03d}"
              for i in range(args.calls)]
    with tempfile.TemporaryDirectory(prefix="ivr-bench-dialer-") as tmp:
        home = Path(tmp)
        with Bed(home / "bed") as bed:
            plan = import_and_plan(bed, home, "bench", phones, script=SCRIPT,
                                   voice="cmn-calm-male", max_concurrent=args.max_concurrent,
                                   cps=args.cps, max_attempts=1)
            cid = plan["campaign_id"]
            bed.start_customers([Customer(p[1:], actions=[Wait(args.talk_ms), HangUp()])
                                  for p in phones])
            t0 = time.monotonic()
            stats = asyncio.run(run_campaign(bed.settings, bed.db(), cid, handle_signals=False,
                                             poll_interval_s=0.1))
            wall = time.monotonic() - t0
            db = bed.db()
            rows = db.execute("SELECT started_at, ended_at, state, outcome FROM attempts WHERE "
                              "campaign_id = ?", [cid]).fetchall()
            contacts_open = db.execute(
                "SELECT count(*) FROM contacts WHERE campaign_id = ? AND state IN "
                "('pending', 'retry', 'dialing')", [cid]).fetchone()[0]
            assert bed.sipp is not None
            invites = sum(invites_per_number(bed.sipp.messages()).values())
    starts = sorted(ts(r[0]) for r in rows)
    intervals = [(ts(r[0]), ts(r[1])) for r in rows if r[1]]
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    outcomes: dict[str, int] = {}
    for r in rows:
        outcomes[r[3] or "open"] = outcomes.get(r[3] or "open", 0) + 1
    span = (starts[-1] - starts[0]) if len(starts) > 1 else 0.0
    result = {
        "calls": len(rows),
        "max_concurrent": peak_overlap(intervals),
        "cps": round((len(starts) - 1) / span, 3) if span else None,
        "median_start_gap_s": round(statistics.median(gaps), 3) if gaps else None,
        "min_start_gap_s": round(min(gaps), 3) if gaps else None,
        "lost_attempts": sum(1 for r in rows if r[2] != "ended") + int(contacts_open),
        "invites": invites,
        "outcomes": outcomes,
        "limits": {"max_concurrent": args.max_concurrent, "cps": args.cps},
        "dialer_max_in_flight": stats.max_in_flight,
        "wall_s": round(wall, 1),
        "status": stats.status,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
