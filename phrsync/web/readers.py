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
from phrsync.thai import BANGKOK, thai_datetime

Note = tuple[str, str]
T = TypeVar("T")
_lock = threading.Lock()


@dataclass
class StagingFigures:
    """What the staging store said, as of ``read_at``: sums of its summary table, small whatever the store's size
    (a facility's own days are read when its page asks, :func:`staging_days`)."""

    read_at: float
    day: dt.date  # the day (Asia/Bangkok) ``his_3y`` counts back from
    totals: dict[str, tuple[int, dt.date | None]] = field(default_factory=dict)  # (encounters, last day)
    province: dict[dt.date, int] = field(default_factory=dict)  # encounters per day over every facility
    months: dict[tuple[str, str], int] = field(default_factory=dict)  # {(facility, "YYYY-MM"): encounters}
    his_3y: dict[str, int] = field(default_factory=dict)  # encounters of the 3 years up to ``day``
    quarantined: dict[str, int] = field(default_factory=dict)
    quarantine: dict[str, list[f43read.QuarantineGroup]] = field(default_factory=dict)

    def month(self, hospcode: str, month: str) -> int:
        """The facility's encounters in ``month`` ("YYYY-MM")."""
        return self.months.get((hospcode, month), 0)


_staging_cache: dict[str, tuple[tuple[Any, ...], StagingFigures]] = {}
_days_cache: dict[tuple[str, str], tuple[tuple[Any, ...], list[tuple[dt.date, int]]]] = {}


def _file_key(path: Path) -> tuple[Any, ...]:
    """What tells one version of a DuckDB file from the next: the file and its write-ahead log."""
    st = path.stat()
    wal = path.with_name(path.name + ".wal")
    w = wal.stat() if wal.exists() else None
    return st.st_mtime_ns, st.st_size, (w.st_mtime_ns, w.st_size) if w else None


def _read_staging(path: Path, day: dt.date) -> StagingFigures:
    out = StagingFigures(read_at=time.time(), day=day)
    three_years = f43read.Selection(date_from=day - dt.timedelta(days=3 * 365), date_to=day)
    with Staging(path, read_only=True, lock_wait=0) as st:
        totals = f43read.encounter_facility_totals(st)
        out.province = f43read.encounter_day_sums(st)
        out.months = f43read.encounter_month_totals(st)
        out.his_3y = {h: t.encounters for h, t in f43read.encounter_facility_totals(st, three_years).items()}
        out.quarantined = f43read.quarantine_counts(st)
        groups = f43read.quarantine_groups(st, (), 3)
    out.totals = {h: (t.encounters, t.last_day) for h, t in totals.items()}
    for g in groups:
        out.quarantine.setdefault(g.hospcode, []).append(g)
    for gs in out.quarantine.values():
        gs.sort(key=lambda g: (-g.count, g.file, g.rule))
    return out


def _locked_note(when: float | None) -> Note:
    if when is not None:
        t = thai_datetime(when)
        return (f"กำลังนำเข้าข้อมูล ตัวเลขจาก HIS เป็นของเมื่อ {t}", f"an import is running: the HIS figures are as of {t}")
    return ("กำลังนำเข้าข้อมูล ยังอ่านตัวเลขจาก HIS ไม่ได้ ลองใหม่เมื่อนำเข้าเสร็จ",
            "an import is running: the HIS figures can be read once it is done")


def staging_days(path: Path | None, hospcode: str) -> tuple[list[tuple[dt.date, int]] | None, list[Note]]:
    """One facility's encounters per day, in day order (its page's calendar), read when asked and kept until the
    file changes; while an import holds the file, the days last read (or None) with a note."""
    if path is None or not path.exists():
        return None, []
    try:
        key = _file_key(path)
    except OSError:
        return None, []
    with _lock:
        hit = _days_cache.get((str(path), hospcode))
    if hit is not None and hit[0] == key:
        return hit[1], []
    try:
        with Staging(path, read_only=True, lock_wait=0) as st:
            days = [(c.day, c.total) for c in f43read.encounter_day_totals(st, f43read.Selection((hospcode,)))]
    except StagingError as e:
        if e.locked:
            return (hit[1] if hit else None), [_locked_note(None if hit is None else time.time())]
        return None, _unavailable(None, e)[1]
    except duckdb.Error as e:
        return None, _unavailable(None, e)[1]
    with _lock:
        if len(_days_cache) >= 1024:
            _days_cache.clear()
        _days_cache[(str(path), hospcode)] = (key, days)
    return days, []


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
    day = dt.datetime.now(BANGKOK).date()
    key = (*key, day)  # (the 3 years counted back from today)
    with _lock:
        hit = _staging_cache.get(key_path)
    if hit is not None and hit[0] == key:
        return hit[1], []
    try:
        figures = _read_staging(path, day)
    except StagingError as e:
        if e.locked:
            return (hit[1] if hit else None), [_locked_note(hit[1].read_at if hit else None)]
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

