"""Import orders from CSV or JSON lines into the ``orders`` table.

Every row ends up somewhere: imported (inserted, updated or unchanged), an identical repeat of an
earlier row in the same file, or a line of the rejects CSV with its line number and reason. The
file is streamed in batches; each batch is one transaction; importing a file twice changes nothing.

Order text is data that callers hear and operators read, so the import applies one policy
(:class:`ImportPolicy`, from ``ivr.yaml`` ``orders:``), and writes it at the top of the rejects
file: control characters and line breaks in text fields become a space (the row is kept), a text
field longer than its cap rejects the row, an order id outside its character set or an order time
in the future (beyond a small clock skew) rejects the row, and every repeated order id is listed
with the line of its first occurrence.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import sqlite_utils

from ivr import fields
from ivr.campaign.exports import (
    ColumnMap,
    ImportFileError,
    detect_encoding,
    encoding_name,
    xlsx_rows,
)
from ivr.phone import InvalidNumber, normalise_phone
from ivr.store import now_iso, transaction

# A survey needs who, what and when; category, merchant and host only enrich segments and
# reports, so a plain export without them imports (stored as '').
REQUIRED = ("order_id", "phone", "product", "price", "order_time")
OPTIONAL = ("category", "merchant", "host", "platform", "buyer_name", "is_test")
FIELDS = (*REQUIRED, *OPTIONAL)
# Columns compared to decide whether a re-imported order changed (source/imported_at are not).
CONTENT = ("phone", "product", "category", "price", "merchant", "host", "platform", "order_time",
           "buyer_name", "is_test", "extra")
_PRESETS = ColumnMap()  # the header presets alone
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"", "0", "false", "no", "n", "f"}
REJECT_HEADER = ("line", "reason", "order_id", "first_line", "raw")
# Text fields the policy cleans and caps (extra columns are cleaned, capped at the largest cap).
TEXT_FIELDS = ("product", "merchant", "host", "category", "platform", "buyer_name")
DEFAULT_CAPS = {"product": 60, "merchant": 30, "host": 20, "category": 20, "platform": 20,
                "buyer_name": 20}


@dataclass(frozen=True)
class ImportPolicy:
    """How text and times are treated; ``ivr.yaml`` ``orders:`` sets it (ivr.config)."""

    max_length: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_CAPS))
    future_skew_s: int = 600
    now: datetime | None = None  # the import's "now" (default: when it starts)

    @classmethod
    def from_settings(cls, orders: Any) -> ImportPolicy:
        return cls(max_length=orders.max_length.model_dump(), future_skew_s=orders.future_skew_s)

    def describe(self) -> list[str]:
        caps = ", ".join(f"{k} {v}" for k, v in self.max_length.items())
        return [
            "ivr campaign import policy (ivr.yaml orders:)",
            "text fields (" + ", ".join(TEXT_FIELDS) + " and extra columns): control characters "
            "and line breaks become one space and the row is kept; quotes and backslashes are "
            "kept as written",
            f"a text field longer than its cap rejects the row; caps in characters: {caps}",
            "order_id: 1-64 letters, digits and . _ : # / @ + -; anything else rejects the row",
            f"order_time more than {self.future_skew_s} s in the future rejects the row",
            "an order_id repeated in the file is listed with the line of its first occurrence "
            "(first_line): an identical repeat is imported once, a repeat with other content is "
            "rejected",
        ]


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
    encoding: str = ""  # as read: UTF-8, GBK, GB18030, xlsx

    @property
    def imported(self) -> int:
        return self.inserted + self.updated + self.unchanged

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def parse_order_time(value: Any, default_tz: ZoneInfo, latest: datetime | None = None) -> str:
    """ISO-ish date/time (or epoch seconds) -> UTC text 'YYYY-MM-DDTHH:MM:SS+00:00'.

    Stored in UTC so text order is time order; a time without offset is in ``default_tz``.
    ``latest``: a later time is a bad export (wrong clock or time zone) and rejects the row.
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
    if latest is not None and dt > latest:
        raise RowError(f"order_time in the future ({value!r} is {(dt - latest).total_seconds():.0f}"
                       " s past the allowed clock skew, ivr.yaml orders.future_skew_s)")
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


def _clean_value(value: Any, cap: int) -> Any:
    """Extra columns: strings cleaned and capped, nested JSON cleaned the same way."""
    if isinstance(value, str):
        return fields.clean_text(value, cap)
    if isinstance(value, dict):
        return {fields.clean_text(k, cap): _clean_value(v, cap) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean_value(v, cap) for v in value]
    return value


