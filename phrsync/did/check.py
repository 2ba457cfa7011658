"""Asking PHR who has a Digital ID: ``POST idp/api/check_ekyc {cid}``, one person per call (PHR has no other way).

* Whom: :meth:`DidStore.to_check` — never answered, or answered "none" more than ``recheck_days`` ago; someone
  with a Digital ID is never asked again.
* How fast: ``concurrency`` requests at once, paced by the shared :class:`~phrsync.ratelimit.RateLimiter`
  (``rate_per_minute``; PHR documents no limit for this call, so the default is modest).
* Failures: 429 (waits its Retry-After, and holds every worker back that long), 5xx, 408 and network errors are
  tried again with full-jitter backoff (:mod:`phrsync.delivery.policy`) up to ``max_attempts``; then the person
  stays due for the next run. 401/501: the token is renewed once (:class:`~phrsync.delivery.auth.TokenProvider`,
  as for sending). 403: the account lacks MOPH_IDP_API — the run stops with that message (exit 4), since every
  other call would be refused too.
* Resumable: answers are committed as they arrive (grouped over at most 50 ms, :data:`FLUSH_SECONDS`), so a run
  stopped by Ctrl+C leaves every answer it got and one killed with ``kill -9`` all but the last few
  milliseconds'; the next run asks only about those still without an answer in the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import orjson

from phrsync.delivery.auth import AuthError as LoginError
from phrsync.delivery.auth import TokenProvider
from phrsync.delivery.config import Credentials
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
from phrsync.delivery.policy import RetryPolicy, retry_after, retryable
from phrsync.did.store import KINDS, DidStore
from phrsync.errors import AuthError, Interrupted, SourceError, UsageError
from phrsync.pdpa import mask_text
from phrsync.ratelimit import RateLimiter

log = logging.getLogger("phrsync.did")
ENDPOINT = "/idp/api/check_ekyc"
RATE_KEY = "check_ekyc"
# answers are committed in groups of at most this many, at least this often: a run killed with kill -9 loses at
# most the answers of the last few milliseconds (asked again next run), never one that was committed
FLUSH_ANSWERS, FLUSH_SECONDS = 64, 0.05


@dataclass
class CheckOptions:
    """One run's target, account and pace (from ``[did]``, ``[delivery]`` and ``[targets]``)."""

    target: str
    base_url: str
    token_url: str
    account_hospcode: str
    credentials: Credentials = field(repr=False)
    verify: bool | str = True
    concurrency: int = 8
    rate_per_minute: int = 600
    max_attempts: int = 6
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    timeout: float = 30.0
    recheck_days: float = 30.0

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + ENDPOINT


@dataclass
class CheckResult:
    run_id: int
    target: str
    due: int = 0  # people the run had to ask about
    answered: int = 0
    with_did: int = 0
    without_did: int = 0
    failed: int = 0  # no answer after every attempt: asked again next run
    refused: int = 0  # a 4xx for the person (not 401/403/429): asked again next run
    retries: int = 0
    logins: int = 0
    seconds: float = 0.0
    stopped: str | None = None  # why the run stopped early (403, target down), masked
    status_codes: dict[str, int] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.answered / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["per_second"] = round(self.per_second, 1)
        d["seconds"] = round(self.seconds, 2)
        return d


class _Stop(Exception):
    """Every further call would fail the same way (403, login refused, nothing listening)."""

    def __init__(self, th: str, en: str, auth: bool = True) -> None:
        super().__init__(en)
        self.th, self.en, self.auth = th, en, auth


def _no_permission(opts: CheckOptions) -> _Stop:
    return _Stop(f"PHR ตอบ 403: บัญชีของหน่วยบริการ {opts.account_hospcode} ไม่มีสิทธิ์ MOPH_IDP_API จึงตรวจ Digital ID "
                 "ไม่ได้ ขอสิทธิ์ MOPH_IDP_API ให้บัญชีนี้ที่ MOPH Account Center แล้วรันใหม่ (คำตอบที่ได้แล้วเก็บไว้)",
                 f"PHR answered 403: the account of facility {opts.account_hospcode} lacks MOPH_IDP_API, so it "
                 "cannot check Digital IDs; ask MOPH Account Center to grant MOPH_IDP_API to this account, then "
                 "run again (answers so far are kept)")


