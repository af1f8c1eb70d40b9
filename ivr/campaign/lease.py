"""One campaign runner per campaign: a lease row with a heartbeat.

Two ``ivr campaign run`` processes on the same campaign would each see the same due contacts and
dial them twice, so ``run`` first takes the campaign's lease. A lease is free when nobody holds it,
when its holder stopped renewing it (``stale_s``), or when the holder's process on this host is
gone (a ``kill -9`` leaves the row behind; the next run must not wait for it to go stale).
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlite_utils

from ivr.campaign.policy import iso, parse_iso
from ivr.store import register_schema, transaction

DEFAULT_STALE_S = 30.0


class LeaseHeld(Exception):
    """Another live runner holds the campaign; the message says who and since when."""


@register_schema
def lease_schema(db: sqlite_utils.Database) -> None:
    db.table("campaign_leases").create(
        {"campaign_id": str, "owner": str, "host": str, "pid": int, "acquired_at": str,
         "heartbeat_at": str},
        pk="campaign_id", if_not_exists=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@dataclass
class CampaignLease:
    db: sqlite_utils.Database
    campaign_id: str
    stale_s: float = DEFAULT_STALE_S
    owner: str = ""

    def __post_init__(self) -> None:
        self.owner = self.owner or uuid.uuid4().hex
        self.host = socket.gethostname()
        self.pid = os.getpid()

    def acquire(self, now: datetime | None = None) -> None:
        """Take the lease or raise :class:`LeaseHeld`."""
        moment = now or datetime.now(UTC)
        lease_schema(self.db)
        with transaction(self.db):
            row = self.db.conn.execute(
                "SELECT owner, host, pid, heartbeat_at FROM campaign_leases WHERE campaign_id = ?",
                [self.campaign_id]).fetchone()
            if row is not None and row[0] != self.owner:
                self._refuse_if_live(row, moment)
            self.db.conn.execute(
                "INSERT INTO campaign_leases (campaign_id, owner, host, pid, acquired_at, "
                "heartbeat_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(campaign_id) DO UPDATE SET "
                "owner = excluded.owner, host = excluded.host, pid = excluded.pid, "
                "acquired_at = excluded.acquired_at, heartbeat_at = excluded.heartbeat_at",
                [self.campaign_id, self.owner, self.host, self.pid, iso(moment), iso(moment)])

    def _refuse_if_live(self, row: tuple[str, str, int, str], now: datetime) -> None:
        _owner, host, pid, beat = row
        last = parse_iso(beat) if beat else None
        age = (now - last).total_seconds() if last else float("inf")
        if age > self.stale_s:
            return  # its holder stopped renewing it
        if host == self.host and pid != self.pid and not _pid_alive(int(pid)):
            return  # its holder died on this host
        raise LeaseHeld(
            f"campaign {self.campaign_id} is already being dialed by process {pid} on {host} "
            f"(last heartbeat {age:.0f} s ago); stop that run first, or wait "
            f"{max(0.0, self.stale_s - age):.0f} s if it is gone")

    def heartbeat(self, now: datetime | None = None) -> bool:
        """Renew; False when the lease was taken over (the caller must stop dialing)."""
        moment = now or datetime.now(UTC)
        cur = self.db.execute(
            "UPDATE campaign_leases SET heartbeat_at = ? WHERE campaign_id = ? AND owner = ?",
            [iso(moment), self.campaign_id, self.owner])
        return cur.rowcount == 1

    def release(self) -> None:
        self.db.execute("DELETE FROM campaign_leases WHERE campaign_id = ? AND owner = ?",
                        [self.campaign_id, self.owner])


def lease_holder(db: sqlite_utils.Database, campaign_id: str) -> dict[str, object] | None:
    """The lease row (for ``status``), or None."""
    lease_schema(db)
    cur = db.execute("SELECT * FROM campaign_leases WHERE campaign_id = ?", [campaign_id])
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cur.description], row, strict=True))


def heartbeat_interval(stale_s: float) -> float:
    """Renew well inside the stale period (three beats may be missed)."""
    return max(0.2, stale_s / 4)


