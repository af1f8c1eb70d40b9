"""Who is called: recent real buyers, one contact per phone, with RFM scores and a segment.

All set work happens in SQLite (grouping, ranking, the compiled segment rules) in temp tables; the
planner then streams the result in rowid chunks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlite_utils

from ivr.campaign.segments import SegmentsConfig

SEL = "temp.campaign_cand"


@dataclass
class SelectionStats:
    candidates: int  # phones with a non-test order in the window (DNC ones included)
    excluded_test_phones: int  # phones with a test/internal order anywhere in their history
    since: str
    until: str
    # The compiled segment rules (SQL CASE and its parameters) that rows() applies.
    case_sql: str = field(default="", repr=False)
    case_params: list[Any] = field(default_factory=list, repr=False)


def _utc_text(dt: datetime) -> str:
    """Same form as orders.order_time (UTC, seconds, +00:00), so text comparison is time order."""
    return dt.astimezone(UTC).isoformat(timespec="seconds")


# Order fields a selection may be narrowed to (exact values, case-blind): "buyers of category X".
INCLUDE_FIELDS = ("category", "merchant", "host", "platform", "product")


def select(db: sqlite_utils.Database, *, reference: datetime, days: int,
           exclude_like: dict[str, list[str]], segments: SegmentsConfig,
           include: dict[str, list[str]] | None = None) -> SelectionStats:
    """Prepare the selection (temp tables) that :func:`rows` then streams; call :func:`drop`
    when done. ``include``: only orders whose field is one of the values count (a buyer's
    latest order *of those* is the one the call is about)."""
    until = _utc_text(reference)
    since = _utc_text(reference - timedelta(days=days))
    patterns: list[str] = []
    params: dict[str, Any] = {}
    for column, pats in sorted(exclude_like.items()):
        for p in pats:
            patterns.append(f"{column} LIKE :p{len(params)}")
            params[f"p{len(params)}"] = p
    test_where = " OR ".join(["coalesce(is_test, 0) = 1", *patterns])
    only, only_params = "", dict[str, str]()
    for column, values in sorted((include or {}).items()):
        if column not in INCLUDE_FIELDS:
            raise ValueError(f"cannot select on {column!r}; fields: {', '.join(INCLUDE_FIELDS)}")
        if values:
            names = []
            for v in values:
                names.append(f":i{len(only_params)}")
                only_params[f"i{len(only_params)}"] = str(v).strip().lower()
            only += f" AND lower({column}) IN ({', '.join(names)})"
    q = segments.rfm_quantiles
    conn = db.conn
    conn.execute("DROP TABLE IF EXISTS temp.campaign_cand")
    conn.execute("DROP TABLE IF EXISTS temp.campaign_excluded")
    # Materialised first: one full scan beats a LIKE per row inside the grouped scan.
    conn.execute(f"CREATE TEMP TABLE campaign_excluded AS SELECT DISTINCT phone "
                 f"FROM orders NOT INDEXED WHERE {test_where}", params)
    # One row per phone: its latest order (max over "time || id", whose row SQLite's bare
    # columns then come from), order count and money over the history, order ids in the window.
    conn.execute(f"""
        CREATE TEMP TABLE campaign_cand AS
        SELECT phone, max(order_time || order_id) AS latest_key, order_id, category, price,
               order_time, substr(order_time, 1, 10) AS day, count(*) AS f,
               round(sum(price), 2) AS m,
               json_group_array(order_id) FILTER (WHERE order_time >= :since) AS recent
        FROM orders
        WHERE order_time <= :until AND phone NOT IN (SELECT phone FROM temp.campaign_excluded)
              {only}
        GROUP BY phone HAVING order_time >= :since
    """, {"until": until, "since": since, **only_params})
    # RFM scores: percent rank of each value among the buyers -> 1..q; ties share a score.
    # Ranked per distinct value (few for days and counts), then joined back.
    for name, column in (("r", "day"), ("f", "f"), ("m", "m")):
        conn.execute(f"DROP TABLE IF EXISTS temp.campaign_{name}")
        conn.execute(f"""
            CREATE TEMP TABLE campaign_{name} (v PRIMARY KEY, score INT) WITHOUT ROWID""")
        conn.execute(f"""
            INSERT INTO temp.campaign_{name}
            SELECT v, min({q}, 1 + cast((below * {q}) / max(1.0, n - 1) AS int)) FROM (
                SELECT v, sum(c) OVER (ORDER BY v ROWS UNBOUNDED PRECEDING) - c AS below,
                       sum(c) OVER () AS n
                FROM (SELECT {column} AS v, count(*) AS c FROM temp.campaign_cand GROUP BY v))
        """)
    # Segments and the DNC flag are joined in per chunk by rows(): no second big temp table.
    candidates = conn.execute(f"SELECT count(*) FROM {SEL}").fetchone()[0]
    case_sql, case_params = segments.sql_case("c.category", "c.price", "r.score", "f.score",
                                              "m.score")
    excluded = conn.execute("SELECT count(*) FROM temp.campaign_excluded").fetchone()[0]
    conn.execute("DROP TABLE temp.campaign_excluded")
    return SelectionStats(candidates=candidates, excluded_test_phones=excluded, since=since,
                          until=until, case_sql=case_sql, case_params=case_params)


def rows(db: sqlite_utils.Database, sel: SelectionStats,
         chunk: int = 50_000) -> Iterator[list[tuple[Any, ...]]]:
    """The selection in chunks of (phone, order_id, category, price, order_time, f, m, recent,
    r, fs, ms, dnc, segment, rowid)."""
    case_sql, case_params = sel.case_sql, sel.case_params
    sql = f"""
        SELECT c.phone, c.order_id, c.category, c.price, c.order_time, c.f, c.m, c.recent,
               r.score, f.score, m.score, d.phone IS NOT NULL, {case_sql}, c.rowid
        FROM temp.campaign_cand c
        JOIN temp.campaign_r r ON r.v = c.day
        JOIN temp.campaign_f f ON f.v = c.f
        JOIN temp.campaign_m m ON m.v = c.m
        LEFT JOIN dnc d ON d.phone = c.phone
        WHERE c.rowid > ? ORDER BY c.rowid LIMIT ?"""
    last = 0
    while True:
        batch = db.conn.execute(sql, [*case_params, last, chunk]).fetchall()
        if not batch:
            return
        last = batch[-1][-1]
        yield batch


def drop(db: sqlite_utils.Database) -> None:
    for name in ("campaign_cand", "campaign_r", "campaign_f", "campaign_m", "campaign_excluded"):
        db.conn.execute(f"DROP TABLE IF EXISTS temp.{name}")
