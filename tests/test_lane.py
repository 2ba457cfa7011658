"""The upload lane's own HTTP/1.1: framing, keep-alive and its loss, timeouts, TLS, proxies."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from phrsync.delivery.lane import Lane, proxy_for

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, v in (h.split(": ", 1) for h in head[1:] if h)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return head[0], headers, body


async def serve(handler: Handler, ssl_ctx: ssl.SSLContext | None = None) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ssl_ctx)
    return server, server.sockets[0].getsockname()[1]


def run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def plain() -> ssl.SSLContext:
    return ssl.create_default_context()


def test_keep_alive_framing_and_headers() -> None:
    seen: list[tuple[str, dict[str, str], bytes]] = []
    connections = 0
    ports: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        for n in range(3):
            seen.append(await read_request(reader))
            if n == 0:  # content-length
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n"
                             b'{"MessageCode":1}')
            elif n == 1:  # chunked, in pieces
                writer.write(b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n")
                await writer.drain()
                writer.write(b"2\r\n1}\r\n0\r\n\r\n")
            else:  # the server ends the connection after this answer
                writer.write(b"HTTP/1.1 429 Too Many\r\nRetry-After: 3\r\nConnection: close\r\n"
                             b"Content-Length: 0\r\n\r\n")
            await writer.drain()
        writer.close()

    async def main() -> None:
        server, port = await serve(handler)
        ports.append(port)
        async with server, Lane(f"http://127.0.0.1:{port}/base/", plain(), 5, {"User-Agent": "phrsync test"}) as lane:
            r = await lane.request("POST", "/api/UpdatePHRv1", content=b'{"x":1}',
                                   headers={"Authorization": "Bearer T", "Content-Type": "application/json"})
            assert r.status_code == 200 and r.json() == {"MessageCode": 1}
            r = await lane.request("GET", "/api/OrganizationSummary", params={"date": "2025-01-02", "x": "a b"})
            assert r.status_code == 400 and r.json() == {"a": 1}
            r = await lane.request("POST", "/api/UpdatePHRv1", content=b"{}")
            assert r.status_code == 429 and r.headers["retry-after"] == "3"
            # the server closed after "Connection: close": the next request opens a new connection
            assert lane.conn is None

    run(main())
    assert connections == 1
    line, headers, body = seen[0]
    assert line == "POST /base/api/UpdatePHRv1 HTTP/1.1" and body == b'{"x":1}'
    assert headers["host"] == f"127.0.0.1:{ports[0]}"
    assert headers["authorization"] == "Bearer T" and headers["user-agent"] == "phrsync test"
    assert headers["content-length"] == "7"
    assert seen[1][0] == "GET /base/api/OrganizationSummary?date=2025-01-02&x=a+b HTTP/1.1"


def test_idle_connection_closed_by_the_server_is_reopened_transparently() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()  # keep-alive timeout on the server side, without saying so

    async def main() -> None:
        server, port = await serve(handler)
        async with server, Lane(f"http://127.0.0.1:{port}", plain(), 5) as lane:
            for _ in range(3):
                r = await lane.request("POST", "/api/x", content=b"{}")
                assert r.status_code == 200 and r.content == b"ok"
                await asyncio.sleep(0.05)

    run(main())
    assert connections == 3


def test_errors_are_httpx_transport_errors() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.transport.abort()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()

    async def main() -> None:
        server, port = await serve(silent)
        async with server, Lane(f"http://127.0.0.1:{port}", plain(), 0.3) as lane:
            with pytest.raises(httpx.ReadTimeout):
                await lane.request("POST", "/api/x", content=b"{}")
        for handler in (drop, garbage):
            server, port = await serve(handler)
            async with server, Lane(f"http://127.0.0.1:{port}", plain(), 2) as lane:
                with pytest.raises(httpx.TransportError):
                    await lane.request("POST", "/api/x", content=b"{}")
        server, port = await serve(silent)
        server.close()
        await server.wait_closed()
        with pytest.raises(httpx.ConnectError):
            await Lane(f"http://127.0.0.1:{port}", plain(), 2).request("POST", "/api/x")

    run(main())


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_tls_verified_with_the_target_ca_bundle(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await read_request(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    async def main() -> None:
        server, port = await serve(handler, server_ctx)
        async with server:
            async with Lane(f"https://127.0.0.1:{port}", ssl.create_default_context(cafile=str(cert)), 5) as lane:
                assert (await lane.request("POST", "/api/x", content=b"{}")).content == b"ok"
            # without the UAT CA bundle the self-signed certificate is refused: TLS is never skipped
            async with Lane(f"https://127.0.0.1:{port}", ssl.create_default_context(), 5) as lane:
                with pytest.raises(httpx.ConnectError, match="TLS"):
                    await lane.request("POST", "/api/x", content=b"{}")

    run(main())


def test_a_proxy_in_the_environment_keeps_the_httpx_path(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert proxy_for("https://phr1.moph.go.th") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.province.local:3128")
    assert proxy_for("https://phr1.moph.go.th") == "http://proxy.province.local:3128"
    monkeypatch.setenv("NO_PROXY", "phr1.moph.go.th")
    assert proxy_for("https://phr1.moph.go.th") is None


def test_sender_uses_lanes_only_for_direct_connections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from phrsync.delivery import outbox as ob
    from phrsync.delivery.config import DeliverySettings, Target
    from phrsync.delivery.sender import Sender

    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    box = ob.Outbox(f"sqlite:///{tmp_path / 's.sqlite'}")
    settings = DeliverySettings(target=Target(name="t", base_url="https://phr.example", concurrency=2),
                                state_url=box.url)

    async def lanes() -> list[type]:
        async with Sender(settings, box) as snd:
            return [type(x) for x in snd.lanes]

    try:
        assert asyncio.run(lanes()) == [Lane, Lane]
        monkeypatch.setenv("HTTPS_PROXY", "http://proxy.local:3128")
        assert asyncio.run(lanes()) == [httpx.AsyncClient, httpx.AsyncClient]
    finally:
        box.close()


@pytest.mark.parametrize(("body", "code"), [
    (b'{"result":{},"MessageCode":200,"Message":"OK"}', 200), (b'{"MessageCode":200}', 200),
    (b'{"MessageCode":2000}', 2000), (b'{"a":{"MessageCode":200},"MessageCode":500}', 500),
    (b'{"MessageCode":500}', 500), (b"", None), (b'{"MessageCode": 200}', 200), (b"not json", None),
    (b'{"x":"\\"MessageCode\\":200"}', None), (b'{"MessageCode":200,"r":{"MessageCode":409}}', 200)])
def test_message_code_read_quickly_only_where_that_is_the_same_as_parsing(body: bytes, code: int | None) -> None:
    from phrsync.delivery.lane import Answer
    from phrsync.delivery.sender import _message_code

    assert _message_code(Answer(200, [], body)) == code


def test_answer_timeout_counts_from_each_request() -> None:
    """One timer per lane, re-armed lazily: a timer left by an earlier, answered request must neither cut a
    later request short nor let it wait past its own timeout; answered requests never time out."""
    n = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal n
        while True:
            await read_request(reader)
            n += 1
            if n == 3:  # the third request is never answered
                await asyncio.sleep(5)
            await asyncio.sleep(0.15)  # each answer takes half the timeout
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server, port = await serve(handler)
        async with server, Lane(f"http://127.0.0.1:{port}", plain(), 0.3) as lane:
            for _ in range(2):  # together longer than one timeout, each within it
                assert (await lane.request("POST", "/api/x", content=b"{}")).status_code == 200
            t0 = loop.time()
            with pytest.raises(httpx.ReadTimeout):
                await lane.request("POST", "/api/x", content=b"{}")
            assert 0.29 <= loop.time() - t0 < 0.6
            assert lane.conn is None  # a timed-out connection is not reused
            await asyncio.sleep(0.4)  # the timer of an idle lane does nothing
            assert lane._timer is None

    run(main())


def test_only_certificate_verification_counts_as_a_tls_failure() -> None:
    """A certificate the agent does not trust is reported (never retried into success); a connection cut during
    the handshake is an ordinary transient error."""
    from phrsync.delivery.lane import tls_failure

    verify = ssl.SSLCertVerificationError(1, "certificate verify failed")
    verify.verify_message = "self-signed certificate"
    try:
        try:
            raise verify
        except ssl.SSLError as e:
            raise httpx.ConnectError(f"TLS: {e}") from e
    except httpx.ConnectError as wrapped:
        assert tls_failure(wrapped) == "self-signed certificate"
    try:
        try:
            raise ssl.SSLEOFError(8, "EOF occurred in violation of protocol")
        except ssl.SSLError as e:
            raise httpx.ConnectError(f"TLS: {e}") from e
    except httpx.ConnectError as wrapped:
        assert tls_failure(wrapped) is None
    assert tls_failure(httpx.ReadTimeout("slow")) is None
