"""The order context a survey is rendered with, read from the shared ``orders`` table."""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils

from ivr.fields import clean_text

MAX_TEXT = 200


def order_context(db: sqlite_utils.Database, order_id: str | None,
                  **overrides: Any) -> dict[str, Any]:
    """Order fields (plus the JSON ``extra`` fields) for ``order_id``; ``overrides`` win.

    An unknown order gives just the overrides: the survey still runs, with empty fields.
    """
    row: dict[str, Any] = {}
    if order_id:
        found = db.execute("select * from orders where order_id = ?", [order_id])
        cols = [c[0] for c in found.description]
        hit = found.fetchone()
        if hit is not None:
            row = dict(zip(cols, hit, strict=True))
    extra = row.pop("extra", None)
    if extra:
        try:
            more = json.loads(extra)
        except json.JSONDecodeError:
            more = {}
        if isinstance(more, dict):
            row = {**more, **row}
    for key in ("source", "imported_at", "is_test"):
        row.pop(key, None)
    # Rows may come from elsewhere than the importer: text reaches prompts and channel variables
    # only cleaned of control characters and bounded (the importer's caps are far below this).
    row = {k: clean_text(v, MAX_TEXT) if isinstance(v, str) else v for k, v in row.items()}
    row.update({k: v for k, v in overrides.items() if v is not None})
    return row
