"""The agent's sockets for httpcore: an ``httpcore.AsyncNetworkBackend`` on asyncio's own transports.

httpcore's default backend under asyncio goes through anyio: every read and write opens a cancel scope, checks
for cancellation and yields to the loop once more, and every idle-connection check is a ``poll`` system call.
At the province's real load (124 facilities at 110 uploads a minute) that was about a third of the agent's CPU
(py-spy, ``sync_bench.py --mode paced``). Here a read waits on a future the protocol completes, a timeout is one
``call_later``, the request's writes (head, body, end) are coalesced into one ``send`` made when the answer is
awaited, and "has the server closed this idle connection" is a flag the protocol keeps. HTTP itself stays
httpcore's and h11's; errors are httpcore's own types, so httpx maps them exactly as before.
"""

from __future__ import annotations

import asyncio
import ssl
import typing

import httpcore

_LIMIT = 4 * 1024 * 1024  # buffered writes above this wait for the socket to drain (flow control)


class _Protocol(asyncio.Protocol):
    """Collects what the server sends and wakes the one reader waiting for it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.drained: asyncio.Future[None] | None = None
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()
        self.resume_writing()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        d, self.drained = self.drained, None
        if d is not None and not d.done():
            d.set_result(None)

    def _wake(self) -> None:
        w, self.waiter = self.waiter, None
        if w is not None and not w.done():
            w.set_result(None)


def _expire(fut: asyncio.Future[None], exc: type[Exception]) -> None:
    if not fut.done():
        fut.set_exception(exc("timed out"))


async def _wait(fut: asyncio.Future[None], timeout: float | None, exc: type[Exception]) -> None:
    if timeout is None:
        await fut
        return
    h = asyncio.get_running_loop().call_later(timeout, _expire, fut, exc)
    try:
        await fut
    finally:
        h.cancel()


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._t = transport
        self._p = protocol
        self._out: list[bytes] = []

    async def _flush(self, timeout: float | None) -> None:
        if not self._out:
            return
        data, self._out = b"".join(self._out) if len(self._out) > 1 else self._out[0], []
        p = self._p
        if p.error is not None or self._t.is_closing():
            raise httpcore.WriteError(str(p.error or "connection closed"))
        self._t.write(data)
        if p.paused:
            p.drained = asyncio.get_running_loop().create_future()
            await _wait(p.drained, timeout, httpcore.WriteTimeout)
            if p.error is not None:
                raise httpcore.WriteError(str(p.error))

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        await self._flush(timeout)
        p = self._p
        if not p.buf and not p.eof:
            p.waiter = asyncio.get_running_loop().create_future()
            await _wait(p.waiter, timeout, httpcore.ReadTimeout)
        if p.buf:
            if len(p.buf) <= max_bytes:
                data = bytes(p.buf)
                p.buf.clear()
            else:
                data = bytes(p.buf[:max_bytes])
                del p.buf[:max_bytes]
            return data
        if p.error is not None:
            raise httpcore.ReadError(str(p.error))
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if buffer:
            self._out.append(buffer)
            if sum(map(len, self._out)) > _LIMIT:
                await self._flush(timeout)

    async def aclose(self) -> None:
        self._out = []
        self._t.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            t = await asyncio.wait_for(loop.start_tls(self._t, self._p, ssl_context, server_hostname=server_hostname),
                                       timeout)
        except TimeoutError as e:
            self._t.close()
            raise httpcore.ConnectTimeout(str(e) or "TLS handshake timed out") from e
        except (OSError, ssl.SSLError, ConnectionError) as e:
            self._t.close()
            raise httpcore.ConnectError(str(e)) from e
        if t is None:
            raise httpcore.ConnectError("TLS handshake failed")
        self._p.transport = t
        return AsyncioStream(t, self._p)

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "ssl_object":
            return self._t.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._t.get_extra_info("sockname")
        if info == "server_addr":
            return self._t.get_extra_info("peername")
        if info == "socket":
            return self._t.get_extra_info("socket")
        if info == "is_readable":  # an idle keep-alive connection the server closed (or wrote to)
            return bool(self._p.eof or self._p.buf or self._t.is_closing())
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: typing.Iterable[tuple[int, int, typing.Any]] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = (local_address, 0) if local_address else None
        try:
            t, p = await asyncio.wait_for(loop.create_connection(_Protocol, host, port, local_addr=local), timeout)
        except TimeoutError as e:
            raise httpcore.ConnectTimeout(str(e) or f"connecting to {host}:{port} timed out") from e
        except OSError as e:
            raise httpcore.ConnectError(str(e)) from e
        sock = t.get_extra_info("socket")
        for opt in socket_options or ():
            sock.setsockopt(*opt)
        return AsyncioStream(t, p)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: typing.Iterable[tuple[int, int, typing.Any]] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            t, p = await asyncio.wait_for(loop.create_unix_connection(_Protocol, path), timeout)
        except TimeoutError as e:
            raise httpcore.ConnectTimeout(str(e) or f"connecting to {path} timed out") from e
        except OSError as e:
            raise httpcore.ConnectError(str(e)) from e
        return AsyncioStream(t, p)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

