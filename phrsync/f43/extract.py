"""Column-wise extraction of encounter "bundles" from the staging store.

Why this shape: a hand-written agent runs one query per child table per visit (20+ round trips per
visit). Here each child file is read ONCE per query, aggregated per visit inside DuckDB
(``list_sort(list(struct_pack(...))) GROUP BY HOSPCODE, SEQ``), joined to SERVICE and the person registries,
and streamed back as Arrow record batches that are the bundles as they are (no Python pass over the rows).
A query covers one date window (``window_days``) or several consecutive ones holding at most
``ROWS_PER_QUERY`` encounters, so memory is bounded by that, not by the size of the store.

It lives in phrsync.f43 because it is SQL on the staging tables: the store's layout and the queries that read
it change together. A bundle is a plain dict (no I/O left in it), ready for :mod:`phrsync.phr.mapping`::

    {"kind": "OPD" | "IPD", "hospcode", "ref" (SEQ or AN), "service" (SERVICE or ADMISSION row; every row carries
     the columns the mapping reads, see SERVICE_COLS),
     "person", "addresses", "cards", "death", "diagnoses", "procedures", "drugs", "labs", "chronicfu",
     "ncdscreen", "epi", "appointments", "last_update",
     "person_quarantined" (None, or where and why the person's PERSON row was quarantined: a visit without its
     person says why), "held" (visits only: the quarantined principal diagnoses that hold the visit back)}

Dates come as ``YYYY-MM-DD`` text and date-times as ``YYYY-MM-DDTHH:MM:SS`` (local time, no zone), numbers
as numbers, NULL as None. Rows without SEQ (EPI, NCDSCREEN done outside a visit record) are attached to the person's first visit
of that day at that facility, when there is one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

import duckdb

from phrsync.f43 import schema
from phrsync.f43.read import EVERYTHING, Selection
from phrsync.f43.staging import table_name


def _t(name: str) -> str:
    return table_name(schema.get(name))


def _q(col: str) -> str:
    return f'"{col}"'


_KIND = {f.name: f.kind for spec in schema.FILES.values() for f in spec.fields}


def _col(alias: str, col: str) -> str:
    """A column as the bundle carries it: dates and date-times as ISO text, formatted by DuckDB in bulk
    (half the cost of building Python date objects, and what the payload needs anyway)."""
    kind = _KIND.get(col)
    if kind == "D":
        return f"strftime({alias}.{_q(col)}, '%Y-%m-%d')"
    if kind == "DT":
        return f"strftime({alias}.{_q(col)}, '%Y-%m-%dT%H:%M:%S')"
    return f"{alias}.{_q(col)}"


def _struct(alias: str, cols: Sequence[str]) -> str:
    return "struct_pack(" + ", ".join(f"{_q(c)} := {_col(alias, c)}" for c in cols) + ")"


def _sorted_list(alias: str, cols: Sequence[str]) -> str:
    """The rows of a group as a list of structs sorted by their fields in order (NULLs last, as ORDER BY)."""
    return f"list_sort(list({_struct(alias, cols)}))"


# The columns a bundle carries are the ones phrsync.phr.mapping reads (plus the keys a list is sorted by):
# every column costs DuckDB and the Arrow -> Python conversion work for every encounter. A mapping rule
# that needs another column adds it here.
SERVICE_COLS = ("HOSPCODE", "PID", "SEQ", "DATE_SERV", "TIME_SERV", "INSTYPE", "TYPEIN", "CHIEFCOMP", "BTEMP", "SBP",
                "DBP", "PR", "RR", "PRICE", "ACTUALPAY", "D_UPDATE", "CID")
ADMISSION_COLS = ("HOSPCODE", "PID", "AN", "DATETIME_ADMIT", "INSTYPE", "TYPEIN", "ADMITWEIGHT", "ADMITHEIGHT",
                  "DATETIME_DISCH", "PRICE", "ACTUALPAY", "D_UPDATE", "CID")
PERSON_COLS = ("CID", "PRENAME", "NAME", "LNAME", "SEX", "BIRTH", "MSTATUS", "NATION", "DISCHARGE", "TELEPHONE",
               "MOBILE")
ADDRESS_COLS = ("ADDRESSTYPE", "HOUSENO", "VILLAGE", "VILLANAME", "SOISUB", "SOIMAIN", "ROAD", "TAMBON", "AMPUR",
                "CHANGWAT", "TELEPHONE", "MOBILE")
CARD_COLS = ("INSTYPE_NEW", "STARTDATE", "EXPIREDATE")
DEATH_COLS = ("DDEATH",)

# child file -> (bundle key, columns); each visit's list is sorted by these columns in this order, so the
# ones it is ordered by come first (a plain list_sort: several times cheaper than list(... ORDER BY ...)).
# Every child row's D_UPDATE counts for the bundle's last_update whether or not its list carries it.
OPD_CHILDREN: dict[str, tuple[str, tuple[str, ...]]] = {
    "DIAGNOSIS_OPD": ("diagnoses", ("DIAGTYPE", "DIAGCODE", "D_UPDATE")),
    "PROCEDURE_OPD": ("procedures", ("PROCEDCODE",)),
    "DRUG_OPD": ("drugs", ("DIDSTD", "DNAME", "AMOUNT", "DRUGPRICE")),
    "LABFU": ("labs", ("LABTEST", "LABRESULT", "DATE_SERV")),
    "CHRONICFU": ("chronicfu", ("D_UPDATE", "WEIGHT", "HEIGHT", "SBP", "DBP")),
    "NCDSCREEN": ("ncdscreen", ("DATE_SERV", "WEIGHT", "HEIGHT", "SBP_1", "DBP_1")),
    "EPI": ("epi", ("VACCINETYPE", "DATE_SERV", "VACCINEPLACE")),
    "APPOINTMENT": ("appointments", ("APDATE", "APTYPE", "APDIAG", "D_UPDATE")),
}
# files whose SEQ may be empty: matched to the person's first visit that day
SEQ_OPTIONAL = frozenset({"EPI", "NCDSCREEN"})

IPD_CHILDREN: dict[str, tuple[str, tuple[str, ...]]] = {
    "DIAGNOSIS_IPD": ("diagnoses", ("DIAGTYPE", "DIAGCODE", "D_UPDATE")),
    "PROCEDURE_IPD": ("procedures", ("TIMESTART", "PROCEDCODE")),
    "DRUG_IPD": ("drugs", ("DIDSTD", "TYPEDRUG", "DNAME", "AMOUNT", "DRUGPRICE")),
    "APPOINTMENT": ("appointments", ("APDATE", "APTYPE", "APDIAG", "D_UPDATE")),
}
VISIT_LISTS = ("diagnoses", "procedures", "drugs", "labs", "chronicfu", "ncdscreen", "epi", "appointments")

EPI_COLS = ("SEQ", "VACCINETYPE", "DATE_SERV", "VACCINEPLACE", "PROVIDER", "D_UPDATE", "CID")
CHRONIC_COLS = ("CHRONIC", "DATE_DIAG", "HOSP_DX", "HOSP_RX", "DATE_DISCH", "TYPEDISCH", "D_UPDATE", "CID")
ALLERGY_COLS = ("DRUGALLERGY", "DNAME", "DATERECORD", "TYPEDX", "ALEVEL", "SYMPTOM", "INFORMANT", "INFORMHOSP",
                "PROVIDER", "D_UPDATE", "CID")


# A quarantined row remembered by Staging.note_rejected, as a bundle carries it ("person_quarantined", "held")
_REJECTED = ("struct_pack(file := r.file, source := r.source, line := r.line, rule := r.rule, "
             "reason_th := r.reason_th, reason_en := r.reason_en)")


def _held_cte(file: str, ref: str) -> str:
    """The visits whose principal diagnosis was quarantined (``held``: mapping holds them back)."""
    return f"""held AS (SELECT r.hospcode AS "HOSPCODE", r.ref AS "{ref}", list({_REJECTED} ORDER BY r.line) AS v
         FROM rejected_keys r WHERE r.file = '{file}' GROUP BY ALL)"""


def ensure_rejected(con: duckdb.DuckDBPyConnection) -> None:
    """A store last written by a version without ``rejected_keys`` (opened read-only, so not upgraded) reads
    as one without entries: an empty temporary view of that name."""
    try:
        con.execute("SELECT 1 FROM rejected_keys LIMIT 0").fetchall()
    except duckdb.CatalogException:
        from phrsync.f43.staging import REJECTED_COLS

        cols = ", ".join(f"NULL::{c.split()[1]} AS {c.split()[0]}" for c in REJECTED_COLS.split(", "))
        con.execute(f"CREATE OR REPLACE TEMP VIEW rejected_keys AS SELECT {cols} WHERE FALSE")


def _person_ctes(keys: str) -> str:
    """CTEs per, addr, card, death keyed on (HOSPCODE, PID) of the CTE ``keys``."""
    return f""",
