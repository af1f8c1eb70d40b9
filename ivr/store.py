"""The SQLite store (sqlite-utils): the one place that knows the core tables.

Every write that matters is committed before the next action, so a crash or a hangup loses nothing
already said. Feature modules that own further tables (campaign, caller-ID pool, outbox) create them
through :func:`register_schema` so one ``open_db`` call prepares the whole database.

Core tables
-----------
``calls``    one row per answered call handed to the AGI (id = Asterisk's unique id of the channel).
``answers``  one row per answer given inside a call, written the moment it is recognised.
``turns``    one row per voice turn: recognition result, confidence, latency heard by the caller.
``dnc``      the do-not-call list (E.164 numbers).

Campaign tables (shared by the campaign, caller-ID and report packages)
------------------------------------------------------------------------
``orders``    imported orders (one row per order id).
``campaigns`` one row per campaign (policy and script as configured when it was planned).
``contacts``  one row per (campaign, phone): who is called, segment, voice, caller ID, state.
``attempts``  one row per dial attempt: outcome, SIP code / Q.850 cause, timestamps.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from ivr.files import private_file

SchemaFn = Callable[[sqlite_utils.Database], None]
_SCHEMAS: list[SchemaFn] = []

# Call states as the AGI layer sees them.
CALL_IN_PROGRESS = "in_progress"
CALL_COMPLETED = "completed"  # the handler reached its end
CALL_HANGUP = "hangup"  # the callee hung up before the end
CALL_FAILED = "failed"  # the AGI could not run (e.g. daemon unreachable -> dialplan failure path)
CALL_ERROR = "error"  # our code failed; the call was ended cleanly


def iso(ts: datetime) -> str:
    """The stored text form of a time: UTC with milliseconds, sortable and comparable as text
    (a naive ``ts`` is taken as UTC)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    """The current time in the stored text form (see :func:`iso`)."""
    return iso(datetime.now(UTC))


def register_schema(fn: SchemaFn) -> SchemaFn:
    """Decorator for feature modules: ``fn(db)`` creates that module's tables if missing."""
    if fn not in _SCHEMAS:
        _SCHEMAS.append(fn)
    return fn


class StoreError(Exception):
    """The database cannot be used for this command; the message names the file, the cause and
    what to do. ``kind``: read-only | full | corrupt | cannot-open | locked | error."""

    def __init__(self, path: Path | None, kind: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.kind = kind


# Databases this process opened, newest last: a database error raised deep inside a command is
# reported with the file it most likely came from (a command works on one database).
_OPENED: list[Path] = []


def explain(exc: sqlite3.Error | StoreError, path: Path | None = None) -> StoreError:
    """A reason an operator can act on, for an SQLite error on ``path``."""
    if isinstance(exc, StoreError):
        return exc
    path = path or (_OPENED[-1] if _OPENED else None)
    where = str(path) if path else "the database"
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc)
    low = text.lower()
    if primary == sqlite3.SQLITE_READONLY or "readonly" in low or "read-only" in low:
        return StoreError(path, "read-only", (
            f"{where}: the database is read-only ({text}); this command writes to it and "
            "changed nothing. Read commands (ivr report, ivr status, ivr campaign status) still "
            "work. To write, make the file and its directory writable for the service user."))
    if primary == sqlite3.SQLITE_FULL or "disk is full" in low or (
            primary == sqlite3.SQLITE_IOERR and _disk_full(path)):
        return StoreError(path, "full", (
            f"{where}: the disk is full ({text}); nothing of the failed step was written. "
            "Free space on that disk, then run the command again."))
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or "malformed" in low \
            or "not a database" in low:
        return StoreError(path, "corrupt", (
            f"{where}: the file is not a usable ivr database ({text}); it was left untouched. "
            f"Move it aside (mv {where} {where}.corrupt) and restore it from a backup, or let ivr "
            f"start a new one; sqlite3 {where}.corrupt .recover can save the rows it still "
            "holds."))
    if primary == sqlite3.SQLITE_CANTOPEN or "unable to open" in low:
        return StoreError(path, "cannot-open", (
            f"{where}: cannot open the database ({text}): its directory must exist and be "
            "readable and writable for the service user."))
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in low:
        return StoreError(path, "locked", (
            f"{where}: another process kept the database locked for 30 s ({text}); try again "
            "when it has finished."))
    return StoreError(path, "error", f"{where}: database error: {text}")


