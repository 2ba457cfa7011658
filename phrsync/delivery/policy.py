"""When the agent tries again, how long it waits, and when it stops: one policy for uploads, PHR's utility calls
and logins.

- Full-jitter exponential backoff (uniform in ``[0, min(cap, base·2^attempt)]``), so retrying workers do not
  move in step.
- ``Retry-After`` in delay-seconds or as an HTTP-date (RFC 9110), capped at 5 minutes.
- Which answers are worth another attempt (5xx, 408, 429) and an attempt limit per request.
- A circuit breaker: after N consecutive transient failures every worker waits out a cool-down together, and
  the run stops (rows kept) when nothing succeeded for ``give_up`` seconds.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger("phrsync.delivery")
BREAKER_WINDOW = 10.0  # seconds of outcomes the breaker weighs beside the failures in a row
RETRY_AFTER_MAX = 300.0  # seconds; a longer Retry-After is taken as this


class TargetDown(Exception):
    """Nothing succeeded for ``give_up_seconds`` (or no retry can help): stop the run, keep every row."""


class GaveUp(Exception):
    """A request failed transiently on every attempt it was allowed."""


def backoff(attempt: int, base: float, cap: float) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2^attempt)] so retrying clients do not move in step."""
    return random.uniform(0, min(cap, base * (2 ** attempt)))


def retry_after(headers: Mapping[str, str], now: Callable[[], float] = time.time) -> float:
    """Retry-After in seconds, capped at :data:`RETRY_AFTER_MAX`: delay-seconds or an HTTP-date (taking the date
    form for unreadable would retry long before the server asked); 1 s when absent or unreadable."""
    value = headers.get("Retry-After") or headers.get("retry-after") or "1"
    try:
        secs = float(value)
    except ValueError:
        try:
            secs = email.utils.parsedate_to_datetime(value).timestamp() - now()
        except (TypeError, ValueError):
            return 1.0
    return max(0.0, min(RETRY_AFTER_MAX, secs)) if secs == secs else 1.0  # NaN: unreadable


def retryable(status: int) -> bool:
    """An answer another attempt may cure: the server failed (5xx), timed out (408) or asked us to slow down
    (429). Every other 4xx is a refusal of this request and is kept, not retried."""
    return status >= 500 or status in (408, 429)


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts and waits for one request."""

    max_attempts: int = 8
    base: float = 0.5
    cap: float = 60.0

    def next_wait(self, attempt: int, asked: float = 0.0) -> float | None:
        """Seconds before attempt ``attempt + 1`` (``attempt`` failed so far), at least what the server
        ``asked``; None when the attempts are used up."""
        if attempt >= self.max_attempts:
            return None
        return max(asked, backoff(attempt, self.base, self.cap))


class CircuitBreaker:
    """Opens after N consecutive transient failures, if most outcomes of the last :data:`BREAKER_WINDOW`
    seconds failed too; while open every worker waits for the cool-down. (With a hundred requests in flight at
    20 % faults, 12 failures in a row came every few seconds — a server answers its faults at once and its
    successes after a group commit, in bunches — so consecutive alone took a flaky target for a down one.) The window
    must hold at least twice N outcomes: a run's first wave of requests answers its failures first (a fault is
    answered at once, an upload after its commit), and at 20 % faults with 128 in flight the first 13 outcomes held
    12 failures, which stopped every worker for the whole cool-down at the start; so also at least as many outcomes
    as requests in flight (:attr:`in_flight`)."""

    def __init__(self, failures: int, cooldown: float, give_up: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failures, self.cooldown, self.give_up, self.clock = failures, cooldown, give_up, clock
        self.consecutive = 0
        self.open_until = 0.0
        self.last_success = clock()
        self.openings = 0
        self.opened_at = float("-inf")
        self.in_flight = 0  # requests out now (the sender keeps it): the window must hold at least one wave of them
        self._recent: collections.deque[tuple[float, bool]] = collections.deque()  # (when, failed)
        self._failed = 0

    def _note(self, failed: bool) -> None:
        q = self._recent
        now = self.clock()
        while q and q[0][0] < now - BREAKER_WINDOW:
            self._failed -= q.popleft()[1]
        q.append((now, failed))
        self._failed += failed

    def success(self) -> None:
        self.consecutive = 0
        self.last_success = self.clock()
        self._note(False)

    def failure(self, started: float | None = None) -> None:
        """A transient failure of a request ``started`` then (on :attr:`clock`): one begun before the circuit last
        opened says nothing new (it hung through the cool-down and would open it again at once)."""
        if started is not None and started < self.opened_at:
            return
        self.consecutive += 1
        self._note(True)
        if (self.consecutive >= self.failures and len(self._recent) >= max(2 * self.failures, self.in_flight)
                and 2 * self._failed > len(self._recent) and self.clock() >= self.open_until):
            self.opened_at = self.clock()
            self.open_until = self.opened_at + self.cooldown
            self.openings += 1
            self.consecutive = 0
            log.warning("ปลายทางล้มเหลวต่อเนื่อง หยุดส่ง %.0f วินาที / target failing, circuit open for %.0f s",
                        self.cooldown, self.cooldown)

    async def wait(self) -> None:
        while True:
            now = self.clock()
            if now - self.last_success > self.give_up:
                raise TargetDown(f"ไม่มีการส่งสำเร็จนาน {self.give_up:.0f} วินาที / nothing succeeded for "
                                 f"{self.give_up:.0f} s")
            if now >= self.open_until:
                return
            await asyncio.sleep(min(self.open_until - now, 1.0))
