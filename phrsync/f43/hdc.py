"""The provincial HDC (Health Data Center) MySQL/MariaDB database as a 43-file source and target.

HDC keeps one table per 43-file (``person``, ``service``, ``diagnosis_opd`` ...) with the files'
column names, upper or lower case depending on the HDC version, plus HDC-internal columns such as
``cid_aes`` and ``log_import_id`` that are not part of the standard and are ignored here. The
"2016 schema" types its columns (DATE, DATETIME, DECIMAL); the newer import schema stores
everything as VARCHAR. This module handles both:

* :func:`create_schema` builds an HDC-like schema from the registry in :mod:`phrsync.f43.schema`
  (typed by default, all-VARCHAR with ``typed=False``) so tests, the sandbox and demos have one.
* :func:`load_batches` upserts synthetic batches into it (the ``phrsync synth --hdc URL`` path).
* :func:`read_hdc` streams tables back as :class:`phrsync.f43.source.Chunk` objects in the 43-file
  text form, so HDC rows go through the same row checks as zip exports.

Choices the rest of phrsync relies on:

* Decimals come back with the scale of their column, as MySQL prints them (``DECIMAL(11,2)`` →
  ``"120.00"``, ``DECIMAL(4,1)`` → ``"36.8"``): the 43-file text form of prices has two decimals,
  and the text is exactly what the database holds.
* Dates and date-times are formatted by the server (``DATE_FORMAT``), so a zero date left by a
  lax HDC import reads as ``"00000000"`` and is reported by the row checks instead of vanishing.
* ``date_from``/``date_to`` filter on :attr:`FileSpec.date_field`. Registry tables with no date
  field (PERSON, ADDRESS, CARD, PROVIDER) are read whole: a person whose visit lies in the range is
  needed whatever the registry row's own dates are. ``since`` (on ``D_UPDATE``) is the way to read
  registries incrementally.
* Columns of a table that is all VARCHAR hold 43-file text already and are read as they are; date
  filters on such columns compare ``YYYYMMDD`` text, which orders like the dates it spells.
* Columns are matched case-insensitively; a spec field the table lacks reads as null (a base
  field's absence adds an ``hdc_column_missing`` warning to the table's first chunk); a missing
  table yields one empty chunk with an ``hdc_table_missing`` warning.
* Loading upserts on the table's primary key and keeps the row with the later ``D_UPDATE`` (a
  NULL ``D_UPDATE`` never replaces a dated row), so loading twice changes nothing. A value that
  does not fit its column is stored as NULL and counted; a row whose key cannot be stored is
  skipped and counted (see :class:`LoadResult`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pymysql
from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool

from phrsync.errors import SourceError
from phrsync.f43 import schema
from phrsync.f43.schema import Field, FileSpec
from phrsync.f43.source import LINE_COL, RAW_COL, Chunk, Problem, to_table
from phrsync.pdpa import mask_text, mask_url

# HDC-internal columns added by the import program (not part of the exported files).
HDC_EXTRA_COLUMNS: tuple[tuple[str, str], ...] = (
    ("cid_aes", "VARCHAR(255) NULL"),
    ("log_import_id", "BIGINT NULL"),
)
LOAD_BATCH_ROWS = 5_000  # rows gathered per file before they are sent (in statements of at most a megabyte)
THAI_TZ = dt.timezone(dt.timedelta(hours=7))  # HDC times are local Thai time without a zone

_CHAR_TYPES = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"}
_FLOAT_TYPES = {"float", "double", "real"}


class HDCError(SourceError):
    """The HDC database could not be reached or used (exit 6); the message is bilingual and password-free."""


class Batch(Protocol):
    """What :func:`load_batches` needs from a synthetic batch (``phrsync.synth`` provides them)."""

    hospcode: str
    month: str
    files: dict[str, list[list[str]]]


class LoadResult(dict[str, int]):
    """Rows loaded per 43-file name, plus what could not be stored as given.

    ``bad_values`` counts values that did not fit their column (stored as NULL) per ``FILE.FIELD``;
    ``skipped`` counts rows per file left out because a key field was empty or unconvertible.
    """

    def __init__(self) -> None:
        super().__init__()
        self.bad_values: dict[str, int] = {}
        self.skipped: dict[str, int] = {}


# ---------------------------------------------------------------------------------------------
# URLs, engines and errors


def _url(url_or_engine: str | URL | Engine) -> URL:
    """The URL to connect with: any MySQL/MariaDB URL or engine, driven by PyMySQL, utf8mb4."""
    if isinstance(url_or_engine, Engine):
        u = url_or_engine.url
    else:
        try:
            u = make_url(url_or_engine)
        except ArgumentError as e:
            raise HDCError("URL ฐานข้อมูล HDC ไม่ถูกต้อง",
                           f"invalid HDC database URL: {mask_url(str(url_or_engine))}") from e
    backend = u.get_backend_name()
    if backend not in ("mysql", "mariadb"):
        raise HDCError("HDC ต้องเป็น MySQL/MariaDB", f"HDC must be MySQL or MariaDB: {mask_url(u)}")
    if u.get_driver_name() != "pymysql":
        u = u.set(drivername=f"{backend}+pymysql")
    if "charset" not in u.query:
        u = u.update_query_dict({"charset": "utf8mb4"})
    return u


def _where(u: URL) -> str:
    host = u.host or "localhost"
    port = f":{u.port}" if u.port else ""
    return f"{host}{port}/{u.database or ''}"


def _error(u: URL, action_th: str, action_en: str, exc: BaseException) -> HDCError:
    """Wrap a driver error: say where and what, never the password."""
    detail = exc.args[1] if isinstance(exc, pymysql.err.MySQLError) and len(exc.args) > 1 else str(exc)
    detail = str(detail)
    if u.password:
        detail = detail.replace(str(u.password), "***")
    detail = mask_text(detail)  # a server message may quote a key value, e.g. a citizen ID
    return HDCError(f"{action_th} ({_where(u)})", f"{action_en} ({_where(u)}): {detail}")


@lru_cache(maxsize=32)
def _connect_args(target: URL) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """PyMySQL arguments for a URL, as SQLAlchemy's dialect derives them (cached: building an
    engine costs more than the connection itself)."""
    engine = create_engine(target, poolclass=NullPool)
    cargs, cparams = engine.dialect.create_connect_args(target)
    engine.dispose()
    cparams.setdefault("connect_timeout", 10)
    return tuple(cargs), dict(cparams)


def _connect(u: URL, *, database: bool = True) -> Any:
    """A plain PyMySQL connection (the reader's server-side cursor and the loader's multi-row
    INSERTs need it directly); connection arguments come from SQLAlchemy's URL handling."""
    target = u if database else u._replace(database=None)
    cargs, cparams = _connect_args(target)
    try:
        return pymysql.connect(*cargs, **dict(cparams))
    except pymysql.err.MySQLError as e:
        raise _error(u, "เชื่อมต่อฐานข้อมูล HDC ไม่ได้", "cannot connect to the HDC database", e) from e


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