per AS (SELECT p."HOSPCODE", p."PID", {_struct('p', PERSON_COLS)} AS v
        FROM {_t('PERSON')} p JOIN {keys} k ON k."HOSPCODE" = p."HOSPCODE" AND k."PID" = p."PID"),
addr AS (SELECT a."HOSPCODE", a."PID", {_sorted_list('a', ADDRESS_COLS)} AS v
         FROM {_t('ADDRESS')} a JOIN {keys} k ON k."HOSPCODE" = a."HOSPCODE" AND k."PID" = a."PID" GROUP BY ALL),
card AS (SELECT c."HOSPCODE", c."PID", {_sorted_list('c', CARD_COLS)} AS v
         FROM {_t('CARD')} c JOIN {keys} k ON k."HOSPCODE" = c."HOSPCODE" AND k."PID" = c."PID" GROUP BY ALL),
death AS (SELECT d."HOSPCODE", d."PID", first({_struct('d', DEATH_COLS)} ORDER BY d."D_UPDATE" DESC) AS v
          FROM {_t('DEATH')} d JOIN {keys} k ON k."HOSPCODE" = d."HOSPCODE" AND k."PID" = d."PID" GROUP BY ALL),
prej AS (SELECT r.hospcode AS "HOSPCODE", r.pid AS "PID", first({_REJECTED} ORDER BY r.import_id DESC) AS v
         FROM rejected_keys r JOIN {keys} k ON k."HOSPCODE" = r.hospcode AND k."PID" = r.pid
         WHERE r.file = 'PERSON' GROUP BY ALL)"""


_PERSON_JOINS = """
LEFT JOIN per ON per."HOSPCODE" = {a}."HOSPCODE" AND per."PID" = {a}."PID"
LEFT JOIN addr ON addr."HOSPCODE" = {a}."HOSPCODE" AND addr."PID" = {a}."PID"
LEFT JOIN card ON card."HOSPCODE" = {a}."HOSPCODE" AND card."PID" = {a}."PID"
LEFT JOIN death ON death."HOSPCODE" = {a}."HOSPCODE" AND death."PID" = {a}."PID"
LEFT JOIN prej ON prej."HOSPCODE" = {a}."HOSPCODE" AND prej."PID" = {a}."PID"
"""
_PERSON_SELECT = ("per.v AS person, coalesce(addr.v, []) AS addresses, coalesce(card.v, []) AS cards, death.v AS death, "
                  "prej.v AS person_quarantined")


def _latest(alias: str) -> str:
    """A visit's latest child D_UPDATE (text, which sorts in time order), for the bundle's last_update."""
    return f"max({_col(alias, 'D_UPDATE')})"


def _visit_select(children: dict[str, tuple[str, tuple[str, ...]]]) -> str:
    """Every visit list of a bundle ([] when the visit has none or the kind has no such file) and last_update:
    the visit's latest D_UPDATE over the service row and its child rows (greatest() skips NULLs)."""
    keys = [key for key, _cols in children.values()]
    lists = [f"coalesce({k}.v, []) AS {k}" if k in keys else f"[] AS {k}" for k in VISIT_LISTS]
    latest = ", ".join(['s.service."D_UPDATE"', *(f"{k}.u" for k in keys)])
    return ", ".join(lists) + f", greatest({latest}) AS last_update"