def clean_row(row: dict[str, Any], region: str, tz: ZoneInfo,
              policy: ImportPolicy | None = None, encoding: str = "UTF-8") -> dict[str, Any]:
    """One raw row -> an ``orders`` row (without source/imported_at), or RowError."""
    policy = policy or ImportPolicy()
    # API and event orders may use the export names too; resolving twice changes nothing.
    keys = [k for k in row if isinstance(k, str)]
    row = dict(zip(_PRESETS.resolve(keys), (row[k] for k in keys), strict=True))
    if any(isinstance(v, str) and "\ufffd" in v for v in row.values()):
        raise RowError(f"not valid {encoding}")
    text = {k: fields.clean_text(_text(row.get(k))) for k in (*TEXT_FIELDS, "order_id")}
    missing = [k for k in REQUIRED if (text[k] if k in text else _text(row.get(k))) == ""]
    if missing:
        raise RowError(f"missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    try:
        order_id = fields.order_id(_text(row["order_id"]))
    except fields.FieldError as exc:
        raise RowError(str(exc)) from exc
    for key in TEXT_FIELDS:
        cap = policy.max_length.get(key, DEFAULT_CAPS[key])
        if len(text[key]) > cap:
            raise RowError(f"{key} too long ({len(text[key])} characters; cap {cap}, ivr.yaml "
                           f"orders.max_length.{key})")
    try:
        phone = normalise_phone(row["phone"], region)
    except InvalidNumber as exc:
        raise RowError(str(exc)) from exc
    biggest = max(policy.max_length.values(), default=200)
    extra = {fields.clean_text(k, 64): _clean_value(v, biggest) for k, v in row.items()
             if k not in REQUIRED and k not in OPTIONAL and _text(v) != ""}
    now = policy.now or datetime.now(UTC)
    return {
        "order_id": order_id,
        "phone": phone,
        "product": text["product"],
        "category": text["category"],
        "price": parse_price(row["price"]),
        "merchant": text["merchant"],
        "host": text["host"],
        "platform": text["platform"] or None,
        "order_time": parse_order_time(row["order_time"], tz,
                                       now + timedelta(seconds=policy.future_skew_s)),
        "buyer_name": text["buyer_name"] or None,
        "is_test": parse_bool(row.get("is_test")),
        "extra": json.dumps(extra, ensure_ascii=False, sort_keys=True) if extra else None,
    }


class _Reader:
    """Yields (line number, row dict or None, raw text, error) and counts bytes for progress.

    A CSV is read in ``encoding`` (``auto``: :func:`exports.detect_encoding`); its header goes
    through the column mapping and the presets; an xlsx is read sheet row by sheet row (the line
    number is the sheet's row number)."""

    def __init__(self, path: Path, encoding: str = "auto",
                 columns: ColumnMap | None = None) -> None:
        self.path = path
        self.bytes_read = 0
        self.columns = columns or ColumnMap()
        self.xlsx = path.suffix.lower() in (".xlsx", ".xlsm")
        with path.open("rb") as fb:
            head = fb.read(4096).lstrip(b"\xef\xbb\xbf").lstrip()
        self.jsonl = not self.xlsx and (
            path.suffix.lower() in (".jsonl", ".ndjson", ".json") or head.startswith(b"{"))
        self.encoding = "xlsx" if self.xlsx else encoding_name(encoding)
        if self.encoding == "auto":
            # JSON is UTF-8 by definition (RFC 8259); a CSV's encoding is guessed.
            self.encoding = "utf-8" if self.jsonl else detect_encoding(path)

    @property
    def label(self) -> str:
        """The encoding as a reject reason names it ('not valid GB18030')."""
        return {"utf-8": "UTF-8", "utf-8-sig": "UTF-8", "gbk": "GBK",
                "gb18030": "GB18030"}.get(self.encoding, self.encoding)

    def _lines(self, fb: IO[bytes]) -> Iterator[str]:
        # Lines split on b"\n", which is never part of a GBK/GB18030 or UTF-8 character.
        first = True
        encoding = "utf-8" if self.encoding == "utf-8-sig" else self.encoding
        for chunk in fb:
            self.bytes_read += len(chunk)
            if first and chunk.startswith(b"\xef\xbb\xbf") and encoding == "utf-8":
                chunk = chunk[3:]
            first = False
            yield chunk.decode(encoding, errors="replace")

    def rows(self) -> Iterator[tuple[int, dict[str, Any] | None, str, str]]:
        if self.xlsx:
            yield from self._table(xlsx_rows(self.path, self.columns.sheet))
            self.bytes_read = self.path.stat().st_size
            return
        with self.path.open("rb") as fb:
            yield from (self._json(fb) if self.jsonl else self._csv(fb))

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
            keys = [k for k in obj if isinstance(k, str)]
            yield n, dict(zip(self.columns.resolve(keys), (obj[k] for k in keys),
                              strict=True)), text, ""

    def _csv(self, fb: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | None, str, str]]:
        reader = csv.reader(self._lines(fb))

        def numbered() -> Iterator[tuple[int, list[str]]]:
            end = 0
            for cells in reader:
                start, end = end + 1, reader.line_num
                yield start, cells

        yield from self._table(numbered())

    def _table(self, rows: Iterator[tuple[int, list[str]]]
               ) -> Iterator[tuple[int, dict[str, Any] | None, str, str]]:
        """Header row (the first non-empty one), then one row dict per line."""
        for line, cells in rows:
            if any(c.strip() for c in cells):
                header, header_line = self.columns.resolve(cells), line
                break
        else:
            return
        where = f"{self.path}:{header_line}"
        if any("\ufffd" in h for h in header):
            raise ImportFileError(f"{where}: header is not valid {self.label} text; pass "
                                  "--encoding (gbk, gb18030, utf-8)")
        missing = [k for k in REQUIRED if k not in header]
        if missing:
            raise ImportFileError(f"{where}: header lacks required column(s) "
                                  f"{', '.join(missing)} (has: {', '.join(header)}; map other "
                                  "names with --columns)")
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            raise ImportFileError(f"{where}: duplicate column(s) {', '.join(dupes)}")
        for line, cells in rows:
            if not cells or all(not c.strip() for c in cells):
                continue
            raw = _csv_text(cells)
            if len(cells) > len(header) or (len(cells) < len(header) and not self.xlsx):
                yield line, None, raw, (f"row has {len(cells)} fields, header has "
                                        f"{len(header)}")
                continue
            cells = cells + [""] * (len(header) - len(cells))  # xlsx: empty trailing cells
            yield line, dict(zip(header, cells, strict=True)), raw, ""


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


