"""Who sees what on the monitoring web (issue 12): accounts, argon2 hashes, sessions, CSRF, the login lockout,
roles and the audit log — on the store itself and through a small FastAPI app that uses the dependencies the
way every page, export and action does. SQLite always, PostgreSQL with the ``postgres`` marker."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from dbfixtures import postgres_server, unique_name  # noqa: F401  (fixture)
from fastapi import Depends, FastAPI, Form, Request
from fastapi.testclient import TestClient
from sqlalchemy import select

from phrsync.errors import NotFoundError, UsageError
from phrsync.thai import BANGKOK
from phrsync.web import auth as A
from phrsync.web.auth import (
    ADMIN,
    DISTRICT,
    FACILITY,
    AuthStore,
    LoginFailed,
    LoginLocked,
    User,
    audit,
    check_csrf,
    csrf_token,
    current_user,
    install,
    require_admin,
    require_facility,
    safe_next,
)

PW = "correct horse battery"  # 21 characters
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # argon2id, fast enough for many tests
T0 = 1_800_000_000.0  # 2027-01-15 15:00 Asia/Bangkok


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh state store on SQLite, and on PostgreSQL (its own database, dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'state.sqlite'}"
        return
    import psycopg
    from sqlalchemy.engine import make_url

    server = request.getfixturevalue("postgres_server")
    name = unique_name()
    yield str(make_url(server).set(database=name).render_as_string(hide_password=False))
    u = make_url(server)
    with psycopg.connect(host=u.host, port=u.port or 5432, user=u.username, dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(state_url: str, clock: Clock) -> Iterator[AuthStore]:
    s = AuthStore(state_url, clock=clock, hasher=CHEAP, login_attempts=3)
    s.add_user("admin", PW, ADMIN)
    s.add_user("amphoe", PW, DISTRICT, district="2701")
    s.add_user("pcu", PW, FACILITY, facility="10699")
    yield s
    s.close()


def make_app(store: AuthStore, *, attempts: int = 3, hours: float = 8.0, secure: bool = False) -> FastAPI:
    """A stand-in for the site: a page, an admin page, a facility page, an action and an export."""
    app = FastAPI()
    install(app, store, session_hours=hours, secure_cookies=secure, login_attempts=attempts)

    @app.get("/page")
    def page(user: User = Depends(current_user)) -> dict[str, str]:  # noqa: B008
        return {"user": user.username, "role": user.role}

    @app.get("/admin-only")
    def admin_only(user: User = Depends(require_admin)) -> dict[str, str]:  # noqa: B008
        return {"user": user.username}

    @app.get("/facility/{hospcode}")
    def facility(hospcode: str, district: str | None = None,
                 user: User = Depends(current_user)) -> dict[str, str]:  # noqa: B008
        require_facility(user, hospcode, district)
        return {"facility": hospcode}

    @app.get("/export")
    def export(request: Request, user: User = Depends(current_user)) -> dict[str, str]:  # noqa: B008
        audit(request, "export", "facilities.csv rows=2 cid 1234567890121")
        return {"ok": "yes"}

    @app.post("/act", dependencies=[Depends(check_csrf)])
    def act(request: Request, note: str = Form(""), user: User = Depends(require_admin)) -> dict[str, str]:  # noqa: B008
        audit(request, "action", f"retry refused note={note}")
        return {"note": note, "user": user.username}

    @app.get("/token")
    def token(request: Request, user: User = Depends(current_user)) -> dict[str, str]:  # noqa: B008
        return {"csrf": csrf_token(request)}

    return app


def login_form(client: TestClient, nxt: str = "/page") -> str:
    page = client.get("/login", params={"next": nxt})
    assert page.status_code == 200
    m = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert m
    return m.group(1)


def login(client: TestClient, username: str, password: str = PW, nxt: str = "/page"):  # noqa: ANN201
    csrf = login_form(client, nxt)
    return client.post("/login", data={"username": username, "password": password, "csrf": csrf, "next": nxt},
                       follow_redirects=False)


def audit_actions(store: AuthStore) -> list[tuple[str | None, str]]:
    return [(e.username, e.action) for e in reversed(store.audit_log())]


# ---- accounts --------------------------------------------------------------------------------------------

def test_the_stored_hash_is_argon2id_never_the_password(store: AuthStore) -> None:
    with store.engine.connect() as c:
        rows = {r.username: r for r in c.execute(select(A.users_table))}
    assert set(rows) == {"admin", "amphoe", "pcu"}
    for r in rows.values():
        assert r.password_hash.startswith("$argon2id$") and PW not in r.password_hash
        assert PasswordHasher().verify(r.password_hash, PW)  # a standard PHC string any argon2 library reads
    assert len({r.password_hash for r in rows.values()}) == 3  # salted: one password, three hashes


def test_the_default_hasher_is_argon2id_rfc9106(tmp_path: Path) -> None:
    s = AuthStore(f"sqlite:///{tmp_path / 's.sqlite'}")
    try:
        s.add_user("admin", PW, "ADMIN")
        with s.engine.connect() as c:
            h = c.execute(select(A.users_table.c.password_hash)).scalar_one()
        assert re.match(r"\$argon2id\$v=19\$m=65536,t=3,p=4\$", h)
        assert s.authenticate("Admin", PW, "10.0.0.1") == User("admin", ADMIN)
    finally:
        s.close()


def test_add_user_checks_role_scope_and_password(store: AuthStore) -> None:
    bad = [
        (("x1", "short", ADMIN), {}, "อย่างน้อย 10"),
        (("x1", PW, "root"), {}, "role"),
        (("x1", PW, DISTRICT), {}, "4-digit"),
        (("x1", PW, DISTRICT), {"district": "27"}, "4-digit"),
        (("x1", PW, DISTRICT), {"district": "2701", "facility": "10699"}, "no facility"),
        (("x1", PW, FACILITY), {}, "5-character"),
        (("x1", PW, FACILITY), {"facility": "1069"}, "5-character"),
        (("x1", PW, FACILITY), {"facility": "10699", "district": "2701"}, "own facility"),
        (("x1", PW, ADMIN), {"district": "2701"}, "every facility"),
        (("1234567890121", PW, ADMIN), {}, "citizen ID"),
        (("x 1", PW, ADMIN), {}, "a-z"),
        (("verylongpassword", "verylongpassword", ADMIN), {}, "not be the user name"),
    ]
    for args, kw, text in bad:
        with pytest.raises(UsageError) as e:
            store.add_user(*args, **kw)
        msg = str(e.value)
        assert text in msg and " / " in msg, (args, kw, msg)  # bilingual, Thai first
        assert re.match(r"[\u0e00-\u0e7f]", msg), msg
    assert [u.username for u in store.users()] == ["admin", "amphoe", "pcu"]
    added = store.add_user("New.User", PW, "facility", facility="10700")
    assert added == A.AddedUser("new.user", FACILITY, None, "10700", updated=False) and isinstance(added, User)


def test_an_existing_user_is_updated_and_its_sessions_end(store: AuthStore) -> None:
    token = store.new_session(store.authenticate("pcu", PW, "c"), 8)
    assert store.session_user(token) == User("pcu", FACILITY, facility="10699")
    res = store.add_user("PCU", "another password 2", DISTRICT, district="2702")
    assert res.updated and res == A.AddedUser("pcu", DISTRICT, "2702", None, updated=True)
    assert store.session_user(token) is None  # a changed role takes effect at once
    with pytest.raises(LoginFailed):
        store.authenticate("pcu", PW, "c")
    assert store.authenticate("pcu", "another password 2", "c") == User("pcu", DISTRICT, district="2702")
    assert ("update_user" in [a for _, a in audit_actions(store)])


def test_remove_user_ends_its_sessions(store: AuthStore) -> None:
    token = store.new_session(User("amphoe", DISTRICT, "2701"), 8)
    store.remove_user("amphoe", by="admin")
    assert store.session_user(token) is None and [u.username for u in store.users()] == ["admin", "pcu"]
    with pytest.raises(NotFoundError):
        store.remove_user("amphoe")
    assert audit_actions(store)[-1] == ("admin", "remove_user")


# ---- logins and the lockout ------------------------------------------------------------------------------

def test_login_ok_and_failed_with_one_message_for_both(store: AuthStore) -> None:
    assert store.authenticate(" Admin ", PW, "10.0.0.1") == User("admin", ADMIN)
    with pytest.raises(LoginFailed) as wrong_pw:
        store.authenticate("admin", PW + "x", "10.0.0.2")
    with pytest.raises(LoginFailed) as no_user:
        store.authenticate("nobody", PW, "10.0.0.3")
    with pytest.raises(LoginFailed) as empty:
        store.authenticate("admin", "", "10.0.0.4")
    assert type(wrong_pw.value) is type(no_user.value) is type(empty.value) is LoginFailed
    assert str(wrong_pw.value) == str(no_user.value) == "ชื่อผู้ใช้หรือรหัสผ่านไม่ถูกต้อง / wrong user name or password"
    log = store.audit_log()
    assert [(e.username, e.action, e.client) for e in reversed(log)][-4:] == [
        ("admin", "login", "10.0.0.1"), ("admin", "login_failed", "10.0.0.2"),
        ("nobody", "login_failed", "10.0.0.3"), ("admin", "login_failed", "10.0.0.4")]
    assert all(PW not in e.detail for e in log)


def test_lockout_after_n_failures_and_its_expiry(store: AuthStore, clock: Clock) -> None:
    first = clock.t
    for i in range(2):
        with pytest.raises(LoginFailed) as e:
            store.authenticate("admin", "wrong password!", f"10.0.0.{i}")
        assert type(e.value) is LoginFailed
        clock.t += 60
    with pytest.raises(LoginLocked) as e:  # the third failure in 15 minutes locks the name (any address)
        store.authenticate("admin", "wrong password!", "10.0.0.9")
    until = first + 15 * 60
    assert e.value.until == until
    hhmm = dt.datetime.fromtimestamp(until, BANGKOK).strftime("%H:%M")
    assert str(e.value) == (f"เข้าระบบผิดหลายครั้ง ระงับไว้ชั่วคราว ลองใหม่หลัง {hhmm} น. (Asia/Bangkok) / "
                            f"too many failed logins: locked, try after {hhmm} (Asia/Bangkok)")
    assert hhmm == "15:15"
    clock.t = until - 1
    with pytest.raises(LoginLocked):  # while locked even the right password is not checked
        store.authenticate("admin", PW, "10.0.0.50")
    clock.t = until + 1  # the oldest failure left the window: two remain, below the limit
    assert store.authenticate("admin", PW, "10.0.0.50") == User("admin", ADMIN)
    # a good login clears the name's count: two more failures do not lock it
    for _ in range(2):
        with pytest.raises(LoginFailed) as e:
            store.authenticate("admin", "wrong password!", "10.0.0.60")
        assert type(e.value) is LoginFailed
    actions = [a for _, a in audit_actions(store)]
    assert actions.count("login_failed") == 5 and actions.count("login_locked") == 1


def test_lockout_per_client_address_and_for_unknown_names(store: AuthStore, clock: Clock) -> None:
    for name in ("ghost1", "ghost2"):  # names that do not exist fail exactly like real ones
        with pytest.raises(LoginFailed) as e:
            store.authenticate(name, "wrong password!", "192.0.2.7")
        assert type(e.value) is LoginFailed
    with pytest.raises(LoginLocked):  # three failures from one address lock the address, whatever the names
        store.authenticate("ghost3", "wrong password!", "192.0.2.7")
    with pytest.raises(LoginLocked):
        store.authenticate("pcu", PW, "192.0.2.7")
    assert store.authenticate("pcu", PW, "192.0.2.8") == User("pcu", FACILITY, facility="10699")
    # an unknown name is locked like a real one (a lock tells nothing about which names exist)
    for i in range(3):
        with pytest.raises(LoginFailed):
            store.authenticate("ghost9", "wrong password!", f"198.51.100.{i}")
    with pytest.raises(LoginLocked):
        store.authenticate("ghost9", "wrong password!", "198.51.100.99")
    clock.t += 15 * 60 + 1
    assert store.authenticate("pcu", PW, "192.0.2.7").username == "pcu"
    # the failures table never holds the names as typed (a citizen ID typed as a user name is not kept)
    with pytest.raises(LoginFailed):
        store.authenticate("1234567890121", "wrong password!", "203.0.113.1")
    with store.engine.connect() as c:
        keys = c.execute(select(A.failures_table.c.user_key)).scalars().all()
    assert keys and all(re.fullmatch(r"[0-9a-f]{64}", k) for k in keys)
    assert store.audit_log(1)[0].username == "1-2345-xxxxx-xx-1"


# ---- sessions --------------------------------------------------------------------------------------------

def test_sessions_store_only_a_hash_and_expire(store: AuthStore, clock: Clock) -> None:
    user = store.authenticate("amphoe", PW, "c")
    token = store.new_session(user, 2)
    assert len(token) >= 40
    with store.engine.connect() as c:
        rows = [tuple(r) for r in c.execute(select(A.sessions_table))]
    assert len(rows) == 1 and all(token not in str(v) for v in rows[0])
    assert store.session_user(token) == user and store.sessions_of("amphoe") == 1
    assert store.session_user(token + "x") is None and store.session_user("") is None
    clock.t += 2 * 3600 - 1
    assert store.session_user(token) == user
    clock.t += 2
    assert store.session_user(token) is None and store.sessions_of("amphoe") == 0
    other = store.new_session(user, 2)  # a new session sweeps the expired ones
    with store.engine.connect() as c:
        assert c.execute(select(A.sessions_table.c.token_hash)).scalars().all() == [A._sha256(other)]
    store.end_session(other)
    assert store.session_user(other) is None


def test_can_see_for_each_role() -> None:
    admin, district = User("a", ADMIN), User("d", DISTRICT, district="2701")
    facility = User("f", FACILITY, facility="10699")
    assert admin.can_see("10699", None) and admin.can_see("99999", "9999") and admin.is_admin
    assert district.can_see("10699", "2701") and district.can_see("10700", "2701")
    assert not district.can_see("10699", "2702") and not district.can_see("10699", None)
    assert facility.can_see("10699", None) and facility.can_see("10699", "2702")
    assert not facility.can_see("10700", "2701") and not district.is_admin and not facility.is_admin


@pytest.mark.parametrize("target, expect", [
    ("/facility/10699?d=2701", "/facility/10699?d=2701"), ("/", "/"), (None, "/"), ("", "/"),
    ("//evil.example/x", "/"), ("https://evil.example/", "/"), ("/\\evil.example", "/"),
    ("javascript:alert(1)", "/"), ("evil.example", "/"), ("/login", "/"), ("/logout", "/"),
    ("/x\r\nSet-Cookie: a=b", "/"),
])
def test_next_is_a_local_path_only(target: str | None, expect: str) -> None:
    assert safe_next(target) == expect


def test_read_password_from_a_file_or_a_prompt(tmp_path: Path) -> None:
    f = tmp_path / "pw.txt"
    f.write_text(PW + "\nignored\n", encoding="utf-8")
    assert A.read_password(f) == PW
    assert A.read_password(None, prompt=lambda: "typed secret!") == "typed secret!"
    (tmp_path / "empty").write_text("", encoding="utf-8")
    with pytest.raises(UsageError):
        A.read_password(tmp_path / "empty")
    with pytest.raises(NotFoundError):
        A.read_password(tmp_path / "missing")


# ---- through the web -------------------------------------------------------------------------------------

def test_a_page_sends_to_the_login_and_back(store: AuthStore) -> None:
    client = TestClient(make_app(store))
    r = client.get("/page?x=1", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fpage%3Fx%3D1"
    r = login(client, "admin", nxt="/page?x=1")
    assert r.status_code == 303 and r.headers["location"] == "/page?x=1"
    assert client.get("/page").json() == {"user": "admin", "role": ADMIN}
    # already signed in: the login page goes straight on
    r = client.get("/login?next=/facility/10699", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/facility/10699"
    # htmx asks for a fragment: told to navigate instead of swapping the login page into it
    r = TestClient(make_app(store)).get("/page", headers={"HX-Request": "true"}, follow_redirects=False)
    assert r.status_code == 401 and r.headers["hx-redirect"] == "/login?next=%2Fpage"


def test_login_does_not_open_redirect(store: AuthStore) -> None:
    client = TestClient(make_app(store))
    r = login(client, "admin", nxt="//evil.example/steal")
    assert r.status_code == 303 and r.headers["location"] == "/"
    page = TestClient(make_app(store)).get("/login", params={"next": "https://evil.example"})
    assert 'name="next" value="/"' in page.text


def test_session_cookie_flags(store: AuthStore) -> None:
    r = login(TestClient(make_app(store)), "admin")
    cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith(A.SESSION_COOKIE))
    flags = {p.strip().split("=")[0].lower(): p for p in cookie.split(";")}
    assert "httponly" in flags and flags["samesite"].strip().lower() == "samesite=lax" and "secure" not in flags
    assert flags["max-age"].strip() == "Max-Age=28800" and flags["path"].strip() == "Path=/"
    secure = TestClient(make_app(store, secure=True), base_url="https://testserver")
    form = secure.get("/login")
    r = login(secure, "admin")
    cookies = [v for resp in (form, r) for k, v in resp.headers.multi_items() if k == "set-cookie"]
    assert len(cookies) == 3  # the login form's token, then the session and the token dropped
    assert all("; secure" in c.lower() and "; httponly" in c.lower() for c in cookies)
    assert secure.get("/page").json()["user"] == "admin"


def test_the_login_form_needs_its_csrf_token(store: AuthStore) -> None:
    client = TestClient(make_app(store))
    csrf = login_form(client)
    for data in ({}, {"csrf": "forged"}, {"csrf": csrf[:-2] + "00"}):
        r = client.post("/login", data={"username": "admin", "password": PW, **data}, follow_redirects=False)
        assert r.status_code == 403 and "reload the page" in r.text and A.SESSION_COOKIE not in client.cookies
    # a token without the cookie it was made for (another browser's form) is refused too
    other = TestClient(make_app(store))
    r = other.post("/login", data={"username": "admin", "password": PW, "csrf": csrf}, follow_redirects=False)
    assert r.status_code == 403
    assert login(client, "admin").status_code == 303


def test_every_post_needs_the_session_csrf_token(store: AuthStore) -> None:
    client = TestClient(make_app(store))
    assert client.post("/act", data={"note": "x"}, follow_redirects=False).headers["location"] == "/login?next=%2F"
    login(client, "admin")
    token = client.get("/token").json()["csrf"]
    other = TestClient(make_app(store))
    login(other, "admin")
    other_token = other.get("/token").json()["csrf"]
    assert token != other_token
    for data, headers in (({"note": "x"}, {}), ({"note": "x", "csrf": "nope"}, {}),
                          ({"note": "x", "csrf": other_token}, {}), ({"note": "x"}, {"X-CSRF-Token": other_token})):
        r = client.post("/act", data=data, headers=headers)
        assert r.status_code == 403, (data, headers)
        assert "ไม่ได้ส่งจากหน้าของระบบนี้" in r.text and "did not come from this site" in r.text
    assert client.post("/act", data={"note": "form", "csrf": token}).json() == {"note": "form", "user": "admin"}
    assert client.post("/act", data={"note": "hdr"}, headers={"X-CSRF-Token": token}).json()["note"] == "hdr"
    assert client.post("/act", json={}, headers={"X-CSRF-Token": token}).status_code == 200


def test_logout_ends_the_session_on_the_server(store: AuthStore) -> None:
    client = TestClient(make_app(store))
    login(client, "amphoe")
    token = client.cookies[A.SESSION_COOKIE]
    page = client.get("/logout")  # a confirmation page: a GET never signs out
    assert page.status_code == 200 and "amphoe" in page.text and store.session_user(token) is not None
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    assert client.post("/logout", follow_redirects=False).status_code == 403  # without the token
    r = client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert store.session_user(token) is None
    replay = TestClient(make_app(store), cookies={A.SESSION_COOKIE: token})  # the old cookie, kept by a thief
    r = replay.get("/page", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert ("amphoe", "logout") in audit_actions(store)


def test_session_expiry_through_the_web(store: AuthStore, clock: Clock) -> None:
    client = TestClient(make_app(store, hours=1))
    login(client, "pcu")
    assert client.get("/page").status_code == 200
    clock.t += 3601
    r = client.get("/page", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fpage"


def test_roles_are_enforced_on_the_server(store: AuthStore) -> None:
    clients = {}
    for name in ("admin", "amphoe", "pcu"):
        clients[name] = TestClient(make_app(store))
        assert login(clients[name], name).status_code == 303
    assert clients["admin"].get("/admin-only").status_code == 200
    for name in ("amphoe", "pcu"):
        r = clients[name].get("/admin-only")
        assert r.status_code == 403 and "ผู้ดูแลระดับจังหวัดเท่านั้น" in r.text and "province admin" in r.text
        assert clients[name].post("/act", data={"csrf": clients[name].get("/token").json()["csrf"]}).status_code == 403
    assert clients["admin"].get("/facility/10700?district=2702").status_code == 200
    assert clients["amphoe"].get("/facility/10700?district=2701").status_code == 200
    assert clients["amphoe"].get("/facility/10699?district=2702").status_code == 403
    assert clients["amphoe"].get("/facility/10699").status_code == 403  # district unknown: not shown
    assert clients["pcu"].get("/facility/10699?district=2702").status_code == 200
    r = clients["pcu"].get("/facility/10700?district=2701")  # typing another facility's URL
    assert r.status_code == 403 and "ไม่มีสิทธิ์ดูข้อมูลของหน่วยบริการนี้" in r.text and '<html lang="th">' in r.text
    assert r.text.index("ไม่มีสิทธิ์ดูข้อมูล") < r.text.index("you may not see")  # Thai first
    forbidden = [e for e in store.audit_log() if e.action == "forbidden"]
    assert ("pcu", "GET /facility/10700") in [(e.username, e.detail) for e in forbidden]
    r = clients["pcu"].get("/facility/10700?lang=en")
    assert '<html lang="en">' in r.text and r.text.index("you may not see") < r.text.index("ไม่มีสิทธิ์ดูข้อมูล")


def test_lockout_through_the_login_page(store: AuthStore, clock: Clock) -> None:
    client = TestClient(make_app(store, attempts=2), client=("192.0.2.10", 5000))
    r = login(client, "admin", "wrong password!")
    assert r.status_code == 401 and "wrong user name or password" in r.text and 'value="admin"' in r.text
    r = login(client, "admin", "wrong password!")
    assert r.status_code == 429 and "Asia/Bangkok" in r.text and "ลองใหม่หลัง 15:15 น." in r.text
    assert login(client, "admin").status_code == 429  # the right password, still locked
    assert A.SESSION_COOKIE not in client.cookies
    clock.t += 15 * 60 + 1
    assert login(client, "admin").status_code == 303
    assert [c for _, c in [(e.action, e.client) for e in store.audit_log()]][0] == "192.0.2.10"


def test_login_page_is_bilingual_with_a_language_switch(store: AuthStore) -> None:
    client = TestClient(make_app(store))
    th = client.get("/login?next=/page")
    assert '<html lang="th">' in th.text and th.text.index("เข้าสู่ระบบ") < th.text.index("Sign in")
    assert 'href="/login?lang=en&amp;next=%2Fpage"' in th.text
    assert "<script" not in th.text and "http" not in th.text.replace('name="viewport"', "")  # no external asset
    assert th.headers["x-frame-options"] == "DENY" and th.headers["cache-control"] == "no-store"
    en = client.get("/login?lang=en&next=/page")
    assert '<html lang="en">' in en.text and en.text.index("Sign in") < en.text.index("เข้าสู่ระบบ")
    assert client.cookies.get("lang") == "en"
    assert '<html lang="en">' in client.get("/login").text  # remembered by the cookie
    assert '<html lang="th">' in client.get("/login?lang=th").text


def test_audit_log_of_logins_exports_and_actions(store: AuthStore) -> None:
    client = TestClient(make_app(store), client=("10.1.2.3", 4000))
    login(client, "admin", "not the password")
    login(client, "admin")
    assert client.get("/export").json() == {"ok": "yes"}
    token = client.get("/token").json()["csrf"]
    session = client.cookies[A.SESSION_COOKIE]
    client.post("/act", data={"note": "citizen 1-2345-67890-12-1", "csrf": token})
    page = client.get("/logout")
    client.post("/logout", data={"csrf": re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)})  # type: ignore[union-attr]
    log = list(reversed(store.audit_log()))
    assert [(e.username, e.action) for e in log][-5:] == [
        ("admin", "login_failed"), ("admin", "login"), ("admin", "export"), ("admin", "action"), ("admin", "logout")]
    assert all(e.client == "10.1.2.3" for e in log[-5:])
    export, action = log[-3], log[-2]
    assert export.detail == "facilities.csv rows=2 cid 1-2345-xxxxx-xx-1"
    assert action.detail == "retry refused note=citizen 1-2345-xxxxx-xx-1"
    everything = " ".join(f"{e.username} {e.action} {e.detail}" for e in log)
    assert PW not in everything and "not the password" not in everything
    assert token not in everything and session not in everything
    assert [e.action for e in store.audit_log(2)] == ["logout", "action"]  # newest first, limited
