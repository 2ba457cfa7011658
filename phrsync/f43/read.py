"""The staging store's read API: what later stages (build, agent, reports, a web page) may ask of it.

Only phrsync.f43 writes SQL on the staging tables; everything else asks through these functions (and the
build's bulk extraction in :mod:`phrsync.f43.extract`), so the store's layout can change in one package.
Each function takes a :class:`~phrsync.f43.staging.Staging` or a DuckDB connection on one (the build's
workers hold bare connections) and returns plain typed values.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb

from phrsync.errors import NotFoundError, UsageError
from phrsync.f43 import aggregates, schema
from phrsync.f43.staging import Staging, table_name

StoreLike = Staging | duckdb.DuckDBPyConnection
_HOSPCODE = re.compile(schema.HOSP)
_SHOWN = 10  # facility codes listed in an error's hint


def _con(src: StoreLike) -> duckdb.DuckDBPyConnection:
    return src.con if isinstance(src, Staging) else src


def _t(name: str) -> str:
    return table_name(schema.get(name))


@dataclass(frozen=True)
class Selection:
    """Which data a build covers: facilities (empty = all) and a service-date range (inclusive)."""

    facilities: tuple[str, ...] = ()
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    def hosp_sql(self, alias: str) -> tuple[str, list[Any]]:
        if not self.facilities:
            return "", []
        marks = ", ".join("?" for _ in self.facilities)
        return f" AND {alias}.\"HOSPCODE\" IN ({marks})", list(self.facilities)

    def where(self, col: str) -> tuple[str, list[Any]]:
        """WHERE clause (alias ``t``) for the facilities and the inclusive date range on a DATE or TIMESTAMP
        column, half-open on the upper side so a timestamp on the last day is included."""
        hs, hp = self.hosp_sql("t")
        where = ["TRUE"]
        params: list[Any] = []
        if self.date_from:
            where.append(f't."{col}" >= ?')
            params.append(self.date_from)
        if self.date_to:
            where.append(f't."{col}" < ?')
            params.append(self.date_to + dt.timedelta(days=1))
        return " AND ".join(where) + hs, params + hp


EVERYTHING = Selection()  # every facility, every date


# -- facilities ----------------------------------------------------------------------------------

def _facility_sql(codes: tuple[str, ...] | None) -> tuple[str, list[Any]]:
    """One DISTINCT over every staged file and the quarantine: a facility whose rows were all quarantined is
    still in the store (its quarantine list and report are what the user wants to see)."""
    cond = f" WHERE \"HOSPCODE\" IN ({', '.join('?' for _ in codes)})" if codes else ""
    parts = [f'SELECT DISTINCT "HOSPCODE" AS h FROM {table_name(spec)}{cond}' for spec in schema.FILES.values()]
    qcond = f" WHERE hospcode IN ({', '.join('?' for _ in codes)})" if codes else ""
    parts.append(f"SELECT DISTINCT hospcode AS h FROM quarantine{qcond}")
    params = list(codes or ()) * len(parts)
    return "SELECT DISTINCT h FROM (" + " UNION ALL ".join(parts) + ") WHERE h IS NOT NULL AND h <> '' ORDER BY 1", \
        params


def facilities(src: StoreLike) -> list[str]:
    """Every facility code with staged rows or quarantine entries, sorted."""
    sql, params = _facility_sql(None)
    return [r[0] for r in _con(src).execute(sql, params).fetchall()]


def facility_codes(codes: Iterable[str]) -> tuple[str, ...]:
    """Facility codes as given on a command line (repeated, or comma-separated), trimmed, sorted, unique; a
    malformed one is a :class:`~phrsync.errors.UsageError`."""
    wanted = tuple(sorted({c.strip() for v in codes for c in v.split(",") if c.strip()}))
    bad = [c for c in wanted if not _HOSPCODE.fullmatch(c)]
    if bad:
        raise UsageError(f"รหัสหน่วยบริการต้องมี 5 ตัว (HOSPCODE): {', '.join(bad)}",
                         f"a facility code has 5 characters (HOSPCODE): {', '.join(bad)}")
    return wanted


def require_facilities(src: StoreLike, codes: Iterable[str]) -> tuple[str, ...]:
    """The given facility codes (:func:`facility_codes`) when every one is in the store.

    A malformed code is a :class:`~phrsync.errors.UsageError`; a well-formed one the store does not hold is a
    :class:`~phrsync.errors.NotFoundError` naming it: either way a typo never turns into an empty success.
    The build's, the agent's and ``quarantine``'s ``--facility`` all check through here."""
    wanted = facility_codes(codes)
    if not wanted:
        return wanted
    con = _con(src)
    sql, params = _facility_sql(wanted)
    present = {r[0] for r in con.execute(sql, params).fetchall()}
    missing = [c for c in wanted if c not in present]
    if missing:
        where = f" {src.path}" if isinstance(src, Staging) else ""
        known = facilities(con)
        shown = ", ".join(known[:_SHOWN]) + (f" … (+{len(known) - _SHOWN})" if len(known) > _SHOWN else "")
        raise NotFoundError(
            f"ไม่มีหน่วยบริการ {', '.join(missing)} ในที่พักข้อมูล{where}",
            f"no facility {', '.join(missing)} in the staging store{where}",
            hint=f"มีอยู่ / present: {shown}" if known else "ที่พักข้อมูลว่าง / the store is empty")
    return wanted


