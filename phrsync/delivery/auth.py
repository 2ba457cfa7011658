"""Bearer tokens for PHR: the MOPH Account Center JWT per facility, or the 1-year ``HCODE:TOKEN``.

The JWT is renewed at least 15 minutes before its ``exp`` (spec Appendix C) and once more when PHR answers
401/501 for it. A refused login is never retried within a run: repeated failures lock the account (15 min).
Tokens and password hashes never reach a log line or an exception message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import httpx
import jwt
import orjson

from phrsync.delivery.config import Credentials
from phrsync.delivery.connect import refused_locally, tls_advice, tls_failure
from phrsync.delivery.policy import retry_after, retryable

log = logging.getLogger("phrsync.delivery")
RENEW_BEFORE = 15 * 60  # seconds before exp at which a JWT is replaced
NO_EXP_LIFETIME = 10 * 60  # a token without a readable exp is reused for this long only
FACILITY_TOKEN_ENDPOINTS = frozenset({"UpdatePHRv1"})  # the 1-year token works only there (Appendix จ)


class AuthError(Exception):
    """Login refused or impossible; the facility is skipped for the rest of the run."""

    def __init__(self, hcode: str, message: str, transient: bool = False, wait: float = 0.0) -> None:
        super().__init__(f"{hcode}: {message}")
        self.hcode = hcode
        self.transient = transient
        self.wait = wait  # seconds the issuer asked for (its 429 Retry-After) before the next login attempt


class CertificateRefused(AuthError):
    """The token issuer's TLS certificate was not verified: the same for every facility and every retry — the
    cure is the target's ``ca_bundle``, not another attempt."""

    def __init__(self, hcode: str, message: str) -> None:
        super().__init__(hcode, message, transient=True)


class IssuerUnreachable(AuthError):
    """Nothing listens at the token URL on this computer (a local sandbox not started, or on another port): the
    same for every facility; the sender stops the run and names the URL."""

    def __init__(self, hcode: str, url: str) -> None:
        super().__init__(hcode, f"ไม่มีเซิร์ฟเวอร์รับที่ {url} / nothing listens at {url}", transient=True)
        self.url = url


class TokenScopeError(AuthError):
    """The facility has only the 1-year ``HCODE:TOKEN``, which PHR accepts on UpdatePHRv1 alone: this call needs
    an Account Center account. Not a reason to stop the facility's encounters."""


