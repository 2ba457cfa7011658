"""Which upload goes next: one lane per facility, served round-robin under the facility's rate, with retries
waiting in their lane until their due time instead of in a worker.

A payload whose attempt failed goes back to its lane with a due time, and the worker that sent it serves the
next ready payload at once: a waiting retry holds no connection. Lanes are served in order of their next
booked slot (:class:`phrsync.ratelimit.RateLimiter`), so facilities take turns, and no lane has more than its
share of the requests in flight (one slow facility cannot take every worker).

How many requests are in flight is sized by :class:`InFlight` from what the run measures (Little's law:
requests in flight = rate × time each one takes), so the paced rate holds whatever the target's latency, and
answers that hang until the client's timeout do not eat the capacity the fast ones need.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from phrsync.ratelimit import RateLimiter

J = TypeVar("J")
SAMPLES = 512  # attempts the in-flight sizing looks back over
# a request in flight longer than 4 × the mean answer, and at least this (s), is taken for hanging; a floor of 1 s
# let 5 % hung requests fill the slots on loopback (mean answer 8 ms) before they counted: 364 uploads/s sustained,
# against 910/s at 0.05 s (sync_bench.py --mode open --fault-timeout 0.05, 2026-12-07). PHR answers in 0.1–0.3 s,
# where 4 × the mean decides
SLOW_FLOOR = 0.05
HEADROOM = 1.25  # paced: in flight this much above rate × mean time, for the spread around the mean


@dataclass
class Lane(Generic[J]):
    """One facility's waiting uploads: new ones in order, retries by due time."""

    key: str
    fresh: collections.deque[J] = field(default_factory=collections.deque)
    retries: list[tuple[float, int, J]] = field(default_factory=list)  # heap of (due, seq, job)
    inflight: int = 0
    booked: bool = False  # a rate slot is reserved for this lane's next upload, at ``slot``
    slot: float = 0.0
    paused_until: float = 0.0  # 429 Retry-After
    token: int = 0  # the lane's one valid entry in the scheduler heap (older entries are stale)
    when: float = math.inf  # the time of that entry (inf: none)
    parked: bool = False  # at its in-flight share: woken when one of its requests ends
    unpaced: int = 0  # its retries that wait outside the pace (:meth:`Lanes.retry_at`)

    def pending(self) -> int:
        return len(self.fresh) + len(self.retries) + self.unpaced

    def ready_at(self, now: float) -> float:
        """When this lane next has something to send in its pace (new uploads: now; else its earliest retry)."""
        return now if self.fresh else (self.retries[0][0] if self.retries else math.inf)

    def paced(self) -> bool:
        return bool(self.fresh or self.retries)


