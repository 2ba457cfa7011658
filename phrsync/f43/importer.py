"""Import: sources → row checks → quarantine or staging. Nothing inside an export can stop a run (a path that is
no export at all is refused before the run starts).

Each export container (a zip, or a loose .txt) is fingerprinted; one already imported is skipped
unless forced, and a forced one replaces its own quarantine entries. Rows are checked a chunk at a
time inside DuckDB, good rows are appended to staging as new versions, and each 43-file type is
compacted once at the end (latest D_UPDATE wins), so that cost does not grow with the number of zips.

One bad file never costs the batch: a member refused by the ``[import]`` limits, a file whose reading or
loading fails (DuckDB, Arrow, decoding, ...) or a file that is all garbage is reported for that file
(:attr:`ImportReport.not_imported`; the exit code is :attr:`~phrsync.errors.Exit.REFUSED`) and the rest loads.
A failed file loads none of its rows, and its container is not marked imported, so the next import reads it
again and replaces its quarantine entries. Quarantine entries are capped per file
(``max_quarantine_per_file``): millions of bad lines cost one summary entry, not millions.
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

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from phrsync.errors import Exit, StoreError
from phrsync.f43 import aggregates, schema
from phrsync.f43.checks import RULES, check_sql, load_code_sets
from phrsync.f43.reader import DEFAULT_LIMITS, Member, containers, export_order, opened, read_member
from phrsync.f43.schema import FileSpec
from phrsync.f43.source import Chunk, Problem
from phrsync.f43.staging import Staging, StagingError, table_name
from phrsync.pdpa import mask_text, mask_value
from phrsync.settings import ImportSection

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
# The same bounds in bytes, for long lines (each under [import] max_line_bytes): a row group of 60 KB lines
# would be 7 GB. A 43-file line is ~120-500 bytes (the 1M benchmark: 124 on average), so ordinary batches are
# whole row groups long before CHECK_BYTES; with 3 batches in flight and the buffers, the rows held stay < 350 MB.
# 2 GB of 60 KB lines: peak 837 MB (48/96 MB: 856, no better; what remains is DuckDB's own 256 MB and the store).
CHECK_BYTES = 64 << 20
MAX_BUFFERED_BYTES = 128 << 20
# A batch of long lines is checked alone: three at once ran DuckDB out of its 256 MB (splitting a line into fields
# copies it; that file failed) and took the import's peak to 937 MB.
FAT_BATCH_BYTES = 16 << 20
RAW_KEPT = 4096  # characters of a bad line kept in its entry: a real line is shorter, a hostile one is not copied
# Small pieces gathered in one buffer before they are joined into one: a province sends thousands of
# tiny files, and each piece costs a few KB of Arrow objects (malloc'd, apart from its rows). A buffer
# of a rare 43-file waits for rows all through the import, so its pieces grew with the number of zips:
# the C heap in use rose from ~30 to ~88 MB over the 1M import; joined, it stays at 35-50 MB.
# Joining copies only the rows of small buffers, a few times each.
MAX_PIECES = 256

_HOSPCODE = re.compile(schema.HOSP)

ProgressFn = Callable[[str, int, int], None]  # (label, done, total)

# A file-level problem with one of these rules means rows of that file did not load: the import's exit code says
# so, and the file's container is read again by the next import.
NOT_IMPORTED = frozenset({"bad_zip", "empty_zip", "unreadable", "truncated_file", "member_too_large", "zip_ratio",
                          "garbage_file", "file_failed"})
# DuckDB errors that mean the store itself is broken (disk full, database invalidated): no file is to blame
_STORE_BROKEN = (duckdb.IOException, duckdb.FatalException)


@dataclass
class FileStats:
    read: int = 0  # rows that reached the checks (good + bad)
    accepted: int = 0  # rows that passed the checks
    quarantined: int = 0  # rows kept out of staging
    warnings: int = 0  # warning entries: of rows (still loaded) and of the file itself (e.g. TIS-620)
    inserted: int = 0
    replaced: int = 0
    unchanged: int = 0
    not_loaded: int = 0  # rows of files whose import failed: neither in staging nor in quarantine
    # a newer export of a visit replaced its set of child rows (Staging.replace_visit_sets): rows of this import
    # that an export already stored supersedes, and stored rows the new export no longer has
    superseded: int = 0
    superseded_old: int = 0


@dataclass
class NotImported:
    """A file (or zip) of which rows did not load, and why."""

    source: str  # "F43_10699_202501.zip:person.txt", or the zip's name
    file: str  # 43-file name, or "" for a zip
    rule: str
    reason_th: str
    reason_en: str

    def to_dict(self) -> dict[str, str]:
        return dict(vars(self))


@dataclass
class _Track:
    """What one file (one member read) has given so far; checker threads update it under the importer's lock."""

    label: str
    file: str
    sha: str
    hospcode: str
    good: int = 0  # rows that passed the checks
    bad: int = 0  # rows quarantined
    entered: int = 0  # rows with quarantine entries (at most max_quarantine_per_file)
    capped: int = 0  # flagged rows past that cap, counted only
    garbage: bool = False  # reported as all bad
    error: str = ""  # why the file failed ("" = it did not)


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
    not_imported: list[NotImported] = field(default_factory=list)

    @property
    def exit_code(self) -> Exit:
        """:attr:`Exit.REFUSED` when a file or zip did not load (the good ones did), else :attr:`Exit.OK`.
        Quarantined rows alone do not count: they are the import working as meant."""
        return Exit.REFUSED if self.not_imported else Exit.OK

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
            "not_imported": [n.to_dict() for n in self.not_imported],
            "exit_code": int(self.exit_code),
        }

    as_dict = to_dict  # the demo's name for it