# ---------------------------------------------------------------------------------------------
# Schema


def _column_ddl(f: Field, name: str, typed: bool) -> str:
    # The newer HDC schema is all VARCHAR. Key columns keep the standard's width (a 4-column
    # key of VARCHAR(255) in utf8mb4 passes InnoDB's 3072-byte key limit); the rest are wide.
    if typed:
        typ = f.mysql_type
    elif f.kind == "T":
        typ = "TEXT"
    else:
        typ = f"VARCHAR({(f.length or 14) if f.kind == 'C' or f.key else 255})"
    # Only key columns are NOT NULL: the loader must accept dirty rows so phrsync's checks can
    # report them, as a real HDC import of a broken export does.
    null = "NOT NULL" if f.key else "NULL"
    return f"{_q(name)} {typ} {null}"


def table_ddl(spec: FileSpec, *, upper_case: bool = False, hdc_extras: bool = True,
              typed: bool = True) -> tuple[str, list[Any]]:
    """``CREATE TABLE IF NOT EXISTS`` for one 43-file in the HDC layout, and its parameters (the comment)."""
    name = (lambda f: f.name) if upper_case else (lambda f: f.sql_name)
    cols = [_column_ddl(f, name(f), typed) for f in spec.fields]
    if hdc_extras:
        cols += [f"{_q(c)} {t}" for c, t in HDC_EXTRA_COLUMNS]
    cols.append("PRIMARY KEY (" + ", ".join(_q(name(spec.by_name[k])) for k in spec.key) + ")")
    # The reader's filters: date range on the date field, incremental reads on D_UPDATE.
    for idx in dict.fromkeys(x for x in (spec.date_field, "D_UPDATE") if x):
        cols.append(f"KEY {_q('ix_' + idx.lower())} ({_q(name(spec.by_name[idx]))})")
    ddl = (f"CREATE TABLE IF NOT EXISTS {_q(spec.table)} (\n  " + ",\n  ".join(cols) + "\n) "
           "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT=")
    return ddl.replace("%", "%%") + "%s", [f"{spec.title_th} / {spec.title_en}"]