class Lanes(Generic[J]):
    """Round-robin across facilities under one :class:`RateLimiter`; ``next(now)`` is the dispatcher's one call."""

    def __init__(self, limiter: RateLimiter, clock: Callable[[], float] = time.monotonic) -> None:
        self.limiter = limiter
        self.clock = clock
        self.lanes: dict[str, Lane[J]] = {}
        self._heap: list[tuple[float, int, str, int]] = []  # (when, seq, lane key, lane token)
        self._seq = itertools.count()
        self.inflight = 0
        self.waiting = 0  # jobs in every lane, not in flight
        self._free: list[tuple[float, int, str, J]] = []  # retries outside the pace: (due, seq, lane key, job)

    def _lane(self, key: str) -> Lane[J]:
        lane = self.lanes.get(key)
        if lane is None:
            lane = self.lanes[key] = Lane(key)
        return lane

    def active(self) -> int:
        """Lanes with work waiting or in flight (what the in-flight share is divided among)."""
        return sum(1 for lane in self.lanes.values() if lane.inflight or lane.pending())

    def pending(self) -> int:
        return self.waiting

    def add(self, key: str, job: J) -> None:
        lane = self._lane(key)
        lane.fresh.append(job)
        self.waiting += 1
        self._schedule(lane, self.clock())

    def retry_at(self, key: str, job: J, due: float, paced: bool = True) -> None:
        """``job`` goes again at ``due`` (monotonic), in its turn with its lane's new uploads. ``paced=False``:
        its failed attempt never reached the service (a 5xx, a connection lost before the answer), so the
        retry takes no slot of the facility's rate: it goes at ``due``, beside the lane's paced uploads."""
        lane = self._lane(key)
        if not paced:
            heapq.heappush(self._free, (due, next(self._seq), key, job))
            self.waiting += 1
            lane.unpaced += 1
            return
        heapq.heappush(lane.retries, (due, next(self._seq), job))
        self.waiting += 1
        self._schedule(lane, self.clock())

    def pause(self, key: str, until: float) -> None:
        """Nothing of this lane goes before ``until`` (PHR answered 429 with Retry-After)."""
        lane = self._lane(key)
        lane.paused_until = max(lane.paused_until, until)

    def done(self, key: str) -> None:
        """A request of lane ``key`` ended: its share frees, a parked lane takes its turn again."""
        lane = self.lanes[key]
        lane.inflight -= 1
        self.inflight -= 1
        if lane.parked:
            lane.parked = False
            self._schedule(lane, self.clock())

    def drain(self) -> list[J]:
        """Every waiting job, removed (the run stops: they are put back as they were)."""
        out: list[J] = []
        for lane in self.lanes.values():
            out.extend(lane.fresh)
            out.extend(j for _, _, j in lane.retries)
            lane.fresh.clear()
            lane.retries.clear()
            lane.token += 1
            lane.when = math.inf
            lane.unpaced = 0
        out.extend(j for _, _, _, j in self._free)
        self._free.clear()
        self._heap.clear()
        self.waiting = 0
        return out

    def _schedule(self, lane: Lane[J], now: float) -> None:
        """The lane's entry in the heap at the earliest time it may send (never before its booked slot)."""
        if lane.parked or not lane.paced():
            return
        when = max(lane.ready_at(now), lane.paused_until, lane.slot if lane.booked else 0.0)
        if lane.when <= when:
            return  # already due as early
        lane.token += 1
        lane.when = when
        heapq.heappush(self._heap, (when, next(self._seq), lane.key, lane.token))

    def _take(self, lane: Lane[J], now: float) -> J | None:
        if lane.retries and lane.retries[0][0] <= now:
            self.waiting -= 1
            return heapq.heappop(lane.retries)[2]
        if lane.fresh:
            self.waiting -= 1
            return lane.fresh.popleft()
        return None

    def _put_back(self, lane: Lane[J], job: J, fresh: bool, due: float) -> None:
        self.waiting += 1
        if fresh:
            lane.fresh.appendleft(job)
        else:
            heapq.heappush(lane.retries, (due, -1, job))

    def next(self, share: int, now: float | None = None) -> J | float | None:
        """The job to send now; else the seconds until one may be ready; None when nothing waits (or every
        waiting lane is at its share ``share`` of the requests in flight, woken by :meth:`done`)."""
        now = self.clock() if now is None else now
        free = self._free
        while free and free[0][0] <= now:
            due, _, key, job = heapq.heappop(free)
            lane = self.lanes[key]
            if lane.paused_until > now or lane.inflight >= share:  # later: after the pause, or the next end
                heapq.heappush(free, (max(lane.paused_until, now + 0.05), next(self._seq), key, job))
                continue
            lane.unpaced -= 1
            self.waiting -= 1
            lane.inflight += 1
            self.inflight += 1
            return job
        soonest = free[0][0] - now if free else None
        heap = self._heap
        while heap:
            when, _, key, token = heap[0]
            lane = self.lanes[key]
            if token != lane.token:
                heapq.heappop(heap)
                continue
            if when > now:
                return when - now if soonest is None else min(soonest, when - now)
            heapq.heappop(heap)
            lane.when = math.inf
            if lane.paused_until > now:  # a 429 since this lane's slot was booked
                lane.booked = False
                self._schedule(lane, now)
                continue
            retry = bool(lane.retries) and lane.retries[0][0] <= now
            due = lane.retries[0][0] if retry else 0.0
            job = self._take(lane, now)
            if job is None:  # only retries, none due yet
                self._schedule(lane, now)
                continue
            if lane.inflight >= share:
                self._put_back(lane, job, not retry, due)
                lane.parked = True
                continue
            if not lane.booked:
                wait = self.limiter.reserve(key, now)
                if wait > 0:  # its slot is booked: it goes then, ahead of anything the lane gets meanwhile
                    self._put_back(lane, job, not retry, due)
                    lane.booked, lane.slot = True, now + wait
                    self._schedule(lane, now)
                    continue
            lane.booked = False
            lane.inflight += 1
            self.inflight += 1
            self._schedule(lane, now)
            return job
        return soonest


