"""What every view needs: the sources, the renderer with the user and CSRF token, JSON without caching."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse

from phrsync.web import auth, model
from phrsync.web.render import NO_STORE, Renderer

# the signed-in user of a page, export, chart or action (LoginRequired → the login page), and a province admin
CurrentUser = Annotated[auth.User, Depends(auth.current_user)]
AdminUser = Annotated[auth.User, Depends(auth.require_admin)]


def sources(request: Request) -> model.Sources:
    src: model.Sources = request.app.state.sources
    return src


def lang(request: Request) -> str:
    renderer: Renderer = request.app.state.renderer
    return renderer.lang(request)


def page(request: Request, name: str, user: auth.User, nav: str, **ctx: Any) -> HTMLResponse:
    """A page for ``user``: the common context (user, role, CSRF token for its forms, the active tab)."""
    request.state.user = user
    renderer: Renderer = request.app.state.renderer
    return renderer.render(request, name, {"user": user, "csrf": auth.csrf_token(request), "nav": nav, **ctx})


def json(data: Any) -> JSONResponse:
    return JSONResponse(data, headers={"Cache-Control": NO_STORE})
