"""The sandbox's structure as behaviour: every /api route behind the bearer dependency, standard JWTs, the shared
rate limiter, one error path (a vanished client is no error), the dashboard (escaped, every time with its zone),
nothing fetched from another host, and the library functions under ``phrsync sandbox``."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt
import orjson
import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.routing import APIRoute
from test_sandbox_support import PASSWORD_KEY, FakeClock, login, make_cid, update_payload

from phrsync.errors import UsageError
from phrsync.ratelimit import RateLimiter
from phrsync.sandbox import admin, auth, faults, jwt, server
from phrsync.sandbox.app import Sandbox
from phrsync.sandbox.deps import Uploader
from phrsync.sandbox.hotpath import HotPath
from phrsync.sandbox.server import SandboxThread, running
from phrsync.sandbox.settings import FaultConfig, SandboxConfig

UPLOAD_AT = 1796373360.0  # 2026-12-04 08:36 UTC = 15:36 in Bangkok


@pytest.fixture(scope="module")
def st(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxThread]:
    cfg = SandboxConfig(data_dir=tmp_path_factory.mktemp("routes"), password_key=PASSWORD_KEY,
                        rate_limit_per_minute=0, clock=lambda: UPLOAD_AT)
    with running(cfg) as s:
        yield s


def test_every_api_route_refuses_a_missing_bearer(st: SandboxThread) -> None:
    """Authentication is a dependency of each route: none of them answers, or even checks its parameters,
    without a token."""
    routes = [(m.upper(), path) for path, ops in st.sandbox.api.openapi()["paths"].items()
              if path.startswith(("/api/", "/idp/")) for m in ops]
    assert len(routes) >= 18
    with httpx.Client(base_url=st.base_url) as c:
        for method, path in routes:
            r = c.request(method, path)
            assert r.status_code == 401, (method, path, r.text)
            assert r.json()["MessageCode"] == 401 and r.json()["MessageTH"], (method, path)


def test_tokens_are_plain_hs256_jwts(st: SandboxThread) -> None:
    """What the sandbox issues any JWT library reads, and a token PyJWT signs with the server's secret is
    accepted: the agent and other tools need no sandbox-specific code."""
    c = login(st, "99999")
    token = c.headers["Authorization"].removeprefix("Bearer ")
    secret = st.sandbox.cfg.secret()
    claims = pyjwt.decode(token, secret, algorithms=["HS256"], options={"verify_exp": False})
    assert claims["hospital_code"] == "99999" and claims["exp"] == int(UPLOAD_AT) + st.sandbox.cfg.jwt_ttl_seconds
    assert pyjwt.get_unverified_header(token)["alg"] == "HS256"
    own = pyjwt.encode({"exp": UPLOAD_AT + 60, "hospital_code": "99999", "permissions": [auth.PERM_UPLOAD]},
                       secret, algorithm="HS256")
    r = httpx.get(st.base_url + "/api/CodingSystem", headers={"Authorization": f"Bearer {own}"})
    assert r.status_code == 200, r.text
    hs512 = pyjwt.encode({"exp": UPLOAD_AT + 60, "hospital_code": "99999"}, secret, algorithm="HS512")
    with pytest.raises(jwt.TokenError):  # only HS256, even correctly signed
        jwt.decode(hs512, secret, now=UPLOAD_AT)
    c.close()


def test_rate_limit_is_the_shared_limiter(tmp_path: Path) -> None:
    """PHR's per-facility cap is phrsync.ratelimit's limiter, on the sandbox's clock: the Retry-After it answers
    is the time until the oldest upload of the minute leaves the window."""
    clock = FakeClock()
    cfg = SandboxConfig(data_dir=tmp_path, password_key=PASSWORD_KEY, rate_limit_per_minute=2, clock=clock)
    with running(cfg) as s:
        assert isinstance(s.sandbox.rate, RateLimiter)
        c = login(s, "99999")

        def send(i: int) -> httpx.Response:
            return c.post("/api/UpdatePHRv1", json=update_payload("99999", make_cid(6), f"RL{i}"))

        assert [send(0).status_code, send(1).status_code] == [200, 200]
        r = send(2)
        assert r.status_code == 429 and r.headers["retry-after"] == "60" and r.json()["MessageTH"]
        clock.advance(30)
        assert send(3).headers["retry-after"] == "30"
        clock.advance(31)
        assert send(4).status_code == 200
        c.close()


def _asgi_call(sbx: Sandbox, path: str, headers: list[tuple[bytes, bytes]],
               messages: list[dict[str, Any]], app: Any = None) -> list[dict[str, Any]]:
    """One request straight into the ASGI app (``sbx.asgi`` unless ``app``; no socket), ``messages`` as what
    the client sends; returns what the app sent."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    pending, sent = list(messages), []

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    asyncio.run((app or sbx.asgi)(scope, receive, send))
    return sent