def jwt_claims(token: str) -> dict[str, object] | None:
    """The claims of a JWT, unverified: only the issuer holds the key (PHR verifies), the agent reads ``exp`` and
    ``iat`` to know when to renew. None for anything that is not a JWT."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return claims if isinstance(claims, dict) else None


def jwt_exp(token: str) -> float | None:
    """The ``exp`` claim of a JWT (not verified: only the issuer can, and PHR does)."""
    return jwt_time(token, "exp")


def jwt_time(token: str, claim: str) -> float | None:
    """A numeric time claim (``exp``, ``iat``) of a JWT, unverified."""
    t = (jwt_claims(token) or {}).get(claim)
    return float(t) if isinstance(t, int | float) and not isinstance(t, bool) else None


def _missing_account(hcode: str, user: str) -> str:
    """What to set, by name: "no account configured" was all a user with a missing password was told."""
    if user:
        return (f"บัญชี {user} ไม่มีรหัสผ่าน ตั้ง PHRSYNC_PHR_PASSWORD_{hcode} (บัญชีของหน่วยบริการ) หรือ "
                f"PHRSYNC_PHR_PASSWORD (บัญชีจังหวัด) หรือ password_file / account {user} has no password: set "
                f"PHRSYNC_PHR_PASSWORD_{hcode} (facility account) or PHRSYNC_PHR_PASSWORD (province account), "
                "or password_file")
    return (f"ไม่มีบัญชีสำหรับหน่วยบริการนี้ ตั้ง user ใน [delivery] (บัญชีจังหวัด) หรือใน [delivery.facilities.{hcode}] "
            f"/ no account for this facility: set user in [delivery] (province account) or in "
            f"[delivery.facilities.{hcode}], or its 1-year token")


class TokenProvider:
    """One cached JWT per facility; concurrent senders of a facility share one login."""

    def __init__(self, client: httpx.AsyncClient, token_url: str, creds_for: Callable[[str], Credentials],
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.token_url = token_url
        self.creds_for = creds_for
        self.clock = clock
        self._tokens: dict[str, tuple[str, float]] = {}  # hcode -> (jwt, renew at)
        self._locks: dict[str, asyncio.Lock] = {}
        self._refused: dict[str, str] = {}
        self.logins = 0

    def _valid(self, hcode: str) -> str | None:
        t = self._tokens.get(hcode)
        return t[0] if t and self.clock() < t[1] else None

    async def bearer(self, hcode: str, endpoint: str) -> str:
        """The Authorization value for a call of ``endpoint`` on behalf of ``hcode``."""
        creds = self.creds_for(hcode)
        if not creds.has_jwt:
            if creds.facility_token and endpoint in FACILITY_TOKEN_ENDPOINTS:
                return f"Bearer {creds.facility_token}"
            if creds.facility_token:
                raise TokenScopeError(hcode, f"โทเค็น 1 ปีใช้ได้กับ UpdatePHRv1 เท่านั้น ต้องมีบัญชี Account Center / "
                                             f"the 1-year token cannot call {endpoint}: it needs an Account Center account")
            raise AuthError(hcode, _missing_account(hcode, creds.user))
        if hcode in self._refused:
            raise AuthError(hcode, self._refused[hcode])
        tok = self._valid(hcode)
        if tok:
            return f"Bearer {tok}"
        lock = self._locks.setdefault(hcode, asyncio.Lock())
        async with lock:
            tok = self._valid(hcode)
            if not tok:
                tok = await self._login(hcode, creds)
        return f"Bearer {tok}"

    def invalidate(self, hcode: str, bearer: str) -> None:
        """PHR refused ``bearer`` (401/501): forget it so the next call logs in again."""
        t = self._tokens.get(hcode)
        if t and f"Bearer {t[0]}" == bearer:
            del self._tokens[hcode]

    async def _login(self, hcode: str, creds: Credentials) -> str:
        body = orjson.dumps({"user": creds.user, "password_hash": creds.password_hash, "hospital_code": hcode})
        try:
            r = await self.client.post(self.token_url, content=body,
                                       headers={"Content-Type": "application/json"})
        except httpx.HTTPError as e:
            tls = tls_failure(e)
            if tls:
                raise CertificateRefused(hcode, tls_advice(httpx.URL(self.token_url).host, tls)) from None
            if refused_locally(e, self.token_url):
                raise IssuerUnreachable(hcode, self.token_url) from None
            raise AuthError(hcode, f"ติดต่อผู้ออกโทเค็นไม่ได้ / token issuer unreachable: {type(e).__name__}",
                            transient=True) from None
        self.logins += 1
        if retryable(r.status_code):  # the issuer failed or asked us to slow down: the sender tries again
            wait = retry_after(r.headers) if r.status_code == 429 else 0.0
            raise AuthError(hcode, f"ผู้ออกโทเค็นขัดข้อง / token issuer error HTTP {r.status_code}", transient=True,
                            wait=wait)
        text = r.text.strip()
        if r.status_code != 200 or text.count(".") != 2:
            msg = f"เข้าระบบไม่สำเร็จ / login refused (HTTP {r.status_code})"
            self._refused[hcode] = msg  # never retry a refused login: the account would be locked
            raise AuthError(hcode, msg)
        exp, iat = jwt_exp(text), jwt_time(text, "iat")
        now = self.clock()
        # the life left is read on the issuer's clock (exp - iat) when the token says when it was issued: with
        # exp against this computer's clock, one some hours fast took every token for expired and logged in
        # again before every request (and one slow kept tokens past their end)
        left = (exp - iat if iat is not None and iat < exp else exp - now) if exp else None
        renew_at = now + left - RENEW_BEFORE if left is not None else now + NO_EXP_LIFETIME
        if renew_at <= now:  # a short-lived token: use it for at most half its remaining life
            renew_at = now + max(0.0, (left or 0.0) / 2)
        self._tokens[hcode] = (text, renew_at)
        log.info("%s: เข้าระบบสำเร็จ ต่ออายุโทเค็นใน %.0f วินาที / logged in, token renewed in %.0f s", hcode,
                 renew_at - now, renew_at - now)
        return text
