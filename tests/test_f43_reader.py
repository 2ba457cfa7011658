"""The export reader copes with what real 43-file exports contain."""

from __future__ import annotations

import io
import zipfile

import pytest
from f43files import cid, person, service, text, write_zip

from phrsync.errors import NotFoundError
from phrsync.f43 import schema
from phrsync.f43.reader import detect_encoding, iter_members, read_member, read_stream
from phrsync.f43.source import Problem


def rows_of(data: bytes, file: str = "SERVICE") -> tuple[list[dict], list[Problem]]:
    rows: list[dict] = []
    problems: list[Problem] = []
    for ch in read_stream(io.BytesIO(data), schema.get(file), "test.txt"):
        rows += ch.rows()
        problems += ch.problems
    return rows, problems


def test_header_file_maps_columns_by_name_in_any_order_and_case() -> None:
    spec = schema.get("DIAGNOSIS_OPD")
    values = {"HOSPCODE": "10699", "PID": "7", "SEQ": "S1", "DATE_SERV": "20250105", "DIAGTYPE": "1",
              "DIAGCODE": "J069", "CLINIC": "00100", "PROVIDER": "P1", "D_UPDATE": "20250105103000", "CID": cid(1)}
    names = list(reversed(spec.field_names))
    body = "|".join(n.lower() for n in names) + "\n"
    body += "|".join(values[n] for n in names) + "\n"
    rows, problems = rows_of(body.encode(), "DIAGNOSIS_OPD")
    assert problems == []
    assert len(rows) == 1
    for k, v in values.items():
        assert rows[0][k] == v
    assert rows[0]["_line"] == 2


def test_headerless_old_layout_is_detected_by_field_count() -> None:
    spec = schema.get("SERVICE")
    base = tuple(f.name for f in spec.base_fields)
    data = text("SERVICE", [service("S1", "1", 1), service("S2", "2", 2)], header=False, layout=base)
    rows, problems = rows_of(data.encode())
    assert problems == []
    assert [r["SEQ"] for r in rows] == ["S1", "S2"]
    assert not rows[0]["CID"]  # appended field absent in the old layout (null or "")
    assert rows[0]["D_UPDATE"] == "20250105103000"


def test_headerless_new_layout_keeps_appended_fields() -> None:
    data = text("SERVICE", [service("S1", "1", 1)], header=False)
    rows, _ = rows_of(data.encode())
    assert rows[0]["CID"] == cid(1)


def test_bom_crlf_lf_and_trailing_delimiter() -> None:
    body = text("SERVICE", [service("S1", "1", 1), service("S2", "2", 2)], eol="\n")
    lines = body.splitlines()
    mixed = lines[0] + "\r\n" + lines[1] + "|\r\n" + lines[2] + "|\n"
    rows, problems = rows_of(b"\xef\xbb\xbf" + mixed.encode())
    assert problems == []
    assert [r["SEQ"] for r in rows] == ["S1", "S2"]
    assert rows[1]["CID"] == cid(2)  # a trailing "|" is one extra empty item, ignored by position


def test_tis620_file_is_detected_and_decoded() -> None:
    data = text("SERVICE", [service("S1", "1", 1, CHIEFCOMP="ปวดหัว ตัวร้อน")]).encode("cp874")
    assert detect_encoding(data) == "cp874"
    rows, problems = rows_of(data)
    assert rows[0]["CHIEFCOMP"] == "ปวดหัว ตัวร้อน"
    assert [p.rule for p in problems] == ["encoding_tis620"]
    assert problems[0].severity == "warning"


def test_zip_member_names_in_any_case_and_folder(tmp_path) -> None:
    z = write_zip(tmp_path / "F43_10699_202501.zip", {
        "PERSON.TXT": text("PERSON", [person("1", 1)]),
        "Service.txt": text("SERVICE", [service("S1", "1", 1)]),
        "readme.pdf": b"%PDF",
        "home.txt": "HOSPCODE|HID\r\n10699|1\r\n",  # a 43-file phrsync does not need: not read
    })
    members = [m for m in iter_members([z]) if not isinstance(m, Problem)]
    assert sorted(m.spec.name for m in members if m.spec) == ["PERSON", "SERVICE"]
    assert all(m.hospcode == "10699" for m in members)
    rows = [r for m in members if m.spec for ch in read_member(m) for r in ch.rows()]
    assert len(rows) == 2