def create_schema(
    url_or_engine: str | URL | Engine,
    *,
    upper_case: bool = False,
    hdc_extras: bool = True,
    typed: bool = True,
    files: Iterable[str] | None = None,
) -> None:
    """Create the database (if missing) and one HDC table per 43-file; existing tables are kept.

    ``typed=False`` gives the newer HDC import schema's all-VARCHAR columns.
    """
    u = _url(url_or_engine)
    if not u.database:
        raise HDCError("URL ไม่ระบุชื่อฐานข้อมูล", f"the URL names no database: {mask_url(u)}")
    specs = _specs(files)
    conn = _connect(u, database=False)
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"CREATE DATABASE IF NOT EXISTS {_q(u.database)} "
                "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
            cur.execute(f"USE {_q(u.database)}")
            for spec in specs:
                cur.execute(*table_ddl(spec, upper_case=upper_case, hdc_extras=hdc_extras, typed=typed))
        conn.commit()
    except pymysql.err.MySQLError as e:
        raise _error(u, "สร้างตาราง HDC ไม่สำเร็จ", "cannot create the HDC tables", e) from e
    finally:
        conn.close()


def _specs(files: Iterable[str] | None) -> list[FileSpec]:
    """Specs in import order (registries first); unknown names are an error, not a silent skip."""
    if files is None:
        return [schema.FILES[n] for n in schema.ORDER]
    wanted: set[str] = set()
    for name in files:
        spec = schema.lookup(name)
        if spec is None:
            raise ValueError(f"ไม่รู้จักแฟ้ม / unknown 43-file: {name!r}")
        wanted.add(spec.name)
    return [schema.FILES[n] for n in schema.ORDER if n in wanted]


@dataclass
class _Column:
    name: str  # as the table spells it
    data_type: str  # information_schema DATA_TYPE, lower case
    max_chars: int | None
    max_octets: int | None
    precision: int | None
    scale: int | None


@dataclass
class _Table:
    name: str
    columns: dict[str, _Column] = field(default_factory=dict)  # upper-case name -> column
    primary_key: list[str] = field(default_factory=list)  # actual names, in key order


def _catalog(cur: Any) -> dict[str, _Table]:
    """Tables of the current database by lower-case name, columns by upper-case name."""
    cur.execute(
        "SELECT TABLE_NAME, COLUMN_NAME, LOWER(DATA_TYPE), CHARACTER_MAXIMUM_LENGTH, CHARACTER_OCTET_LENGTH,"
        " NUMERIC_PRECISION, NUMERIC_SCALE, COLUMN_KEY FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION"
    )
    tables: dict[str, _Table] = {}
    for tname, cname, dtype, mchars, moctets, prec, scale, _ckey in cur.fetchall():
        t = tables.setdefault(str(tname).lower(), _Table(name=str(tname)))
        t.columns[str(cname).upper()] = _Column(
            str(cname), str(dtype),
            int(mchars) if mchars is not None else None,
            int(moctets) if moctets is not None else None,
            int(prec) if prec is not None else None,
            int(scale) if scale is not None else None,
        )
    cur.execute(
        "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE"
        " WHERE TABLE_SCHEMA = DATABASE() AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY TABLE_NAME, ORDINAL_POSITION"
    )
    for tname, cname in cur.fetchall():
        t = tables.get(str(tname).lower())
        if t is not None:
            t.primary_key.append(str(cname))
    return tables


