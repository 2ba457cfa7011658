"""Who may see what: accounts in the state store (argon2 hashes), sessions, CSRF, roles, login rate limit and
the audit log. Enforced on the server for every page, export and action (a dependency of each route), never
by hiding links.

What is stored, and why that way:

* ``web_users``: the argon2id hash of each password, never the password; the role and its scope.
* ``web_sessions``: the SHA-256 of each session token, never the token: whoever reads the database (a backup,
  a support copy) cannot take over a session. Each session has its own CSRF token.
* ``web_login_failures``: failed logins by the SHA-256 of the user name (so a citizen ID typed as a user name is
  not kept) and by client address, for the lockout: ``login_attempts`` failures in 15 minutes of one user name
  lock that name, and ``ADDRESS_FACTOR`` times as many from one address lock that address (a health office
  behind one NAT address is many people: one of them mistyping must not lock out the others, while password
  spraying across names from one address is still stopped), until the oldest of them is 15 minutes old.
* ``web_audit``: who did what and from where (logins ok and failed, logouts, exports, actions); citizen IDs in
  the detail are masked, passwords and tokens are never passed in.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, FastAPI, Request
from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from phrsync.errors import AuthError, NotFoundError, PhrsyncError, StoreError, UsageError
from phrsync.pdpa import mask_text, mask_url
from phrsync.thai import local_time

ADMIN, DISTRICT, FACILITY = "admin", "district", "facility"
ROLES = (ADMIN, DISTRICT, FACILITY)
ROLE_TEXT = {ADMIN: ("ผู้ดูแลระดับจังหวัด", "province admin"), DISTRICT: ("ผู้ดูระดับอำเภอ", "district viewer"),
             FACILITY: ("เจ้าหน้าที่หน่วยบริการ", "facility staff")}

SESSION_COOKIE = "phrsync_session"
LOGIN_CSRF_COOKIE = "phrsync_login_csrf"
LANG_COOKIE = "lang"
LANGS = ("th", "en")
ADDRESS_FACTOR = 4  # failures from one address before it is locked, in units of login_attempts
LOCK_WINDOW = 15 * 60.0  # seconds: failures counted over this window, and the longest a lock lasts
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # longer is refused unhashed: argon2 of megabytes of input would be a denial of service
_USERNAME_RE = re.compile(r"[a-z0-9][a-z0-9._@-]{1,63}")
_DISTRICT_RE = re.compile(r"[0-9]{4}")
_HOSPCODE_RE = re.compile(r"[0-9A-Za-z]{5}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class User:
    username: str
    role: str  # ROLES
    district: str | None = None  # DOPA ampur code, for DISTRICT
    facility: str | None = None  # hospcode, for FACILITY

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    def can_see(self, hospcode: str, district_code: str | None) -> bool:
        """May this user see the facility ``hospcode`` (in district ``district_code``)?"""
        if self.role == ADMIN:
            return True
        if self.role == DISTRICT:
            return district_code is not None and district_code == self.district
        return hospcode == self.facility


@dataclass(frozen=True)
class AddedUser(User):
    """What :meth:`AuthStore.add_user` did: ``updated`` when the user name existed (password and role replaced,
    its sessions ended) rather than being created."""

    updated: bool = False


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str  # this session's CSRF token (hidden input / X-CSRF-Token)
    created_at: float
    expires_at: float


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float  # epoch seconds (shown with phrsync.thai.thai_datetime)
    username: str | None  # None: nobody was logged in
    action: str  # login, login_failed, login_locked, logout, export, action, forbidden, add_user, ...
    detail: str  # masked
    client: str


# -- errors --------------------------------------------------------------------------------------------------

class LoginFailed(AuthError):
    """Wrong user name or password: one message for both, so the page never tells which user names exist."""

    def __init__(self) -> None:
        super().__init__("ชื่อผู้ใช้หรือรหัสผ่านไม่ถูกต้อง", "wrong user name or password")


class LoginLocked(LoginFailed):
    """Too many failed logins of this user name or from this address in 15 minutes; ``until`` is epoch time."""

    def __init__(self, until: float) -> None:
        self.until = until
        hhmm = local_time(until).strftime("%H:%M")
        PhrsyncError.__init__(self, f"เข้าระบบผิดหลายครั้ง ระงับไว้ชั่วคราว ลองใหม่หลัง {hhmm} น. (Asia/Bangkok)",
                              f"too many failed logins: locked, try after {hhmm} (Asia/Bangkok)")


class LoginRequired(PhrsyncError):
    """No session (or an expired one): pages redirect to the login page (see :func:`install`)."""

    def __init__(self) -> None:
        super().__init__("กรุณาเข้าสู่ระบบ", "please sign in")


class Forbidden(PhrsyncError):
    """Signed in, but not allowed this page, facility or action (answered 403)."""

    def __init__(self, th: str = "ไม่มีสิทธิ์เข้าถึงหน้านี้", en: str = "you are not allowed to open this page") -> None:
        super().__init__(th, en)


# -- the tables ----------------------------------------------------------------------------------------------

metadata = MetaData()
users_table = Table(
    "web_users", metadata,
    Column("username", String(64), primary_key=True),
    Column("password_hash", String(255), nullable=False),  # argon2id, PHC string
    Column("role", String(16), nullable=False),
    Column("district", String(4)),
    Column("facility", String(5)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("last_login_at", Float),
)
sessions_table = Table(
    "web_sessions", metadata,
    Column("token_hash", String(64), primary_key=True),  # SHA-256 hex of the cookie's token
    Column("username", String(64), nullable=False, index=True),
    Column("csrf", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
)
failures_table = Table(
    "web_login_failures", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_key", String(64), nullable=False),  # SHA-256 hex of the normalised user name as typed
    Column("client", String(64), nullable=False),
    Column("at", Float, nullable=False, index=True),
    Column("user_cleared", Boolean, nullable=False, default=False),  # a later good login of the user
    Index("ix_web_login_failures_user", "user_key", "at"),
    Index("ix_web_login_failures_client", "client", "at"),
)
audit_table = Table(
    "web_audit", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False, index=True),
    Column("username", String(64)),
    Column("action", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("client", String(64), nullable=False),
)
web_meta = Table(
    "web_meta", metadata,  # the site's own secrets (the login form's CSRF key), shared by every worker
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalize_username(username: str) -> str:
    """User names are case-insensitive: ``Admin`` and ``admin`` are one account (and one lockout)."""
    return (username or "").strip().lower()


def _clean(text: str | None, limit: int) -> str:
    """Free text for the audit log: citizen IDs masked, no control characters (no forged log lines), bounded."""
    return mask_text(_CONTROL_RE.sub(" ", text or ""))[:limit]


def _row_user(r: Any) -> User:
    return User(r.username, r.role, r.district, r.facility)


class AuthStore:
    """Accounts, sessions, login failures and the audit log, in the state store (SQLite or PostgreSQL).

    ``clock`` (epoch seconds) is injectable so tests can age sessions and lockouts; ``hasher`` so tests can
    hash cheaply (the default is argon2-cffi's RFC 9106 profile, argon2id 64 MiB)."""

    def __init__(self, state_url: str, *, login_attempts: int = 5, clock: Callable[[], float] = time.time,
                 hasher: PasswordHasher | None = None) -> None:
        from phrsync.delivery.outbox import state_engine

        self.url = state_url
        self.login_attempts = login_attempts
        self.clock = clock
        self.hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None
        self._csrf_key: bytes | None = None
        try:
            self.engine: Engine = state_engine(state_url)
            metadata.create_all(self.engine)
        except (SQLAlchemyError, OSError, ValueError) as e:
            raise StoreError(f"เปิดที่เก็บสถานะสำหรับบัญชีผู้ใช้เว็บไม่ได้: {mask_url(state_url)}",
                             f"cannot open the state store for the web's accounts: {mask_url(state_url)}",
                             hint=mask_text(type(e).__name__ + ": " + str(e).splitlines()[0][:200])) from e

    def close(self) -> None:
        self.engine.dispose()

    # ---- accounts ----------------------------------------------------------------------------------------
    def add_user(self, username: str, password: str, role: str, *, district: str | None = None,
                 facility: str | None = None, by: str | None = None, client: str = "cli") -> AddedUser:
        """Create the account, or replace the password and role of an existing one (``updated`` says which;
        its sessions end, so a changed role or a revoked password takes effect at once)."""
        name = normalize_username(username)
        if not _USERNAME_RE.fullmatch(name):
            raise UsageError("ชื่อผู้ใช้ต้องยาว 2–64 ตัว ใช้ได้เฉพาะ a-z 0-9 . _ @ - และขึ้นต้นด้วยตัวอักษรหรือตัวเลข",
                             "a user name is 2-64 characters of a-z 0-9 . _ @ - starting with a letter or digit")
        if mask_text(name) != name:
            raise UsageError("ห้ามใช้เลขประจำตัวประชาชนเป็นชื่อผู้ใช้", "do not use a citizen ID as a user name")
        role = (role or "").strip().lower()
        if role not in ROLES:
            raise UsageError(f"บทบาทต้องเป็น {', '.join(ROLES)}", f"the role must be one of {', '.join(ROLES)}")
        district = district.strip() if district else None
        facility = facility.strip() if facility else None
        if role == DISTRICT:
            if not district or not _DISTRICT_RE.fullmatch(district):
                raise UsageError("ผู้ดูระดับอำเภอต้องมีรหัสอำเภอ 4 หลัก (เช่น 2701)",
                                 "a district viewer needs its 4-digit district code (e.g. 2701)")
            if facility:
                raise UsageError("ผู้ดูระดับอำเภอไม่มีรหัสหน่วยบริการ", "a district viewer has no facility code")
        elif role == FACILITY:
            if not facility or not _HOSPCODE_RE.fullmatch(facility):
                raise UsageError("เจ้าหน้าที่หน่วยบริการต้องมีรหัสหน่วยบริการ 5 ตัว (เช่น 10699)",
                                 "facility staff need their 5-character facility code (e.g. 10699)")
            if district:
                raise UsageError("เจ้าหน้าที่หน่วยบริการไม่มีรหัสอำเภอ (เห็นเฉพาะหน่วยบริการของตน)",
                                 "facility staff have no district code (they see their own facility only)")
        elif district or facility:
            raise UsageError("ผู้ดูแลระดับจังหวัดเห็นทุกหน่วยบริการ ไม่ต้องระบุอำเภอหรือหน่วยบริการ",
                             "a province admin sees every facility: give no district or facility")
        if len(password or "") < MIN_PASSWORD:
            raise UsageError(f"รหัสผ่านสั้นเกินไป ต้องยาวอย่างน้อย {MIN_PASSWORD} ตัวอักษร",
                             f"the password is too short: at least {MIN_PASSWORD} characters")
        if len(password) > MAX_PASSWORD:
            raise UsageError(f"รหัสผ่านยาวเกิน {MAX_PASSWORD} ตัวอักษร", f"the password is over {MAX_PASSWORD} characters")
        if password.strip().lower() == name:
            raise UsageError("รหัสผ่านต้องไม่เหมือนชื่อผู้ใช้", "the password must not be the user name")
        hashed = self.hasher.hash(password)
        now = self.clock()
        values = dict(password_hash=hashed, role=role, district=district, facility=facility, updated_at=now)
        with self.engine.begin() as c:
            exists = c.execute(select(users_table.c.username).where(users_table.c.username == name)).first()
            if exists:
                c.execute(update(users_table).where(users_table.c.username == name).values(**values))
                c.execute(delete(sessions_table).where(sessions_table.c.username == name))
            else:
                c.execute(insert(users_table).values(username=name, created_at=now, **values))
        scope = district or facility or "-"
        self.audit(by, "update_user" if exists else "add_user", f"{name} role={role} scope={scope}", client)
        return AddedUser(name, role, district, facility, updated=bool(exists))

    def remove_user(self, username: str, *, by: str | None = None, client: str = "cli") -> None:
        """Delete the account and end its sessions; :class:`NotFoundError` when there is none."""
        name = normalize_username(username)
        with self.engine.begin() as c:
            gone = c.execute(delete(users_table).where(users_table.c.username == name)).rowcount
            c.execute(delete(sessions_table).where(sessions_table.c.username == name))
        if not gone:
            raise NotFoundError(f"ไม่มีผู้ใช้ชื่อ {_clean(name, 64)}", f"no user named {_clean(name, 64)}")
        self.audit(by, "remove_user", name, client)

    def users(self) -> list[User]:
        with self.engine.connect() as c:
            rows = c.execute(select(users_table).order_by(users_table.c.username)).all()
        return [_row_user(r) for r in rows]

    # ---- logins ------------------------------------------------------------------------------------------
    def _locked_until(self, c: Any, user_key: str, client: str, now: float) -> float | None:
        """When the lock on this user name or address ends (None: not locked): when the ``login_attempts``-th
        newest failure in the window is 15 minutes old, the count drops below the limit."""
        per_name = max(1, int(self.login_attempts))
        since = now - LOCK_WINDOW
        f = failures_table.c
        until: float | None = None
        for cond, n in ((and_(f.user_key == user_key, f.user_cleared.is_(False)), per_name),
                        (f.client == client, per_name * ADDRESS_FACTOR)):
            ts = c.execute(select(f.at).where(cond, f.at > since).order_by(f.at.desc()).limit(n)).scalars().all()
            if len(ts) >= n:
                end = ts[n - 1] + LOCK_WINDOW
                until = end if until is None else max(until, end)
        return until

    def authenticate(self, username: str, password: str, client: str) -> User:
        """The user for a right user name and password; :class:`LoginFailed` otherwise (the same whether the
        name exists or not, after the same argon2 work), :class:`LoginLocked` while locked (the password is
        not even checked then, so a lock cannot be used to go on guessing). Every outcome is audited."""
        name = normalize_username(username)
        client = _clean(client, 64) or "-"
        user_key = _sha256(name)
        shown = _clean(name, 64) or None
        now = self.clock()
        with self.engine.connect() as c:
            until = self._locked_until(c, user_key, client, now)
            row = None if until else c.execute(select(users_table).where(users_table.c.username == name)).first()
        if until:
            self.audit(shown, "login_locked", "", client)
            raise LoginLocked(until)
        ok = False
        if password and len(password) <= MAX_PASSWORD:
            try:
                ok = self.hasher.verify(row.password_hash if row else self._dummy(), password) and row is not None
            except (VerificationError, InvalidHashError):
                ok = False
        else:
            self._dummy_verify()
        if not ok or row is None:
            with self.engine.begin() as c:
                c.execute(delete(failures_table).where(failures_table.c.at < now - LOCK_WINDOW))
                c.execute(insert(failures_table).values(user_key=user_key, client=client, at=now, user_cleared=False))
                until = self._locked_until(c, user_key, client, now)
            self.audit(shown, "login_failed", "", client)
            if until:
                raise LoginLocked(until)
            raise LoginFailed()
        values: dict[str, Any] = {"last_login_at": now}
        if self.hasher.check_needs_rehash(row.password_hash):
            values["password_hash"] = self.hasher.hash(password)
        with self.engine.begin() as c:
            c.execute(update(users_table).where(users_table.c.username == name).values(**values))
            c.execute(update(failures_table).where(failures_table.c.user_key == user_key)
                      .values(user_cleared=True))
        user = _row_user(row)
        self.audit(user.username, "login", f"role={user.role}", client)
        return user

    def _dummy(self) -> str:
        """A hash of nothing anyone knows, verified for unknown user names: the answer takes as long."""
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))
        return self._dummy_hash

    def _dummy_verify(self) -> None:
        with contextlib.suppress(VerificationError):
            self.hasher.verify(self._dummy(), "-")

    # ---- sessions ----------------------------------------------------------------------------------------
    def new_session(self, user: User, hours: float) -> str:
        """A new random session token for ``user``, valid ``hours``; only its SHA-256 is stored."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        with self.engine.begin() as c:
            c.execute(delete(sessions_table).where(sessions_table.c.expires_at <= now))
            c.execute(insert(sessions_table).values(token_hash=_sha256(token), username=user.username,
                                                    csrf=secrets.token_urlsafe(32), created_at=now,
                                                    expires_at=now + hours * 3600.0))
        return token

    def session(self, token: str | None) -> Session | None:
        """The live session of a cookie's token, with the account as it is now (a removed user or an
        expired session: None)."""
        if not token or len(token) > 256:
            return None
        s, u = sessions_table.c, users_table.c
        with self.engine.connect() as c:
            r = c.execute(select(s.csrf, s.created_at, s.expires_at, u.username, u.role, u.district, u.facility)
                          .join_from(sessions_table, users_table, s.username == u.username)
                          .where(s.token_hash == _sha256(token))).first()
        if r is None or r.expires_at <= self.clock():
            return None
        return Session(_row_user(r), r.csrf, r.created_at, r.expires_at)

    def session_user(self, token: str | None) -> User | None:
        s = self.session(token)
        return s.user if s else None

    def end_session(self, token: str | None) -> None:
        if token:
            with self.engine.begin() as c:
                c.execute(delete(sessions_table).where(sessions_table.c.token_hash == _sha256(token)))

    def sessions_of(self, username: str) -> int:
        """Live sessions of a user (for ``phrsync web`` user listings and tests)."""
        with self.engine.connect() as c:
            return int(c.execute(select(func.count()).select_from(sessions_table).where(
                sessions_table.c.username == normalize_username(username),
                sessions_table.c.expires_at > self.clock())).scalar_one())

    # ---- the login form's CSRF key -----------------------------------------------------------------------
    def csrf_key(self) -> bytes:
        """The key that signs the login form's pre-session token: kept in the store so every worker and a
        restarted server accept the forms they handed out."""
        if self._csrf_key is None:
            with self.engine.begin() as c:
                v = c.execute(select(web_meta.c.value).where(web_meta.c.name == "login_csrf_key")).scalar()
            if v is None:
                v = secrets.token_hex(32)
                try:
                    with self.engine.begin() as c:
                        c.execute(insert(web_meta).values(name="login_csrf_key", value=v))
                except IntegrityError:  # another worker made it first
                    with self.engine.connect() as c:
                        v = c.execute(select(web_meta.c.value).where(web_meta.c.name == "login_csrf_key")).scalar_one()
            self._csrf_key = bytes.fromhex(v)
        return self._csrf_key

    # ---- the audit log -----------------------------------------------------------------------------------
    def audit(self, username: str | None, action: str, detail: str, client: str) -> None:
        """One line of the audit log; CIDs in the detail are masked (never pass a password or a token)."""
        with self.engine.begin() as c:
            c.execute(insert(audit_table).values(at=self.clock(), username=_clean(username, 64) or None,
                                                 action=_clean(action, 32) or "-", detail=_clean(detail, 1000),
                                                 client=_clean(client, 64) or "-"))

    def audit_log(self, limit: int = 200) -> list[AuditEntry]:
        """The newest ``limit`` entries, newest first."""
        a = audit_table.c
        with self.engine.connect() as c:
            rows = c.execute(select(audit_table).order_by(a.at.desc(), a.id.desc()).limit(max(0, limit))).all()
        return [AuditEntry(r.id, r.at, r.username, r.action, r.detail, r.client) for r in rows]


def read_password(password_file: str | Path | None, *, prompt: Callable[[], str] | None = None) -> str:
    """The password for ``phrsync web add-user``: the first line of ``--password-file`` (``-``: standard
    input), or asked for with hidden input twice; never an argument, which would stay in the shell history."""
    if password_file is None:
        if prompt is not None:
            return prompt()
        import click

        return str(click.prompt("รหัสผ่าน / password", hide_input=True,
                                confirmation_prompt="ยืนยันรหัสผ่าน / repeat the password"))
    if str(password_file) == "-":
        import sys

        text = sys.stdin.readline()
    else:
        p = Path(password_file)
        if not p.is_file():
            raise NotFoundError(f"ไม่พบไฟล์รหัสผ่าน: {p}", f"no such password file: {p}")
        text = p.read_text(encoding="utf-8")
    line = text.splitlines()[0] if text else ""
    if not line:
        raise UsageError("ไฟล์รหัสผ่านว่าง", "the password file is empty")
    return line


# -- FastAPI: the dependencies every page, export and action uses -------------------------------------------

def safe_next(target: str | None) -> str:
    """Where to go after the login: a path of this site only (``/facilities?d=2701``), never another site
    (``//evil``, ``https://evil``, ``/\\evil``), and never back to the login or logout page."""
    # a path starting with one "/" has no scheme and no host; "//" or a backslash would give one (browsers read
    # a backslash as "/"), and control characters could split the Location header
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if _CONTROL_RE.search(target) or urlsplit(target).path in ("/login", "/logout"):
        return "/"
    return target


def client_of(request: Request) -> str:
    return request.client.host if request.client else "-"


def lang_of(request: Request) -> str:
    """``th`` or ``en``: ``?lang=`` first, then the ``lang`` cookie, then ``[web] language``."""
    q = request.query_params.get("lang")
    if q in LANGS:
        return q
    c = request.cookies.get(LANG_COOKIE)
    if c in LANGS:
        return c
    return getattr(request.app.state, "language", "th")


def _store(request: Request) -> AuthStore:
    store = getattr(request.app.state, "auth", None)
    if store is None:
        raise RuntimeError("phrsync.web.auth.install(app, ...) was not called")
    return store


def _session(request: Request) -> Session | None:
    """The request's session, looked up once per request (pages call several of these dependencies)."""
    if not hasattr(request.state, "auth_session"):
        request.state.auth_session = _store(request).session(request.cookies.get(SESSION_COOKIE))
    return request.state.auth_session


def current_user(request: Request) -> User:
    """The signed-in user; :class:`LoginRequired` (→ the login page) when there is no live session."""
    s = _session(request)
    if s is None:
        raise LoginRequired()
    return s.user


def require_admin(user: User = Depends(current_user)) -> User:  # noqa: B008  (FastAPI's way)
    """Province admins only (actions such as "send again"); 403 for everyone else."""
    if not user.is_admin:
        raise Forbidden("หน้านี้สำหรับผู้ดูแลระดับจังหวัดเท่านั้น", "only a province admin may do this")
    return user


def require_facility(user: User, hospcode: str, district_code: str | None) -> None:
    """Forbidden unless ``user`` may see this facility. Call it before looking the facility up, so that a
    facility that does not exist and one that is not yours answer alike."""
    if not user.can_see(hospcode, district_code):
        raise Forbidden("ไม่มีสิทธิ์ดูข้อมูลของหน่วยบริการนี้", "you may not see this facility's data")


_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
_BAD_CSRF = ("แบบฟอร์มหมดอายุหรือไม่ได้ส่งจากหน้าของระบบนี้ กรุณาโหลดหน้าใหม่แล้วลองอีกครั้ง",
             "the form has expired or did not come from this site: reload the page and try again")


async def check_csrf(request: Request) -> None:
    """Every POST carries the session's CSRF token, as the form field ``csrf`` or the ``X-CSRF-Token``
    header; 403 otherwise. (Safe methods pass: they change nothing.)"""
    from starlette.concurrency import run_in_threadpool

    if request.method in _SAFE_METHODS:
        return
    sent = request.headers.get("x-csrf-token")
    if not sent:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            value = (await request.form()).get("csrf")
            sent = value if isinstance(value, str) else None
    s = await run_in_threadpool(_session, request)
    if s is None:
        raise LoginRequired()
    if not sent or not hmac.compare_digest(sent.encode(), s.csrf.encode()):
        raise Forbidden(*_BAD_CSRF)


def csrf_token(request: Request) -> str:
    """The session's CSRF token, for a template's hidden ``csrf`` input (or a script's X-CSRF-Token)."""
    s = _session(request)
    if s is None:
        raise LoginRequired()
    return s.csrf


def audit(request: Request, action: str, detail: str = "") -> None:
    """Audit what the signed-in user (if any) does from this request's address: exports, actions."""
    s = _session(request)
    _store(request).audit(s.user.username if s else None, action, detail, client_of(request))


def install(app: FastAPI, store: AuthStore, *, session_hours: float, secure_cookies: bool,
            login_attempts: int, language: str = "th") -> None:
    """Put the accounts behind ``app``: the store, the login and logout pages, and the answers to
    :class:`LoginRequired` (a 303 to ``/login?next=<path>``) and :class:`Forbidden` (a bilingual 403 page)."""
    from phrsync.web.views import auth as views

    store.login_attempts = login_attempts
    app.state.auth = store
    app.state.auth_session_hours = session_hours
    app.state.auth_secure_cookies = secure_cookies
    app.state.language = language if language in LANGS else "th"
    app.include_router(views.router)
    app.add_exception_handler(LoginRequired, views.login_required_handler)
    app.add_exception_handler(Forbidden, views.forbidden_handler)