async def _check_all(store: DidStore, cids: list[str], opts: CheckOptions, res: CheckResult,
                     progress: Callable[[int, int], None] | None,
                     transport: httpx.AsyncBaseTransport | None) -> None:
    # as the agent sends (phrsync.delivery.connect): a client of one keep-alive connection per worker, requests
    # prepared once and handed to the connection: one shared pool of `concurrency` connections made httpcore poll
    # every idle connection on every request and answer, a third of the checker's CPU (py-spy, 32 workers)
    urls = [opts.base_url, opts.token_url]
    for url in set(urls):
        if not private_link(url):
            log.warning("%s ไม่ได้เข้ารหัส (http) เลขบัตรและ password_hash จะผ่านเครือข่ายแบบอ่านได้ ใช้ https / is plain "
                        "http: citizen IDs and the password hash cross the network readable; use https",
                        httpx.URL(url).host)
    verify = tls_context(urls, opts.verify if isinstance(opts.verify, str) else None)
    ua = "phrsync-did"
    client = new_client(opts.base_url, connections=EXTRA_CONNECTIONS, timeout=opts.timeout, verify=verify,
                        transport=transport, user_agent=ua)
    n_workers = max(1, min(opts.concurrency, len(cids) or 1))
    conns = [new_client(opts.base_url, connections=1, timeout=opts.timeout, verify=verify, transport=transport,
                        user_agent=ua) for _ in range(n_workers)]
    direct = proxy_for(opts.base_url) is None  # a proxy is one of the client's mounts: then through client.send
    url = httpx.URL(opts.url)
    tokens = TokenProvider(client, opts.token_url, lambda _h: opts.credentials)
    limiter = RateLimiter(opts.rate_per_minute, spaced=True)
    policy = RetryPolicy(opts.max_attempts, opts.backoff_base, opts.backoff_max)
    queue: asyncio.Queue[str] = asyncio.Queue()
    for c in cids:
        queue.put_nowait(c)
    stop: list[_Stop] = []
    pending: list[tuple[str, int, int, float]] = []
    last_flush = [time.monotonic()]

    def flush() -> None:
        if pending:
            store.record_answers(list(pending), opts.target)
            pending.clear()
        last_flush[0] = time.monotonic()

    done = 0
    total = len(cids)
    hcode = opts.account_hospcode

    def count(status: int | str) -> None:
        res.status_codes[str(status)] = res.status_codes.get(str(status), 0) + 1

    async def one(cid: str, conn: httpx.AsyncClient) -> None:
        attempt = 0
        relogged = False
        while not stop:
            await limiter.acquire(RATE_KEY)
            if stop:
                return
            try:
                bearer = await tokens.bearer(hcode, "check_ekyc")
            except LoginError as e:
                if e.transient and attempt + 1 < opts.max_attempts:
                    attempt += 1
                    await asyncio.sleep(max(e.wait, policy.next_wait(attempt) or 0.0))
                    continue
                raise _Stop(f"เข้าระบบไม่สำเร็จ: {e}", f"login failed: {e}") from None
            asked, status, error = 0.0, None, ""
            try:
                req = prepared(conn, "POST", url, orjson.dumps({"cid": cid}),
                               {"Authorization": bearer, "Content-Type": "application/json"})
                r = await (send_direct(conn, req) if direct else conn.send(req))
            except httpx.HTTPError as e:
                tls = tls_failure(e)
                if tls:
                    why = tls_advice(httpx.URL(opts.url).host, tls)
                    raise _Stop(why, why, auth=False) from None
                if refused_locally(e, opts.url):
                    msg = nothing_listens(opts.base_url, opts.target)
                    raise _Stop(msg, msg, auth=False) from None
                error = type(e).__name__
                count(error)
            else:
                status = r.status_code
                count(status)
                if status == 200:
                    try:
                        body = orjson.loads(r.content)
                        result = body.get("result") if isinstance(body, dict) else None
                        code = body.get("MessageCode", 200) if isinstance(body, dict) else None
                    except orjson.JSONDecodeError:
                        result, code = None, None
                    if isinstance(result, int) and not isinstance(result, bool) and code == 200:
                        pending.append((cid, result, attempt + 1, time.time()))
                        if len(pending) >= FLUSH_ANSWERS or time.monotonic() - last_flush[0] >= FLUSH_SECONDS:
                            flush()
                        res.answered += 1
                        if result >= 1:
                            res.with_did += 1
                        else:
                            res.without_did += 1
                        return
                    error = "HTTP 200 without a numeric result"
                elif status in (401, 501) and not relogged:
                    tokens.invalidate(hcode, bearer)  # expired or unknown token: log in again, once
                    relogged = True
                    continue
                elif status == 403:
                    raise _no_permission(opts)
                elif retryable(status):
                    if status == 429:
                        asked = retry_after(r.headers)
                        limiter.pause(RATE_KEY, asked)  # everyone waits: the server said so
                    error = f"HTTP {status}"
                else:
                    store.record_failure(cid, opts.target, attempt + 1, status, f"HTTP {status}: {r.text[:120]}")
                    res.refused += 1
                    return
            attempt += 1
            wait = policy.next_wait(attempt, asked)
            if wait is None:
                store.record_failure(cid, opts.target, attempt, status, error)
                res.failed += 1
                return
            res.retries += 1
            await asyncio.sleep(wait)

    async def worker(conn: httpx.AsyncClient) -> None:
        nonlocal done
        while not stop:
            try:
                cid = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                await one(cid, conn)
            except _Stop as s:
                stop.append(s)
                return
            done += 1
            if progress:
                progress(done, total)

    try:
        await asyncio.gather(*(worker(c) for c in conns))
    finally:
        flush()  # also when cancelled by Ctrl+C: every answer received is kept
        res.logins = tokens.logins
        for c in (client, *conns):
            await c.aclose()
    if stop:
        raise stop[0]


