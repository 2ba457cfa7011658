"""Read the tables code files come in: Excel (.xlsx, old .xls), CSV and tab-separated text, one row at a time.

Why one reader: a TMT release ships Excel files (older ones .xls, some years tab text), an NHSO drug catalogue
is an Excel sheet or CSV, and a HIS export is whatever the HIS's SQL tool saves. Every reader yields
``(line, [cell, ...])`` with the line (row) number a person sees in the file, so a bad row can be named.
Text is UTF-8 (with or without BOM); a file that is not is read as TIS-620 (cp874), with a warning.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import IO, Any

from phrsync.errors import UsageError

TEXT_EXT = (".csv", ".txt", ".tsv")
EXCEL_EXT = (".xlsx", ".xlsm", ".xls")
TABLE_EXT = TEXT_EXT + EXCEL_EXT


@dataclass
class SheetNotes:
    """What the reader noticed about a file as a whole (e.g. its encoding)."""

    warnings: list[str] = field(default_factory=list)


def cell_text(v: Any) -> str:
    """A cell as text: whole floats without ``.0`` (Excel stores IDs as numbers), dates as yyyymmdd."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else repr(v)
    if isinstance(v, dt.datetime):
        return f"{v:%Y%m%d}"
    if isinstance(v, dt.date):
        return f"{v:%Y%m%d}"
    return str(v).strip()


class _Lines:
    """Decoded lines of a binary stream: UTF-8 until a line is not, then TIS-620 (cp874) from there on (both
    share ASCII, so the lines before read the same)."""

    def __init__(self, raw: IO[bytes], name: str, notes: SheetNotes) -> None:
        self.raw, self.name, self.notes, self.enc = raw, name, notes, "utf-8"
        self.first = True

    def __iter__(self) -> Iterator[str]:
        for b in self.raw:
            if self.first:
                self.first = False
                if b.startswith(b"\xef\xbb\xbf"):
                    b = b[3:]
            if self.enc == "utf-8":
                try:
                    yield b.decode("utf-8")
                    continue
                except UnicodeDecodeError:
                    self.enc = "cp874"
                    self.notes.warnings.append(
                        f"{self.name}: ไม่ใช่ UTF-8 อ่านเป็น TIS-620 / not UTF-8, read as TIS-620 (cp874)")
            yield b.decode("cp874", errors="replace")


def iter_text(raw: IO[bytes], name: str, notes: SheetNotes | None = None) -> Iterator[tuple[int, list[str]]]:
    """Rows of a CSV or tab/pipe-separated text stream; the delimiter is the first of tab, comma, pipe,
    semicolon found in the header line."""
    notes = notes or SheetNotes()
    lines = iter(_Lines(raw, name, notes))
    try:
        head = next(lines)
    except StopIteration:
        return
    delim = next((d for d in ("\t", ",", "|", ";") if d in head), ",")

    def chained() -> Iterator[str]:
        yield head
        yield from lines

    reader = csv.reader(chained(), delimiter=delim)
    try:
        for row in reader:
            yield reader.line_num, [c.strip() for c in row]
    except csv.Error as e:
        raise UsageError(f"อ่านไฟล์ {name} ไม่ได้ บรรทัด {reader.line_num}: {e}",
                         f"cannot read {name} line {reader.line_num}: {e}") from e


def iter_xlsx(raw: IO[bytes], name: str) -> Iterator[tuple[int, list[str]]]:
    """Rows of the first sheet of an .xlsx, streamed (openpyxl read-only mode)."""
    from openpyxl import load_workbook

    try:
        wb = load_workbook(raw, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many kinds for a file that is not a workbook
        raise UsageError(f"เปิดไฟล์ Excel {name} ไม่ได้", f"cannot open the Excel file {name}", hint=str(e)) from e
    try:
        ws = wb.worksheets[0]
        for n, row in enumerate(ws.iter_rows(values_only=True), start=1):
            yield n, [cell_text(v) for v in row]
    finally:
        wb.close()


def iter_xls(data: bytes, name: str) -> Iterator[tuple[int, list[str]]]:
    """Rows of the first sheet of an old-format .xls (xlrd; such a file is read whole, as xlrd must)."""
    try:
        import xlrd
    except ImportError as e:  # pragma: no cover - xlrd is a dependency
        raise UsageError("อ่านไฟล์ .xls ต้องมีแพ็กเกจ xlrd", "reading .xls needs the xlrd package",
                         hint="pip install xlrd, or save the file as .xlsx or CSV") from e
    try:
        book = xlrd.open_workbook(file_contents=data, on_demand=True)
    except Exception as e:  # xlrd.XLRDError and struct errors for a broken file
        raise UsageError(f"เปิดไฟล์ Excel {name} ไม่ได้", f"cannot open the Excel file {name}", hint=str(e)) from e
    try:
        sh = book.sheet_by_index(0)
        for r in range(sh.nrows):
            row = []
            for c in sh.row(r):
                if c.ctype == xlrd.XL_CELL_DATE:
                    row.append(cell_text(xlrd.xldate.xldate_as_datetime(c.value, book.datemode)))
                else:
                    row.append(cell_text(c.value))
            yield r + 1, row
    finally:
        book.release_resources()


def iter_rows(raw: IO[bytes], name: str, notes: SheetNotes | None = None) -> Iterator[tuple[int, list[str]]]:
    """Rows of a table file by its name's extension; ``raw`` is an open binary stream."""
    ext = PurePath(name).suffix.lower()
    if ext in (".xlsx", ".xlsm"):
        if not raw.seekable():
            raw = io.BytesIO(raw.read())
        yield from iter_xlsx(raw, name)
    elif ext == ".xls":
        yield from iter_xls(raw.read(), name)
    elif ext in TEXT_EXT or not ext:
        yield from iter_text(raw, name, notes)
    else:
        raise UsageError(f"ไม่รู้จักชนิดไฟล์ {name} (ใช้ได้: {', '.join(TABLE_EXT)})",
                         f"unknown file type {name} (use one of {', '.join(TABLE_EXT)})")


def header_index(header: list[str]) -> dict[str, int]:
    """Column name (upper case, spaces and underscores kept) → index; the first of a repeated name wins."""
    out: dict[str, int] = {}
    for i, h in enumerate(header):
        out.setdefault(h.strip().lstrip("\ufeff").upper(), i)
    return out


@dataclass(frozen=True)
class RowIssue:
    """A row an import left out: which file, line and field, and why (Thai and English)."""

    file: str
    line: int
    field: str
    reason_th: str
    reason_en: str

    @property
    def text(self) -> str:
        return (f"{self.file} บรรทัด {self.line} ช่อง {self.field}: {self.reason_th} / "
                f"{self.file} line {self.line} field {self.field}: {self.reason_en}")

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field, "reason_th": self.reason_th,
                "reason_en": self.reason_en, "text": self.text}


class Issues:
    """Row issues of one import: all counted, the first ``keep`` kept (a broken file must not fill memory)."""

    def __init__(self, keep: int = 200) -> None:
        self.keep, self.count = keep, 0
        self.rows: list[RowIssue] = []

    def add(self, issue: RowIssue) -> None:
        self.count += 1
        if len(self.rows) < self.keep:
            self.rows.append(issue)
