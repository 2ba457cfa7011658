"""The staging store's small summary table: encounters per facility and day, kept by every import.

The monitoring web shows, per facility and day, what the HIS sent; counting that from ``SERVICE`` and
``ADMISSION`` is a scan of millions of rows, too slow for a page. The import that changes those tables
recomputes the days of the facilities it touched (one grouped pass over their rows), so a page reads a table
of (facility, day) rows instead. The definition is :func:`phrsync.f43.read.encounter_counts`' (OPD visits by
``DATE_SERV``, admissions by the day of ``DATETIME_ADMIT``): both are written from :func:`counts_sql`.

A store made before this table existed gets it, filled, on its first read-write open
(:meth:`phrsync.f43.staging.Staging.ensure_schema`); a read-only reader of such a store falls back to counting
(:func:`phrsync.f43.read.encounter_day_totals`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import duckdb

from phrsync.f43 import schema
from phrsync.f43.staging import table_name

TABLE = "agg_encounter_days"
DDL = f"CREATE TABLE IF NOT EXISTS {TABLE} (hospcode VARCHAR NOT NULL, day DATE NOT NULL, opd BIGINT NOT NULL, " \
      "ipd BIGINT NOT NULL)"


def _t(name: str) -> str:
    return table_name(schema.get(name))


def counts_sql(where_service: str = "TRUE", where_admit: str = "TRUE") -> str:
    """(hospcode, day, opd, ipd) per facility and day; the conditions use alias ``t`` on each table."""
    return f"""SELECT h, d, sum(opd)::BIGINT AS opd, sum(ipd)::BIGINT AS ipd FROM (
        SELECT t."HOSPCODE" AS h, t."DATE_SERV" AS d, count(*) AS opd, 0 AS ipd FROM {_t('SERVICE')} t
         WHERE {where_service} GROUP BY 1, 2
        UNION ALL SELECT t."HOSPCODE", CAST(t."DATETIME_ADMIT" AS DATE), 0, count(*) FROM {_t('ADMISSION')} t
         WHERE {where_admit} GROUP BY 1, 2) WHERE d IS NOT NULL AND h IS NOT NULL GROUP BY 1, 2"""


def exists(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main'",
                            [TABLE]).fetchone()[0])  # type: ignore[index]


def ensure(con: duckdb.DuckDBPyConnection) -> None:
    """Create the table; fill it when it did not exist (a store made before it, or a new empty one)."""
    if exists(con):
        return
    con.execute(DDL)
    refresh(con)


def touched_by(con: duckdb.DuckDBPyConnection, import_ids: Iterable[int]) -> list[str]:
    """The facilities with encounters written by these imports (after compaction: what they added or changed).
    A version an import replaced belongs to the same key, so to the same facility."""
    ids = sorted(set(import_ids))
    if not ids:
        return []
    marks = ", ".join("?" for _ in ids)
    sql = (f'SELECT DISTINCT "HOSPCODE" FROM {_t("SERVICE")} WHERE _import IN ({marks}) UNION '
           f'SELECT DISTINCT "HOSPCODE" FROM {_t("ADMISSION")} WHERE _import IN ({marks})')
    return sorted(r[0] for r in con.execute(sql, ids + ids).fetchall() if r[0])


def refresh(con: duckdb.DuckDBPyConnection, facilities: Iterable[str] | None = None) -> int:
    """Recompute the days of ``facilities`` (None: of every facility); returns the (facility, day) rows written.
    One transaction: a reader sees the old days or the new ones, never a facility without its days."""
    codes = None if facilities is None else sorted(set(facilities))
    if codes is not None and not codes:
        return 0
    params: list[Any] = []
    where = "TRUE"
    if codes is not None:
        where = f't."HOSPCODE" IN ({", ".join("?" for _ in codes)})'
        params = list(codes)
    con.execute("BEGIN TRANSACTION")
    try:
        if codes is None:
            con.execute(f"DELETE FROM {TABLE}")
        else:
            con.execute(f"DELETE FROM {TABLE} WHERE hospcode IN ({', '.join('?' for _ in codes)})", codes)
        con.execute(f"INSERT INTO {TABLE} {counts_sql(where, where)}", params + params)
        n = con.execute(f"SELECT count(*) FROM {TABLE}" + (
            f" WHERE hospcode IN ({', '.join('?' for _ in codes)})" if codes else ""), codes or []).fetchone()
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
    return int(n[0]) if n else 0
