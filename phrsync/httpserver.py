"""uvicorn with the limits a server reachable on a network needs, for the sandbox and any other phrsync web
server (the province's monitoring web): ``httpserver.config(app, limits, ...)`` instead of ``uvicorn.Config``,
``httpserver.run(app, limits, ...)`` instead of ``uvicorn.run``.

uvicorn alone keeps a connection that sends nothing, half its headers or half its body for as long as the
client likes, and accepts every connection it is offered: a handful of idle sockets ties it up. Here each
connection has a deadline for its request line and headers (from the moment it opens, or from the first byte of
the next request on a kept-alive connection) and one for its body (from the end of the headers); past one it is
answered 408 and closed. A connection beyond ``max_connections`` is answered 503 and closed at once. The time
the application spends on a request is not limited: only waiting for the client is. Time the server itself was
not reading (its event loop busy, or the body's buffer full until the application takes it) is not charged to
the client: a deadline that falls then is moved on until the server reads again."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is optional for uvicorn
    HttpToolsProtocol = None  # type: ignore[misc,assignment]


@dataclass(frozen=True)
class HttpLimits:
    """How long a server waits for a client, and how many connections it keeps open."""

    header_timeout: float = 10.0  # seconds for the request line and headers
    body_timeout: float = 60.0  # seconds for the whole body after the headers (20 MiB at ≥ 350 KB/s)
    max_connections: int = 1000  # open connections; the next is answered 503 and closed
    keep_alive: float = 30.0  # seconds an idle kept-alive connection stays open between requests


def _answer(status: int, reason: str, en: str, th: str, retry_after: int | None = None) -> bytes:
    """A whole HTTP/1.1 response that closes the connection, with a JSON body in the MOPH-PHR error keys."""
    body = orjson.dumps({"result": None, "MessageCode": status, "Message": en, "MessageTH": th})
    extra = f"retry-after: {retry_after}\r\n" if retry_after is not None else ""
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"{extra}connection: close\r\n\r\n")
    return head.encode("ascii") + body


_TIMEOUT_HEADERS = _answer(408, "Request Timeout", "request headers not received in time",
                           "ได้รับส่วนหัวของคำขอไม่ครบภายในเวลาที่กำหนด")
_TIMEOUT_BODY = _answer(408, "Request Timeout", "request body not received in time",
                        "ได้รับเนื้อหาของคำขอไม่ครบภายในเวลาที่กำหนด")
_TOO_MANY = _answer(503, "Service Unavailable", "too many open connections: retry shortly",
                    "มีการเชื่อมต่อพร้อมกันมากเกินไป กรุณาลองใหม่", retry_after=1)


class _Guard:
    """Deadlines and the connection cap on top of a uvicorn HTTP protocol (h11 or httptools).

    The phase is read from uvicorn's request cycle at each event: no cycle yet, or the last one answered, is
    'headers' once a byte has come (or on a new connection); a cycle whose ``more_body`` is still true is
    'body'; anything else is the application's time, with no deadline."""

    config: Any
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    server_state: Any
    cycle: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits: HttpLimits = getattr(self.config, "limits", None) or HttpLimits()
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._phase: str | None = None
        self._seen: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        if len(self.server_state.connections) > self._limits.max_connections:
            self.transport.write(_TOO_MANY)
            self.transport.close()
            return
        self._arm("headers")

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        self._update(got_data=True)

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        self._update(got_data=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _update(self, got_data: bool) -> None:
        if self.transport.is_closing():
            self._disarm()
            return
        cyc = self.cycle
        if cyc is not None and cyc is not self._seen:  # the headers of a new request are complete
            self._seen = cyc
            if cyc.more_body and not cyc.response_complete:
                self._arm("body")
            else:
                self._disarm()
        elif cyc is not None and cyc.response_complete:  # between requests: uvicorn's keep-alive while idle
            if self._phase != "headers":
                self._disarm()
                if got_data:  # the first bytes of the next request
                    self._arm("headers")
        elif self._phase == "body" and cyc is not None and not cyc.more_body:
            self._disarm()  # the whole body is in: the application's time now

    def _arm(self, phase: str) -> None:
        self._disarm()
        self._phase = phase
        limit = self._limits.header_timeout if phase == "headers" else self._limits.body_timeout
        self._schedule(phase, limit)

    def _schedule(self, phase: str, delay: float) -> None:
        self._due = self.loop.time() + delay
        self._timer = self.loop.call_later(delay, self._expire, phase)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._phase = None

    def _expire(self, phase: str) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        late = self.loop.time() - self._due  # the event loop was busy: what the client sent may be unread
        paused = phase == "body" and bool(getattr(getattr(self, "flow", None), "read_paused", False))
        if late > 0.5 or paused:
            self._schedule(phase, max(late, 1.0))
            return
        cyc = self.cycle
        if phase == "headers" or (cyc is not None and not cyc.response_started):
            self.transport.write(_TIMEOUT_HEADERS if phase == "headers" else _TIMEOUT_BODY)
        self.transport.close()  # uvicorn tells a waiting application that the client is gone


class GuardedH11Protocol(_Guard, H11Protocol):
    """uvicorn's h11 protocol with :class:`HttpLimits`."""


if HttpToolsProtocol is not None:
    class GuardedHttpToolsProtocol(_Guard, HttpToolsProtocol):
        """uvicorn's httptools protocol with :class:`HttpLimits`."""
else:  # pragma: no cover
    GuardedHttpToolsProtocol = None  # type: ignore[assignment,misc]


def protocol_class(http: str = "auto") -> type[asyncio.Protocol]:
    """The guarded protocol uvicorn's ``http`` choice names ("auto": httptools when installed, as uvicorn)."""
    if http == "h11" or (http == "auto" and GuardedHttpToolsProtocol is None):
        return GuardedH11Protocol
    if GuardedHttpToolsProtocol is None:
        raise ValueError("httptools is not installed")
    return GuardedHttpToolsProtocol


class GuardedConfig(uvicorn.Config):
    """A ``uvicorn.Config`` whose connections obey ``limits`` (kept on the config, so worker processes that
    uvicorn spawns get them too)."""

    def __init__(self, app: Any, limits: HttpLimits | None = None, http: str = "auto", **kwargs: Any) -> None:
        self.limits = limits or HttpLimits()
        kwargs.setdefault("timeout_keep_alive", int(self.limits.keep_alive))
        super().__init__(app, http=protocol_class(http), **kwargs)


def config(app: Any, limits: HttpLimits | None = None, **kwargs: Any) -> uvicorn.Config:
    """``uvicorn.Config(app, **kwargs)`` with ``limits`` on every connection."""
    return GuardedConfig(app, limits, **kwargs)


def run(app: Any, limits: HttpLimits | None = None, **kwargs: Any) -> None:
    """``uvicorn.run(app, **kwargs)`` with ``limits``; ``workers`` > 1 needs ``app`` as an import string."""
    from uvicorn.supervisors import Multiprocess

    cfg = GuardedConfig(app, limits, **kwargs)
    server = uvicorn.Server(cfg)
    try:
        if cfg.workers > 1:
            if not isinstance(app, str):
                raise ValueError("workers > 1 needs the application as an import string")
            sock = cfg.bind_socket()
            Multiprocess(cfg, sockets=[sock]).run()
        else:
            server.run()
    finally:
        if cfg.uds and os.path.exists(cfg.uds):
            os.remove(cfg.uds)
