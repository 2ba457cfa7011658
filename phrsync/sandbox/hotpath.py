"""A shortcut past FastAPI's per-request machinery for the routes that carry the load, POST /api/UpdatePHRv1 and
POST /idp/api/check_ekyc (``did check`` makes one call per person): the same dependency (the bearer check), the
same endpoint function and the same exception handlers (:data:`phrsync.sandbox.handlers.HANDLERS`), without the
middleware stack, route matching and dependency solving around them. Every other request goes to FastAPI.

Kept because ``benchmarks/sandbox_bench.py`` shows it is needed for the goal of ≥ 1,000 payloads/s: measured
alternately on the shared 2-core machine (2 workers, load average 4–6), UpdatePHRv1 all through FastAPI gave
780–1,340 payloads/s at 550–800 µs server CPU per payload; with this shortcut 1,930–1,940 payloads/s at
380–470 µs (at load 1.3: 1,470–1,780 against 2,370–3,290 payloads/s). In one process FastAPI's layers cost ~60 µs per request (31 µs here, 90 µs through FastAPI, for a
refused upload)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from phrsync.sandbox import handlers

Endpoint = Callable[..., Awaitable[Any]]


def _plan(route: APIRoute) -> tuple[Endpoint, Endpoint, str, str]:
    """(endpoint, dependency, its parameter name, the request's parameter name) of a route that takes only
    the request and one dependency on the request; anything else would be skipped here, so it is refused."""
    d = route.dependant
    subs = d.dependencies
    params = (d.path_params, d.query_params, d.header_params, d.cookie_params, d.body_params)
    ok = len(subs) == 1 and d.request_param_name and not any(params) and subs[0].call is not None \
        and subs[0].name and not subs[0].dependencies and subs[0].request_param_name \
        and not any((subs[0].path_params, subs[0].query_params, subs[0].header_params, subs[0].cookie_params,
                     subs[0].body_params))
    if not ok:
        raise RuntimeError(f"{route.path} takes more than the request and one dependency: no shortcut")
    return route.endpoint, subs[0].call, str(subs[0].name), str(d.request_param_name)  # type: ignore[return-value]


class HotPath:
    """ASGI app: the shortcut for ``routes``, FastAPI (``api``) for everything else."""

    def __init__(self, api: FastAPI, routes: Iterable[APIRoute]) -> None:
        self.api = api
        self._routes: dict[tuple[str, str], tuple[Endpoint, Endpoint, str, str]] = {
            (method, r.path): _plan(r) for r in routes for method in r.methods or ()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hit = self._routes.get((scope.get("method", ""), scope.get("path", ""))) if scope["type"] == "http" else None
        if hit is None:
            await self.api(scope, receive, send)
            return
        endpoint, dependency, dep_name, request_name = hit
        scope["app"] = self.api
        request = Request(scope, receive)
        try:
            response = await endpoint(**{request_name: request, dep_name: await dependency(request)})
        except Exception as exc:
            response = await handlers.handler_for(exc)(request, exc)
        await response(scope, receive, send)
