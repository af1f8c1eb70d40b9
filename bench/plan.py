"""Benchmark: plan a campaign over synthetic orders (selection + RFM + segments + windows + caps).

    python3 bench/plan.py --contacts 1000000

The synthetic database is generated in a child process (not timed, not in the RSS figure); the
plan runs here. Last stdout line: {"contacts", "plan_seconds", "contacts_per_s", "peak_rss_mb"}.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REFERENCE = datetime(2025, 6, 15, 4, 0, tzinfo=UTC)
PREFIXES = ["130", "131", "132", "133", "134", "135", "136", "137", "138", "139", "147", "150",
            "151", "152", "153", "155", "156", "157", "158", "159", "166", "170", "171", "173",
            "175", "176", "177", "178", "180", "181", "182", "183", "184", "185", "186", "187",
            "188", "189", "191", "198", "199"]
CATEGORIES = [("母婴", 89), ("零食", 25), ("美妆", 60), ("美妆", 300), ("数码", 999),
              ("服装", 159), ("家居", 120), ("snacks", 15), ("baby", 200), ("图书", 45)]


def generate(db_path: Path, contacts: int, seed: int) -> None:
    from ivr.campaign import schema  # noqa: F401  (registers the campaign indexes)
    from ivr.campaign.policy import iso
    from ivr.store import open_db

    rnd = random.Random(seed)
    db = open_db(db_path)
    conn = db.conn
    phones: set[str] = set()
    # Extra buyers become DNC (1%) and test accounts (0.5%): the plan keeps `contacts` of them.
    wanted = contacts + contacts // 100 + contacts // 200
    while len(phones) < wanted:
        phones.add(f"+86{rnd.choice(PREFIXES)}{rnd.randrange(10**8):08d}")
    ordered = sorted(phones)
    rnd.shuffle(ordered)
    sql = ("INSERT INTO orders (order_id, phone, product, category, price, merchant, host, "
           "platform, order_time, buyer_name, is_test, source, imported_at) "
           "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)")
    batch: list[tuple[object, ...]] = []
    oid = 0

    def order(phone: str, days_ago: float, is_test: int = 0) -> None:
        nonlocal oid
        oid += 1
        cat, price = rnd.choice(CATEGORIES)
        when = (REFERENCE - timedelta(days=days_ago)).isoformat(timespec="seconds")
        batch.append((f"O{oid:09d}", phone, f"商品{oid % 997}", cat, price, "旗舰店", "主播A",
                      "示例平台", when, "买家" if not is_test else "测试账号", is_test, "bench",
                      "2025-06-15T00:00:00.000Z"))

    def flush() -> None:
        conn.execute("BEGIN")
        conn.executemany(sql, batch)
        conn.execute("COMMIT")
        batch.clear()

    for i, phone in enumerate(ordered):
        order(phone, rnd.uniform(0, 29.9))
        if i % 5 == 0:  # repeat buyers: one more recent order, one older than the window
            order(phone, rnd.uniform(0, 29.9))
            order(phone, rnd.uniform(31, 300))
        if len(batch) >= 50_000:
            flush()
    # Buyers outside the window, test accounts, DNC numbers and attempt history.
    extra = [f"+86{rnd.choice(PREFIXES)}{rnd.randrange(10**8):08d}" for _ in range(contacts // 20)]
    for phone in extra:
        if phone not in phones:
            order(phone, rnd.uniform(40, 200))
    n_test, n_dnc = contacts // 200, contacts // 100
    for phone in ordered[:n_test]:
        order(phone, 1, is_test=1)
    flush()
    conn.execute("BEGIN")
    conn.executemany("INSERT OR IGNORE INTO dnc (phone, reason, source, added_at) VALUES "
                     "(?, 'opt-out', 'bench', '2025-06-01T00:00:00.000Z')",
                     [(p,) for p in ordered[n_test: n_test + n_dnc]])
    attempts = []
    for phone in ordered[-(contacts // 50):]:
        for _ in range(rnd.randint(1, 3)):
            started = iso(REFERENCE - timedelta(hours=rnd.uniform(1, 24 * 8)))
            attempts.append(("old", phone, started, "ended", "no_answer"))
    conn.executemany("INSERT INTO attempts (campaign_id, phone, started_at, state, outcome) "
                     "VALUES (?,?,?,?,?)", attempts)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--contacts", type=int, default=100_000)
    ap.add_argument("--db", type=Path)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--generate-only", action="store_true")
    args = ap.parse_args()
    if args.generate_only:
        generate(args.db, args.contacts, args.seed)
        return
    with tempfile.TemporaryDirectory(prefix="ivr-bench-plan-") as tmp:
        db_path = args.db or Path(tmp) / "bench.db"
        if not db_path.exists():
            t = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--generate-only", "--db", str(db_path),
                            "--contacts", str(args.contacts), "--seed", str(args.seed)],
                           check=True)
            print(f"generated {args.contacts} buyers in {time.perf_counter() - t:.1f} s",
                  file=sys.stderr)
        from ivr.campaign import schema  # noqa: F401
        from ivr.campaign.planner import plan_campaign
        from ivr.campaign.policy import load_policy
        from ivr.campaign.segments import load_segments
        from ivr.store import open_db

        db = open_db(db_path)
        policy = load_policy(ROOT / "config" / "policy.yaml")
        segments = load_segments(ROOT / "config" / "segments.yaml")
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        result = plan_campaign(db, "bench", script="surveys/satisfaction.yaml", policy=policy,
                               segments=segments, reference=REFERENCE,
                               ends_at=REFERENCE + timedelta(days=14),
                               default_caller_id="+8610000000")
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({k: v for k, v in result.as_dict().items()
                          if k not in ("campaign_id", "name")}, ensure_ascii=False),
              file=sys.stderr)
        print(json.dumps({"contacts": result.contacts, "plan_seconds": round(seconds, 2),
                          "contacts_per_s": round(result.contacts / seconds),
                          "peak_rss_mb": round(rss_mb, 1), "plan_cpu_seconds": round(cpu, 2),
                          "load_avg_1m": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
