"""The ASGI app (API + console) and ``serve()``: uvicorn and the service on one asyncio loop."""

from __future__ import annotations

import asyncio
import logging

import uvicorn
from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from prometheus_client import CollectorRegistry, ProcessCollector

from ivr import __version__
from ivr.config import Settings
from ivr.service import api, console
from ivr.service.core import Service
from ivr.service.metrics import DatabaseCollector

log = logging.getLogger("ivr.service")


def create_app(service: Service) -> FastAPI:
    app = FastAPI(
        title="ivr", version=__version__,
        description="Outbound survey and recall calls: orders, events, campaigns, "
                    "do-not-call, caller-ID numbers, per-call results. Bearer-token auth "
                    "(scopes read / write).",
        openapi_url="/v1/openapi.json",
        docs_url=None, redoc_url=None)  # the stock docs pages load scripts from a CDN
    app.state.service = service
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(service.thread_db))
    ProcessCollector(registry=registry)
    app.state.registry = registry
    api.mount(app)
    console.mount(app, service)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=303)

    return app


async def serve(settings: Settings, ready: asyncio.Event | None = None) -> None:
    """Run until SIGINT / SIGTERM (uvicorn's handlers), then stop the dialers gracefully."""
    service = Service(settings)
    app = create_app(service)
    svc = settings.service
    config = uvicorn.Config(app, host=svc.host, port=svc.port, log_config=None,
                            access_log=True, lifespan="off", server_header=False,
                            timeout_graceful_shutdown=10)
    server = uvicorn.Server(config)
    await service.start()
    try:
        if ready is not None:
            asyncio.get_running_loop().call_soon(ready.set)
        await server.serve()
    finally:
        await service.stop()
