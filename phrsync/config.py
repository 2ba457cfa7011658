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


@dataclass
class Config:
    data_dir: Path = Path("data")
    staging_path: Path | None = None  # DuckDB file; default <data_dir>/staging.duckdb
    raw: dict[str, Any] = field(default_factory=dict)
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
            with p.open("rb") as fh:
                raw = tomllib.load(fh)
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
            raise FileNotFoundError(f"ไม่พบไฟล์ตั้งค่า / configuration file not found: {c}")
    return Config(data_dir=Path(os.environ.get("PHRSYNC_DATA", "data")))


def config_from_context(ctx: Any) -> Config:
    """The configuration the ``phrsync`` group loaded for this invocation (a click context), or the
    default search when a command runs on its own (e.g. under CliRunner without the group)."""
    obj = ctx.find_root().obj
    cfg = obj.get("config") if isinstance(obj, dict) else None
    return cfg if cfg is not None else load_config(None)