def run_check(store: DidStore, opts: CheckOptions, *, kinds: tuple[str, ...] = KINDS, district: str | None = None,
              facility: str | None = None, progress: Callable[[int, int], None] | None = None,
              on_start: Callable[[int], None] | None = None, transport: httpx.AsyncBaseTransport | None = None,
              now: float | None = None) -> CheckResult:
    """Check everyone due in the scope; the run and a snapshot of the district figures are recorded whatever
    happens (also when stopped by Ctrl+C: answers so far count)."""
    cids = store.to_check(kinds=kinds, district=district, facility=facility, recheck_days=opts.recheck_days,
                          now=now)
    run_id = store.start_run(opts.target, {"kinds": list(kinds), "district": district, "facility": facility})
    res = CheckResult(run_id, opts.target, due=len(cids))
    if on_start:
        on_start(len(cids))
    t0 = time.monotonic()
    exit_code = 0
    try:
        if cids:
            asyncio.run(_check_all(store, cids, opts, res, progress, transport))
    except _Stop as s:
        res.stopped = mask_text(s.en)
        exit_code = 4 if s.auth else 6
        if s.auth:
            raise AuthError(s.th, s.en) from None
        raise SourceError(s.th, s.en) from None
    except KeyboardInterrupt:
        exit_code = 130
        raise Interrupted("หยุดตามคำสั่ง คำตอบที่ได้แล้วเก็บไว้ รันอีกครั้งเพื่อตรวจต่อ",
                          "stopped: the answers so far are kept; run again to go on") from None
    finally:
        res.seconds = time.monotonic() - t0
        if res.failed and not exit_code:
            exit_code = 3
        store.take_snapshot(run_id)
        store.finish_run(run_id, exit_code, res.to_dict())
        log.info("did check: %d due, %d answered (%d with a Digital ID), %d failed, %.1f/s", res.due, res.answered,
                 res.with_did, res.failed, res.per_second)
    return res


def options_from_config(cfg: Any, target: str | None = None) -> tuple[CheckOptions, str]:
    """The run's options and the state store URL, from phrsync.toml and the environment."""
    from phrsync.delivery.config import load_delivery

    did = cfg.settings.did
    ds = load_delivery(cfg, target or did.target)
    hcode = did.account_hospcode
    if not hcode:
        accounts = [h for h, c in ds.facility_credentials.items() if c.has_jwt]
        if len(accounts) == 1:
            hcode = accounts[0]
        else:
            raise UsageError("ตั้ง [did] account_hospcode: รหัสหน่วยบริการของบัญชีที่มีสิทธิ์ MOPH_IDP_API (เช่น สสจ.)",
                             "set [did] account_hospcode: the facility code of the account holding MOPH_IDP_API "
                             "(e.g. the provincial health office)")
    creds = ds.credentials(hcode)
    if not creds.has_jwt:
        raise UsageError(f"ไม่มีบัญชี Account Center สำหรับ {hcode} (user และรหัสผ่าน ใน [delivery] หรือ "
                         f"[delivery.facilities.{hcode}]); check_ekyc ใช้ token 1 ปีไม่ได้",
                         f"no Account Center account for {hcode} (user and password in [delivery] or "
                         f"[delivery.facilities.{hcode}]); check_ekyc cannot use the 1-year token")
    t = ds.target
    opts = CheckOptions(target=t.name, base_url=t.base_url, token_url=t.token_url, account_hospcode=hcode,
                        credentials=creds, verify=t.verify, concurrency=did.concurrency,
                        rate_per_minute=did.rate_per_minute, max_attempts=did.max_attempts,
                        backoff_base=t.backoff_base, backoff_max=min(t.backoff_max, 30.0), timeout=did.timeout,
                        recheck_days=did.recheck_days)
    return opts, ds.state_url
