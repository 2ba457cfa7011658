"""Readers for 43-file exports: a zip per facility, a folder of ``.txt`` files, or single files.

Real exports differ in every way the standard leaves open, so the reader copes with: UTF-8 or
TIS-620/cp874 (detected per file, with a per-line fallback), a UTF-8 BOM, CRLF or LF, a trailing
``|``, a header row or none (then the layout follows from the field count), older layouts without
the appended columns, and lines cut short. It never raises on bad bytes: a line it cannot use
becomes a :class:`~phrsync.f43.source.Problem`, and everything else is read in bounded chunks.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from phrsync.f43 import schema
from phrsync.f43.schema import FileSpec
from phrsync.f43.source import Chunk, Problem, to_table

CHUNK_ROWS = 50_000
SNIFF_BYTES = 256 * 1024
_ZIP_HOSP = re.compile(r"(?<![0-9A-Za-z])F43_([0-9A-Za-z]{5})_", re.IGNORECASE)


@dataclass
class Member:
    """One text file of an export, wherever it lives."""

    label: str  # "F43_10699_202501.zip:service.txt" — used in every report
    name: str  # file name inside (for the 43-file name)
    container: str  # the zip or folder it came from (for the import log)
    hospcode: str  # facility of the export when the zip name tells it, else ""
    open: object  # () -> BinaryIO

    @property
    def spec(self) -> FileSpec | None:
        stem = os.path.basename(self.name.replace("\\", "/"))
        if not stem.lower().endswith(".txt"):
            return None
        return schema.lookup(stem[:-4])


def hospcode_from_name(name: str) -> str:
    m = _ZIP_HOSP.search(os.path.basename(name))
    return m.group(1) if m else ""


def iter_members(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Member | Problem]:
    """Every ``.txt`` member of the given zips, folders and files, in a stable order.

    A zip that cannot be opened yields a Problem instead of stopping the run."""
    for p in paths:
        path = Path(p)
        if not path.exists():
            yield _file_problem(str(path), "not_found", "ไม่พบไฟล์หรือโฟลเดอร์", "file or folder not found")
        elif path.is_dir():
            files = sorted(q for q in path.rglob("*") if q.is_file())
            yield from iter_members(q for q in files if q.suffix.lower() in (".zip", ".txt"))
        elif path.suffix.lower() == ".zip":
            yield from _zip_members(path)
        else:
            yield Member(
                label=path.name,
                name=path.name,
                container=str(path.parent),
                hospcode=hospcode_from_name(str(path.parent)),
                open=lambda path=path: path.open("rb"),
            )


def _zip_members(path: Path) -> Iterator[Member | Problem]:
    try:
        zf = zipfile.ZipFile(path)
        infos = [i for i in zf.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError) as e:
        yield _file_problem(path.name, "bad_zip", f"เปิดไฟล์ zip ไม่ได้ ({e})", f"cannot open zip file ({e})")
        return
    hosp = hospcode_from_name(path.name)
    for info in sorted(infos, key=lambda i: i.filename.lower()):
        inner = info.filename
        if inner.lower().endswith(".zip"):
            continue  # nested QOF copies and the like are not read
        if not inner.lower().endswith(".txt"):
            continue
        yield Member(
            label=f"{path.name}:{os.path.basename(inner)}",
            name=inner,
            container=str(path),
            hospcode=hosp or hospcode_from_name(inner),
            open=lambda zf=zf, info=info: zf.open(info),
        )


def _file_problem(label: str, rule: str, th: str, en: str, spec_name: str = "") -> Problem:
    return Problem(source=label, file=spec_name, line=0, field="", value="", rule=rule, reason_th=th, reason_en=en)


# ---------------------------------------------------------------------------------------------
# Encoding


def detect_encoding(sample: bytes) -> str:
    """``utf-8`` when the sample is valid UTF-8 (ignoring a cut at its end), else ``cp874``."""
    if sample.startswith(b"\xef\xbb\xbf"):
        return "utf-8"
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as e:
        if e.start >= len(sample) - 4 and e.reason in ("unexpected end of data",):
            return "utf-8"
        return "cp874"


def _decode(raw: bytes, primary: str) -> str | None:
    try:
        return raw.decode(primary)
    except UnicodeDecodeError:
        other = "cp874" if primary == "utf-8" else "utf-8"
        try:
            return raw.decode(other)
        except UnicodeDecodeError:
            return None


# ---------------------------------------------------------------------------------------------
# One member → chunks


def read_member(member: Member, chunk_rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
    spec = member.spec
    if spec is None:
        return
    try:
        stream = member.open()  # type: ignore[operator]
    except Exception as e:  # a broken zip entry: report and go on
        yield Chunk(spec, member.label, to_table(spec, {}, [], []), [
            _file_problem(member.label, "unreadable", f"อ่านไฟล์ไม่ได้ ({e})", f"cannot read file ({e})", spec.name)
        ], member.hospcode)
        return
    try:
        yield from read_stream(stream, spec, member.label, member.hospcode, chunk_rows)
    finally:
        with contextlib.suppress(Exception):
            stream.close()


def read_stream(stream: BinaryIO, spec: FileSpec, label: str, hospcode: str = "",
                chunk_rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
    """Split one pipe-delimited 43-file into chunks of rows in the spec's full layout."""
    buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream, 1 << 20)  # type: ignore[arg-type]
    problems: list[Problem] = []
    try:
        sample = buffered.peek(SNIFF_BYTES)[:SNIFF_BYTES]
    except Exception as e:
        yield Chunk(spec, label, to_table(spec, {}, [], []), [
            _file_problem(label, "unreadable", f"อ่านไฟล์ไม่ได้ ({e})", f"cannot read file ({e})", spec.name)
        ], hospcode)
        return
    encoding = detect_encoding(sample)
    if encoding != "utf-8":
        problems.append(Problem(label, spec.name, 0, "", encoding, "encoding_tis620",
                                "ไฟล์ใช้รหัสอักขระ TIS-620/cp874 (ไม่ใช่ UTF-8) — อ่านได้ แต่ควรส่งออกเป็น UTF-8",
                                "file is TIS-620/cp874, not UTF-8 — read, but the exporter should write UTF-8",
                                hospcode, "warning"))

    layout: tuple[str, ...] | None = None
    index: list[int] | None = None  # for header files: position of each spec field in the line, -1 = absent
    width = 0  # for header files: the number of fields a line must have
    names = spec.field_names
    base_len = len(spec.base_fields)
    pending: list[tuple[int, bytes]] = []  # header-less: lines held back until the layout is known

    rows: list[list[str]] = []
    lines: list[int] = []
    raws: list[str] = []

    def flush() -> Chunk:
        nonlocal rows, lines, raws, problems
        cols = dict(zip(names, (list(c) for c in zip(*rows, strict=True)), strict=True)) if rows else {}
        chunk = Chunk(spec, label, to_table(spec, cols, lines, raws), problems, hospcode)
        rows, lines, raws, problems = [], [], [], []
        return chunk

    def take(lineno: int, raw: bytes) -> None:
        nonlocal layout
        text = _decode(raw, encoding)
        if text is None:
            problems.append(Problem(label, spec.name, lineno, "", "", "encoding",
                                    "ถอดรหัสอักขระไม่ได้ (ไม่ใช่ UTF-8 และไม่ใช่ TIS-620)",
                                    "undecodable bytes (neither UTF-8 nor TIS-620)", hospcode,
                                    raw=raw.decode("utf-8", "replace")))
            return
        if "\x00" in text:
            text = text.replace("\x00", "")
        parts = text.split("|")
        if index is not None:  # header file: map by name
            n_header = width
            if len(parts) == n_header + 1 and parts[-1].strip() == "":
                parts.pop()
            if len(parts) != n_header:
                if len(parts) < n_header and _only_optional_missing(spec, index, len(parts)):
                    parts = parts + [""] * (n_header - len(parts))
                else:
                    problems.append(_count_problem(label, spec, lineno, len(parts), n_header, text, hospcode))
                    return
            row = [parts[i].strip() if i >= 0 else "" for i in index]
        else:
            assert layout is not None
            n = len(layout)
            if len(parts) == n + 1 and parts[-1].strip() == "":
                parts.pop()
            if len(parts) != n:
                if base_len <= len(parts) < n or (len(parts) < n and _tail_optional(spec, len(parts))):
                    parts = parts + [""] * (n - len(parts))
                else:
                    problems.append(_count_problem(label, spec, lineno, len(parts), n, text, hospcode))
                    return
            row = [p.strip() for p in parts]
            if n < len(names):
                row.extend([""] * (len(names) - n))
        rows.append(row)
        lines.append(lineno)
        raws.append(text)

    lineno = 0
    first = True
    try:
        for raw in buffered:
            lineno += 1
            raw = raw.rstrip(b"\r\n")
            if first:
                first = False
                if raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                head = raw.decode("utf-8", "replace").strip()
                if head.upper().startswith("HOSPCODE|") or head.upper() == "HOSPCODE":
                    index, width, hp = _header_index(spec, head, label, hospcode)
                    problems.extend(hp)
                    continue
            if not raw.strip():
                continue
            if index is None and layout is None:
                pending.append((lineno, raw))
                if len(pending) < 200:
                    continue
                layout = _choose_layout(spec, pending, encoding)
                for ln, r in pending:
                    take(ln, r)
                pending = []
            else:
                take(lineno, raw)
            if len(rows) >= chunk_rows:
                yield flush()
    except (OSError, EOFError, zipfile.BadZipFile, ValueError) as e:  # truncated zip member, CRC error ...
        problems.append(_file_problem(label, "truncated_file",
                                      f"ไฟล์ขาดหรือเสียหลังบรรทัด {lineno} ({e})",
                                      f"file cut or damaged after line {lineno} ({e})", spec.name))
    if pending:
        layout = _choose_layout(spec, pending, encoding)
        for ln, r in pending:
            take(ln, r)
    if rows or problems or lineno == 0:
        yield flush()


