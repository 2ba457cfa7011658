"""The agent's one HTTP client and what a connection failure means to the user.

Every request goes through ``httpx``: each upload worker has a client of its own holding one keep-alive
connection, and one more client (:data:`EXTRA_CONNECTIONS`) carries logins, status reports and OrganizationSummary,
so connections match the concurrency. One client per worker rather than one pool of ``concurrency`` connections:
httpcore's pool walks every connection (a ``poll`` on each idle one) for every request and every answer: with
one pool of 18 connections 3,000 uploads on loopback cost the agent 4.2 s of CPU in sending, with a client per
worker 2.1 s (``sync_bench.py``'s set-up, 16 workers, 2 cores). TLS is always verified: the system/certifi roots, or the target's own ``ca_bundle`` (UAT);
never off. Proxies come from the environment (``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``), as httpx reads them.

An upload is a prepared ``httpx.Request`` (:func:`prepared`) handed straight to its connection's transport
(:func:`send_direct`), on a client without a cookie jar (:class:`AgentClient`): the client's layers cost a
tenth or more of the agent's CPU per upload and do nothing for it (``benchmarks/http_cpu.py``). Its sockets are
asyncio's own transports (:mod:`phrsync.delivery.netio`) rather than httpcore's anyio streams: 293 against 391 µs of
CPU per upload in ``http_cpu.py`` (2026-12-07, quiet machine).
"""

from __future__ import annotations

import ipaddress
import ssl
import urllib.request
import weakref

import httpx

EXTRA_CONNECTIONS = 2  # the shared client's pool: logins, status reports and reconcile calls beside the uploads


def proxy_for(url: str) -> str | None:
    """The proxy httpx will use for ``url`` from the environment (None: a direct connection); named in the
    message when the target cannot be reached, since a wrong proxy looks like a target that is down."""
    u = httpx.URL(url)
    if urllib.request.proxy_bypass(u.host):
        return None
    return urllib.request.getproxies().get(u.scheme) or None


def tls_context(urls: list[str], ca_bundle: str | None) -> ssl.SSLContext:
    """Verification for the target: the CA bundle when given, else certifi's roots; plain-http targets (the local
    sandbox) get an empty context, so any TLS they met would fail verification rather than pass unchecked."""
    if any(u.startswith("https:") for u in urls):
        import certifi

        return ssl.create_default_context(cafile=ca_bundle or certifi.where())
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


_TRANSPORT: weakref.WeakKeyDictionary[httpx.AsyncClient, httpx.AsyncBaseTransport] = weakref.WeakKeyDictionary()
_BASE: weakref.WeakKeyDictionary[httpx.AsyncClient, tuple[list[tuple[str, str]], dict[str, float | None]]] = \
    weakref.WeakKeyDictionary()


class NoCookies(httpx.Cookies):
    """PHR's API sets no cookie the agent needs: nothing is read from answers or added to requests (reading
    them cost each upload a ``urllib.request.Request`` built for the cookie jar)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set_cookie_header(self, request: httpx.Request) -> None:
        return None


class AgentClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` without a cookie jar (:class:`NoCookies`)."""

    _no_cookies = NoCookies()

    @property  # type: ignore[override]
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, value: object) -> None:
        return None


def new_client(base_url: str, *, connections: int, timeout: float, verify: ssl.SSLContext, user_agent: str,
               transport: httpx.AsyncBaseTransport | None = None, asyncio_sockets: bool = True) -> httpx.AsyncClient:
    """A client whose pool holds at most ``connections`` keep-alive connections, its sockets on asyncio's own
    transports (:mod:`phrsync.delivery.netio`; ``asyncio_sockets=False``: httpcore's default, through anyio)."""
    n = max(1, connections)
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    if transport is None:  # made here so that uploads can go to it directly (:func:`send_direct`)
        transport = httpx.AsyncHTTPTransport(verify=verify, limits=limits)
        if asyncio_sockets:
            from phrsync.delivery.netio import AsyncioBackend

            # httpx takes no network backend; its pool hands this one to every connection it opens
            transport._pool._network_backend = AsyncioBackend()  # type: ignore[union-attr]
    client = AgentClient(base_url=base_url, timeout=timeout, verify=verify, limits=limits, transport=transport,
                         headers={"User-Agent": user_agent})
    _TRANSPORT[client] = transport
    return client