# ---------------------------------------------------------------------------------------------
# Loading: 43-file text → driver parameters
#
# Every value goes to the server as a driver parameter (PyMySQL quotes it, following the server's
# NO_BACKSLASH_ESCAPES mode); no SQL text is built from data. Each converter turns one non-empty text into
# the value to bind (text in the form the column takes), or ``_BAD`` when the text does not fit the column
# (then NULL is stored and the value counted).

_BAD = object()  # marker: the text does not fit the column
_NUMBER_RE = re.compile(r"-?(\d*)(?:\.(\d*))?")
# PyMySQL's executemany sends the rows of a multi-row INSERT in statements of at most this many bytes,
# well under every server's default max_allowed_packet
_MAX_STATEMENT_BYTES = 1_000_000


@lru_cache(maxsize=65_536)
def _date_value(s: str) -> str | object:
    s = s.strip()
    if len(s) != 8 or not s.isdigit():
        return _BAD
    try:
        d = dt.date(int(s[:4]), int(s[4:6]), int(s[6:]))
    except ValueError:
        return _BAD
    return d.isoformat()


@lru_cache(maxsize=65_536)
def _datetime_value(s: str, timestamp: bool = False) -> str | object:
    s = s.strip()
    if len(s) == 8:  # a date alone means midnight
        s += "000000"
    if len(s) != 14 or not s.isdigit():
        return _BAD
    try:
        v = dt.datetime(int(s[:4]), int(s[4:6]), int(s[6:8]), int(s[8:10]), int(s[10:12]), int(s[12:]))
    except ValueError:
        return _BAD
    if timestamp and not 1970 < v.year < 2038:  # TIMESTAMP's range (in any local zone)
        return _BAD
    return v.isoformat(sep=" ")


def _time_value(s: str) -> str | object:
    s = s.strip()
    if len(s) != 6 or not s.isdigit() or int(s[:2]) > 23 or int(s[2:4]) > 59 or int(s[4:]) > 59:
        return _BAD
    return f"{s[:2]}:{s[2:4]}:{s[4:]}"


_INT_RANGE = {
    "tinyint": 2**7, "smallint": 2**15, "mediumint": 2**23, "int": 2**31, "integer": 2**31,
    "bigint": 2**63, "year": 10_000,
}


def _decimal_value(prec: int, scale: int) -> Callable[[str], str | object]:
    quantum = Decimal(1).scaleb(-scale)
    limit = Decimal(10) ** (prec - scale)
    int_digits = prec - scale

    def conv(s: str) -> str | object:
        s = s.strip()
        m = _NUMBER_RE.fullmatch(s)
        # Fast path: plain digits that fit as they are (the usual case) go through untouched.
        if m and m.group(1) and len(m.group(1)) <= int_digits and len(m.group(2) or "") <= scale \
                and (m.group(2) is None or m.group(2) != ""):
            return s
        try:  # otherwise round to the column's scale, half up, as a person would
            d = Decimal(s).quantize(quantum, rounding=ROUND_HALF_UP)
        except (InvalidOperation, ValueError):
            return _BAD
        return str(d) if d.is_finite() and abs(d) < limit else _BAD

    return conv


def _int_value(bound: int) -> Callable[[str], int | object]:
    def conv(s: str) -> int | object:
        s = s.strip()
        try:
            v = int(s)
        except ValueError:
            try:  # "120.0" from a spreadsheet is still 120; "120.5" is not an integer
                d = Decimal(s)
            except InvalidOperation:
                return _BAD
            if not d.is_finite() or d != d.to_integral_value():
                return _BAD
            v = int(d)
        return v if -bound <= v < bound else _BAD

    return conv


def _float_value(s: str) -> float | object:
    try:
        v = float(s.strip())
    except ValueError:
        return _BAD
    return v if v == v and abs(v) != float("inf") else _BAD


