"""Sandbox settings: one dataclass built from ``phrsync.toml`` ``[sandbox]`` plus command-line overrides.

Secrets (JWT signing secret, password-hash key) are never shipped: when not configured they are generated
once and kept in the data directory with owner-only permissions, so tokens stay valid across restarts.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from phrsync.config import Config
from phrsync.httpserver import HttpLimits
from phrsync.sandbox.ekyc import SAKAEO_DEFAULT, SAKAEO_PERSONNEL, SAKAEO_SHARES
from phrsync.settings import environment


@dataclass
class FaultConfig:
    """Probabilities (0..1) of each injected fault on /api/* routes; drawn from one seeded RNG."""

    p500: float = 0.0
    p502: float = 0.0
    p503: float = 0.0
    p429: float = 0.0
    retry_after: int = 1
    p_timeout: float = 0.0
    timeout_seconds: float = 30.0  # how long a "timeout" fault sleeps; set above the client's timeout
    p_drop: float = 0.0
    latency_ms: float = 0.0
    seed: int | None = None

    @property
    def active(self) -> bool:
        return any(p > 0 for p in (self.p500, self.p502, self.p503, self.p429, self.p_timeout, self.p_drop)) or (
            self.latency_ms > 0
        )


@dataclass
class SandboxConfig:
    data_dir: Path = Path("data/sandbox")
    # secrets (and a database URL's password) stay out of repr(): it ends up in tracebacks and test reports
    db_url: str | None = field(default=None, repr=False)  # default: SQLite file <data_dir>/sandbox.sqlite
    jwt_secret: bytes | None = field(default=None, repr=False)
    password_key: str | None = field(default=None, repr=False)
    jwt_ttl_seconds: int = 8 * 3600
    expired_status: int = 401  # 501 imitates the production quirk some clients expect
    rate_limit_per_minute: int = 120  # uploads per facility per minute; 0 = unlimited
    agent_status_interval: float = 5.0
    max_body_bytes: int = 20 * 1024 * 1024
    large_body_bytes: int = 1024 * 1024  # a body above this takes one of max_large_bodies slots
    max_large_bodies: int = 4  # large bodies read at once; the next is answered 503 + Retry-After (0 = no bound)
    lockout_failures: int = 5
    lockout_seconds: int = 15 * 60
    facility_token_days: int = 365
    commit_batch_max: int = 256  # most writes grouped into one transaction (group commit)
    commit_delay_ms: float = 1.0  # wait this long for more writes to join a transaction (0 = never wait)
    sqlite_synchronous: str = "FULL"  # FULL: an acknowledged write survives power loss
    access_log: bool = False  # one line per request, CIDs masked (logger phrsync.sandbox.access)
    header_timeout_seconds: float = HttpLimits.header_timeout  # a client's headers, then 408 and closed
    body_timeout_seconds: float = HttpLimits.body_timeout  # a client's whole body, then 408 and closed
    max_connections: int = HttpLimits.max_connections  # open connections; the next is answered 503
    ekyc_rate_limit_per_minute: int = 6000  # check_ekyc calls per account a minute; 0 = unlimited
    did_shares: dict[str, float] = field(default_factory=lambda: dict(SAKAEO_SHARES))  # per DOPA district
    did_default_share: float = SAKAEO_DEFAULT
    did_personnel_share: float = SAKAEO_PERSONNEL  # health personnel in the IdP register
    did_seed: int = 0
    endpoint_ip: str = "127.0.0.1"
    endpoint_port: int = 0
    faults: FaultConfig = field(default_factory=FaultConfig)
    clock: Callable[[], float] = time.time

    @property
    def url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{(Path(self.data_dir) / 'sandbox.sqlite').resolve()}"

    def limits(self) -> HttpLimits:
        """What the HTTP server waits for and how many connections it keeps (:mod:`phrsync.httpserver`)."""
        return HttpLimits(header_timeout=self.header_timeout_seconds, body_timeout=self.body_timeout_seconds,
                          max_connections=self.max_connections)

    def secret(self) -> bytes:
        """JWT signing secret: configured, else generated once and kept in the data dir."""
        if self.jwt_secret is None:
            self.jwt_secret = _persistent_secret(Path(self.data_dir) / "jwt_secret").encode()
        return self.jwt_secret

    def hash_key(self) -> str:
        """Key for ``password_hash`` (HMAC-SHA256): configured, else generated once and kept in the data dir."""
        if self.password_key is None:
            self.password_key = _persistent_secret(Path(self.data_dir) / "password_key")
        return self.password_key


def _persistent_secret(path: Path) -> str:
    """A secret generated once and kept in a 0600 file. Safe when several threads or workers start at
    once: the file appears atomically (link of a complete temporary file), and a loser reads the winner's."""
    for _ in range(100):
        if path.is_file():
            value = path.read_text(encoding="ascii").strip()
            if value:
                return value
            time.sleep(0.01)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_hex(32)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(value + "\n")
        try:
            os.link(tmp, path)
            return value
        except FileExistsError:
            continue  # another thread or worker won: read its secret
        finally:
            tmp.unlink(missing_ok=True)
    raise RuntimeError(f"cannot create or read {path}")


def from_config(cfg: Config | None = None, **overrides: Any) -> SandboxConfig:
    """Build settings from ``[sandbox]`` of phrsync.toml and environment, then apply non-None overrides."""
    sec = cfg.section("sandbox") if cfg else {}
    data_dir = Path(sec.get("data_dir", (cfg.data_dir if cfg else Path("data")) / "sandbox"))
    if cfg and cfg.source and not data_dir.is_absolute():
        data_dir = cfg.source.parent / data_dir
    sc = SandboxConfig(data_dir=data_dir)
    env = cfg.env if cfg else environment()  # the environment wins over the file for these three

    def secret(v: SecretStr | None) -> str | None:
        return v.get_secret_value() if v else None

    sc.db_url = secret(env.SANDBOX_DB) or sec.get("db_url")
    jwt_secret = secret(env.SANDBOX_SECRET) or sec.get("jwt_secret")
    sc.jwt_secret = jwt_secret.encode() if jwt_secret else None
    sc.password_key = secret(env.SANDBOX_PASSWORD_KEY) or sec.get("password_key")
    for name in ("jwt_ttl_seconds", "expired_status", "rate_limit_per_minute", "max_body_bytes",
                 "large_body_bytes", "max_large_bodies", "lockout_failures", "lockout_seconds", "facility_token_days",
                 "commit_batch_max", "max_connections", "ekyc_rate_limit_per_minute", "did_seed"):
        if name in sec:
            setattr(sc, name, int(sec[name]))
    for name in ("commit_delay_ms", "header_timeout_seconds", "body_timeout_seconds"):
        if name in sec:
            setattr(sc, name, float(sec[name]))
    if "agent_status_interval" in sec:
        sc.agent_status_interval = float(sec["agent_status_interval"])
    if "did_shares" in sec:
        sc.did_shares = {str(k): float(v) for k, v in sec["did_shares"].items()}
    if "did_default_share" in sec:
        sc.did_default_share = float(sec["did_default_share"])
    if "did_personnel_share" in sec:
        sc.did_personnel_share = float(sec["did_personnel_share"])
    if "sqlite_synchronous" in sec:
        sc.sqlite_synchronous = str(sec["sqlite_synchronous"]).upper()
    for k, v in overrides.items():
        if v is None:
            continue
        if k == "data_dir":
            v = Path(v)
        setattr(sc, k, v)
    return sc