def test_a_client_gone_mid_upload_is_no_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An agent that times out mid-body is not a server error: nothing is logged and nothing escapes to the
    ASGI server (which would print a traceback for it)."""
    cfg = SandboxConfig(data_dir=tmp_path, password_key=PASSWORD_KEY, rate_limit_per_minute=0)
    sbx = Sandbox(cfg)
    try:
        auth.add_user(sbx.store, cfg, "gone", "99999", "pw")
        token = auth.login(sbx.store, cfg, "gone", jwt.password_hash("pw", PASSWORD_KEY), "99999")
        headers = [(b"authorization", f"Bearer {token}".encode()), (b"content-type", b"application/json")]
        with caplog.at_level(logging.ERROR):
            for path in ("/api/UpdatePHRv1", "/api/ImmunizationRegisterv1"):  # the shortcut and FastAPI
                _asgi_call(sbx, path, headers, [{"type": "http.request", "body": b'{"Patient":', "more_body": True},
                                                {"type": "http.disconnect"}])
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        sbx.close()


def _answer(sent: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    """Status and envelope, without the two fields that depend on the moment."""
    body = orjson.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))
    return sent[0]["status"], {k: v for k, v in body.items() if k not in ("RequestTime", "processing_time_ms")}


def test_the_update_shortcut_answers_as_fastapi_does(tmp_path: Path) -> None:
    """UpdatePHRv1 is served past FastAPI's layers (hotpath) with the same dependency, endpoint and handlers:
    for each kind of request its answer is the one the FastAPI route gives."""
    cfg = SandboxConfig(data_dir=tmp_path, password_key=PASSWORD_KEY, rate_limit_per_minute=0, max_body_bytes=50_000)
    sbx = Sandbox(cfg)
    try:
        assert isinstance(sbx.gate.app, HotPath)
        auth.add_user(sbx.store, cfg, "hot", "99999", "pw")
        token = auth.login(sbx.store, cfg, "hot", jwt.password_hash("pw", PASSWORD_KEY), "99999")
        bearer = [(b"authorization", f"Bearer {token}".encode())]
        good = orjson.dumps(update_payload("99999", make_cid(40), "HOT1"))
        other = orjson.dumps(update_payload("10699", make_cid(41), "HOT2"))
        cases = [([], good), ([(b"authorization", b"Bearer nope")], good), (bearer, good), (bearer, b"{"),
                 (bearer, b"\xef\xbb\xbf" + good), (bearer, b"[]"), (bearer, other),
                 ([*bearer, (b"content-length", b"99999999")], good)]
        for headers, body in cases:
            msgs = [{"type": "http.request", "body": body, "more_body": False}]
            hot = _answer(_asgi_call(sbx, "/api/UpdatePHRv1", headers, msgs))
            api = _answer(_asgi_call(sbx, "/api/UpdatePHRv1", headers, msgs, app=sbx.api))
            assert hot == api, (headers, body[:20])
        statuses = {_answer(_asgi_call(sbx, "/api/UpdatePHRv1", h, [{"type": "http.request", "body": b}]))[0]
                    for h, b in cases}
        assert statuses == {200, 400, 401, 403, 413}
    finally:
        sbx.close()


def test_the_shortcut_refuses_a_route_it_would_serve_wrongly() -> None:
    """A route with parameters or a second dependency would lose them past FastAPI: refused at start-up."""
    router = APIRouter()

    @router.post("/api/X")
    async def x(request: Request, p: Uploader, mode: str | None = None) -> None: ...

    with pytest.raises(RuntimeError):
        HotPath(FastAPI(), [r for r in router.routes if isinstance(r, APIRoute)])


# an attribute or CSS reference that leaves this server: https://…, http://… or protocol-relative //…
_EXTERNAL = re.compile(r"""(?:\b(?:src|href|action|srcset)\s*=\s*["']?|url\(\s*["']?|@import\s+["'])\s*"""
                       r"""(?:[a-z][a-z0-9+.-]*:)?//""", re.IGNORECASE)


