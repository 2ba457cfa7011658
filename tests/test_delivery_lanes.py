"""Sending through faults (issue #15 points 2 and 3): a waiting retry holds no connection, facilities take turns
under their rate, the in-flight count follows rate × round trip, and a facility whose check failed transiently
is tried again in the same run."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_delivery import H, item, write
from test_sandbox_support import PASSWORD_KEY

from phrsync.delivery import outbox as ob
from phrsync.delivery import policy
from phrsync.delivery.agent import sync_payloads
from phrsync.delivery.config import Credentials
from phrsync.delivery.lanes import InFlight, Lanes
from phrsync.errors import Exit
from phrsync.ratelimit import RateLimiter
from phrsync.sandbox.server import SandboxThread
from phrsync.sandbox.settings import SandboxConfig

OTHER = "10700"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# ---- the lanes, on a clock of their own ------------------------------------------------------

def test_a_waiting_retry_lets_the_next_upload_go_first() -> None:
    clock = Clock()
    lanes: Lanes[str] = Lanes(RateLimiter(0, clock=clock), clock=clock)
    for j in ("a", "b", "c"):
        lanes.add(H, j)
    assert lanes.next(8) == "a"
    lanes.done(H)
    lanes.retry_at(H, "a", clock.t + 2.0)  # a failed: due in 2 s
    assert [lanes.next(8), lanes.next(8)] == ["b", "c"]
    assert lanes.next(8) == pytest.approx(2.0)  # nothing else: the dispatcher sleeps until a is due
    clock.t += 2.0
    assert lanes.next(8) == "a" and lanes.next(8) is None


def test_facilities_take_turns_under_their_evenly_spaced_rate() -> None:
    clock = Clock()
    lanes: Lanes[str] = Lanes(RateLimiter(60, spaced=True, clock=clock), clock=clock)  # 1 a second each
    for i in range(3):
        lanes.add("A", f"a{i}")
        lanes.add("B", f"b{i}")
    sent: list[tuple[float, str]] = []
    while len(sent) < 6:
        nxt = lanes.next(8)
        if isinstance(nxt, str):
            sent.append((clock.t - 1000.0, nxt))
            lanes.done(nxt[0].upper())
        else:
            assert isinstance(nxt, float)
            clock.t += nxt
    assert [j for _, j in sent] == ["a0", "b0", "a1", "b1", "a2", "b2"]
    for lane in "ab":
        times = [t for t, j in sent if j.startswith(lane)]
        assert all(t2 - t1 >= 1.0 - 1e-9 for t1, t2 in zip(times, times[1:], strict=False))


def test_a_retry_goes_in_its_facilitys_rate_and_after_its_retry_after() -> None:
    clock = Clock()
    lanes: Lanes[str] = Lanes(RateLimiter(60, spaced=True, clock=clock), clock=clock)
    lanes.add("A", "a0")
    lanes.add("A", "a1")
    assert lanes.next(8) == "a0"
    lanes.done("A")
    lanes.pause("A", clock.t + 5.0)  # a0 answered 429, Retry-After 5
    lanes.retry_at("A", "a0", clock.t + 5.0)
    wait = lanes.next(8)
    assert isinstance(wait, float) and wait >= 1.0  # a1's slot is a second after a0's
    clock.t += wait
    nxt = lanes.next(8)
    if isinstance(nxt, float):  # the pause came after a1's slot was booked: it waits the pause out
        clock.t += nxt
        nxt = lanes.next(8)
    assert nxt in ("a0", "a1") and clock.t >= 1005.0


def test_a_retry_of_what_the_service_never_took_goes_outside_the_pace() -> None:
    """A 5xx or a lost connection: the facility's rate slot went unused by the service, so the retry goes at its
    due time and the lane's next upload keeps its own slot (retries no longer cut the paced rate by the fault
    rate)."""
    clock = Clock()
    lanes: Lanes[str] = Lanes(RateLimiter(60, spaced=True, clock=clock), clock=clock)
    for j in ("a0", "a1", "a2"):
        lanes.add("A", j)
    assert lanes.next(8) == "a0"
    lanes.done("A")
    lanes.retry_at("A", "a0", clock.t + 0.1, paced=False)
    assert lanes.next(8) == pytest.approx(0.1)
    clock.t += 0.1
    assert lanes.next(8) == "a0"  # at its due time, 0.1 s after its first attempt: no slot of the pace
    lanes.done("A")
    assert lanes.next(8) == pytest.approx(0.9)
    clock.t += 0.9
    assert lanes.next(8) == "a1" and lanes.pending() == 1


def test_a_slow_facility_gets_no_more_than_its_share_of_the_requests_in_flight() -> None:
    clock = Clock()
    lanes: Lanes[str] = Lanes(RateLimiter(0, clock=clock), clock=clock)
    for i in range(10):
        lanes.add("S", f"s{i}")  # its answers never come back during this test
    for i in range(10):
        lanes.add("F", f"f{i}")
    got = []
    for _ in range(6):
        nxt = lanes.next(2)
        assert isinstance(nxt, str)
        got.append(nxt)
        if nxt.startswith("f"):
            lanes.done("F")  # the fast facility answers at once
    assert [g for g in got if g.startswith("s")] == ["s0", "s1"]  # S holds 2 (its share), F has the rest
    assert lanes.inflight == 2
    lanes.done("S")
    assert "s2" in [lanes.next(2) for _ in range(3)]  # S's turn again once one of its answers is in


def test_in_flight_follows_rate_times_round_trip_and_waits_on_timeouts() -> None:
    paced = InFlight(8, 256, 110)
    assert paced.limit(124) == 8  # nothing measured yet
    for _ in range(100):
        paced.observe(0.2, True)
    need = 124 * 110 / 60 * 0.2  # 45.5 in flight keep 124 facilities at 110/min with 200 ms answers
    assert need < paced.limit(124) <= 2 * need
    assert paced.limit(2) < 8  # two facilities at that rate need few
    unpaced = InFlight(16, 256, 0)
    for _ in range(97):
        unpaced.observe(0.01, True)
    assert unpaced.limit(1) == 16
    for _ in range(3):
        unpaced.observe(5.0, False)  # three timeouts in a hundred: those wait, the rest still need 16
    assert unpaced.limit(1) > 16 * 10
    assert InFlight(8, 20, 0).limit(1) == 8 and max(InFlight(8, 20, 110).limit(124), 20) == 20


# ---- against the sandbox ---------------------------------------------------------------------

@contextlib.contextmanager
def sandbox(tmp_path: Path, fail: Any) -> Iterator[tuple[SandboxThread, list[tuple[str, str]]]]:
    """A sandbox whose API requests pass ``fail(path, body, seen)`` first: a status code answers instead of
    the sandbox. ``seen`` lists (path, encounter ref) of every API request in order."""
    cfg = SandboxConfig(data_dir=tmp_path / "sbx", password_key=PASSWORD_KEY, rate_limit_per_minute=0,
                        agent_status_interval=0)
    st = SandboxThread(cfg)
    inner = st.server.config.app
    seen: list[tuple[str, str]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await inner(scope, receive, send)
            return
        body, more = b"", True
        while more:
            msg = await receive()
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
        m = re.search(rb'"\d{5}:(R\d{5})"', body)
        seen.append((scope["path"], m.group(1).decode() if m else ""))
        code = fail(scope["path"], body, seen)
        if code:
            await send({"type": "http.response.start", "status": code, "headers": [(b"content-length", b"4")]})
            await send({"type": "http.response.body", "body": b"busy"})
            return
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await inner(scope, replay, send)

    st.server.config.app = app
    st.start()
    try:
        yield st, seen
    finally:
        st.stop()


def test_a_payload_waiting_for_its_retry_does_not_hold_the_only_connection(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """One connection, the first upload answered 503: the other two go while it waits its backoff (before,
    the worker slept the backoff holding its slot and the others queued behind it)."""
    monkeypatch.setattr(policy, "backoff", lambda attempt, base, cap: 0.5)
    uploads = [0]

    def fail(path: str, body: bytes, seen: list[tuple[str, str]]) -> int | None:
        if path == "/api/UpdatePHRv1":
            uploads[0] += 1
            return 503 if uploads[0] == 1 else None
        return None

    items = [item(4000 + i, day="2025-10-05") for i in range(3)]
    with sandbox(tmp_path, fail) as (st, seen):
        creds = Credentials("u10699", st.add_user("u10699", H, "pw-10699"))
        res = sync_payloads(write(tmp_path / "b.ndjson", items), st.base_url, creds, tmp_path / "s.sqlite",
                            concurrency=1, max_concurrency=1, verify=False)
        order = [ref for path, ref in seen if path == "/api/UpdatePHRv1"]
    assert res.sent == 3 and res.retries == 1 and res.exit_code == Exit.OK
    assert order == ["R04000", "R04001", "R04002", "R04000"]


def test_a_facility_check_failing_transiently_is_tried_again_in_the_same_run(tmp_path: Path) -> None:
    """GetAgentComputerName answering 502 five times in a row for one facility (one round of the check is
    four attempts): the facility was skipped for the run; now its check goes again after a backoff and its
    rows are sent in this run, while the other facility's were not held up."""
    checks = [0]

    def fail(path: str, body: bytes, seen: list[tuple[str, str]]) -> int | None:
        if path == "/api/GetAgentComputerName" and H.encode() in body:
            checks[0] += 1
            return 502 if checks[0] <= 5 else None
        return None

    items = [item(4100 + i, day="2025-10-06") for i in range(3)] + \
        [item(4200 + i, day="2025-10-06", hcode=OTHER) for i in range(3)]
    with sandbox(tmp_path, fail) as (st, seen):
        creds = {H: Credentials("u10699", st.add_user("u10699", H, "pw-10699")),
                 OTHER: Credentials("u10700", st.add_user("u10700", OTHER, "pw-10700"))}
        res = sync_payloads(write(tmp_path / "b.ndjson", items), st.base_url, creds, tmp_path / "s.sqlite",
                            backoff_base=0.05, verify=False)
        uploads = [ref for path, ref in seen if path == "/api/UpdatePHRv1"]
    assert checks[0] == 6
    assert res.skipped == {} and res.sent == 6 and res.exit_code == Exit.OK
    assert res.outbox[H][ob.SENT] == 3 and res.outbox[OTHER][ob.SENT] == 3
    assert uploads[:3] == ["R04200", "R04201", "R04202"]  # the other facility went while this one waited


