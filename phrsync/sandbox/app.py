"""The sandbox HTTP API: MOPH-PHR upload, utility and read routes with the spec's paths and parameters.

Built as :class:`Sandbox` (settings + storage + validator + rate limit + fault plan) whose ``asgi`` attribute
is what uvicorn or a test client serves (faults and access log, then the bound on large bodies
(:mod:`phrsync.sandbox.bodygate`), then the routes). The routes live in :mod:`phrsync.sandbox.routes` (one router per
area), the bearer check in :mod:`phrsync.sandbox.deps`, the error answers in :mod:`phrsync.sandbox.handlers`;
:mod:`phrsync.sandbox.hotpath` serves UpdatePHRv1 and check_ekyc past FastAPI's per-request layers (measured
need there).
Every answer carries the §5.2 envelope."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from phrsync import __version__
from phrsync.ratelimit import RateLimiter
from phrsync.sandbox import ekyc, handlers, payloads, store
from phrsync.sandbox.bodygate import BodyGate
from phrsync.sandbox.faults import FaultMiddleware, FaultPlan
from phrsync.sandbox.hotpath import HotPath
from phrsync.sandbox.routes import ROUTERS, uploads, webapp
from phrsync.sandbox.settings import SandboxConfig


class Sandbox:
    """One server instance: settings, storage, validator, rate limit, fault plan and the ASGI app."""

    def __init__(self, cfg: SandboxConfig, validator: payloads.Validator | None = None) -> None:
        self.cfg = cfg
        Path(cfg.data_dir).mkdir(parents=True, exist_ok=True, mode=0o700)  # holds CIDs (PDPA)
        self.store = store.Store(cfg.url, cfg.commit_batch_max, cfg.sqlite_synchronous, cfg.commit_delay_ms / 1000)
        self._validator = validator
        self.rate = RateLimiter(cfg.rate_limit_per_minute, clock=cfg.clock)  # PHR's cap per facility
        self.ekyc_rate = RateLimiter(cfg.ekyc_rate_limit_per_minute, clock=cfg.clock)  # check_ekyc per account
        self.plan = FaultPlan(cfg.faults) if cfg.faults.active else None
        self.api = build_api(self)
        self.ekyc = ekyc.Checker(self.store, cfg)  # check_ekyc's reads
        hot = [r for mod in (uploads, webapp) for r in mod.router.routes
               if isinstance(r, APIRoute) and r.path in mod.HOT_PATHS]
        self.gate = BodyGate(HotPath(self.api, hot), cfg.large_body_bytes, cfg.max_large_bodies)
        self.asgi = FaultMiddleware(self.gate, self.plan, access_log=cfg.access_log)

    @property
    def validator(self) -> payloads.Validator:
        """The shared payload validator, loaded on first upload so the server starts fast."""
        if self._validator is None:
            self._validator = payloads.load_validator()
        return self._validator

    def close(self) -> None:
        self.ekyc.close()
        self.store.close()

    async def write(self, fn: Any) -> Any:
        return await self.store.submit_async(fn)


def build_api(sbx: Sandbox) -> FastAPI:
    """The FastAPI app of ``sbx``: its routers, its one set of error handlers, and ``/openapi.json``.

    No Swagger UI or ReDoc page: both load their scripts from a CDN, and a health office has no internet."""
    extra: dict[str, Any] = {}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        # newer FastAPI checks OpenTelemetry providers on every request; a local test server has none
        extra["telemetry"] = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
    app = FastAPI(title="phrsync MOPH-PHR sandbox", version=__version__, docs_url=None, redoc_url=None,
                  description="เซิร์ฟเวอร์ทดสอบที่ทำงานเหมือน MOPH-PHR / local MOPH-PHR-compatible test server", **extra)
    app.state.sandbox = sbx
    app.state.endpoint_ip = sbx.cfg.endpoint_ip
    app.state.endpoint_port = sbx.cfg.endpoint_port
    handlers.install(app)
    for router in ROUTERS:
        app.include_router(router)
    return app
