"""Helpers for the caller-ID tests: numbers, a fixed clock, synthetic attempts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlite_utils

from ivr.callerid.state import iso

T0 = datetime(2025, 3, 3, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai

# Shanghai, Beijing, Guangzhou (Guangdong), Nanjing (Jiangsu) land lines
SH, BJ, GZ, NJ = "+862150001001", "+861060001001", "+862080001001", "+862580001001"

SMALL_HEALTH = {
    "windows_minutes": [60, 1440],
    "min_calls": 10,
    "min_answered": 5,
    "min_rejections": 3,
    "answer_ratio_min": 0.5,
    "short_call_s": 5,
    "short_call_rate_max": 0.4,
    "rejection_rate_max": 0.15,
    "cooldown_minutes": 120,
}



def add_attempts(db: sqlite_utils.Database, caller_id: str, outcomes: list[str], *,
                 at: datetime = T0, sip_code: int | None = None, q850: int | None = None,
                 talk_s: float = 60.0, callee: str = "+8613912345678") -> None:
    """Synthetic finished attempts, one second apart, ending just before ``at``."""
    rows = []
    for i, outcome in enumerate(outcomes):
        started = at - timedelta(seconds=len(outcomes) - i + 1)
        answered = outcome == "answered"
        rows.append({
            "campaign_id": "c1", "contact_id": i, "phone": callee, "caller_id": caller_id,
            "trunk": "carrier", "state": "ended", "outcome": outcome,
            "sip_code": sip_code if not answered else None,
            "q850_cause": q850 if not answered else (16 if answered else None),
            "started_at": iso(started),
            "answered_at": iso(started) if answered else None,
            "ended_at": iso(started + timedelta(seconds=talk_s if answered else 0)),
            "duration_s": talk_s if answered else None,
        })
    db.table("attempts").insert_all(rows)


def mix(answered: int, other: int, other_outcome: str = "no_answer") -> list[str]:
    return ["answered"] * answered + [other_outcome] * other
