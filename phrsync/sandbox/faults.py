"""Deterministic fault injection for /api/* (and /idp/api/*) routes: one seeded RNG draw per request, so the
same seed and the same request order always give the same sequence of statuses (reproducible delivery-agent tests)."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import threading
import time
from typing import Any
from urllib.parse import unquote

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from phrsync.errors import UsageError
from phrsync.pdpa import mask_text
from phrsync.sandbox.envelope import iso_utc
from phrsync.sandbox.settings import FaultConfig

access_log = logging.getLogger("phrsync.sandbox.access")
# /token also takes its credentials as query parameters: their values never reach the access log
_SECRET_PARAM = re.compile(r"(?i)((?:^|&)(?:[^=&]*password[^=&]*|[^=&]*token|jwt)=)[^&]*")
_GATEWAY_HTML = "<html><head><title>{code} {reason}</title></head><body><center><h1>{code} {reason}</h1></center>" \
                "<hr><center>nginx</center></body></html>\n"


def check(cfg: FaultConfig) -> FaultConfig:
    """``cfg`` when every probability is in 0..1 and they sum to at most 1 (one draw decides one fate)."""
    probs = [cfg.p500, cfg.p502, cfg.p503, cfg.p429, cfg.p_timeout, cfg.p_drop]
    if any(not 0 <= p <= 1 for p in probs) or sum(probs) > 1:
        raise UsageError("ความน่าจะเป็นต้องอยู่ระหว่าง 0–1 และรวมไม่เกิน 1",
                         "fault probabilities must be in 0..1 and sum to at most 1")
    if cfg.latency_ms < 0 or cfg.timeout_seconds < 0 or cfg.retry_after < 0:
        raise UsageError("เวลาหน่วงและ Retry-After ต้องไม่ติดลบ", "latency, timeout and Retry-After cannot be negative")
    return cfg


class FaultPlan:
    """Draws the fate of each request: None (serve normally) or one of 500/502/503/429/timeout/drop."""

    def __init__(self, cfg: FaultConfig) -> None:
        self.cfg = cfg
        self._rng = random.Random(cfg.seed)
        self._lock = threading.Lock()
        self.history: list[str] = []  # fate of each /api request, for tests and the dashboard

    def draw(self) -> str | None:
        c = self.cfg
        with self._lock:
            x = self._rng.random()
            fate: str | None = None
            edge = 0.0
            for name, p in (("500", c.p500), ("502", c.p502), ("503", c.p503), ("429", c.p429),
                            ("timeout", c.p_timeout), ("drop", c.p_drop)):
                edge += p
                if x < edge:
                    fate = name
                    break
            self.history.append(fate or "ok")
            return fate


class FaultMiddleware:
    """Outermost ASGI layer: stamps the request start time, optionally writes a CID-masked access log,
    then injects faults on /api/* only."""

    def __init__(self, app: ASGIApp, plan: FaultPlan | None, access_log: bool = False) -> None:
        self.app = app
        self.plan = plan
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope["sbx_t0"] = time.time()
        if self.access_log:
            await self._logged(scope, receive, send)
        else:
            await self._serve(scope, receive, send)

    async def _logged(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Access log line with every 13-digit number masked (WebApp query strings carry CIDs, percent-encoded
        or not) and credentials in the query string (``/token?password_hash=``) replaced by ``***``."""
        status = [0]

        async def spy(msg: Any) -> None:
            if msg["type"] == "http.response.start":
                status[0] = msg["status"]
            await send(msg)

        try:
            await self._serve(scope, receive, spy)
        finally:
            q = _SECRET_PARAM.sub(r"\1***", scope.get("query_string", b"").decode("latin-1"))
            target = scope["path"] + (f"?{unquote(q)}" if q else "")
            ms = (time.time() - scope["sbx_t0"]) * 1000
            access_log.info("%s %s %s %.0f ms", scope["method"], mask_text(target), status[0] or "-", ms)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        plan = self.plan
        if plan is None or not scope["path"].startswith(("/api/", "/idp/api/")):
            await self.app(scope, receive, send)
            return
        if plan.cfg.latency_ms > 0:
            await asyncio.sleep(plan.cfg.latency_ms / 1000.0)
        fate = plan.draw()
        if fate is None:
            await self.app(scope, receive, send)
        elif fate == "timeout":
            # take the body first, sleep past the client's timeout, then process anyway: the write lands after
            # the client gave up, as with a slow real server
            replay = await _buffer(receive)
            await asyncio.sleep(plan.cfg.timeout_seconds)
            await self.app(scope, replay, send)
        elif fate == "drop":
            await _drop(receive)
        elif fate in ("502", "503"):
            reason = "Bad Gateway" if fate == "502" else "Service Temporarily Unavailable"
            body = _GATEWAY_HTML.format(code=fate, reason=reason).encode()
            await _send(send, int(fate), body, b"text/html")
        else:
            code = int(fate)
            msg = "Too Many Requests" if code == 429 else "Internal Server Error (injected)"
            headers = [(b"retry-after", str(plan.cfg.retry_after).encode())] if code == 429 else []
            body = orjson.dumps({"result": None, "MessageCode": code, "Message": msg,
                                 "RequestTime": iso_utc(scope["sbx_t0"]), "EndpointIP": "0.0.0.0",
                                 "EndpointPort": 0, "processing_time_ms": 0})
            await _send(send, code, body, b"application/json", headers)


async def _send(send: Send, status: int, body: bytes, ctype: bytes,
                headers: list[tuple[bytes, bytes]] | None = None) -> None:
    hs = [(b"content-type", ctype), (b"content-length", str(len(body)).encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": hs})
    await send({"type": "http.response.body", "body": body})


async def _buffer(receive: Receive) -> Receive:
    """Read the whole request body now and return a ``receive`` that replays it."""
    chunks = []
    while True:
        msg = await receive()
        if msg["type"] != "http.request":
            break
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body"):
            break
    pending = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

    async def replay() -> Any:
        return pending.pop() if pending else await receive()

    return replay


class ConnectionDropped(Exception):
    """Raised where the server cannot reach the socket (in-process test clients)."""


async def _drop(receive: Receive) -> None:
    """Close the TCP connection without any response. Under uvicorn the ``receive`` callable is bound to the
    request cycle, which holds the transport; abort() resets the socket so the client sees no status line."""
    owner: Any = getattr(receive, "__self__", None)
    transport = getattr(owner, "transport", None)
    if transport is None:
        raise ConnectionDropped("injected connection drop")
    transport.abort()
    if hasattr(owner, "disconnected"):
        owner.disconnected = True  # uvicorn then skips its 'no response' fallback
