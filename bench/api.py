"""The service's API under load, on the real bed (``ivr serve`` as its own process).

    python3 bench/api.py [--orders 50000] [--batch 1000] [--runs 3] [--events 20] [--delay 2]

1. Orders ingested per second through ``POST /v1/orders`` in batches (new order ids each run;
   the same validation and upsert as the CSV importer), over HTTP on loopback. Target >= 5,000/s.
2. Event-to-originate latency: ``--events`` ``order.not_dispatched`` events, each with a call
   ``--delay`` seconds later, to sipp buyers who decline at once; latency is the attempt's
   ``started_at`` (committed right before the AMI Originate is sent) minus the event's
   ``occurred_at`` + delay. Target p95 <= 1 s beyond the delay.

Last stdout line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr.farend.bed import Bed, free_port  # noqa: E402
from ivr.farend.sipp import Customer  # noqa: E402
from tests.service.proc import ServiceProc, quiet_pool, service_config  # noqa: E402

SCRIPT = ROOT / "tests" / "data" / "mini.cmn.yaml"


def orders(start: int, n: int) -> list[dict[str, str]]:
    when = (datetime.now(UTC) - timedelta(days=2)).isoformat(timespec="seconds")
    return [{"order_id": f"B{i:09d}", "phone": f"+86139{i % 100_000_000:08d}",
             "product": "婴儿湿巾", "category": "baby", "price": "39.9",
             "merchant": "好妈妈旗舰店", "host": "小李", "order_time": when}
            for i in range(start, start + n)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[k]


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=50_000, help="orders per run")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--events", type=int, default=20)
    ap.add_argument("--delay", type=float, default=2.0)
    args = ap.parse_args()
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="ivr-bench-api-") as tmp:
        home = Path(tmp) / "bed"
        home.mkdir()
        rules = [{"name": "latency", "event": "order.not_dispatched", "action": "call",
                  "script": str(SCRIPT), "delay": args.delay, "outside_window": "next_window",
                  "dedupe": {"by": "order", "window": "1h"}}]
        service = service_config(home, port=free_port(), rules=rules)
        service["policy"] = str(_policy(home))
        # every buyer declines: the caller-ID pool's health judging is off (quiet_pool), this
        # bench measures latency, not number health
        phones = [f"8613905800{i:03d}" for i in range(args.events)]
        with Bed(home, customers=[Customer(p, reject=603) for p in phones],
                 service=service, numbers=str(quiet_pool(home))) as bed, ServiceProc(bed) as svc:
            rates = []
            for run in range(args.runs):
                t0 = time.perf_counter()
                total = 0
                for start in range(0, args.orders, args.batch):
                    body = {"orders": orders(run * args.orders + start,
                                             min(args.batch, args.orders - start))}
                    res = svc.post("/v1/orders", json=body)
                    total += int(res["inserted"])
                elapsed = time.perf_counter() - t0
                assert total == args.orders, total
                rates.append(total / elapsed)
                print(f"run {run + 1}: {total} orders in {elapsed:.2f} s "
                      f"({total / elapsed:,.0f}/s)", file=sys.stderr)
            out.update({"orders_per_s_median": round(statistics.median(rates)),
                        "orders_per_s_runs": [round(r) for r in rates], "batch": args.batch,
                        "orders_per_run": args.orders})
            occurred: dict[str, float] = {}
            for i, phone in enumerate(phones):
                order_id = f"L{phone}"
                now = datetime.now(UTC)
                svc.post("/v1/events", json={
                    "id": f"latency-{i}", "type": "order.not_dispatched",
                    "occurred_at": now.isoformat(), "order": {
                        **orders(0, 1)[0], "order_id": order_id, "phone": "+" + phone}})
                occurred[phone] = now.timestamp()
                time.sleep(0.6)  # one event at a time (the trunk's pacing is not measured)
            deadline = time.monotonic() + args.delay + 60
            rows: list[dict[str, object]] = []
            while time.monotonic() < deadline:
                rows = bed.rows("SELECT phone, started_at FROM attempts")
                if len(rows) >= len(phones):
                    break
                time.sleep(0.5)
            late = [ts(str(r["started_at"])) - occurred[str(r["phone"])[1:]] - args.delay
                    for r in rows if str(r["phone"])[1:] in occurred]
            assert len(late) == len(phones), (len(late), len(phones))
            out.update({"event_latency_beyond_delay_p50_s": round(statistics.median(late), 3),
                        "event_latency_beyond_delay_p95_s": round(percentile(late, 0.95), 3),
                        "event_latency_beyond_delay_max_s": round(max(late), 3),
                        "events": len(late), "delay_s": args.delay})
    print(json.dumps(out))


def _policy(home: Path) -> Path:
    from ivr.farend.campaign import all_day_policy

    # room for every call at once: the trunk's concurrency cap is not what is measured here
    return all_day_policy(home / "bench-policy.yaml", max_attempts=1, max_concurrent=100, cps=20)


if __name__ == "__main__":
    main()