_WINDOW_PARAMS = ("$lo", "$days")


def _window(alias: str, col: str) -> str:
    """Which window of a query's range a row falls in (params: first window's start, window length in days)."""
    return f'(CAST({alias}."{col}" AS DATE) - CAST(? AS DATE)) // ?'


def opd_sql(sel: Selection) -> tuple[str, list[Any]]:
    """One query: every OPD visit of a date range (one or more whole windows) with all its child rows. Rows
    are matched within their window (``_w``) and come out window by window, as one query per window would."""
    hs, hp = sel.hosp_sql("s0")
    params: list[Any] = [*_WINDOW_PARAMS, "$from", "$to", *hp]
    ctes = [f"""s0 AS (SELECT *, {_window('s0', 'DATE_SERV')} AS "_w" FROM {_t('SERVICE')} s0
       WHERE s0."DATE_SERV" >= ? AND s0."DATE_SERV" < ?{hs}),
s AS (SELECT "_w", "HOSPCODE", "PID", "SEQ", "DATE_SERV", "TIME_SERV", {_struct('s0', SERVICE_COLS)} AS service
      FROM s0),
pd AS (SELECT "HOSPCODE", "PID", "DATE_SERV", min("SEQ") AS "SEQ" FROM s0 GROUP BY ALL),
sp AS (SELECT DISTINCT "HOSPCODE", "PID" FROM s)""", _held_cte("DIAGNOSIS_OPD", "SEQ")]
    joins = ['LEFT JOIN held ON held."HOSPCODE" = s."HOSPCODE" AND held."SEQ" = s."SEQ"']
    for i, (file, (key, cols)) in enumerate(OPD_CHILDREN.items()):
        a = f"c{i}"
        hs_c, hp_c = sel.hosp_sql(a)
        extra = f' AND {a}."AN" IS NULL' if file == "APPOINTMENT" else ""
        if file in SEQ_OPTIONAL:
            ctes.append(
                f"""{key} AS (SELECT {a}."HOSPCODE", coalesce({a}."SEQ", pd."SEQ") AS "SEQ",
       {_window(a, 'DATE_SERV')} AS "_w", {_sorted_list(a, cols)} AS v, {_latest(a)} AS u
       FROM {_t(file)} {a} LEFT JOIN pd ON {a}."SEQ" IS NULL AND pd."HOSPCODE" = {a}."HOSPCODE"
            AND pd."PID" = {a}."PID" AND pd."DATE_SERV" = {a}."DATE_SERV"
       WHERE {a}."DATE_SERV" >= ? AND {a}."DATE_SERV" < ?{hs_c} GROUP BY ALL)""")
        else:
            ctes.append(
                f"""{key} AS (SELECT {a}."HOSPCODE", {a}."SEQ", {_window(a, 'DATE_SERV')} AS "_w",
       {_sorted_list(a, cols)} AS v, {_latest(a)} AS u
       FROM {_t(file)} {a} WHERE {a}."DATE_SERV" >= ? AND {a}."DATE_SERV" < ?{hs_c}{extra} GROUP BY ALL)""")
        params += [*_WINDOW_PARAMS, "$from", "$to", *hp_c]
        joins.append(f'LEFT JOIN {key} ON {key}."HOSPCODE" = s."HOSPCODE" AND {key}."SEQ" = s."SEQ" '
                     f'AND {key}."_w" = s."_w"')
    sql = ("WITH " + ",\n".join(ctes) + _person_ctes("sp") + "\n"
           "SELECT 'OPD' AS kind, s.\"HOSPCODE\" AS hospcode, s.\"SEQ\" AS ref, s.service, "
           + _PERSON_SELECT + ", " + _visit_select(OPD_CHILDREN) + ", coalesce(held.v, []) AS held" + "\nFROM s" + _PERSON_JOINS.format(a="s")
           + "\n".join(joins) + '\nORDER BY s."_w", s."HOSPCODE", s."DATE_SERV", s."TIME_SERV", s."SEQ"')
    return sql, params


