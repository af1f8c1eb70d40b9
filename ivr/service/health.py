"""``GET /health``: each part the service depends on, up or down, with the reason.

Parts: ``asterisk`` (the control socket answers), ``ami`` (the dialers' manager connection
answers a Ping), ``fastagi`` (the daemon accepts a connection), ``database`` (reads and writes),
``models`` (the Vosk model of every survey language in use is installed), ``callerid_pool``
(the pool can serve: healthy numbers with capacity left today). The service is ``ok`` when every
part is up; ``models`` only degrades it (surveys fall back to keys).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any

import sqlite_utils

from ivr.config import Settings


@dataclass
class Part:
    name: str
    up: bool
    reason: str
    ms: float = 0.0
    required: bool = True


async def _timed(name: str, coro: Any, required: bool = True) -> Part:
    t0 = time.perf_counter()
    try:
        up, reason = await asyncio.wait_for(coro, timeout=5)
    except TimeoutError:
        up, reason = False, "no answer within 5 s"
    except Exception as exc:  # noqa: BLE001 - a check that fails is a part that is down
        up, reason = False, f"{type(exc).__name__}: {exc}"
    return Part(name, up, reason, round((time.perf_counter() - t0) * 1000, 1), required)


async def _asterisk(settings: Settings) -> tuple[bool, str]:
    from ivr.asterisk.process import Asterisk

    proc = Asterisk(settings)
    if not proc.running():
        return False, f"no Asterisk running for {settings.run_dir}"
    out = await asyncio.to_thread(proc.rx, "core show uptime seconds", 4.0, False)
    if "System uptime" not in out:
        return False, f"control socket did not answer: {out.strip()[:120]!r}"
    return True, out.strip().splitlines()[0]


async def _ami(originator: Any) -> tuple[bool, str]:
    if originator is None:
        return False, "the service has no AMI connection (not connected yet)"
    manager = originator.manager
    reply = await manager.send_action({"Action": "Ping"})
    first = reply[0] if isinstance(reply, list) else reply
    if first.get("Response") != "Success":
        return False, f"Ping answered {first.get('Response')}: {first.get('Message')}"
    return True, f"{originator.manager.config['host']}:{originator.manager.config['port']}"


async def _fastagi(settings: Settings) -> tuple[bool, str]:
    if settings.agi.transport != "fastagi":
        return True, "classic AGI (no daemon needed)"
    _reader, writer = await asyncio.open_connection(settings.agi.host, settings.agi.port)
    writer.close()
    await writer.wait_closed()
    return True, f"listening on {settings.agi.host}:{settings.agi.port}"


async def _database(db: sqlite_utils.Database) -> tuple[bool, str]:
    db.execute("INSERT INTO service_state (key, value) VALUES ('health_probe', ?) "
               "ON CONFLICT(key) DO UPDATE SET value = excluded.value", [str(time.time())])
    n = db.execute("SELECT count(*) FROM campaigns").fetchone()[0]
    return True, f"read/write ok, {n} campaigns"


async def _models(settings: Settings, db: sqlite_utils.Database) -> tuple[bool, str]:
    from ivr.speech.models import ModelError, looks_like_model, resolve_model_path

    languages = {settings.language} | {str(r[0]) for r in db.execute(
        "SELECT DISTINCT language FROM campaigns WHERE status IN ('running', 'planned', "
        "'paused') AND language IS NOT NULL")}
    missing: list[str] = []
    found: list[str] = []
    for lang in sorted(languages):
        if lang not in settings.speech.models:
            missing.append(f"{lang}: no model configured (keys only)")
            continue
        try:
            path = resolve_model_path(lang, settings)
        except ModelError as exc:
            missing.append(f"{lang}: {exc}")
            continue
        problem = looks_like_model(path)
        (missing if problem else found).append(f"{lang}: {problem or path.name}")
    return not missing, "; ".join(missing + found) or "no survey language in use"


async def _pool(settings: Settings, db: sqlite_utils.Database) -> tuple[bool, str]:
    from ivr.callerid.config import load_pool
    from ivr.callerid.health import check_pool

    report = check_pool(db, load_pool(settings.numbers), source="health")
    healthy = sum(1 for n in report.numbers if n.healthy and n.state == "active")
    capacity = ", ".join(f"{k} {v}" for k, v in sorted(report.capacity_today.items()))
    if not report.ok:
        return False, "; ".join(report.problems)
    return True, f"{healthy}/{len(report.numbers)} numbers in rotation; capacity today {capacity}"


async def check_health(settings: Settings, db: sqlite_utils.Database,
                       originator: Any) -> dict[str, Any]:
    parts = [
        await _timed("asterisk", _asterisk(settings)),
        await _timed("ami", _ami(originator)),
        await _timed("fastagi", _fastagi(settings)),
        await _timed("database", _database(db)),
        await _timed("models", _models(settings, db), required=False),
        await _timed("callerid_pool", _pool(settings, db)),
    ]
    ok = all(p.up for p in parts if p.required)
    degraded = ok and not all(p.up for p in parts)
    return {"ok": ok, "status": "degraded" if degraded else ("ok" if ok else "down"),
            "parts": {p.name: asdict(p) for p in parts}}
