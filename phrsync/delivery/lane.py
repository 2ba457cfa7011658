"""One keep-alive HTTP/1.1 connection per upload worker, without httpx's client and pool layers.

Why: sending is one small POST after another on the same connection. Through ``httpx.AsyncClient`` each
cost the agent ~0.5 ms of CPU (URL merging, cookie and redirect handling, httpcore's pool and h11) — more
than the PHR server spends validating and storing the payload. A lane writes the request bytes itself and
parses the answer with ``httptools`` (the C parser uvicorn uses): ~30 µs. It answers with an
:class:`Answer` — the part of ``httpx.Response`` the sender reads (``status_code``, ``headers``, ``content``,
``text``, ``json()``), since building a real ``httpx.Response`` cost more than the rest of the request — and
raises httpx's own exceptions (``ConnectError``, ``ReadTimeout``, ``ReadError``, ``RemoteProtocolError``), so
the sender's retry, breaker and refusal logic is the same for both paths.

TLS is verified with the context the sender builds (system/certifi roots or the target's CA bundle). When a
proxy applies to the target (``HTTPS_PROXY``/``HTTP_PROXY``, as httpx would read them) the sender keeps
using httpx clients: a lane only speaks directly to the target.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
from typing import Any
from urllib.parse import urlencode

import httptools
import httpx
import orjson


def proxy_for(url: str) -> str | None:
    """The proxy httpx would use for ``url`` from the environment (None: a direct connection)."""
    u = httpx.URL(url)
    if urllib.request.proxy_bypass(u.host):
        return None
    return urllib.request.getproxies().get(u.scheme) or None


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


class Headers(dict[str, str]):
    """Response headers with case-insensitive lookup (names are stored lower-case)."""

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return dict.get(self, name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.lower())


class Answer:
    """What a lane's request returns: the ``httpx.Response`` surface the sender uses, nothing more. The headers
    are decoded when first asked for (the sender reads them only for a 429's ``Retry-After``)."""

    __slots__ = ("status_code", "_raw", "_headers", "content")

    def __init__(self, status_code: int, headers: Headers | list[tuple[bytes, bytes]], content: bytes) -> None:
        self.status_code, self.content = status_code, content
        self._headers: Headers | None = headers if isinstance(headers, Headers) else None
        self._raw: list[tuple[bytes, bytes]] | None = None if isinstance(headers, Headers) else headers

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            hdrs = Headers()
            for k, v in self._raw or ():
                name = k.decode("latin-1").lower()
                value = v.decode("latin-1")
                hdrs[name] = f"{hdrs[name]}, {value}" if name in hdrs else value
            self._headers = hdrs
        return self._headers

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """Raises ``ValueError`` (``orjson.JSONDecodeError``) on a body that is not JSON, as httpx does."""
        return orjson.loads(self.content)

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def __repr__(self) -> str:
        return f"<Answer [{self.status_code}]>"


class _Deadline(TimeoutError):
    """A lane's answer did not come within its timeout."""


class _Conn(asyncio.Protocol):
    """The socket side of a lane: collects one response at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[None] | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.status = 0
        self.complete = False
        self.got_bytes = False
        self.keep_alive = True
        self.lost: BaseException | None = None

    def reset(self) -> asyncio.Future[None]:
        self.headers, self.body, self.status, self.complete, self.got_bytes = [], [], 0, False, False
        self.waiter = asyncio.get_running_loop().create_future()
        return self.waiter

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # not used by PHR; treat as a protocol error
            self._wake(httpx.RemoteProtocolError("unexpected protocol upgrade"))
        except httptools.HttpParserError as e:
            self._wake(httpx.RemoteProtocolError(f"bad HTTP response: {e}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or ConnectionResetError("connection closed by the server")
        if self.waiter is not None and not self.waiter.done():
            if self.status and not self.complete and not self._has_length():
                self.complete = True  # a body that ends with the connection (no length, not chunked)
                self.waiter.set_result(None)
            else:
                kind = httpx.ReadError if self.got_bytes else httpx.RemoteProtocolError
                self._wake(kind(f"connection lost: {self.lost}"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _has_length(self) -> bool:
        return any(k.lower() in (b"content-length", b"transfer-encoding") for k, _ in self.headers)

    def _wake(self, exc: BaseException) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()


class Lane:
    """A minimal stand-in for a single-connection ``httpx.AsyncClient``: ``request()`` and ``aclose()``."""

    def __init__(self, base_url: str, ssl_context: ssl.SSLContext, timeout: float,
                 headers: dict[str, str] | None = None) -> None:
        u = httpx.URL(base_url)
        self.scheme, self.host = u.scheme, u.host
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.prefix = u.raw_path.decode("ascii").rstrip("/")
        default_port = (u.scheme == "https" and self.port == 443) or (u.scheme == "http" and self.port == 80)
        host = f"[{u.host}]" if ":" in u.host else u.host
        self.host_header = host if default_port else f"{host}:{self.port}"
        self.ssl = ssl_context if u.scheme == "https" else None
        self.timeout = timeout
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._common = f"Host: {self.host_header}\r\n{extra}Accept: */*\r\nAccept-Encoding: identity\r\n"
        self.conn: _Conn | None = None
        # The answer timeout: one timer per lane, re-armed lazily, instead of an ``asyncio.timeout`` per request
        # (a timer scheduled and cancelled each time: 4.4 against 1.9 µs per request on uvloop, measured alone).
        # ``_deadline`` is the awaited answer's; the timer may be one set for an earlier request (so earlier):
        # when it fires before the deadline it is set again for it.
        self._waiter: asyncio.Future[None] | None = None
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def _arm(self, waiter: asyncio.Future[None]) -> None:
        loop = asyncio.get_running_loop()
        self._waiter, self._deadline = waiter, loop.time() + self.timeout
        if self._timer is None or self._timer_loop is not loop:  # (a lane reused under another event loop)
            self._timer, self._timer_loop = loop.call_at(self._deadline, self._on_timer), loop

    def _on_timer(self) -> None:
        self._timer = None
        w = self._waiter
        if w is None or w.done():
            return  # idle: the next request arms it again
        loop = asyncio.get_running_loop()
        if loop.time() >= self._deadline - 0.001:  # a timer may fire up to the clock's resolution early
            w.set_exception(_Deadline())
        else:
            self._timer = loop.call_at(self._deadline, self._on_timer)

    async def _connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                _, conn = await loop.create_connection(
                    _Conn, self.host, self.port, ssl=self.ssl,
                    server_hostname=self.host if self.ssl is not None else None)
        except TimeoutError as e:
            raise httpx.ConnectTimeout(f"connect timeout to {self.host}:{self.port}") from e
        except ssl.SSLError as e:  # certificate refused: never retried into success, but reported clearly
            raise httpx.ConnectError(f"TLS: {e}") from e
        except OSError as e:
            raise httpx.ConnectError(f"{type(e).__name__}: {e}") from e
        return conn

    async def request(self, method: str, url: str, *, params: dict[str, str] | None = None,
                      content: bytes | None = None, headers: dict[str, str] | None = None) -> Answer:
        target = self.prefix + url + (f"?{urlencode(params)}" if params else "")
        body = content or b""
        head = [f"{method} {target} HTTP/1.1\r\n", self._common]
        head.extend(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head.append(f"Content-Length: {len(body)}\r\n\r\n")
        data = "".join(head).encode("latin-1") + body
        for fresh in (False, True):
            conn = self.conn
            reused = conn is not None and not fresh
            if conn is None or conn.lost is not None or conn.transport is None or conn.transport.is_closing():
                conn = self.conn = await self._connect()
                reused = False
            waiter = conn.reset()
            assert conn.transport is not None
            conn.transport.write(data)
            self._arm(waiter)
            try:
                await waiter
            except _Deadline as e:
                self._drop()
                raise httpx.ReadTimeout(f"no answer within {self.timeout:.0f} s") from e
            except httpx.RemoteProtocolError:
                self._drop()
                if reused and not conn.got_bytes:
                    continue  # the server had closed the idle connection: once more on a new one
                raise
            except httpx.TransportError:
                self._drop()
                raise
            finally:
                self._waiter = None
            if not conn.keep_alive:
                self._drop()
            body = conn.body[0] if len(conn.body) == 1 else b"".join(conn.body)
            return Answer(conn.status, conn.headers, body)
        raise AssertionError("unreachable")  # pragma: no cover

    def _drop(self) -> None:
        if self.conn is not None and self.conn.transport is not None:
            self.conn.transport.close()
        self.conn = None

    async def aclose(self) -> None:
        self._drop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def __aenter__(self) -> Lane:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