def read_rejects(path: str | Path) -> list[dict[str, str]]:
    """The rows of a rejects file (the policy lines at its top skipped)."""
    with Path(path).open(encoding="utf-8", newline="") as f:
        lines = iter(f)
        for first in lines:
            if not first.startswith("#"):
                break
        else:
            return []
        return list(csv.DictReader(itertools.chain([first], lines)))


class OrderIngest:
    """The one path every order takes into the ``orders`` table, whatever it came from (a file,
    an API batch, an event): the import policy (:func:`clean_row`), repeats inside one input
    (listed with the line of the first occurrence), rejects with their reason, batched upserts
    (an order id already stored with the same content is left as it is, so sending the same
    orders twice changes nothing). A write joins a transaction the caller already holds."""

    def __init__(self, db: sqlite_utils.Database, summary: ImportSummary, *, source: str,
                 region: str = "CN", default_tz: str = "Asia/Shanghai", batch_size: int = 5000,
                 on_reject: Callable[[int, str, str, str, int | None], None] | None = None,
                 policy: ImportPolicy | None = None) -> None:
        self.db = db
        self.summary = summary
        self.source = source
        self.region = region
        self.tz = ZoneInfo(default_tz)
        self.batch_size = batch_size
        self.on_reject = on_reject
        policy = policy or ImportPolicy()
        self.policy = policy if policy.now is not None else replace(policy,
                                                                     now=datetime.now(UTC))
        self.encoding = "UTF-8"  # what a row's undecodable bytes are reported as
        self.seen: dict[str, tuple[int, int]] = {}  # order id -> (line, hash of content)
        self.batch: list[tuple[Any, ...]] = []

    def reject(self, line: int, reason: str, order_id: str, raw: str,
               first_line: int | None = None, count: bool = True) -> None:
        """``count=False``: listed (an identical repeat, imported once) but not a reject."""
        if count:
            self.summary.rejected += 1
            key = reason.split(" '")[0].split(" (")[0]
            self.summary.reasons[key] = self.summary.reasons.get(key, 0) + 1
        if self.on_reject is not None:
            self.on_reject(line, reason, fields.clean_text(order_id, 80), raw, first_line)

    def add(self, line: int, row: dict[str, Any] | None, raw: str, error: str = "") -> bool:
        """One input row (``line``: its line number or position). True when a batch was
        written."""
        self.summary.rows += 1
        order_id = _text(row.get("order_id")) if row else ""
        if error or row is None:
            self.reject(line, error or "not an object", order_id, raw)
            return False
        try:
            clean = clean_row(row, self.region, self.tz, self.policy, self.encoding)
        except RowError as exc:
            self.reject(line, str(exc), order_id, raw)
            return False
        content = hash(tuple(clean[c] for c in CONTENT))
        first = self.seen.get(clean["order_id"])
        if first is not None:
            if first[1] == content:
                self.summary.duplicates += 1
                self.reject(line, f"repeat of line {first[0]} (identical: imported once)",
                            order_id, raw, first_line=first[0], count=False)
            else:
                self.reject(line, f"duplicate order_id {clean['order_id']!r} with different "
                                  f"content (first at line {first[0]})", order_id, raw,
                            first_line=first[0])
            return False
        self.seen[clean["order_id"]] = (line, content)
        self.batch.append((*(clean[c] for c in ("order_id", *CONTENT)), self.source, now_iso()))
        if len(self.batch) >= self.batch_size:
            self.flush()
            return True
        return False

    def flush(self) -> None:
        if self.batch:
            _write(self.db, self.batch, self.summary)
            self.batch = []


