"""Code tables loaded from CSV, each row carrying its ``source``, with province overrides.

Tables load lazily and are cached: the importer calls :func:`code_set` while setting up its hot
path, so nothing is read until a table is first asked for, and then only once.

Overrides (no code change needed): a directory given by :func:`configure`, else ``$PHRSYNC_CODES_DIR``,
else ``[terminology] dir`` in phrsync.toml. In it ``<table>.csv`` replaces a table,
``<table>.extend.csv`` adds rows or overrides rows by key (only the columns it has), and any other
``<name>.csv`` becomes a new table keyed by its first column. Rows whose ``source`` is empty get the
file path as their source, so every code can still be traced.
"""

from __future__ import annotations

import csv
import io
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phrsync.terminology.registry import COMPLETENESS_LABELS, SPECS, TableSpec

DATA_DIR = Path(__file__).with_name("data")
ENV_DIR = "PHRSYNC_CODES_DIR"
KEY_SEP = ":"  # composite keys (ncd_screen, phr_codingsystems, ...) are written "SMOKE:1"
EXTEND_SUFFIX = ".extend.csv"

Row = dict[str, str]


class CodeTableError(ValueError):
    """A code-table file that cannot be used; the message names file, line and problem in Thai and English."""

    def __init__(self, path: Path | str, line: int | None, problem_th: str, problem_en: str) -> None:
        self.path = Path(path)
        self.line = line
        self.problem_th = problem_th
        self.problem_en = problem_en
        where_th = f"{self.path} บรรทัด {line}" if line else str(self.path)
        where_en = f"{self.path} line {line}" if line else str(self.path)
        super().__init__(f"ไฟล์รหัสใช้ไม่ได้: {where_th}: {problem_th} / bad code file: {where_en}: {problem_en}")


@dataclass(frozen=True)
class CodeTable:
    """One loaded table: its rows (each with ``source``) plus the facts about where they come from."""

    name: str
    title_th: str
    title_en: str
    key: tuple[str, ...]
    columns: tuple[str, ...]
    rows: tuple[Row, ...]
    completeness: str
    completeness_note: str
    origin: str
    production: str
    note_th: str = ""
    alt_key: str | None = None
    files: tuple[Path, ...] = ()  # every file the rows came from, shipped first
    override: str = ""  # "", "replaced", "extended", "replaced+extended" or "user"
    _index: dict[str, Row] = field(default_factory=dict, repr=False, compare=False)
    _alt: dict[str, Row] = field(default_factory=dict, repr=False, compare=False)
    _keys: frozenset[str] = field(default_factory=frozenset, repr=False, compare=False)

    @property
    def key_label(self) -> str:
        """The key as users type it, e.g. ``field:code``."""
        return KEY_SEP.join(self.key)

    @property
    def completeness_th(self) -> str:
        return COMPLETENESS_LABELS.get(self.completeness, (self.completeness, self.completeness))[0]

    @property
    def completeness_en(self) -> str:
        return COMPLETENESS_LABELS.get(self.completeness, (self.completeness, self.completeness))[1]

    def key_of(self, row: Mapping[str, str]) -> str:
        return KEY_SEP.join(row.get(k, "") for k in self.key)

    def keys(self) -> frozenset[str]:
        return self._keys

    def get(self, code: str | Iterable[str]) -> Row | None:
        """The row for a key (``"0100"``, ``"SMOKE:1"`` or ``("SMOKE", "1")``), else by the alternate key."""
        k = code.strip() if isinstance(code, str) else KEY_SEP.join(str(c).strip() for c in code)
        row = self._index.get(k)
        if row is None and self.alt_key:
            row = self._alt.get(k)
        return dict(row) if row is not None else None

    def get_all(self, code: str) -> list[Row]:
        """Every row with this key: shipped tables may carry two rows for one code (see coverage_main_group)."""
        return [dict(r) for r in self.rows if self.key_of(r) == code.strip()]

    def __len__(self) -> int:
        return len(self.rows)

    def to_dict(self, with_rows: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name, "title_th": self.title_th, "title_en": self.title_en, "key": list(self.key),
            "alt_key": self.alt_key, "columns": list(self.columns), "row_count": len(self.rows),
            "completeness": self.completeness, "completeness_note": self.completeness_note,
            "note_th": self.note_th, "origin": self.origin, "production": self.production,
            "files": [str(f) for f in self.files], "override": self.override,
        }
        if with_rows:
            d["rows"] = [dict(r) for r in self.rows]
        return d


