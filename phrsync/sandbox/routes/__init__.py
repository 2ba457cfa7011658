"""The sandbox's HTTP routes, one router per area; ``ROUTERS`` is what ``build_api`` includes, in this order."""

from __future__ import annotations

from phrsync.sandbox.routes import agent, dashboard, queries, token, uploads, webapp

ROUTERS = (token.router, uploads.router, queries.router, agent.router, webapp.router, dashboard.router)
