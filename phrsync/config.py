"""One place for configuration: ``phrsync.toml`` plus environment variables for secrets.

Search order for the file: ``--config``, ``$PHRSYNC_CONFIG``, ``./phrsync.toml``. Every setting has
a default so phrsync runs with no file at all (embedded stores under ``./data``).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration problem the user must fix (exit code 2); the message names the file or setting."""


@dataclass
class Config:
    data_dir: Path = Path("data")
    staging_path: Path | None = None  # DuckDB file; default <data_dir>/staging.duckdb
    raw: dict[str, Any] = field(default_factory=dict, repr=False)  # may hold a state_url or sandbox key
    source: Path | None = None

    @property
    def staging(self) -> Path:
        return self.staging_path or self.data_dir / "staging.duckdb"

    def section(self, name: str) -> dict[str, Any]:
        v = self.raw.get(name, {})
        return v if isinstance(v, dict) else {}


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    candidates = [path, os.environ.get("PHRSYNC_CONFIG"), "phrsync.toml"]
    for c in candidates:
        if c and Path(c).is_file():
            p = Path(c)
            try:
                with p.open("rb") as fh:
                    raw = tomllib.load(fh)
            except tomllib.TOMLDecodeError as e:
                raise ConfigError(f"ไฟล์ตั้งค่าผิดรูปแบบ TOML / invalid TOML in {p}: {e}") from None
            except OSError as e:
                raise ConfigError(f"อ่านไฟล์ตั้งค่าไม่ได้ / cannot read configuration file {p}: {e.strerror}") from None
            base = p.parent
            data_dir = Path(raw.get("data_dir", os.environ.get("PHRSYNC_DATA", "data")))
            if not data_dir.is_absolute():
                data_dir = base / data_dir
            staging = raw.get("staging", {}).get("path")
            return Config(
                data_dir=data_dir,
                staging_path=(base / staging) if staging else None,
                raw=raw,
                source=p,
            )
        if c and c == path:
            raise ConfigError(f"ไม่พบไฟล์ตั้งค่า / configuration file not found: {c}")
    return Config(data_dir=Path(os.environ.get("PHRSYNC_DATA", "data")))


def config_from_context(ctx: Any) -> Config:
    """The configuration the ``phrsync`` group loaded for this invocation (a click context), or the
    default search when a command runs on its own (e.g. under CliRunner without the group)."""
    obj = ctx.find_root().obj
    err = obj.get("config_error") if isinstance(obj, dict) else None
    if err is not None:  # a broken phrsync.toml: name the file and line, exit 2 instead of a traceback
        import click

        raise click.UsageError(str(err))
    cfg = obj.get("config") if isinstance(obj, dict) else None
    return cfg if cfg is not None else load_config(None)
