"""Running the sandbox: in the foreground (``phrsync sandbox serve``) or in a background thread on a free
loopback port (tests, demos): ``with run_in_thread(cfg) as base_url: ...``."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn

from phrsync import httpserver
from phrsync.sandbox import auth, faults, jwt
from phrsync.sandbox.app import Sandbox
from phrsync.sandbox.settings import FaultConfig, SandboxConfig
from phrsync.sandbox.store import Store

Tls = tuple[str, str]  # (certificate chain PEM, private key PEM)


def _tls_options(tls: Tls | None) -> dict[str, Any]:
    """HTTPS like PHR itself (and UAT's self-signed certificate): rehearse an agent's ``ca_bundle`` locally."""
    return {"ssl_certfile": tls[0], "ssl_keyfile": tls[1]} if tls else {}


def _uvicorn_options(log_level: str, tls: Tls | None) -> dict[str, Any]:
    # access_log off: query strings (WebApp ?cid=) would put full citizen IDs in the log
    return {"log_level": log_level, "access_log": False, "lifespan": "off", "timeout_graceful_shutdown": 2,
            "backlog": 2048, **_tls_options(tls)}


def _uvicorn_config(sbx: Sandbox, host: str, port: int, log_level: str, tls: Tls | None = None) -> uvicorn.Config:
    """uvicorn with the sandbox's client deadlines and connection cap (:mod:`phrsync.httpserver`)."""
    return httpserver.config(sbx.asgi, sbx.cfg.limits(), host=host, port=port, **_uvicorn_options(log_level, tls))


class SandboxThread:
    """A live server on 127.0.0.1:<free port>; ``sandbox`` exposes storage and fault history to tests."""

    def __init__(self, cfg: SandboxConfig, validator: Any | None = None, host: str = "127.0.0.1",
                 tls: Tls | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]
        cfg.endpoint_port = cfg.endpoint_port or self.port
        self.sandbox = Sandbox(cfg, validator=validator)
        self.server = uvicorn.Server(_uvicorn_config(self.sandbox, host, self.port, "warning", tls))
        self.base_url = f"{'https' if tls else 'http'}://{host}:{self.port}"
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                        name="sandbox-http", daemon=True)

    def add_user(self, user: str, hospital_code: str, password: str) -> str:
        """Create an account; returns the ``password_hash`` a client must send for it."""
        auth.add_user(self.sandbox.store, self.sandbox.cfg, user, hospital_code, password)
        return jwt.password_hash(password, self.sandbox.cfg.hash_key())

    def seed_register(self, kind: str, people: Any) -> Any:
        """Seed the IdP register with (CID, district) pairs (:func:`phrsync.sandbox.ekyc.seed_register`)."""
        from phrsync.sandbox import ekyc

        return ekyc.seed_register(self.sandbox.store, self.sandbox.cfg, kind, people)

    def issue_facility_token(self, hospital_code: str) -> str:
        """A fresh 1-year ``HCODE:TOKEN`` (revokes the previous one)."""
        return auth.issue_facility_token(self.sandbox.store, self.sandbox.cfg, hospital_code)[0]

    def start(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("เซิร์ฟเวอร์ทดสอบไม่เริ่มทำงาน / sandbox server did not start")
            time.sleep(0.01)
        return self.base_url

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)
        self.sock.close()
        self.sandbox.close()


@contextlib.contextmanager
def run_in_thread(cfg: SandboxConfig, validator: Any | None = None, tls: Tls | None = None) -> Iterator[str]:
    """Start the sandbox in a daemon thread; yields its base URL and stops it (storage closed) on exit."""
    st = SandboxThread(cfg, validator, tls=tls)
    try:
        yield st.start()
    finally:
        st.stop()


@contextlib.contextmanager
def running(cfg: SandboxConfig, validator: Any | None = None, tls: Tls | None = None) -> Iterator[SandboxThread]:
    """Like :func:`run_in_thread` but yields the :class:`SandboxThread` (base_url, sandbox, port)."""
    st = SandboxThread(cfg, validator, tls=tls)
    try:
        st.start()
        yield st
    finally:
        st.stop()