def test_no_page_refers_to_an_asset_on_another_host(st: SandboxThread) -> None:
    """A health office has no internet: no page may load a script, style, font or image from elsewhere
    (Swagger UI and ReDoc did, from a CDN, so they are not served; /openapi.json still is)."""
    c = login(st, "99999")
    c.post("/api/UpdatePHRv1", json=update_payload("99999", make_cid(31), "EXT1"))
    paths = {p for p, ops in st.sandbox.api.openapi()["paths"].items() if "get" in ops and "{" not in p}
    assert "/dashboard" in paths
    pages = 0
    for path in sorted(paths | {"/", "/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect"}):
        r = c.get(path, follow_redirects=True)
        if r.headers.get("content-type", "").startswith("text/html"):
            pages += 1
            assert not _EXTERNAL.search(r.text), (path, _EXTERNAL.search(r.text))
    assert pages >= 2  # / and /dashboard
    assert not _EXTERNAL.search(faults._GATEWAY_HTML)  # the injected 502/503 page
    for path in ("/docs", "/redoc"):
        assert c.get(path).status_code == 404
    assert "/api/UpdatePHRv1" in c.get("/openapi.json").json()["paths"]
    c.close()


def test_dashboard_times_say_their_zone_and_uploaded_text_is_escaped(st: SandboxThread) -> None:
    """An upload at 08:36 UTC shows as 15:36 (UTC+7) with a Buddhist-era date, the same instant `phrsync
    status` shows; a facility name from an upload is text, never markup."""
    c = login(st, "27001")
    p = update_payload("27001", make_cid(32), "TZ1")
    p["managingOrganization"]["display"] = "<script>alert(1)</script> & co"
    assert c.post("/api/UpdatePHRv1", json=p).status_code == 200
    page = c.get("/dashboard").text
    assert "ข้อมูล ณ 4 ธ.ค. 2569 15:36 น. (UTC+7)" in page
    assert "<td>4 ธ.ค. 2569 15:36 น. (UTC+7)</td>" in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page
    rows = c.get("/dashboard", params={"format": "json"}).json()["by_province"]["ไม่ทราบ"]
    row = next(r for r in rows if r["hospital_code"] == "27001")
    assert row["last_received"] == "2026-12-04T15:36:00+07:00"
    assert row["last_received_th"] == "4 ธ.ค. 2569 15:36 น. (UTC+7)"
    c.close()


def test_admin_functions_under_the_cli(tmp_path: Path) -> None:
    cfg = SandboxConfig(data_dir=tmp_path, password_key=PASSWORD_KEY)
    saved = admin.add_user(cfg, "lib1", "27002", "pw-lib")
    assert saved.to_dict() == {"user": "lib1", "hospital_code": "27002",
                               "permissions": list(auth.DEFAULT_PERMISSIONS)}
    assert "pw-lib" not in saved.text() + str(saved.to_dict())
    for bad in (("lib2", "2700", "pw"), ("", "27002", "pw"), ("lib3", "27002", "")):
        with pytest.raises(UsageError):
            admin.add_user(cfg, *bad)
    tok = admin.issue_token(cfg, "27002")
    assert tok.token.startswith("27002:") and tok.token not in repr(tok)
    assert tok.to_dict()["expires"] in tok.text() and tok.to_dict()["token"] == tok.token
    with pytest.raises(UsageError):
        admin.issue_token(cfg, "x")
    stats = admin.stats(cfg)
    assert stats.to_dict()["facilities"] == 0 and stats.bytes_per_encounter == 0.0
    assert "persons" in stats.text()


def test_serve_checks_settings_before_listening(tmp_path: Path) -> None:
    """Impossible fault probabilities are a usage error before anything listens; the start-up information
    never shows a database password."""
    started: list[server.ServeInfo] = []
    cfg = SandboxConfig(data_dir=tmp_path, password_key=PASSWORD_KEY, faults=FaultConfig(p500=0.7, p503=0.6))
    with pytest.raises(UsageError):
        server.serve(cfg, port=1, on_start=started.append)
    assert not started
    pg = SandboxConfig(data_dir=tmp_path, db_url="postgresql+psycopg://u:s3cret@db.local:5432/sbx")
    info = server.serve_info(pg, "0.0.0.0", 9000, workers=0)
    assert info.to_dict()["storage"] == "db.local:5432/sbx" and "s3cret" not in info.text()
    assert info.url == "http://0.0.0.0:9000" and info.dashboard.endswith("/dashboard") and info.workers == 1
