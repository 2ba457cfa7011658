"""The monitoring site's FastAPI application: ``create_app(sources, options, auth_store)``. Views live in
:mod:`phrsync.web.views` split by kind (overview, facilities, facility, runs, phr); the login pages, roles and
CSRF in :mod:`phrsync.web.auth`. Every JS/CSS asset is a static file of the package (no CDN), and the pages
carry a Content-Security-Policy that allows no inline script."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from phrsync.did.kpi import Targets
from phrsync.errors import NotFoundError, PhrsyncError, StoreError, UsageError
from phrsync.pdpa import mask_text
from phrsync.web import auth, model
from phrsync.web.actions import DeliveryFactory, SendAgain
from phrsync.web.render import NO_STORE, Renderer

log = logging.getLogger("phrsync.web")
STATIC = Path(__file__).resolve().parent / "static"

# script only from this site (app.js, echarts.min.js): no inline script, no eval. ECharts writes style
# attributes into its tooltips, so attribute styles are allowed, style elements are not.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


@dataclass(frozen=True)
class WebOptions:
    """The ``[web]`` settings the application itself uses (host and port are the server's)."""

    session_hours: float = 12.0
    secure_cookies: bool = False
    login_attempts: int = 5
    language: str = "th"
    did_targets: Targets = field(default_factory=Targets)  # [did] KPI 54 targets (the Digital ID page)

    @classmethod
    def from_settings(cls, web: Any) -> WebOptions:
        """From :class:`phrsync.settings.WebSection` (unset keys keep these defaults)."""
        d = cls()
        return cls(session_hours=web.session_hours or d.session_hours,
                   secure_cookies=bool(web.secure_cookies) if web.secure_cookies is not None else d.secure_cookies,
                   login_attempts=web.login_attempts or d.login_attempts, language=web.language or d.language)


class SecurityHeaders:
    """The headers of every answer (pages, exports, JSON, static files); pages and data are never stored by a
    browser or proxy (``no-store``) — they hold a province's health figures — static files may be cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith("/static/")

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"
                           or static]
                have = {k.lower() for k, _ in headers}
                # a view that set its own policy (the standalone login page) keeps it: two policies would apply
                # both, and the stricter would break the page
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in have]
                if not static:
                    headers.append((b"cache-control", NO_STORE.encode()))
                elif b"cache-control" not in have:
                    headers.append((b"cache-control", b"public, max-age=3600"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, wrapped)


class StaticGzip:
    """Compress the static files only (echarts.min.js is 1.1 MB, 370 kB gzipped). Pages are not compressed:
    they hold a CSRF token beside text a query can reflect (BREACH)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=1024)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path", "").startswith("/static/"):
            await self.gzip(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error(request: Request, status: int, th: str, en: str) -> Response:
    if _is_api(request):
        return JSONResponse({"error": {"th": th, "en": en}}, status_code=status,
                            headers={"Cache-Control": NO_STORE})
    renderer: Renderer = request.app.state.renderer
    user = getattr(request.state, "user", None)
    return renderer.render(request, "error.html", {"status": status, "message_th": th, "message_en": en,
                                                   "user": user}, status=status)


_ROUTE_ERRORS = {
    404: ("ไม่มีหน้านี้ ตรวจที่อยู่ที่พิมพ์", "no such page: check the address"),
    405: ("หน้านี้ไม่รับคำขอแบบนี้", "this address does not take this kind of request"),
}


def _install_errors(app: FastAPI) -> None:
    """A PhrsyncError from the model or a view is a bilingual page (JSON under /api/): 404 for what does not
    exist, 400 for a wrong query, 503 when a store cannot be read; never a traceback."""

    @app.exception_handler(StarletteHTTPException)
    async def no_route(request: Request, e: StarletteHTTPException) -> Response:
        # a mistyped address or method: the site's bilingual page, not the framework's {"detail": "Not Found"}
        if e.status_code in _ROUTE_ERRORS:
            return _error(request, e.status_code, *_ROUTE_ERRORS[e.status_code])
        return await http_exception_handler(request, e)

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, e: NotFoundError) -> Response:
        return _error(request, 404, mask_text(e.th), mask_text(e.en or e.th))

    @app.exception_handler(UsageError)
    async def bad_request(request: Request, e: UsageError) -> Response:
        return _error(request, 400, mask_text(e.message), mask_text(e.message))

    @app.exception_handler(StoreError)
    async def store_down(request: Request, e: StoreError) -> Response:
        log.warning("store error: %s", mask_text(e.message))
        return _error(request, 503, "อ่านฐานข้อมูลไม่ได้ในขณะนี้: " + mask_text(e.th),
                      "a store cannot be read now: " + mask_text(e.en or e.th))

    @app.exception_handler(PhrsyncError)
    async def other(request: Request, e: PhrsyncError) -> Response:
        return _error(request, 500, mask_text(e.th), mask_text(e.en or e.th))


def create_app(sources: model.Sources, options: WebOptions | None = None,
               auth_store: auth.AuthStore | None = None, *, delivery: DeliveryFactory | None = None) -> FastAPI:
    """The site over ``sources``. ``auth_store``: the accounts (default: in ``sources.state_url``).
    ``delivery``: a function giving the :class:`~phrsync.delivery.config.DeliverySettings` the "send again"
    action runs with (read when pressed, so a secret set after start-up is seen); None offers no action."""
    from phrsync.web.views import codes, did, facilities, facility, overview, phr, runs

    options = options or WebOptions()
    store = auth_store or auth.AuthStore(sources.state_url, login_attempts=options.login_attempts)
    app = FastAPI(title="phrsync web", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sources = sources
    app.state.options = options
    app.state.renderer = Renderer(options.language)
    app.state.send_again = SendAgain(delivery, sources.build_file)
    _install_errors(app)
    auth.install(app, store, session_hours=options.session_hours, secure_cookies=options.secure_cookies,
                 login_attempts=options.login_attempts, language=options.language)
    for mod in (overview, facilities, facility, runs, codes, did, phr):
        app.include_router(mod.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(StaticGzip)
    app.add_middleware(SecurityHeaders)
    return app