_WORKER_ENV = "PHRSYNC_SANDBOX_WORKER_CONFIG"


def _to_env(cfg: SandboxConfig) -> str:
    d = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("clock", "faults", "jwt_secret")}
    d["data_dir"] = str(cfg.data_dir)
    d["jwt_secret"] = cfg.secret().decode("latin-1")
    d["password_key"] = cfg.hash_key()
    d["faults"] = dataclasses.asdict(cfg.faults)
    return json.dumps(d)


def worker_app() -> Any:
    """uvicorn factory for ``--workers N``: each worker process rebuilds the sandbox from the environment."""
    d = json.loads(os.environ[_WORKER_ENV])
    faults = FaultConfig(**d.pop("faults"))
    secret = d.pop("jwt_secret").encode("latin-1")
    cfg = SandboxConfig(**{**d, "data_dir": Path(d["data_dir"])}, faults=faults, jwt_secret=secret)
    sys.setswitchinterval(0.0005)
    if cfg.access_log:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return Sandbox(cfg).asgi


@dataclasses.dataclass(frozen=True)
class ServeInfo:
    """Where a foreground server answers and what it serves from (a database URL without its password)."""

    url: str
    dashboard: str
    storage: str
    faults: dict[str, Any]
    workers: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def text(self) -> str:
        return f"เซิร์ฟเวอร์ทดสอบ MOPH-PHR / sandbox: {self.url}  แดชบอร์ด / dashboard: {self.dashboard}\n" \
               f"ที่เก็บข้อมูล / storage: {self.storage}"


def serve_info(cfg: SandboxConfig, host: str = "127.0.0.1", port: int = 8787, workers: int = 1,
               tls: Tls | None = None) -> ServeInfo:
    """What :func:`serve` will listen on, for the start-up line."""
    url = f"{'https' if tls else 'http'}://{host}:{port}"
    storage = cfg.url.split("@")[-1] if "@" in cfg.url else cfg.url  # user:password@ never printed
    return ServeInfo(url, f"{url}/dashboard", storage, dataclasses.asdict(cfg.faults), max(1, workers))


def serve(cfg: SandboxConfig, host: str = "127.0.0.1", port: int = 8787, log_level: str = "info",
          workers: int = 1, tls: Tls | None = None, on_start: Callable[[ServeInfo], None] | None = None) -> None:
    """Foreground server until Ctrl-C. One process is enough for correctness (group commit, one writer);
    ``workers`` > 1 forks uvicorn workers sharing the database for throughput (faults then are per-worker
    sequences). ``on_start`` gets the :class:`ServeInfo` once the settings are checked, before listening;
    impossible fault probabilities are a :class:`~phrsync.errors.UsageError`."""
    faults.check(cfg.faults)
    workers = max(1, workers)
    if on_start is not None:
        on_start(serve_info(cfg, host, port, workers, tls))
    cfg.endpoint_port = cfg.endpoint_port or port
    if cfg.access_log:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # The event loop and the writer thread hand the GIL back and forth around every fsync, zlib and socket
    # call; the default 5 ms switch interval turns each hand-off into a stall (convoy effect).
    sys.setswitchinterval(0.0005)
    if workers > 1:
        Store(cfg.url, cfg.commit_batch_max, cfg.sqlite_synchronous).close()  # create the schema once
        os.environ[_WORKER_ENV] = _to_env(cfg)
        httpserver.run("phrsync.sandbox.server:worker_app", cfg.limits(), factory=True, host=host, port=port,
                       workers=workers, **_uvicorn_options(log_level, tls))
        return
    sbx = Sandbox(cfg)
    try:
        uvicorn.Server(_uvicorn_config(sbx, host, port, log_level, tls)).run()
    finally:
        sbx.close()
