"""Import: sources → row checks → quarantine or staging. Nothing inside an export can stop a run (a path that is
no export at all is refused before the run starts).

Each export container (a zip, or a loose .txt) is fingerprinted; one already imported is skipped
unless forced, and a forced one replaces its own quarantine entries. Rows are checked a chunk at a
time inside DuckDB, good rows are appended to staging as new versions, and each 43-file type is
compacted once at the end (latest D_UPDATE wins), so that cost does not grow with the number of zips.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from phrsync.f43 import schema
from phrsync.f43.checks import RULES, check_sql, load_code_sets
from phrsync.f43.reader import containers, export_order, opened, read_member
from phrsync.f43.schema import FileSpec
from phrsync.f43.source import Chunk, Problem
from phrsync.f43.staging import Staging, table_name
from phrsync.pdpa import mask_value

BufKey = tuple[str, "tuple[int, ...] | None", int]  # (43-file, field positions in the line, line width)
# DuckDB's row-group size. An insert of at least this many rows is written straight to the table's
# blocks (compressed once) instead of through the WAL and a later checkpoint (data copied and scanned
# twice more): measured ~1.7x faster. A batch of whole row groups also leaves no part-filled row group
# behind in the table.
ROW_GROUP = 122_880
# Rows gathered per 43-file layout before one check query runs: one row group exactly (the rest stays
# buffered for the next batch). With 250,000 most batches were forced out by MAX_BUFFERED at 60-90k
# rows and took the WAL path (6.1 us per row checked and written, vs 4.8 us for whole row groups,
# one thread); a buffer reaches one row group long before the buffers together reach MAX_BUFFERED.
# Each batch in flight also holds half the rows. 1M benchmark back to back (with checks._cid_ok):
# 93 -> 81 s CPU.
CHECK_ROWS = ROW_GROUP
CHECK_THREADS = 3  # batches in flight: DuckDB works outside the GIL; a third keeps 2 cores busier (+6% measured)
MAX_BUFFERED = 600_000  # all layouts together: the largest buffer is flushed beyond this (bounded memory)
# Small pieces gathered in one buffer before they are joined into one: a province sends thousands of
# tiny files, and each piece costs a few KB of Arrow objects (malloc'd, apart from its rows). A buffer
# of a rare 43-file waits for rows all through the import, so its pieces grew with the number of zips:
# the C heap in use rose from ~30 to ~88 MB over the 1M import; joined, it stays at 35-50 MB.
# Joining copies only the rows of small buffers, a few times each.
MAX_PIECES = 256

_HOSPCODE = re.compile(schema.HOSP)

ProgressFn = Callable[[str, int, int], None]  # (label, done, total)


@dataclass
class FileStats:
    read: int = 0  # rows that reached the checks (good + bad)
    accepted: int = 0  # rows that passed the checks
    quarantined: int = 0  # rows kept out of staging
    warnings: int = 0  # warning entries (rows still loaded)
    inserted: int = 0
    replaced: int = 0
    unchanged: int = 0


@dataclass
class ImportReport:
    import_id: int
    started: dt.datetime
    seconds: float = 0.0
    sources: int = 0
    skipped: int = 0  # already-imported containers
    files: dict[str, FileStats] = field(default_factory=lambda: defaultdict(FileStats))
    reasons: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (file, rule, severity) -> entries
    problems: int = 0
    phases: Counter[str] = field(default_factory=Counter)  # seconds spent: read, check+load, compact

    @property
    def rows_read(self) -> int:
        return sum(s.read for s in self.files.values())

    @property
    def rows_quarantined(self) -> int:
        return sum(s.quarantined for s in self.files.values())

    def to_dict(self) -> dict[str, Any]:
        """The report as ``--json`` prints it."""
        per_reason: dict[str, dict[str, Any]] = {}
        for (file, rule, sev), n in sorted(self.reasons.items()):
            r = RULES.get(rule)
            d = per_reason.setdefault(rule, {"severity": sev, "reason_th": r.th if r else rule,
                                             "reason_en": r.en if r else rule, "total": 0, "by_file": {}})
            d["total"] += n
            d["by_file"][file or "-"] = d["by_file"].get(file or "-", 0) + n
        return {
            "import_id": self.import_id,
            "started": self.started.isoformat(timespec="seconds"),
            "seconds": round(self.seconds, 3),
            "sources": self.sources,
            "sources_skipped_already_imported": self.skipped,
            "rows_read": self.rows_read,
            "rows_loaded": sum(s.accepted for s in self.files.values()),
            "rows_quarantined": self.rows_quarantined,
            "seconds_by_phase": {k: round(v, 3) for k, v in self.phases.items()},
            "files": {k: vars(v) for k, v in sorted(self.files.items())},
            "quarantine_by_reason": per_reason,
        }

    as_dict = to_dict  # the demo's name for it


class Importer:
    """One import run into a staging store."""

    def __init__(self, staging: Staging, *, today: dt.date | None = None, force: bool = False,
                 progress: ProgressFn | None = None) -> None:
        self.st = staging
        self.today = today or dt.date.today()
        self.force = force
        self.progress = progress
        self.code_sets = load_code_sets()
        self._sql: dict[BufKey, str] = {}
        self._seq = 0
        self._seq_sha: dict[int, str] = {}
        self._touched: set[str] = set()
        self._buf: dict[BufKey, list[pa.Table]] = defaultdict(list)  # small chunks gathered per layout
        self._buf_rows: dict[BufKey, int] = defaultdict(int)
        self._sources: list[tuple[str, str, str, int]] = []
        self._pool = ThreadPoolExecutor(CHECK_THREADS, thread_name_prefix="phrsync-check")
        self._inflight: list[Future[None]] = []
        self._lock = threading.Lock()
        self._tls = threading.local()
        self.report: ImportReport | None = None

    # -- public entry points --------------------------------------------------------------------
    def import_paths(self, paths: Iterable[str | Path]) -> ImportReport:
        """Import zips, 43-file .txt files and folders of them. The paths are checked before the import starts
        (:func:`~phrsync.f43.reader.check_paths`): a wrong one raises and leaves the store as it was."""
        paths = [Path(p) for p in paths]
        items = export_order(containers(paths))
        rep = self._start("files", ", ".join(str(p) for p in paths))
        total = len(items)
        done = self.st.imported_sources()
        for i, path in enumerate(items, 1):
            sha = _sha256(path)
            if sha in done and not self.force:
                rep.skipped += 1
                self._tick(path.name, i, total)
                continue
            if self.force:
                self.st.forget_quarantine(sha)
            rows = 0
            hospcode = ""
            with opened(path) as members:
                if all(isinstance(m, Problem) for m in members):
                    self._problems([m for m in members if isinstance(m, Problem)], "")
                    self._tick(path.name, i, total)
                    continue
                rep.sources += 1
                for m in members:
                    if isinstance(m, Problem):
                        self._problems([m], sha)
                        continue
                    hospcode = hospcode or m.hospcode
                    self._seq += 1
                    self._seq_sha[self._seq] = sha
                    for chunk in read_member(m):
                        rows += chunk.num_rows
                        self._chunk(chunk, sha, self._seq)
            # marked imported only in _finish, after its rows are compacted: a crash re-reads it
            self._sources.append((sha, str(path), hospcode, rows))
            self._tick(path.name, i, total)
        return self._finish()

    def import_chunks(self, chunks: Iterable[Chunk], kind: str, target: str) -> ImportReport:
        """Any chunk source (the HDC reader): one sequence number per table read."""
        self._start(kind, target)
        seqs: dict[str, int] = {}
        n = 0
        for chunk in chunks:
            if chunk.source not in seqs:
                self._seq += 1
                seqs[chunk.source] = self._seq
                self._seq_sha[self._seq] = f"{kind}:{chunk.source}"
            self._chunk(chunk, f"{kind}:{chunk.source}", seqs[chunk.source])
            n += chunk.num_rows
            self._tick(chunk.source, n, 0)
        assert self.report is not None
        self.report.sources = len(seqs)
        return self._finish()

    # -- internals ------------------------------------------------------------------------------
    def _start(self, kind: str, target: str) -> ImportReport:
        iid = self.st.begin_import(kind, target)
        self.report = ImportReport(import_id=iid, started=dt.datetime.now())
        self._t0 = time.perf_counter()
        self._recover()
        return self.report

    def _recover(self) -> None:
        """Versions appended by a run that crashed before compaction: compact them now, so nothing
        is half-merged. Their sources were never marked imported, so they will be read again."""
        for (iid,) in self.st.query("SELECT id FROM imports WHERE status = 'running' AND id <> ?",
                                    [self.report.import_id if self.report else -1]):
            for spec in schema.FILES.values():
                self.st.drop_rejected(spec, iid)
                self.st.compact(spec, iid)
            # its sources were not marked imported and will be read again: their entries would repeat
            self.st.con.execute("DELETE FROM quarantine WHERE import_id = ?", [iid])
            self.st.con.execute("UPDATE imports SET status = 'interrupted' WHERE id = ?", [iid])

    def _tick(self, label: str, done: int, total: int) -> None:
        if self.progress:
            self.progress(label, done, total)

    def _problems(self, problems: list[Problem], sha: str) -> None:
        rep = self.report
        assert rep is not None
        if not problems:
            return
        self.st.add_problems(problems, rep.import_id, sha)
        for p in problems:
            rep.reasons[(p.file, p.rule, p.severity)] += 1
            rep.problems += 1
            if p.file and p.line and p.severity == "error":
                rep.files[p.file].read += 1
                rep.files[p.file].quarantined += 1
            elif p.file and p.severity == "warning" and p.line:
                rep.files[p.file].warnings += 1

    def _chunk(self, chunk: Chunk, sha: str, seq: int) -> None:
        """Gather rows per 43-file (and line layout) and check them in batches: one query per ~100k
        rows, however many small files they came from (a province sends thousands of tiny files)."""
        self._problems(chunk.problems, sha)
        n = chunk.num_rows
        if n == 0:
            return
        key = (chunk.spec.name, chunk.positions, chunk.width)
        t = chunk.table
        if chunk.positions is None and "_raw" not in t.column_names:
            t = t.append_column("_raw", pa.nulls(n, pa.string()))
        t = t.append_column("_src", pa.array([chunk.source] * n, pa.string()))
        t = t.append_column("_seq", pa.array([seq] * n, pa.int64()))
        t = t.append_column("_hosp", pa.array([chunk.hospcode] * n, pa.string()))
        pieces = self._buf[key]
        pieces.append(t)
        self._buf_rows[key] += n
        if len(pieces) >= MAX_PIECES:
            self._buf[key] = [pa.concat_tables(pieces).combine_chunks()]
        if self._buf_rows[key] >= CHECK_ROWS:
            self._flush(key, whole_row_groups=True)
        elif sum(self._buf_rows.values()) > MAX_BUFFERED:
            self._flush(max(self._buf_rows, key=self._buf_rows.__getitem__))

    def _flush(self, key: BufKey, whole_row_groups: bool = False) -> None:
        """Hand a buffer to the checker threads. DuckDB releases the GIL while it works, so batches are
        checked and loaded at once, each on its own cursor; at most CHECK_THREADS are in flight.

        With ``whole_row_groups`` only a multiple of ROW_GROUP rows goes (see CHECK_ROWS); the rest, in
        the same order, stays buffered and leads the next batch of this layout."""
        parts = self._buf.pop(key, [])
        rows = self._buf_rows.pop(key, 0)
        if not parts:
            return
        table = pa.concat_tables(parts)
        if whole_row_groups and rows % ROW_GROUP:
            take = rows - rows % ROW_GROUP
            self._buf[key] = [table.slice(take)]  # a slice keeps only the chunks it overlaps
            self._buf_rows[key] = rows - take
            table = table.slice(0, take)
        name, positions, width = key
        if key not in self._sql:
            self._sql[key] = check_sql(schema.get(name), "_chunk", self.today, self.code_sets, positions, width)
        self._touched.add(name)
        while len(self._inflight) >= CHECK_THREADS:
            self._inflight.pop(0).result()
        self._inflight.append(self._pool.submit(self._check_batch, key, table))

    def _drain(self) -> None:
        while self._inflight:
            self._inflight.pop(0).result()  # re-raises a checker's exception here

    def _cursor(self) -> Staging:
        cur = getattr(self._tls, "staging", None)
        if cur is None:
            cur = self._tls.staging = self.st.cursor()
        return cur

    def _check_batch(self, key: BufKey, table: pa.Table) -> None:
        rep = self.report
        assert rep is not None
        t0 = time.perf_counter()
        name, positions, width = key
        spec = schema.get(name)
        st = self._cursor()
        con = st.con
        con.register("_chunk", table)
        try:
            # one pass: split, check, type and write; only the findings come back to Python
            found = st.append_checked(spec, self._sql[key], rep.import_id)
        finally:
            con.unregister("_chunk")
        has_err = pc.is_valid(found["_errs"])
        n_bad = pc.sum(pc.cast(has_err, pa.int64())).as_py() or 0
        n_good = table.num_rows - n_bad
        flagged = found.filter(pc.or_(has_err, pc.is_valid(found["_warns"])))
        if flagged.num_rows:
            self._report_flagged(st, spec, table, flagged, positions, width)
        with self._lock:
            stats = rep.files[spec.name]
            stats.read += table.num_rows
            stats.accepted += n_good
            stats.quarantined += table.num_rows - n_good
            rep.phases["check_and_load"] += time.perf_counter() - t0

    def _report_flagged(self, st: Staging, spec: FileSpec, table: pa.Table, flagged: pa.Table,
                        positions: tuple[int, ...] | None, width: int) -> None:
        """Quarantine entries for the (few) rows with errors or warnings, with the value as read."""
        rep = self.report
        assert rep is not None
        # the rows as read, for the flagged ones only: (file sequence number, line) identifies a row
        sep = pa.scalar("\x1f")
        ident = pc.binary_join_element_wise(pc.cast(table["_seq"], pa.string()), pc.cast(table["_line"], pa.string()),
                                            sep)
        wanted = pc.binary_join_element_wise(pc.cast(flagged["_seq"], pa.string()),
                                             pc.cast(flagged["_line"], pa.string()), sep)
        rows = {(r["_seq"], r["_line"]): r for r in table.filter(pc.is_in(ident, value_set=wanted)).to_pylist()}
        batch: list[Problem] = []
        for seq, line, errs, warns in zip(flagged["_seq"].to_pylist(), flagged["_line"].to_pylist(),
                                          _items(flagged["_errs"]), _items(flagged["_warns"]), strict=True):
            row = rows.get((seq, line), {})
            src = row.get("_src") or ""
            raw = row.get("_raw") or ""
            items = raw.split("|") if raw else []
            n = len(items)
            if positions is not None:
                row = {name: (items[pos] if 0 <= pos < len(items) else "")
                       for name, pos in zip(spec.field_names, positions, strict=True)} | row
            hosp = _facility(row)
            sha = self._seq_sha.get(seq, "")
            for item, severity in [(e, "error") for e in errs] + [(w, "warning") for w in warns]:
                fname, rule = item.split(":", 1)
                r = RULES[rule]
                if fname:
                    f = spec.by_name[fname]
                    value = mask_value((row.get(fname) or "").strip(), f.personal)
                    th, en = f"{fname}: {r.th}", f"{fname}: {r.en}"
                else:  # the line itself: too many fields or cut short
                    value = str(n)
                    th = f"{r.th} (มี {n} ช่อง ต้องมี {width})"
                    en = f"{r.en} ({n} fields, expected {width})"
                p = Problem(source=src, file=spec.name, line=line, field=fname, value=value, rule=rule,
                            reason_th=th, reason_en=en, hospcode=hosp, severity=severity,
                            raw=raw if errs else "")
                p.sha = sha  # type: ignore[attr-defined]
                batch.append(p)
        st.add_problems(batch, rep.import_id)
        with self._lock:
            for p in batch:
                rep.reasons[(spec.name, p.rule, p.severity)] += 1
                if p.severity == "warning":
                    rep.files[spec.name].warnings += 1
            rep.problems += len(batch)

    def _compact(self, spec: FileSpec) -> None:
        rep = self.report
        assert rep is not None
        t0 = time.perf_counter()
        self.st.drop_rejected(spec, rep.import_id)  # rows with errors are in quarantine, not staging
        r = RULES["duplicate_key"]
        dups = self.st.quarantine_duplicates(spec, rep.import_id, self._seq_sha, r.th, r.en)
        stats = rep.files[spec.name]
        if dups:
            stats.accepted -= dups
            stats.quarantined += dups
            rep.reasons[(spec.name, "duplicate_key", "error")] += dups
        res = self.st.compact(spec, rep.import_id)
        stats.inserted += res["inserted"]
        stats.replaced += res["replaced"]
        stats.unchanged += res["unchanged"]
        rep.phases["compact"] += time.perf_counter() - t0

    def _finish(self) -> ImportReport:
        rep = self.report
        assert rep is not None
        for key in list(self._buf):
            self._flush(key)
        self._drain()
        self._pool.shutdown()
        for name in schema.ORDER:
            if name in self._touched:
                self._compact(schema.get(name))
        self.st.record_sources(rep.import_id, self._sources)
        self._sources.clear()
        self._touched.clear()
        rep.seconds = time.perf_counter() - self._t0
        self.st.finish_import(rep.import_id, "done", json.dumps(rep.to_dict(), ensure_ascii=False))
        return rep


def _facility(row: dict[str, Any]) -> str:
    """The facility an entry is filed under: the row's HOSPCODE when it is one, else the export's. A line
    whose fields are shifted (a column order not recognised, a line cut short) has other data in that
    place, e.g. a citizen ID, which would be shown unmasked by ``quarantine list`` and ``summary``."""
    hosp = (row.get("HOSPCODE") or "").strip()
    return hosp if _HOSPCODE.fullmatch(hosp) else (row.get("_hosp") or "").strip()


def _items(column: pa.ChunkedArray) -> list[list[str]]:
    """The check query's "FIELD:rule,FIELD:rule" strings as lists."""
    return [v.split(",") if v else [] for v in column.to_pylist()]  # NULL (no findings) → []


def _reason_th(base: str, f: schema.Field) -> str:
    return f"{f.name}: {base}"


def _reason_en(base: str, f: schema.Field) -> str:
    return f"{f.name}: {base}"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError:
        h.update(str(path).encode())
    return h.hexdigest()


def staged_rows(st: Staging, file: str) -> Iterator[dict[str, Any]]:
    """All staged rows of one file as dicts (for tests and small tools, not the hot path)."""
    spec = schema.get(file)
    cur = st.con.execute(f"SELECT * FROM {table_name(spec)} ORDER BY ALL")
    names = [d[0] for d in cur.description]
    for row in cur.fetchall():
        yield dict(zip(names, row, strict=True))
