"""The sandbox's one set of exception handlers: every failure a route raises becomes the §5.2 envelope with
its status as MessageCode and a Thai message (MessageTH) beside the English one."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from phrsync.sandbox.envelope import ApiError, error_response
from phrsync.sandbox.payloads import Bad, issue

log = logging.getLogger("phrsync.sandbox")
_HTTP_MESSAGES = {404: ("not found", "ไม่พบเส้นทางนี้"),
                  405: ("method not allowed", "ใช้ HTTP method นี้กับเส้นทางนี้ไม่ได้")}


async def api_error(request: Request, exc: ApiError) -> Response:
    return error_response(request, exc)


async def bad_payload(request: Request, exc: Bad) -> Response:
    return error_response(request, ApiError(400, f"invalid payload ({len(exc.issues)} error(s))",
                                            "ข้อมูลไม่ถูกต้อง", issues=exc.issues))


async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """Starlette's own 404/405 (unknown path, wrong method), in the envelope like every other error."""
    msg, msg_th = _HTTP_MESSAGES.get(exc.status_code, (str(exc.detail), "คำขอไม่ถูกต้อง"))
    return error_response(request, ApiError(exc.status_code, msg, msg_th, headers=dict(exc.headers or {})))


async def request_invalid(request: Request, exc: RequestValidationError) -> Response:
    """A missing or mistyped query parameter: 400 with one issue per parameter (FastAPI would say 422)."""
    issues = [issue(".".join(str(x) for x in e.get("loc", ())), "request", "พารามิเตอร์ไม่ถูกต้อง",
                    str(e.get("msg", ""))) for e in exc.errors()]
    return error_response(request, ApiError(400, "invalid request parameters", "พารามิเตอร์ไม่ถูกต้อง",
                                            issues=issues))


async def client_gone(request: Request, exc: ClientDisconnect) -> Response:
    """The client went away mid-body: nobody to answer and nothing to log (an agent's timeout, a dropped link).
    Handled here rather than by the 500 handler, which Starlette follows by re-raising into the server log."""
    return Response(status_code=400)


async def unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s", request.url.path)
    return error_response(request, ApiError(500, "internal server error", "เซิร์ฟเวอร์ขัดข้อง"))


Handler = Callable[[Request, Any], Awaitable[Response]]
# the one table: FastAPI's exception middleware and the hot path (phrsync.sandbox.hotpath) both answer from it
HANDLERS: dict[type[Exception], Handler] = {
    ApiError: api_error, Bad: bad_payload, StarletteHTTPException: http_error,
    RequestValidationError: request_invalid, ClientDisconnect: client_gone, Exception: unexpected,
}


def handler_for(exc: Exception) -> Handler:
    """The handler for ``exc``, by its class's ancestry as Starlette chooses one."""
    for cls in type(exc).__mro__:
        if cls in HANDLERS:
            return HANDLERS[cls]
    return unexpected


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    for cls, handler in HANDLERS.items():
        app.exception_handler(cls)(handler)
