"""Readers for 43-file exports: a zip per facility, a folder of ``.txt`` files, or single files.

Real exports differ in every way the standard leaves open, so the reader copes with: UTF-8 or
TIS-620/cp874 (detected per file, with a per-line fallback), a UTF-8 BOM, CRLF, LF or CR, a trailing
``|``, a header row or none (then the layout follows from the field count), older layouts without
the appended columns, and lines cut short. It never raises on bad bytes: a line it cannot use
becomes a :class:`~phrsync.f43.source.Problem`, and everything else is read in bounded chunks.

Hostile input is bounded by the ``[import]`` settings (:class:`~phrsync.settings.ImportSection`): a line longer
than ``max_line_bytes`` is skipped as it streams past (never held whole) and quarantined with its line number,
and a zip member whose uncompressed size or compression ratio is over its limit is refused before a byte of it
is inflated. The sizes a zip declares bound what it yields (zipfile stops at the declared size and fails the
CRC), so checking them is enough.
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

import pyarrow as pa
import pyarrow.compute as pc

from phrsync.errors import NotFoundError, UsageError
from phrsync.f43 import schema
from phrsync.f43.schema import FileSpec
from phrsync.f43.source import LINE_COL, RAW_COL, Chunk, Problem, to_table
from phrsync.settings import ImportSection

CHUNK_ROWS = 50_000
SNIFF_BYTES = 256 * 1024
DEFAULT_LIMITS = ImportSection()
MAX_LINE_BYTES = DEFAULT_LIMITS.max_line_bytes
RATIO_FROM_BYTES = 1 << 20  # a smaller member costs nothing whatever its ratio (a tiny file of equal lines is 200:1)
LONG_LINE_HEAD = 1024  # bytes of a skipped long line kept in its quarantine entry, to recognise it
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


_ZIP_WHEN = re.compile(r"(?<![0-9A-Za-z])F43_[0-9A-Za-z]{5}_([0-9]{6,14})", re.IGNORECASE)


def export_order(paths: list[Path]) -> list[Path]:
    """Containers in the order the exports were made (the date in ``F43_<hcode>_<yyyymm[dd...]>``), facility
    after date; names without a date keep their place at the front. Two reasons: an export made later wins
    a tie of equal D_UPDATE, and staging rows land month by month, so a later query for a date range
    skips the storage blocks of other months instead of reading every facility's whole year."""
    def key(item: tuple[int, Path]) -> tuple[str, str, int]:
        i, p = item
        m = _ZIP_WHEN.search(p.name)
        return (m.group(1)[:8], hospcode_from_name(p.name), i) if m else ("", "", i)

    return [p for _, p in sorted(enumerate(paths), key=key)]


def hospcode_from_name(name: str) -> str:
    m = _ZIP_HOSP.search(os.path.basename(name))
    return m.group(1) if m else ""


ACCEPTED_TH = "รับไฟล์ zip ของ 43 แฟ้ม, ไฟล์ .txt ของแฟ้มหนึ่ง (เช่น service.txt) หรือโฟลเดอร์ของไฟล์ .txt/.zip"
ACCEPTED_EN = "accepted: a 43-file zip, one 43-file .txt (e.g. service.txt), or a folder of .txt/.zip files"


