"""The MOPH-PHR response envelope (spec §5.2) on every answer, including errors (project default §7.1)."""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response


class ApiError(Exception):
    """An error answer: HTTP status = MessageCode; ``message`` is short English, ``message_th`` Thai."""

    def __init__(self, status: int, message: str, message_th: str = "", *, issues: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.message_th = message_th
        self.issues = issues
        self.headers = headers or {}


def request_t0(request: Request) -> float:
    return float(request.scope.get("sbx_t0") or time.time())


def iso_utc(ts: float) -> str:
    """``2024-12-19T10:09:36.388Z`` (spec §5.2 RequestTime)."""
    t = time.gmtime(ts)
    return (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}."
            f"{int(ts * 1000) % 1000:03d}Z")


def envelope(request: Request, result: Any, status: int = 200, message: str = "OK", *,
             extra: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> Response:
    t0 = request_t0(request)
    app_state = request.app.state
    body: dict[str, Any] = {
        "result": result,
        "MessageCode": status,
        "Message": message,
        "RequestTime": iso_utc(t0),
        "EndpointIP": getattr(app_state, "endpoint_ip", "0.0.0.0"),
        "EndpointPort": getattr(app_state, "endpoint_port", 0),
        "processing_time_ms": int((time.time() - t0) * 1000),
    }
    if extra:
        body.update(extra)
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def error_response(request: Request, err: ApiError) -> Response:
    extra: dict[str, Any] = {}
    if err.message_th:
        extra["MessageTH"] = err.message_th
    if err.issues is not None:
        extra["issues"] = err.issues
    return envelope(request, None, err.status, err.message, extra=extra, headers=err.headers)
