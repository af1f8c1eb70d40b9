"""The web console: server-rendered pages from the same service (Jinja2, autoescaped).

Chinese labels by default, English with the switch in the header (``ivr.i18n``). Every asset is
served from ``/console/static`` (no CDN, no web font: the page uses the system's CJK font).
Login is a console user (``ivr service user add``); the session is a signed, HttpOnly,
SameSite=Strict cookie, and every form carries the session's CSRF token. A read-only user sees
everything and changes nothing.
"""

from __future__ import annotations

import csv
import hmac
import io
import json
import secrets
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import APIRouter, FastAPI, Form, HTTPException, Request, UploadFile
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from ivr.campaign import runner as runner_mod
from ivr.campaign.importer import ImportFileError, import_orders
from ivr.campaign.overview import campaign_rows
from ivr.dnc import store as dnc
from ivr.i18n import label, lang_of
from ivr.phone import InvalidNumber
from ivr.report.model import ReportError, build_report, mask_phone
from ivr.report.render import csv_cell, report_css, report_fragment
from ivr.report.status import collect_status
from ivr.report.tables import report_tables
from ivr.service.api import campaign_status
from ivr.service.auth import Principal, allows, check_user
from ivr.service.core import Service, ServiceError
from ivr.service.events import recent_events, rules_as_json
from ivr.service.results import campaign_calls

HERE = Path(__file__).parent
_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                          autoescape=jinja2.select_autoescape(["html"]),
                          undefined=jinja2.StrictUndefined, trim_blocks=True,
                          lstrip_blocks=True)
router = APIRouter(prefix="/console", include_in_schema=False)


class Redirect(Exception):
    def __init__(self, url: str) -> None:
        self.url = url


