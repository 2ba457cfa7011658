"""Where and as whom the agent sends: targets (production, UAT, sandbox) and credentials.

Everything comes from ``[delivery]`` and ``[targets.<name>]`` of phrsync.toml; secrets (passwords, the HMAC
key of ``password_hash``, 1-year facility tokens) come only from environment variables or from files readable
by the service user alone, never from the command line (which any local user can read in ``ps``).

Credentials: one Account Center account per facility (``[delivery.facilities.<HCODE>]``) or one province
account (``[delivery]`` ``user``) used for every facility. A JWT is always requested *for one facility*
(``hospital_code`` in the token request), so a province account sends on behalf of a health centre only if the
Account Center grants that user the centre's code; the agent then holds one JWT per facility.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import re
import socket
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phrsync.config import Config, ConfigError

PRODUCTION = "production"
UAT = "uat"
SANDBOX = "sandbox"

_BUILTIN_TARGETS: dict[str, dict[str, Any]] = {
    PRODUCTION: {"base_url": "https://phr1.moph.go.th",
                 "token_url": "https://cvp1.moph.go.th/token?Action=get_moph_access_token"},
    # UAT's certificate is self-signed: give its certificate as ca_bundle; verification is never switched off.
    UAT: {"base_url": "https://203.150.143.180",
          "token_url": "https://cvp1.moph.go.th/token?Action=get_moph_access_token"},
    SANDBOX: {"base_url": "http://127.0.0.1:8787", "token_url": ""},
}
HCODE_RE = re.compile(r"^\d{5}$")


@dataclass
class Target:
    """One PHR service. Paths are ``/api/<Name>`` on ``base_url``; the JWT comes from ``token_url``."""

    name: str
    base_url: str
    token_url: str = ""
    ca_bundle: str | None = None  # PEM file trusted in addition to nothing else (UAT's self-signed cert)
    timeout: float = 120.0  # seconds per request; the spec's curl waits up to 500 s for big payloads
    concurrency: int = 8  # requests at once to start with, and unpaced while every answer comes back
    max_concurrency: int = 256  # the most in flight as the run sizes it (rate × round trip, waits on timeouts)
    rate_per_minute: int = 110  # uploads per facility per minute (PHR's limit is per facility; default 120)
    max_attempts: int = 8  # per payload per run; then the row is left "failed" for the next run
    backoff_base: float = 0.5
    backoff_max: float = 60.0
    breaker_failures: int = 12  # consecutive transport/5xx failures that open the circuit
    breaker_cooldown: float = 30.0
    give_up_seconds: float = 600.0  # stop the run when nothing succeeded for this long
    status_interval: float = 30.0  # seconds between UpdateAgentStatus calls per facility (PHR needs >= 5)

    def __post_init__(self) -> None:
        if not self.token_url:
            self.token_url = self.base_url.rstrip("/") + "/token?Action=get_moph_access_token"

    @property
    def verify(self) -> bool | str:
        """httpx ``verify``: the CA bundle when given, else the system store; never False."""
        return self.ca_bundle or True


@dataclass
class Credentials:
    """How one facility logs in: an Account Center user (JWT) and/or the 1-year ``HCODE:TOKEN``."""

    user: str = ""
    password_hash: str = ""
    facility_token: str = ""

    def __repr__(self) -> str:  # never show secrets, even in a traceback
        return f"Credentials(user={self.user!r}, password_hash={'***' if self.password_hash else ''!r}, " \
               f"facility_token={'***' if self.facility_token else ''!r})"

    @property
    def has_jwt(self) -> bool:
        return bool(self.user and self.password_hash)


@dataclass
class DeliverySettings:
    target: Target
    state_url: str = field(repr=False)  # a PostgreSQL URL carries its password: kept out of reprs and tracebacks
    default_credentials: Credentials = field(default_factory=Credentials)
    facility_credentials: dict[str, Credentials] = field(default_factory=dict)
    remove_max_fraction: float = 0.2  # reconcile never removes more than this share of a day without --force
    full_check_days: float = 7.0  # ask PHR about every day of the build this often (else only days with news)
    # told to PHR (UpdateAgentStatus, the GetAgentComputerName guard); a run appends its store's installation id
    computer_name: str = field(default_factory=socket.gethostname)
    agent_version: str = ""

    def credentials(self, hcode: str) -> Credentials:
        return self.facility_credentials.get(hcode, self.default_credentials)


def password_hash(password: str, key: str) -> str:
    """``password_hash`` of the Account Center: upper-case hex HMAC-SHA256(key, password) (community-attested)."""
    return hmac.new(key.encode("utf-8"), password.encode("utf-8"), hashlib.sha256).hexdigest().upper()


def read_secret_file(path: str | os.PathLike[str]) -> str:
    """A secret from a file that only its owner may read (refused if group/other can read it)."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except OSError as e:
        raise ConfigError(f"อ่านไฟล์ความลับไม่ได้ / cannot read secret file {p}: {e.strerror}") from e
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"ไฟล์ความลับต้องอ่านได้เฉพาะเจ้าของ (chmod 600) / secret file {p} must be mode 600")
    return p.read_text(encoding="utf-8").strip()


def _secret(env: dict[str, str], names: list[str], sec: dict[str, Any], file_key: str, base: Path) -> str:
    for n in names:
        if env.get(n):
            return env[n].strip()
    f = sec.get(file_key)
    if f:
        fp = Path(f)
        return read_secret_file(fp if fp.is_absolute() else base / fp)
    return ""


