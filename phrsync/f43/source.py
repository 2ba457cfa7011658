"""What every 43-file source (zip/txt export, HDC database) hands to the importer.

A source yields :class:`Chunk` objects: a bounded batch of rows of one 43-file, as an Arrow table
of *text* columns in the 43-file textual form (dates ``YYYYMMDD``, date-times ``YYYYMMDDHHMMSS``,
decimals with ``.``), whatever the source's own types were. One form means one set of row checks.

Rows a reader could not even split into fields (undecodable bytes, wrong field count, a truncated
line) arrive as :class:`Problem` entries instead of rows; the importer puts them in quarantine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from phrsync.f43.schema import FileSpec

LINE_COL = "_line"  # int64: 1-based line number in the file (or row ordinal for a database table)
RAW_COL = "_raw"  # string: the record as read, for review in quarantine


@dataclass
class Problem:
    """One thing wrong with one row (or one whole file when ``line`` is 0)."""

    source: str  # "F43_10699_202501.zip:service.txt" or "hdc:service"
    file: str  # 43-file name, upper case ("SERVICE"), or "" when the file itself is unknown
    line: int
    field: str  # field name, or "" for a whole-line problem
    value: str  # already masked where personal
    rule: str  # stable rule code, e.g. "cid_checksum", "field_count"
    reason_th: str
    reason_en: str
    hospcode: str = ""
    severity: str = "error"  # "error": row kept out of staging; "warning": row loaded, noted
    raw: str = ""  # the raw record (kept for review; personal data stays on this server)


@dataclass
class Chunk:
    """Rows of one 43-file in one of two forms.

    *Split* (``positions is None``): one text column per name in ``spec.field_names`` + ``_line`` +
    ``_raw`` — what a database reader produces ("" or null = empty). *Raw* (``positions`` given): only
    ``_raw`` (the line) and ``_line``; field ``i`` of the spec is pipe-separated item ``positions[i]``
    (-1 = absent) of a line that should have ``width`` items. Raw chunks are split inside the check
    query, so a file's lines never pass through Python one by one.
    """

    spec: FileSpec
    source: str
    table: pa.Table
    problems: list[Problem] = field(default_factory=list)
    hospcode: str = ""  # facility of the export, when the source knows it
    positions: tuple[int, ...] | None = None
    width: int = 0

    @property
    def num_rows(self) -> int:
        return self.table.num_rows

    def rows(self) -> list[dict[str, object]]:
        """The rows as dicts of field text (for tests and small tools; the importer never does this).
        Field-count checks are not applied here: they belong to the check query."""
        out = []
        for r in self.table.to_pylist():
            if self.positions is not None:
                items = (r.get(RAW_COL) or "").split("|")
                r = {name: (items[pos] if 0 <= pos < len(items) else None)
                     for name, pos in zip(self.spec.field_names, self.positions, strict=True)} | r
            out.append(r)
        return out


def to_table(spec: FileSpec, columns: dict[str, list[str | None]], lines: list[int], raw: list[str]) -> pa.Table:
    """Build the chunk table from per-field text lists (all of equal length)."""
    n = len(lines)
    arrays = []
    names = []
    for name in spec.field_names:
        col = columns.get(name)
        arrays.append(pa.array(col if col is not None else [None] * n, type=pa.string()))
        names.append(name)
    arrays.append(pa.array(lines, type=pa.int64()))
    names.append(LINE_COL)
    arrays.append(pa.array(raw, type=pa.string()))
    names.append(RAW_COL)
    return pa.Table.from_arrays(arrays, names=names)