def _converter(col: _Column) -> Callable[[str], Any]:
    """Non-empty 43-file text → the value to bind for this column, or ``_BAD``."""
    t = col.data_type
    if t == "date":
        return _date_value
    if t in ("datetime", "timestamp"):
        ts = t == "timestamp"
        return lambda s: _datetime_value(s, ts)
    if t == "time":
        return _time_value
    if t == "decimal":
        return _decimal_value(col.precision or 65, col.scale or 0)
    if t in _INT_RANGE:
        return _int_value(_INT_RANGE[t])
    if t in _FLOAT_TYPES:
        return _float_value
    if t in ("char", "varchar") and col.max_chars:
        n = col.max_chars
        return lambda s: s if len(s) <= n else _BAD
    if col.max_octets:  # TEXT and friends: the limit is in bytes
        n = col.max_octets
        return lambda s: s if len(s) * 4 <= n or len(s.encode("utf-8")) <= n else _BAD
    return lambda s: s


def _upsert_sql(table: _Table, cols: list[_Column], key_upper: set[str]) -> str:
    """An INSERT … VALUES (%s, …) ON DUPLICATE KEY UPDATE keeping the later D_UPDATE, for executemany.

    MySQL applies the assignments left to right and later ones see earlier results, so D_UPDATE
    is assigned last: every comparison sees the stored row's D_UPDATE. A NULL incoming D_UPDATE
    never replaces a dated row; equal D_UPDATEs replace (same data → no change).
    """
    names = [_q(c.name) for c in cols]
    d = _q(table.columns["D_UPDATE"].name) if "D_UPDATE" in table.columns else None
    sets: list[str] = []
    for c in cols:
        if c.name.upper() in key_upper or c.name.upper() == "D_UPDATE":
            continue
        qc = _q(c.name)
        if d:
            sets.append(f"{qc} = IF(VALUES({d}) >= {d} OR {d} IS NULL, VALUES({qc}), {qc})")
        else:
            sets.append(f"{qc} = VALUES({qc})")
    if d and "D_UPDATE" not in key_upper:
        sets.append(f"{d} = IF(VALUES({d}) >= {d} OR {d} IS NULL, VALUES({d}), {d})")
    if not sets:  # every column is in the key: a duplicate is simply the same row
        sets.append(f"{names[0]} = {names[0]}")
    head = f"INSERT INTO {_q(table.name)} ({', '.join(names)}) VALUES "
    tail = f" ON DUPLICATE KEY UPDATE {', '.join(sets)}"
    # names come from the catalogue: a % in one must not read as a placeholder
    return head.replace("%", "%%") + "(" + ", ".join(["%s"] * len(cols)) + ")" + tail.replace("%", "%%")


def _load_rows(cur: Any, spec: FileSpec, table: _Table, rows: Sequence[Sequence[str]], result: LoadResult) -> None:
    width = len(spec.fields)
    padded: list[Sequence[str]] = []
    for r in rows:
        if len(r) > width:
            raise ValueError(
                f"แถวของ {spec.name} มี {len(r)} ช่อง เกิน {width} / {spec.name} row has {len(r)} fields, "
                f"more than {width}"
            )
        padded.append(r if len(r) == width else [*r, *([""] * (width - len(r)))])
    by_field = list(zip(*padded, strict=True)) if padded else []
    present = [(i, f, table.columns[f.name]) for i, f in enumerate(spec.fields) if f.name in table.columns]
    cols = [c for _, _, c in present]
    key_upper = {k.upper() for k in table.primary_key} or set(spec.key)
    bad = result.bad_values

    # Column by column: one converter, one tight loop. A key column's unusable value becomes
    # _BAD, which marks the whole row as not loadable; any other becomes None (NULL).
    value_cols: list[list[Any]] = []
    for i, f, col in present:
        conv = _converter(col)
        is_key = col.name.upper() in key_upper
        out: list[Any] = []
        nbad = 0
        empty = _BAD if is_key else None
        values = by_field[i] if by_field else ()
        if col.data_type in ("char", "varchar") and col.max_chars:
            n = col.max_chars  # most columns are text: the same as _converter's, inlined for speed
            for s in values:
                if not s:
                    out.append(empty)
                elif len(s) <= n:
                    out.append(s)
                else:
                    nbad += 1
                    out.append(empty)
        else:
            for s in values:
                if not s:
                    out.append(empty)
                    continue
                v = conv(s)
                if v is _BAD:
                    nbad += 1
                    out.append(empty)
                else:
                    out.append(v)
        if nbad:
            label = f"{spec.name}.{f.name}"
            bad[label] = bad.get(label, 0) + nbad
        value_cols.append(out)

    sql = _upsert_sql(table, cols, key_upper)
    cur.max_stmt_length = _MAX_STATEMENT_BYTES  # executemany's rows per statement
    good = [r for r in zip(*value_cols, strict=True) if _BAD not in r]
    for start in range(0, len(good), LOAD_BATCH_ROWS):
        cur.executemany(sql, good[start:start + LOAD_BATCH_ROWS])
    result[spec.name] = result.get(spec.name, 0) + len(good)
    skipped = len(padded) - len(good)
    if skipped:
        result.skipped[spec.name] = result.skipped.get(spec.name, 0) + skipped