def _header_index(spec: FileSpec, head: str, label: str, hospcode: str) -> tuple[list[int], int, list[Problem]]:
    """For each spec field, its column in a header file's lines (-1 = absent), and the header's width."""
    cols = [c.strip().upper().lstrip("\ufeff") for c in head.split("|")]
    if cols and cols[-1] == "":
        cols.pop()
    pos = {c: i for i, c in enumerate(cols)}
    problems: list[Problem] = []
    missing = [f.name for f in spec.fields if f.required and f.name not in pos]
    if missing:
        problems.append(Problem(label, spec.name, 1, ",".join(missing), "", "header_missing_field",
                                f"แถวหัวตารางไม่มีคอลัมน์ที่ต้องมี: {', '.join(missing)}",
                                f"header row lacks required column(s): {', '.join(missing)}", hospcode, "warning"))
    return [pos.get(n, -1) for n in spec.field_names], len(cols), problems


def _only_optional_missing(spec: FileSpec, index: list[int], got: int) -> bool:
    """A header line cut short is fine when every column it lacks is optional."""
    return all(not (pos >= got and f.required) for f, pos in zip(spec.fields, index, strict=True))


def _tail_optional(spec: FileSpec, got: int) -> bool:
    return all(not f.required for f in spec.fields[got:])