def check_paths(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The paths to import, each checked before anything is created: a path that does not exist, a file that is
    no 43-file export (``README.md``) or a folder without a single ``.zip``/``.txt`` is a
    :class:`~phrsync.errors.NotFoundError` / :class:`~phrsync.errors.UsageError` naming it and what is
    accepted, instead of an import that succeeds with one quarantine entry."""
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise NotFoundError(f"ไม่พบไฟล์หรือโฟลเดอร์ {path}", f"no such file or folder: {path}",
                                hint=f"{ACCEPTED_TH} / {ACCEPTED_EN}")
        if path.is_dir():
            if not any(q.is_file() and q.suffix.lower() in _CONTAINER_SUFFIXES for q in path.rglob("*")):
                raise NotFoundError(f"ไม่มีไฟล์ .zip หรือ .txt ในโฟลเดอร์ {path}",
                                    f"no .zip or .txt file in the folder {path}", hint=f"{ACCEPTED_TH} / {ACCEPTED_EN}")
        elif not (path.suffix.lower() == ".zip"
                  or (path.suffix.lower() == ".txt" and schema.lookup(path.stem) is not None)):
            raise UsageError(f"{path} ไม่ใช่ไฟล์ส่งออก 43 แฟ้ม", f"{path} is not a 43-file export",
                             hint=f"{ACCEPTED_TH} / {ACCEPTED_EN}")
        out.append(path)
    return out


_CONTAINER_SUFFIXES = (".zip", ".txt")


def containers(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The export containers (zips and loose ``.txt`` files) under the given paths, in a stable order,
    without opening any: a province sends thousands, and an open zip holds a file descriptor. The paths are
    checked first (:func:`check_paths`)."""
    out: list[Path] = []
    for path in check_paths(paths):
        if path.is_dir():
            out += sorted(q for q in path.rglob("*") if q.is_file() and q.suffix.lower() in _CONTAINER_SUFFIXES)
        else:
            out.append(path)
    return out


@contextlib.contextmanager
def opened(path: Path, limits: ImportSection = DEFAULT_LIMITS) -> Iterator[list[Member | Problem]]:
    """The members of one container, readable inside the ``with`` block; the zip is closed after it.
    A zip that cannot be opened, holds no 43-file or has a member over ``limits`` gives a Problem in
    that member's place instead of stopping the run."""
    if path.suffix.lower() != ".zip":
        yield [_file_member(path)]
        return
    zf = _open_zip(path)
    if isinstance(zf, Problem):
        yield [zf]
        return
    with contextlib.ExitStack() as stack:
        stack.callback(zf.close)
        yield list(_zip_members(path, zf, stack, limits=limits))


def iter_members(paths: Iterable[str | os.PathLike[str]],
                 limits: ImportSection = DEFAULT_LIMITS) -> Iterator[Member | Problem]:
    """Every ``.txt`` member of the given zips, folders and files (zips left open until collected:
    for tools and tests; the importer goes container by container with :func:`opened`)."""
    for c in containers(paths):
        if c.suffix.lower() == ".zip":
            zf = _open_zip(c)
            if isinstance(zf, Problem):
                yield zf
            else:
                yield from _zip_members(c, zf, limits=limits)
        else:
            yield _file_member(c)


def _file_member(path: Path) -> Member:
    return Member(label=path.name, name=path.name, container=str(path.parent),
                  hospcode=hospcode_from_name(str(path.parent)), open=lambda path=path: path.open("rb"))


# what a broken or truncated zip raises, from opening it or listing its members
_ZIP_ERRORS = (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError)


def _open_zip(path: Path) -> zipfile.ZipFile | Problem:
    try:
        return zipfile.ZipFile(path)
    except _ZIP_ERRORS as e:
        return _bad_zip(path.name, e)


def _bad_zip(label: str, e: BaseException) -> Problem:
    return _file_problem(label, "bad_zip", f"เปิดไฟล์ zip ไม่ได้ ({e})", f"cannot open zip file ({e})")


def _zip_members(path: Path, zf: zipfile.ZipFile, stack: contextlib.ExitStack | None = None,
                 name: str = "", depth: int = 0, limits: ImportSection = DEFAULT_LIMITS) -> Iterator[Member | Problem]:
    """The ``.txt`` members of a zip, and those of zips inside it (a batch zip of facility zips).

    ``name`` is the zip's label (``outer.zip:inner.zip`` for a nested one). A nested zip is read through
    the outer one's stream: no temporary file, no extra file descriptor; ``stack`` closes it after the
    container (``None``: left to the collector, as :func:`iter_members` does). A zip with nothing to read
    (empty, or no 43-file in it) is a Problem: an export that loads nothing must not pass unnoticed."""
    name = name or path.name
    try:
        infos = [i for i in zf.infolist() if not i.is_dir()]
    except _ZIP_ERRORS as e:
        yield _bad_zip(name, e)
        return
    hosp = hospcode_from_name(name.rsplit(":", 1)[-1])
    found = False  # a 43-file member, a nested zip or a problem: something that the report shows
    for info in sorted(infos, key=lambda i: i.filename.lower()):
        inner = info.filename
        base = os.path.basename(inner.replace("\\", "/"))
        if inner.lower().endswith(".zip"):
            # QOF_ copies repeat the F43 files with header lines; deeper nesting is no export layout
            if not base.upper().startswith("QOF_"):
                found = True
                refused = _over_limits(info, f"{name}:{base}", limits)
                if refused is not None:
                    yield refused
                    continue
                yield from _nested_members(path, zf, info, stack, f"{name}:{base}", depth + 1, limits)
            continue
        if not inner.lower().endswith(".txt"):
            continue
        label = f"{name}:{base}"
        spec = schema.lookup(base[:-4])
        found = found or spec is not None
        refused = _over_limits(info, label, limits, spec.name if spec else "")
        if refused is not None:
            yield refused
            continue
        yield Member(
            label=label,
            name=inner,
            container=str(path),
            hospcode=hosp or hospcode_from_name(inner),
            open=lambda zf=zf, info=info: zf.open(info),
        )
    if not found:
        what_th = "zip ว่าง" if not infos else "ไม่มีแฟ้มใดของ 43 แฟ้มใน zip (เช่น person.txt, service.txt)"
        what_en = "empty zip" if not infos else "no 43-file in the zip (such as person.txt, service.txt)"
        yield _file_problem(name, "empty_zip", f"{what_th} ไม่มีอะไรนำเข้า", f"{what_en}: nothing to import")


def _over_limits(info: zipfile.ZipInfo, label: str, limits: ImportSection, spec_name: str = "") -> Problem | None:
    """A Problem when a member would inflate beyond ``[import] max_member_bytes`` or by more than
    ``max_compression_ratio`` (a zip bomb): refused before it is opened, the rest of the zip still read."""
    size, packed = info.file_size, info.compress_size
    if size > limits.max_member_bytes:
        return _file_problem(
            label, "member_too_large",
            f"แฟ้ม {label} ขยายแล้ว {size:,} ไบต์ เกินเพดาน {limits.max_member_bytes:,} ([import] max_member_bytes) "
            "ไม่ได้อ่าน", f"{label} is {size:,} bytes uncompressed, over the limit of {limits.max_member_bytes:,} "
            "([import] max_member_bytes): not read", spec_name)
    cap = limits.max_compression_ratio
    if cap and size >= RATIO_FROM_BYTES and size > cap * max(packed, 1):
        ratio = size / max(packed, 1)
        return _file_problem(
            label, "zip_ratio",
            f"แฟ้ม {label} ถูกบีบอัด {ratio:,.0f}:1 ({packed:,} → {size:,} ไบต์) เกินเพดาน {cap:,.0f}:1 "
            "([import] max_compression_ratio) อาจเป็น zip bomb ไม่ได้อ่าน",
            f"{label} is compressed {ratio:,.0f}:1 ({packed:,} → {size:,} bytes), over the limit of {cap:,.0f}:1 "
            "([import] max_compression_ratio) — a zip bomb? not read", spec_name)
    return None


MAX_ZIP_DEPTH = 2  # a batch zip of facility zips, and one more level


def _nested_members(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, stack: contextlib.ExitStack | None,
                    name: str, depth: int, limits: ImportSection) -> Iterator[Member | Problem]:
    if depth > MAX_ZIP_DEPTH:
        yield _file_problem(name, "bad_zip", f"zip ซ้อนกันเกิน {MAX_ZIP_DEPTH} ชั้น ไม่ได้อ่าน — แตกไฟล์ก่อนนำเข้า",
                            f"zip nested more than {MAX_ZIP_DEPTH} deep, not read — unzip it first")
        return
    try:
        stream = zf.open(info)
        if stack is not None:
            stack.callback(stream.close)
        nested = zipfile.ZipFile(stream)  # type: ignore[arg-type]
    except _ZIP_ERRORS as e:
        yield _bad_zip(name, e)
        return
    if stack is not None:
        stack.callback(nested.close)
    yield from _zip_members(path, nested, stack, name, depth, limits)


def _file_problem(label: str, rule: str, th: str, en: str, spec_name: str = "") -> Problem:
    """A problem with a whole file or zip, filed under the facility its zip is named after (``quarantine list
    --facility`` finds it)."""
    return Problem(source=label, file=spec_name, line=0, field="", value="", rule=rule, reason_th=th, reason_en=en,
                   hospcode=hospcode_from_name(label))


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


def read_member(member: Member, chunk_rows: int = CHUNK_ROWS, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[Chunk]:
    """The chunks of one member (nothing for a ``.txt`` that is no 43-file); see :func:`read_stream`."""
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
        yield from read_stream(stream, spec, member.label, member.hospcode, chunk_rows, max_line_bytes)
    finally:
        with contextlib.suppress(Exception):
            stream.close()


class _FileState:
    """What the reader knows about one file as it goes: encoding, header or layout."""

    def __init__(self, spec: FileSpec, label: str, hospcode: str, encoding: str,
                 max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self.spec = spec
        self.label = label
        self.hospcode = hospcode
        self.encoding = encoding
        self.max_line_bytes = max_line_bytes
        self.index: list[int] | None = None  # header file: column of each spec field, -1 = absent
        self.width = 0  # fields a line must have (header width or layout width)
        self.layout_known = False

    def set_header(self, head: str) -> list[Problem]:
        self.index, self.width, problems = _header_index(self.spec, head, self.label, self.hospcode)
        self.layout_known = True
        return problems

    def set_layout(self, layout: tuple[str, ...]) -> None:
        pos = {n: i for i, n in enumerate(layout)}
        self.index = [pos.get(n, -1) for n in self.spec.field_names]
        self.width = len(layout)
        self.layout_known = True

    def long_line(self, lineno: int, size: int, head: bytes) -> Problem:
        """The quarantine entry of a line over ``max_line_bytes``: its number and size, and its first bytes."""
        cap = self.max_line_bytes
        return Problem(self.label, self.spec.name, lineno, "", f"{size:,}", "line_too_long",
                       f"บรรทัดยาว {size:,} ไบต์ เกินเพดาน {cap:,} ([import] max_line_bytes) ข้ามไป",
                       f"line of {size:,} bytes, over the limit of {cap:,} ([import] max_line_bytes): skipped",
                       self.hospcode, raw=head[:LONG_LINE_HEAD].decode(self.encoding, "replace"))


@dataclass
class _LongLine:
    """A line over the limit while it streams past: only its first bytes and its length so far are kept."""

    head: bytes
    size: int
    cr: bool = False  # the bytes so far end with CR (of a CRLF, not counted in the size)

    def add(self, data: bytes) -> None:
        self.size += len(data)
        self.cr = data.endswith(b"\r")

    def end(self, data: bytes, nl: int) -> int:
        """The line's size when it ends at ``data[nl]`` (a newline), without its CR."""
        return self.size + nl - (data[nl - 1:nl] == b"\r" if nl else self.cr)


def read_stream(stream: BinaryIO, spec: FileSpec, label: str, hospcode: str = "",
                chunk_rows: int = CHUNK_ROWS, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[Chunk]:
    """Split one pipe-delimited 43-file into chunks of rows in the spec's full layout.

    The common case runs column-wise in Arrow (a block of lines at a time); only lines whose field
    count is off, or whose bytes do not decode, take the per-line path. Memory is bounded by the block
    size and ``max_line_bytes`` whatever the input: a longer line is dropped as it is read (a file of
    2 GB without a line break costs one block) and quarantined with its line number."""
    buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream, 1 << 20)  # type: ignore[arg-type]
    try:
        sample = buffered.peek(SNIFF_BYTES)[:SNIFF_BYTES]
    except Exception as e:
        yield _file_chunk(spec, label, hospcode, "unreadable", f"อ่านไฟล์ไม่ได้ ({e})", f"cannot read file ({e})")
        return
    state = _FileState(spec, label, hospcode, detect_encoding(sample), max_line_bytes)
    # lines ended by CR alone (old Mac style): read as one line they became a header and nothing else
    cr_only = b"\n" not in sample and b"\r" in sample[:-1]
    problems: list[Problem] = []
    if state.encoding != "utf-8":
        problems.append(Problem(label, spec.name, 0, "", state.encoding, "encoding_tis620",
                                "ไฟล์ใช้รหัสอักขระ TIS-620/cp874 (ไม่ใช่ UTF-8) — อ่านได้ แต่ควรส่งออกเป็น UTF-8",
                                "file is TIS-620/cp874, not UTF-8 — read, but the exporter should write UTF-8",
                                hospcode, "warning"))
    lineno = 0  # lines consumed so far
    carry = b""  # the start of a line not yet ended, at most max_line_bytes
    long: _LongLine | None = None  # a line over the limit being skipped
    first = True
    block_bytes = max(64 * 1024, min(chunk_rows, 100_000) * 200)
    while True:
        try:
            data = buffered.read(block_bytes)
        except (OSError, EOFError, zipfile.BadZipFile, ValueError) as e:  # truncated zip member, CRC error ...
            problems.append(_file_problem(label, "truncated_file",
                                          f"ไฟล์ขาดหรือเสียหลังบรรทัด {lineno} ({e})",
                                          f"file cut or damaged after line {lineno} ({e})", spec.name))
            carry = b""
            break
        if not data:
            break
        if cr_only:
            data = data.replace(b"\r", b"\n")
        if long is not None:  # skip to the end of the long line
            nl = data.find(b"\n")
            if nl < 0:
                long.add(data)
                continue
            lineno += 1
            problems.append(state.long_line(lineno, long.end(data, nl), long.head))
            long = None
            data = data[nl + 1:]
        data = carry + data
        cut = data.rfind(b"\n")
        if cut < 0:
            carry = data
            if len(carry) > max_line_bytes:
                long, carry = _LongLine(carry[:LONG_LINE_HEAD], len(carry), carry.endswith(b"\r")), b""
            continue
        carry, data = data[cut + 1:], data[:cut + 1]
        if len(carry) > max_line_bytes:
            long, carry = _LongLine(carry[:LONG_LINE_HEAD], len(carry), carry.endswith(b"\r")), b""
        if first:
            first = False
            data, head_problems, consumed = _take_header(state, data)
            problems += head_problems
            lineno += consumed
        for chunk in _block_chunks(state, data, lineno + 1, problems, chunk_rows):
            problems = []
            yield chunk
        lineno += data.count(b"\n")
    if long is not None:  # the file ends inside it
        lineno += 1
        problems.append(state.long_line(lineno, long.size - long.cr, long.head))
    if carry:
        if first:
            first = False
            carry, head_problems, consumed = _take_header(state, carry + b"\n")
            problems += head_problems
            lineno += consumed
        else:
            carry += b"\n"
        if carry.strip():
            for chunk in _block_chunks(state, carry, lineno + 1, problems, chunk_rows):
                problems = []
                yield chunk
    if problems or first:
        yield Chunk(spec, label, to_table(spec, {}, [], []), problems, hospcode)


def _file_chunk(spec: FileSpec, label: str, hospcode: str, rule: str, th: str, en: str) -> Chunk:
    return Chunk(spec, label, to_table(spec, {}, [], []), [_file_problem(label, rule, th, en, spec.name)], hospcode)


def _take_header(state: _FileState, data: bytes) -> tuple[bytes, list[Problem], int]:
    """Strip a BOM and, when the first line is a header, use it. Returns the rest and lines consumed."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    nl = data.find(b"\n")
    first_line = data[:nl] if nl >= 0 else data
    head = first_line.rstrip(b"\r").decode("utf-8", "replace").strip()
    if _is_header(state.spec, head):
        return (data[nl + 1:] if nl >= 0 else b""), state.set_header(head), 1
    return data, [], 0


def _is_header(spec: FileSpec, head: str) -> bool:
    """A header names HOSPCODE among mostly known field names, in any order: an exporter that puts
    another column first must not have its header read as data and every row shifted."""
    cols = [c.strip().upper() for c in head.split("|")]
    if cols and cols[-1] == "":
        cols.pop()
    return "HOSPCODE" in cols and 2 * sum(c in spec.by_name for c in cols) >= len(cols)


def _block_chunks(state: _FileState, data: bytes, first_lineno: int, problems: list[Problem],
                  chunk_rows: int) -> Iterator[Chunk]:
    """A block of whole lines (ending in ``\\n``) → chunks of at most ``chunk_rows`` rows.

    The block is decoded and split in one go; only a block with undecodable bytes is taken apart
    line by line, so that one bad line costs one quarantine entry, not the block."""
    try:
        text = data.decode(state.encoding)
    except UnicodeDecodeError:
        texts, numbers = _decode_lines(state, data.split(b"\n")[:-1], first_lineno, problems)
        arr = pa.array(texts, type=pa.string())
        nums = pa.array(numbers, type=pa.int64())
    else:
        if "\x00" in text:
            text = text.replace("\x00", "")
        arr = pc.list_flatten(pc.split_pattern(pa.array([text], pa.string()), "\n"))
        arr = arr.slice(0, len(arr) - 1)  # the block ends with a newline
        nums = pa.array(range(first_lineno, first_lineno + len(arr)), type=pa.int64())
        arr = pc.utf8_rtrim(arr, characters="\r")
        keep = pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(arr)), pa.scalar(0, pa.int32()))
        arr, nums = arr.filter(keep), nums.filter(keep)
        if len(data) > state.max_line_bytes:  # (a smaller block cannot hold a line over the limit)
            arr, nums = _drop_long_lines(state, arr, nums, problems)
    table = _lines_to_table(state, arr, nums, problems)
    assert state.index is not None
    layout = {"positions": tuple(state.index), "width": state.width}
    if table.num_rows <= chunk_rows:
        yield Chunk(state.spec, state.label, table, problems, state.hospcode, **layout)
        return
    for start in range(0, table.num_rows, chunk_rows):
        yield Chunk(state.spec, state.label, table.slice(start, chunk_rows), problems if start == 0 else [],
                    state.hospcode, **layout)


def _drop_long_lines(state: _FileState, arr: pa.Array, nums: pa.Array,
                     problems: list[Problem]) -> tuple[pa.Array, pa.Array]:
    """Lines of a block longer than ``max_line_bytes`` (a block holds whole lines up to its own size): quarantined."""
    if len(arr) == 0:
        return arr, nums
    sizes = pc.binary_length(arr)
    if pc.max(sizes).as_py() <= state.max_line_bytes:
        return arr, nums
    long = pc.greater(sizes, state.max_line_bytes)
    for text, size, n in zip(arr.filter(long).to_pylist(), sizes.filter(long).to_pylist(),
                             nums.filter(long).to_pylist(), strict=True):
        problems.append(state.long_line(n, size, text[:LONG_LINE_HEAD].encode(state.encoding, "replace")))
    keep = pc.invert(long)
    return arr.filter(keep), nums.filter(keep)


def _decode_lines(state: _FileState, lines: list[bytes], first_lineno: int,
                  problems: list[Problem]) -> tuple[list[str], list[int]]:
    texts: list[str] = []
    numbers: list[int] = []
    for i, raw in enumerate(lines):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        if len(raw) > state.max_line_bytes:
            problems.append(state.long_line(first_lineno + i, len(raw), raw))
            continue
        text = _decode(raw, state.encoding)
        if text is None:
            problems.append(Problem(state.label, state.spec.name, first_lineno + i, "", "", "encoding",
                                    "ถอดรหัสอักขระไม่ได้ (ไม่ใช่ UTF-8 และไม่ใช่ TIS-620)",
                                    "undecodable bytes (neither UTF-8 nor TIS-620)", state.hospcode,
                                    raw=raw.decode("utf-8", "replace")))
            continue
        texts.append(text.replace("\x00", "") if "\x00" in text else text)
        numbers.append(first_lineno + i)
    return texts, numbers


def _lines_to_table(state: _FileState, arr: pa.Array, line_arr: pa.Array, problems: list[Problem]) -> pa.Table:
    """Lines stay whole: the check query splits them (see :class:`~phrsync.f43.source.Chunk`)."""
    if not state.layout_known:
        state.set_layout(_choose_layout(state.spec, arr.slice(0, 200).to_pylist()))
    return pa.Table.from_arrays([line_arr, arr], names=[LINE_COL, RAW_COL])


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


def _choose_layout(spec: FileSpec, sample: list[str]) -> tuple[str, ...]:
    """Header-less file: the layout whose width most lines have (a trailing ``|`` allowed)."""
    widths = {len(lay): lay for lay in spec.layouts()}
    votes: Counter[int] = Counter()
    for text in sample:
        parts = text.split("|")
        n = len(parts)
        if n in widths:  # an exact width wins: a last empty field may be a real empty column
            votes[n] += 1
        elif n - 1 in widths and parts[-1].strip() == "":
            votes[n - 1] += 1
    if votes:
        return widths[votes.most_common(1)[0][0]]
    return spec.layouts()[-1]
