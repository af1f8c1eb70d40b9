"""Which buyers get a follow-up message, from what the campaign stored.

* ``remedy_refund`` / ``remedy_voucher``: a buyer who accepted a remedy on the call gets a
  confirmation (one per contact and remedy).
* ``h5``: a contact the campaign did not call because of a listed skip reason (region rules,
  SMS opt-in; ``h5_skip_reasons`` in config/outbox.yaml) gets the H5 survey link instead.

Texts come from ``templates`` in config/outbox.yaml; a kind without a template is counted, not
sent. Dedup keys make this safe to run again and again.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import sqlite_utils

from ivr.outbox.config import OutboxConfig
from ivr.outbox.store import enqueue
from ivr.phone import InvalidNumber
from ivr.store import is_dnc

# explicit: orders has its own phone column, which must not shadow the callee's
_ORDER_COLS = "o.order_id, o.product, o.price, o.merchant, o.host, o.buyer_name"
REMEDY_TEXT = {"refund": "退款", "voucher": "10元优惠券"}


def queue_followups(db: sqlite_utils.Database, campaign_id: str, config: OutboxConfig, *,
                    platform: str = "", h5_url: str | None = None) -> dict[str, int]:
    """Queue the campaign's follow-up messages; returns counts (queued, no_template, dnc, ...)."""
    counts: Counter[str] = Counter()
    remedies = db.execute(
        f"""SELECT c.id, c.contact_id, c.phone, c.remedy_accepted, {_ORDER_COLS}
           FROM calls c LEFT JOIN orders o ON o.order_id = c.order_id
           WHERE c.campaign_id = ? AND c.remedy_accepted IN ('refund', 'voucher')
           ORDER BY c.started_at, c.id""", [campaign_id])
    names = [d[0] for d in remedies.description]
    for row in remedies.fetchall():
        data = dict(zip(names, row, strict=True))
        remedy = data["remedy_accepted"]
        who = data["contact_id"] if data["contact_id"] is not None else data["id"]
        _queue(db, config, counts, kind=f"remedy_{remedy}", phone=data["phone"],
               campaign_id=campaign_id, contact_id=data["contact_id"],
               dedup_key=f"remedy:{campaign_id}:{who}:{remedy}",
               fields={**_order_fields(data), "remedy": remedy,
                       "remedy_text": REMEDY_TEXT[remedy], "platform": platform,
                       "h5_url": h5_url or config.h5_url or ""})
    if config.h5_skip_reasons:
        skipped = db.execute(
            f"""SELECT ct.id AS contact_id, ct.phone, ct.skip_reason, {_ORDER_COLS}
               FROM contacts ct LEFT JOIN orders o ON o.order_id = ct.order_id
               WHERE ct.campaign_id = ? AND ct.skip_reason IS NOT NULL ORDER BY ct.id""",
            [campaign_id])
        names = [d[0] for d in skipped.description]
        for row in skipped.fetchall():
            data = dict(zip(names, row, strict=True))
            if not any(str(data["skip_reason"]).startswith(p) for p in config.h5_skip_reasons):
                continue
            if _has_region_message(db, campaign_id, data["contact_id"]):
                # the region rule's own message went out instead of the call: one is enough
                counts["region_message"] += 1
                continue
            _queue(db, config, counts, kind="h5", phone=data["phone"], campaign_id=campaign_id,
                   contact_id=data["contact_id"],
                   dedup_key=f"h5:{campaign_id}:{data['contact_id']}",
                   fields={**_order_fields(data), "platform": platform,
                           "h5_url": h5_url or config.h5_url or ""})
    return dict(counts)


def _has_region_message(db: sqlite_utils.Database, campaign_id: str, contact_id: int) -> bool:
    return db.execute("SELECT 1 FROM outbox WHERE campaign_id = ? AND contact_id = ? AND "
                      "kind = 'region_message' LIMIT 1", [campaign_id, contact_id]).fetchone() \
        is not None


def _order_fields(data: dict[str, Any]) -> dict[str, Any]:
    price = data.get("price")
    return {"product": data.get("product") or "", "merchant": data.get("merchant") or "",
            "host": data.get("host") or "", "order_id": data.get("order_id") or "",
            "buyer_name": data.get("buyer_name") or "",
            "price": "" if price is None else f"{price:g}"}


def _queue(db: sqlite_utils.Database, config: OutboxConfig, counts: Counter[str], *, kind: str,
           phone: str, campaign_id: str, contact_id: int | None, dedup_key: str,
           fields: dict[str, Any]) -> None:
    template = config.templates.get(kind)
    if template is None:
        counts["no_template"] += 1
        return
    if kind == "h5" and not fields.get("h5_url"):
        counts["no_h5_url"] += 1
        return
    if is_dnc(db, phone or ""):
        counts["dnc"] += 1
        return
    try:
        enqueue(db, phone, template.format(**fields), kind=kind, campaign_id=campaign_id,
                contact_id=contact_id, dedup_key=dedup_key)
    except (InvalidNumber, ValueError):
        counts["bad_number"] += 1
        return
    counts["queued"] += 1