_boxes: dict[str, tuple[ob.Outbox, Any]] = {}
NO_STATE = ("ยังไม่มีฐานข้อมูลสถานะ (ยังไม่เคยส่ง): ยังไม่ทราบสถานะการส่ง",
            "no state store yet (nothing loaded or sent): the delivery figures are not known")


def state_exists(url: str) -> bool:
    """A SQLite store is a file: none yet means nothing was ever loaded or sent (and reading must not make one)."""
    return not url.startswith("sqlite:///") or Path(url[len("sqlite:///"):]).exists()


def _identity(url: str) -> Any:
    """A SQLite store made anew under the same name (a demo run again) is another store: its file's inode."""
    if url.startswith("sqlite:///"):
        try:
            return Path(url[len("sqlite:///"):]).stat().st_ino
        except OSError:
            return None
    return None


def outbox(url: str) -> ob.Outbox | None:
    """The state store's handle for this URL, opened once (None when a SQLite store does not exist yet). The first
    open of a store an earlier version made counts its aggregates (once; a minute for 5 million rows)."""
    if not state_exists(url):
        return None
    ident = _identity(url)
    with _lock:
        held = _boxes.get(url)
        if held is not None and held[1] != ident:
            held[0].close()
            held = None
        if held is None:
            held = _boxes[url] = (ob.Outbox(url), ident)
        return held[0]


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
            gone = _boxes.pop(url, None)
        if gone is not None:
            gone[0].close()
        return None, [(f"ฐานข้อมูลสถานะใช้ไม่ได้ ({why})", f"the state store is unavailable ({why})")]


_state_cache: dict[tuple[str, str], tuple[tuple[Any, ...], Any]] = {}
_STATE_CACHE_MAX = 512


def state_cached(url: str, what: str, fn: Callable[[ob.Outbox], T],
                 version: tuple[Any, ...] | None = None) -> tuple[T | None, list[Note]]:
    """:func:`state`, kept under ``what`` until the store's :meth:`~phrsync.delivery.outbox.Outbox.aggregates_version`
    changes: a page load with nothing new costs one small query, not the aggregate reads. (The version is read
    first — or given, read once for a page's several reads —: figures read meanwhile are at least as new.)"""
    def read(box: ob.Outbox) -> T:
        current = box.aggregates_version() if version is None else version
        with _lock:
            hit = _state_cache.get((url, what))
        if hit is not None and hit[0] == current:
            return hit[1]  # type: ignore[no-any-return]
        value = fn(box)
        with _lock:
            if len(_state_cache) >= _STATE_CACHE_MAX:
                _state_cache.clear()
            _state_cache[(url, what)] = (current, value)
        return value

    return state(url, read)


def close_all() -> None:
    """Dispose of every cached store handle (tests, and the web's shutdown)."""
    with _lock:
        for box, _ident in _boxes.values():
            box.close()
        _boxes.clear()
        _state_cache.clear()
        _staging_cache.clear()
        _days_cache.clear()
        _summary_cache.clear()
        _sandbox_answers.clear()
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
# the last answer per (store, key) with the store's file stamps: the PHR centre view counts every encounter the
# sandbox holds (web_bench, 413,000 held: 431 ms at p95), and the answer only changes when the store does
_sandbox_answers: dict[tuple[str, str], tuple[tuple[Any, ...], Any]] = {}


def _stamps(db: Path) -> tuple[Any, ...]:
    """What changes when SQLite writes: the file and its write-ahead log (size and modification time)."""
    out: list[Any] = []
    for p in (db, db.with_name(db.name + "-wal")):
        try:
            st = p.stat()
            out += [st.st_ino, st.st_size, st.st_mtime_ns]
        except OSError:
            out += [None, None, None]
    return tuple(out)


def sandbox(data_dir: Path, fn: Callable[[Any], T], key: str | None = None) -> tuple[T | None, list[Note]]:
    """``fn(connection)`` on the sandbox store of ``data_dir`` (its SQLite file), read only; with ``key``, the
    answer is kept until the store's files change."""
    from sqlalchemy import create_engine

    db = data_dir / "sandbox.sqlite"
    if not db.exists():
        return None, [(f"ไม่พบฐานข้อมูลของเซิร์ฟเวอร์ทดสอบ {db}", f"no sandbox store {db}")]
    stamps = _stamps(db)
    if key is not None:
        with _lock:
            kept = _sandbox_answers.get((str(db), key))
        if kept is not None and kept[0] == stamps:
            return kept[1], []
    try:
        with _lock:
            eng = _sandbox_engines.get(str(db))
            if eng is None:
                eng = _sandbox_engines[str(db)] = create_engine(f"sqlite:///{db.resolve()}", future=True)
        with eng.connect() as conn:
            got = fn(conn)
        if key is not None:
            with _lock:
                _sandbox_answers[(str(db), key)] = (stamps, got)
        return got, []
    except SQLAlchemyError as e:
        why = mask_text(str(e).splitlines()[0])[:200]
        return None, [(f"อ่านฐานข้อมูลของเซิร์ฟเวอร์ทดสอบไม่ได้ ({why})", f"cannot read the sandbox store ({why})")]
