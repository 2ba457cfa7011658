"""The staging store: every good 43-file row, typed, one table per file, in one DuckDB file.

Why DuckDB: the later stages read whole facility-months column-wise (mapping joins SERVICE with its
child files), and bulk upserts of millions of rows are set operations here, not row-by-row work.
``benchmarks/staging_bench.py`` measures it against SQLite on the same rows.

Rows arrive in an ``_in_<file>`` holding table per import and are merged once per file type at the end
(or when the holding table grows large), so the cost of a merge does not multiply by the number of zips.
Merging keeps, for each record key, the row with the latest D_UPDATE; an equal D_UPDATE with different
content takes the newer import. Re-importing the same export therefore changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from phrsync.f43 import schema
from phrsync.f43.checks import q
from phrsync.f43.schema import FileSpec
from phrsync.f43.source import Problem

META_COLS = {"_import": "INTEGER", "_source": "VARCHAR", "_line": "BIGINT", "_seq": "BIGINT", "_hash": "UBIGINT"}
MERGE_THRESHOLD = 2_000_000  # rows in a holding table before it is merged early (bounded disk and memory)


def table_name(spec: FileSpec) -> str:
    return f"f43_{spec.table}"


class StagingError(RuntimeError):
    pass


class Staging:
    """A handle on the staging DuckDB file. Use as a context manager."""

    def __init__(self, path: str | Path, read_only: bool = False, memory_limit: str = "2GB") -> None:
        self.path = Path(path)
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as e:
            raise StagingError(
                f"เปิดฐานข้อมูลพักข้อมูลไม่ได้ (อาจมีโปรแกรมอื่นใช้อยู่) / cannot open staging store {self.path}: {e}"
            ) from e
        self.con.execute(f"SET memory_limit = '{memory_limit}'")
        self.con.execute("SET preserve_insertion_order = false")
        if not read_only:
            self.ensure_schema()

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
        for spec in schema.FILES.values():
            cols = [f"{q(f.name)} {f.duck_type}" for f in spec.fields]
            cols += [f"{k} {v}" for k, v in META_COLS.items()]
            c.execute(f"CREATE TABLE IF NOT EXISTS {table_name(spec)} ({', '.join(cols)})")

    def holding(self, spec: FileSpec) -> str:
        name = f"_in_{spec.table}"
        cols = [f"{q(f.name)} {f.duck_type}" for f in spec.fields]
        cols += [f"{k} {v}" for k, v in META_COLS.items()]
        self.con.execute(f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(cols)})")
        return name

    # -- imports log ----------------------------------------------------------------------------
    def begin_import(self, kind: str, target: str) -> int:
        (iid,) = self.con.execute("SELECT nextval('import_ids')").fetchone()  # type: ignore[misc]
        self.con.execute("INSERT INTO imports VALUES (?, ?, NULL, 'running', ?, ?, NULL)",
                         [iid, dt.datetime.now(), kind, target])
        return int(iid)

    def finish_import(self, import_id: int, status: str, summary_json: str) -> None:
        self.con.execute("UPDATE imports SET finished = ?, status = ?, summary = ? WHERE id = ?",
                         [dt.datetime.now(), status, summary_json, import_id])

    def source_imported(self, sha256: str) -> bool:
        return self.con.execute("SELECT 1 FROM sources WHERE sha256 = ?", [sha256]).fetchone() is not None

    def record_source(self, sha256: str, container: str, hospcode: str, import_id: int,
                      rows: int, quarantined: int) -> None:
        self.con.execute("DELETE FROM sources WHERE sha256 = ?", [sha256])
        self.con.execute("INSERT INTO sources VALUES (?, ?, ?, ?, ?, ?, ?)",
                         [sha256, container, hospcode, import_id, dt.datetime.now(), rows, quarantined])

    def forget_quarantine(self, sha256: str) -> None:
        """Before a forced re-import of a source: its old quarantine entries would be duplicated."""
        self.con.execute("DELETE FROM quarantine WHERE source_sha = ?", [sha256])

    # -- quarantine -----------------------------------------------------------------------------
    def add_problems(self, problems: Iterable[Problem], import_id: int, source_sha: str) -> int:
        rows = [
            (import_id, source_sha, p.hospcode, p.file, p.source, p.line, p.field, p.value, p.rule,
             p.severity, p.reason_th, p.reason_en, p.raw)
            for p in problems
        ]
        if rows:
            self.con.executemany(
                "INSERT INTO quarantine (import_id, source_sha, hospcode, file, source, line, field, value, rule,"
                " severity, reason_th, reason_en, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    # -- merge ----------------------------------------------------------------------------------
    def holding_rows(self, spec: FileSpec) -> int:
        name = f"_in_{spec.table}"
        exists = self.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchone()
        if not exists or not exists[0]:
            return 0
        return int(self.con.execute(f"SELECT count(*) FROM {name}").fetchone()[0])  # type: ignore[index]

    def merge(self, spec: FileSpec) -> dict[str, int]:
        """Move a holding table into staging: latest D_UPDATE wins per key. Returns counts."""
        hold = f"_in_{spec.table}"
        tgt = table_name(spec)
        if not self.holding_rows(spec):
            self.con.execute(f"DROP TABLE IF EXISTS {hold}")
            return {"inserted": 0, "replaced": 0, "unchanged": 0}
        keys = [q(k) for k in spec.key]
        on = " AND ".join(f"s.{k} = i.{k}" for k in keys)
        part = ", ".join(keys)
        newer = ("(i.\"D_UPDATE\" > s.\"D_UPDATE\" OR s.\"D_UPDATE\" IS NULL "
                 "OR (i.\"D_UPDATE\" = s.\"D_UPDATE\" AND i._hash <> s._hash))")
        with self.transaction():
            # one winner per key among the incoming rows: latest D_UPDATE, then latest source order
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE _win AS SELECT * FROM {hold} "
                f"QUALIFY row_number() OVER (PARTITION BY {part} ORDER BY \"D_UPDATE\" DESC NULLS LAST, "
                f"_seq DESC, _line DESC) = 1")
            incoming = int(self.con.execute("SELECT count(*) FROM _win").fetchone()[0])  # type: ignore[index]
            (replaced,) = self.con.execute(
                f"SELECT count(*) FROM {tgt} s JOIN _win i ON {on} WHERE {newer}").fetchone()  # type: ignore[misc]
            (existing,) = self.con.execute(
                f"SELECT count(*) FROM {tgt} s JOIN _win i ON {on}").fetchone()  # type: ignore[misc]
            if replaced:
                self.con.execute(f"DELETE FROM {tgt} s USING _win i WHERE {on} AND {newer}")
            self.con.execute(
                f"INSERT INTO {tgt} SELECT i.* FROM _win i WHERE NOT EXISTS "
                f"(SELECT 1 FROM {tgt} s WHERE {on})")
            self.con.execute("DROP TABLE _win")
            self.con.execute(f"DROP TABLE {hold}")
        inserted = incoming - existing
        return {"inserted": int(inserted), "replaced": int(replaced), "unchanged": int(existing - replaced)}

    # -- read side (later stages) ---------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        out = {}
        for spec in schema.FILES.values():
            out[spec.name] = int(self.con.execute(f"SELECT count(*) FROM {table_name(spec)}").fetchone()[0])  # type: ignore[index]
        return out

    def facilities(self) -> list[str]:
        rows = self.con.execute(f"SELECT DISTINCT HOSPCODE FROM {table_name(schema.get('SERVICE'))} "
                                f"UNION SELECT DISTINCT HOSPCODE FROM {table_name(schema.get('PERSON'))} "
                                "ORDER BY 1").fetchall()
        return [r[0] for r in rows]

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, params or []).fetchall()

    def quarantine_summary(self, import_id: int | None = None) -> list[tuple[Any, ...]]:
        where = "WHERE import_id = ?" if import_id is not None else ""
        return self.con.execute(
            f"SELECT hospcode, file, rule, severity, count(*) FROM quarantine {where} "
            "GROUP BY ALL ORDER BY 5 DESC", [import_id] if import_id is not None else []).fetchall()
