"""Import orders from CSV or JSON lines into the ``orders`` table.

Every row ends up somewhere: imported (inserted, updated or unchanged), an identical repeat of an
earlier row in the same file, or a line of the rejects CSV with its line number and reason. The
file is streamed in batches; each batch is one transaction; importing a file twice changes nothing.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import phonenumbers
import sqlite_utils

from ivr.phone import InvalidNumber, parse_e164
from ivr.store import now_iso

REQUIRED = ("order_id", "phone", "product", "category", "price", "merchant", "host",
            "order_time")
OPTIONAL = ("platform", "buyer_name", "is_test")
ALIASES = {"anchor": "host"}  # header names some platforms use
# Columns compared to decide whether a re-imported order changed (source/imported_at are not).
CONTENT = ("phone", "product", "category", "price", "merchant", "host", "platform", "order_time",
           "buyer_name", "is_test", "extra")
_PHONE_CHARS = re.compile(r"\+?[0-9 ().\-]{5,30}")
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"", "0", "false", "no", "n", "f"}
REJECT_HEADER = ("line", "reason", "order_id", "raw")


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (unreadable, header lacks required columns)."""


class RowError(ValueError):
    """One row is bad; the message is the reason written to the rejects file."""


@dataclass
class ImportSummary:
    file: str
    rejects_file: str
    rows: int = 0  # data rows read
    inserted: int = 0
    updated: int = 0  # order id known, content changed (a newer export)
    unchanged: int = 0  # order id known with the same content (re-import)
    duplicates: int = 0  # identical repeat of an earlier row in the same file
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalise_phone(text: Any, region: str = "CN") -> str:
    """Local or international forms (13912345678, +86 139 1234 5678) -> E.164, or InvalidNumber."""
    raw = "" if text is None else str(text).strip()
    if not raw:
        raise InvalidNumber("empty phone number")
    if not _PHONE_CHARS.fullmatch(raw):
        raise InvalidNumber(f"invalid phone number {raw!r}: only digits, '+', spaces, "
                            "'-', '.', '(' and ')' are allowed")
    try:
        num = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumber(f"invalid phone number {raw!r}: {exc}") from exc
    if not phonenumbers.is_valid_number(num):
        raise InvalidNumber(f"invalid phone number {raw!r}: not a valid number")
    return parse_e164(phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164))


def parse_price(value: Any) -> float:
    text = str(value).strip().replace(",", "")
    text = re.sub(r"^(¥|￥|CNY|RMB)\s*", "", text, flags=re.I)
    text = re.sub(r"\s*元$", "", text)
    try:
        price = Decimal(text)
    except InvalidOperation as exc:
        raise RowError(f"bad price {value!r}") from exc
    if not price.is_finite() or price < 0 or price >= 10_000_000:
        raise RowError(f"bad price {value!r} (must be 0 <= price < 10,000,000)")
    return float(round(price, 2))


def parse_order_time(value: Any, default_tz: ZoneInfo) -> str:
    """ISO-ish date/time (or epoch seconds) -> UTC text 'YYYY-MM-DDTHH:MM:SS+00:00'.

    Stored in UTC so text order is time order; a time without offset is in ``default_tz``.
    """
    text = str(value).strip()
    try:
        if re.fullmatch(r"\d{10}(\d{3})?", text):
            dt = datetime.fromtimestamp(int(text[:10]), UTC)
        else:
            dt = datetime.fromisoformat(text.replace("/", "-"))
    except (ValueError, OverflowError) as exc:
        raise RowError(f"bad order_time {value!r} (expected ISO 8601, e.g. "
                       "2024-05-01 12:30:00 or 2024-05-01T12:30:00+08:00)") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=default_tz)
    if not 2000 <= dt.year <= 2100:
        raise RowError(f"bad order_time {value!r} (year out of range)")
    return dt.astimezone(UTC).isoformat(timespec="seconds")


def parse_bool(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    text = "" if value is None else str(value).strip().lower()
    if text in _TRUE:
        return 1
    if text in _FALSE:
        return 0
    raise RowError(f"bad is_test {value!r} (use 1/0, true/false, yes/no)")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value).strip()