class InFlight:
    """How many requests to keep in flight, from the durations of the last :data:`SAMPLES` attempts and the
    requests hanging right now.

    Paced (``per_minute`` > 0): Little's law, rate × mean time per attempt (timeouts included, as they hold
    a connection just as long) × :data:`HEADROOM`, plus two. Unpaced: ``base`` for the answered requests, and
    as many more as the share of time spent waiting on requests never answered (timeouts, lost connections).
    Either way, at least what the answered requests need plus every request in flight for longer than answers
    take (:meth:`slow`): those hang till the timeout, load neither the target nor the agent, and before they
    end the durations do not show them. Between 1 and ``most``; ``base`` until something is measured."""

    def __init__(self, base: int, most: int, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.base = max(1, base)
        self.most = max(self.base, most)
        self.per_second = per_minute / 60.0
        self.clock = clock
        self._all: collections.deque[float] = collections.deque(maxlen=SAMPLES)
        self._ok: collections.deque[float] = collections.deque(maxlen=SAMPLES)
        self._sum_all = 0.0
        self._sum_ok = 0.0
        self._open: dict[int, float] = {}  # requests in flight: id -> start
        self._ids = itertools.count()

    def begin(self) -> int:
        """A request starts; the id goes to :meth:`end`."""
        i = next(self._ids)
        self._open[i] = self.clock()
        return i

    def end(self, i: int, answered: bool) -> None:
        """The request ``i`` ended; ``answered``: the target sent a status (any status)."""
        self.observe(self.clock() - self._open.pop(i), answered)

    def observe(self, seconds: float, answered: bool) -> None:
        if len(self._all) == SAMPLES:
            self._sum_all -= self._all[0]
        self._all.append(seconds)
        self._sum_all += seconds
        if answered:
            if len(self._ok) == SAMPLES:
                self._sum_ok -= self._ok[0]
            self._ok.append(seconds)
            self._sum_ok += seconds

    def slow(self) -> int:
        """Requests in flight for longer than four times the mean answer (at least :data:`SLOW_FLOOR`): hanging."""
        if not self._open:
            return 0
        mean_ok = self._sum_ok / len(self._ok) if self._ok else 0.25
        cut = self.clock() - max(SLOW_FLOOR, 4 * mean_ok)
        return sum(1 for t in self._open.values() if t < cut)

    def limit(self, lanes: int) -> int:
        """Requests to keep in flight while ``lanes`` facilities have work."""
        if not self._all:
            return min(self.most, self.base + self.slow())
        mean_all = max(self._sum_all / len(self._all), 1e-4)
        mean_ok = max(self._sum_ok / len(self._ok), 1e-4) if self._ok else mean_all
        if self.per_second > 0:
            rate = self.per_second * max(1, lanes) * HEADROOM
            need = max(math.ceil(rate * mean_all), math.ceil(rate * mean_ok) + self.slow()) + 2
        else:
            need = max(math.ceil(self.base * max(1.0, mean_all / mean_ok)), self.base + self.slow())
        return max(1, min(self.most, need))