def _open_for_load(u: URL, upper_case: bool, typed: bool) -> tuple[Any, dict[str, _Table]]:
    """Connect, creating the database and any missing 43-file tables first (only those: a
    repeated load costs one catalogue query, not 22 DDL statements)."""
    try:
        conn = _connect(u)
    except HDCError as e:
        cause = e.__cause__
        if not (isinstance(cause, pymysql.err.MySQLError) and cause.args and cause.args[0] == 1049):
            raise  # not "unknown database": a real connection problem
        create_schema(u, upper_case=upper_case, typed=typed)
        conn = _connect(u)
    try:
        with conn.cursor() as cur:
            catalog = _catalog(cur)
            missing = [n for n, spec in schema.FILES.items() if spec.table not in catalog]
            if missing:
                create_schema(u, upper_case=upper_case, typed=typed, files=missing)
                catalog = _catalog(cur)
    except pymysql.err.MySQLError as e:
        conn.close()
        raise _error(u, "อ่านโครงสร้างฐานข้อมูล HDC ไม่ได้", "cannot read the HDC catalogue", e) from e
    except BaseException:
        conn.close()
        raise
    return conn, catalog


def load_batches(
    url: str | URL | Engine, batches: Iterable[Batch], *, upper_case: bool = False, typed: bool = True
) -> LoadResult:
    """Upsert synthetic batches into the HDC schema (created first if missing); rows per file.

    Loading the same batches twice changes nothing; a row with a later D_UPDATE replaces the stored
    one, an earlier one does not. Values that do not fit their column are stored as NULL and
    counted in ``result.bad_values``; rows with an empty or unusable key are counted in
    ``result.skipped``. ``upper_case``/``typed`` shape tables this call creates (see
    :func:`create_schema`); ``typed=False`` keeps deliberately broken test values (a 13th month)
    verbatim, as the newer all-VARCHAR HDC schema does, instead of storing NULL.
    """
    u = _url(url)
    result = LoadResult()
    conn, catalog = _open_for_load(u, upper_case, typed)
    try:
        with conn.cursor() as cur:
            # Rows wait per file until a full statement's worth has gathered: a province sends
            # hundreds of small monthly batches, and one statement + commit each would be slow.
            pending: dict[str, list[Sequence[str]]] = {}

            def flush(name: str) -> None:
                rows = pending.pop(name, [])
                if not rows:
                    return
                spec = schema.FILES[name]
                table = catalog.get(spec.table)
                if table is None:
                    raise HDCError(f"ไม่พบตาราง {spec.table} ({_where(u)})",
                                   f"table {spec.table} not found ({_where(u)})")
                _load_rows(cur, spec, table, rows, result)
                conn.commit()

            for batch in batches:
                for name, rows in batch.files.items():
                    spec = schema.lookup(name)
                    if spec is None:
                        raise ValueError(f"ไม่รู้จักแฟ้ม / unknown 43-file: {name!r}")
                    buf = pending.setdefault(spec.name, [])
                    buf.extend(rows)
                    if len(buf) >= LOAD_BATCH_ROWS:
                        flush(spec.name)
            for name in schema.ORDER:
                flush(name)
    except pymysql.err.MySQLError as e:
        with contextlib.suppress(Exception):  # the connection may be gone: report the cause
            conn.rollback()
        raise _error(u, "บันทึกข้อมูลลง HDC ไม่สำเร็จ", "cannot load data into HDC", e) from e
    finally:
        conn.close()
    return result