def _read_only(path: Path) -> bool:
    """The file exists but cannot be written (its directory too: WAL needs -wal/-shm files)."""
    if not path.exists():
        return False
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return True
    except OSError:
        return False
    return not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))


def _disk_full(path: Path | None) -> bool:
    if path is None:
        return False
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


def open_db(path: str | Path, *, read_only_ok: bool = False) -> sqlite_utils.Database:
    """Open (and create) the database with WAL, foreign keys and every registered schema.

    Failures are :class:`StoreError` with a reason. ``read_only_ok``: a command that only reads
    gets a read-only connection when the file cannot be written (no schema changes then).
    """
    path = Path(path)
    try:
        return _open(path)
    except (sqlite3.Error, OSError) as exc:
        err = explain(exc, path) if isinstance(exc, sqlite3.Error) else StoreError(
            path, "cannot-open", f"{path}: cannot open the database: {exc}")
        if err.kind == "cannot-open" and _read_only(path):
            err = explain(sqlite3.OperationalError("read-only file or directory"), path)
        if read_only_ok and err.kind in ("read-only", "cannot-open", "full") and path.exists():
            return _open_read_only(path)
        raise err from exc


def _open(path: Path) -> sqlite_utils.Database:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        # Created 0600 before SQLite opens it; its -wal/-shm files take the same mode.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    with contextlib.suppress(OSError):  # a read-only file system: SQLite says so below
        private_file(path)
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
    try:
        db = sqlite_utils.Database(conn)
        db.execute("PRAGMA busy_timeout=30000")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        core_schema(db)
        for fn in _SCHEMAS:
            fn(db)
    except BaseException:
        conn.close()
        raise
    _OPENED.append(path)
    return db


def _open_read_only(path: Path) -> sqlite_utils.Database:
    """A read-only connection; ``immutable`` when even the WAL index cannot be created (a
    read-only file system, where nobody can write the file anyway)."""
    last: sqlite3.Error | None = None
    for options in ("mode=ro", "mode=ro&immutable=1"):
        uri = f"file:{urllib.parse.quote(str(path.resolve()))}?{options}"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            last = exc
            continue
        _OPENED.append(path)
        return sqlite_utils.Database(conn)
    assert last is not None
    raise explain(last, path) from last