def test_a_facility_whose_check_keeps_failing_is_skipped_once_its_rounds_are_used(tmp_path: Path) -> None:
    def fail(path: str, body: bytes, seen: list[tuple[str, str]]) -> int | None:
        return 503 if path == "/api/GetAgentComputerName" else None

    with sandbox(tmp_path, fail) as (st, seen):
        creds = Credentials("u10699", st.add_user("u10699", H, "pw-10699"))
        res = sync_payloads(write(tmp_path / "b.ndjson", [item(4300, day="2025-10-07")]), st.base_url, creds,
                            tmp_path / "s.sqlite", backoff_base=0.01, max_attempts=2, verify=False)
        checks = sum(1 for path, _ in seen if path == "/api/GetAgentComputerName")
    assert res.skip_kind == {H: "error"} and "503" in res.skipped[H] and res.exit_code == Exit.UNDELIVERED
    assert checks == 2 * 4  # max_attempts rounds of four attempts each, then no more this run
    assert res.outbox[H][ob.PENDING] == 1 and res.outbox[H][ob.SENDING] == 0  # untouched for the next run


def test_requests_hanging_now_widen_the_in_flight_count_before_they_end() -> None:
    """Sixteen requests hanging till a 5 s timeout held every slot and the run stood still until they ended:
    the hanging ones are counted while they hang."""
    clock = Clock()
    sizing = InFlight(16, 256, 0, clock=clock)
    for _ in range(50):
        sizing.observe(0.01, True)
    hung = [sizing.begin() for _ in range(16)]
    assert sizing.limit(1) == 16
    clock.t += 2.0
    assert sizing.slow() == 16 and sizing.limit(1) == 32
    for i in hung:
        sizing.end(i, False)
    assert sizing.slow() == 0


