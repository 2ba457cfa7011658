"""Rendering the pages: one Jinja2 environment (autoescaped: facility names, agent versions and error texts come
from other systems) and the page's language.

Thai is the default; ``?lang=en`` (or ``?lang=th``) switches and is remembered in the ``lang`` cookie, so every
page has the same switch. The filters show what the model cannot know yet (``None``) as "ยังไม่ทราบ / not known
yet", never as 0, and every date in the Buddhist era and every time with its zone (Asia/Bangkok)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from phrsync.thai import be_date, be_datetime, be_month

TEMPLATES = Path(__file__).resolve().parent / "templates"
LANGS = ("th", "en")
LANG_COOKIE = "lang"
UNKNOWN = ("ยังไม่ทราบ", "not known yet")
NO_STORE = "no-store"


def t(lang: str, th: str, en: str) -> str:
    """The text in the page's language."""
    return en if lang == "en" else th


def unknown(lang: str) -> str:
    return t(lang, *UNKNOWN)


def number(v: int | float | None, lang: str) -> str:
    """``12,345``; ``None`` → "ยังไม่ทราบ" (never 0)."""
    if v is None:
        return unknown(lang)
    return f"{v:,.1f}" if isinstance(v, float) and not v.is_integer() else f"{int(v):,}"


def percent(v: float | None, lang: str) -> str:
    return unknown(lang) if v is None else f"{v:.1f} %"


def when(ts: float | None, lang: str) -> str:
    """An epoch time, Buddhist era, with its zone; ``None`` → not known."""
    return unknown(lang) if ts is None else be_datetime(ts, lang)


def day(d: dt.date | None, lang: str) -> str:
    return unknown(lang) if d is None else be_date(d, lang)


def _lang_of(ctx: Any) -> str:
    return str(ctx.get("lang", "th"))


@jinja2.pass_context
def _num(ctx: Any, v: int | float | None) -> str:
    return number(v, _lang_of(ctx))


@jinja2.pass_context
def _pct(ctx: Any, v: float | None) -> str:
    return percent(v, _lang_of(ctx))


@jinja2.pass_context
def _when(ctx: Any, ts: float | None) -> str:
    return when(ts, _lang_of(ctx))


@jinja2.pass_context
def _day(ctx: Any, d: dt.date | None) -> str:
    return day(d, _lang_of(ctx))


@jinja2.pass_context
def _month(ctx: Any, d: dt.date) -> str:
    return be_month(d, _lang_of(ctx))


@jinja2.pass_context
def _tt(ctx: Any, pair: tuple[str, str] | list[str]) -> str:
    """A (th, en) pair from the model, in the page's language."""
    return t(_lang_of(ctx), pair[0], pair[1])


def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=_num, pct=_pct, when=_when, day=_day, month=_month, tt=_tt)
    return env


def request_lang(request: Request, default: str = "th") -> str:
    """``?lang=`` of this request, else the ``lang`` cookie, else the site's default language."""
    q = request.query_params.get("lang")
    if q in LANGS:
        return q
    c = request.cookies.get(LANG_COOKIE)
    return c if c in LANGS else (default if default in LANGS else "th")


def lang_url(request: Request, lang: str) -> str:
    """This page in the other language (its path and query kept: the filters of a table stay)."""
    url = request.url.include_query_params(lang=lang)
    return f"{url.path}?{url.query}"


class Renderer:
    """``render(request, "page.html", {...})``: a page in the request's language with the common context (the
    user, the CSRF token, the language switch), marked not to be stored by browsers or proxies."""

    def __init__(self, default_lang: str = "th") -> None:
        self.env = environment()
        self.default_lang = default_lang

    def lang(self, request: Request) -> str:
        return request_lang(request, self.default_lang)

    def render(self, request: Request, name: str, ctx: dict[str, Any], status: int = 200) -> HTMLResponse:
        lang = self.lang(request)
        other = "en" if lang == "th" else "th"
        base: dict[str, Any] = {
            "request": request, "lang": lang, "other_lang": other, "other_lang_url": lang_url(request, other),
            "t": lambda th, en: t(lang, th, en), "user": None, "csrf": "", "path": request.url.path,
            "nav": ctx.get("nav", ""),
        }
        base.update(ctx)
        user = base.get("user")
        if user is not None and "role_text" not in base:
            from phrsync.web.auth import ROLE_TEXT

            base["role_text"] = ROLE_TEXT.get(user.role, (user.role, user.role))
        html = self.env.get_template(name).render(base)
        resp = HTMLResponse(html, status_code=status, headers={"Cache-Control": NO_STORE})
        q = request.query_params.get("lang")
        if q in LANGS and request.cookies.get(LANG_COOKIE) != q:
            resp.set_cookie(LANG_COOKIE, q, max_age=365 * 86400, httponly=True, samesite="lax")
        return resp