# ---------------------------------------------------------------------------------------------
# Reading: column values → 43-file text, streamed


def _select_expr(f: Field, col: _Column | None) -> str:
    """SQL that yields the 43-file text form of one field, formatted by the server."""
    if col is None:
        return "NULL"
    c = _q(col.name)
    t = col.data_type
    if t in ("date", "datetime", "timestamp"):
        fmt = "%%Y%%m%%d%%H%%i%%s" if f.kind == "DT" else "%%Y%%m%%d"
        return f"DATE_FORMAT({c}, '{fmt}')"
    if t == "time":
        return f"TIME_FORMAT({c}, '%%H%%i%%s')"
    if t in _CHAR_TYPES:
        return c
    return f"CAST({c} AS CHAR)"


def _filter_value(col: _Column, value: dt.date | dt.datetime) -> Any:
    """A bound value comparable with the column: text for VARCHAR tables, a date otherwise."""
    if col.data_type in _CHAR_TYPES:
        if isinstance(value, dt.datetime):
            return value.strftime("%Y%m%d%H%M%S")
        return value.strftime("%Y%m%d")
    return value


def _local(ts: dt.datetime) -> dt.datetime:
    return ts.astimezone(THAI_TZ).replace(tzinfo=None) if ts.tzinfo else ts


def _plan_query(
    spec: FileSpec,
    table: _Table,
    date_from: dt.date | None,
    date_to: dt.date | None,
    since: dt.datetime | None,
    hospcodes: list[str] | None,
) -> tuple[str, list[Any]]:
    exprs = [_select_expr(f, table.columns.get(f.name)) for f in spec.fields]
    where: list[str] = []
    args: list[Any] = []
    dcol = table.columns.get(spec.date_field) if spec.date_field else None
    if dcol is not None:
        if date_from is not None:
            where.append(f"{_q(dcol.name)} >= %s")
            args.append(_filter_value(dcol, date_from))
        if date_to is not None:  # inclusive: everything before the next day, also for date-times
            where.append(f"{_q(dcol.name)} < %s")
            args.append(_filter_value(dcol, date_to + dt.timedelta(days=1)))
    ucol = table.columns.get("D_UPDATE")
    if since is not None and ucol is not None:
        where.append(f"{_q(ucol.name)} >= %s")
        args.append(_filter_value(ucol, _local(since)))
    hcol = table.columns.get("HOSPCODE")
    if hospcodes is not None and hcol is not None:
        where.append(f"{_q(hcol.name)} IN ({', '.join(['%s'] * len(hospcodes))})")
        args.extend(hospcodes)
    sql = f"SELECT {', '.join(exprs)} FROM {_q(table.name)}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if table.primary_key:  # InnoDB reads in primary-key order anyway; this makes _line stable
        sql += " ORDER BY " + ", ".join(_q(k) for k in table.primary_key)
    return sql, args


def _missing_problems(spec: FileSpec, table: _Table, source: str) -> list[Problem]:
    """A warning for each base field the table lacks (appended fields are often absent: normal)."""
    out = []
    for f in spec.base_fields:
        if f.name not in table.columns:
            out.append(Problem(
                source=source, file=spec.name, line=0, field=f.name, value="",
                rule="hdc_column_missing",
                reason_th=f"ตาราง {table.name} ไม่มีคอลัมน์ {f.name} อ่านเป็นค่าว่าง",
                reason_en=f"table {table.name} has no column {f.name}; read as empty",
                severity="warning",
            ))
    return out


def _chunk_table(spec: FileSpec, rows: list[tuple[Any, ...]], first_line: int) -> pa.Table:
    n = len(rows)
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(spec.fields)
    arrays = [pa.array(c, type=pa.string()) for c in cols]
    raw = pc.binary_join_element_wise(*arrays, "|", null_handling="replace", null_replacement="")
    lines = pa.array(range(first_line, first_line + n), type=pa.int64())
    return pa.Table.from_arrays([*arrays, lines, raw], names=[*spec.field_names, LINE_COL, RAW_COL])


