"""How the web reads phrsync's stores: briefly, read-only, through their library APIs, and never so that a page
waits for (or breaks) an import or a run.

- **Staging** (DuckDB): opened read-only for the few milliseconds of reading its summary tables, then closed (a
  DuckDB file has one writer *or* readers: an import that starts meanwhile waits that long, see
  :class:`phrsync.f43.staging.Staging`). What was read is kept until the file changes. While an import holds the
  file, the figures last read are given with a note saying so; a broken or missing store gives None and a note.
- **State store** (SQLite or PostgreSQL): one long-lived :class:`~phrsync.delivery.outbox.Outbox` per URL (its
  engine and pool), queried for the small aggregate tables only. A SQLite store that does not exist yet is not
  created: nothing was sent, and the figures are None.
- **Build summary**: :func:`phrsync.phr.buildfile.read_summary`, kept until the file changes.
- **Sandbox** (testing): its store, through its engine, for the PHR-centre view.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import duckdb
from sqlalchemy.exc import SQLAlchemyError

from phrsync.delivery import outbox as ob
from phrsync.f43 import read as f43read
from phrsync.f43.staging import Staging, StagingError
from phrsync.pdpa import mask_text
from phrsync.phr import buildfile
from phrsync.thai import thai_datetime

Note = tuple[str, str]
T = TypeVar("T")
_lock = threading.Lock()


@dataclass
class StagingFigures:
    """What the staging store said, as of ``read_at``."""

    read_at: float
    days: dict[str, list[tuple[dt.date, int]]] = field(default_factory=dict)  # per facility, in day order
    totals: dict[str, tuple[int, dt.date | None]] = field(default_factory=dict)  # (encounters, last day)
    province: dict[dt.date, int] = field(default_factory=dict)  # encounters per day over every facility
    quarantined: dict[str, int] = field(default_factory=dict)
    quarantine: dict[str, list[f43read.QuarantineGroup]] = field(default_factory=dict)

    def between(self, hospcode: str, first: dt.date, last: dt.date) -> int:
        """The facility's encounters from ``first`` to ``last`` (inclusive)."""
        return sum(n for d, n in self.days.get(hospcode, ()) if first <= d <= last)


_staging_cache: dict[str, tuple[tuple[Any, ...], StagingFigures]] = {}


def _file_key(path: Path) -> tuple[Any, ...]:
    """What tells one version of a DuckDB file from the next: the file and its write-ahead log."""
    st = path.stat()
    wal = path.with_name(path.name + ".wal")
    w = wal.stat() if wal.exists() else None
    return st.st_mtime_ns, st.st_size, (w.st_mtime_ns, w.st_size) if w else None


def _read_staging(path: Path) -> StagingFigures:
    out = StagingFigures(read_at=time.time())
    with Staging(path, read_only=True, lock_wait=0) as st:
        counts = f43read.encounter_day_totals(st)
        out.quarantined = f43read.quarantine_counts(st)
        groups = f43read.quarantine_groups(st, (), 3)
    for c in counts:
        out.days.setdefault(c.hospcode, []).append((c.day, c.total))
        out.province[c.day] = out.province.get(c.day, 0) + c.total
    for h, days in out.days.items():
        out.totals[h] = (sum(n for _d, n in days), days[-1][0] if days else None)
    for g in groups:
        out.quarantine.setdefault(g.hospcode, []).append(g)
    for gs in out.quarantine.values():
        gs.sort(key=lambda g: (-g.count, g.file, g.rule))
    return out


def staging(path: Path | None) -> tuple[StagingFigures | None, list[Note]]:
    """The staging store's figures and what to say about them: None with a note when there is no store, it is
    broken, or an import holds it and nothing was read before; the figures last read, with a note, while an
    import holds it."""
    if path is None:
        return None, [("ไม่ได้ตั้งที่พักข้อมูล (staging): ยังไม่ทราบจำนวนใน HIS",
                       "no staging store configured: the HIS figures are not known")]
    key_path = str(path)
    if not path.exists():
        return None, [(f"ยังไม่มีที่พักข้อมูล {path} (ยังไม่เคยนำเข้า): ยังไม่ทราบจำนวนใน HIS",
                       f"no staging store {path} yet (nothing imported): the HIS figures are not known")]
    try:
        key = _file_key(path)
    except OSError as e:
        return None, [(f"อ่านที่พักข้อมูลไม่ได้: {e.strerror}", f"cannot read the staging store: {e.strerror}")]
    with _lock:
        hit = _staging_cache.get(key_path)
    if hit is not None and hit[0] == key:
        return hit[1], []
    try:
        figures = _read_staging(path)
    except StagingError as e:
        if e.locked:
            if hit is not None:
                when = thai_datetime(hit[1].read_at)
                return hit[1], [(f"กำลังนำเข้าข้อมูล ตัวเลขจาก HIS เป็นของเมื่อ {when}",
                                 f"an import is running: the HIS figures are as of {when}")]
            return None, [("กำลังนำเข้าข้อมูล ยังอ่านตัวเลขจาก HIS ไม่ได้ ลองใหม่เมื่อนำเข้าเสร็จ",
                           "an import is running: the HIS figures can be read once it is done")]
        return _unavailable(hit, e)
    except duckdb.Error as e:
        return _unavailable(hit, e)
    with _lock:
        _staging_cache[key_path] = (key, figures)
    return figures, []


