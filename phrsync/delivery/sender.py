"""Sending the outbox: asyncio + httpx (one connection per upload worker), uploads served from one lane per
facility (:mod:`phrsync.delivery.lanes`) under PHR's per-facility cap (:class:`phrsync.ratelimit.RateLimiter`),
with as many requests in flight as rate × round trip needs, and the retry policy of
:mod:`phrsync.delivery.policy`: backoff with full jitter on 5xx / timeouts / resets, 429 ``Retry-After``
honoured, 4xx refusals kept with the server's reasons and not retried, and a circuit breaker that pauses
everyone while the target is down. A payload waiting for its retry waits in its lane, not in a worker.

Crash safety: rows are committed as ``sending`` (attempts + 1) a page at a time before any of their requests
goes out (and again before each retry); each answer is committed with the next group commit. A ``kill -9``
therefore leaves at most the claimed rows whose answers were not yet committed ``sending``; the next run sends
them again, which PHR treats as a replacement (uploads are keyed by encounter ref / register key), so nothing
is lost and nothing is duplicated. The same reasoning covers a timeout whose request still landed on the
server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import orjson

from phrsync.delivery import outbox as ob
from phrsync.delivery.auth import (
    AuthError,
    CertificateRefused,
    IssuerUnreachable,
    TokenProvider,
    TokenScopeError,
)
from phrsync.delivery.config import DeliverySettings
from phrsync.delivery.connect import (
    EXTRA_CONNECTIONS,
    new_client,
    nothing_listens,
    prepared,
    private_link,
    proxy_for,
    refused_locally,
    send_direct,
    tls_advice,
    tls_context,
    tls_failure,
)
from phrsync.delivery.lanes import InFlight, Lanes
from phrsync.delivery.policy import CircuitBreaker, GaveUp, RetryPolicy, TargetDown, retry_after, retryable
from phrsync.pdpa import mask_text
from phrsync.ratelimit import RateLimiter

log = logging.getLogger("phrsync.delivery")
T = TypeVar("T")
ProgressFn = Callable[[int, int], None]  # (done, total)
Reply = httpx.Response
__all__ = ["CircuitBreaker", "ClaimLost", "GaveUp", "Reply", "Sender", "TargetDown", "refusal_reasons"]


class ClaimLost(GaveUp):
    """Another agent took a row this one had claimed (its lease had expired): this one leaves it alone."""


AGENT_STALE_SECONDS = 15 * 60  # another computer's status older than this no longer blocks us
IDLE_STATUS = "idle"  # how a run's final UpdateAgentStatus begins when it ended: the guard lets others in
STATUS_MIN_GAP = 5.0  # PHR refuses UpdateAgentStatus (status or error) sooner than this after the last one
MIN_SHARE = 4  # requests in flight a facility may always have: one hung till the timeout does not stop its pace
# A 429 holds back the whole facility for its Retry-After when the agent paces facilities (it is PHR's cap
# speaking), or when it comes this many times in a row; a lone 429 unpaced holds back only its request.
PAUSE_STREAK = 3
SLOW_CHECK = 0.25  # seconds: with every request in flight, how often to look for hanging ones
RESIZE_EVERY = 0.05  # seconds between two sizings of the requests in flight
LANE_ROWS = 2000  # rows read ahead into the lanes (round-robin pages: a few per facility)
FLUSH_DELAY, FLUSH_OPS = 0.05, 256  # answers are committed at least this often / in groups of at most this


@dataclass
class Counters:
    requests: int = 0
    retries: int = 0
    sent: int = 0  # 200 for an encounter, waiting for OrganizationSummary to confirm it
    confirmed: int = 0
    refused: int = 0
    failed: int = 0
    failed_by: dict[str, int] = field(default_factory=dict)  # per facility: its own error report to PHR
    in_doubt: int = 0  # rows found "sending" at start (a crash or kill): sent again
    status_codes: dict[str, int] = field(default_factory=dict)


@dataclass
class _Job:
    """A claimed row on its way: attempts made this run and whether a fresh login was already tried."""

    row: ob.Row
    attempts: int = 0
    relogged: bool = False
    claimed: bool = True  # its first attempt goes out under its page's claim


@dataclass
class Attempt:
    """One request's outcome (:meth:`Sender.attempt`): the final ``reply``, or why it failed (``last``) and the
    least wait the server asked for (``wait``; ``paused``: a 429's Retry-After for the facility)."""

    reply: Reply | None = None
    last: str = ""
    wait: float = 0.0
    paused: float = 0.0
    relog: bool = False  # the token was refused: log in again and go at once (not counted as an attempt)
    answered: bool = False  # the target sent a status (not a timeout or a broken connection)
    unprocessed: bool = False  # a 5xx, or the connection lost before an answer: the service did not take it


def refusal_reasons(r: Reply) -> tuple[str, str]:
    """(short reason, full text) from PHR's error envelope; citizen IDs masked."""
    try:
        data = r.json()
    except ValueError:
        return f"HTTP {r.status_code}", mask_text(r.text[:300])
    if not isinstance(data, dict):
        return f"HTTP {r.status_code}", mask_text(str(data)[:300])
    issues = [i for i in data.get("issues") or [] if isinstance(i, dict)]
    msg = str(data.get("Message") or f"HTTP {r.status_code}")
    if issues:
        first = issues[0]
        short = f"{first.get('path', '')}: {first.get('rule') or msg}" if first.get("path") else str(
            first.get("rule") or msg)
        full = "; ".join(f"{i.get('path', '')}: {i.get('message_th', '')} / {i.get('message_en', '')}"
                         for i in issues[:20])
    else:
        short = msg
        th = data.get("MessageTH")
        full = f"{th} / {msg}" if th else msg
    return mask_text(short)[:120], mask_text(f"HTTP {r.status_code}: {full}")[:4000]


class Sender:
    """One run against one target. All outbox calls go through one database thread (serialised writes)."""

    def __init__(self, settings: DeliverySettings, box: ob.Outbox, progress: ProgressFn | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.s = settings
        self.t = settings.target
        self.box = box
        self.progress = progress
        self.transport = transport
        self.counters = Counters()
        self.skipped: dict[str, str] = {}  # hcode -> why this facility is not sent this run
        self.skip_kind: dict[str, str] = {}  # hcode -> "auth" | "other_agent" | "error"
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._ops: list[tuple[tuple[str, Any], asyncio.Future[set[str]] | None]] = []
        self._flushing = False
        self._db_error: Exception | None = None
        self._waiting = 0  # queued changes someone awaits
        self._timer: asyncio.TimerHandle | None = None
        self._flush_task: asyncio.Task[None] | None = None
        self._checked: dict[str, asyncio.Future[bool]] = {}  # hcode -> the check's final outcome
        self._rounds: dict[str, tuple[asyncio.Future[bool], asyncio.Future[bool]]] = {}
        self._check_tasks: list[asyncio.Task[None]] = []
        self._429: dict[str, int] = {}  # hcode -> 429s in a row for its uploads
        self._last_status: dict[str, float] = {}  # when a status last went to PHR, per facility (its 5 s rule)
        self._next_status: dict[str, float] = {}  # when the next progress report is due, per facility
        self.client: httpx.AsyncClient | None = None  # logins, status reports, reconcile
        self.workers: list[httpx.AsyncClient] = []  # one per upload worker, one connection each (connect.py)
        self._urls: dict[str, httpx.URL] = {}  # endpoint -> its absolute URL, parsed once instead of per request
        self.tokens: TokenProvider | None = None
        self.breaker = CircuitBreaker(self.t.breaker_failures, self.t.breaker_cooldown, self.t.give_up_seconds)
        self.retry = RetryPolicy(self.t.max_attempts, self.t.backoff_base, self.t.backoff_max)
        self.limiter = RateLimiter(self.t.rate_per_minute, spaced=True)  # evenly spaced: never a refused burst
        self.down: str | None = None
        # for the monitoring web: what PHR answered and what this run told it, per facility (kept at the run's end)
        self.phr_agent: dict[str, dict[str, Any]] = {}
        # per facility, the visit days whose rows changed since its aggregates were last counted
        self.dirty: dict[str, set[str | None]] = {}
        self.touched: set[str] = set()  # facilities whose rows this run settled
        self._left: dict[str, int] = {}  # rows of each facility this sending pass has still to settle

    async def db(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, lambda: fn(*args, **kw))

    async def claim(self, rows: list[ob.Row]) -> list[ob.Row]:
        """Commit a page of rows ``sending`` (attempts + 1) before any of their requests goes out: one
        transaction per page instead of one per payload. A crash leaves at most the claimed, unanswered rows
        in doubt; they are sent again next run, which PHR treats as a replacement. Returns the rows claimed:
        a row another agent changed since it was read is not (:meth:`Outbox.apply`)."""
        if not rows:
            return rows
        lost = await self._write(("claim", [(r.key, r.status, r.claimed_by) for r in rows]))
        return [r for r in rows if r.key not in lost] if lost else rows

    async def mark_sending(self, key: str) -> None:
        """Before a retry of a claimed row: returns once the row is committed ``sending`` (attempts + 1);
        raises :class:`ClaimLost` when another agent took the row meanwhile."""
        if key in await self._write(("claim", [key])):
            raise ClaimLost("แถวนี้ถูกโปรแกรมส่งอื่นรับไปแล้ว / another agent took this row")

    def record(self, key: str, status: str, code: int | None = None, reason: str | None = None,
               error: str | None = None) -> None:
        """The answer for a row, committed with the next group commit. The worker does not wait for it: until
        it is committed the row stays ``sending`` (sent again after a crash, which replaces); :meth:`settle`
        waits for every queued change before the run goes on to reconcile or ends."""
        self._enqueue(("result", (key, status, code, reason, error)), None)

    def unclaim(self, row: ob.Row) -> None:
        """A claimed row whose request never went out (facility skipped, target down): as it was."""
        self._enqueue(("revert", (row.key, row.status)), None)

    def facility_settled(self, hcode: str, day: str | None) -> None:
        """One more row of ``hcode`` (of visit ``day``) is done for this sending pass; after its last one, the days
        it sent are counted again with the group commit that holds its last answer (the web sees the facility's
        sending as it ends, not only at the run's end)."""
        self.dirty.setdefault(hcode, set()).add(day)
        self.touched.add(hcode)
        left = self._left.get(hcode)
        if left is None:
            return
        if left <= 1:
            del self._left[hcode]
            self._enqueue(("refresh", hcode), None)
        else:
            self._left[hcode] = left - 1

    async def refresh_aggregates(self, days: dict[str, set[str | None]]) -> None:
        """Count these facilities' rows of these days again (:meth:`Outbox.refresh_aggregates`); a failure only
        leaves the web's figures older, never the run."""
        work = {h: set(d) for h, d in days.items()}
        if not work:
            return
        try:
            await self.db(self.box.refresh_aggregates, work, work)
        except Exception as e:
            log.warning("นับสรุปสำหรับหน้าเว็บไม่ได้ / cannot count the web's figures: %s", mask_text(str(e))[:200])
            return
        for h, d in work.items():
            left = self.dirty.get(h)
            if left is not None:
                left -= d
                if not left:
                    del self.dirty[h]

    async def settle(self) -> None:
        """Every state change queued so far is committed (raises the database error if one failed)."""
        if self._ops or self._flushing:
            await self._write(("settle", None))
        if self._db_error is not None:
            e, self._db_error = self._db_error, None
            raise e

    async def _write(self, op: tuple[str, Any]) -> set[str]:
        """Queue a change and wait for its commit: the keys of the commit whose claims did not take."""
        fut: asyncio.Future[set[str]] = asyncio.get_running_loop().create_future()
        self._enqueue(op, fut)
        return await fut

    def _enqueue(self, op: tuple[str, Any], fut: asyncio.Future[set[str]] | None) -> None:
        """Group commit: the state changes of all workers share transactions. A change someone waits for
        (a claim before its requests, :meth:`settle`) goes with the next transaction at once; answers that
        nobody waits for gather for up to ``FLUSH_DELAY`` s or ``FLUSH_OPS`` changes (a commit costs the
        agent more than the updates in it)."""
        self._ops.append((op, fut))
        if fut is not None:
            self._waiting += 1
        self._kick()

    def _kick(self) -> None:
        if self._flushing or not self._ops:
            return
        loop = asyncio.get_running_loop()
        if self._waiting or len(self._ops) >= FLUSH_OPS:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._flushing = True
            self._flush_task = loop.create_task(self._flush())  # kept: the loop holds tasks only weakly
        elif self._timer is None:
            self._timer = loop.call_later(FLUSH_DELAY, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if not self._flushing and self._ops:
            self._flushing = True
            self._flush_task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            ops, self._ops = self._ops, []
            self._waiting -= sum(1 for _, f in ops if f is not None)
            sending: list[ob.Claim] = []
            results: list[tuple[str, str, int | None, str | None, str | None]] = []
            reverts: list[tuple[str, str]] = []
            refresh: list[str] = []
            for (kind, arg), _ in ops:
                if kind == "claim":
                    sending.extend(arg)
                elif kind == "result":
                    results.append(arg)
                elif kind == "revert":
                    reverts.append(arg)
                elif kind == "refresh":
                    refresh.append(arg)
            try:
                lost = await self.db(self.box.apply, sending, results, reverts)
                if refresh:  # after the facility's last answers, committed just above
                    await self.refresh_aggregates({h: self.dirty.get(h, set()) for h in refresh})
            except Exception as e:  # waiting callers see the database error; nothing was sent for them
                self._db_error = e
                for _, f in ops:
                    if f is not None:
                        f.set_exception(e)
            else:
                for _, f in ops:
                    if f is not None:
                        f.set_result(lost)
        finally:
            self._flushing = False
            self._kick()

    async def __aenter__(self) -> Sender:
        urls = [u for u in (self.t.base_url, self.t.token_url) if u]
        for url in set(urls):
            if not private_link(url):
                log.warning("%s ไม่ได้เข้ารหัส (http) ข้อมูลสุขภาพและ password_hash จะผ่านเครือข่ายแบบอ่านได้ ใช้ https / "
                            "is plain http: health data and the password hash cross the network readable; use https",
                            httpx.URL(url).host)
        verify, ua = tls_context(urls, self.t.ca_bundle), self.s.agent_version or "phrsync"
        self.client = new_client(self.t.base_url, connections=EXTRA_CONNECTIONS, timeout=self.t.timeout,
                                 verify=verify, transport=self.transport, user_agent=ua)
        self._verify, self._ua = verify, ua
        self._direct = self._direct_for()
        self.workers = [self._worker_client() for _ in range(self.t.concurrency)]
        self.tokens = TokenProvider(self.client, self.t.token_url, self.s.credentials)
        return self

    def _direct_for(self) -> bool:
        """Uploads straight to their connection, unless a proxy carries them (it is one of the client's mounts,
        so they go through ``client.send``)."""
        return proxy_for(self.t.base_url) is None

    def _worker_client(self) -> httpx.AsyncClient:
        """One more upload connection (the in-flight sizing grows them as the run measures its needs)."""
        return new_client(self.t.base_url, connections=1, timeout=self.t.timeout, verify=self._verify,
                          transport=self.transport, user_agent=self._ua)

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await self.settle()
        for t in self._check_tasks:
            t.cancel()
        for c in [self.client, *self.workers]:
            if c is not None:
                await c.aclose()
        self._pool.shutdown(wait=True)

    # ---- one HTTP call with auth, retries, breaker ------------------------------------------
    async def call(self, method: str, endpoint: str, hcode: str, *, params: dict[str, str] | None = None,
                   body: bytes | None = None, before: Callable[[], Any] | None = None, max_attempts: int | None = None,
                   wait_429: bool = True, client: httpx.AsyncClient | None = None) -> Reply:
        """The final answer: 2xx or a non-retryable 4xx. Raises GaveUp, AuthError or TargetDown. For logins,
        status reports and reconcile: the caller waits through the retries (uploads go through the lanes of
        :meth:`send_outbox` instead, where a waiting retry holds no worker)."""
        policy = self.retry if max_attempts is None else RetryPolicy(max_attempts, self.retry.base, self.retry.cap)
        relogged = False
        attempt = 0
        while True:
            await self.breaker.wait()
            a = await self.attempt(method, endpoint, hcode, params=params, body=body, before=before,
                                   wait_429=wait_429, client=client, relogged=relogged)
            if a.reply is not None:
                return a.reply
            if a.relog:
                relogged = True
                continue
            attempt += 1
            pause = policy.next_wait(attempt, a.wait)
            if pause is None:
                raise GaveUp(a.last)
            self.counters.retries += 1
            log.info("%s %s: %s; ลองใหม่ครั้งที่ %d ใน %.2f วินาที / retry %d in %.2f s", hcode, endpoint, a.last,
                     attempt, pause, attempt, pause)
            await asyncio.sleep(pause)

    async def attempt(self, method: str, endpoint: str, hcode: str, *, params: dict[str, str] | None = None,
                      body: bytes | None = None, before: Callable[[], Any] | None = None, wait_429: bool = True,
                      client: httpx.AsyncClient | None = None, relogged: bool = False) -> Attempt:
        """One request, no waiting: the final answer, or why it failed and what the server asked for. Counts
        towards the breaker; raises AuthError (a refused login, or a token refused after a fresh login),
        TokenScopeError or TargetDown."""
        assert self.client is not None and self.tokens is not None
        trip = True  # does this failure count towards opening the circuit? (429 does not)
        started: float | None = None  # when the request went out (a failed login has none)
        out = Attempt()
        try:
            bearer = await self.tokens.bearer(hcode, endpoint)
        except CertificateRefused as e:
            raise TargetDown(str(e)) from None  # no retry: it answers the same until ca_bundle is set
        except IssuerUnreachable as e:  # a local token URL nobody serves: the same for every facility
            same = httpx.URL(e.url).netloc == httpx.URL(self.t.base_url).netloc
            raise TargetDown(nothing_listens(self.t.base_url if same else e.url, self.t.name,
                                             "base_url" if same else "token_url")) from None
        except AuthError as e:
            if not e.transient:
                raise
            out.last, out.wait = str(e), e.wait
        else:
            if before is not None:
                await before()
            headers = {"Authorization": bearer}
            if body is not None:
                headers["Content-Type"] = "application/json"
            self.counters.requests += 1
            started = self.breaker.clock()
            try:
                if client is None or params:
                    r = await (client or self.client).request(method, self._url(endpoint), params=params,
                                                              content=body, headers=headers)
                elif self._direct:  # an upload: prepared, straight to its connection (connect.send_direct)
                    r = await send_direct(client, prepared(client, method, self._url(endpoint), body, headers))
                else:
                    r = await client.send(prepared(client, method, self._url(endpoint), body, headers))
            except httpx.TimeoutException:
                out.last = "timeout / หมดเวลารอ"
            except httpx.TransportError as e:
                tls = tls_failure(e)
                if tls:  # the same for every request: stop the run (rows kept) and say what cures it
                    raise TargetDown(tls_advice(httpx.URL(self.t.base_url).host, tls)) from None
                if refused_locally(e, self.t.base_url):  # nothing listens there: say where we looked
                    raise TargetDown(nothing_listens(self.t.base_url, self.t.name)) from None
                out.last = f"{type(e).__name__} / การเชื่อมต่อขัดข้อง"
                out.unprocessed = True
            else:
                out.answered = True
                code = r.status_code
                key = str(code)
                self.counters.status_codes[key] = self.counters.status_codes.get(key, 0) + 1
                if code in (401, 501):
                    self.tokens.invalidate(hcode, bearer)  # expired or revoked: log in again, once
                    if relogged:
                        raise AuthError(hcode, f"PHR ไม่ยอมรับโทเค็น / PHR refused the token (HTTP {code})")
                    out.relog = True
                    return out
                if code == 429 and not wait_429:
                    out.reply = r
                    return out
                if code == 429:
                    ra = retry_after(r.headers)
                    out.last, out.wait, out.paused, trip = "HTTP 429 / ส่งถี่เกิน", ra, ra, False
                elif retryable(code):
                    out.last = f"HTTP {code} / ปลายทางขัดข้อง"
                    out.unprocessed = code >= 500
                else:
                    self.breaker.success()  # any real answer (even a refusal) means the target is up
                    out.reply = r
                    return out
        if trip:
            self.breaker.failure(started)
        return out

    def _url(self, endpoint: str) -> httpx.URL:
        u = self._urls.get(endpoint)
        if u is None:
            u = self._urls[endpoint] = httpx.URL(self.t.base_url.rstrip("/") + f"/api/{endpoint}")
        return u

    # ---- facility guard and heartbeat ------------------------------------------------------
    async def facility_ok(self, hcode: str) -> bool:
        """Once per run per facility: is another computer sending for it right now (GetAgentComputerName)?
        A transient failure of the check (5xx, 429, timeout, a login the issuer could not answer) is tried
        again with backoff, up to ``max_attempts`` rounds; only a refusal (login refused, another computer
        sending) or rounds used up skip the facility for the run."""
        return await self._check(hcode)[1]

    def _check(self, hcode: str) -> tuple[asyncio.Future[bool], asyncio.Future[bool]]:
        """(first round, final) of a facility's check, started once: the first round's future is True or
        False when the check is settled at once, False while it waits to be tried again."""
        pair = self._rounds.get(hcode)
        if pair is None:
            loop = asyncio.get_running_loop()
            pair = self._rounds[hcode] = (loop.create_future(), loop.create_future())
            self._checked[hcode] = pair[1]
            self._check_tasks.append(loop.create_task(self._check_rounds(hcode, *pair)))
        return pair

    async def _check_rounds(self, hcode: str, first: asyncio.Future[bool], final: asyncio.Future[bool]) -> None:
        try:
            await self._check_until_settled(hcode, first, final)
        finally:  # cancelled (the run stops) or failed unexpectedly: whoever waits is not left hanging
            for f in (first, final):
                if not f.done():
                    f.set_result(False)

    async def _check_until_settled(self, hcode: str, first: asyncio.Future[bool], final: asyncio.Future[bool]) -> None:
        ok: bool | None = None
        last = ""
        rounds = max(1, self.t.max_attempts)
        for rnd in range(rounds):
            try:
                ok = await self._check_facility(hcode)
            except AuthError as e:
                if not e.transient:
                    self.skip(hcode, "auth", str(e))
                    ok = False
                last = str(e)
            except GaveUp as e:
                last = str(e)
            except TargetDown as e:  # the target, not this facility: the run stops and says why
                self.down = self.down or str(e)
                self.skip(hcode, "error", str(e))
                ok = False
            if ok is not None or self.down is not None:
                break
            if not first.done():
                first.set_result(False)
            pause = self.retry.next_wait(rnd + 1) if rnd + 1 < rounds else None
            if pause is None:
                break
            pause = max(pause, self.t.backoff_base)
            log.warning("%s: ตรวจหน่วยบริการไม่สำเร็จ (%s) ลองใหม่ใน %.1f วินาที / facility check failed (%s), "
                        "trying again in %.1f s", hcode, mask_text(last), pause, mask_text(last), pause)
            await asyncio.sleep(pause)
        if ok is None:
            self.skip(hcode, "error", last or "GetAgentComputerName")
            ok = False
        if not first.done():
            first.set_result(ok)
        final.set_result(ok)

    def token_only(self, hcode: str) -> bool:
        """Only the 1-year ``HCODE:TOKEN`` for this facility: its encounters go, nothing that needs a JWT does."""
        creds = self.s.credentials(hcode)
        return bool(creds.facility_token) and not creds.has_jwt

    async def _check_facility(self, hcode: str) -> bool:
        if self.token_only(hcode):  # GetAgentComputerName and UpdateAgentStatus need the Account Center JWT
            log.warning("%s: มีเพียงโทเค็น 1 ปี ส่งได้เฉพาะ encounter ไม่มีการกันสองเครื่องส่งพร้อมกัน ไม่รายงานสถานะ "
                        "และไม่ตรวจกับ PHR / only the 1-year token: encounters are sent, without the two-agents "
                        "guard, status reports or reconciliation (they need an Account Center account)", hcode)
            return True
        r = await self.call("POST", "GetAgentComputerName", hcode, body=orjson.dumps({"hospital_code": hcode}),
                            max_attempts=4)
        res = _result(r)
        answer = res if isinstance(res, dict) else {}  # (none before any agent reported for the facility)
        self.phr_agent.setdefault(hcode, {}).update(
            phr_computer=mask_text(str(answer.get("agent_computer_name") or ""))[:255] or None,
            phr_status=mask_text(str(answer.get("agent_status") or ""))[:300] or None,
            phr_last_update=str(answer.get("last_update") or "") or None, asked_at=time.time())
        if isinstance(res, dict):
            other = str(res.get("agent_computer_name") or "")
            age = _age_seconds(res.get("last_update"), _request_time(r))
            # a computer whose last word was its run's outcome ("idle") has finished: it is not sending
            idle = str(res.get("agent_status") or "").lower().startswith(IDLE_STATUS)
            if other and other != self.s.computer_name and not idle and age is not None and age < AGENT_STALE_SECONDS:
                self.skip(hcode, "other_agent", f"เครื่อง {other} กำลังส่งข้อมูลของหน่วยบริการนี้ / computer "
                          f"{other} is already sending for this facility ({age:.0f} s ago)")
                return False
        # The first progress report comes PHR's 5 s after this check, not now: a run shorter than that reports once,
        # its outcome, at its end — a "starting" report now would hold that outcome back for those 5 s. Not
        # ``status_interval`` (30 s) either: until its first report, another computer's guard does not see this one
        # (the guard is not atomic), and a run announced only after 30 s let a second installation start beside it.
        self._next_status[hcode] = time.monotonic() + STATUS_MIN_GAP
        return True

    def contacted_facilities(self) -> set[str]:
        """Facilities this run asked PHR about (checked, or tried to) or settled rows of: what the run touched."""
        return set(self._checked) | set(self.skipped) | self.touched

    def checked_facilities(self) -> list[str]:
        """Facilities this run checked (GetAgentComputerName, or only the 1-year token) and did not skip."""
        return [h for h, f in self._checked.items() if f.done() and f.result()]

    def skip(self, hcode: str, kind: str, why: str) -> None:
        """Stop sending for one facility this run (its rows stay as they are for the next run)."""
        if hcode not in self.skipped:
            self.skipped[hcode] = mask_text(why)
            self.skip_kind[hcode] = kind
            log.error("ข้ามหน่วยบริการ / skipping facility %s: %s", hcode, self.skipped[hcode])

    async def agent_status(self, hcode: str, text: str, error: bool = False, final: bool = False) -> None:
        """UpdateAgentStatus; failures ignored. Progress goes at most every ``status_interval``; ``final`` (the
        run's outcome: idle, or mode=Error) always goes, waiting out PHR's 5 s after the previous report when
        it must rather than being dropped (PHR showed a run "starting" for good and never saw its errors)."""
        now = time.monotonic()
        if (not final and now < self._next_status.get(hcode, 0.0)) or self.token_only(hcode):
            return  # (the 1-year token cannot call UpdateAgentStatus)
        last = self._last_status.get(hcode)
        if last is not None and now - last < STATUS_MIN_GAP:
            if not final:
                return
            await asyncio.sleep(STATUS_MIN_GAP - (now - last))
        self._last_status[hcode] = time.monotonic()
        self._next_status[hcode] = self._last_status[hcode] + max(STATUS_MIN_GAP, self.t.status_interval)
        body = {"hospital_code": hcode, "agent_status": text[:200]}
        if not error:
            body.update(agent_computer_name=self.s.computer_name, agent_version=self.s.agent_version,
                        most_client_version=self.s.agent_version)
        with contextlib.suppress(AuthError, GaveUp, TargetDown):
            # An error outcome refused with 429 (an earlier run reported less than 5 s ago: this run cannot know)
            # waits once and goes; an "idle" one is dropped then — that earlier report is seconds old.
            r = await self.call("POST", "UpdateAgentStatus", hcode, body=orjson.dumps(body),
                                params={"mode": "Error"} if error else None, max_attempts=2, wait_429=final and error)
            if r.status_code == 200:  # what PHR's dashboard shows for this facility now
                self.phr_agent.setdefault(hcode, {}).update(status_sent=mask_text(text[:200]), status_error=error,
                                                            status_sent_at=time.time())

    # ---- the outbox run --------------------------------------------------------------------
    async def send_outbox(self, facility: str | None = None,
                          statuses: tuple[str, ...] = ob.TO_SEND) -> Counters:
        """Send every row to send (of ``facility``, or all): rows stream from the outbox into one lane per
        facility (:mod:`phrsync.delivery.lanes`); a dispatcher hands the next ready upload to a free connection,
        keeping as many in flight as :class:`InFlight` sizes. A failed attempt goes back to its lane with its due
        time (backoff, or the server's Retry-After) and its connection serves the next upload meanwhile."""
        total = await self.db(self.box.count_to_send, facility)
        self._left = {h: n for h, n in (await self.db(self.box.to_send_counts, statuses)).items()
                      if n and (not facility or h == facility)}
        lanes: Lanes[_Job] = Lanes(self.limiter)
        sizing = InFlight(self.t.concurrency, self.t.max_concurrency, self.t.rate_per_minute)
        idle = list(self.workers)
        wake, room = asyncio.Event(), asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()
        late: dict[str, int] = {}  # facility whose check waits for another round -> its rows left out so far
        producers = 0
        done = 0

        def finished(n: int = 1) -> None:
            nonlocal done
            done += n
            if self.progress:
                self.progress(done, total)

        def pages(gen: Iterator[ob.Row]) -> Callable[[], list[ob.Row]]:
            def next_page() -> list[ob.Row]:
                out = []
                for row in gen:
                    out.append(row)
                    if len(out) >= 200:
                        break
                return out
            return next_page

        async def produce(next_page: Callable[[], list[ob.Row]], late_pass: bool) -> None:
            nonlocal producers
            try:
                while self.down is None:
                    while lanes.pending() >= LANE_ROWS and self.down is None:
                        room.clear()
                        await room.wait()
                    page = await self.db(next_page)
                    if not page:
                        break
                    if not late_pass:
                        new = {r.hospcode for r in page} - self._rounds.keys()
                        if new:  # another computer sending for a facility? asked before its rows are claimed
                            await asyncio.gather(*(self._check(h)[0] for h in new))
                    kept = []
                    for r in page:
                        h = r.hospcode
                        if h in self.skipped:
                            finished()
                            self.facility_settled(h, r.day)
                        elif late_pass or self._passed(h) and h not in late:
                            kept.append(r)
                        else:  # its check is tried again later: a pass of its own then sends its rows
                            if h not in late:
                                late[h] = 0
                                producers += 1
                                self._spawn(tasks, late_facility(h))
                            late[h] += 1
                    claimed = await self.claim(kept)
                    finished(len(kept) - len(claimed))  # taken by another agent since they were read
                    for row in claimed:
                        lanes.add(row.hospcode, _Job(row))
                    wake.set()
            finally:
                producers -= 1
                wake.set()

        async def late_facility(h: str) -> None:
            """A facility whose check failed transiently: sent once a later round of the check passes."""
            nonlocal producers
            ok = await self._check(h)[1]
            if ok and self.down is None:
                producers += 1
                await produce(pages(iter(self.box.to_send(h, statuses))), True)
            else:
                finished(late.get(h, 0))
            producers -= 1
            wake.set()

        async def run(job: _Job, client: httpx.AsyncClient) -> None:
            started = sizing.begin()
            answered = False
            try:
                answered, final = await self._upload(job, client, lanes)
                if final:
                    finished()
                    self.facility_settled(job.row.hospcode, job.row.day)
            finally:
                sizing.end(started, answered)
                lanes.done(job.row.hospcode)
                idle.append(client)
                wake.set()

        async def dispatch() -> None:
            loop = asyncio.get_running_loop()
            limit = share = 0
            resize = 0.0
            while True:
                if self.down is not None:
                    for job in lanes.drain():
                        self.unclaim(job.row)
                        finished()
                    for t in self._check_tasks:  # a check waiting for its next round: the run stops
                        t.cancel()
                    room.set()
                if lanes.pending() < LANE_ROWS // 2:
                    room.set()
                if loop.time() >= resize:  # sized again every RESIZE_EVERY s, not per upload (it counts the lanes)
                    active = max(1, lanes.active())
                    limit = sizing.limit(active)
                    self.breaker.in_flight = lanes.inflight
                    share = max(MIN_SHARE, -(-limit // active))
                    resize = loop.time() + RESIZE_EVERY
                nxt: _Job | float | None = None
                if lanes.inflight < limit:
                    nxt = lanes.next(share)
                    if isinstance(nxt, _Job):
                        try:
                            await self.breaker.wait()
                        except TargetDown as e:
                            self.down = self.down or str(e)
                        client = idle.pop() if idle else self._grow()
                        self._spawn(tasks, run(nxt, client))
                        continue
                if producers == 0 and lanes.inflight == 0 and not lanes.pending():
                    return
                wake.clear()
                if lanes.inflight >= limit and lanes.pending():  # full: look again soon (some may be hanging)
                    nxt = min(nxt, SLOW_CHECK) if isinstance(nxt, float) else SLOW_CHECK
                timer = loop.call_later(nxt, wake.set) if isinstance(nxt, float) else None
                await wake.wait()
                if timer is not None:
                    timer.cancel()

        producers = 1
        main = self.box.to_send(facility, statuses)
        try:
            await asyncio.gather(produce(pages(main), False), dispatch())
            while tasks:
                await asyncio.gather(*list(tasks))
        finally:
            await self.settle()
        return self.counters

    def _grow(self) -> httpx.AsyncClient:
        c = self._worker_client()
        self.workers.append(c)
        return c

    @staticmethod
    def _spawn(tasks: set[asyncio.Task[None]], coro: Coroutine[Any, Any, None]) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        tasks.add(t)  # kept: the loop holds tasks only weakly
        t.add_done_callback(tasks.discard)

    def _passed(self, hcode: str) -> bool:
        """The facility's check has passed (its first round, or a later one already)."""
        first, final = self._rounds[hcode]
        return (first.done() and first.result()) or (final.done() and final.result())

    async def _upload(self, job: _Job, client: httpx.AsyncClient, lanes: Lanes[_Job]) -> tuple[bool, bool]:
        """One attempt of a claimed row; a failure goes back to its lane with its due time. Returns (the target
        answered, the row is settled for this run)."""
        row = job.row
        h = row.hospcode
        if h in self.skipped or self.down is not None:
            self.unclaim(row)
            return False, True

        async def before() -> None:
            if job.claimed:  # the first attempt goes out under the page's claim
                job.claimed = False
                return
            await self.mark_sending(row.key)

        try:
            a = await self.attempt("POST", row.endpoint, h, body=row.body, before=before, client=client,
                                   relogged=job.relogged)
        except ClaimLost:  # another agent holds the row now: it is that agent's to send and record
            return False, True
        except TokenScopeError as e:  # a register with only the 1-year token: kept to send once there is an account
            self._failed(row, "needs JWT", mask_text(str(e)))
            return True, True
        except AuthError as e:
            self.skip(h, "error" if e.transient else "auth", str(e))
            self._failed(row, "auth", mask_text(str(e)))
            return True, True
        except TargetDown as e:
            self.down = self.down or str(e)
            self._failed(row, "target down", str(e))
            return False, True
        if a.reply is not None:
            self._429[h] = 0
            await self._answered(row, a.reply)
            return True, True
        now = time.monotonic()
        if a.relog:
            job.relogged = True
            lanes.retry_at(h, job, now)
            return True, False
        streak = self._429[h] = self._429.get(h, 0) + 1 if a.paused else 0
        if a.paused and (self.t.rate_per_minute or streak >= PAUSE_STREAK):
            self.limiter.pause(h, a.paused)  # the facility waits out Retry-After (the request itself always does)
            lanes.pause(h, now + a.paused)
        job.attempts += 1
        pause = self.retry.next_wait(job.attempts, a.wait)
        if pause is None:
            self._failed(row, "transient", mask_text(a.last))
            return a.answered, True
        self.counters.retries += 1
        log.info("%s %s: %s; ลองใหม่ครั้งที่ %d ใน %.2f วินาที / retry %d in %.2f s", h, row.endpoint, a.last,
                 job.attempts, pause, job.attempts, pause)
        lanes.retry_at(h, job, now + pause, paced=not a.unprocessed)
        return a.answered, False

    async def _answered(self, row: ob.Row, r: Reply) -> None:
        """Record PHR's final answer for a row: accepted (sent or confirmed) or refused with its reasons."""
        c = self.counters
        code = r.status_code
        mc = _message_code(r)
        if 200 <= code < 300 and mc in (None, 200):
            status = ob.SENT if row.endpoint == ob.ENCOUNTER_EP else ob.CONFIRMED
            self.record(row.key, status, code)
            if status == ob.SENT:
                c.sent += 1
            else:
                c.confirmed += 1
            await self.agent_status(row.hospcode, f"processing / กำลังส่ง: {c.sent + c.confirmed} sent")
            return
        reason, full = refusal_reasons(r)
        self.record(row.key, ob.REFUSED, code, reason, full)
        c.refused += 1
        log.warning("ปฏิเสธ / refused %s: %s", row.key if row.endpoint == ob.ENCOUNTER_EP else row.endpoint, reason)

    def _failed(self, row: ob.Row, reason: str, error: str) -> None:
        """A row given up on for this run: ``failed`` (sent again next run), counted for its facility's report."""
        self.record(row.key, ob.FAILED, None, reason, error)
        c = self.counters
        c.failed += 1
        c.failed_by[row.hospcode] = c.failed_by.get(row.hospcode, 0) + 1


def _result(r: Reply) -> Any:
    try:
        data = r.json()
    except ValueError:
        return None
    return data.get("result") if isinstance(data, dict) else None


_MC = b'"MessageCode":'
_MC_OK = _MC + b"200"


def _message_code(r: Reply) -> int | None:
    # An acceptance is read without parsing the answer: ``"MessageCode":200`` once in the body (inside a JSON string
    # its quotes would be escaped, so it is a key; were it a nested one, a missing top-level code counts as 200 too)
    c = r.content
    i = c.find(_MC_OK)
    end = i + len(_MC_OK)
    if i >= 0 and c[end:end + 1] in (b",", b"}") and c.find(_MC, i + 1) < 0 and c.find(_MC, 0, i) < 0:
        return 200
    try:
        data = orjson.loads(r.content) if r.content else None
    except orjson.JSONDecodeError:
        return None
    mc = data.get("MessageCode") if isinstance(data, dict) else None
    return int(mc) if isinstance(mc, int | float) else None


def _request_time(r: Reply) -> float | None:
    """The envelope's ``RequestTime``: PHR's clock, the one its ``last_update`` values are on."""
    try:
        data = r.json()
    except ValueError:
        return None
    return _timestamp(data.get("RequestTime")) if isinstance(data, dict) else None


def _age_seconds(iso: Any, now: float | None = None) -> float | None:
    """How long ago ``iso`` was, against ``now`` (PHR's clock when it said) rather than this computer's: with a
    clock hours fast another agent's fresh heartbeat looked stale (both agents sent), hours slow it blocked."""
    t = _timestamp(iso)
    return None if t is None else (time.time() if now is None else now) - t


def _timestamp(iso: Any) -> float | None:
    import datetime as dt

    if not isinstance(iso, str) or not iso:
        return None
    try:
        t = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone(dt.timedelta(hours=7)))
    return t.timestamp()
