"""What the campaign package adds to the shared tables (columns only if missing, plus indexes)."""

from __future__ import annotations

import sqlite_utils

from ivr.store import add_missing_columns, register_schema

# table -> column -> type; added with add_column only when missing.
EXTRA_COLUMNS: dict[str, dict[str, type]] = {
    "contacts": {"context": str},  # JSON: other order ids in the window, RFM scores
    # status_reason: why a campaign stopped (circuit breaker, bad policy); kind: batch | event |
    # recurring, source: the event rule / recurring entry that made it, day: an event
    # campaign's local day (it takes contacts until the day is over)
    "campaigns": {"status_reason": str, "kind": str, "source": str, "day": str},
    "attempts": {"detail": str},  # e.g. "campaign runner stopped during the attempt; ..."
}


@register_schema
def campaign_extras(db: sqlite_utils.Database) -> None:
    for table, cols in EXTRA_COLUMNS.items():
        add_missing_columns(db, table, cols)
    # Caps count every attempt to a number: look them up by phone and time.
    db.execute("CREATE INDEX IF NOT EXISTS idx_attempts_phone_started "
               "ON attempts(phone, started_at)")
    # Selection groups orders by phone: a covering index makes that a pure index scan
    # (2-3x less CPU than visiting every order row at a million buyers).
    db.execute("CREATE INDEX IF NOT EXISTS idx_orders_selection ON orders(phone, order_time, "
               "order_id, price, category)")
    # The runner's "who is due" query, without scanning finished contacts.
    db.execute("CREATE INDEX IF NOT EXISTS idx_contacts_due ON contacts(campaign_id, "
               "next_attempt_at) WHERE state IN ('pending', 'retry')")
