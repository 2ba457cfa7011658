"""One rate limiter for both sides of PHR's per-facility upload cap (about 120 uploads a minute).

The sandbox refuses what goes over (``try_acquire``: answer 429 with the wait); the agent paces itself under it
(``acquire``: evenly spaced, so its uploads never bunch into a refused burst). Both count the same way: at most
``per_minute`` events per key in any window of 60 seconds.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable


class RateLimiter:
    """At most ``per_minute`` events per key (a facility code) in any 60-second window; 0 = unlimited.

    ``spaced``: events of one key are also at least ``60 / per_minute`` seconds apart (the agent's pacing)."""

    WINDOW = 60.0

    def __init__(self, per_minute: int, *, spaced: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = max(0, int(per_minute))
        self.gap = self.WINDOW / self.per_minute if self.per_minute and spaced else 0.0
        self.clock = clock
        self._hits: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._paused: dict[str, float] = {}
        self._lock = threading.Lock()

    def _earliest(self, key: str, now: float) -> float:
        q = self._hits[key]
        while q and q[0] <= now - self.WINDOW:
            q.popleft()
        t = max(now, self._paused.get(key, 0.0))
        if len(q) >= self.per_minute:
            t = max(t, q[-self.per_minute] + self.WINDOW)
        if self.gap and q:
            t = max(t, q[-1] + self.gap)
        return t

    def try_acquire(self, key: str, now: float | None = None) -> float:
        """0 when an event is allowed now (and counted); else the seconds until one would be (nothing counted)."""
        if not self.per_minute:
            return 0.0
        now = self.clock() if now is None else now
        with self._lock:
            t = self._earliest(key, now)
            if t > now:
                return max(0.1, t - now)
            self._hits[key].append(now)
            return 0.0

    def reserve(self, key: str, now: float | None = None) -> float:
        """Book the earliest allowed slot for one event and return how long to wait for it (0: go now)."""
        if not self.per_minute:
            return max(0.0, self._paused.get(key, 0.0) - (self.clock() if now is None else now))
        now = self.clock() if now is None else now
        with self._lock:
            t = self._earliest(key, now)
            self._hits[key].append(t)
            return t - now

    async def acquire(self, key: str) -> None:
        """Wait for this key's next slot (the agent, before each upload)."""
        wait = self.reserve(key)
        if wait > 0:
            await asyncio.sleep(wait)

    def pause(self, key: str, seconds: float) -> None:
        """Hold this key for ``seconds`` (PHR answered 429 with Retry-After)."""
        with self._lock:
            self._paused[key] = max(self._paused.get(key, 0.0), self.clock() + seconds)