def _svc(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


def _lang(request: Request) -> str:
    return lang_of(request.session.get("lang"))


def _user(request: Request, scope: str = "read") -> Principal:
    data = request.session.get("user")
    if not isinstance(data, dict):
        raise Redirect("/console/login")
    who = Principal(str(data["name"]), str(data["scope"]), "user")
    if not allows(who.scope, scope):
        raise HTTPException(403, label("read_only", _lang(request)))
    return who


def _csrf(request: Request, token: str) -> None:
    expected = request.session.get("csrf", "")
    if not expected or not hmac.compare_digest(str(expected), token or ""):
        raise HTTPException(403, "CSRF token missing or wrong; reload the page")


def _page(request: Request, template: str, **ctx: Any) -> HTMLResponse:
    lang = _lang(request)
    user = request.session.get("user")
    html = _ENV.get_template(template).render(
        t=lambda key: label(key, lang), lang=lang, user=user,
        csrf=request.session.get("csrf", ""), path=request.url.path,
        can_write=bool(user and user.get("scope") == "write"),
        flash=request.session.pop("flash", None), **ctx)
    return HTMLResponse(html, headers=_SECURITY_HEADERS)


# Everything the pages load is ours; scripts run only from our files.
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "style-src 'self' 'unsafe-inline'; script-src 'self'; "
                               "media-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _flash(request: Request, text: str) -> None:
    request.session["flash"] = text


def _back(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# ---- login ----------------------------------------------------------------------------------
@router.get("/login")
async def login_page(request: Request) -> HTMLResponse:
    request.session.setdefault("csrf", secrets.token_urlsafe(24))
    return _page(request, "login.html", error=None)


@router.post("/login")
async def login(request: Request, name: str = Form(""), password: str = Form(""),
                csrf: str = Form("")) -> Response:
    _csrf(request, csrf)
    who = check_user(_svc(request).db, name, password)
    if who is None:
        return _page(request, "login.html", error=label("login_failed", _lang(request)))
    lang = request.session.get("lang")
    request.session.clear()  # a new session id on login
    request.session.update({"user": {"name": who.name, "scope": who.scope},
                            "csrf": secrets.token_urlsafe(24), "lang": lang_of(lang)})
    return _back("/console/")


@router.post("/logout")
async def logout(request: Request, csrf: str = Form("")) -> Response:
    _csrf(request, csrf)
    request.session.clear()
    return _back("/console/login")


@router.get("/lang/{lang}")
async def set_lang(request: Request, lang: str, back: str = "/console/") -> Response:
    request.session["lang"] = lang_of(lang)
    return _back(back if back.startswith("/console/") else "/console/")


# ---- campaigns ------------------------------------------------------------------------------
@router.get("/")
async def campaigns_page(request: Request) -> HTMLResponse:
    _user(request)
    svc = _svc(request)
    rows = campaign_rows(svc.db)
    return _page(request, "campaigns.html", campaigns=rows,
                 scripts=[str(p) for p in svc.scripts()],
                 imported=request.session.pop("imported", None))


@router.post("/orders")
async def upload_orders(request: Request, file: UploadFile, csrf: str = Form("")) -> Response:
    _user(request, "write")
    _csrf(request, csrf)
    svc = _svc(request)
    data = await file.read()
    suffix = ".jsonl" if (file.filename or "").lower().endswith((".jsonl", ".json")) else ".csv"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        rejects = Path(tmp) / "rejects.csv"
        try:
            summary = await svc.in_thread(lambda db: import_orders(db, path,
                                                                   rejects_path=rejects))
        except ImportFileError as exc:
            _flash(request, str(exc).replace(str(path), file.filename or "upload"))
            return _back("/console/")
        reject_lines = rejects.read_text(encoding="utf-8").splitlines()[1:21]
    request.session["imported"] = {"name": file.filename or "upload", **{
        k: getattr(summary, k) for k in ("rows", "inserted", "updated", "unchanged",
                                         "duplicates", "rejected")},
        "rejects": reject_lines}
    return _back("/console/")


@router.post("/campaigns")
async def create_campaign(request: Request, name: str = Form(...), script: str = Form(...),
                          days: str = Form(""), categories: str = Form(""),
                          start: str = Form(""), csrf: str = Form("")) -> Response:
    _user(request, "write")
    _csrf(request, csrf)
    svc = _svc(request)
    cats = [c.strip() for c in categories.replace("，", ",").split(",") if c.strip()]
    try:
        n_days = int(days) if days.strip() else None
        if n_days is not None and not 1 <= n_days <= 3650:
            raise ValueError
    except ValueError:
        _flash(request, f"days: {days!r} is not a number of days (1-3650)")
        return _back("/console/")
    try:
        result, _messages = await svc.in_thread(lambda db: svc.plan(
            db, name=name.strip()[:100] or "campaign", script=script, days=n_days,
            include={"category": cats} if cats else None))
    except ServiceError as exc:
        _flash(request, str(exc))
        return _back("/console/")
    if start:
        svc.start_campaign(result.campaign_id)
    return _back(f"/console/campaigns/{quote(result.campaign_id)}")


@router.get("/campaigns/{campaign_id}")
async def campaign_page(request: Request, campaign_id: str) -> HTMLResponse:
    _user(request)
    svc = _svc(request)
    try:
        status = campaign_status(svc, svc.db, campaign_id)
    except HTTPException as exc:
        raise HTTPException(404, exc.detail) from exc
    calls = campaign_calls(svc.db, campaign_id, limit=200, mask=True)
    return _page(request, "campaign.html", s=status, c=status["campaign"], calls=calls)


@router.get("/campaigns/{campaign_id}/live.json")
async def campaign_live(request: Request, campaign_id: str) -> JSONResponse:
    _user(request)
    svc = _svc(request)
    status = campaign_status(svc, svc.db, campaign_id)
    return JSONResponse({"status": status["campaign"]["status"],
                         "status_label": label(f"st_{status['campaign']['status']}",
                                               _lang(request)),
                         "funnel": status["funnel"], "dialer": status["dialer"]})


@router.post("/campaigns/{campaign_id}/{action}")
async def campaign_action(request: Request, campaign_id: str, action: str,
                          csrf: str = Form("")) -> Response:
    _user(request, "write")
    _csrf(request, csrf)
    svc = _svc(request)
    try:
        if action == "start":
            svc.start_campaign(campaign_id)
        elif action == "pause":
            runner_mod.pause(svc.db, campaign_id)
        elif action == "resume":
            runner_mod.resume(svc.db, campaign_id)
            svc.wake()
        else:
            raise HTTPException(404, f"no action {action!r}")
    except runner_mod.CampaignError as exc:
        _flash(request, str(exc))
    return _back(f"/console/campaigns/{quote(campaign_id)}")


@router.get("/campaigns/{campaign_id}/report")
async def report_page(request: Request, campaign_id: str) -> HTMLResponse:
    _user(request)
    svc = _svc(request)
    lang = _lang(request)
    try:
        report = await svc.in_thread(lambda db: build_report(db, campaign_id))
    except ReportError as exc:
        raise HTTPException(404, str(exc)) from exc
    body = await svc.in_thread(lambda db: report_fragment(
        report, lang=lang,
        recording_url=lambda call_id, seq: f"/console/recordings/{quote(call_id)}/{seq}"))
    return _page(request, "report.html", r=report, body=body, css=report_css())


def _bom_csv(rows: list[list[Any]], name: str) -> Response:
    buf = io.StringIO()
    buf.write("\ufeff")  # Excel reads UTF-8 only with the byte-order mark
    csv.writer(buf).writerows(rows)
    return Response(buf.getvalue().encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''"
                                                    f"{quote(name)}"})


@router.get("/campaigns/{campaign_id}/report.csv")
async def report_csv(request: Request, campaign_id: str, table: str = "funnel") -> Response:
    _user(request)
    svc = _svc(request)
    try:
        report = await svc.in_thread(lambda db: build_report(db, campaign_id))
    except ReportError as exc:
        raise HTTPException(404, str(exc)) from exc
    found = next((t for t in report_tables(report) if t.name == table), None)
    if found is None:
        raise HTTPException(404, f"no report table {table!r}")
    lang = _lang(request)
    rows = [[label(c, lang) for c in found.columns],
            *[[csv_cell(c) for c in row] for row in found.rows]]
    return _bom_csv(rows, f"{campaign_id}-{table}.csv")


@router.get("/campaigns/{campaign_id}/calls.csv")
async def calls_csv(request: Request, campaign_id: str) -> Response:
    _user(request)
    rows = campaign_calls(_svc(request).db, campaign_id, limit=1_000_000)
    cols = list(rows[0]) if rows else ["attempt_id"]
    return _bom_csv([cols, *[[r.get(c) if r.get(c) is not None else "" for c in cols]
                             for r in rows]], f"{campaign_id}-calls.csv")


@router.get("/recordings/{call_id}/{seq}")
async def recording(request: Request, call_id: str, seq: int) -> Response:
    """A caller's recorded answer, only from the recordings directory."""
    _user(request)
    svc = _svc(request)
    row = svc.db.execute("SELECT recording FROM answers WHERE call_id = ? AND seq = ?",
                         [call_id, seq]).fetchone()
    if row is None or not row[0]:
        raise HTTPException(404, "no recording")
    root = svc.settings.recordings_dir.resolve()
    for candidate in (Path(row[0]), Path(row[0] + ".wav")):
        path = candidate.resolve()
        if path.is_file() and path.is_relative_to(root):
            return FileResponse(path, media_type="audio/wav")
    raise HTTPException(404, "recording file not found")


# ---- live calls, numbers, dnc, rules --------------------------------------------------------
@router.get("/calls")
async def calls_page(request: Request) -> HTMLResponse:
    _user(request)
    svc = _svc(request)
    status = collect_status(svc.db, errors=20)
    live = svc.supervisor.live() if svc.supervisor else {}
    return _page(request, "calls.html", live_calls=status["live_calls"], dialers=live,
                 errors=status["errors"])


@router.get("/calls.json")
async def calls_json(request: Request) -> JSONResponse:
    _user(request)
    svc = _svc(request)
    live = collect_status(svc.db, errors=0)["live_calls"]
    return JSONResponse({"live_calls": live, "at": datetime.now(UTC).isoformat()})


@router.get("/numbers")
async def numbers_page(request: Request) -> HTMLResponse:
    _user(request)
    db = _svc(request).db
    rows = [dict(r) for r in db.query(
        "SELECT number, pool, trunk, region, state, state_reason, score, daily_cap, "
        "last_check_at FROM numbers WHERE coalesce(in_config, 1) ORDER BY pool, number")] \
        if "numbers" in db.table_names() else []
    return _page(request, "numbers.html", numbers=rows,
                 report=request.session.pop("check", None))


@router.post("/numbers/check")
async def numbers_check(request: Request, csrf: str = Form("")) -> Response:
    who = _user(request, "write")
    _csrf(request, csrf)
    from ivr.callerid.config import load_pool
    from ivr.callerid.health import check_pool

    svc = _svc(request)
    report = check_pool(svc.db, load_pool(svc.settings.numbers), source=f"console:{who.name}")
    request.session["check"] = {"ok": report.ok, "problems": report.problems,
                                "checked_at": report.checked_at}
    return _back("/console/numbers")


@router.get("/dnc")
async def dnc_page(request: Request, q: str = "") -> HTMLResponse:
    _user(request)
    db = _svc(request).db
    return _page(request, "dnc.html", entries=dnc.entries(db, search=q or None, limit=200),
                 total=dnc.count(db), q=q)


@router.post("/dnc")
async def dnc_add(request: Request, phone: str = Form(""), reason: str = Form(""),
                  csrf: str = Form("")) -> Response:
    who = _user(request, "write")
    _csrf(request, csrf)
    try:
        e164 = dnc.add(_svc(request).db, phone, reason=reason, source=f"console:{who.name}")
        _flash(request, f"+ {e164}")
    except (InvalidNumber, ValueError) as exc:
        _flash(request, str(exc))
    return _back("/console/dnc")


@router.post("/dnc/remove")
async def dnc_remove(request: Request, phone: str = Form(""), csrf: str = Form("")) -> Response:
    who = _user(request, "write")
    _csrf(request, csrf)
    try:
        dnc.remove(_svc(request).db, phone, reason="removed in the console",
                   source=f"console:{who.name}")
        _flash(request, f"- {phone}")
    except (InvalidNumber, ValueError) as exc:
        _flash(request, str(exc))
    return _back("/console/dnc")


@router.post("/dnc/import")
async def dnc_import(request: Request, file: UploadFile, reason: str = Form(""),
                     csrf: str = Form("")) -> Response:
    who = _user(request, "write")
    _csrf(request, csrf)
    text = (await file.read()).decode("utf-8", errors="replace")
    svc = _svc(request)
    result = await svc.in_thread(lambda db: dnc.import_csv(
        db, text, source=f"console:{who.name}", default_reason=reason,
        name=file.filename or "upload"))
    _flash(request, json.dumps(result.as_dict(), ensure_ascii=False)[:600])
    return _back("/console/dnc")


@router.get("/rules")
async def rules_page(request: Request) -> HTMLResponse:
    _user(request)
    svc = _svc(request)
    return _page(request, "rules.html", rules=rules_as_json(svc.event_rules),
                 recurring=[r.model_dump(mode="json") for r in svc.recurring.campaigns],
                 next_runs=svc.scheduler.next_runs(), events=recent_events(svc.db, 50),
                 mask=mask_phone)


def mount(app: FastAPI, service: Service) -> None:
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(Redirect)
    async def _redirect(_request: Request, exc: Redirect) -> RedirectResponse:
        return RedirectResponse(exc.url, status_code=303)

    app.add_middleware(SessionMiddleware, secret_key=service.session_key,
                       session_cookie="ivr_session", same_site="strict",
                       max_age=int(service.settings.service.session_hours * 3600),
                       https_only=False)