def _choose_layout(spec: FileSpec, sample: list[tuple[int, bytes]], encoding: str) -> tuple[str, ...]:
    """Header-less file: the layout whose width most lines have (a trailing ``|`` allowed)."""
    widths = {len(lay): lay for lay in spec.layouts()}
    votes: Counter[int] = Counter()
    for _, raw in sample:
        parts = raw.split(b"|")
        n = len(parts)
        if n in widths:  # an exact width wins: a last empty field may be a real empty column
            votes[n] += 1
        elif n - 1 in widths and parts[-1].strip() == b"":
            votes[n - 1] += 1
    if votes:
        return widths[votes.most_common(1)[0][0]]
    return spec.layouts()[-1]


def _count_problem(label: str, spec: FileSpec, lineno: int, got: int, want: int, text: str, hospcode: str) -> Problem:
    if got < want:
        return Problem(label, spec.name, lineno, "", f"{got}", "truncated_line",
                       f"บรรทัดขาด: มี {got} ช่อง ต้องมี {want} ช่อง",
                       f"line cut short: {got} fields, expected {want}", hospcode, raw=text)
    return Problem(label, spec.name, lineno, "", f"{got}", "field_count",
                   f"จำนวนช่องเกิน: มี {got} ช่อง ต้องมี {want} ช่อง",
                   f"too many fields: {got}, expected {want}", hospcode, raw=text)