def ipd_sql(sel: Selection) -> tuple[str, list[Any]]:
    """One query: every admission of a date range (one or more whole windows, by admit date) with its IPD
    child rows, window by window."""
    hs, hp = sel.hosp_sql("a0")
    params: list[Any] = [*_WINDOW_PARAMS, "$from", "$to", *hp]
    ctes = [f"""a0 AS (SELECT *, {_window('a0', 'DATETIME_ADMIT')} AS "_w" FROM {_t('ADMISSION')} a0
       WHERE a0."DATETIME_ADMIT" >= ? AND a0."DATETIME_ADMIT" < ?{hs}),
s AS (SELECT "_w", "HOSPCODE", "PID", "AN", "DATETIME_ADMIT", {_struct('a0', ADMISSION_COLS)} AS service FROM a0),
sk AS (SELECT DISTINCT "HOSPCODE", "AN" FROM s),
sp AS (SELECT DISTINCT "HOSPCODE", "PID" FROM s)""", _held_cte("DIAGNOSIS_IPD", "AN")]
    joins = ['LEFT JOIN held ON held."HOSPCODE" = s."HOSPCODE" AND held."AN" = s."AN"']
    for i, (file, (key, cols)) in enumerate(IPD_CHILDREN.items()):
        a = f"c{i}"
        ctes.append(
            f"""{key} AS (SELECT {a}."HOSPCODE", {a}."AN", {_sorted_list(a, cols)} AS v, {_latest(a)} AS u
       FROM {_t(file)} {a} JOIN sk ON sk."HOSPCODE" = {a}."HOSPCODE" AND sk."AN" = {a}."AN" GROUP BY ALL)""")
        joins.append(f'LEFT JOIN {key} ON {key}."HOSPCODE" = s."HOSPCODE" AND {key}."AN" = s."AN"')
    sql = ("WITH " + ",\n".join(ctes) + _person_ctes("sp") + "\n"
           "SELECT 'IPD' AS kind, s.\"HOSPCODE\" AS hospcode, s.\"AN\" AS ref, s.service, "
           + _PERSON_SELECT + ", " + _visit_select(IPD_CHILDREN) + ", coalesce(held.v, []) AS held" + "\nFROM s" + _PERSON_JOINS.format(a="s")
           + "\n".join(joins) + '\nORDER BY s."_w", s."HOSPCODE", s."DATETIME_ADMIT", s."AN"')
    return sql, params


