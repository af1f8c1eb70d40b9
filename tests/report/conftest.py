"""Fixtures of the report tests: a hand-made campaign of 9 contacts, 12 attempts, 8 calls and
7 orders (test_report_model.py has the figures computed by hand from exactly these rows)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlite_utils

from ivr.store import open_db
from ivr.webhooks.store import enqueue  # (also registers the webhooks table)

CID1, CID2 = "+861080000001", "+861080000002"

# contact id: (segment, voice, caller_id, region, timezone, phone, order)
CONTACTS = {
    1: ("A", "female", CID1, "Beijing", "Asia/Shanghai", "+8613900000001", "o1"),
    2: ("A", "female", CID1, "Beijing", "Asia/Shanghai", "+8613900000002", "o2"),
    3: ("A", "male", CID2, "Shanghai", "Asia/Shanghai", "+8613900000003", "o3"),
    4: ("B", "male", CID2, "Shanghai", "Asia/Shanghai", "+8613900000004", "o4"),
    5: ("B", "female", CID1, None, "Asia/Shanghai", "+8613900000005", "o5"),
    6: ("B", "female", CID1, "Beijing", "Asia/Shanghai", "+8613900000006", None),
    7: ("B", "male", CID2, "Shanghai", "Asia/Shanghai", "+8613900000007", None),
    8: ("A", "female", CID1, "Beijing", "Asia/Shanghai", "+8613900000008", "o6"),
    # no time zone stored: the hour comes from the number's own zone (+86 -> Asia/Shanghai)
    9: ("A", "male", CID2, "Shanghai", None, "+8613900000009", "o7"),
}

# order: (merchant, host)
ORDERS = {"o1": ("M1", "H1"), "o2": ("M1", "H1"), "o3": ("M2", "H1"), "o4": ("M2", "H2"),
          "o5": ("M3", "H2"), "o6": ("M2", "H2"), "o7": ("M3", "H1")}

# attempt: (contact, UTC start, outcome, call id or None); Shanghai local = UTC + 8h
ATTEMPTS = [
    (1, "2024-05-01T01:00:00.000Z", "no_answer", None),  # 09h
    (1, "2024-05-01T02:10:00.000Z", "answered", "k1"),  # 10h
    (2, "2024-05-01T02:30:00.000Z", "answered", "k2"),  # 10h
    (3, "2024-05-01T03:00:00.000Z", "busy", None),  # 11h
    (3, "2024-05-01T06:00:00.000Z", "answered", "k3"),  # 14h
    (4, "2024-05-01T06:20:00.000Z", "answered", "k4"),  # 14h
    (5, "2024-05-01T06:40:00.000Z", "answered", "k5"),  # 14h
    (6, "2024-05-01T01:30:00.000Z", "no_answer", None),  # 09h
    (6, "2024-05-01T07:00:00.000Z", "rejected", None),  # 15h
    (8, "2024-05-01T02:50:00.000Z", "answered", "k8a"),  # 10h
    (8, "2024-05-01T07:30:00.000Z", "answered", "k8b"),  # 15h
    (9, "2024-05-01T03:10:00.000Z", "answered", "k9"),  # 11h
]

# call: (outcome, state, satisfied, remedy_offered, remedy_accepted, would_buy_again, reason)
CALLS = {
    "k1": ("completed", "completed", 1, None, None, 1, None),
    "k2": ("recovered", "completed", 0, "refund,voucher", "voucher", 1, "质量差"),
    "k3": ("completed", "completed", 0, "refund,voucher", "none", 0, "发货慢"),
    "k4": (None, "hangup", 0, "refund,voucher", "refund", None, "质量差"),
    "k5": ("machine", "completed", None, None, None, None, None),
    "k8a": ("callback_requested", "completed", None, None, None, None, None),
    "k8b": ("completed", "completed", 0, "refund,voucher", "refund", 1, "包装破损"),
    "k9": ("declined", "completed", None, None, None, None, None),
}

# open answers: (call, seq, node, transcript, recording)
ANSWERS = [
    ("k1", 1, "satisfaction", "满意", ""),
    ("k1", 2, "suggestions", "希望包装更好", ""),
    ("k2", 3, "suggestions", "", ""),  # said nothing: not listed
    ("k3", 2, "reason", "发货太慢了", ""),  # not an open node
    ("k3", 3, "suggestions", "", "/var/ivr/recordings/k3-suggestions.wav"),
]


def fill(db: sqlite_utils.Database, campaign: str = "c1") -> None:
    db["campaigns"].insert({"id": campaign, "name": "五一回访 <test>", "status": "running"})
    for oid, (merchant, host) in ORDERS.items():
        db["orders"].insert({"order_id": oid, "merchant": merchant, "host": host,
                             "product": "商品" + oid, "price": 99.0})
    for cid, (seg, voice, caller, region, tz, phone, order) in CONTACTS.items():
        db["contacts"].insert({"id": cid, "campaign_id": campaign, "phone": phone,
                               "segment": seg, "voice": voice, "caller_id": caller,
                               "region": region, "timezone": tz, "order_id": order,
                               "state": "done"})
    for aid, (contact, start, outcome, call) in enumerate(ATTEMPTS, 1):
        phone = CONTACTS[contact][5]
        db["attempts"].insert({"id": aid, "campaign_id": campaign, "contact_id": contact,
                               "phone": phone, "caller_id": CONTACTS[contact][2],
                               "outcome": outcome, "started_at": start, "uniqueid": call,
                               "state": "ended"})
        if call:
            out, state, sat, offered, accepted, wba, reason = CALLS[call]
            db["calls"].insert({
                "id": call, "phone": phone, "campaign_id": campaign, "contact_id": contact,
                "attempt_id": aid, "order_id": CONTACTS[contact][6], "outcome": out,
                "state": state, "satisfied": sat, "remedy_offered": offered,
                "remedy_accepted": accepted, "would_buy_again": wba, "reason": reason,
                "started_at": start, "segment": CONTACTS[contact][0],
                "voice": CONTACTS[contact][1], "caller_id": CONTACTS[contact][2]})
    for call, seq, node, transcript, recording in ANSWERS:
        db["answers"].insert({"call_id": call, "seq": seq, "node": node,
                              "transcript": transcript, "recording": recording,
                              "answered_at": f"2024-05-01T08:00:{seq:02d}.000Z"})


@pytest.fixture()
def db(tmp_path: Path) -> sqlite_utils.Database:
    database = open_db(tmp_path / "ivr.db")
    fill(database)
    # noise from another campaign must not leak into c1's figures
    database["campaigns"].insert({"id": "other", "name": "other", "status": "done"})
    database["contacts"].insert({"id": 100, "campaign_id": "other", "phone": "+8613900000001",
                                 "state": "done"})
    database["attempts"].insert({"id": 100, "campaign_id": "other", "contact_id": 100,
                                 "outcome": "answered", "started_at": "2024-05-01T02:00:00Z"})
    database["calls"].insert({"id": "x1", "campaign_id": "other", "contact_id": 100,
                              "attempt_id": 100, "outcome": "completed", "satisfied": 0})
    # webhook deliveries of c1 (what the service queued), and one of the other campaign
    for key, campaign in (("a1", "c1"), ("a2", "c1"), ("o1", "other")):
        enqueue(database, "call.finished", {}, dedup_key=key, endpoint="call_finished",
                campaign_id=campaign)
    database.execute("UPDATE webhooks SET state = 'delivered' WHERE dedup_key = 'a1'")
    return database


@pytest.fixture()
def fill_db() -> Callable[..., None]:
    """The function that writes the hand-made campaign into a database."""
    return fill
