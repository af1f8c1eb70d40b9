"""Campaigns on a bed, for the real-call campaign tests and the dialer bench.

* Customers go in with ``Bed.start_customers``; "reject B, answer everyone else" is stated as
  ``[Customer(n, reject=603, from_user=B), Customer(n, actions=...)]``.
* :func:`invites_per_number`: INVITEs per dialed number in sipp's message trace.
* :func:`all_day_policy` / :func:`all_day_segments`: campaign config files that allow "now".
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from ivr.farend.bed import Bed

_INVITE = re.compile(r"^INVITE sip:(\d+)@", re.M)
_FROM = re.compile(r"^From:.*?sip:\+?(\d+)@", re.M)


def invites_per_number(messages: str) -> Counter[str]:
    """How many INVITEs sipp received per dialed number (digits). Retransmissions of one
    INVITE carry the same Call-ID and are counted once."""
    seen: set[tuple[str, str]] = set()
    counts: Counter[str] = Counter()
    for block in re.split(r"\n(?=-{5,})", messages):
        m = _INVITE.search(block)
        if not m:
            continue
        cid = re.search(r"^Call-ID:\s*(\S+)", block, re.M | re.I)
        key = (m.group(1), cid.group(1) if cid else block)
        if key not in seen:
            seen.add(key)
            counts[m.group(1)] += 1
    return counts


def invites_from(messages: str) -> list[tuple[str, str]]:
    """(dialed number, presented caller ID digits) per distinct INVITE, in order."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for block in re.split(r"\n(?=-{5,})", messages):
        m = _INVITE.search(block)
        cid = re.search(r"^Call-ID:\s*(\S+)", block, re.M | re.I)
        frm = _FROM.search(block)
        if not m or not cid or cid.group(1) in seen:
            continue
        seen.add(cid.group(1))
        out.append((m.group(1), frm.group(1) if frm else ""))
    return out


def all_day_policy(path: Path, *, max_attempts: int = 3, backoff_s: float = 1.0,
                   ring_timeout_s: int = 5, max_concurrent: int = 4, cps: float = 2.0,
                   **extra: Any) -> Path:
    """A policy with no quiet hours, no caps, tiny backoffs: every contact is due now."""
    data: dict[str, Any] = {
        "quiet_hours": None, "avoid_weekday_noon": False,
        "caps": {"per_day": None, "per_window": None},
        "retry": {"max_attempts": max_attempts,
                  "backoff_s": {k: backoff_s for k in ("busy", "no_answer", "congestion",
                                                       "failed")},
                  "multiplier": 1.0, "no_retry_sip": [603, 607, 608], "no_retry_q850": [21]},
        "circuit_breaker": {"window": 50, "min_attempts": 50, "max_failure_rate": 0.99},
        "dialer": {"max_concurrent": max_concurrent, "cps": cps, "ring_timeout_s": ring_timeout_s},
    }
    data.update(extra)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def all_day_segments(path: Path, voice: str = "cmn-calm-male") -> Path:
    data = {"default_segment": "general",
            "segments": {"general": {"voice": voice,
                                     "windows": [{"days": "all", "start": "00:00",
                                                  "end": "24:00"}]}},
            "rules": []}
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def write_orders(path: Path, phones: Sequence[str], *, product: str = "婴儿湿巾",
                 category: str = "baby", days_ago: float = 1.0) -> Path:
    """An orders CSV (the importer's columns), one order ``O<digits>`` per E.164 phone."""
    when = (datetime.now(UTC) - timedelta(days=days_ago)).isoformat(timespec="seconds")
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["order_id", "phone", "product", "category", "price", "merchant", "host",
                    "order_time"])
        for p in phones:
            w.writerow([f"O{p.lstrip('+')}", p, product, category, "39.9", "好妈妈旗舰店", "小李",
                        when])
    return path


def campaign_cli(bed: Bed, *args: str, check: bool = True,
                 timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``ivr campaign ARGS`` against the bed's config; an error fails the caller (``check``)."""
    proc = bed.ivr("campaign", *args, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"ivr campaign {' '.join(args)} -> {proc.returncode}\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def import_and_plan(bed: Bed, work: Path, name: str, phones: Sequence[str], *, script: Path,
                    voice: str, days_ago: float = 1.0, days: int = 30,
                    **policy: Any) -> dict[str, Any]:
    """Import a CSV of ``phones`` (ordered ``days_ago``) and plan campaign ``name`` over orders
    of the last ``days`` with an all-day policy through the CLI; returns the plan's JSON
    (campaign_id, pending, skipped, skip_reasons, region_messages ...). Tests sharing a bed
    keep their campaigns apart with disjoint order ages."""
    campaign_cli(bed, "import", str(write_orders(work / f"{name}.csv", phones,
                                                 days_ago=days_ago)))
    out = campaign_cli(bed, "plan", name, "--script", str(script), "--language", "cmn",
                       "--days", str(days),
                       "--policy", str(all_day_policy(work / f"{name}-policy.yaml", **policy)),
                       "--segments", str(all_day_segments(work / f"{name}-segments.yaml", voice)))
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result
