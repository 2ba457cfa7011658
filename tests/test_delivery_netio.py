"""The agent's sockets (phrsync.delivery.netio) under httpx: each failure arrives as the httpx error the agent's retry
policy already knows, an idle connection the server closed is replaced, and a large body arrives whole."""

from __future__ import annotations

import asyncio
import ssl
import time

import httpx
import pytest

from phrsync.delivery.connect import new_client, prepared, refused_locally, send_direct
from phrsync.delivery.netio import AsyncioBackend

CTX = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def _serve(handler):  # type: ignore[no-untyped-def]
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    n = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0)
    return await reader.readexactly(n)


def _client(url: str, timeout: float = 5) -> httpx.AsyncClient:
    return new_client(url, connections=1, timeout=timeout, verify=CTX, user_agent="t")


def test_the_agent_client_uses_asyncio_sockets() -> None:
    """httpx takes no network backend, so new_client sets its pool's: an httpx release that moves it fails here."""
    c = _client("http://127.0.0.1:9")
    assert isinstance(c._transport._pool._network_backend, AsyncioBackend)  # type: ignore[attr-defined]
    slow = new_client("http://127.0.0.1:9", connections=1, timeout=5, verify=CTX, user_agent="t",
                      asyncio_sockets=False)
    assert not isinstance(slow._transport._pool._network_backend, AsyncioBackend)  # type: ignore[attr-defined]


def test_requests_on_one_connection_and_a_silent_server_times_out() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                body = await _read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            seen.append(body)
            if body == b"hang":
                await asyncio.sleep(30)
            writer.write(OK)
            await writer.drain()

    async def main() -> float:
        server, url = await _serve(handler)
        async with server, _client(url, timeout=0.5) as c:
            for i in range(3):
                r = await send_direct(c, prepared(c, "POST", httpx.URL(url + "/api/x"), b"n%d" % i, {}))
                assert (r.status_code, r.content) == (200, b"ok")
            t0 = time.monotonic()
            with pytest.raises(httpx.ReadTimeout):
                await send_direct(c, prepared(c, "POST", httpx.URL(url + "/api/x"), b"hang", {}))
            return time.monotonic() - t0

    took = asyncio.run(main())
    assert seen == [b"n0", b"n1", b"n2", b"hang"]
    assert 0.4 < took < 3


def test_an_idle_connection_the_server_closed_is_replaced() -> None:
    """Servers close keep-alive connections when they like (PHR behind a load balancer): the next upload opens a new
    connection instead of failing on the dead one."""
    conns = [0]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conns[0] += 1
        try:
            await _read_request(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        writer.write(OK)  # keep-alive promised, then closed anyway
        await writer.drain()
        writer.close()

    async def main() -> list[int]:
        server, url = await _serve(handler)
        out = []
        async with server, _client(url) as c:
            for _ in range(3):
                r = await send_direct(c, prepared(c, "POST", httpx.URL(url + "/api/x"), b"{}", {}))
                out.append(r.status_code)
                await asyncio.sleep(0.05)  # the close arrives while the connection is idle
        return out

    assert asyncio.run(main()) == [200, 200, 200]
    assert conns[0] == 3


def test_a_dropped_connection_and_a_refused_one_are_the_errors_the_agent_knows() -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _read_request(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        writer.transport.abort()  # no answer at all

    async def main() -> tuple[BaseException, BaseException, str]:
        server, url = await _serve(drop)
        async with server, _client(url) as c:
            with pytest.raises(httpx.TransportError) as dropped:
                await send_direct(c, prepared(c, "POST", httpx.URL(url + "/api/x"), b"{}", {}))
        server.close()
        await server.wait_closed()
        async with _client(url) as c:
            with pytest.raises(httpx.ConnectError) as refused:
                await c.post(url + "/api/x", content=b"{}")
        return dropped.value, refused.value, url

    dropped, refused, url = asyncio.run(main())
    assert isinstance(dropped, (httpx.RemoteProtocolError, httpx.ReadError)), repr(dropped)
    assert refused_locally(refused, url)  # nothing listens: the run says so instead of retrying


def test_a_large_body_to_a_slow_reader_arrives_whole() -> None:
    body = bytes(range(256)) * (20 * 4096)  # 20 MiB, above the write buffer: flow control must hold it

    got: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        n = next(int(x.split(b":")[1]) for x in head.split(b"\r\n") if x.lower().startswith(b"content-length"))
        parts = []
        while n:
            chunk = await reader.read(min(n, 1 << 20))
            parts.append(chunk)
            n -= len(chunk)
            await asyncio.sleep(0.001)
        got.append(b"".join(parts))
        writer.write(OK)
        await writer.drain()

    async def main() -> int:
        server, url = await _serve(handler)
        async with server, _client(url, timeout=30) as c:
            return (await send_direct(c, prepared(c, "POST", httpx.URL(url + "/api/x"), body, {}))).status_code

    assert asyncio.run(main()) == 200
    assert got == [body]
