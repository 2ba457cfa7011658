"""Account Center imitation: users, JWT issue/verify, the 1-year ``HCODE:TOKEN`` and failed-login lockout.

The database keeps only SHA-256 digests of credentials (expected password_hash, facility token)."""

from __future__ import annotations

import hmac
import re
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from phrsync.errors import UsageError
from phrsync.sandbox import jwt, store
from phrsync.sandbox.envelope import ApiError
from phrsync.sandbox.settings import SandboxConfig

PERM_UPLOAD = "MOPH_PHR_HIE"
PERM_IDP = "MOPH_IDP_API"
DEFAULT_PERMISSIONS = (PERM_UPLOAD, PERM_IDP)
_HCODE_RE = re.compile(r"^\d{5}$")
_FACILITY_TOKEN_RE = re.compile(r"^(\d{5}):(.+)$")


@dataclass
class Principal:
    hospital_code: str
    kind: str  # "jwt" | "facility"
    permissions: list[str] = field(default_factory=list)
    user: str = ""


def valid_hcode(h: str) -> bool:
    return bool(_HCODE_RE.match(h or ""))


def add_user(st: store.Store, cfg: SandboxConfig, username: str, hospital_code: str, password: str,
             permissions: tuple[str, ...] = DEFAULT_PERMISSIONS) -> None:
    """Create or reset a user; keeps the digest of the password_hash a client will send."""
    if not valid_hcode(hospital_code):
        raise UsageError("รหัสสถานพยาบาลต้องเป็นตัวเลข 5 หลัก", "hospital code must be 5 digits")
    if not username or len(username) > 64:
        raise UsageError("ชื่อผู้ใช้ไม่ถูกต้อง (1–64 ตัวอักษร)", "invalid user name (1-64 characters)")
    if not password:
        raise UsageError("รหัสผ่านว่าง", "empty password")
    pw_digest = jwt.digest(jwt.password_hash(password, cfg.hash_key()))
    now = cfg.clock()
    row = {"username": username, "hospital_code": hospital_code, "pw_digest": pw_digest,
           "permissions": ",".join(permissions), "created_at": now, "failed": 0, "locked_until": 0.0}
    st.write(lambda c: store._upsert(c, store.users, [row], ["username"]))


def issue_facility_token(st: store.Store, cfg: SandboxConfig, hospital_code: str) -> tuple[str, float]:
    """New ``HCODE:{…}`` token valid 1 year; revokes the previous one (spec Appendix จ)."""
    if not valid_hcode(hospital_code):
        raise UsageError("รหัสสถานพยาบาลต้องเป็นตัวเลข 5 หลัก", "hospital code must be 5 digits")
    raw = "{" + "-".join(secrets.token_hex(4).upper() for _ in range(4)) + "}"
    token = f"{hospital_code}:{raw}"
    now = cfg.clock()
    exp = now + cfg.facility_token_days * 86400
    row = {"hospital_code": hospital_code, "token_digest": jwt.digest(token), "created_at": now, "expires_at": exp}
    st.write(lambda c: store._upsert(c, store.facility_tokens, [row], ["hospital_code"]))
    return token, exp


def login(st: store.Store, cfg: SandboxConfig, user: str, pw_hash: str, hospital_code: str) -> str:
    """Check a login and return a signed JWT; failed attempts count towards a temporary lockout."""
    now = cfg.clock()
    if not user or not pw_hash or not hospital_code:
        raise ApiError(400, "user, password_hash and hospital_code are required",
                       "ต้องระบุ user, password_hash และ hospital_code")

    def check(conn: Connection) -> tuple[str, str] | ApiError:
        row = conn.execute(select(store.users).where(store.users.c.username == user)).mappings().first()
        if row is None:
            return ApiError(401, "invalid user or password", "ชื่อผู้ใช้หรือรหัสผ่านไม่ถูกต้อง")
        if row["locked_until"] > now:
            return ApiError(401, f"account locked for {int(row['locked_until'] - now)} s",
                            "บัญชีถูกล็อกชั่วคราวเพราะเข้าระบบผิดหลายครั้ง")
        ok = hmac.compare_digest(row["pw_digest"], jwt.digest(pw_hash.strip().upper()))
        if not ok:
            failed = int(row["failed"]) + 1
            lock = now + cfg.lockout_seconds if cfg.lockout_failures and failed >= cfg.lockout_failures else 0.0
            conn.execute(update(store.users).where(store.users.c.username == user).values(
                failed=0 if lock else failed, locked_until=lock))
            return ApiError(401, "invalid user or password", "ชื่อผู้ใช้หรือรหัสผ่านไม่ถูกต้อง")
        if row["failed"]:
            conn.execute(update(store.users).where(store.users.c.username == user).values(failed=0))
        return row["hospital_code"], row["permissions"]

    res = st.write(check)
    if isinstance(res, ApiError):
        raise res
    user_hcode, perms = res
    if user_hcode != hospital_code:
        raise ApiError(403, "user has no access to this hospital_code", "ผู้ใช้ไม่มีสิทธิ์ของหน่วยบริการนี้")
    claims = {
        "iss": "phrsync-sandbox", "sub": user, "iat": int(now), "exp": int(now + cfg.jwt_ttl_seconds),
        "jti": uuid.uuid4().hex, "hospital_code": hospital_code,
        "permissions": [p for p in perms.split(",") if p],
    }
    return jwt.encode(claims, cfg.secret())