# -- encounters ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class DayCount:
    """Encounters of one facility on one day: OPD visits by service date, admissions by admit date."""

    hospcode: str
    day: dt.date
    opd: int
    ipd: int

    @property
    def total(self) -> int:
        return self.opd + self.ipd

    def to_dict(self) -> dict[str, Any]:
        return {"hospcode": self.hospcode, "day": self.day.isoformat(), "opd": self.opd, "ipd": self.ipd}


def encounter_counts(src: StoreLike, sel: Selection = EVERYTHING) -> list[DayCount]:
    """Encounters per facility and day of the selection, ordered by facility, then day (counted from the
    visits: see :func:`encounter_day_totals` for the same figures from the store's summary table)."""
    ws, ps = sel.where("DATE_SERV")
    wa, pa_ = sel.where("DATETIME_ADMIT")
    sql = aggregates.counts_sql(ws, wa) + " ORDER BY 1, 2"
    return [DayCount(h, d, int(o), int(i)) for h, d, o, i in _con(src).execute(sql, ps + pa_).fetchall()]


def encounter_day_totals(src: StoreLike, sel: Selection = EVERYTHING) -> list[DayCount]:
    """:func:`encounter_counts` read from the summary table that every import keeps (a few thousand rows
    instead of millions of visits: what a web page asks). A store made before that table, opened read-only,
    is counted from the visits instead."""
    con = _con(src)
    if not aggregates.exists(con):
        return encounter_counts(con, sel)
    where, params = ["TRUE"], []
    if sel.date_from:
        where.append("day >= ?")
        params.append(sel.date_from)
    if sel.date_to:
        where.append("day <= ?")
        params.append(sel.date_to)
    if sel.facilities:
        where.append(f"hospcode IN ({', '.join('?' for _ in sel.facilities)})")
        params.extend(sel.facilities)
    rows = con.execute(f"SELECT hospcode, day, opd, ipd FROM {aggregates.TABLE} WHERE {' AND '.join(where)} "
                       "ORDER BY 1, 2", params).fetchall()
    return [DayCount(h, d, int(o), int(i)) for h, d, o, i in rows]


def encounters_per_day(src: StoreLike, sel: Selection = EVERYTHING) -> list[tuple[dt.date, int]]:
    """Encounters per day over the selected facilities, in day order (the build splits its work on these)."""
    per: dict[dt.date, int] = {}
    for c in encounter_counts(src, sel):
        per[c.day] = per.get(c.day, 0) + c.total
    return sorted(per.items())


def encounter_days(src: StoreLike, sel: Selection = EVERYTHING) -> list[dt.date]:
    """The days of the selection with at least one encounter, in order."""
    return [d for d, _n in encounters_per_day(src, sel)]