# ---------------------------------------------------------------------------------------------
# reading CSV files


@dataclass
class _Read:
    path: Path
    columns: list[str]
    rows: list[tuple[int, Row]]  # (line number, row)


def _read_csv(path: Path, user: bool) -> _Read:
    """Read one CSV strictly; a user file gets its empty ``source`` cells filled with the file path."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise CodeTableError(path, line, "ไม่ใช่ UTF-8 (บันทึกใหม่เป็น CSV UTF-8)",
                             "not UTF-8 (save it again as CSV UTF-8)") from e
    except OSError as e:
        raise CodeTableError(path, None, f"อ่านไฟล์ไม่ได้ ({e.strerror})", f"cannot read ({e.strerror})") from e
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise CodeTableError(path, 1, "ไฟล์ว่าง ไม่มีแถวหัวตาราง", "empty file, no header row") from None
    except csv.Error as e:
        raise CodeTableError(path, 1, f"CSV ผิดรูปแบบ ({e})", f"malformed CSV ({e})") from e
    columns = [h.strip() for h in header]
    if not any(columns):
        raise CodeTableError(path, 1, "แถวหัวตารางว่าง", "empty header row")
    if "" in columns:
        raise CodeTableError(path, 1, f"หัวคอลัมน์ที่ {columns.index('') + 1} ว่าง",
                             f"column {columns.index('') + 1} has no name")
    dup = sorted({c for c in columns if columns.count(c) > 1})
    if dup:
        raise CodeTableError(path, 1, f"ชื่อคอลัมน์ซ้ำ: {', '.join(dup)}", f"duplicate column name: {', '.join(dup)}")
    add_source = "source" not in columns
    if add_source and not user:
        raise CodeTableError(path, 1, "ไม่มีคอลัมน์ source", "no source column")
    rows: list[tuple[int, Row]] = []
    start = reader.line_num + 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise CodeTableError(path, reader.line_num, f"CSV ผิดรูปแบบ ({e})", f"malformed CSV ({e})") from e
        line = start
        start = reader.line_num + 1
        if not any(v.strip() for v in values):
            continue  # blank line
        if len(values) > len(columns):
            raise CodeTableError(path, line, f"มี {len(values)} ช่อง แต่หัวตารางมี {len(columns)} คอลัมน์",
                                 f"{len(values)} fields but the header has {len(columns)} columns")
        values = values + [""] * (len(columns) - len(values))
        row = {c: v.strip() for c, v in zip(columns, values, strict=True)}
        if user and not row.get("source"):
            row["source"] = str(path)
        rows.append((line, row))
    if add_source:
        columns.append("source")
    return _Read(path, columns, rows)


def _check_keys(read: _Read, key: tuple[str, ...], allow_duplicates: bool) -> None:
    missing = [k for k in key if k not in read.columns]
    if missing:
        raise CodeTableError(read.path, 1, f"ไม่มีคอลัมน์คีย์ {', '.join(missing)}",
                             f"missing key column {', '.join(missing)}")
    seen: dict[str, int] = {}
    for line, row in read.rows:
        k = KEY_SEP.join(row[c] for c in key)
        if any(not row[c] for c in key):
            raise CodeTableError(read.path, line, f"ค่าคีย์ ({KEY_SEP.join(key)}) ว่าง",
                                 f"empty key ({KEY_SEP.join(key)})")
        if k in seen and not allow_duplicates:
            raise CodeTableError(read.path, line, f"รหัส {k} ซ้ำกับบรรทัด {seen[k]}",
                                 f"duplicate key {k} (first on line {seen[k]})")
        seen.setdefault(k, line)


# ---------------------------------------------------------------------------------------------
# the override directory and the cache

_UNSET: Any = object()
_lock = threading.RLock()
_cache: dict[str, CodeTable] = {}
_configured: Path | None = _UNSET


def configure(dir: Path | str | None) -> None:
    """Set the override directory (``None`` = shipped tables only) and drop every cached table."""
    global _configured
    with _lock:
        _configured = Path(dir) if dir is not None else None
        _cache.clear()


def reset() -> None:
    """Forget :func:`configure` and the cache; the next load reads ``$PHRSYNC_CODES_DIR`` / phrsync.toml again."""
    global _configured
    with _lock:
        _configured = _UNSET
        _cache.clear()


def dir_from_config(config: Any) -> Path | None:
    """``[terminology] dir`` of a :class:`phrsync.config.Config`, relative to the config file's folder."""
    raw = config.section("terminology").get("dir") if config is not None else None
    if not raw:
        return None
    p = Path(str(raw)).expanduser()
    if not p.is_absolute() and getattr(config, "source", None) is not None:
        p = Path(config.source).parent / p
    return p