def clean_row(row: dict[str, Any], region: str, tz: ZoneInfo) -> dict[str, Any]:
    """One raw row -> an ``orders`` row (without source/imported_at), or RowError."""
    row = {ALIASES.get(k, k): v for k, v in row.items() if k is not None}
    if any(isinstance(v, str) and "\ufffd" in v for v in row.values()):
        raise RowError("not valid UTF-8")
    missing = [k for k in REQUIRED if _text(row.get(k)) == ""]
    if missing:
        raise RowError(f"missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    try:
        phone = normalise_phone(row["phone"], region)
    except InvalidNumber as exc:
        raise RowError(str(exc)) from exc
    extra = {k: v for k, v in row.items()
             if k not in REQUIRED and k not in OPTIONAL and _text(v) != ""}
    return {
        "order_id": _text(row["order_id"]),
        "phone": phone,
        "product": _text(row["product"]),
        "category": _text(row["category"]),
        "price": parse_price(row["price"]),
        "merchant": _text(row["merchant"]),
        "host": _text(row["host"]),
        "platform": _text(row.get("platform")) or None,
        "order_time": parse_order_time(row["order_time"], tz),
        "buyer_name": _text(row.get("buyer_name")) or None,
        "is_test": parse_bool(row.get("is_test")),
        "extra": json.dumps(extra, ensure_ascii=False, sort_keys=True) if extra else None,
    }


class _Reader:
    """Yields (line number, row dict or None, raw text, error) and counts bytes for progress."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bytes_read = 0

    def _lines(self, fb: IO[bytes]) -> Iterator[str]:
        first = True
        for chunk in fb:
            self.bytes_read += len(chunk)
            if first and chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]
            first = False
            yield chunk.decode("utf-8", errors="replace")

    def rows(self) -> Iterator[tuple[int, dict[str, Any] | None, str, str]]:
        with self.path.open("rb") as fb:
            head = fb.read(4096).lstrip(b"\xef\xbb\xbf").lstrip()
            fb.seek(0)
            jsonl = self.path.suffix.lower() in (".jsonl", ".ndjson", ".json") or \
                head.startswith(b"{")
            yield from (self._json(fb) if jsonl else self._csv(fb))

    def _json(self, fb: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | None, str, str]]:
        for n, line in enumerate(self._lines(fb), start=1):
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                yield n, None, text, f"not valid JSON: {exc.msg}"
                continue
            if not isinstance(obj, dict):
                yield n, None, text, "not a JSON object"
                continue
            yield n, obj, text, ""

    def _csv(self, fb: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | None, str, str]]:
        reader = csv.reader(self._lines(fb))
        try:
            header = [ALIASES.get(h.strip(), h.strip()) for h in next(reader)]
        except StopIteration:
            return
        missing = [k for k in REQUIRED if k not in header]
        if missing:
            raise ImportFileError(f"{self.path}:1: header lacks required column(s) "
                                  f"{', '.join(missing)} (has: {', '.join(header)})")
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            raise ImportFileError(f"{self.path}:1: duplicate column(s) {', '.join(dupes)}")
        end = reader.line_num
        for fields in reader:
            start, end = end + 1, reader.line_num
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            raw = _csv_text(fields)
            if len(fields) != len(header):
                yield start, None, raw, (f"row has {len(fields)} fields, header has "
                                         f"{len(header)}")
                continue
            yield start, dict(zip(header, fields, strict=True)), raw, ""


def _csv_text(fields: list[str]) -> str:
    out: list[str] = []
    w = csv.writer(_ListWriter(out), lineterminator="")
    w.writerow(fields)
    return "".join(out)


class _ListWriter:
    def __init__(self, out: list[str]) -> None:
        self.out = out

    def write(self, s: str) -> int:
        self.out.append(s)
        return len(s)


_COLS = ("order_id", *CONTENT, "source", "imported_at")
_UPSERT = (
    f"INSERT INTO orders ({', '.join(_COLS)}) VALUES ({', '.join('?' * len(_COLS))}) "
    f"ON CONFLICT(order_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in (*CONTENT, "source", "imported_at"))
    + f" WHERE ({', '.join('orders.' + c for c in CONTENT)}) IS NOT "
    f"({', '.join('excluded.' + c for c in CONTENT)})"
)


class OrderIngest:
    """The one path every order takes into the ``orders`` table, whatever it came from (a file,
    an API batch): validation (:func:`clean_row`), repeats inside one input, rejects with their
    reason, batched upserts (one transaction each; an order id already stored with the same
    content is left as it is, so sending the same orders twice changes nothing)."""

    def __init__(self, db: sqlite_utils.Database, summary: ImportSummary, *, source: str,
                 region: str = "CN", default_tz: str = "Asia/Shanghai", batch_size: int = 5000,
                 on_reject: Callable[[int, str, str, str], None] | None = None,
                 own_transactions: bool = True) -> None:
        """``own_transactions=False``: the caller holds a transaction that the writes join."""
        self.db = db
        self.own_transactions = own_transactions
        self.summary = summary
        self.source = source
        self.region = region
        self.tz = ZoneInfo(default_tz)
        self.batch_size = batch_size
        self.on_reject = on_reject
        self.seen: dict[str, tuple[int, int]] = {}  # order id -> (line, hash of content)
        self.batch: list[tuple[Any, ...]] = []

    def reject(self, line: int, reason: str, order_id: str, raw: str) -> None:
        self.summary.rejected += 1
        key = reason.split(" '")[0].split(" (")[0]
        self.summary.reasons[key] = self.summary.reasons.get(key, 0) + 1
        if self.on_reject is not None:
            self.on_reject(line, reason, order_id, raw)

    def add(self, line: int, row: dict[str, Any] | None, raw: str, error: str = "") -> bool:
        """One input row (``line``: its line number or position). True when a batch was
        written."""
        self.summary.rows += 1
        order_id = _text(row.get("order_id")) if row else ""
        if error or row is None:
            self.reject(line, error or "not an object", order_id, raw)
            return False
        try:
            clean = clean_row(row, self.region, self.tz)
        except RowError as exc:
            self.reject(line, str(exc), order_id, raw)
            return False
        content = hash(tuple(clean[c] for c in CONTENT))
        first = self.seen.get(clean["order_id"])
        if first is not None:
            if first[1] == content:
                self.summary.duplicates += 1
            else:
                self.reject(line, f"duplicate order_id {clean['order_id']!r} with different "
                                  f"content (first at line {first[0]})", order_id, raw)
            return False
        self.seen[clean["order_id"]] = (line, content)
        self.batch.append((*(clean[c] for c in ("order_id", *CONTENT)), self.source, now_iso()))
        if len(self.batch) >= self.batch_size:
            self.flush()
            return True
        return False

    def flush(self) -> None:
        if self.batch:
            _write(self.db, self.batch, self.summary, self.own_transactions)
            self.batch = []


def import_orders(db: sqlite_utils.Database, path: str | Path, *,
                  rejects_path: str | Path | None = None, region: str = "CN",
                  default_tz: str = "Asia/Shanghai", batch_size: int = 5000,
                  progress: Callable[[int], None] | None = None) -> ImportSummary:
    """Import ``path``; bad rows go to ``rejects_path`` (default ``<file>.rejects.csv``).

    ``progress(bytes_read)`` is called after each batch.
    """
    path = Path(path)
    if not path.is_file():
        raise ImportFileError(f"{path}: no such file")
    rejects = Path(rejects_path) if rejects_path else path.with_name(path.name + ".rejects.csv")
    summary = ImportSummary(file=str(path), rejects_file=str(rejects))
    reader = _Reader(path)
    with rejects.open("w", newline="", encoding="utf-8") as rf:
        writer = csv.writer(rf)
        writer.writerow(REJECT_HEADER)
        ingest = OrderIngest(db, summary, source=str(path.resolve()), region=region,
                             default_tz=default_tz, batch_size=batch_size,
                             on_reject=lambda *row: writer.writerow(row))
        for line, row, raw, error in reader.rows():
            if ingest.add(line, row, raw, error) and progress:
                progress(reader.bytes_read)
        ingest.flush()
        if progress:
            progress(reader.bytes_read)
    return summary


@dataclass
class Reject:
    index: int  # position in the batch (0-based)
    order_id: str
    reason: str


def ingest_records(db: sqlite_utils.Database, records: list[Any], *, source: str,
                   region: str = "CN", default_tz: str = "Asia/Shanghai"
                   ) -> tuple[ImportSummary, list[Reject]]:
    """Import a batch of order objects (the API's ``POST /v1/orders``) through the same
    validation and upsert as a file; returns the summary and every reject with its position."""
    summary = ImportSummary(file=source, rejects_file="")
    rejects: list[Reject] = []
    ingest = OrderIngest(db, summary, source=source, region=region, default_tz=default_tz,
                         batch_size=max(1, len(records)),
                         on_reject=lambda line, reason, oid, _raw: rejects.append(
                             Reject(line, oid, reason)))
    for i, record in enumerate(records):
        if isinstance(record, dict):
            row = {k: v for k, v in record.items() if isinstance(k, str)}
            ingest.add(i, row, "")
        else:
            ingest.add(i, None, "", "not a JSON object")
    ingest.flush()
    return summary, rejects


def _write(db: sqlite_utils.Database, batch: list[tuple[Any, ...]], summary: ImportSummary,
           own_transaction: bool = True) -> None:
    conn = db.conn
    if own_transaction:
        conn.execute("BEGIN IMMEDIATE")
    try:
        ids = json.dumps([r[0] for r in batch], ensure_ascii=False)
        existing = conn.execute("SELECT count(*) FROM orders WHERE order_id IN "
                                "(SELECT value FROM json_each(?))", [ids]).fetchone()[0]
        before = conn.total_changes
        conn.executemany(_UPSERT, batch)
        changed = conn.total_changes - before
        if own_transaction:
            conn.execute("COMMIT")
    except BaseException:
        if own_transaction:
            conn.execute("ROLLBACK")
        raise
    inserted = len(batch) - existing
    summary.inserted += inserted
    summary.updated += changed - inserted
    summary.unchanged += existing - (changed - inserted)