def _credentials(sec: dict[str, Any], suffix: str, key: str, env: dict[str, str], base: Path) -> Credentials:
    sfx = f"_{suffix}" if suffix else ""
    user = str(sec.get("user") or env.get(f"PHRSYNC_PHR_USER{sfx}", ""))
    pw_hash = _secret(env, [f"PHRSYNC_PHR_PASSWORD_HASH{sfx}"], sec, "password_hash_file", base)
    if not pw_hash:
        pw = _secret(env, [f"PHRSYNC_PHR_PASSWORD{sfx}"], sec, "password_file", base)
        if pw:
            if not key:
                raise ConfigError("ต้องตั้งคีย์ password_hash (PHRSYNC_PHR_PASSWORD_KEY หรือ password_key_file) "
                                  "/ the password_hash key is not configured")
            pw_hash = password_hash(pw, key)
    token = _secret(env, [f"PHRSYNC_PHR_FACILITY_TOKEN{sfx}"], sec, "facility_token_file", base)
    return Credentials(user=user, password_hash=pw_hash, facility_token=token)


def load_delivery(cfg: Config, target: str | None = None, env: dict[str, str] | None = None) -> DeliverySettings:
    """Settings for one run: the chosen target (``--target`` > ``[delivery].target`` > sandbox)."""
    env = dict(os.environ) if env is None else env
    dsec = cfg.section("delivery")
    base = cfg.source.parent if cfg.source else Path.cwd()
    name = target or target_name(cfg, env)
    typed = cfg.settings  # types, unknown keys and "no disabling TLS" were checked when the file was read
    tsec = typed.targets.get(name)
    if name not in _BUILTIN_TARGETS and tsec is None:
        raise ConfigError(f"ไม่รู้จักปลายทาง / unknown target: {name}")
    values: dict[str, Any] = {**_BUILTIN_TARGETS.get(name, {}),
                              **(tsec.model_dump(exclude_none=True) if tsec is not None else {})}
    if not values.get("base_url"):
        raise ConfigError(f"ปลายทาง {name} ไม่มี base_url / target {name} has no base_url")
    if values.get("ca_bundle"):
        ca = Path(values["ca_bundle"])
        values["ca_bundle"] = str(ca if ca.is_absolute() else base / ca)
        if not Path(values["ca_bundle"]).is_file():
            raise ConfigError(f"ไม่พบไฟล์ ca_bundle ของ [targets.{name}] / ca_bundle file not found: "
                              f"{values['ca_bundle']}")
    tgt = Target(name=name, **values)
    key = _secret(env, ["PHRSYNC_PHR_PASSWORD_KEY"], dsec, "password_key_file", base)
    default = _credentials(dsec, "", key, env, base)
    per: dict[str, Credentials] = {}
    for hcode, account in typed.delivery.facilities.items():
        per[hcode] = _credentials(account.model_dump(exclude_none=True), hcode, key, env, base)
    from phrsync import __version__

    return DeliverySettings(
        target=tgt, state_url=resolve_state_url(cfg, env), default_credentials=default, facility_credentials=per,
        remove_max_fraction=typed.delivery.remove_max_fraction,
        full_check_days=typed.delivery.full_check_days,
        computer_name=base_computer_name(cfg),
        agent_version=f"phrsync {__version__}",
    )


def target_name(cfg: Config, env: dict[str, str] | None = None) -> str:
    """The target a run sends to without ``--target``: ``PHRSYNC_TARGET`` > ``[delivery].target`` > sandbox."""
    env = dict(os.environ) if env is None else env
    return env.get("PHRSYNC_TARGET") or str(cfg.section("delivery").get("target", SANDBOX))


def resolve_state_url(cfg: Config, env: dict[str, str] | None = None) -> str:
    """The state store: ``PHRSYNC_STATE_URL`` > ``[delivery].state_url`` > ``[delivery].state_path`` (from the
    configuration file's folder) > ``<data_dir>/delivery/outbox.sqlite``. Needs no credentials: what the web
    (which only reads the store) and a run resolve alike."""
    env = dict(os.environ) if env is None else env
    dsec = cfg.section("delivery")
    state = env.get("PHRSYNC_STATE_URL") or dsec.get("state_url")
    if not state:
        path = Path(dsec.get("state_path", cfg.data_dir / "delivery" / "outbox.sqlite"))
        if not path.is_absolute() and cfg.source and "state_path" in dsec:
            path = cfg.source.parent / path
        state = f"sqlite:///{path.resolve()}"
    return str(state)


def base_computer_name(cfg: Config) -> str:
    """The computer name told to PHR before the store's installation id: ``[delivery].computer_name`` or the
    host name."""
    return str(cfg.section("delivery").get("computer_name") or socket.gethostname())


def state_url(value: str | os.PathLike[str]) -> str:
    """A state store given as a database URL (``postgresql+psycopg://…``, ``sqlite:///…``) or a SQLite path."""
    s = str(value)
    return s if "://" in s else f"sqlite:///{Path(s).expanduser().resolve()}"


def with_state(settings: DeliverySettings, value: str | os.PathLike[str] | None) -> DeliverySettings:
    """``settings`` on another state store (``--state``); the one-agent lease lives in the store itself."""
    if not value:
        return settings
    return dataclasses.replace(settings, state_url=state_url(value))


def default_input(cfg: Config) -> Path:
    """``[delivery].input``, else ``<data_dir>/payloads.ndjson``; a relative path is taken from the configuration
    file's folder, as ``data_dir`` and ``ca_bundle`` are (not from wherever the command happens to run, e.g.
    systemd's ``/``)."""
    p = Path(cfg.section("delivery").get("input", cfg.data_dir / "payloads.ndjson"))
    return p if p.is_absolute() or cfg.source is None else cfg.source.parent / p
