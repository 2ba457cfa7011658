"""The login and logout pages, and the answers to "not signed in" (303 to the login page) and "not allowed"
(a bilingual 403 page). Standalone pages (no ``base.html``): they must work before anyone is signed in, with no
navigation to show and no external asset to load."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from phrsync.web.auth import (
    _BAD_CSRF,
    LANG_COOKIE,
    LANGS,
    LOGIN_CSRF_COOKIE,
    ROLE_TEXT,
    SESSION_COOKIE,
    AuthStore,
    Forbidden,
    LoginFailed,
    LoginLocked,
    LoginRequired,
    _session,
    _store,
    audit,
    check_csrf,
    client_of,
    csrf_token,
    lang_of,
    safe_next,
)

router = APIRouter()

# pages that hold a form or an account's name: never cached, never framed (clickjacking of the login form)
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


@functools.cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("phrsync.web", "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined)


def _bi(lang: str) -> Any:
    """``bi(th, en)`` for the templates: the chosen language first, the other beside it, both escaped."""
    def bi(th: str, en: str) -> Markup:
        first, second, other = (th, en, "en") if lang == "th" else (en, th, "th")
        return Markup('{} <span class="alt" lang="{}">{}</span>').format(first, other, second)
    return bi


def _one(lang: str) -> Any:
    def one(th: str, en: str) -> str:
        return th if lang == "th" else en
    return one


def _render(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    lang = lang_of(request)
    html = _templates().get_template(name).render(lang=lang, bi=_bi(lang), one=_one(lang), **ctx)
    resp = HTMLResponse(html, status_code=status, headers=_HEADERS)
    if request.query_params.get("lang") in LANGS:  # ?lang= is remembered for the next pages
        resp.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax",
                        secure=request.app.state.auth_secure_cookies)
    return resp


def _drop_cookie(request: Request, resp: Response, name: str, path: str) -> None:
    """Delete a cookie with the flags it was set with (a browser matches on them; and never sent in clear)."""
    resp.delete_cookie(name, path=path, httponly=True, samesite="strict" if name == LOGIN_CSRF_COOKIE else "lax",
                       secure=request.app.state.auth_secure_cookies)


def _login_token(store: AuthStore, nonce: str) -> str:
    """The login form's CSRF token: the cookie's nonce signed with the site's key, so a nonce planted from
    elsewhere (a sibling host setting cookies) is worthless without the form the site handed out."""
    return hmac.new(store.csrf_key(), nonce.encode(), hashlib.sha256).hexdigest()


def _login_page(request: Request, nxt: str, *, status: int = 200, message: tuple[str, str] | None = None,
                username: str = "") -> HTMLResponse:
    store = _store(request)
    nonce = secrets.token_urlsafe(24)
    lang = lang_of(request)
    other = "en" if lang == "th" else "th"
    resp = _render(request, "login.html", status, mode="login", next=nxt, username=username, message=message,
                   csrf=_login_token(store, nonce), switch_url="/login?" + urlencode({"lang": other, "next": nxt}),
                   switch_text="English" if other == "en" else "ภาษาไทย", user=None, csrf_logout="")
    resp.set_cookie(LOGIN_CSRF_COOKIE, nonce, max_age=3600, path="/login", httponly=True, samesite="strict",
                    secure=request.app.state.auth_secure_cookies)
    return resp


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> Response:  # noqa: A002  (the query parameter's name)
    nxt = safe_next(next)
    if _session(request) is not None:
        return RedirectResponse(nxt, status_code=303)
    return _login_page(request, nxt)


@router.post("/login", response_class=HTMLResponse)
def login_submit(request: Request, username: str = Form(""), password: str = Form(""),  # noqa: B008
                 csrf: str = Form(""), next: str = Form("/")) -> Response:  # noqa: A002,B008
    store = _store(request)
    nxt = safe_next(next)
    nonce = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not nonce or not csrf or not hmac.compare_digest(_login_token(store, nonce), csrf):
        return _login_page(request, nxt, status=403, message=_BAD_CSRF, username=username[:64])
    try:
        user = store.authenticate(username, password, client_of(request))
    except LoginLocked as e:
        return _login_page(request, nxt, status=429, message=(e.th, e.en or e.th), username=username[:64])
    except LoginFailed as e:
        return _login_page(request, nxt, status=401, message=(e.th, e.en or e.th), username=username[:64])
    store.end_session(request.cookies.get(SESSION_COOKIE))  # a new token on every login (no fixation)
    hours = request.app.state.auth_session_hours
    token = store.new_session(user, hours)
    resp = RedirectResponse(nxt, status_code=303)
    resp.set_cookie(SESSION_COOKIE, token, max_age=int(hours * 3600), path="/", httponly=True, samesite="lax",
                    secure=request.app.state.auth_secure_cookies)
    _drop_cookie(request, resp, LOGIN_CSRF_COOKIE, "/login")
    return resp


@router.get("/logout", response_class=HTMLResponse)
def logout_confirm(request: Request) -> Response:
    """A page with the sign-out button: signing out is a POST (with the CSRF token), so no other site's link
    or image can sign a user out."""
    s = _session(request)
    if s is None:
        return RedirectResponse("/login", status_code=303)
    return _render(request, "login.html", mode="logout", user=s.user, role_text=ROLE_TEXT[s.user.role],
                   csrf_logout=csrf_token(request), message=None)


@router.post("/logout", dependencies=[Depends(check_csrf)])
def logout(request: Request) -> Response:
    audit(request, "logout")
    _store(request).end_session(request.cookies.get(SESSION_COOKIE))
    resp = RedirectResponse("/login", status_code=303)
    _drop_cookie(request, resp, SESSION_COOKIE, "/")
    return resp


def login_required_handler(request: Request, exc: LoginRequired) -> Response:
    """Not signed in (or the session ended): to the login page, which brings the user back here after."""
    if request.method == "GET":
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    else:  # a POST cannot be replayed by a redirect: back to the start
        here = "/"
    target = "/login?" + urlencode({"next": safe_next(here)})
    if request.headers.get("hx-request"):  # htmx swaps a redirect's page into a fragment: tell it to navigate
        resp: Response = Response(status_code=401, headers={"HX-Redirect": target})
    else:
        resp = RedirectResponse(target, status_code=303)
    if request.cookies.get(SESSION_COOKIE):
        _drop_cookie(request, resp, SESSION_COOKIE, "/")
    return resp


def forbidden_handler(request: Request, exc: Forbidden) -> Response:
    """403 with the reason in both languages; each refusal is audited (who tried which page)."""
    s = _session(request)
    audit(request, "forbidden", f"{request.method} {request.url.path}")
    return _render(request, "forbidden.html", 403, mode="forbidden", message=(exc.th, exc.en or exc.th),
                   user=s.user if s else None, role_text=ROLE_TEXT[s.user.role] if s else None)

