"""The campaign runner: picks due contacts, re-checks the policy, dials through an Originator.

Crash safety: the attempt row (state ``originating``) and the contact's ``dialing`` state are
committed in one transaction *before* ``dial()`` is awaited, and the result in one transaction
when it returns. After a crash, :meth:`CampaignRunner.recover` resolves every attempt still open:
answered if the survey recorded a call for it, otherwise ``failed`` with a note; it counts
against the contact's budget and caps, and a retry waits for the normal backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlite_utils

from ivr.call.variables import CallVariables, VariableError
from ivr.campaign.lease import DEFAULT_STALE_S, CampaignLease, LeaseHeld, heartbeat_interval
from ivr.campaign.planner import (
    DONE,
    PAUSED,
    PLANNED,
    RUNNING,
    STOPPED,
    CallerIdPicker,
    RegionDecider,
    decision_allows,
)
from ivr.campaign.policy import ContactPolicy, PolicyConfig, Retry, iso, parse_iso, policy_from_json
from ivr.campaign.yamlcfg import CampaignConfigError
from ivr.dialer.types import DialResult, Originator
from ivr.errors import StateError
from ivr.store import now_iso, transaction

log = logging.getLogger(__name__)

OPEN_STATES = ("pending", "retry", "dialing")
LOST_DETAIL = "campaign runner stopped during the attempt; outcome unknown"
HealthHook = Callable[[], Awaitable[None]]
# Raises (any exception, its text is the reason) when a caller ID must not be presented now.
CallerIdCheck = Callable[[str], None]
# Called with the contact row and the region decision when a region rule rules a call out.
SkipHook = Callable[[Mapping[str, Any], Any], None]


class CampaignError(StateError):
    """The campaign cannot run (unknown id, wrong status, invalid stored policy)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


# ---- campaign status (also used by the CLI) ------------------------------------------------
def get_campaign(db: sqlite_utils.Database, campaign_id: str) -> dict[str, Any]:
    row = db.execute("SELECT * FROM campaigns WHERE id = ?", [campaign_id]).fetchone()
    if row is None:
        raise CampaignError(f"no campaign {campaign_id!r}")
    cols = [d[0] for d in db.execute("SELECT * FROM campaigns LIMIT 0").description]
    return dict(zip(cols, row, strict=True))


def set_status(db: sqlite_utils.Database, campaign_id: str, status: str,
               reason: str | None = None) -> None:
    db.execute("UPDATE campaigns SET status = ?, status_reason = ? WHERE id = ?",
               [status, reason, campaign_id])


def pause(db: sqlite_utils.Database, campaign_id: str) -> str:
    """Stop new dials (calls in progress finish). Returns the previous status."""
    status = get_campaign(db, campaign_id)["status"]
    if status not in (PLANNED, RUNNING, PAUSED):
        raise CampaignError(f"campaign {campaign_id} is {status}; only a planned or running "
                            "campaign can be paused")
    set_status(db, campaign_id, PAUSED, "paused by operator")
    return str(status)


def resume(db: sqlite_utils.Database, campaign_id: str) -> str:
    """Paused or stopped (e.g. by the circuit breaker) -> running. Returns the previous status."""
    status = get_campaign(db, campaign_id)["status"]
    if status not in (PAUSED, STOPPED, RUNNING):
        raise CampaignError(f"campaign {campaign_id} is {status}; only a paused or stopped "
                            "campaign can be resumed")
    set_status(db, campaign_id, RUNNING, None)
    return str(status)


def load_campaign_policy(db: sqlite_utils.Database, campaign_id: str) -> ContactPolicy:
    """The campaign's stored policy, validated. Invalid: the campaign is stopped with the error
    (so nothing dials) and :class:`CampaignConfigError` is raised."""
    camp = get_campaign(db, campaign_id)
    try:
        config, segments = policy_from_json(camp["policy"], f"campaign {campaign_id}")
        ends_at = parse_iso(camp["ends_at"]) if camp.get("ends_at") else None
    except (CampaignConfigError, ValueError) as exc:
        set_status(db, campaign_id, STOPPED, f"invalid policy: {exc}")
        raise CampaignConfigError(str(exc)) from exc
    return ContactPolicy(config, segments, db=db, ends_at=ends_at)


# ---- what happens after an attempt ----------------------------------------------------------
@dataclass(frozen=True)
class NextStep:
    state: str  # done | failed | retry
    final_outcome: str | None
    backoff_s: float | None  # for retry