# -- quarantine ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class QuarantineRow:
    """One quarantine entry as a person reviews it; ``value`` was masked when it was stored (a citizen ID
    never appears whole)."""

    hospcode: str
    file: str
    source: str
    line: int
    field: str
    value: str
    rule: str
    severity: str
    reason_th: str
    reason_en: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def quarantine_rows(src: StoreLike, *, facility: str | None = None, file: str | None = None,
                    rule: str | None = None, severity: str | None = None, limit: int = 50) -> list[QuarantineRow]:
    """Quarantine entries in the order they were found, filtered; at most ``limit``."""
    where, params = [], []
    for col, val in (("hospcode", facility), ("file", file and file.upper()), ("rule", rule),
                     ("severity", severity)):
        if val:
            where.append(f"{col} = ?")
            params.append(val)
    sql = ("SELECT coalesce(hospcode, ''), coalesce(file, ''), coalesce(source, ''), coalesce(line, 0), "
           "coalesce(field, ''), coalesce(value, ''), rule, severity, reason_th, reason_en FROM quarantine"
           + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id LIMIT ?")
    return [QuarantineRow(*r) for r in _con(src).execute(sql, [*params, max(0, limit)]).fetchall()]


@dataclass(frozen=True)
class QuarantineCount:
    """How many entries one facility has for one file and rule."""

    hospcode: str
    file: str
    rule: str
    severity: str
    count: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def quarantine_summary(src: StoreLike, *, import_id: int | None = None,
                       facility: str | None = None) -> list[QuarantineCount]:
    """Entry counts per facility, file, rule and severity, the largest first."""
    where, params = [], []
    for col, val in (("import_id", import_id), ("hospcode", facility)):
        if val is not None:
            where.append(f"{col} = ?")
            params.append(val)
    sql = ("SELECT coalesce(hospcode, ''), coalesce(file, ''), rule, severity, count(*) FROM quarantine"
           + (" WHERE " + " AND ".join(where) if where else "") + " GROUP BY ALL ORDER BY 5 DESC, 1, 2, 3")
    return [QuarantineCount(h, f, r, s, int(n)) for h, f, r, s, n in _con(src).execute(sql, params).fetchall()]


def quarantine_counts(src: StoreLike) -> dict[str, int]:
    """Rows held back (an error entry) per facility: a row with two problems counts once."""
    rows = _con(src).execute(
        "SELECT coalesce(hospcode, ''), count(DISTINCT (file, source, line)) FROM quarantine WHERE severity = 'error' "
        "GROUP BY 1").fetchall()
    return {h: int(n) for h, n in rows}


@dataclass
class QuarantineGroup:
    """The entries of one facility, file, rule and severity with their first examples (by line), for the
    data-quality report."""

    hospcode: str
    file: str
    rule: str
    severity: str
    reason_th: str
    reason_en: str
    count: int
    examples: list[dict[str, Any]] = field(default_factory=list)  # {source, line, field, value}


def quarantine_groups(src: StoreLike, facilities: Iterable[str] = (), max_examples: int = 3) -> list[QuarantineGroup]:
    """The quarantine grouped by facility, file, rule and severity (``facilities`` empty = all)."""
    codes = list(facilities)
    where = f" WHERE hospcode IN ({', '.join('?' for _ in codes)})" if codes else ""
    rows = _con(src).execute(
        "SELECT coalesce(hospcode, ''), file, rule, severity, any_value(reason_th), any_value(reason_en), "
        "count(*), list(struct_pack(source := source, line := line, field := field, value := value) "
        f"ORDER BY line)[1:{int(max_examples)}] FROM quarantine{where} GROUP BY ALL", codes).fetchall()
    return [QuarantineGroup(h, f or "", r or "", s or "", th or "", en or "", int(n), list(ex or []))
            for h, f, r, s, th, en, n, ex in rows]


# -- the store as a whole ------------------------------------------------------------------------

def row_counts(src: StoreLike) -> dict[str, int]:
    """Staged rows per 43-file, in the registry's order."""
    parts = [f"SELECT '{spec.name}', count(*) FROM {table_name(spec)}" for spec in schema.FILES.values()]
    got = dict(_con(src).execute(" UNION ALL ".join(parts)).fetchall())
    return {spec.name: int(got[spec.name]) for spec in schema.FILES.values()}


@dataclass(frozen=True)
class ImportRun:
    """One import as the imports log holds it."""

    id: int
    started: dt.datetime | None
    finished: dt.datetime | None
    status: str
    kind: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "started": str(self.started), "finished": str(self.finished), "status": self.status,
                "kind": self.kind}


def recent_imports(src: StoreLike, limit: int = 5) -> list[ImportRun]:
    """The latest imports, newest first."""
    rows = _con(src).execute("SELECT id, started, finished, status, kind FROM imports ORDER BY id DESC LIMIT ?",
                             [limit]).fetchall()
    return [ImportRun(int(i), s, f, st or "", k or "") for i, s, f, st, k in rows]
