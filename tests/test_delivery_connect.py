"""The agent's one httpx client: its pool, TLS verified with the target's CA bundle, proxies from the
environment, what counts as a TLS failure, the quick read of an acceptance, and a local target nobody serves."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from phrsync.delivery import outbox as ob
from phrsync.delivery.config import DeliverySettings, Target
from phrsync.delivery.connect import (
    EXTRA_CONNECTIONS,
    new_client,
    prepared,
    proxy_for,
    refused_locally,
    send_direct,
    tls_context,
    tls_failure,
)
from phrsync.delivery.sender import Sender, _message_code

PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY",
              "all_proxy")


def test_connections_match_the_concurrency(tmp_path: Path) -> None:
    """One httpx client per upload worker holding one connection, and one more for logins and status calls."""
    box = ob.Outbox(f"sqlite:///{tmp_path / 's.sqlite'}")
    settings = DeliverySettings(target=Target(name="t", base_url="https://phr.example/base/", concurrency=5),
                                state_url=box.url)

    def pool(c: httpx.AsyncClient) -> int:
        return c._transport._pool._max_connections  # type: ignore[attr-defined]

    async def pools() -> tuple[list[int], int, bool, str]:
        async with Sender(settings, box) as snd:
            assert snd.client is not None and snd.tokens is not None
            return ([pool(c) for c in snd.workers], pool(snd.client), snd.tokens.client is snd.client,
                    str(snd._url("UpdatePHRv1")))

    try:
        assert asyncio.run(pools()) == ([1] * 5, EXTRA_CONNECTIONS, True, "https://phr.example/base/api/UpdatePHRv1")
    finally:
        box.close()


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
            await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    async def main() -> None:
        server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=server_ctx)
        url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        async with server:
            async with new_client(url, connections=1, timeout=5, verify=tls_context([url], str(cert)),
                                  user_agent="t") as c:
                assert (await c.post("/api/x", content=b"{}")).content == b"ok"
            # without the UAT CA bundle the self-signed certificate is refused: TLS is never skipped
            async with new_client(url, connections=1, timeout=5, verify=tls_context([url], None),
                                  user_agent="t") as c:
                with pytest.raises(httpx.ConnectError) as e:
                    await c.post("/api/x", content=b"{}")
                assert tls_failure(e.value)

    asyncio.run(main())


def test_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    assert proxy_for("https://phr1.moph.go.th") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.province.local:3128")
    assert proxy_for("https://phr1.moph.go.th") == "http://proxy.province.local:3128"
    monkeypatch.setenv("NO_PROXY", "phr1.moph.go.th")
    assert proxy_for("https://phr1.moph.go.th") is None


@pytest.mark.parametrize(("body", "code"), [
    (b'{"result":{},"MessageCode":200,"Message":"OK"}', 200), (b'{"MessageCode":200}', 200),
    (b'{"MessageCode":2000}', 2000), (b'{"a":{"MessageCode":200},"MessageCode":500}', 500),
    (b'{"MessageCode":500}', 500), (b"", None), (b'{"MessageCode": 200}', 200), (b"not json", None),
    (b'{"x":"\\"MessageCode\\":200"}', None), (b'{"MessageCode":200,"r":{"MessageCode":409}}', 200)])
def test_message_code_read_quickly_only_where_that_is_the_same_as_parsing(body: bytes, code: int | None) -> None:
    assert _message_code(httpx.Response(200, content=body)) == code


def test_only_certificate_verification_counts_as_a_tls_failure() -> None:
    """A certificate the agent does not trust is reported (never retried into success); a connection cut during
    the handshake is an ordinary transient error."""
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


def test_a_refused_connection_is_final_only_on_this_computer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listening on loopback is not cured by retrying (the sandbox is on another port); a refusal from
    a remote host may be PHR restarting, so it stays transient."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{s.getsockname()[1]}"
    s.close()

    async def refused() -> httpx.ConnectError:
        async with httpx.AsyncClient() as c:
            with pytest.raises(httpx.ConnectError) as e:
                await c.get(url)
        return e.value

    err = asyncio.run(refused())
    assert refused_locally(err, url)
    assert not refused_locally(err, "https://phr1.moph.go.th")
    assert not refused_locally(httpx.ReadTimeout("slow"), url)


def test_an_upload_goes_prepared_to_its_connection_with_no_cookie_jar() -> None:
    """Uploads skip the client's layers (connect.send_direct): the request still carries the client's headers
    and timeout, the answer is read whole, and a cookie the server sets is neither kept nor sent back."""
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, headers={"Set-Cookie": "lb=node1; Path=/"}, content=b'{"MessageCode":200}')

    async def go() -> tuple[httpx.Response, httpx.Response]:
        c = new_client("http://127.0.0.1:9", connections=1, timeout=7, verify=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT),
                       user_agent="phrsync test", transport=httpx.MockTransport(handler))
        try:
            url = httpx.URL("http://127.0.0.1:9/api/UpdatePHRv1")
            r = await send_direct(c, prepared(c, "POST", url, b"{}", {"Authorization": "Bearer t"}))
            return r, await c.get("/api/GetAgentComputerName")
        finally:
            await c.aclose()

    r, _ = asyncio.run(go())
    assert r.content == b'{"MessageCode":200}' and r.request is seen[0]
    up = seen[0]
    assert up.headers["user-agent"] == "phrsync test" and up.headers["authorization"] == "Bearer t"
    assert up.headers["content-length"] == "2" and up.extensions["timeout"]["read"] == 7
    assert "cookie" not in seen[1].headers


def test_uploads_to_a_proxied_target_go_through_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """The proxy is one of the client's mounts: the direct path would bypass it."""
    for v in PROXY_VARS:
        monkeypatch.delenv(v, raising=False)
    box_url = "sqlite://"
    t = Target(name="t", base_url="https://phr.example")
    assert Sender(DeliverySettings(target=t, state_url=box_url), None)._direct_for() is True  # type: ignore[arg-type]
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert Sender(DeliverySettings(target=t, state_url=box_url), None)._direct_for() is False  # type: ignore[arg-type]