def import_orders(db: sqlite_utils.Database, path: str | Path, *,
                  rejects_path: str | Path | None = None, region: str = "CN",
                  default_tz: str = "Asia/Shanghai", batch_size: int = 5000,
                  progress: Callable[[int], None] | None = None,
                  policy: ImportPolicy | None = None, encoding: str = "auto",
                  columns: ColumnMap | None = None) -> ImportSummary:
    """Import ``path``; bad rows go to ``rejects_path`` (default ``<file>.rejects.csv``), whose
    first lines (``# ...``) state the policy; :func:`read_rejects` reads it back.

    ``progress(bytes_read)`` is called after each batch. ``encoding``: ``auto`` (detected, see
    :func:`exports.detect_encoding`), ``utf-8``, ``gbk`` or ``gb18030``; ``columns``: the
    export's header names (a column mapping file, :class:`exports.ColumnMap`).
    """
    path = Path(path)
    if not path.is_file():
        raise ImportFileError(f"{path}: no such file")
    rejects = Path(rejects_path) if rejects_path else path.with_name(path.name + ".rejects.csv")
    columns = columns or ColumnMap()
    # --encoding on the command line wins over the mapping file's, which wins over detection.
    reader = _Reader(path, (columns.encoding or encoding) if encoding == "auto" else encoding,
                     columns)
    summary = ImportSummary(file=str(path), rejects_file=str(rejects), encoding=reader.label)
    with rejects.open("w", newline="", encoding="utf-8") as rf:
        writer = csv.writer(rf)
        ingest = OrderIngest(
            db, summary, source=str(path.resolve()), region=region, default_tz=default_tz,
            batch_size=batch_size, policy=policy,
            on_reject=lambda line, reason, oid, raw, first: writer.writerow(
                (line, reason, oid, "" if first is None else first, raw)))
        ingest.encoding = reader.label
        rf.writelines(f"# {line}\n" for line in ingest.policy.describe())
        writer.writerow(REJECT_HEADER)
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
                   region: str = "CN", default_tz: str = "Asia/Shanghai",
                   policy: ImportPolicy | None = None) -> tuple[ImportSummary, list[Reject]]:
    """Import a batch of order objects (the API's ``POST /v1/orders``) through the same
    validation and upsert as a file; returns the summary and every reject with its position
    (an identical repeat inside the batch is imported once and not listed)."""
    summary = ImportSummary(file=source, rejects_file="")
    rejects: list[Reject] = []

    def on_reject(index: int, reason: str, oid: str, _raw: str, first: int | None) -> None:
        if not reason.startswith("repeat of line"):
            rejects.append(Reject(index, oid, reason))

    ingest = OrderIngest(db, summary, source=source, region=region, default_tz=default_tz,
                         batch_size=max(1, len(records)), on_reject=on_reject, policy=policy)
    for i, record in enumerate(records):
        if isinstance(record, dict):
            row = {k: v for k, v in record.items() if isinstance(k, str)}
            ingest.add(i, row, "")
        else:
            ingest.add(i, None, "", "not a JSON object")
    ingest.flush()
    return summary, rejects


def _write(db: sqlite_utils.Database, batch: list[tuple[Any, ...]], summary: ImportSummary) -> None:
    conn = db.conn
    # transaction(): a full disk makes SQLite roll back by itself; the cause is what is raised.
    with transaction(conn):
        ids = json.dumps([r[0] for r in batch], ensure_ascii=False)
        existing = conn.execute("SELECT count(*) FROM orders WHERE order_id IN "
                                "(SELECT value FROM json_each(?))", [ids]).fetchone()[0]
        before = conn.total_changes
        conn.executemany(_UPSERT, batch)
        changed = conn.total_changes - before
    inserted = len(batch) - existing
    summary.inserted += inserted
    summary.updated += changed - inserted
    summary.unchanged += existing - (changed - inserted)