def test_on_a_fast_target_a_request_hangs_after_four_mean_answers_not_after_a_second() -> None:
    """Answers in 10 ms on loopback, 5 % of requests hanging: with a one-second floor they filled every slot before
    they counted (364 uploads/s against 910/s), so a request 0.2 s out is hanging already."""
    clock = Clock()
    sizing = InFlight(16, 256, 0, clock=clock)
    for _ in range(50):
        sizing.observe(0.01, True)
    hung = [sizing.begin() for _ in range(16)]
    clock.t += 0.03
    assert sizing.slow() == 0  # three mean answers: not yet
    clock.t += 0.17
    assert sizing.slow() == 16 and sizing.limit(1) == 32
    for i in hung:
        sizing.end(i, False)


def test_the_breaker_opens_for_a_target_that_is_down_not_for_a_bunch_of_failures_among_answers() -> None:
    """Twelve failed answers together among many good ones (requests in flight at 20 % faults): the target is
    up. Only when most of the recent outcomes failed is it taken for down."""
    b = policy.CircuitBreaker(12, 30, 600, clock=Clock())
    for _ in range(36):
        b.success()
    for _ in range(12):
        b.failure()
    assert b.openings == 0
    for _ in range(25):  # now most of the last seconds' outcomes failed
        b.failure()
    assert b.openings == 1


def test_the_first_answers_of_a_run_do_not_open_the_breaker() -> None:
    """A run's first wave: its faults are answered at once, its uploads after their commit, so the first outcomes
    are mostly failures though the target is up (seen at 20 % faults with 128 in flight: 12 of the first 13)."""
    b = policy.CircuitBreaker(12, 30, 600, clock=Clock())
    b.success()
    for _ in range(12):
        b.failure()
    assert b.openings == 0
    for _ in range(100):
        b.success()
    assert b.openings == 0
    b.in_flight = 128  # a wave of 128 out: 30 outcomes, 29 failed, are not yet a verdict on the target
    for _ in range(10):
        b.clock.t += 11  # type: ignore[attr-defined]
        b.success()
        for _ in range(29):
            b.failure()
    assert b.openings == 0


def test_requests_begun_before_the_breaker_opened_do_not_open_it_again() -> None:
    """Requests that hung through the cool-down end in timeouts just after it: they are old news."""
    b = policy.CircuitBreaker(12, 30, 600, clock=Clock())
    for _ in range(30):
        b.failure(b.clock())
    assert b.openings == 1
    began = b.clock()
    b.clock.t += 31  # type: ignore[attr-defined]
    for _ in range(30):
        b.failure(began - 1)  # out before it opened
    assert b.openings == 1
    for _ in range(30):
        b.failure(b.clock())  # new requests, failing as well: down still
    assert b.openings == 2
