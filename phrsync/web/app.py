"""The monitoring site's FastAPI application: ``create_app(sources, web_settings)``. Views live in
:mod:`phrsync.web.views` split by kind (overview, facilities, facility, runs, phr, auth, export); every
JS/CSS asset is a static file of the package (no CDN)."""

from __future__ import annotations