def _bind(params: list[Any], start: Any, end: Any, lo: dt.date | None = None, days: int = 0) -> list[Any]:
    named = {"$from": start, "$to": end, "$lo": lo, "$days": days}
    return [named.get(p, p) if isinstance(p, str) else p for p in params]


def _windows(lo: dt.date, hi: dt.date, days: int) -> Iterator[tuple[dt.date, dt.date]]:
    d = lo
    while d <= hi:
        e = d + dt.timedelta(days=days)
        yield d, e
        d = e


# Every query reads each child file and person registry in full (the store is not ordered by date), so
# consecutive windows are read together while they hold at most this many encounters: a few hundred
# admissions or a quiet week do not pay a full read each. It bounds what DuckDB holds for one query.
ROWS_PER_QUERY = 40_000


def _window_groups(con: duckdb.DuckDBPyConnection, table: str, col: str, sel: Selection, lo: dt.date, hi: dt.date,
                   days: int, max_rows: int) -> list[tuple[dt.date, dt.date]]:
    """Consecutive windows merged into date ranges holding at most ``max_rows`` rows (one window at least)."""
    where, params = sel.where(col)
    counts = dict(con.execute(f"SELECT {_window('t', col)}, count(*) FROM {table} t WHERE {where} GROUP BY 1",
                              [lo, days, *params]).fetchall())
    groups: list[tuple[dt.date, dt.date]] = []
    rows = 0
    for i, (start, end) in enumerate(_windows(lo, hi, days)):
        n = int(counts.get(i, 0))
        if groups and rows + n <= max_rows:
            groups[-1] = (groups[-1][0], end)
            rows += n
        else:
            groups.append((start, end))
            rows = n
    return groups


def _range(con: duckdb.DuckDBPyConnection, table: str, col: str, sel: Selection) -> tuple[dt.date, dt.date] | None:
    where, params = sel.where(col)
    row = con.execute(f'SELECT min(CAST(t."{col}" AS DATE)), max(CAST(t."{col}" AS DATE)) FROM {table} t '
                      f"WHERE {where}", params).fetchall()[0]
    if row[0] is None:
        return None
    lo, hi = row
    if sel.date_from and lo < sel.date_from:
        lo = sel.date_from
    return lo, hi


def _stream(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any], batch_rows: int) -> Iterator[dict[str, Any]]:
    reader = con.sql(sql, params=params).to_arrow_reader(batch_rows)
    for batch in reader:
        yield from batch.to_pylist()