def configure_from_config(config: Any) -> None:
    """Use the config's ``[terminology] dir`` unless ``$PHRSYNC_CODES_DIR`` is set (the environment wins)."""
    if os.environ.get(ENV_DIR):
        return
    d = dir_from_config(config)
    if d is not None:
        configure(d)


def override_dir() -> Path | None:
    """The directory user tables are read from now, or None."""
    if _configured is not _UNSET:
        return _configured
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env).expanduser()
    try:
        from phrsync.config import load_config

        return dir_from_config(load_config())
    except Exception:  # a broken phrsync.toml is reported by the CLI itself, not by a code lookup
        return None


def _user_dir() -> Path | None:
    d = override_dir()
    if d is None:
        return None
    if not d.is_dir():
        raise CodeTableError(d, None, "ไม่พบโฟลเดอร์ตารางรหัส", "code-table directory not found")
    return d


def _user_table_names(d: Path | None) -> list[str]:
    if d is None:
        return []
    names = []
    for p in sorted(d.glob("*.csv")):
        if p.name.endswith(EXTEND_SUFFIX):
            base = p.name[: -len(EXTEND_SUFFIX)]
            if base not in SPECS and not (d / f"{base}.csv").is_file():
                raise CodeTableError(p, None, f"ไม่มีตาราง {base} ให้เพิ่มแถว",
                                     f"no table {base} to extend (known: {', '.join(SPECS)})")
            continue
        if p.stem not in SPECS:
            names.append(p.stem)
    return names


def _user_spec(name: str, path: Path, first_column: str) -> TableSpec:
    return TableSpec(
        name, name, name, (first_column,), "user",
        f"User-supplied table from {path}; keyed by its first column ({first_column}).",
        f"user file {path}", "(this is the province's own file)",
        f"ตารางของจังหวัดจากไฟล์ {path}",
    )


def _build(spec: TableSpec, d: Path | None) -> CodeTable:
    files: list[Path] = []
    override: list[str] = []
    replace = d / spec.filename if d is not None else None
    if replace is not None and replace.is_file():
        read = _read_csv(replace, user=True)
        if spec.completeness == "user":
            spec = _user_spec(spec.name, replace, read.columns[0])
        _check_keys(read, spec.key, allow_duplicates=False)
        override.append("replaced" if spec.completeness != "user" else "user")
        files.append(read.path)
        columns, rows = list(read.columns), [r for _, r in read.rows]
    elif spec.derived_from:
        base = get_table(spec.derived_from)
        columns, rows = _derive(base)
        files.extend(base.files)
        if base.override:
            override.append(base.override)
    else:
        read = _read_csv(DATA_DIR / spec.filename, user=False)
        _check_keys(read, spec.key, spec.allow_duplicate_keys)
        files.append(read.path)
        columns, rows = list(read.columns), [r for _, r in read.rows]
    ext = d / f"{spec.name}{EXTEND_SUFFIX}" if d is not None else None
    if ext is not None and ext.is_file():
        extra = _read_csv(ext, user=True)
        _check_keys(extra, spec.key, allow_duplicates=False)
        for c in extra.columns:
            if c not in columns:
                columns.append(c)
        where = {KEY_SEP.join(r.get(k, "") for k in spec.key): i for i, r in reversed(list(enumerate(rows)))}
        for _, r in extra.rows:
            k = KEY_SEP.join(r[c] for c in spec.key)
            if k in where:
                rows[where[k]] = {**rows[where[k]], **r}
            else:
                where[k] = len(rows)
                rows.append(dict(r))
        files.append(ext)
        override.append("extended")
    full = tuple({c: r.get(c, "") for c in columns} for r in rows)
    return _make(spec, tuple(columns), full, tuple(files), "+".join(override))