def test_folder_of_txt_files_and_broken_zip(tmp_path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "service.txt").write_text(text("SERVICE", [service("S1", "1", 1)]), encoding="utf-8")
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really a zip")
    items = list(iter_members([folder, tmp_path / "broken.zip"]))
    problems = [i for i in items if isinstance(i, Problem)]
    members = [i for i in items if not isinstance(i, Problem)]
    assert [m.spec.name for m in members] == ["SERVICE"]
    assert sorted(p.rule for p in problems) == ["bad_zip"]
    with pytest.raises(NotFoundError, match="missing.zip"):  # a path that is not there is no export at all
        list(iter_members([folder, tmp_path / "missing.zip"]))


def test_corrupted_zip_member_is_reported_not_raised(tmp_path) -> None:
    z = write_zip(tmp_path / "F43_10699_202501.zip", {"service.txt": text("SERVICE", [service("S1", "1", 1)] * 1)})
    raw = bytearray(z.read_bytes())
    # flip bytes inside the compressed data of the member: CRC or inflate error on read
    start = raw.index(b"service.txt") + len(b"service.txt") + 4
    for i in range(start, min(start + 40, len(raw) - 60)):
        raw[i] ^= 0xFF
    z.write_bytes(bytes(raw))
    out = []
    for m in iter_members([z]):
        if isinstance(m, Problem):
            out.append(m.rule)
            continue
        for ch in read_member(m):
            out += [p.rule for p in ch.problems]
    assert out, "a damaged member must yield a problem"


@pytest.mark.parametrize("chunk_rows", [1, 2, 1000])
def test_chunking_keeps_every_row(chunk_rows: int) -> None:
    rows = [service(f"S{i}", str(i), i) for i in range(7)]
    data = text("SERVICE", rows).encode()
    chunks = list(read_stream(io.BytesIO(data), schema.get("SERVICE"), "t", chunk_rows=chunk_rows))
    got = [r["SEQ"] for ch in chunks for r in ch.rows()]
    assert got == [f"S{i}" for i in range(7)]
    assert all(ch.num_rows <= chunk_rows for ch in chunks)


def test_zipfile_helper_writes_real_zip(tmp_path) -> None:
    z = write_zip(tmp_path / "a.zip", {"service.txt": "x"})
    assert zipfile.is_zipfile(z)


def test_exports_are_read_in_the_order_they_were_made() -> None:
    from pathlib import Path

    from phrsync.f43.reader import export_order

    names = ["F43_10700_202502.zip", "notes.txt", "F43_10699_202502.zip", "F43_10699_20250115093000.zip",
             "F43_10700_202501.zip", "old/F43_10699_202412.zip"]
    assert [p.name for p in export_order([Path(n) for n in names])] == [  # type: ignore[union-attr]
        "notes.txt", "F43_10699_202412.zip", "F43_10700_202501.zip", "F43_10699_20250115093000.zip",
        "F43_10699_202502.zip", "F43_10700_202502.zip"]


def test_header_is_recognised_when_hospcode_is_not_the_first_column() -> None:
    """An exporter that writes CID (or any column) first: the header still maps columns by name."""
    names = list(reversed(schema.get("SERVICE").field_names))
    body = text("SERVICE", [service("S1", "1", 1), service("S2", "2", 2)], layout=tuple(names))
    rows, problems = rows_of(body.encode())
    assert problems == []
    assert [(r["SEQ"], r["HOSPCODE"], r["CID"], r["_line"]) for r in rows] == [
        ("S1", "10699", cid(1), 2), ("S2", "10699", cid(2), 3)]


def test_lines_ended_by_cr_alone_are_lines() -> None:
    """CR-only line ends made the whole file one line: taken as the header, every row silently dropped."""
    for header in (True, False):
        body = text("SERVICE", [service("S1", "1", 1), service("S2", "2", 2)], header=header, eol="\r")
        rows, problems = rows_of(body.encode())
        assert problems == []
        assert [(r["SEQ"], r["_line"]) for r in rows] == [("S1", 1 + header), ("S2", 2 + header)]
