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
        self._headers, self._raw = (headers, None) if isinstance(headers, Headers) else (None, headers)

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


def _answer(status: int, headers: list[tuple[bytes, bytes]], body: list[bytes]) -> Answer:
    return Answer(status, headers, body[0] if len(body) == 1 else b"".join(body))


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
        # pipelining: the answers of the requests written together, in order, and how many are awaited
        self.answers: list[Answer] = []
        self.want = 0

    def reset(self, loop: asyncio.AbstractEventLoop, want: int = 0) -> asyncio.Future[None]:
        """Ready for one answer (``want`` = 0, read from the parser's state) or for ``want`` answers in a row,
        collected in :attr:`answers` (a waiter woken once, when the last is in)."""
        self.headers, self.body, self.status, self.complete, self.got_bytes = [], [], 0, False, False
        self.answers, self.want = [], want
        self.waiter = loop.create_future()
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
            if self.status and not self.complete and not self._has_length() and not self.want:
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
        if self.want:
            self.answers.append(_answer(self.status, self.headers, self.body))
            self.headers, self.body, self.status = [], [], 0
            if len(self.answers) < self.want and self.keep_alive:
                self.complete = False
                return
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

    def head(self, method: str, url: str, headers: dict[str, str] | None = None) -> bytes:
        """A request's head up to its Content-Length: the same for every upload of one endpoint and token."""
        lines = [f"{method} {self.prefix}{url} HTTP/1.1\r\n", self._common]
        lines.extend(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        return "".join(lines).encode("latin-1")

    @staticmethod
    def with_body(head: bytes, body: bytes) -> bytes:
        """The request's bytes on the wire: a :meth:`head` and its body."""
        return b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body)

    def encode(self, method: str, url: str, *, params: dict[str, str] | None = None,
               content: bytes | None = None, headers: dict[str, str] | None = None) -> bytes:
        """The request's bytes on the wire."""
        target = url + (f"?{urlencode(params)}" if params else "")
        return self.with_body(self.head(method, target, headers), content or b"")

    async def request(self, method: str, url: str, *, params: dict[str, str] | None = None,
                      content: bytes | None = None, headers: dict[str, str] | None = None) -> Answer:
        data = self.encode(method, url, params=params, content=content, headers=headers)
        answers, error = await self._exchange([data], 0)
        if error is not None:
            raise error
        return answers[0]

    async def pipeline(self, requests: list[bytes]) -> tuple[list[Answer], httpx.TransportError | None]:
        """Several requests (from :meth:`encode`) written together on the connection, their answers read in
        order (HTTP/1.1 pipelining): one write and one wake-up for the lot instead of one each. Returns the
        answers that came (the first ``len(answers)`` requests) and, when fewer came, the transport error that
        cut the rest off; those may or may not have reached the server (as after any lost answer)."""
        return await self._exchange(requests, len(requests))

    async def _exchange(self, requests: list[bytes], want: int
                        ) -> tuple[list[Answer], httpx.TransportError | None]:
        loop = asyncio.get_running_loop()
        data = requests[0] if len(requests) == 1 else b"".join(requests)
        for fresh in (False, True):
            conn = self.conn
            reused = conn is not None and not fresh
            if conn is None or conn.lost is not None or conn.transport is None or conn.transport.is_closing():
                try:
                    conn = self.conn = await self._connect()
                except httpx.TransportError as e:
                    return [], e
                reused = False
            waiter = conn.reset(loop, want)
            assert conn.transport is not None
            conn.transport.write(data)
            try:
                async with asyncio.timeout(self.timeout):
                    await waiter
            except TimeoutError:
                self._drop()
                return conn.answers, httpx.ReadTimeout(f"no answer within {self.timeout:.0f} s")
            except httpx.RemoteProtocolError as e:
                self._drop()
                if reused and not conn.got_bytes:
                    continue  # the server had closed the idle connection: once more on a new one
                return conn.answers, e
            except httpx.TransportError as e:
                self._drop()
                return conn.answers, e
            if not conn.keep_alive:
                self._drop()
            if want:
                if len(conn.answers) < want:  # the server closed the connection after answering some
                    return conn.answers, httpx.RemoteProtocolError(
                        f"connection closed after {len(conn.answers)} of {want} pipelined answers")
                return conn.answers, None
            return [_answer(conn.status, conn.headers, conn.body)], None
        raise AssertionError("unreachable")  # pragma: no cover

    def _drop(self) -> None:
        if self.conn is not None and self.conn.transport is not None:
            self.conn.transport.close()
        self.conn = None

    async def aclose(self) -> None:
        self._drop()

    async def __aenter__(self) -> Lane:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
