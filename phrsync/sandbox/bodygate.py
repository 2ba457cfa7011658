"""A bound on the large request bodies the sandbox holds at once.

A body is read whole and then parsed, so each large upload in flight costs several times its size in memory:
48 logged-in clients sending 19 MB each took the server to 832 MB. :class:`BodyGate` lets at most ``slots``
requests whose body passes ``threshold`` bytes (by Content-Length, or by what has arrived when the body is
chunked) be read at once, and answers the next with 503 and Retry-After, which every client retries. Small
bodies, the usual payload of a few KB, never wait. The slot is taken when the route starts reading the body,
that is after the bearer check, and held until the answer is sent."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from phrsync.sandbox.envelope import ApiError

RETRY_AFTER = 1  # seconds: a large upload takes about that long to be parsed and stored


class BodyGate:
    """ASGI layer: at most ``slots`` large bodies (over ``threshold`` bytes) in flight; 0 slots = no bound."""

    def __init__(self, app: ASGIApp, threshold: int, slots: int) -> None:
        self.app = app
        self.threshold = threshold
        self.slots = slots
        self.in_flight = 0  # one event loop per server process: no lock needed

    def _take(self) -> None:
        if self.in_flight >= self.slots:
            raise ApiError(503, f"too many large uploads at once (at most {self.slots}): retry shortly",
                           f"มีการส่งข้อมูลขนาดใหญ่พร้อมกันเกิน {self.slots} รายการ กรุณาส่งใหม่อีกครั้ง",
                           headers={"Retry-After": str(RETRY_AFTER)})
        self.in_flight += 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.slots <= 0:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        held = False
        seen = 0

        async def gated() -> Message:
            nonlocal held, seen
            if not held and declared is not None and declared > self.threshold:
                self._take()
                held = True
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if not held and seen > self.threshold:
                    self._take()
                    held = True
            return msg

        try:
            await self.app(scope, gated, send)
        finally:
            if held:
                self.in_flight -= 1


def _content_length(scope: Scope) -> int | None:
    headers: Any = scope.get("headers") or ()
    for k, v in headers:
        if k == b"content-length":
            return int(v) if v.isdigit() else None
    return None
