"""Import: sources → row checks → quarantine or staging. Nothing in the input can stop a run.

Each export container (a zip, or a loose .txt) is fingerprinted; one already imported is skipped
unless forced, and a forced one replaces its own quarantine entries. Rows are checked a chunk at a
time inside DuckDB, good rows go to holding tables, and each 43-file type is merged into staging
once at the end, so the cost of merging does not grow with the number of zips.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phrsync.f43 import schema
from phrsync.f43.checks import RULES, check_sql, load_code_sets, q
from phrsync.f43.reader import Member, iter_members, read_member
from phrsync.f43.schema import FileSpec
from phrsync.f43.source import Chunk, Problem
from phrsync.f43.staging import MERGE_THRESHOLD, Staging, table_name
from phrsync.pdpa import mask_value

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

    @property
    def rows_read(self) -> int:
        return sum(s.read for s in self.files.values())

    @property
    def rows_quarantined(self) -> int:
        return sum(s.quarantined for s in self.files.values())

    def as_dict(self) -> dict[str, Any]:
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
            "files": {k: vars(v) for k, v in sorted(self.files.items())},
            "quarantine_by_reason": per_reason,
        }


class Importer:
    """One import run into a staging store."""

    def __init__(self, staging: Staging, *, today: dt.date | None = None, force: bool = False,
                 progress: ProgressFn | None = None) -> None:
        self.st = staging
        self.today = today or dt.date.today()
        self.force = force
        self.progress = progress
        self.code_sets = load_code_sets()
        self._sql: dict[str, str] = {}
        self._seq = 0
        self._seq_sha: dict[int, str] = {}
        self._touched: set[str] = set()
        self.report: ImportReport | None = None

    # -- public entry points --------------------------------------------------------------------
    def import_paths(self, paths: Iterable[str | Path]) -> ImportReport:
        paths = [Path(p) for p in paths]
        rep = self._start("files", ", ".join(str(p) for p in paths))
        containers: dict[str, list[Member]] = defaultdict(list)
        order: list[str] = []
        for m in iter_members(paths):
            if isinstance(m, Problem):
                self._problems([m], "")
                continue
            key = m.container if m.container.lower().endswith(".zip") else f"{m.container}/{m.name}"
            if key not in containers:
                order.append(key)
            containers[key].append(m)
        total = len(order)
        for i, key in enumerate(order):
            members = containers[key]
            path = Path(key)
            sha = _sha256(path)
            if self.st.source_imported(sha) and not self.force:
                rep.skipped += 1
                self._tick(path.name, i + 1, total)
                continue
            if self.force:
                self.st.forget_quarantine(sha)
            rep.sources += 1
            before_rows, before_q = rep.rows_read, rep.rows_quarantined
            for m in members:
                self._seq += 1
                self._seq_sha[self._seq] = sha
                for chunk in read_member(m):
                    self._chunk(chunk, sha, self._seq)
            self._merge_if_large()
            self.st.record_source(sha, str(path), members[0].hospcode if members else "", rep.import_id,
                                  rep.rows_read - before_rows, rep.rows_quarantined - before_q)
            self._tick(path.name, i + 1, total)
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
            self._merge_if_large()
            self._tick(chunk.source, n, 0)
        assert self.report is not None
        self.report.sources = len(seqs)
        return self._finish()

    # -- internals ------------------------------------------------------------------------------
    def _start(self, kind: str, target: str) -> ImportReport:
        iid = self.st.begin_import(kind, target)
        self.report = ImportReport(import_id=iid, started=dt.datetime.now())
        self._t0 = time.perf_counter()
        # holding tables left by a crashed run hold rows of sources not marked imported: start clean
        for spec in schema.FILES.values():
            self.st.con.execute(f"DROP TABLE IF EXISTS _in_{spec.table}")
        return self.report

    def _tick(self, label: str, done: int, total: int) -> None:
        if self.progress:
            self.progress(label, done, total)

    def _problems(self, problems: list[Problem], sha: str) -> None:
        rep = self.report
        assert rep is not None
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
        rep = self.report
        assert rep is not None
        spec = chunk.spec
        self._problems(chunk.problems, sha)
        if chunk.num_rows == 0:
            return
        con = self.st.con
        sql = self._sql.get(spec.name)
        if sql is None:
            sql = self._sql[spec.name] = check_sql(spec, "_chunk", self.today, self.code_sets)
        con.register("_chunk", chunk.table)
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE _chk AS {sql}")
        finally:
            con.unregister("_chunk")
        hold = self.st.holding(spec)
        self._touched.add(spec.name)
        cols = ", ".join(q(f.name) for f in spec.fields)
        con.execute(
            f"INSERT INTO {hold} SELECT {cols}, ?, ?, _line, ?, hash({cols}) FROM _chk WHERE len(_errs) = 0",
            [rep.import_id, chunk.source, seq])
        good = int(con.execute("SELECT count(*) FROM _chk WHERE len(_errs) = 0").fetchone()[0])  # type: ignore[index]
        bad_rows = con.execute(
            "SELECT _line, _raw, _errs, _warns, " + ", ".join(q("_t_" + n) for n in spec.field_names)
            + " FROM _chk WHERE len(_errs) > 0 OR len(_warns) > 0").fetchall()
        stats = rep.files[spec.name]
        stats.read += chunk.num_rows
        stats.accepted += good
        stats.quarantined += chunk.num_rows - good
        problems: list[Problem] = []
        idx = {n: i + 4 for i, n in enumerate(spec.field_names)}
        for row in bad_rows:
            line, raw, errs, warns = row[0], row[1], row[2], row[3]
            hosp = row[idx["HOSPCODE"]] or chunk.hospcode
            for item, severity in [(e, "error") for e in errs] + [(w, "warning") for w in warns]:
                fname, rule = item.split(":", 1)
                f = spec.by_name[fname]
                r = RULES[rule]
                problems.append(Problem(
                    source=chunk.source, file=spec.name, line=line, field=fname,
                    value=mask_value(row[idx[fname]], f.personal), rule=rule,
                    reason_th=_reason_th(r.th, f), reason_en=_reason_en(r.en, f),
                    hospcode=hosp or "", severity=severity, raw=raw if errs else ""))
        con.execute("DROP TABLE _chk")
        if problems:
            self.st.add_problems(problems, rep.import_id, sha)
            for p in problems:
                rep.reasons[(p.file, p.rule, p.severity)] += 1
                if p.severity == "warning":
                    stats.warnings += 1
            rep.problems += len(problems)

    def _merge_if_large(self) -> None:
        for name in list(self._touched):
            spec = schema.get(name)
            if self.st.holding_rows(spec) >= MERGE_THRESHOLD:
                self._merge(spec)

    def _merge(self, spec: FileSpec) -> None:
        rep = self.report
        assert rep is not None
        dups = self._duplicates(spec)
        stats = rep.files[spec.name]
        stats.accepted -= dups
        stats.quarantined += dups
        if dups:
            rep.reasons[(spec.name, "duplicate_key", "error")] += dups
        res = self.st.merge(spec)
        stats.inserted += res["inserted"]
        stats.replaced += res["replaced"]
        stats.unchanged += res["unchanged"]

    def _duplicates(self, spec: FileSpec) -> int:
        """Rows whose key repeats an earlier row of the same file: quarantined, first one kept."""
        rep = self.report
        assert rep is not None
        hold = f"_in_{spec.table}"
        if not self.st.holding_rows(spec):
            return 0
        keys = ", ".join(q(k) for k in spec.key)
        con = self.st.con
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _dup AS SELECT _seq, _line FROM {hold} "
            f"QUALIFY row_number() OVER (PARTITION BY _seq, {keys} ORDER BY _line) > 1")
        n = int(con.execute("SELECT count(*) FROM _dup").fetchone()[0])  # type: ignore[index]
        if n:
            con.execute("CREATE OR REPLACE TEMP TABLE _seqsha (seq BIGINT, sha VARCHAR)")
            con.executemany("INSERT INTO _seqsha VALUES (?, ?)", list(self._seq_sha.items()))
            r = RULES["duplicate_key"]
            key_txt = " || '|' || ".join(f"coalesce(CAST(h.{q(k)} AS VARCHAR), '')" for k in spec.key)
            all_txt = " || '|' || ".join(f"coalesce(CAST(h.{q(f.name)} AS VARCHAR), '')" for f in spec.fields)
            personal_key = any(spec.by_name[k].personal for k in spec.key)
            con.execute(
                "INSERT INTO quarantine (import_id, source_sha, hospcode, file, source, line, field, value, rule,"
                " severity, reason_th, reason_en, raw) "
                f"SELECT ?, coalesce(s.sha, ''), h.\"HOSPCODE\", ?, h._source, h._line, ?, "
                f"{'NULL' if personal_key else key_txt}, 'duplicate_key', 'error', ?, ?, {all_txt} "
                f"FROM {hold} h JOIN _dup d USING (_seq, _line) LEFT JOIN _seqsha s ON s.seq = h._seq",
                [rep.import_id, spec.name, ",".join(spec.key), r.th, r.en])
            con.execute(f"DELETE FROM {hold} h USING _dup d WHERE h._seq = d._seq AND h._line = d._line")
        con.execute("DROP TABLE _dup")
        con.execute("DROP TABLE IF EXISTS _seqsha")
        return n

    def _finish(self) -> ImportReport:
        rep = self.report
        assert rep is not None
        for name in schema.ORDER:
            if name in self._touched:
                self._merge(schema.get(name))
        self._touched.clear()
        rep.seconds = time.perf_counter() - self._t0
        self.st.finish_import(rep.import_id, "done", json.dumps(rep.as_dict(), ensure_ascii=False))
        return rep


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
