"""Structured logs: one JSON object per line, to a rotating file and (under systemd) to journald.

Every record carries ``ts``, ``level``, ``logger`` and ``msg``; whatever a caller passes in
``extra=`` (``event``, ``campaign``, ``attempt`` ...) becomes a field of its own, so a call's
summary line (``event: call.summary``) is greppable and machine-readable. Under systemd
(``JOURNAL_STREAM`` set) the same lines go to stderr, which journald stores; otherwise stderr
gets a short human form.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
from pathlib import Path
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(), "logger": record.name,
            "msg": record.getMessage()}
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool | None) \
                    else str(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        # One line per event whatever the message holds (newlines in names stay escaped).
        return json.dumps(out, ensure_ascii=False, default=str)


class _PrivateRotatingHandler(logging.handlers.RotatingFileHandler):
    """Every file it opens (the first and each one after a rollover) is owner read/write,
    group read: the log names campaigns and carries masked numbers."""

    def _open(self) -> Any:
        stream = super()._open()
        os.chmod(self.baseFilename, 0o640)
        return stream


def configure(log_file: Path, *, max_bytes: int, backups: int, level: int = logging.INFO,
              console: bool = True) -> logging.Handler:
    """Route the root logger to ``log_file`` (rotated, mode 0640) and stderr; returns the file
    handler."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handler = _PrivateRotatingHandler(log_file, maxBytes=max_bytes, backupCount=backups,
                                      encoding="utf-8")
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    if console:
        err = logging.StreamHandler(sys.stderr)
        if os.environ.get("JOURNAL_STREAM"):
            err.setFormatter(JsonFormatter())  # journald keeps the structured line
        else:
            err.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(err)
    root.setLevel(level)
    # uvicorn's access log is one line per request: keep it, structured like the rest.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    return handler