# DuckDB keeps every block a query read in its buffer pool until the connection's memory_limit is reached.
# The child files are stored in import order (facility, month), so each query of a build reads blocks of its
# own dates that no later query reads again: the pool grew with the store (1,014,173 encounters in one
# connection: 58 MB after the first query, 144 MB after the 36th; peak RSS 435 → 527 MB). After each query
# the limit drops to this for a moment, which evicts the blocks no query holds (and DuckDB hands the memory
# back), so a query starts with the same memory whatever came before: peak 423 → 438 MB over the 36 queries.
# build_bench (2 workers, 1M): peak growth +950 → +914 MB on all the dates (+847 → +853 on a quarter), the
# same CPU per encounter (re-reading the person registry each query is cheap next to the query itself).
CACHE_BETWEEN_QUERIES = "1MB"


def release_cache(con: duckdb.DuckDBPyConnection) -> None:
    """Evict the store's cached blocks that no open query holds. The connection's memory_limit is put back as
    :class:`~phrsync.f43.staging.Staging` set it (``current_setting`` shows it rounded, and would drift).
    The limit is the database's: not for a connection whose cursors run queries at the same time."""
    limit = con.execute("SELECT coalesce(getvariable('phrsync_memory_limit'), current_setting('memory_limit'))"
                        ).fetchall()[0][0]
    try:
        con.execute(f"SET memory_limit = '{CACHE_BETWEEN_QUERIES}'")
    finally:
        con.execute(f"SET memory_limit = '{limit}'")


def iter_bundles(con: duckdb.DuckDBPyConnection, sel: Selection = EVERYTHING, *, window_days: int = 7,
                 batch_rows: int = 2048, include_ipd: bool = True) -> Iterator[dict[str, Any]]:
    """Every encounter bundle of the selection: OPD visits by window, then admissions by window (in each
    window by facility, then time). The store's blocks cached by a query are released after it
    (:func:`release_cache`), so memory does not grow with the number of queries."""
    ensure_rejected(con)
    plans = [("OPD", _t("SERVICE"), "DATE_SERV", opd_sql(sel))]
    if include_ipd:
        plans.append(("IPD", _t("ADMISSION"), "DATETIME_ADMIT", ipd_sql(sel)))
    for _kind, table, col, (sql, params) in plans:
        rng = _range(con, table, col, sel)
        if rng is None:
            continue
        lo, hi = rng
        for start, end in _window_groups(con, table, col, sel, lo, hi, window_days, ROWS_PER_QUERY):
            if sel.date_to is not None and end > sel.date_to + dt.timedelta(days=1):
                end = sel.date_to + dt.timedelta(days=1)
            a: Any = start
            b: Any = end
            if col == "DATETIME_ADMIT":
                a = dt.datetime.combine(start, dt.time())
                b = dt.datetime.combine(end, dt.time())
            yield from _stream(con, sql, _bind(params, a, b, lo, window_days), batch_rows)
            release_cache(con)


def count_encounters(con: duckdb.DuckDBPyConnection, sel: Selection = EVERYTHING) -> int:
    """How many bundles :func:`iter_bundles` will yield (for the progress bar)."""
    total = 0
    for table, col in ((_t("SERVICE"), "DATE_SERV"), (_t("ADMISSION"), "DATETIME_ADMIT")):
        where, params = sel.where(col)
        row = con.execute(f"SELECT count(*) FROM {table} t WHERE {where}", params).fetchall()[0]
        total += int(row[0])
    return total


# --- person-level registers -----------------------------------------------------------------------

# Persons per register query. One query for all of a province's persons held every person's list, address
# and card lists and the sort at once: 276,450 EPI persons (5M encounters) ran out of the build's 1 GB. Each
# query of this many persons holds a bounded share (ordered list aggregates and joins of nested values do
# not spill), and the queries together read the registers in the same (HOSPCODE, PID) order.
PERSONS_PER_QUERY = 20_000