class Importer:
    """One import run into a staging store."""

    def __init__(self, staging: Staging, *, today: dt.date | None = None, force: bool = False,
                 progress: ProgressFn | None = None, limits: ImportSection | None = None) -> None:
        self.st = staging
        self.limits = limits or DEFAULT_LIMITS
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
        self._buf_bytes: dict[BufKey, int] = defaultdict(int)
        self._sources: list[tuple[str, str, str, int]] = []
        self._pool = ThreadPoolExecutor(CHECK_THREADS, thread_name_prefix="phrsync-check")
        self._inflight: list[Future[None]] = []
        self._lock = threading.Lock()
        self._tls = threading.local()
        self._files: dict[int, _Track] = {}  # per file read (sequence number)
        self._drop: dict[str, list[int]] = {}  # 43-file → sequence numbers of its failed files
        self._incomplete: set[str] = set()  # containers with a file that did not load: not marked imported
        self._recovered: list[int] = []  # imports a crash left half-merged, compacted by this one
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
        with_entries = self.st.quarantined_sources()
        seen: set[str] = set()
        for i, path in enumerate(items, 1):
            sha = _sha256(path)
            if (sha in done and not self.force) or sha in seen:  # (a second copy of one export: read once)
                rep.skipped += 1
                self._tick(path.name, i, total)
                continue
            seen.add(sha)
            if sha in with_entries:  # from an earlier read (forced, or of an export that did not load whole)
                self.st.forget_quarantine(sha)
            self._container(path, sha)
            self._tick(path.name, i, total)
        return self._finish()

    def _container(self, path: Path, sha: str) -> None:
        rep = self.report
        assert rep is not None
        rows = 0
        hospcode = ""
        with opened(path, self.limits) as members:
            if any(isinstance(m, Member) for m in members):
                rep.sources += 1
            for m in members:
                if isinstance(m, Problem):
                    self._problems([m], sha)
                    continue
                hospcode = hospcode or m.hospcode
                rows += self._member(m, sha)
        # marked imported only in _finish, after its rows are compacted (a crash re-reads it), and only if
        # every file of it loaded
        self._sources.append((sha, str(path), hospcode, rows))

    def _member(self, m: Member, sha: str) -> int:
        """Read one file into the check buffers; a failure is that file's (reported in :meth:`_finish`), and a
        file whose rows are all bad is no longer read once ``max_quarantine_per_file`` of them are."""
        self._seq += 1
        seq = self._seq
        self._seq_sha[seq] = sha
        spec = m.spec
        if spec is None:
            return 0
        track = self._files[seq] = _Track(m.label, spec.name, sha, m.hospcode)
        rows = 0
        chunks = read_member(m, max_line_bytes=self.limits.max_line_bytes)
        try:
            for chunk in chunks:
                rows += chunk.num_rows
                self._chunk(chunk, sha, seq)
                if self._all_bad(track):
                    self._garbage(track, stopped=True)
                    break
        except StoreError:
            raise
        except Exception as e:  # whatever breaks in one file (Arrow, decoding, ...) is that file's
            self._fail([seq], e)
        finally:
            chunks.close()
        return rows

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
                self._files[self._seq] = _Track(f"{kind}:{chunk.source}", chunk.spec.name, f"{kind}:{chunk.source}",
                                                chunk.hospcode)
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
                self.st.replace_visit_sets(spec, iid)
                self.st.compact(spec, iid)
            # its sources were not marked imported and will be read again: their entries would repeat
            self.st.con.execute("DELETE FROM quarantine WHERE import_id = ?", [iid])
            self.st.con.execute("DELETE FROM rejected_keys WHERE import_id = ?", [iid])
            self.st.con.execute("UPDATE imports SET status = 'interrupted' WHERE id = ?", [iid])
            self._recovered.append(int(iid))

    def _tick(self, label: str, done: int, total: int) -> None:
        if self.progress:
            self.progress(label, done, total)

    def _problems(self, problems: list[Problem], sha: str, seq: int | None = None) -> None:
        """Store the reader's problems (main thread). A row's entry counts against its file's cap; a file-level
        problem that means rows did not load is also a :class:`NotImported` and keeps the container unmarked."""
        rep = self.report
        assert rep is not None
        if not problems:
            return
        track = self._files.get(seq) if seq is not None else None
        cap = self.limits.max_quarantine_per_file
        kept: list[Problem] = []
        with self._lock:
            for p in problems:
                rep.reasons[(p.file, p.rule, p.severity)] += 1
                rep.problems += 1
                if p.file and p.line and p.severity == "error":
                    rep.files[p.file].read += 1
                    rep.files[p.file].quarantined += 1
                    if track is not None:
                        track.bad += 1
                elif p.file and p.severity == "warning":  # a row's, or the file's own (e.g. TIS-620)
                    rep.files[p.file].warnings += 1
                if p.line and track is not None:
                    if track.entered >= cap:
                        track.capped += 1
                        continue
                    track.entered += 1
                if not p.line and p.severity == "error" and p.rule in NOT_IMPORTED:
                    rep.not_imported.append(NotImported(p.source, p.file, p.rule, p.reason_th, p.reason_en))
                    self._incomplete.add(sha)
                kept.append(p)
        self.st.add_problems(kept, rep.import_id, sha)

    def _all_bad(self, track: _Track) -> bool:
        with self._lock:
            return track.good == 0 and track.bad >= self.limits.max_quarantine_per_file and not track.error

    def _garbage(self, track: _Track, stopped: bool) -> None:
        """Report a file whose rows are all bad (main thread): with ``stopped``, its reading ends here."""
        track.garbage = True
        cap = self.limits.max_quarantine_per_file
        if stopped:
            th = f"ทุกแถวที่ตรวจ ({track.bad:,} แถวแรก) ผิด จึงหยุดอ่านแฟ้มนี้"
            en = f"every row checked (the first {track.bad:,}) is bad, so reading this file stopped"
        else:
            th, en = f"ทั้ง {track.bad:,} แถวของแฟ้มนี้ผิด", f"all {track.bad:,} rows of this file are bad"
        self._problems([Problem(
            track.label, track.file, 0, "", f"{track.bad:,}", "garbage_file",
            f"{th} ([import] max_quarantine_per_file = {cap:,}) — ใช่แฟ้ม 43 แฟ้มหรือไม่",
            f"{en} ([import] max_quarantine_per_file = {cap:,}) — is it a 43-file at all?", track.hospcode)],
            track.sha)

    def _fail(self, seqs: Iterable[int], e: BaseException) -> None:
        """Mark files failed (any thread); :meth:`_finish` reports them and takes their rows out."""
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        text = mask_text(f"{type(e).__name__}: {first}")  # an error may quote a value, e.g. a citizen ID
        text = text if len(text) <= 300 else text[:297] + "..."
        with self._lock:
            for seq in seqs:
                track = self._files.get(seq)
                if track is not None and not track.error:
                    track.error = text

    def _chunk(self, chunk: Chunk, sha: str, seq: int) -> None:
        """Gather rows per 43-file (and line layout) and check them in batches: one query per ~100k
        rows, however many small files they came from (a province sends thousands of tiny files)."""
        self._problems(chunk.problems, sha, seq)
        n = chunk.num_rows
        if n == 0:
            return
        key = (chunk.spec.name, chunk.positions, chunk.width)
        t = chunk.table
        size = t.nbytes
        if chunk.positions is None and "_raw" not in t.column_names:
            t = t.append_column("_raw", pa.nulls(n, pa.string()))
        t = t.append_column("_src", pa.array([chunk.source] * n, pa.string()))
        t = t.append_column("_seq", pa.array([seq] * n, pa.int64()))
        t = t.append_column("_hosp", pa.array([chunk.hospcode] * n, pa.string()))
        pieces = self._buf[key]
        pieces.append(t)
        self._buf_rows[key] += n
        self._buf_bytes[key] += size
        if len(pieces) >= MAX_PIECES:
            self._buf[key] = [pa.concat_tables(pieces).combine_chunks()]
        if self._buf_rows[key] >= CHECK_ROWS:
            self._flush(key, whole_row_groups=True)
        elif self._buf_bytes[key] >= CHECK_BYTES:
            self._flush(key)
        elif sum(self._buf_rows.values()) > MAX_BUFFERED:
            self._flush(max(self._buf_rows, key=self._buf_rows.__getitem__))
        elif sum(self._buf_bytes.values()) > MAX_BUFFERED_BYTES:
            self._flush(max(self._buf_bytes, key=self._buf_bytes.__getitem__))

    def _flush(self, key: BufKey, whole_row_groups: bool = False) -> None:
        """Hand a buffer to the checker threads. DuckDB releases the GIL while it works, so batches are
        checked and loaded at once, each on its own cursor; at most CHECK_THREADS are in flight.

        With ``whole_row_groups`` only a multiple of ROW_GROUP rows goes (see CHECK_ROWS); the rest, in
        the same order, stays buffered and leads the next batch of this layout."""
        parts = self._buf.pop(key, [])
        rows = self._buf_rows.pop(key, 0)
        size = self._buf_bytes.pop(key, 0)
        if not parts:
            return
        table = pa.concat_tables(parts)
        if whole_row_groups and rows % ROW_GROUP:
            take = rows - rows % ROW_GROUP
            self._buf[key] = [table.slice(take)]  # a slice keeps only the chunks it overlaps
            self._buf_rows[key] = rows - take
            self._buf_bytes[key] = size * (rows - take) // rows
            table = table.slice(0, take)
        name, positions, width = key
        if key not in self._sql:
            self._sql[key] = check_sql(schema.get(name), "_chunk", self.today, self.code_sets, positions, width,
                                       self.limits.buddhist_dates)
        self._touched.add(name)
        fat = size >= FAT_BATCH_BYTES and size > 1024 * table.num_rows  # (ordinary lines: ~120-500 bytes)
        while len(self._inflight) >= (1 if fat else CHECK_THREADS):
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
        """Check and write one batch (a checker thread). A batch that DuckDB or Arrow refuses is retried file by
        file, so only the file at fault fails; a broken store stops the import (exit 7)."""
        rep = self.report
        assert rep is not None
        t0 = time.perf_counter()
        name, positions, width = key
        spec = schema.get(name)
        st = self._cursor()
        con = st.con
        failure: Exception | None = None
        con.register("_chunk", table)
        try:
            # one pass: split, check, type and write; only the findings come back to Python
            found = st.append_checked(spec, self._sql[key], rep.import_id)
        except _STORE_BROKEN as e:
            raise _store_broken(st, e) from e
        except Exception as e:  # a check query that fails on some file's rows
            failure = e
        finally:
            con.unregister("_chunk")
        if failure is not None:
            seqs = pc.unique(table["_seq"]).to_pylist()
            if len(seqs) > 1:  # nothing of the batch was written (one statement): retry each file alone
                for seq in seqs:
                    self._check_batch(key, table.filter(pc.equal(table["_seq"], seq)))
                return
            self._fail(seqs, failure)
            with self._lock:
                rep.files[spec.name].read += table.num_rows
                rep.files[spec.name].not_loaded += table.num_rows
            return
        has_err = pc.is_valid(found["_errs"])
        n_bad = pc.sum(pc.cast(has_err, pa.int64())).as_py() or 0
        n_good = table.num_rows - n_bad
        self._count(found, has_err, n_bad)
        flagged = found.filter(pc.or_(has_err, pc.is_valid(found["_warns"])))
        if flagged.num_rows:
            try:
                self._report_flagged(st, spec, table, flagged, positions, width)
            except _STORE_BROKEN as e:
                raise _store_broken(st, e) from e
            except Exception as e:  # the rows were written: their files fail, and lose them in _finish
                self._fail(pc.unique(table["_seq"]).to_pylist(), e)
        with self._lock:
            stats = rep.files[spec.name]
            stats.read += table.num_rows
            stats.accepted += n_good
            stats.quarantined += table.num_rows - n_good
            rep.phases["check_and_load"] += time.perf_counter() - t0

    def _count(self, found: pa.Table, has_err: pa.ChunkedArray, n_bad: int) -> None:
        """Good and bad rows per file of a checked batch (for the all-garbage stop and for failed files)."""
        totals = pc.value_counts(found["_seq"])
        bad: dict[int, int] = {}
        if n_bad:
            counts = pc.value_counts(found.filter(has_err)["_seq"])
            bad = dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True))
        with self._lock:
            for seq, n in zip(totals.field("values").to_pylist(), totals.field("counts").to_pylist(), strict=True):
                track = self._files.get(seq)
                if track is not None:
                    b = bad.get(seq, 0)
                    track.bad += b
                    track.good += n - b

    def _report_flagged(self, st: Staging, spec: FileSpec, table: pa.Table, flagged: pa.Table,
                        positions: tuple[int, ...] | None, width: int) -> None:
        """Quarantine entries for the (few) rows with errors or warnings, with the value as read."""
        rep = self.report
        assert rep is not None
        flagged = self._within_cap(flagged)
        if not flagged.num_rows:
            return
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
                            raw=raw[:RAW_KEPT] if errs else "")
                p.sha = sha  # type: ignore[attr-defined]
                batch.append(p)
        st.add_problems(batch, rep.import_id)
        with self._lock:
            for p in batch:
                rep.reasons[(spec.name, p.rule, p.severity)] += 1
                if p.severity == "warning":
                    rep.files[spec.name].warnings += 1
            rep.problems += len(batch)

    def _within_cap(self, flagged: pa.Table) -> pa.Table:
        """The flagged rows that still get entries: at most ``max_quarantine_per_file`` per file; the rest are
        counted (one summary entry per file at the end)."""
        cap = self.limits.max_quarantine_per_file
        keep: list[bool] = []
        with self._lock:
            for seq in flagged["_seq"].to_pylist():
                track = self._files.get(seq)
                if track is None or track.entered < cap:
                    keep.append(True)
                    if track is not None:
                        track.entered += 1
                else:
                    keep.append(False)
                    track.capped += 1
        return flagged if all(keep) else flagged.filter(pa.array(keep, pa.bool_()))

    def _outcomes(self) -> None:
        """After the last batch: report failed, all-garbage and capped files (main thread); failed files' rows go."""
        rep = self.report
        assert rep is not None
        cap = self.limits.max_quarantine_per_file
        for seq, t in sorted(self._files.items()):
            if t.error:
                self._problems([Problem(
                    t.label, t.file, 0, "", "", "file_failed",
                    f"นำเข้าแฟ้มนี้ไม่สำเร็จ ไม่มีแถวใดของแฟ้มนี้เข้าที่พักข้อมูล ({t.error})",
                    f"this file failed to import: none of its rows were loaded ({t.error})", t.hospcode)], t.sha)
                stats = rep.files[t.file]
                stats.accepted -= t.good
                stats.not_loaded += t.good
                self._drop.setdefault(t.file, []).append(seq)
            elif not t.garbage and t.good == 0 and t.bad >= cap:
                self._garbage(t, stopped=False)
            if t.capped:
                self._problems([Problem(
                    t.label, t.file, 0, "", f"{t.capped:,}", "quarantine_capped",
                    f"อีก {t.capped:,} แถวที่ผิดหรือมีคำเตือนไม่ได้บันทึกรายการ (เกิน [import] max_quarantine_per_file = "
                    f"{cap:,} ต่อแฟ้ม)", f"{t.capped:,} more rows with errors or warnings have no entry (over "
                    f"[import] max_quarantine_per_file = {cap:,} per file)", t.hospcode, "warning")], t.sha)

    def _compact(self, spec: FileSpec) -> None:
        rep = self.report
        assert rep is not None
        t0 = time.perf_counter()
        if spec.name in self._drop:  # files that failed: none of their rows stay
            self.st.drop_files(spec, rep.import_id, self._drop[spec.name])
        # rejected PERSON rows and principal diagnoses: their visits say so (held, not sent without them)
        self.st.note_rejected(spec, rep.import_id, self._seq_sha, {k: (r.th, r.en) for k, r in RULES.items()})
        self.st.drop_rejected(spec, rep.import_id)  # rows with errors are in quarantine, not staging
        r = RULES["duplicate_key"]
        dups = self.st.quarantine_duplicates(spec, rep.import_id, self._seq_sha, r.th, r.en,
                                             self.limits.max_quarantine_per_file)
        stats = rep.files[spec.name]
        if dups:
            stats.accepted -= dups
            stats.quarantined += dups
            rep.reasons[(spec.name, "duplicate_key", "error")] += dups
        sets = self.st.replace_visit_sets(spec, rep.import_id)
        stats.superseded += sets["superseded"]
        stats.superseded_old += sets["superseded_old"]
        res = self.st.compact(spec, rep.import_id)
        self.st.clear_rejected(spec, rep.import_id)
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
        self._outcomes()
        for name in schema.ORDER:
            if name in self._touched:
                self._compact(schema.get(name))
        t0 = time.perf_counter()  # the web's encounters per facility and day, for the facilities this import wrote
        aggregates.refresh(self.st.con, aggregates.touched_by(self.st.con, [rep.import_id, *self._recovered]))
        rep.phases["aggregates"] += time.perf_counter() - t0
        self.st.record_sources(rep.import_id, [s for s in self._sources if s[0] not in self._incomplete])
        self._sources.clear()
        self._touched.clear()
        rep.seconds = time.perf_counter() - self._t0
        self.st.finish_import(rep.import_id, "done", json.dumps(rep.to_dict(), ensure_ascii=False))
        return rep


def _store_broken(st: Staging, e: BaseException) -> StagingError:
    return StagingError(f"เขียนที่พักข้อมูล {st.path} ไม่ได้ ({e})", f"cannot write the staging store {st.path}: {e}")


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
