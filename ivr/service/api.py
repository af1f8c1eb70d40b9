"""The HTTP API, ``/v1`` (FastAPI; the OpenAPI description is ``/v1/openapi.json``).

Every route needs a bearer token (``Authorization: Bearer ivr_...``, made with
``ivr service token create``): ``read`` for GET, ``write`` for anything that changes something.
No token or an unknown one is 401, a read token on a write route 403, and nothing is changed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import sqlite_utils
from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from ivr.campaign import runner as runner_mod
from ivr.campaign.importer import ImportPolicy, ingest_records
from ivr.campaign.overview import campaign_rows, campaign_state
from ivr.dnc import store as dnc
from ivr.phone import InvalidNumber
from ivr.report.model import ReportError, build_report
from ivr.report.tables import report_to_dict
from ivr.service.auth import Principal, allows, check_token
from ivr.service.core import Service, ServiceError
from ivr.service.events import EventIn, recent_events, rules_as_json
from ivr.service.recurring import recent_runs
from ivr.service.results import call_detail, campaign_calls
from ivr.webhooks import store as webhooks

MAX_ORDERS = 10_000  # per request


class Problem(BaseModel):
    detail: str


def service_of(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


def _principal(request: Request) -> Principal | None:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return check_token(service_of(request).db, token.strip())
    return None


def require(scope: str) -> Any:
    def dep(request: Request) -> Principal:
        who = _principal(request)
        if who is None:
            raise HTTPException(401, "a valid bearer token is required",
                                headers={"WWW-Authenticate": "Bearer"})
        if not allows(who.scope, scope):
            raise HTTPException(403, f"this token has scope {who.scope!r}; {scope!r} is needed")
        request.state.principal = who
        return who

    return Depends(dep)


READ, WRITE = require("read"), require("write")
router = APIRouter(prefix="/v1")


# ---- campaigns ------------------------------------------------------------------------------
def campaign_status(svc: Service, db: sqlite_utils.Database, campaign_id: str) -> dict[str, Any]:
    try:
        state = campaign_state(db, campaign_id)
    except runner_mod.CampaignError as exc:
        raise HTTPException(404, str(exc)) from exc
    live = svc.supervisor.live().get(campaign_id) if svc.supervisor else None
    failed = svc.supervisor.failed.get(campaign_id) if svc.supervisor else None
    return {**state, "dialer": live, "dialer_error": failed[1] if failed else None,
            "webhooks": webhooks.counts(db, campaign_id)}


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    script: str = Field(min_length=1, max_length=300,
                        description="a survey script in service.scripts")
    language: str | None = Field(default=None, pattern=r"^[a-z]{2,3}$")
    days: int | None = Field(default=None, ge=1, le=3650,
                             description="orders of the last N days (default: the policy's)")
    categories: list[str] = []
    merchants: list[str] = []
    hosts: list[str] = []
    platforms: list[str] = []
    products: list[str] = []
    reference: datetime | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    start: bool = Field(default=False, description="start dialing at once")

    def include(self) -> dict[str, list[str]]:
        return {k: v for k, v in (("category", self.categories), ("merchant", self.merchants),
                                  ("host", self.hosts), ("platform", self.platforms),
                                  ("product", self.products)) if v}


@router.get("/campaigns", tags=["campaigns"], dependencies=[READ])
async def list_campaigns(request: Request, status: str | None = None,
                         limit: Annotated[int, Query(ge=1, le=1000)] = 200
                         ) -> list[dict[str, Any]]:
    return campaign_rows(service_of(request).db, status, limit)


@router.post("/campaigns", tags=["campaigns"], status_code=201, dependencies=[WRITE])
async def create_campaign(request: Request, body: CampaignIn) -> dict[str, Any]:
    """Plan a campaign from a selection of the imported orders (optionally start it)."""
    svc = service_of(request)
    try:
        result, messages = await svc.in_thread(lambda db: svc.plan(
            db, name=body.name, script=body.script, language=body.language, days=body.days,
            include=body.include(), reference=body.reference, starts_at=body.starts_at,
            ends_at=body.ends_at))
    except ServiceError as exc:
        raise HTTPException(422, str(exc)) from exc
    if body.start:
        svc.start_campaign(result.campaign_id)
    return {**result.as_dict(), "region_messages": messages,
            "status": runner_mod.get_campaign(svc.db, result.campaign_id)["status"]}


@router.get("/campaigns/{campaign_id}", tags=["campaigns"], dependencies=[READ])
async def get_campaign(request: Request, campaign_id: str) -> dict[str, Any]:
    svc = service_of(request)
    return campaign_status(svc, svc.db, campaign_id)


@router.post("/campaigns/{campaign_id}/{action}", tags=["campaigns"], dependencies=[WRITE])
async def control_campaign(request: Request, campaign_id: str,
                           action: Literal["start", "pause", "resume"]) -> dict[str, Any]:
    svc = service_of(request)
    try:
        if action == "start":
            previous = svc.start_campaign(campaign_id)
        elif action == "pause":
            previous = runner_mod.pause(svc.db, campaign_id)
        else:
            previous = runner_mod.resume(svc.db, campaign_id)
            svc.wake()
    except runner_mod.CampaignError as exc:
        code = 404 if "no campaign" in str(exc) else 409
        raise HTTPException(code, str(exc)) from exc
    return {"campaign_id": campaign_id, "previous": previous,
            "status": runner_mod.get_campaign(svc.db, campaign_id)["status"]}


@router.get("/campaigns/{campaign_id}/calls", tags=["results"], dependencies=[READ])
async def list_calls(request: Request, campaign_id: str,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                     offset: Annotated[int, Query(ge=0)] = 0) -> list[dict[str, Any]]:
    """Per-call results: every attempt with its outcome, the survey's answers summary and
    the state of its webhooks."""
    return campaign_calls(service_of(request).db, campaign_id, limit=limit, offset=offset)


@router.get("/campaigns/{campaign_id}/report", tags=["results"], dependencies=[READ])
async def campaign_report(request: Request, campaign_id: str) -> dict[str, Any]:
    svc = service_of(request)
    try:
        report = await svc.in_thread(lambda db: build_report(db, campaign_id))
    except ReportError as exc:
        raise HTTPException(404, str(exc)) from exc
    return report_to_dict(report)


@router.get("/calls/{call_id}", tags=["results"], dependencies=[READ])
async def get_call(request: Request, call_id: str) -> dict[str, Any]:
    call = call_detail(service_of(request).db, call_id)
    if call is None:
        raise HTTPException(404, f"no call {call_id!r}")
    return call


# ---- orders and events ----------------------------------------------------------------------
class OrdersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    orders: list[Any] = Field(max_length=MAX_ORDERS, description=(
        "order objects with the importer's columns: order_id, phone, product, category, price, "
        "merchant, host, order_time (+ platform, buyer_name, is_test, any extra field); an "
        "element that is not an object is a reject of its own"))
    region: str = Field(default="CN", pattern=r"^[A-Z]{2}$")
    default_tz: str = "Asia/Shanghai"


@router.post("/orders", tags=["orders"], dependencies=[WRITE])
async def post_orders(request: Request, body: OrdersIn) -> dict[str, Any]:
    """Import a batch of orders: the CSV importer's validation and reject reasons, idempotent
    by order id (the same batch again changes nothing)."""
    svc = service_of(request)
    who = request.state.principal.name
    try:
        summary, rejects = await svc.in_thread(lambda db: ingest_records(
            db, body.orders, source=f"api:{who}", region=body.region,
            default_tz=body.default_tz, policy=ImportPolicy.from_settings(svc.settings.orders)))
    except Exception as exc:  # zoneinfo errors and the like are the client's
        raise HTTPException(422, f"{type(exc).__name__}: {exc}") from exc
    out = summary.as_dict()
    out.pop("file", None)
    out.pop("rejects_file", None)
    out["rejects"] = [r.__dict__ for r in rejects]
    return out


@router.post("/events", tags=["events"], dependencies=[WRITE])
async def post_event(request: Request, event: EventIn) -> dict[str, Any]:
    """One platform event (e.g. ``order.not_dispatched``); the event rules decide. Posting the
    same event id again returns the first decision (``duplicate: true``) and does nothing."""
    return service_of(request).engine.process(event).as_dict()


class EventsIn(BaseModel):
    events: list[EventIn] = Field(max_length=1000)


@router.post("/events/batch", tags=["events"], dependencies=[WRITE])
async def post_events(request: Request, body: EventsIn) -> list[dict[str, Any]]:
    engine = service_of(request).engine
    return [engine.process(e).as_dict() for e in body.events]


@router.get("/events", tags=["events"], dependencies=[READ])
async def list_events(request: Request,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    return recent_events(service_of(request).db, limit)


@router.get("/rules", tags=["events"], dependencies=[READ])
async def list_rules(request: Request) -> dict[str, Any]:
    svc = service_of(request)
    return {"event_rules": rules_as_json(svc.event_rules),
            "recurring": [r.model_dump(mode="json") for r in svc.recurring.campaigns],
            "recurring_next": svc.scheduler.next_runs(),
            "recurring_runs": recent_runs(svc.db)}


# ---- do-not-call ----------------------------------------------------------------------------
class DncIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(min_length=3, max_length=40)
    reason: str = Field(default="", max_length=500)
    source: str | None = Field(default=None, max_length=100)


@router.get("/dnc", tags=["dnc"], dependencies=[READ])
async def list_dnc(request: Request, search: str | None = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                   offset: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
    db = service_of(request).db
    return {"total": dnc.count(db), "entries": dnc.entries(db, search=search, limit=limit,
                                                            offset=offset)}


@router.post("/dnc", tags=["dnc"], status_code=201, dependencies=[WRITE])
async def add_dnc(request: Request, body: DncIn) -> dict[str, Any]:
    svc = service_of(request)
    try:
        phone = dnc.add(svc.db, body.phone, reason=body.reason,
                        source=body.source or f"api:{request.state.principal.name}")
    except (InvalidNumber, ValueError) as exc:
        raise HTTPException(422, str(exc)) from exc
    return {"phone": phone, "on_list": True}


@router.delete("/dnc/{phone}", tags=["dnc"], dependencies=[WRITE])
async def remove_dnc(request: Request, phone: str, reason: str = "") -> dict[str, Any]:
    svc = service_of(request)
    try:
        gone = dnc.remove(svc.db, phone, reason=reason,
                          source=f"api:{request.state.principal.name}")
    except (InvalidNumber, ValueError) as exc:
        raise HTTPException(422, str(exc)) from exc
    if not gone:
        raise HTTPException(404, f"{phone} is not on the do-not-call list")
    return {"phone": phone, "on_list": False}


@router.post("/dnc/import", tags=["dnc"], dependencies=[WRITE])
async def import_dnc(request: Request, source: str = "csv", reason: str = "",
                     body: str = Body(media_type="text/csv")) -> dict[str, Any]:
    """A CSV (``phone[,reason,source]`` with a header, or one number per line)."""
    svc = service_of(request)
    result = await svc.in_thread(lambda db: dnc.import_csv(
        db, body, source=source, default_reason=reason))
    return result.as_dict()


class SmsReplyIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    phone: str = Field(min_length=3, max_length=40, validation_alias="from")
    text: str = Field(max_length=2000)
    received_at: str | None = None


@router.post("/dnc/sms-replies", tags=["dnc"], dependencies=[WRITE])
async def sms_reply(request: Request, body: SmsReplyIn) -> dict[str, Any]:
    """The SMS gateway's inbound-reply webhook: an opt-out (回T退订 -> "T", "TD", 退订 ...)
    puts the sender on the do-not-call list; anything else is ignored."""
    svc = service_of(request)
    if not dnc.is_opt_out(body.text):
        return {"phone": body.phone, "opt_out": False}
    try:
        phone = dnc.add(svc.db, body.phone, reason=f"SMS reply: {body.text.strip()[:60]}",
                        source="sms")
    except (InvalidNumber, ValueError) as exc:
        raise HTTPException(422, str(exc)) from exc
    return {"phone": phone, "opt_out": True}


# ---- numbers, webhooks ----------------------------------------------------------------------
@router.get("/numbers", tags=["numbers"], dependencies=[READ])
async def list_numbers(request: Request) -> dict[str, Any]:
    db = service_of(request).db
    if "numbers" not in db.table_names():
        return {"numbers": []}
    rows = [dict(r) for r in db.query(
        "SELECT number, pool, trunk, region, state, state_reason, score, daily_cap, "
        "last_check_at, cooldown_until FROM numbers WHERE coalesce(in_config, 1) "
        "ORDER BY pool, number")]
    return {"numbers": rows}


@router.post("/numbers/check", tags=["numbers"], dependencies=[WRITE])
async def check_numbers(request: Request) -> dict[str, Any]:
    """Check the caller-ID pool's health now (state changes are applied and logged)."""
    from ivr.callerid.config import load_pool
    from ivr.callerid.health import check_pool

    svc = service_of(request)
    try:
        pool = load_pool(svc.settings.numbers)
    except ValueError as exc:
        raise HTTPException(500, str(exc)) from exc
    report = check_pool(svc.db, pool, source=f"api:{request.state.principal.name}")
    return report.to_dict()