def is_explicit_rejection(result: DialResult, retry: Retry) -> bool:
    if result.outcome == "failed" and (result.refused or result.cause_text.startswith("refused")):
        # The dialplan guard refused (e.g. a caller ID flagged a moment ago; reported with
        # Q.850 21): the callee declined nothing, so a retry (on another number) is due.
        return False
    return (result.outcome == "rejected"
            or (result.sip_code is not None and result.sip_code in retry.no_retry_sip)
            or (result.q850_cause is not None and result.q850_cause in retry.no_retry_q850))


def next_step(result: DialResult, attempts_done: int, retry: Retry) -> NextStep:
    """One retry budget per contact: ``attempts_done`` counts every attempt, any outcome."""
    if result.outcome == "answered":
        return NextStep("done", "answered", None)
    if is_explicit_rejection(result, retry):
        return NextStep("done", "rejected", None)
    if attempts_done >= retry.max_attempts:
        return NextStep("failed", result.outcome, None)
    return NextStep("retry", None, retry.backoff(result.outcome, attempts_done))


@dataclass
class RunStats:
    dialed: int = 0
    answered: int = 0
    rejected: int = 0
    retries_scheduled: int = 0
    failed_final: int = 0
    deferred_by_policy: int = 0
    skipped: int = 0
    recovered: int = 0
    max_in_flight: int = 0
    status: str = ""
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class CampaignRunner:
    def __init__(self, db: sqlite_utils.Database, campaign_id: str, originator: Originator, *,
                 max_concurrent: int | None = None, cps: float | None = None,
                 clock: Callable[[], datetime] = utcnow, poll_interval_s: float = 1.0,
                 region_decider: RegionDecider | None = None,
                 caller_id_picker: CallerIdPicker | None = None,
                 default_caller_id: str = "+8610000000", default_trunk: str = "carrier",
                 health_hook: HealthHook | None = None, health_interval_s: float = 60.0,
                 caller_id_check: CallerIdCheck | None = None,
                 on_region_skip: SkipHook | None = None,
                 lease_stale_s: float | None = DEFAULT_STALE_S,
                 stop_when_idle: bool = False,
                 keep_open: Callable[[], bool] | None = None) -> None:
        """``keep_open``: while it returns True, a campaign with nothing left to dial waits for
        new contacts instead of finishing (event-triggered campaigns take contacts all day)."""
        self.db = db
        self.campaign_id = campaign_id
        self.originator = originator
        self.clock = clock
        self.poll_interval_s = poll_interval_s
        self.region_decider = region_decider
        self.caller_id_picker = caller_id_picker
        self.default_caller_id = default_caller_id
        self.default_trunk = default_trunk
        self.health_hook = health_hook
        self.health_interval_s = health_interval_s
        self.caller_id_check = caller_id_check
        self.on_region_skip = on_region_skip
        # None: no lease (only for tests that drive two runners on purpose)
        self.lease = CampaignLease(db, campaign_id, lease_stale_s) if lease_stale_s else None
        self.stop_when_idle = stop_when_idle
        self.keep_open = keep_open
        self.stats = RunStats()
        self.policy = load_campaign_policy(db, campaign_id)
        cfg: PolicyConfig = self.policy.config
        self.max_concurrent = max_concurrent or cfg.dialer.max_concurrent
        self.cps = cps or cfg.dialer.cps
        if self.max_concurrent < 1 or self.cps <= 0:
            raise CampaignError("max_concurrent must be >= 1 and cps > 0")
        camp = get_campaign(db, campaign_id)
        self.script = str(camp.get("script") or "")
        self.language = str(camp.get("language") or "")
        self._window: deque[bool] = deque(maxlen=cfg.circuit_breaker.window)
        self._inflight: set[asyncio.Task[None]] = set()
        self._next_slot = 0.0
        self._stopping = False
        self._wakeup: asyncio.Event | None = None

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    def wake(self) -> None:
        """A contact was added or became due sooner: look again now, not at the next poll."""
        if self._wakeup is not None:
            self._wakeup.set()

    def next_due_at(self) -> datetime | None:
        """When the next pending or retry contact may be dialed (None: nothing waiting)."""
        row = self.db.execute(
            "SELECT min(next_attempt_at) FROM contacts WHERE campaign_id = ? AND state IN "
            "('pending', 'retry')", [self.campaign_id]).fetchone()
        return parse_iso(row[0]) if row and row[0] else None

    # ---- control ----------------------------------------------------------------------------
    def stop(self) -> None:
        """Finish the calls in progress, start no new ones, return from :meth:`run`."""
        self._stopping = True

    def status(self) -> str:
        return str(get_campaign(self.db, self.campaign_id)["status"])

    async def run(self) -> RunStats:
        status = self.status()
        if status in ("planning",):
            raise CampaignError(f"campaign {self.campaign_id} is still being planned")
        if self.lease is not None:
            try:
                self.lease.acquire(self.clock())
            except LeaseHeld as exc:
                raise CampaignError(str(exc)) from exc
        try:
            self.recover()
            if status == PLANNED:
                set_status(self.db, self.campaign_id, RUNNING)
            tasks = [asyncio.create_task(t) for t in (
                self._health() if self.health_hook else None,
                self._heartbeat() if self.lease else None) if t is not None]
            try:
                await self._loop()
            finally:
                if self._inflight:
                    await asyncio.gather(*self._inflight, return_exceptions=True)
                for task in tasks:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        finally:
            if self.lease is not None:
                self.lease.release()
        camp = get_campaign(self.db, self.campaign_id)
        self.stats.status, self.stats.reason = camp["status"], camp.get("status_reason")
        return self.stats

    async def _loop(self) -> None:
        while not self._stopping:
            status = self.status()
            if status in (STOPPED, DONE):
                return
            if status != RUNNING:  # paused: calls in progress go on, nothing new starts
                await self._wait(self.poll_interval_s)
                continue
            free = self.max_concurrent - len(self._inflight)
            if free <= 0:
                await self._wait(self.poll_interval_s)
                continue
            due = self._due(free)
            if not due:
                if not self._inflight and not self._open_contacts() and not (
                        self.keep_open is not None and self.keep_open()):
                    set_status(self.db, self.campaign_id, DONE, "every contact finished")
                    return
                if not self._inflight and self.stop_when_idle:
                    return
                await self._wait(self._seconds_to_next_due())
                continue
            for contact in due:
                await self._pace()
                if self._stopping or self.status() != RUNNING:
                    break
                self._start(contact)

    async def _wait(self, timeout: float) -> None:
        timeout = max(0.01, min(timeout, self.poll_interval_s))
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        wakeup = asyncio.ensure_future(self._wakeup.wait())
        try:
            await asyncio.wait({*self._inflight, wakeup}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            wakeup.cancel()
            self._wakeup.clear()

    async def _pace(self) -> None:
        """At least 1/cps between two call starts (a late start never lets the next catch up:
        the carrier's limit is what counts, not the average)."""
        loop = asyncio.get_running_loop()
        delay = self._next_slot - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        self._next_slot = loop.time() + 1.0 / self.cps

    async def _health(self) -> None:
        assert self.health_hook is not None
        while True:
            await asyncio.sleep(self.health_interval_s)
            try:
                await self.health_hook()
            except Exception:  # a broken hook must not stop the campaign
                log.exception("health hook failed")

    async def _heartbeat(self) -> None:
        assert self.lease is not None
        while True:
            await asyncio.sleep(heartbeat_interval(self.lease.stale_s))
            try:
                if not self.lease.heartbeat(self.clock()):
                    log.error("campaign %s: lease taken over by another runner; stopping",
                              self.campaign_id)
                    self.stop()
                    return
            except Exception:  # a locked database now and then must not stop the campaign
                log.exception("lease heartbeat failed")

    # ---- database reads ---------------------------------------------------------------------
    def _rows(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        cur = self.db.execute(sql, params)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    def _due(self, limit: int) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT * FROM contacts WHERE campaign_id = ? AND state IN ('pending', 'retry') "
            "AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
            [self.campaign_id, iso(self.clock()), limit])

    def _open_contacts(self) -> int:
        return int(self.db.execute(
            "SELECT count(*) FROM contacts WHERE campaign_id = ? AND state IN "
            "('pending', 'retry', 'dialing')", [self.campaign_id]).fetchone()[0])

    def _seconds_to_next_due(self) -> float:
        due = self.next_due_at()
        if due is None:
            return self.poll_interval_s
        return (due - self.clock()).total_seconds()

    def _contact(self, contact_id: int) -> dict[str, Any]:
        return self._rows("SELECT * FROM contacts WHERE id = ?", [contact_id])[0]

    # ---- one attempt ------------------------------------------------------------------------
    def _start(self, contact: Mapping[str, Any]) -> None:
        row = self._contact(int(contact["id"]))
        if row["state"] not in ("pending", "retry"):
            return
        now = self.clock()
        ok, reason = self.policy.check(row, now)
        if not ok:
            self._defer(row, now, reason)
            return
        decision = self.region_decider(row["phone"]) if self.region_decider else None
        verdict = decision_allows(decision) if self.region_decider else None
        if verdict is not None and not verdict.allowed:
            self._close(row, "skipped", None, verdict.reason or "region rule")
            if self.on_region_skip is not None:
                try:
                    self.on_region_skip(row, decision)
                except Exception:  # a follow-up that cannot be queued must not stop dialing
                    log.exception("region skip hook failed for contact %s", row["id"])
            return
        try:
            caller_id = self._caller_id(row, verdict)
            if self.caller_id_check is not None:
                self.caller_id_check(caller_id)  # the last check right before dialing
        except Exception as exc:  # e.g. the pool has no usable number now: try again later
            self.stats.deferred_by_policy += 1
            later = now + timedelta(seconds=self.policy.config.retry.backoff_s.failed)
            self.db.execute("UPDATE contacts SET next_attempt_at = ?, skip_reason = ?, "
                            "updated_at = ? WHERE id = ?",
                            [iso(later), f"no caller ID: {exc}", now_iso(), row["id"]])
            return
        trunk = (verdict.trunk if verdict and verdict.trunk else None) or row.get("trunk") \
            or self.default_trunk
        request = CallVariables(
            phone=row["phone"], caller_id=caller_id, trunk=trunk, campaign_id=self.campaign_id,
            contact_id=int(row["id"]), order_id=str(row.get("order_id") or ""),
            voice=str(row.get("voice") or ""), segment=str(row.get("segment") or ""),
            script=self.script, language=self.language,
            ring_timeout_s=self.policy.config.dialer.ring_timeout_s,
            dial_prefix=(verdict.prefix if verdict and verdict.prefix else "") or "")
        try:
            request.to_channel()  # what the originate would refuse: never an attempt
        except VariableError as exc:
            self._close(row, "skipped", None, f"not dialable: {exc}")
            return
        with transaction(self.db):
            cur = self.db.conn.execute(
                "INSERT INTO attempts (campaign_id, contact_id, phone, caller_id, trunk, state, "
                "started_at) VALUES (?, ?, ?, ?, ?, 'originating', ?)",
                [self.campaign_id, row["id"], row["phone"], caller_id, trunk, iso(now)])
            attempt_id = int(cur.lastrowid or 0)
            self.db.conn.execute(
                "UPDATE contacts SET state = 'dialing', attempts = attempts + 1, caller_id = ?, "
                "trunk = ?, updated_at = ? WHERE id = ?",
                [caller_id, trunk, now_iso(), row["id"]])
        request = replace(request, attempt_id=attempt_id)
        self.stats.dialed += 1
        task = asyncio.create_task(self._dial(row, attempt_id, request))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        self.stats.max_in_flight = max(self.stats.max_in_flight, len(self._inflight))

    def _caller_id(self, row: Mapping[str, Any], verdict: Any) -> str:
        """A rule's fixed caller ID, else the pool's pick (sticky per callee in the pool, and
        replaced only when that number left rotation), else the contact's earlier one."""
        if verdict is not None and verdict.caller_id:
            return str(verdict.caller_id)
        if self.caller_id_picker is not None:
            picked = self.caller_id_picker(row["phone"])
            if picked:
                return picked
        return str(row.get("caller_id") or self.default_caller_id)

    async def _dial(self, row: dict[str, Any], attempt_id: int, request: CallVariables
                    ) -> None:
        try:
            result = await self.originator.dial(request)
        except asyncio.CancelledError:
            raise  # the attempt stays open; recover() resolves it on the next start
        except Exception as exc:  # the originator failing is a failed attempt, not a crash
            log.exception("dial failed for attempt %s", attempt_id)
            result = DialResult("failed", cause_text=f"originator error: {exc}")
        self._finish(row, attempt_id, result)

    def _finish(self, row: Mapping[str, Any], attempt_id: int, result: DialResult,
                recovered: bool = False) -> None:
        now = self.clock()
        contact = self._contact(int(row["id"]))
        step = next_step(result, int(contact["attempts"] or 0), self.policy.config.retry)
        next_at: datetime | None = None
        reason = None
        if step.state == "retry":
            assert step.backoff_s is not None
            next_at = self.policy.next_allowed(contact, now + timedelta(seconds=step.backoff_s))
            if next_at is None:
                _, why = self.policy.check(contact, now + timedelta(seconds=step.backoff_s))
                step = NextStep("failed", result.outcome, None)
                reason = f"no allowed time for a retry ({why})"
        with transaction(self.db):
            self.db.conn.execute(
                "UPDATE attempts SET state = 'ended', outcome = ?, sip_code = ?, q850_cause = ?, "
                "channel = ?, uniqueid = ?, answered_at = ?, ended_at = ?, duration_s = ?, "
                "detail = ? WHERE id = ?",
                [result.outcome, result.sip_code, result.q850_cause, result.channel,
                 result.uniqueid, result.answered_at, result.ended_at or iso(now),
                 result.duration_s, result.cause_text or None, attempt_id])
            self.db.conn.execute(
                "UPDATE contacts SET state = ?, final_outcome = ?, next_attempt_at = ?, "
                "skip_reason = coalesce(?, skip_reason), updated_at = ? WHERE id = ?",
                [step.state, step.final_outcome, iso(next_at) if next_at else None, reason,
                 now_iso(), row["id"]])
        if step.final_outcome == "answered":
            self.stats.answered += 1
        elif step.final_outcome == "rejected":
            self.stats.rejected += 1
        elif step.state == "retry":
            self.stats.retries_scheduled += 1
        else:
            self.stats.failed_final += 1
        if not recovered:
            self._breaker(result)

    def _breaker(self, result: DialResult) -> None:
        cfg = self.policy.config.circuit_breaker
        self._window.append(result.outcome in cfg.failure_outcomes)
        if len(self._window) >= cfg.min_attempts:
            rate = sum(self._window) / len(self._window)
            if rate >= cfg.max_failure_rate and self.status() == RUNNING:
                why = (f"circuit breaker: {sum(self._window)} of the last {len(self._window)} "
                       f"attempts failed ({rate:.0%} >= {cfg.max_failure_rate:.0%})")
                log.warning("campaign %s stopped: %s", self.campaign_id, why)
                set_status(self.db, self.campaign_id, STOPPED, why)

    def _defer(self, row: Mapping[str, Any], now: datetime, reason: str) -> None:
        """The policy says not now: wait for the next allowed time, or close the contact."""
        self.stats.deferred_by_policy += 1
        if reason.startswith("policy error"):
            set_status(self.db, self.campaign_id, STOPPED, reason)  # fail closed
            return
        if reason == "do-not-call":
            self._close(row, "dnc", None, reason)
            return
        next_at = self.policy.next_allowed(row, now)
        if next_at is None:
            self._close(row, "skipped", None, f"no allowed time left ({reason})")
            return
        self.db.execute("UPDATE contacts SET next_attempt_at = ?, updated_at = ? WHERE id = ?",
                        [iso(next_at), now_iso(), row["id"]])

    def _close(self, row: Mapping[str, Any], state: str, outcome: str | None,
               reason: str) -> None:
        self.stats.skipped += 1
        self.db.execute("UPDATE contacts SET state = ?, final_outcome = coalesce(?, "
                        "final_outcome), skip_reason = ?, next_attempt_at = NULL, updated_at = ? "
                        "WHERE id = ?", [state, outcome, reason, now_iso(), row["id"]])

    # ---- crash recovery ---------------------------------------------------------------------
    def recover(self) -> int:
        """Resolve attempts a previous run left open; returns how many."""
        open_attempts = self._rows(
            "SELECT id, contact_id FROM attempts WHERE campaign_id = ? AND "
            "coalesce(state, '') != 'ended'", [self.campaign_id])
        for att in open_attempts:
            call = self._rows("SELECT id, answered_at, ended_at FROM calls WHERE attempt_id = ? "
                              "ORDER BY started_at LIMIT 1", [att["id"]])
            if call:  # the survey answered it: the call happened
                result = DialResult("answered", uniqueid=call[0]["id"],
                                    answered_at=call[0]["answered_at"],
                                    ended_at=call[0]["ended_at"],
                                    cause_text="recovered after a runner restart")
            else:
                result = DialResult("failed", cause_text=LOST_DETAIL)
            self._finish({"id": att["contact_id"]}, int(att["id"]), result, recovered=True)
            self.stats.recovered += 1
        # A contact 'dialing' with no open attempt cannot come from this code; be safe anyway.
        self.db.execute(
            "UPDATE contacts SET state = 'retry', next_attempt_at = ? WHERE campaign_id = ? AND "
            "state = 'dialing' AND id NOT IN (SELECT contact_id FROM attempts WHERE "
            "campaign_id = ? AND coalesce(state, '') != 'ended')",
            [iso(self.clock()), self.campaign_id, self.campaign_id])
        return len(open_attempts)