def _unavailable(hit: tuple[tuple[Any, ...], StagingFigures] | None,
                 e: BaseException) -> tuple[StagingFigures | None, list[Note]]:
    why = mask_text(str(e).splitlines()[0] if str(e) else type(e).__name__)[:200]
    return None, [(f"ที่พักข้อมูลใช้ไม่ได้ ({why}): ยังไม่ทราบจำนวนใน HIS",
                   f"the staging store is unavailable ({why}): the HIS figures are not known")]


# -- the state store ------------------------------------------------------------------------------------------

_boxes: dict[str, ob.Outbox] = {}
NO_STATE = ("ยังไม่มีฐานข้อมูลสถานะ (ยังไม่เคยส่ง): ยังไม่ทราบสถานะการส่ง",
            "no state store yet (nothing loaded or sent): the delivery figures are not known")


def state_exists(url: str) -> bool:
    """A SQLite store is a file: none yet means nothing was ever loaded or sent (and reading must not make one)."""
    return not url.startswith("sqlite:///") or Path(url[len("sqlite:///"):]).exists()


def outbox(url: str) -> ob.Outbox | None:
    """The state store's handle for this URL, opened once (None when a SQLite store does not exist yet)."""
    if not state_exists(url):
        return None
    with _lock:
        box = _boxes.get(url)
        if box is None:
            box = _boxes[url] = ob.Outbox(url)
        return box


def state(url: str, fn: Callable[[ob.Outbox], T]) -> tuple[T | None, list[Note]]:
    """``fn(outbox)``, or None and a note when there is no store yet or it cannot be read."""
    try:
        box = outbox(url)
        if box is None:
            return None, [NO_STATE]
        return fn(box), []
    except (SQLAlchemyError, ValueError) as e:
        why = mask_text(str(e).splitlines()[0] if str(e) else type(e).__name__)[:200]
        with _lock:
            _boxes.pop(url, None)
        return None, [(f"ฐานข้อมูลสถานะใช้ไม่ได้ ({why})", f"the state store is unavailable ({why})")]


def close_all() -> None:
    """Dispose of every cached store handle (tests, and the web's shutdown)."""
    with _lock:
        for box in _boxes.values():
            box.close()
        _boxes.clear()
        _staging_cache.clear()
        _summary_cache.clear()
        for eng in _sandbox_engines.values():
            eng.dispose()
        _sandbox_engines.clear()


# -- the build summary ----------------------------------------------------------------------------------------

_summary_cache: dict[str, tuple[tuple[int, int, int, int], buildfile.BuildSummary | None]] = {}


def build_summary(path: Path | None) -> buildfile.BuildSummary | None:
    """The build file's summary (refusals and notes per facility), or None when there is none or it is stale."""
    if path is None:
        return None
    s = buildfile.summary_path(path)
    try:
        a, b = path.stat(), s.stat()
    except OSError:
        return None
    key = (a.st_mtime_ns, a.st_size, b.st_mtime_ns, b.st_size)
    with _lock:
        hit = _summary_cache.get(str(path))
    if hit is not None and hit[0] == key:
        return hit[1]
    summary = buildfile.read_summary(path)
    with _lock:
        _summary_cache[str(path)] = (key, summary)
    return summary


# -- the sandbox (testing) ------------------------------------------------------------------------------------

_sandbox_engines: dict[str, Any] = {}


def sandbox(data_dir: Path, fn: Callable[[Any], T]) -> tuple[T | None, list[Note]]:
    """``fn(connection)`` on the sandbox store of ``data_dir`` (its SQLite file), read only."""
    from sqlalchemy import create_engine

    db = data_dir / "sandbox.sqlite"
    if not db.exists():
        return None, [(f"ไม่พบฐานข้อมูลของเซิร์ฟเวอร์ทดสอบ {db}", f"no sandbox store {db}")]
    try:
        with _lock:
            eng = _sandbox_engines.get(str(db))
            if eng is None:
                eng = _sandbox_engines[str(db)] = create_engine(f"sqlite:///{db.resolve()}", future=True)
        with eng.connect() as conn:
            return fn(conn), []
    except SQLAlchemyError as e:
        why = mask_text(str(e).splitlines()[0])[:200]
        return None, [(f"อ่านฐานข้อมูลของเซิร์ฟเวอร์ทดสอบไม่ได้ ({why})", f"cannot read the sandbox store ({why})")]
