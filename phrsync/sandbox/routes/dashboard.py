"""The PHR-centre dashboard (HTML, or its figures with ``?format=json``); ``/`` leads there."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from phrsync.sandbox import dashboard
from phrsync.sandbox.deps import sandbox_of

router = APIRouter(tags=["dashboard"])


@router.get("/dashboard", response_class=HTMLResponse,
            summary="แดชบอร์ดศูนย์ PHR / PHR-centre dashboard (format=json for data)")
async def dash(request: Request, format: str | None = None) -> Response:  # noqa: A002
    sbx = sandbox_of(request)
    data = await run_in_threadpool(sbx.store.read, lambda c: dashboard.collect(c, sbx.store.sqlite_file))
    if format == "json":
        return Response(orjson.dumps(data), media_type="application/json")
    return HTMLResponse(dashboard.render(data, sbx.cfg.clock()))


@router.get("/", include_in_schema=False)
async def root() -> Response:
    return RedirectResponse("/dashboard")