def read_hdc(
    url: str | URL | Engine,
    *,
    files: Iterable[str] | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    since: dt.datetime | None = None,
    hospcodes: Iterable[str] | None = None,
    chunk_rows: int = 50_000,
) -> Iterator[Chunk]:
    """Stream HDC tables as chunks of 43-file text, registries first.

    The connection is checked at once (a failure raises :class:`HDCError` here, not at the first
    ``next``); rows then stream through a server-side cursor, so memory stays at one chunk. A
    missing table gives one empty chunk carrying a ``hdc_table_missing`` warning. ``hospcodes``
    None means every facility; an empty list means none.
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be >= 1")
    if isinstance(date_from, dt.datetime):
        date_from = date_from.date()
    if isinstance(date_to, dt.datetime):
        date_to = date_to.date()
    u = _url(url)
    specs = _specs(files)
    hosp = None if hospcodes is None else list(dict.fromkeys(hospcodes))
    conn = _connect(u)
    try:
        with conn.cursor() as cur:
            catalog = _catalog(cur)
            # A slow consumer must not make the server drop a half-read streaming result.
            cur.execute("SET SESSION net_write_timeout = 3600")
    except pymysql.err.MySQLError as e:
        conn.close()
        raise _error(u, "อ่านโครงสร้างฐานข้อมูล HDC ไม่ได้", "cannot read the HDC catalogue", e) from e
    # The generator owns the connection from here (an iterator never started is closed when
    # collected, by PyMySQL's finaliser).
    return _stream(conn, u, specs, catalog, date_from, date_to, since, hosp, chunk_rows)


def _stream(
    conn: Any,
    u: URL,
    specs: list[FileSpec],
    catalog: dict[str, _Table],
    date_from: dt.date | None,
    date_to: dt.date | None,
    since: dt.datetime | None,
    hosp: list[str] | None,
    chunk_rows: int,
) -> Iterator[Chunk]:
    finished = False
    try:
        for spec in specs:
            source = f"hdc:{spec.table}"
            table = catalog.get(spec.table)
            if table is None:
                yield Chunk(spec=spec, source=source, table=to_table(spec, {}, [], []), problems=[Problem(
                    source=source, file=spec.name, line=0, field="", value="", rule="hdc_table_missing",
                    reason_th=f"ไม่พบตาราง {spec.table} ในฐานข้อมูล HDC ข้ามแฟ้มนี้",
                    reason_en=f"table {spec.table} not found in the HDC database; file skipped",
                    severity="warning",
                )])
                continue
            problems = _missing_problems(spec, table, source)
            if hosp is not None and not hosp:
                if problems:
                    yield Chunk(spec=spec, source=source, table=to_table(spec, {}, [], []), problems=problems)
                continue
            sql, args = _plan_query(spec, table, date_from, date_to, since, hosp)
            cur = conn.cursor(pymysql.cursors.SSCursor)
            cur.execute(sql, args)
            line = 1
            while True:
                rows = cur.fetchmany(chunk_rows)
                if not rows:
                    break
                yield Chunk(spec=spec, source=source, table=_chunk_table(spec, rows, line), problems=problems)
                problems = []
                line += len(rows)
            cur.close()  # the result is fully read: nothing left to drain
            if problems:  # no rows, but the caller must still hear about the missing columns
                yield Chunk(spec=spec, source=source, table=to_table(spec, {}, [], []), problems=problems)
        finished = True
    except pymysql.err.MySQLError as e:
        raise _error(u, "อ่านข้อมูลจาก HDC ไม่สำเร็จ", "cannot read from HDC", e) from e
    finally:
        if finished:
            conn.close()
        else:
            # Stopped early (or failed): dropping the socket is cheaper than draining a streaming
            # result row by row, which closing the cursor or sending QUIT politely would need.
            with contextlib.suppress(Exception):
                pending = getattr(conn, "_result", None)
                if pending is not None:  # or its finaliser would try to drain a closed socket
                    pending.unbuffered_active = False
                conn._force_close()
