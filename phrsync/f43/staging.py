"""The staging store: every good 43-file row, typed, one table per file, in one DuckDB file.

Why DuckDB: the later stages read whole facility-months column-wise (mapping joins SERVICE with its
child files), and bulk upserts of millions of rows are set operations here, not row-by-row work.
``benchmarks/staging_bench.py`` measures it against SQLite on the same rows.

Checked rows are appended as new versions; at the end of an import one set-based pass per 43-file
keeps, for each key the import touched, the row with the latest D_UPDATE (an equal D_UPDATE goes to the
newer import; an identical re-send keeps the stored row). The cost of that pass does not multiply by the
number of zips, and re-importing the same export changes nothing.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from phrsync.errors import StoreError
from phrsync.f43 import schema
from phrsync.f43.checks import q
from phrsync.f43.schema import FileSpec
from phrsync.f43.source import Problem

DEFAULT_MEMORY_LIMIT = "256MB"
# (stores made before 0.2 also have a ``_hash`` column; it is no longer filled: compaction hashes the
# few rows it compares instead of every row at insert, which cost ~5% of the import)
# ``_errs``/``_warns``: the row checks' findings ("FIELD:rule,..."; NULL = none). A batch is written once, checked
# rows and all; rows with errors are taken out again when the import compacts (see :meth:`drop_rejected`).
META_COLS = {"_import": "INTEGER", "_source": "VARCHAR", "_line": "BIGINT", "_seq": "BIGINT", "_errs": "VARCHAR",
             "_warns": "VARCHAR"}


# Files that hold a visit's rows as a set (its diagnoses, procedures, drugs, labs, appointments), with the key
# of the visit they belong to. A newer export of the visit replaces the set (see Staging.replace_visit_sets).
VISIT_SETS: dict[str, tuple[str, ...]] = {
    "DIAGNOSIS_OPD": ("HOSPCODE", "SEQ"), "PROCEDURE_OPD": ("HOSPCODE", "SEQ"), "DRUG_OPD": ("HOSPCODE", "SEQ"),
    "LABFU": ("HOSPCODE", "SEQ"), "APPOINTMENT": ("HOSPCODE", "SEQ"),
    "DIAGNOSIS_IPD": ("HOSPCODE", "AN"), "PROCEDURE_IPD": ("HOSPCODE", "AN"), "DRUG_IPD": ("HOSPCODE", "AN"),
}


# Rows whose rejection a later stage must know about, by the key they would have had: a PERSON row (its visits
# say why they have no person) and a principal diagnosis (DIAGTYPE 1: its visit is held, not sent without it).
# ``ref`` is the visit's SEQ or AN. One entry per key (the latest rejection); see Staging.note_rejected.
REJECTED_COLS = ("file VARCHAR, hospcode VARCHAR, pid VARCHAR, ref VARCHAR, import_id INTEGER, source_sha VARCHAR, "
                 "source VARCHAR, line BIGINT, rule VARCHAR, reason_th VARCHAR, reason_en VARCHAR")
# 43-file -> (condition on its rejected rows, the visit column it is held under or None)
REJECTED_KEPT: dict[str, tuple[str, str | None]] = {
    "PERSON": ("TRUE", None),
    "DIAGNOSIS_OPD": ("trim(\"DIAGTYPE\") = '1'", "SEQ"),
    "DIAGNOSIS_IPD": ("trim(\"DIAGTYPE\") = '1'", "AN"),
}


def table_name(spec: FileSpec) -> str:
    return f"f43_{spec.table}"


LOCK_WAIT_SECONDS = 5.0


def is_locked(e: BaseException) -> bool:
    """Is this DuckDB error "another process holds the file" (as opposed to a broken or missing one)?"""
    return isinstance(e, duckdb.IOException) and "lock" in str(e).lower()


class StagingError(StoreError):
    """The staging store cannot be opened or used (exit 7): held by another program (``locked``), or broken."""

    def __init__(self, th: str, en: str | None = None, *, locked: bool = False, **kw: Any) -> None:
        super().__init__(th, en, **kw)
        self.locked = locked


class Staging:
    """A handle on the staging DuckDB file. Use as a context manager."""

    def __init__(self, path: str | Path, read_only: bool = False, memory_limit: str | None = None,
                 lock_wait: float | None = None) -> None:
        """``lock_wait``: seconds to keep trying while another process holds the file (default: 5 for a writer,
        whom a reader such as the monitoring web holds up for milliseconds; none for a reader)."""
        self.path = Path(path)
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        wait = (0.0 if read_only else LOCK_WAIT_SECONDS) if lock_wait is None else lock_wait
        until = time.monotonic() + wait
        while True:
            try:
                self.con = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.IOException as e:
                if is_locked(e) and time.monotonic() < until:
                    time.sleep(0.05)
                    continue
                raise StagingError(f"เปิดฐานข้อมูลพักข้อมูล {self.path} ไม่ได้ (อาจมีโปรแกรมอื่นใช้อยู่)",
                                   f"cannot open staging store {self.path}: {e}", locked=is_locked(e)) from e
        # DuckDB's cache grows to this limit and spills beyond it: it bounds the import's memory
        limit = memory_limit or os.environ.get("PHRSYNC_STAGING_MEMORY", DEFAULT_MEMORY_LIMIT)
        self.con.execute(f"SET memory_limit = '{limit}'")
        self.con.execute(f"SET VARIABLE phrsync_memory_limit = '{limit}'")  # as set (f43.extract.release_cache)
        self.con.execute("SET preserve_insertion_order = false")
        if not read_only:
            self.ensure_schema()

    def cursor(self) -> Staging:
        """Another handle on the same open database, for a second thread (DuckDB cursors run in
        parallel; appends to one table from several cursors do not conflict)."""
        other = Staging.__new__(Staging)
        other.path = self.path
        other.con = self.con.cursor()
        return other

    # -- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        else:
            self.con.execute("COMMIT")

    # -- schema ---------------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        c = self.con
        c.execute("CREATE SEQUENCE IF NOT EXISTS import_ids START 1")
        c.execute("CREATE SEQUENCE IF NOT EXISTS quarantine_ids START 1")
        c.execute("""CREATE TABLE IF NOT EXISTS imports (
            id INTEGER PRIMARY KEY, started TIMESTAMP, finished TIMESTAMP, status VARCHAR,
            kind VARCHAR, target VARCHAR, summary JSON)""")
        c.execute("""CREATE TABLE IF NOT EXISTS sources (
            sha256 VARCHAR PRIMARY KEY, container VARCHAR, hospcode VARCHAR, import_id INTEGER,
            imported TIMESTAMP, rows BIGINT, quarantined BIGINT)""")
        c.execute("""CREATE TABLE IF NOT EXISTS quarantine (
            id BIGINT DEFAULT nextval('quarantine_ids'), import_id INTEGER, source_sha VARCHAR,
            hospcode VARCHAR, file VARCHAR, source VARCHAR, line BIGINT, field VARCHAR, value VARCHAR,
            rule VARCHAR, severity VARCHAR, reason_th VARCHAR, reason_en VARCHAR, raw VARCHAR,
            created TIMESTAMP DEFAULT current_timestamp)""")
        c.execute(f"CREATE TABLE IF NOT EXISTS rejected_keys ({REJECTED_COLS})")
        for spec in schema.FILES.values():
            cols = [f"{q(f.name)} {f.duck_type}" for f in spec.fields]
            cols += [f"{k} {v}" for k, v in META_COLS.items()]
            c.execute(f"CREATE TABLE IF NOT EXISTS {table_name(spec)} ({', '.join(cols)})")
            for k in ("_errs", "_warns"):  # stores made before these columns existed
                c.execute(f"ALTER TABLE {table_name(spec)} ADD COLUMN IF NOT EXISTS {k} VARCHAR")
        from phrsync.f43 import aggregates  # (it reads this module's table names)

        aggregates.ensure(c)  # a store made before the table: filled once, here

    # -- imports log ----------------------------------------------------------------------------
    def begin_import(self, kind: str, target: str) -> int:
        (iid,) = self.row("SELECT nextval('import_ids')")
        self.con.execute("INSERT INTO imports VALUES (?, ?, NULL, 'running', ?, ?, NULL)",
                         [iid, dt.datetime.now(), kind, target])
        return int(iid)

    def finish_import(self, import_id: int, status: str, summary_json: str) -> None:
        self.con.execute("UPDATE imports SET finished = ?, status = ?, summary = ? WHERE id = ?",
                         [dt.datetime.now(), status, summary_json, import_id])

    def imported_sources(self) -> set[str]:
        return {r[0] for r in self.con.execute("SELECT sha256 FROM sources").fetchall()}

    def record_sources(self, import_id: int, sources: list[tuple[str, str, str, int]]) -> None:
        """Mark exports (sha256, container, hospcode, rows) as imported: their rows are in staging and
        their problems in quarantine. One statement for all of them."""
        if not sources:
            return
        c = self.con
        cols = list(zip(*sources, strict=True))
        src = pa.table({"sha256": pa.array(cols[0], pa.string()), "container": pa.array(cols[1], pa.string()),
                        "hospcode": pa.array(cols[2], pa.string()), "rows": pa.array(cols[3], pa.int64())})
        c.register("_src_arrow", src)
        c.execute("CREATE OR REPLACE TEMP TABLE _src AS SELECT * FROM _src_arrow")
        c.unregister("_src_arrow")
        c.execute("DELETE FROM sources WHERE sha256 IN (SELECT sha256 FROM _src)")
        c.execute(
            "INSERT INTO sources SELECT s.sha256, s.container, s.hospcode, ?, ?, s.rows, coalesce(q.n, 0) FROM _src s "
            "LEFT JOIN (SELECT source_sha, count(DISTINCT (source, line)) AS n FROM quarantine "
            "WHERE severity = 'error' AND import_id = ? GROUP BY source_sha) q ON q.source_sha = s.sha256",
            [import_id, dt.datetime.now(), import_id])
        c.execute("DROP TABLE _src")

    def quarantined_sources(self) -> set[str]:
        """The exports that have quarantine entries (their entries are replaced when one is read again)."""
        return {r[0] for r in self.con.execute("SELECT DISTINCT source_sha FROM quarantine").fetchall()}

    def forget_quarantine(self, sha256: str) -> None:
        """Before a forced re-import of a source: its old quarantine entries would be duplicated."""
        self.con.execute("DELETE FROM quarantine WHERE source_sha = ?", [sha256])
        self.con.execute("DELETE FROM rejected_keys WHERE source_sha = ?", [sha256])

    def note_rejected(self, spec: FileSpec, import_id: int, seq_sha: dict[int, str],
                      reasons: dict[str, tuple[str, str]]) -> None:
        """Before :meth:`drop_rejected`: remember the keys of this import's rejected PERSON rows and principal
        diagnoses (:data:`REJECTED_KEPT`) with the first reason (``reasons``: rule -> (Thai, English)); an entry
        is dropped once its key is staged again (a corrected export). Rejected rows are few; the staged side is
        read only for the keys with entries."""
        kept = REJECTED_KEPT.get(spec.name)
        if kept is None:
            return
        cond, ref = kept
        t = table_name(spec)
        c = self.con
        ref_sql = f'x."{ref}"' if ref else "NULL"
        ident = ref_sql if ref else 'x."PID"'  # what names the entry: the visit, or the person
        rules = pa.table({"code": list(reasons), "th": [v[0] for v in reasons.values()],
                          "en": [v[1] for v in reasons.values()]})
        seqsha = pa.table({"seq": pa.array(list(seq_sha), pa.int64()),
                           "sha": pa.array(list(seq_sha.values()), pa.string())})
        c.register("_rules_arrow", rules)
        c.register("_rseqsha_arrow", seqsha)
        try:
            c.execute(
                f"CREATE OR REPLACE TEMP TABLE _rej AS SELECT ?::VARCHAR AS file, x.\"HOSPCODE\" AS hospcode, "
                f"x.\"PID\" AS pid, {ref_sql} AS ref, ?::INTEGER AS import_id, coalesce(s.sha, '') AS source_sha, "
                "x._source AS source, x._line AS line, r.code AS rule, "
                "split_part(split_part(x._errs, ',', 1), ':', 1) || ': ' || coalesce(r.th, r.code) AS reason_th, "
                "split_part(split_part(x._errs, ',', 1), ':', 1) || ': ' || coalesce(r.en, r.code) AS reason_en "
                f"FROM {t} x LEFT JOIN _rseqsha_arrow s ON s.seq = x._seq "
                "LEFT JOIN _rules_arrow r ON r.code = split_part(split_part(x._errs, ',', 1), ':', 2) "
                f"WHERE x._import = ? AND x._errs IS NOT NULL AND ({cond}) AND x.\"HOSPCODE\" IS NOT NULL "
                f"AND {ident} IS NOT NULL "
                f"QUALIFY row_number() OVER (PARTITION BY x.\"HOSPCODE\", {ident} "
                "ORDER BY x._line DESC) = 1",
                [spec.name, import_id, import_id])
        finally:
            c.unregister("_rules_arrow")
            c.unregister("_rseqsha_arrow")
        same = "n.ref = r.ref" if ref else "n.pid = r.pid"
        c.execute("DELETE FROM rejected_keys r WHERE file = ? AND EXISTS (SELECT 1 FROM _rej n WHERE "
                  f"n.hospcode = r.hospcode AND {same})", [spec.name])
        c.execute("INSERT INTO rejected_keys SELECT * FROM _rej")
        c.execute("DROP TABLE _rej")

    def clear_rejected(self, spec: FileSpec, import_id: int) -> None:
        """After :meth:`compact`: entries whose key this import staged a good row for are history (a person's
        corrected PERSON row, a visit's new principal diagnosis)."""
        kept = REJECTED_KEPT.get(spec.name)
        if kept is None:
            return
        cond, ref = kept
        t = table_name(spec)
        match = f'x."{ref}" = r.ref' if ref else 'x."PID" = r.pid'
        self.con.execute(
            f"DELETE FROM rejected_keys r WHERE r.file = ? AND r.import_id <> ? AND EXISTS (SELECT 1 FROM {t} x "
            f"WHERE x._import = ? AND x.\"HOSPCODE\" = r.hospcode AND {match} AND ({cond}))",
            [spec.name, import_id, import_id])

    # -- quarantine -----------------------------------------------------------------------------
    def add_problems(self, problems: Iterable[Problem], import_id: int, source_sha: str | None = None) -> int:
        """Store problems (one Arrow insert, not row by row). ``source_sha`` overrides each problem's
        own ``sha`` attribute when given."""
        items = list(problems)
        if not items:
            return 0
        cols = {
            "source_sha": [source_sha if source_sha is not None else getattr(p, "sha", "") for p in items],
            "hospcode": [p.hospcode for p in items], "file": [p.file for p in items],
            "source": [p.source for p in items], "line": [p.line for p in items],
            "field": [p.field for p in items], "value": [p.value for p in items],
            "rule": [p.rule for p in items], "severity": [p.severity for p in items],
            "reason_th": [p.reason_th for p in items], "reason_en": [p.reason_en for p in items],
            "raw": [p.raw for p in items],
        }
        t = pa.table({k: pa.array(v, pa.int64() if k == "line" else pa.string()) for k, v in cols.items()})
        self.con.register("_problems", t)
        try:
            self.con.execute(
                "INSERT INTO quarantine (import_id, source_sha, hospcode, file, source, line, field, value, rule,"
                " severity, reason_th, reason_en, raw) SELECT ?, source_sha, hospcode, file, source, line, field,"
                " value, rule, severity, reason_th, reason_en, raw FROM _problems", [import_id])
        finally:
            self.con.unregister("_problems")
        return len(items)

    # -- versions and compaction --------------------------------------------------------------
    def append_checked(self, spec: FileSpec, checked_sql: str, import_id: int) -> pa.Table:
        """Write a checked batch (the query of :func:`~phrsync.f43.checks.check_sql`) in one pass, rows with
        findings included; returns ``_seq, _line, _errs, _warns`` of every row so the caller can report the
        few flagged ones. Rows with errors stay invisible to later stages: :meth:`drop_rejected` removes them
        before the import compacts (one write per row instead of a checked copy and then the good rows)."""
        cols = ", ".join(q(f.name) for f in spec.fields)
        return self.con.sql(  # an INSERT through sql() runs once, right here (its result is materialized)
            f"INSERT INTO {table_name(spec)} ({cols}, _import, _source, _line, _seq, _errs, _warns) "
            f"SELECT {cols}, ?, _src, _line, _seq, _errs, _warns FROM ({checked_sql}) "
            "RETURNING _seq, _line, _errs, _warns", params=[import_id]).to_arrow_table()

    def drop_files(self, spec: FileSpec, import_id: int, seqs: list[int]) -> None:
        """Take every row of these files (sequence numbers of this import) out: files whose import failed
        load nothing rather than an arbitrary part."""
        self.con.execute(f"DELETE FROM {table_name(spec)} WHERE _import = ? AND list_contains(?, _seq)",
                         [import_id, seqs])
        self.settle()

    def drop_rejected(self, spec: FileSpec, import_id: int) -> None:
        """Take this import's rows with errors out of staging (they are in quarantine)."""
        self.con.execute(f"DELETE FROM {table_name(spec)} WHERE _import = ? AND _errs IS NOT NULL", [import_id])
        self.settle()

    def settle(self) -> None:
        """Write the deletes made so far into the file. Until a checkpoint DuckDB keeps every block a DELETE
        touched pinned in memory, where it cannot be evicted or spilled; the WAL of deletes (8 bytes a row)
        seldom reaches the automatic checkpoint's threshold. One import of a year (36M rows, 1% rejected
        rows spread over every block) pinned 348 MB of the 256 MB limit, and the next query that needed
        memory (the duplicate check) failed; after a checkpoint 46 MB stayed. A checkpoint with nothing
        to write costs nothing."""
        self.con.execute("CHECKPOINT")

    def quarantine_duplicates(self, spec: FileSpec, import_id: int, seq_sha: dict[int, str],
                              reason_th: str, reason_en: str, max_entries: int | None = None) -> int:
        """Rows of this import whose key repeats another row of the same file: the row with the latest D_UPDATE
        stays (an equal D_UPDATE: the later line), as the README promises ("the latest wins"); the others are
        quarantined, each entry naming the line that replaced it. At most ``max_entries`` of them per file get
        an entry (all are taken out of staging and counted).

        Only the repeated (file, key) pairs are ranked (one hash aggregate finds them), so millions of rows with
        a few repeats cost one pass, not a sort (tests/test_f43_memory.py)."""
        t = table_name(spec)
        keys = ", ".join(q(k) for k in spec.key)
        tkeys = ", ".join("t." + q(k) for k in spec.key)
        c = self.con
        # find repeated (file, key) pairs with one aggregate; rank only those rows
        c.execute(
            f"CREATE OR REPLACE TEMP TABLE _dup AS WITH rep AS (SELECT _seq, {keys} FROM {t} WHERE _import = ? "
            f"GROUP BY _seq, {keys} HAVING count(*) > 1) "
            f"SELECT t.rowid AS rid, first_value(t._line) OVER w AS kept FROM {t} t SEMI JOIN rep USING (_seq, {keys})"
            f" WHERE t._import = ? "
            f"WINDOW w AS (PARTITION BY t._seq, {tkeys} ORDER BY t.\"D_UPDATE\" DESC NULLS LAST, t._line DESC) "
            f"QUALIFY row_number() OVER w > 1", [import_id, import_id])
        n = int(self.row("SELECT count(*) FROM _dup")[0])
        if n:
            seqsha = pa.table({"seq": pa.array(list(seq_sha), pa.int64()),
                               "sha": pa.array(list(seq_sha.values()), pa.string())})
            c.register("_seqsha_arrow", seqsha)
            c.execute("CREATE OR REPLACE TEMP TABLE _seqsha AS SELECT * FROM _seqsha_arrow")
            c.unregister("_seqsha_arrow")
            key_txt = " || '|' || ".join(f"coalesce(CAST(h.{q(k)} AS VARCHAR), '')" for k in spec.key)
            all_txt = " || '|' || ".join(f"coalesce(CAST(h.{q(f.name)} AS VARCHAR), '')" for f in spec.fields)
            personal_key = any(spec.by_name[k].personal for k in spec.key)
            th = "? || ' (แทนที่ด้วยบรรทัด ' || d.kept || ' ของแฟ้มเดียวกัน)'"
            en = "? || ' (replaced by line ' || d.kept || ' of the same file)'"
            c.execute(
                "INSERT INTO quarantine (import_id, source_sha, hospcode, file, source, line, field, value, rule,"
                " severity, reason_th, reason_en, raw) "
                f"SELECT ?, coalesce(s.sha, ''), h.\"HOSPCODE\", ?, h._source, h._line, ?, "
                f"{'NULL' if personal_key else key_txt}, 'duplicate_key', 'error', {th}, {en}, {all_txt} "
                f"FROM {t} h JOIN _dup d ON h.rowid = d.rid LEFT JOIN _seqsha s ON s.seq = h._seq"
                + (" QUALIFY row_number() OVER (PARTITION BY h._seq ORDER BY h._line) <= ?" if max_entries else ""),
                [import_id, spec.name, ",".join(spec.key), reason_th, reason_en]
                + ([max_entries] if max_entries else []))
            c.execute(f"DELETE FROM {t} WHERE rowid IN (SELECT rid FROM _dup)")
            c.execute("DROP TABLE _seqsha")
        c.execute("DROP TABLE _dup")
        if n:
            self.settle()
        return n

    def replace_visit_sets(self, spec: FileSpec, import_id: int) -> dict[str, int]:
        """A visit's child rows (:data:`VISIT_SETS`) go as a set: of the exports (file read, ``_import``/``_seq``)
        holding rows of a visit this import touched, the NEWER one decides which rows the visit has, and rows of
        the others whose key it lacks are taken out (an old export's E119 does not stay beside a new export's
        I10). Newer = the latest D_UPDATE among the export's rows of that visit; equal: the later import, then
        the later file read, as :meth:`compact` breaks ties. So the order in which exports arrive does not matter.
        Rows whose key the newer export has are left to :meth:`compact` (latest D_UPDATE per key).

        Returns ``{"superseded": rows of this import taken out, "superseded_old": rows of earlier imports}``.
        One aggregate finds the visits with rows from more than one export; only those are ranked."""
        vk = VISIT_SETS.get(spec.name)
        if vk is None:
            return {"superseded": 0, "superseded_old": 0}
        t = table_name(spec)
        vl = ", ".join(q(k) for k in vk)
        kl = ", ".join(q(k) for k in spec.key)
        c = self.con
        c.execute(f"CREATE OR REPLACE TEMP TABLE _vv AS SELECT {vl} FROM {t} GROUP BY {vl} HAVING bool_or(_import = ?)"
                  " AND (min(_import) <> max(_import) OR min(_seq) <> max(_seq))", [import_id])
        new = old = 0
        if int(self.row("SELECT count(*) FROM _vv")[0]):
            c.execute(
                f"CREATE OR REPLACE TEMP TABLE _w AS SELECT {vl}, _import, _seq FROM (SELECT {vl}, _import, _seq, "
                f"max(\"D_UPDATE\") AS mx FROM {t} SEMI JOIN _vv USING ({vl}) GROUP BY ALL) "
                f"QUALIFY row_number() OVER (PARTITION BY {vl} ORDER BY mx DESC NULLS LAST, _import DESC, _seq DESC) = 1")
            c.execute(f"CREATE OR REPLACE TEMP TABLE _wk AS SELECT {kl} FROM {t} SEMI JOIN _w USING ({vl}, _import, _seq)")
            c.execute(f"CREATE OR REPLACE TEMP TABLE _lose AS SELECT x.rowid AS rid, x._import = ? AS is_new "
                      f"FROM {t} x SEMI JOIN _vv USING ({vl}) ANTI JOIN _wk USING ({kl})", [import_id])
            new, old = self.row("SELECT count(*) FILTER (WHERE is_new), count(*) FILTER (WHERE NOT is_new) FROM _lose")
            if new or old:
                c.execute(f"DELETE FROM {t} WHERE rowid IN (SELECT rid FROM _lose)")
            for tmp in ("_lose", "_wk", "_w"):
                c.execute(f"DROP TABLE {tmp}")
        c.execute("DROP TABLE _vv")
        if new or old:
            self.settle()
        return {"superseded": int(new), "superseded_old": int(old)}

    def compact(self, spec: FileSpec, import_id: int) -> dict[str, int]:
        """Keep one version per key among the keys this import touched: the latest D_UPDATE wins;
        an equal D_UPDATE goes to the newer import; a re-sent identical row keeps the old one.

        Only keys that now have more than one version are ranked (one hash aggregate finds them), so
        a first import of millions of new rows costs one pass, not a sort."""
        t = table_name(spec)
        keys = [q(k) for k in spec.key]
        kl = ", ".join(keys)
        on = " AND ".join(f"o.{k} = n.{k}" for k in keys)
        c = self.con
        with self.transaction():
            c.execute(f"CREATE OR REPLACE TEMP TABLE _k AS SELECT {kl} FROM {t} GROUP BY {kl} "
                      f"HAVING count(*) > 1 AND bool_or(_import = ?)", [import_id])
            (total_new,) = self.row(f"SELECT count(*) FROM {t} WHERE _import = ?", [import_id])
            fields = ", ".join(f"t.{q(f.name)}" for f in spec.fields)
            c.execute(f"CREATE OR REPLACE TEMP TABLE _v AS SELECT t.rowid AS rid, t.*, hash({fields}) AS _h "
                      f"FROM {t} t SEMI JOIN _k USING ({kl})")
            (multi_new,) = self.row("SELECT count(*) FROM _v WHERE _import = ?", [import_id])
            # identical re-sends: drop the new copy, the stored row stays as it was
            c.execute(
                f"CREATE OR REPLACE TEMP TABLE _same AS SELECT n.rid FROM _v n WHERE n._import = ? AND EXISTS "
                f"(SELECT 1 FROM _v o WHERE o._import <> ? AND {on} AND o._h = n._h)", [import_id, import_id])
            (same,) = self.row("SELECT count(*) FROM _same")
            if same:
                c.execute(f"DELETE FROM {t} WHERE rowid IN (SELECT rid FROM _same)")
                c.execute("DELETE FROM _v WHERE rid IN (SELECT rid FROM _same)")
            c.execute(
                "CREATE OR REPLACE TEMP TABLE _r AS SELECT rid, _import = ? AS is_new, row_number() OVER w AS rn, "
                f"count(*) FILTER (WHERE _import <> ?) OVER (PARTITION BY {kl}) AS n_old FROM _v "
                f"WINDOW w AS (PARTITION BY {kl} ORDER BY \"D_UPDATE\" DESC NULLS LAST, _import DESC, _seq DESC, "
                "_line DESC)", [import_id, import_id])
            inserted, replaced, lost = self.row(
                "SELECT count(*) FILTER (WHERE rn = 1 AND is_new AND n_old = 0), "
                "count(*) FILTER (WHERE rn = 1 AND is_new AND n_old > 0), "
                "count(*) FILTER (WHERE rn > 1 AND is_new) FROM _r")
            c.execute(f"DELETE FROM {t} WHERE rowid IN (SELECT rid FROM _r WHERE rn > 1)")
            for tmp in ("_r", "_same", "_v", "_k"):
                c.execute(f"DROP TABLE {tmp}")
        self.settle()
        single_new = int(total_new) - int(multi_new)
        return {"inserted": single_new + int(inserted), "replaced": int(replaced),
                "unchanged": int(same) + int(lost)}

    # -- low-level access (inside phrsync.f43; other stages use phrsync.f43.read) -----------------
    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, params or []).fetchall()

    def row(self, sql: str, params: list[Any] | None = None) -> tuple[Any, ...]:
        """The first row of a query, with the result fully consumed (DuckDB refuses new work on a
        connection whose last result was only partly fetched)."""
        rows = self.con.execute(sql, params or []).fetchall()
        return rows[0] if rows else ()