def _register_where(date_col: str, sel: Selection) -> tuple[str, list[Any]]:
    """Register rows (alias ``r``) changed (D_UPDATE) or dated in the selection's range, at its facilities."""
    hs, hp = sel.hosp_sql("r")
    where = ["TRUE"]
    params: list[Any] = []
    if sel.date_from or sel.date_to:
        lo = sel.date_from or dt.date(1900, 1, 1)
        hi = (sel.date_to or dt.date(9999, 12, 30)) + dt.timedelta(days=1)
        where.append(f'((r."{date_col}" >= ? AND r."{date_col}" < ?) OR (r."D_UPDATE" >= ? AND r."D_UPDATE" < ?))')
        params += [lo, hi, dt.datetime.combine(lo, dt.time()), dt.datetime.combine(hi, dt.time())]
    return " AND ".join(where) + hs, params + hp


def _register_batches(con: duckdb.DuckDBPyConnection, file: str, date_col: str, sel: Selection,
                      per_query: int) -> list[tuple[tuple[str, str] | None, tuple[str, str] | None]]:
    """(first key, next batch's first key) of consecutive batches of ``per_query`` persons in key order.
    Only the keys are ranked (two short columns), not the persons' rows."""
    where, params = _register_where(date_col, sel)
    starts = [tuple(r) for r in con.execute(
        f'SELECT "HOSPCODE", "PID" FROM (SELECT DISTINCT r."HOSPCODE", r."PID" FROM {_t(file)} r WHERE {where}) '
        f'QUALIFY (row_number() OVER (ORDER BY "HOSPCODE", "PID") - 1) % {int(per_query)} = 0 ORDER BY 1, 2',
        params).fetchall()]
    if len(starts) <= 1:
        return [(None, None)]
    bounds: list[tuple[str, str] | None] = [None, *starts[1:], None]  # type: ignore[list-item]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _register_sql(file: str, cols: Sequence[str], order: str, date_col: str, sel: Selection,
                  epi_visit_match: bool = False, first: tuple[str, str] | None = None,
                  stop: tuple[str, str] | None = None) -> tuple[str, list[Any]]:
    """Persons with register rows changed (D_UPDATE) or dated in the range, with ALL their rows of that
    file at that facility (registers are replaced or upserted as a whole); only persons with keys
    ``first`` <= (HOSPCODE, PID) < ``stop`` when given (one batch of :func:`_register_batches`)."""
    t = _t(file)
    cond, params = _register_where(date_col, sel)
    where = [cond]
    if first is not None:
        where.append('(r."HOSPCODE" > ? OR (r."HOSPCODE" = ? AND r."PID" >= ?))')
        params += [first[0], first[0], first[1]]
    if stop is not None:
        where.append('(r."HOSPCODE" < ? OR (r."HOSPCODE" = ? AND r."PID" < ?))')
        params += [stop[0], stop[0], stop[1]]
    if epi_visit_match:
        src = f"""(SELECT e.* REPLACE (coalesce(e."SEQ", v."SEQ") AS "SEQ") FROM {t} e
                 JOIN sp ON sp."HOSPCODE" = e."HOSPCODE" AND sp."PID" = e."PID"
                 LEFT JOIN (SELECT v0."HOSPCODE", v0."PID", v0."DATE_SERV", min(v0."SEQ") AS "SEQ"
                            FROM {_t('SERVICE')} v0 JOIN sp ON sp."HOSPCODE" = v0."HOSPCODE" AND sp."PID" = v0."PID"
                            GROUP BY ALL) v
                 ON e."SEQ" IS NULL AND v."HOSPCODE" = e."HOSPCODE" AND v."PID" = e."PID"
                    AND v."DATE_SERV" = e."DATE_SERV")"""
    else:
        src = t
    sql = f"""WITH sp AS (SELECT DISTINCT r."HOSPCODE", r."PID" FROM {t} r WHERE {' AND '.join(where)}),
rows AS (SELECT x."HOSPCODE", x."PID", list({_struct('x', cols)} ORDER BY {order}) AS v
         FROM {src} x JOIN sp ON sp."HOSPCODE" = x."HOSPCODE" AND sp."PID" = x."PID" GROUP BY ALL){_person_ctes('sp')}
SELECT sp."HOSPCODE" AS hospcode, sp."PID" AS pid, {_PERSON_SELECT}, rows.v AS rows
FROM sp LEFT JOIN rows ON rows."HOSPCODE" = sp."HOSPCODE" AND rows."PID" = sp."PID"
{_PERSON_JOINS.format(a='sp')}
ORDER BY sp."HOSPCODE", sp."PID"
"""
    return sql, params


