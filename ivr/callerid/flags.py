"""External reputation flags: CSV files and JSON payloads (from the local flag endpoint).

Both become rows of ``number_flags`` through one function, so a flag means the same whatever
brought it. Bad rows are reported with their line / index and skipped; the good rows still count
(a typo in one row must not keep a spam-flagged number in rotation).

CSV columns (header required): ``number,reason`` and optionally ``source``, ``expires_at``
(ISO 8601) and ``action`` (``flag`` or ``clear``; default ``flag``).
JSON: one object or a list of objects with the same keys.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from ivr.callerid.state import add_flag, clear_flags, ensure_schema, get_number, parse_iso, utc
from ivr.phone import InvalidNumber, parse_e164

COLUMNS = ("number", "reason", "source", "expires_at", "action")


@dataclass
class ImportResult:
    flagged: list[str] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "<where>: <problem>"
    unknown: list[str] = field(default_factory=list)  # flagged numbers not in the pool (kept)

    def to_dict(self) -> dict[str, Any]:
        return {"flagged": self.flagged, "cleared": self.cleared, "errors": self.errors,
                "unknown": self.unknown}


def apply_flag_record(db: sqlite_utils.Database, record: Any, where: str, default_source: str,
                      result: ImportResult, *, now: datetime | None = None) -> None:
    """Validate one record and store it; problems go to ``result.errors`` prefixed by ``where``."""
    if not isinstance(record, dict):
        result.errors.append(f"{where}: expected an object with number and reason")
        return
    unknown_keys = sorted(set(record) - set(COLUMNS))
    if unknown_keys:
        result.errors.append(f"{where}: unknown field(s) {unknown_keys}; allowed {list(COLUMNS)}")
        return
    raw = str(record.get("number") or "").strip()
    try:
        number = parse_e164(raw)
    except InvalidNumber as exc:
        result.errors.append(f"{where}: number: {exc}")
        return
    action = str(record.get("action") or "flag").strip().lower()
    reason = str(record.get("reason") or "").strip()
    source = str(record.get("source") or "").strip() or default_source
    if action not in ("flag", "clear"):
        result.errors.append(f"{where}: action: must be 'flag' or 'clear', not {action!r}")
        return
    if action == "clear":
        clear_flags(db, number, reason or f"cleared by {source}", now=now, source=source)
        result.cleared.append(number)
        return
    if not reason:
        result.errors.append(f"{where}: reason: a flag needs a reason")
        return
    expires = None
    if record.get("expires_at"):
        expires = parse_iso(str(record["expires_at"]).strip())
        if expires is None:
            result.errors.append(f"{where}: expires_at: not an ISO 8601 time: "
                                 f"{record['expires_at']!r}")
            return
        if expires <= utc(now):
            result.errors.append(f"{where}: expires_at: {record['expires_at']} is in the past")
            return
    add_flag(db, number, reason, source, now=now, expires_at=expires)
    result.flagged.append(number)
    if get_number(db, number) is None:
        result.unknown.append(number)


def import_csv(db: sqlite_utils.Database, path: str | Path, *, source: str | None = None,
               now: datetime | None = None) -> ImportResult:
    """Import a CSV of flags; errors name file and line."""
    ensure_schema(db)
    file = Path(path)
    result = ImportResult()
    default_source = source or f"csv:{file.name}"
    try:
        handle = file.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        result.errors.append(f"{file}: cannot read: {exc}")
        return result
    with handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in ("number", "reason") if c not in header]
        if missing:
            result.errors.append(f"{file}:1: header must name columns number,reason "
                                 f"(missing {missing}); got {header}")
            return result
        reader.fieldnames = header
        for rec in reader:
            where = f"{file}:{reader.line_num}"
            if None in rec:
                result.errors.append(f"{where}: more values than header columns")
                continue
            if not any((v or "").strip() for v in rec.values()):
                continue  # blank line
            # Feeds carry extra columns (score, category ...): only ours are read.
            known = {k: v for k, v in rec.items() if k in COLUMNS and v not in (None, "")}
            apply_flag_record(db, known, where, default_source, result, now=now)
    return result


def import_json(db: sqlite_utils.Database, payload: Any, *, source: str = "http",
                now: datetime | None = None) -> ImportResult:
    """Import one JSON object or a list of them; errors name the item index."""
    ensure_schema(db)
    result = ImportResult()
    items = payload if isinstance(payload, list) else [payload]
    for i, item in enumerate(items):
        where = f"item {i}" if isinstance(payload, list) else "body"
        apply_flag_record(db, item, where, source, result, now=now)
    return result