@contextlib.contextmanager
def transaction(db: sqlite_utils.Database | sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT; joins a transaction already open. On an error the rollback
    never hides the cause (SQLite may have rolled back by itself, e.g. on a full disk)."""
    conn: sqlite3.Connection = db.conn if isinstance(db, sqlite_utils.Database) else db
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def add_missing_columns(db: sqlite_utils.Database, table: str, columns: dict[str, type]) -> None:
    """Add the columns a table lacks (databases made by an older version keep their rows)."""
    have = db[table].columns_dict
    for name, typ in columns.items():
        if name not in have:
            db[table].add_column(name, typ)  # type: ignore[union-attr]


def core_schema(db: sqlite_utils.Database) -> None:
    db.table("calls").create(
        {
            "id": str,  # Asterisk uniqueid of the answered channel
            "channel": str,
            "phone": str,  # E.164 of the callee
            "caller_id": str,
            "campaign_id": str,
            "contact_id": int,
            "attempt_id": int,
            "order_id": str,
            "script": str,
            "language": str,
            "transport": str,  # fastagi | classic
            "state": str,  # see CALL_* above
            "current_node": str,
            "outcome": str,  # survey outcome: completed, recovered, declined, opted_out, ...
            "satisfied": int,  # 1 / 0 / NULL (not asked or not answered)
            "remedy_offered": str,
            "remedy_accepted": str,  # refund | voucher | none | NULL
            "reason": str,
            "would_buy_again": int,
            "callback_at": str,
            "voice": str,
            "segment": str,
            "hangup_cause": str,
            "error": str,
            "started_at": str,
            "answered_at": str,
            "ended_at": str,
            "context": str,  # JSON: order fields the survey was rendered with
        },
        pk="id",
        if_not_exists=True,
    )
    db.table("answers").create(
        {
            "id": int,
            "call_id": str,
            "seq": int,  # order of the answer inside the call
            "node": str,
            "intent": str,
            "confidence": float,
            "transcript": str,
            "dtmf": str,
            "input_mode": str,  # voice | dtmf | none
            "recording": str,
            "tries": int,  # how many times the question was asked before this answer
            # 1: an unsure voice answer the caller confirmed ("배송 문제, 맞으세요?" - "네")
            "confirmed": int,
            "asked_at": str,
            "answered_at": str,
        },
        pk="id",
        foreign_keys=[("call_id", "calls", "id")],
        if_not_exists=True,
    )
    add_missing_columns(db, "answers", {"confirmed": int})  # databases made before confirmations
    # A retried AGI request (same call, same answer position) must not duplicate the answer.
    db.table("answers").create_index(["call_id", "seq"], unique=True, if_not_exists=True)
    # One row per voice turn (a question asked and heard): what the recogniser decided and how
    # long the caller waited for the prompt after their last answer. Read by /metrics.
    db.table("turns").create(
        {"id": int, "call_id": str, "node": str, "try": int, "result": str, "intent": str,
         "confidence": float, "latency_s": float, "barged_in": int, "at": str},
        pk="id", if_not_exists=True)
    db.table("turns").create_index(["call_id"], if_not_exists=True)
    db.table("dnc").create(
        {"phone": str, "reason": str, "source": str, "added_at": str},
        pk="phone",
        if_not_exists=True,
    )
    campaign_schema(db)


def campaign_schema(db: sqlite_utils.Database) -> None:
    db.table("orders").create(
        {
            "order_id": str,
            "phone": str,  # E.164
            "product": str,
            "category": str,
            "price": float,  # yuan
            "merchant": str,
            "host": str,  # live-stream host / anchor
            "platform": str,
            "order_time": str,  # ISO 8601 with offset
            "buyer_name": str,
            "is_test": int,  # test / internal account: never called
            "extra": str,  # JSON of further buyer fields
            "source": str,  # file it came from
            "imported_at": str,
        },
        pk="order_id",
        if_not_exists=True,
    )
    db.table("orders").create_index(["phone"], if_not_exists=True)
    db.table("campaigns").create(
        {
            "id": str,
            "name": str,
            "script": str,  # survey script path
            "language": str,
            "status": str,  # planned | running | paused | done | stopped
            "policy": str,  # JSON of the contact policy it was planned with
            "created_at": str,
            "starts_at": str,
            "ends_at": str,
        },
        pk="id",
        if_not_exists=True,
    )
    db.table("contacts").create(
        {
            "id": int,
            "campaign_id": str,
            "phone": str,
            "order_id": str,  # the order the call talks about (latest one)
            "segment": str,
            "voice": str,  # voice profile name
            "caller_id": str,  # sticky across retries
            "trunk": str,
            "region": str,
            "timezone": str,
            "state": str,  # pending | dialing | retry | done | failed | skipped | dnc
            "skip_reason": str,
            "attempts": int,
            "next_attempt_at": str,
            "final_outcome": str,
            "updated_at": str,
        },
        pk="id",
        if_not_exists=True,
    )
    db.table("contacts").create_index(["campaign_id", "phone"], unique=True, if_not_exists=True)
    db.table("contacts").create_index(["campaign_id", "state"], if_not_exists=True)
    db.table("attempts").create(
        {
            "id": int,
            "campaign_id": str,
            "contact_id": int,
            "phone": str,
            "caller_id": str,
            "trunk": str,
            "action_id": str,  # AMI ActionID of the Originate
            "channel": str,
            "uniqueid": str,  # = calls.id when answered
            "state": str,  # originating | ringing | answered | ended
            "outcome": str,  # answered | busy | no_answer | rejected | congestion | failed
            "sip_code": int,
            "q850_cause": int,
            "started_at": str,
            "answered_at": str,
            "ended_at": str,
            "duration_s": float,  # answered talk time
        },
        pk="id",
        if_not_exists=True,
    )
    db.table("attempts").create_index(["campaign_id", "contact_id"], if_not_exists=True)
    db.table("attempts").create_index(["caller_id", "started_at"], if_not_exists=True)


class CallRecorder:
    """Writes one call's progress as it happens; each method commits immediately."""

    def __init__(self, db: sqlite_utils.Database, call_id: str) -> None:
        self.db = db
        self.call_id = call_id

    def start(self, **fields: Any) -> None:
        """Create the call row, or take over the existing one (a retried AGI request)."""
        context = fields.pop("context", None)
        row = {"id": self.call_id, "state": CALL_IN_PROGRESS, **fields}
        if context is not None:
            row["context"] = json.dumps(context, ensure_ascii=False)
        existing = self.get()
        if existing is None:
            row.setdefault("started_at", now_iso())
            self.db.table("calls").insert(row)
        else:
            self.db.table("calls").update(self.call_id, row)

    def get(self) -> dict[str, Any] | None:
        try:
            return dict(self.db.table("calls").get(self.call_id))
        except sqlite_utils.db.NotFoundError:
            return None

    def update(self, **fields: Any) -> None:
        self.db.table("calls").update(self.call_id, fields)

    def next_seq(self) -> int:
        row = self.db.execute(
            "select coalesce(max(seq), 0) + 1 from answers where call_id = ?", [self.call_id]
        ).fetchone()
        return int(row[0])

    def answer(self, node: str, **fields: Any) -> int:
        """Store one answer now; returns its sequence number in the call."""
        seq = int(fields.pop("seq", 0)) or self.next_seq()
        row = {
            "call_id": self.call_id,
            "seq": seq,
            "node": node,
            "answered_at": now_iso(),
            **fields,
        }
        self.db.table("answers").upsert(row, pk=("call_id", "seq"), alter=False)
        self.db.table("calls").update(self.call_id, {"current_node": node})
        return seq

    def finish(self, state: str, **fields: Any) -> None:
        """Close the call; a later 'hangup' from the dialplan's h extension does not undo this."""
        current = self.get() or {}
        if current.get("ended_at") and current.get("state") != CALL_IN_PROGRESS:
            # Keep the first final state; only fill in what is still missing (e.g. hangup cause).
            extra = {k: v for k, v in fields.items() if not current.get(k)}
            if extra:
                self.update(**extra)
            return
        self.update(state=state, ended_at=now_iso(), **fields)

    def turn(self, **fields: Any) -> None:
        """Log one voice turn (see the ``turns`` table)."""
        self.db.table("turns").insert({"call_id": self.call_id, "at": now_iso(), **fields},
                                      alter=False)

    def answers(self) -> list[dict[str, Any]]:
        rows = self.db.table("answers").rows_where("call_id = ?", [self.call_id], order_by="seq")
        return list(rows)


def add_dnc(db: sqlite_utils.Database, phone: str, reason: str, source: str) -> None:
    row = {"phone": phone, "reason": reason, "source": source, "added_at": now_iso()}
    db.table("dnc").upsert(row, pk="phone")


def is_dnc(db: sqlite_utils.Database, phone: str) -> bool:
    return db.execute("select 1 from dnc where phone = ?", [phone]).fetchone() is not None
