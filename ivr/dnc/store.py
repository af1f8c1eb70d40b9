"""Managing the do-not-call list: every change is kept in ``dnc_log`` with who and why."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlite_utils

from ivr.campaign.importer import normalise_phone
from ivr.phone import InvalidNumber
from ivr.store import add_dnc, now_iso, register_schema

MAX_REASON = 500


@register_schema
def dnc_log_schema(db: sqlite_utils.Database) -> None:
    db.table("dnc_log").create(
        {"id": int, "phone": str, "action": str, "reason": str, "source": str, "at": str},
        pk="id", if_not_exists=True)
    db.table("dnc_log").create_index(["phone", "at"], if_not_exists=True)


def _clean(text: Any, what: str) -> str:
    value = " ".join(str(text or "").split())
    if len(value) > MAX_REASON:
        raise ValueError(f"{what} is longer than {MAX_REASON} characters")
    return value


def add(db: sqlite_utils.Database, phone: str, *, reason: str, source: str,
        region: str = "CN") -> str:
    """Put a number on the list (local or E.164 form); returns its E.164. Raises InvalidNumber
    or ValueError."""
    e164 = normalise_phone(phone, region)
    reason, source = _clean(reason, "reason"), _clean(source, "source")
    if not source:
        raise ValueError("source must not be empty (who asked: api, console, sms, csv ...)")
    add_dnc(db, e164, reason, source)
    db.table("dnc_log").insert({"phone": e164, "action": "add", "reason": reason,
                                "source": source, "at": now_iso()})
    return e164


def remove(db: sqlite_utils.Database, phone: str, *, reason: str, source: str,
           region: str = "CN") -> bool:
    """Take a number off the list; False when it was not on it."""
    e164 = normalise_phone(phone, region)
    gone = db.execute("DELETE FROM dnc WHERE phone = ?", [e164]).rowcount > 0
    if gone:
        db.table("dnc_log").insert({"phone": e164, "action": "remove",
                                    "reason": _clean(reason, "reason"),
                                    "source": _clean(source, "source"), "at": now_iso()})
    return gone


def entries(db: sqlite_utils.Database, *, search: str | None = None, limit: int = 100,
            offset: int = 0) -> list[dict[str, Any]]:
    sql = "SELECT phone, reason, source, added_at FROM dnc"
    params: list[Any] = []
    if search:
        sql += " WHERE phone LIKE ? OR reason LIKE ? OR source LIKE ?"
        params += [f"%{search}%"] * 3
    sql += " ORDER BY added_at DESC, phone LIMIT ? OFFSET ?"
    return [dict(r) for r in db.query(sql, [*params, limit, offset])]


def count(db: sqlite_utils.Database) -> int:
    return int(db.execute("SELECT count(*) FROM dnc").fetchone()[0])


@dataclass
class DncImport:
    rows: int = 0
    added: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)  # "line N: why" (first 100)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def import_csv(db: sqlite_utils.Database, text: str, *, source: str, default_reason: str = "",
               region: str = "CN", name: str = "upload") -> DncImport:
    """A CSV with a ``phone`` column (optional ``reason``, ``source``); a file without a header
    is one number per line. Bad lines are reported with their line number; the rest is added."""
    result = DncImport()
    text = text.lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return result
    header = [h.strip().lower() for h in rows[0]]
    has_header = "phone" in header
    start = 2 if has_header else 1
    for n, fields in enumerate(rows[1:] if has_header else rows, start=start):
        if not fields or not any(f.strip() for f in fields):
            continue
        result.rows += 1
        rec = dict(zip(header, fields, strict=False)) if has_header else {"phone": fields[0]}
        try:
            add(db, rec.get("phone", ""), reason=rec.get("reason") or default_reason,
                source=rec.get("source") or source, region=region)
            result.added += 1
        except (InvalidNumber, ValueError) as exc:
            result.rejected += 1
            if len(result.errors) < 100:
                result.errors.append(f"{name}:{n}: {exc}")
    return result


# Replies that mean "stop" in Chinese SMS practice (回T退订 asks for a bare "T") and in English.
_OPT_OUT_WORDS = {"T", "TD", "N", "QX", "0000", "00000", "STOP", "UNSUBSCRIBE", "END",
                  "退订", "退定", "取消", "退", "回T退订", "T退订", "TD退订"}
_OPT_OUT_PHRASES = ("退订", "不要再打", "别再打", "不要打了", "别打了", "不要再发", "别再发")


def is_opt_out(text: str) -> bool:
    """Whether an SMS reply asks to be left alone: one of the stop words on its own (full-width
    letters and punctuation folded), or a stop phrase anywhere in it."""
    folded = unicodedata.normalize("NFKC", text or "").strip().upper()
    bare = re.sub(r"[\s\.,!?;:'\"。，！？；：、~～\-_()（）\[\]【】]+", "", folded)
    if bare in _OPT_OUT_WORDS:
        return True
    return any(p in folded for p in _OPT_OUT_PHRASES)
