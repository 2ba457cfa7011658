"""Serving the monitoring site: the library behind ``phrsync web`` (and ``phrsync demo --serve``). The site
reads what :meth:`phrsync.web.model.Sources.from_config` names and keeps its accounts in the same state store;
uvicorn runs it with the ``[web]`` limits of :mod:`phrsync.httpserver` (client deadlines, connection cap)."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from phrsync import httpserver
from phrsync.did.kpi import Targets
from phrsync.errors import UsageError
from phrsync.pdpa import mask_url
from phrsync.web import auth, model
from phrsync.web.actions import DeliveryFactory
from phrsync.web.app import WebOptions, create_app

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080


@dataclass(frozen=True)
class ServeInfo:
    """Where the site answers and what it reads (the state store's URL without its password)."""

    url: str
    state: str
    staging: str | None
    build_file: str | None
    sandbox: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "state": self.state, "staging": self.staging, "build_file": self.build_file,
                "sandbox": self.sandbox}

    def text(self) -> str:
        return (f"เว็บติดตามการส่งข้อมูล / monitoring web: {self.url}  (Ctrl-C หยุด / to stop)\n"
                f"ฐานข้อมูลสถานะ / state store: {self.state}")


def limits(web: Any) -> httpserver.HttpLimits:
    """``[web]`` header/body timeouts and connection cap (unset keys keep the defaults)."""
    d = httpserver.HttpLimits()
    return httpserver.HttpLimits(header_timeout=web.header_timeout_seconds or d.header_timeout,
                                 body_timeout=web.body_timeout_seconds or d.body_timeout,
                                 max_connections=web.max_connections or d.max_connections)


def delivery_for(cfg: Any, state_url: str) -> DeliveryFactory:
    """The "send again" action's delivery settings: phrsync.toml's target and accounts, on the web's state
    store — read when the button is pressed, so a secret set after start-up is seen and a missing one is an
    error on the page, not a site that does not start."""
    def load() -> Any:
        from phrsync.delivery.config import load_delivery, with_state

        return with_state(load_delivery(cfg), state_url)

    return load


def build_app(cfg: Any, *, sources: model.Sources | None = None,
              delivery: DeliveryFactory | None = None) -> FastAPI:
    """The site for a :class:`phrsync.config.Config`."""
    src = sources or model.Sources.from_config(cfg)
    options = WebOptions.from_settings(cfg.settings.web)
    options = dataclasses.replace(options, did_targets=Targets.from_settings(cfg.settings.did))
    store = auth.AuthStore(src.state_url, login_attempts=options.login_attempts)
    return create_app(src, options, store, delivery=delivery or delivery_for(cfg, src.state_url))


def address(cfg: Any, host: str | None, port: int | None) -> tuple[str, int]:
    web = cfg.settings.web
    return host or web.host or DEFAULT_HOST, port or web.port or DEFAULT_PORT


def info(app: FastAPI, host: str, port: int) -> ServeInfo:
    src: model.Sources = app.state.sources
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return ServeInfo(url=f"http://{shown}:{port}/", state=mask_url(src.state_url),
                     staging=str(src.staging) if src.staging else None,
                     build_file=str(src.build_file) if src.build_file else None,
                     sandbox=str(src.sandbox_data_dir) if src.sandbox_data_dir else None)


def _check_free(host: str, port: int) -> None:
    """A clear bilingual error for a port in use or an address not of this machine, before anything starts
    (uvicorn would log it in English and exit)."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as e:
        raise UsageError(f"เปิดรับที่ {host}:{port} ไม่ได้ ({e.strerror}) ใช้ --port อื่น หรือหยุดโปรแกรมที่ใช้พอร์ตนี้",
                         f"cannot listen on {host}:{port} ({e.strerror}): use another --port, or stop what uses "
                         f"it") from None


def _options(log_level: str) -> dict[str, Any]:
    # no access log: a query string may carry a search typed by a user; lifespan off: the app has none
    return {"log_level": log_level, "access_log": False, "lifespan": "off", "timeout_graceful_shutdown": 5}


def serve(cfg: Any, host: str | None = None, port: int | None = None, *, app: FastAPI | None = None,
          on_start: Callable[[ServeInfo], None] | None = None, log_level: str = "warning") -> None:
    """Serve in the foreground until Ctrl-C; ``on_start(info)`` once the address is known (the CLI prints it)."""
    h, p = address(cfg, host, port)
    _check_free(h, p)
    app = app or build_app(cfg)
    if on_start is not None:
        on_start(info(app, h, p))
    httpserver.run(app, limits(cfg.settings.web), host=h, port=p, **_options(log_level))


class WebThread:
    """The site on 127.0.0.1:<free port> in a daemon thread (tests, the demo's web beside its sandbox)."""

    def __init__(self, app: FastAPI, web: Any | None = None, host: str = "127.0.0.1") -> None:
        import uvicorn

        self.app = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]
        lim = limits(web) if web is not None else httpserver.HttpLimits()
        self.server = uvicorn.Server(httpserver.config(app, lim, host=host, port=self.port, **_options("warning")))
        self.base_url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, name="web-http",
                                        daemon=True)

    def start(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("เว็บไม่เริ่มทำงาน / the web server did not start")
            time.sleep(0.01)
        return self.base_url

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)
        self.sock.close()


@contextlib.contextmanager
def running(app: FastAPI, web: Any | None = None) -> Iterator[WebThread]:
    """``with running(app) as w: httpx.get(w.base_url + "/login")``."""
    w = WebThread(app, web)
    try:
        w.start()
        yield w
    finally:
        w.stop()