async def send_direct(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    """``request`` (from :func:`prepared`) straight to the client's transport, its answer read whole: the
    client's auth, redirect, cookie and mount layers do nothing for an upload (no redirects, no cookies,
    the bearer in the headers) and cost a third of the agent's CPU per upload. Not for a proxied target
    (the proxy is a mount of the client: use ``client.send``)."""
    r = await _TRANSPORT[client].handle_async_request(request)
    try:
        await r.aread()
    finally:
        await r.aclose()
    r.request = request
    return r


def prepared(client: httpx.AsyncClient, method: str, url: httpx.URL, body: bytes | None,
             headers: dict[str, str]) -> httpx.Request:
    """A request as ``client.build_request`` would make it (the client's headers and timeout) without its
    merging of URL, query, cookies and headers on every upload: the client's part is taken once."""
    base = _BASE.get(client)
    if base is None:
        base = _BASE[client] = (client.headers.multi_items(), client.timeout.as_dict())
    return httpx.Request(method, url, content=body, headers=[*base[0], *headers.items()],
                         extensions={"timeout": base[1]})


def is_local(url: str) -> bool:
    """Does ``url`` point at this computer (localhost or a loopback address)?"""
    host = httpx.URL(url).host
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def private_link(url: str) -> bool:
    """HTTPS, or plain HTTP that never leaves this computer (the local sandbox)."""
    return httpx.URL(url).scheme != "http" or is_local(url)


def tls_failure(exc: BaseException) -> str | None:
    """What the TLS verification behind a connection error said, when that is the cause (a certificate the agent
    does not trust, a name that does not match): no retry cures it — the target's ``ca_bundle`` does (UAT). Other
    TLS errors (a connection cut during the handshake) stay transient."""
    seen: set[int] = set()
    x: BaseException | None = exc
    while x is not None and id(x) not in seen:
        seen.add(id(x))
        if isinstance(x, ssl.SSLCertVerificationError):
            return str(x.verify_message or x.reason or x)
        x = x.__cause__ or x.__context__
    return None


def tls_advice(host: str, why: str) -> str:
    return (f"ใบรับรอง TLS ของ {host} ไม่ผ่านการตรวจสอบ ({why}) — สำหรับ UAT ให้ระบุ ca_bundle ของ target; ไม่มีการข้ามการตรวจสอบ / "
            f"the TLS certificate of {host} was not verified ({why}) — for UAT set the target's ca_bundle; "
            "verification is never skipped")


def refused_locally(exc: BaseException, url: str) -> bool:
    """A connection to this computer refused: nothing listens at that port, and no retry will change it (a
    sandbox started on another port, or not started). Refused connections elsewhere stay transient (PHR
    restarting behind its load balancer)."""
    if not isinstance(exc, httpx.ConnectError) or not is_local(url) or proxy_for(url):
        return False
    seen: set[int] = set()
    x: BaseException | None = exc
    while x is not None and id(x) not in seen:
        seen.add(id(x))
        if isinstance(x, ConnectionRefusedError) or "refused" in str(x).lower():
            return True
        x = x.__cause__ or x.__context__
    return False


def nothing_listens(url: str, target: str, setting: str = "base_url") -> str:
    """The message for :func:`refused_locally`: the URL tried and the setting that moves it."""
    return (f"ไม่มีเซิร์ฟเวอร์รับที่ {url} (ยังไม่ได้เริ่ม phrsync sandbox serve หรือรันอยู่ที่พอร์ตอื่น) ตั้ง "
            f"[targets.{target}] {setting} ให้ตรง / nothing listens at {url} (the sandbox is not started, or runs on "
            f"another port): start it or set [targets.{target}] {setting} to where it runs")