@router.get("/webhooks", tags=["webhooks"], dependencies=[READ])
async def list_webhooks(request: Request, state: str | None = None,
                        call_id: str | None = None, campaign_id: str | None = None,
                        limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    db = service_of(request).db
    return {"counts": webhooks.counts(db, campaign_id),
            "deliveries": webhooks.deliveries(db, call_id=call_id, campaign_id=campaign_id,
                                              state=state, limit=limit)}


class RequeueIn(BaseModel):
    ids: list[int] = []


@router.post("/webhooks/requeue", tags=["webhooks"], dependencies=[WRITE])
async def requeue_webhooks(request: Request, body: RequeueIn) -> dict[str, int]:
    svc = service_of(request)
    n = webhooks.requeue(svc.db, body.ids or None)
    svc.deliverer.wake()
    return {"requeued": n}


# ---- operations -----------------------------------------------------------------------------
ops = APIRouter()


@ops.get("/health", tags=["operations"], dependencies=[READ])
async def health(request: Request) -> JSONResponse:
    from ivr.service.health import check_health

    svc = service_of(request)
    data = await check_health(svc.settings, svc.db, svc.originator if svc.ami_error is None
                              else None)
    if svc.ami_error:
        data["parts"]["ami"]["reason"] = svc.ami_error
    data["uptime_s"] = round(svc.clock().timestamp() - svc.started_at, 1)
    return JSONResponse(data, status_code=200 if data["ok"] else 503)


@ops.get("/metrics", tags=["operations"], dependencies=[READ],
         response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    svc = service_of(request)
    data = await svc.in_thread(lambda _db: generate_latest(request.app.state.registry))
    return Response(data, media_type=CONTENT_TYPE_LATEST)


def mount(app: FastAPI) -> None:
    app.include_router(router)
    app.include_router(ops)