def _iter_register(con: duckdb.DuckDBPyConnection, file: str, cols: Sequence[str], order: str, date_col: str,
                   sel: Selection, batch_rows: int, epi_visit_match: bool = False) -> Iterator[dict[str, Any]]:
    ensure_rejected(con)
    for first, stop in _register_batches(con, file, date_col, sel, PERSONS_PER_QUERY):
        sql, params = _register_sql(file, cols, order, date_col, sel, epi_visit_match, first, stop)
        for row in _stream(con, sql, params, batch_rows):
            if row["rows"] is None:
                row["rows"] = []
            yield row
        release_cache(con)


def iter_immunization_registers(con: duckdb.DuckDBPyConnection, sel: Selection = EVERYTHING, *,
                                batch_rows: int = 2048) -> Iterator[dict[str, Any]]:
    """One dict per person and facility with EPI rows: ``{hospcode, pid, person, ..., rows}``; ``rows`` is the
    person's WHOLE vaccination list there (ImmunizationRegisterv1 replaces it)."""
    yield from _iter_register(con, "EPI", EPI_COLS, 'x."DATE_SERV", x."VACCINETYPE"', "DATE_SERV", sel,
                              batch_rows, epi_visit_match=True)


def iter_chronic_registers(con: duckdb.DuckDBPyConnection, sel: Selection = EVERYTHING, *,
                           batch_rows: int = 2048) -> Iterator[dict[str, Any]]:
    yield from _iter_register(con, "CHRONIC", CHRONIC_COLS, 'x."DATE_DIAG", x."CHRONIC"', "DATE_DIAG", sel,
                              batch_rows)


def iter_allergy_registers(con: duckdb.DuckDBPyConnection, sel: Selection = EVERYTHING, *,
                           batch_rows: int = 2048) -> Iterator[dict[str, Any]]:
    yield from _iter_register(con, "DRUGALLERGY", ALLERGY_COLS, 'x."DATERECORD", x."DRUGALLERGY"', "DATERECORD",
                              sel, batch_rows)


def iter_daily_counts(con: duckdb.DuckDBPyConnection, sel: Selection = EVERYTHING) -> Iterator[dict[str, Any]]:
    """Per facility and calendar month: ``{hospcode, month: "YYYY-MM", days: [{date, opd, ipd, disch}]}``
    (OrgEncounterSummary takes at most one month per call)."""
    hs_s, hp = sel.hosp_sql("t")
    where = ""
    params: list[Any] = []
    if sel.date_from or sel.date_to:
        where = " WHERE d >= ? AND d <= ?"
        params = [sel.date_from or dt.date(1900, 1, 1), sel.date_to or dt.date(9999, 12, 31)]
    sql = f"""SELECT "HOSPCODE", d, sum(opd)::BIGINT, sum(ipd)::BIGINT, sum(disch)::BIGINT FROM (
    SELECT t."HOSPCODE", t."DATE_SERV" AS d, 1 AS opd, 0 AS ipd, 0 AS disch FROM {_t('SERVICE')} t WHERE TRUE{hs_s}
    UNION ALL SELECT t."HOSPCODE", CAST(t."DATETIME_ADMIT" AS DATE), 0, 1, 0 FROM {_t('ADMISSION')} t WHERE TRUE{hs_s}
    UNION ALL SELECT t."HOSPCODE", CAST(t."DATETIME_DISCH" AS DATE), 0, 0, 1 FROM {_t('ADMISSION')} t
        WHERE t."DATETIME_DISCH" IS NOT NULL{hs_s}
) u{where} GROUP BY ALL ORDER BY 1, 2"""
    cur: dict[str, Any] | None = None
    for hosp, d, opd, ipd, disch in con.execute(sql, hp * 3 + params).fetchall():
        month = f"{d:%Y-%m}"
        if cur is None or cur["hospcode"] != hosp or cur["month"] != month:
            if cur is not None:
                yield cur
            cur = {"hospcode": hosp, "month": month, "days": []}
        cur["days"].append({"date": d, "opd": int(opd), "ipd": int(ipd), "disch": int(disch)})
    if cur is not None:
        yield cur