def _derive(base: CodeTable) -> tuple[list[str], list[Row]]:
    """labtest_units: the unit column of lab_loinc as its own table, each row pointing back to its origin."""
    cols = ["labtest", "labtest_2digit", "unit_ucum", "source"]
    rows = [
        {"labtest": r.get("labtest", ""), "labtest_2digit": r.get("labtest_2digit", ""),
         "unit_ucum": r.get("unit_ucum", ""),
         "source": f"derived: {base.name}.unit_ucum (row {r.get('labtest', '')}; see its source)"}
        for r in base.rows
    ]
    return cols, rows


def _make(spec: TableSpec, columns: tuple[str, ...], rows: tuple[Row, ...], files: tuple[Path, ...],
          override: str) -> CodeTable:
    index: dict[str, Row] = {}
    alt: dict[str, Row] = {}
    for r in rows:
        index.setdefault(KEY_SEP.join(r.get(k, "") for k in spec.key), r)
        if spec.alt_key and r.get(spec.alt_key):
            alt.setdefault(r[spec.alt_key], r)
    return CodeTable(
        name=spec.name, title_th=spec.title_th, title_en=spec.title_en, key=spec.key, columns=columns,
        rows=rows, completeness=spec.completeness, completeness_note=spec.completeness_note,
        origin=spec.origin, production=spec.production, note_th=spec.note_th, alt_key=spec.alt_key,
        files=files, override=override, _index=index, _alt=alt, _keys=frozenset(index),
    )


# ---------------------------------------------------------------------------------------------
# public API


def table_names() -> list[str]:
    """Shipped tables in registry order, then the user directory's new tables."""
    return list(SPECS) + [n for n in _user_table_names(_user_dir()) if n not in SPECS]


def get_table(name: str) -> CodeTable:
    """The table called ``name``; KeyError (Thai + English, listing known tables) when there is none."""
    hit = _cache.get(name)  # lock-free fast path: lookups on the mapping's hot path
    if hit is not None:
        return hit
    with _lock:
        hit = _cache.get(name)
        if hit is not None:
            return hit
        d = _user_dir()
        spec = SPECS.get(name)
        if spec is None:
            if d is None or name not in _user_table_names(d):
                known = ", ".join(table_names())
                raise KeyError(f"ไม่รู้จักตารางรหัส '{name}' (ที่มี: {known}) / unknown code table '{name}' "
                               f"(known: {known})")
            spec = _user_spec(name, d / f"{name}.csv", "")
        table = _build(spec, d)
        _cache[name] = table
        return table


def list_tables() -> list[CodeTable]:
    return [get_table(n) for n in table_names()]


def code_set(name: str, alternate: bool = False) -> frozenset[str]:
    """The table's keys (cached); ``alternate=True`` adds the alternate key (old 2-digit lab codes)."""
    t = get_table(name)
    if alternate and t.alt_key:
        return t.keys() | frozenset(t._alt)
    return t.keys()


def lookup(name: str, code: str | Iterable[str]) -> Row | None:
    """The row for ``code`` including its ``source``, or None."""
    return get_table(name).get(code)


def _icd10_norm(code: str) -> str:
    return code.strip().upper().replace(".", "")


def chronic_group_for_icd10(icd10: str) -> Row | None:
    """The chronic_groups row whose ICD-10 range holds ``icd10`` (``E119``, ``E11.9``), else None.

    A bound of n characters is compared with the code's first n characters, so ``E10``–``E14``
    holds every E10x–E14x code.
    """
    code = _icd10_norm(icd10)
    if len(code) < 3:
        return None
    for row in get_table("chronic_groups").rows:
        lo, hi = _icd10_norm(row.get("icd10_from", "")), _icd10_norm(row.get("icd10_to", ""))
        if not lo or not hi:
            continue
        if code[: len(lo)] >= lo and code[: len(hi)] <= hi:
            return dict(row)
    return None
