"""The configuration of one command: ``phrsync.toml`` checked against :mod:`phrsync.settings`, plus the
environment. Loaded once by the ``phrsync`` group and passed down (``config_from_context``).

Search order for the file: ``--config``, ``$PHRSYNC_CONFIG``, ``./phrsync.toml``. Every setting has a default, so
phrsync runs with no file at all (embedded stores under ``./data``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phrsync.errors import ConfigError
from phrsync.pdpa import mask_url
from phrsync.settings import Environment, Settings, environment, find_config_file, parse, read_toml

__all__ = ["Config", "ConfigError", "config_from_context", "load_config"]


@dataclass
class Config:
    data_dir: Path = Path("data")
    staging_path: Path | None = None  # DuckDB file; default <data_dir>/staging.duckdb
    raw: dict[str, Any] = field(default_factory=dict, repr=False)  # the file as read (validated): may hold secrets
    source: Path | None = None
    parsed: Settings | None = field(default=None, repr=False)  # ``raw`` checked; made from it when not given
    env: Environment = field(default_factory=Environment, repr=False)

    @property
    def settings(self) -> Settings:
        """``raw`` as the typed model (one source of truth: a Config made from a table is checked the same way)."""
        if self.parsed is None:
            self.parsed = parse(self.raw, str(self.source or "phrsync.toml"))
        return self.parsed

    @property
    def staging(self) -> Path:
        return self.staging_path or self.data_dir / "staging.duckdb"

    def section(self, name: str) -> dict[str, Any]:
        """A table as written in the file (already checked): only the keys the file sets."""
        v = self.raw.get(name, {})
        return v if isinstance(v, dict) else {}


def load_config(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> Config:
    """Find, read and check the configuration; a :class:`ConfigError` names the file, section and key."""
    e = environment(env)
    p = find_config_file(path, e)
    raw = read_toml(p) if p else {}
    settings = parse(raw, str(p) if p else "phrsync.toml")
    default_dir = e.DATA or "data"
    if p is None:
        return Config(data_dir=Path(default_dir), parsed=settings, env=e)
    data_dir = Path(raw["data_dir"]) if "data_dir" in raw else Path(default_dir)
    if not data_dir.is_absolute():
        data_dir = p.parent / data_dir
    staging = settings.staging.path
    return Config(data_dir=data_dir, staging_path=(p.parent / staging) if staging else None, raw=raw, source=p,
                  parsed=settings, env=e)


def config_from_context(ctx: Any) -> Config:
    """The configuration the ``phrsync`` group loaded for this invocation (a click context), or the
    default search when a command runs on its own (e.g. under CliRunner without the group)."""
    obj = ctx.find_root().obj
    err = obj.get("config_error") if isinstance(obj, dict) else None
    if err is not None:
        raise err
    cfg = obj.get("config") if isinstance(obj, dict) else None
    return cfg if cfg is not None else load_config(None)


@dataclass(frozen=True)
class Entry:
    """One effective setting: its value as shown (secrets masked) and where it came from."""

    key: str
    value: Any
    source: str
    secret: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value, "source": self.source, "secret": self.secret}


# settings an environment variable sets: (variable, whether it wins over the file)
_ENV_FOR = {
    "data_dir": ("DATA", False), "delivery.target": ("TARGET", True), "delivery.state_url": ("STATE_URL", True),
    "delivery.user": ("PHR_USER", False), "terminology.dir": ("CODES_DIR", True), "sandbox.db_url": ("SANDBOX_DB", True),
    "sandbox.jwt_secret": ("SANDBOX_SECRET", True), "sandbox.password_key": ("SANDBOX_PASSWORD_KEY", True),
}
_SECRET_SETTINGS = {"sandbox.jwt_secret", "sandbox.password_key"}
_URL_SETTINGS = {"delivery.state_url", "sandbox.db_url"}


def _shown(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key in _SECRET_SETTINGS:
        return "***"
    if key in _URL_SETTINGS and isinstance(value, str):
        return mask_url(value)
    return value


def effective(cfg: Config) -> list[Entry]:
    """Every setting and environment variable as this command sees it, secrets masked, each with its source."""
    from pydantic import SecretStr

    from phrsync.settings import Environment, flatten

    file_values = flatten(cfg.raw)
    src_file = f"{cfg.source}" if cfg.source else ""
    out: list[Entry] = []
    model_values = flatten(cfg.settings.model_dump())
    for key, value in model_values.items():
        env_name, env_wins = _ENV_FOR.get(key, (None, False))
        env_value = getattr(cfg.env, env_name) if env_name else None
        if isinstance(env_value, SecretStr):
            env_value = env_value.get_secret_value()
        if env_value and (env_wins or key not in file_values):
            out.append(Entry(key, _shown(key, env_value), f"env PHRSYNC_{env_name}", key in _SECRET_SETTINGS))
        elif key in file_values:
            out.append(Entry(key, _shown(key, file_values[key]), src_file, key in _SECRET_SETTINGS))
        else:
            out.append(Entry(key, _shown(key, value), "ค่าตั้งต้น / default", key in _SECRET_SETTINGS))
    for key in sorted(set(file_values) - set(model_values)):  # per-facility accounts, targets, facility names
        out.append(Entry(key, _shown(key, file_values[key]), src_file))
    for name, field_info in Environment.model_fields.items():
        v = getattr(cfg.env, name)
        if v is None:
            continue
        secret = "SecretStr" in str(field_info.annotation)
        out.append(Entry(f"env PHRSYNC_{name}", "*** (ตั้งไว้ / set)" if secret else v, "environment", secret))
    for name in sorted(os.environ):  # per-facility credentials: PHRSYNC_PHR_PASSWORD_10699 …
        if name.startswith("PHRSYNC_PHR_") and name.rsplit("_", 1)[-1].isdigit():
            out.append(Entry(f"env {name}", "***" if "USER" not in name else os.environ[name], "environment",
                             "USER" not in name))
    out.append(Entry("staging (effective)", str(cfg.staging), "data_dir / [staging] path"))
    return out