def authenticate(st: store.Store, cfg: SandboxConfig, authorization: str | None, *,
                 allow_facility_token: bool = False, need: str = PERM_UPLOAD) -> Principal:
    """Bearer check shared by all /api routes: 401 missing/forged/expired, 403 wrong kind or permission."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise ApiError(401, "missing bearer token", "ไม่พบโทเค็น (Authorization: Bearer)")
    tok = authorization[7:].strip()
    m = _FACILITY_TOKEN_RE.match(tok)
    if m and tok.count(".") != 2:
        hcode = m.group(1)
        row = st.read(lambda c: c.execute(select(store.facility_tokens).where(
            store.facility_tokens.c.hospital_code == hcode)).mappings().first())
        if row is None or not hmac.compare_digest(row["token_digest"], jwt.digest(tok)):
            raise ApiError(401, "unknown or revoked facility token", "โทเค็นหน่วยบริการไม่ถูกต้องหรือถูกยกเลิก")
        if row["expires_at"] < cfg.clock():
            raise ApiError(cfg.expired_status, "facility token expired", "โทเค็นหน่วยบริการหมดอายุ")
        if not allow_facility_token:
            raise ApiError(403, "HCODE:TOKEN is accepted only by UpdatePHRv1",
                           "โทเค็น 1 ปีใช้ได้กับ UpdatePHRv1 เท่านั้น")
        return Principal(hcode, "facility", [PERM_UPLOAD])
    try:
        claims = _verified(tok, cfg)
    except jwt.TokenError as e:
        if e.expired:
            raise ApiError(cfg.expired_status, "token expired", "โทเค็นหมดอายุ กรุณาขอใหม่") from e
        raise ApiError(401, "invalid token", "โทเค็นไม่ถูกต้อง") from e
    hcode = str(claims.get("hospital_code", ""))
    perms = claims.get("permissions") or []
    if not valid_hcode(hcode) or not isinstance(perms, list):
        raise ApiError(401, "invalid token claims", "ข้อมูลในโทเค็นไม่ถูกต้อง")
    if need and need not in perms:
        raise ApiError(403, f"token lacks {need}", f"โทเค็นไม่มีสิทธิ์ {need}")
    return Principal(hcode, "jwt", [str(p) for p in perms], str(claims.get("sub", "")))


_VERIFIED: dict[tuple[bytes, str], dict[str, Any]] = {}


def _verified(tok: str, cfg: SandboxConfig) -> dict[str, Any]:
    """Signature checked once per token and secret; expiry checked on every call."""
    key = (cfg.secret(), tok)
    claims = _VERIFIED.get(key)
    if claims is None:
        claims = jwt.decode(tok, cfg.secret(), now=cfg.clock())
        if len(_VERIFIED) > 4096:
            _VERIFIED.clear()
        _VERIFIED[key] = claims
    elif cfg.clock() > claims["exp"]:
        raise jwt.TokenError("token expired", expired=True)
    return claims


def same_facility(p: Principal, hcode: str | None) -> str:
    """The facility a call acts on; 403 when it is not the token's own."""
    h = (hcode or "").strip() or p.hospital_code
    if h != p.hospital_code:
        raise ApiError(403, "hospital_code differs from the token's facility",
                       "รหัสหน่วยบริการไม่ตรงกับโทเค็น")
    return h

