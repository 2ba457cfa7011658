"""Slow and idle clients over raw sockets: header and body deadlines and the connection cap
(:mod:`phrsync.httpserver`), on uvicorn's two HTTP protocols and in the sandbox. Every wait is bounded."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from test_sandbox_support import PASSWORD_KEY, login, make_cid, update_payload

from phrsync import httpserver
from phrsync.config import load_config
from phrsync.httpserver import HttpLimits
from phrsync.sandbox.server import running
from phrsync.sandbox.settings import FaultConfig, SandboxConfig, from_config

FAST = HttpLimits(header_timeout=0.5, body_timeout=0.5, max_connections=4, keep_alive=5)
PROTOCOLS = ["h11", "httptools"]


async def _echo(scope: Any, receive: Any, send: Any) -> None:
    """Reads the whole body, then answers with its length (after a pause when the path asks for one; /lazy
    pauses before reading, so the server stops reading the socket once its buffer is full)."""
    import asyncio

    if scope["path"] == "/lazy":
        await asyncio.sleep(1.5)
    size, more = 0, True
    while more:
        msg = await receive()
        if msg["type"] != "http.request":
            return
        size += len(msg.get("body", b""))
        more = msg.get("more_body", False)
    if scope["path"] == "/slow":
        await asyncio.sleep(1.2)
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@contextlib.contextmanager
def _server(limits: HttpLimits, http: str) -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    cfg = httpserver.config(_echo, limits, http=http, lifespan="off", log_level="warning")
    server = uvicorn.Server(cfg)
    t = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        t.join(10)
        sock.close()


def _connect(port: int, data: bytes = b"") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    if data:
        s.sendall(data)
    return s


def _until_closed(s: socket.socket, limit: float = 5.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took (bounded)."""
    t0 = time.monotonic()
    s.settimeout(limit)
    got = b""
    try:
        while chunk := s.recv(65536):
            got += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    finally:
        s.close()
    return got, time.monotonic() - t0


def _post(path: str = "/", body: bytes = b"{}") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


@pytest.mark.parametrize("http", PROTOCOLS)
def test_a_connection_that_sends_nothing_or_part_of_its_headers_is_closed(http: str) -> None:
    """uvicorn held a connection that sent nothing, or half a request line, for as long as the client liked."""
    with _server(FAST, http) as port:
        for data in (b"", b"POST /api/UpdatePHRv1 HTTP/1.1\r\nHost: x\r\n"):
            got, took = _until_closed(_connect(port, data))
            assert got.startswith(b"HTTP/1.1 408 ") and "ส่วนหัว".encode() in got, got
            assert 0.3 < took < 3, took
        # trickling one byte at a time does not move the deadline
        s = _connect(port)
        t0 = time.monotonic()
        with contextlib.suppress(OSError):
            for b in b"GET / HTTP/1.1\r\nHost: x\r\n":
                s.sendall(bytes([b]))
                time.sleep(0.1)
        got, _ = _until_closed(s)
        assert b" 408 " in got and time.monotonic() - t0 < 4


@pytest.mark.parametrize("http", PROTOCOLS)
def test_a_connection_that_sends_part_of_its_body_is_closed(http: str) -> None:
    with _server(FAST, http) as port:
        got, took = _until_closed(_connect(port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"))
        assert got.startswith(b"HTTP/1.1 408 ") and "เนื้อหา".encode() in got, got
        assert 0.3 < took < 3
        # a whole request is answered, and the application's own time is not cut (1.2 s > both deadlines)
        s = _connect(port, _post("/slow", b"x" * 10))
        s.settimeout(5)
        assert s.recv(4096).startswith(b"HTTP/1.1 200 ")
        # the server not reading (the application has not taken the body yet) is not the client's delay
        r = httpx.post(f"http://127.0.0.1:{port}/lazy", content=b"x" * 2_000_000, timeout=10)
        assert r.status_code == 200 and r.text == "2000000"
        # the same connection, kept alive: the next request's half headers are cut too
        s.sendall(b"GET / HTTP/1.1\r\nHo")
        got, took = _until_closed(s)
        assert b" 408 " in got and took < 3


@pytest.mark.parametrize("http", PROTOCOLS)
def test_connections_beyond_the_cap_are_refused_and_idle_ones_do_not_tie_the_server_up(http: str) -> None:
    with _server(FAST, http) as port:
        idle = [_connect(port) for _ in range(FAST.max_connections)]
        time.sleep(0.1)
        got, took = _until_closed(_connect(port))
        assert got.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in got.lower() and took < 1, got
        # the idle sockets are cut at their header deadline; then the server answers again
        for s in idle:
            assert b" 408 " in _until_closed(s)[0]
        r = httpx.post(f"http://127.0.0.1:{port}/", content=b"abc", timeout=5)
        assert r.status_code == 200 and r.text == "3"


def test_the_sandbox_serves_with_its_limits(tmp_path: Path) -> None:
    """[sandbox] header_timeout_seconds, body_timeout_seconds and max_connections reach the server; a slow
    application (latency fault longer than both deadlines) is still answered."""
    (tmp_path / "phrsync.toml").write_text('[sandbox]\nheader_timeout_seconds = 0.5\nbody_timeout_seconds = 0.5\n'
                                           'max_connections = 8\nmax_large_bodies = 2\n', encoding="utf-8")
    sc = from_config(load_config(tmp_path / "phrsync.toml"), data_dir=tmp_path / "sbx")
    assert sc.limits() == HttpLimits(header_timeout=0.5, body_timeout=0.5, max_connections=8)
    assert sc.max_large_bodies == 2
    cfg = SandboxConfig(data_dir=tmp_path / "sbx", password_key=PASSWORD_KEY, rate_limit_per_minute=0,
                        header_timeout_seconds=0.5, body_timeout_seconds=0.5, max_connections=8,
                        faults=FaultConfig(latency_ms=1200))
    with running(cfg) as s:
        got, took = _until_closed(_connect(s.port, b"POST /api/UpdatePHRv1 HTTP/1.1\r\n"))
        assert got.startswith(b"HTTP/1.1 408 ") and took < 3
        c = login(s, "99999")
        bearer = c.headers["Authorization"].encode()
        got, took = _until_closed(_connect(s.port, b"POST /api/UpdatePHRv1 HTTP/1.1\r\nHost: x\r\nAuthorization: "
                                           + bearer + b"\r\nContent-Type: application/json\r\n"
                                           b"Content-Length: 900\r\n\r\n{"))
        assert got.startswith(b"HTTP/1.1 408 ") and took < 4, got
        r = c.post("/api/UpdatePHRv1", json=update_payload("99999", make_cid(51), "VN-SLOW"))
        assert r.status_code == 200, r.text
