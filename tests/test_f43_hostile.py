"""Hostile or broken exports (issue #15, points 1 and 5): each is bounded in memory and time, reported for its own
file, and never costs the rest of the batch. The big inputs are made here, small on disk (:func:`repeat_zip`)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from click.testing import CliRunner
from f43files import Piece, person, repeat_zip, service, text, write_zip

from phrsync.cli import cli
from phrsync.errors import Exit
from phrsync.f43 import api, reader, schema
from phrsync.f43.importer import Importer, staged_rows
from phrsync.f43.reader import read_stream
from phrsync.f43.staging import Staging
from phrsync.settings import ImportSection

GB2 = 2000  # MiB: the "2 GB"
MIB = 1 << 20
NO_RATIO = ImportSection(max_compression_ratio=0)  # to stream a zip bomb through the line limit instead
PEAK_LIMIT_MB = 1024  # "memory stays under 1 GB whatever the input"


def good_zip(path: Path, hosp: str = "10699") -> Path:
    return write_zip(path / f"F43_{hosp}_202501.zip", {
        "person.txt": text("PERSON", [person("1", 1, HOSPCODE=hosp), person("2", 2, HOSPCODE=hosp)]),
        "service.txt": text("SERVICE", [service("S1", "1", 1, HOSPCODE=hosp)]),
    })


def quarantine(st: Staging) -> list[dict[str, Any]]:
    cur = st.con.execute("SELECT * FROM quarantine ORDER BY id")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


# The import runs in a child process: its peak memory is its own, and a watchdog ends it past the limit, so that a
# regression fails quickly instead of taking the (shared) machine's memory.
_CHILD = r"""
import json, os, resource, sys, threading, time
import psutil
from phrsync.f43 import api
from phrsync.settings import ImportSection

limit = int(sys.argv[1]) << 20
peak = 0
def watch():
    global peak
    me = psutil.Process()
    while True:
        rss = me.memory_info().rss
        peak = max(peak, rss)
        if rss > limit:
            print(json.dumps({"killed_at_mb": rss >> 20}), flush=True)
            os._exit(3)
        time.sleep(0.05)
threading.Thread(target=watch, daemon=True).start()
args = json.loads(sys.argv[2])
t0 = time.perf_counter()
rep = api.import_sources(args["staging"], args["paths"], limits=ImportSection(**args["limits"]))
print(json.dumps({"report": rep.to_dict(), "seconds": time.perf_counter() - t0,
                  "peak_mb": max(peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10) / (1 << 20)}))
"""


def import_in_child(staging: Path, paths: list[Path], timeout: float = 240, **limits: Any) -> dict[str, Any]:
    args = {"staging": str(staging), "paths": [str(p) for p in paths], "limits": limits}
    res = subprocess.run([sys.executable, "-c", _CHILD, str(PEAK_LIMIT_MB), json.dumps(args)],
                         capture_output=True, text=True, timeout=timeout)
    out = json.loads(res.stdout.strip().splitlines()[-1]) if res.stdout.strip() else {}
    assert res.returncode == 0, (res.returncode, out, res.stderr[-3000:])
    return out


def bomb(path: Path, name: str, pieces: list[Piece]) -> Path:
    """A zip of one 43-file made of ``pieces`` (beside a good service.txt), small on disk."""
    return repeat_zip(path, {f"{path.stem}/{name}": pieces,
                             f"{path.stem}/service.txt": [text("SERVICE", [service("S9", "9", 9)]).encode()]})


# ---------------------------------------------------------------------------------------------------------------
# point 1: line length, member size and ratio, memory


class _Stream(io.RawIOBase):
    """Bytes made as they are read: ``pieces`` as for :func:`repeat_zip`, never held whole."""

    def __init__(self, pieces: list[Piece]) -> None:
        self.pieces = [(p, 1) if isinstance(p, bytes) else p for p in pieces]
        self.pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while self.pieces:
            block, times = self.pieces[0]
            if self.pos == len(block):
                self.pos = 0
                self.pieces[0] = (block, times - 1)
                if times - 1 == 0:
                    self.pieces.pop(0)
                continue
            n = min(len(b), len(block) - self.pos)
            b[:n] = block[self.pos:self.pos + n]
            self.pos += n
            return n
        return 0


def test_a_line_over_the_limit_is_skipped_while_streaming_and_quarantined_with_its_line() -> None:
    """A 2 GB line as a stream: skipped in bounded blocks (it was held whole: 10.6 GB and an ArrowCapacityError),
    quarantined with its file and line, and the lines around it still read."""
    head = text("PERSON", [person("1", 1)]).encode()
    tail = text("PERSON", [person("2", 2)], header=False).encode()
    stream = io.BufferedReader(_Stream([head, (b"x" * MIB, GB2), b"\r\n", tail]), MIB)
    t0 = time.perf_counter()
    chunks = list(read_stream(stream, schema.get("PERSON"), "F43_10699_202501.zip:person.txt", "10699"))
    assert time.perf_counter() - t0 < 60
    rows = [r for c in chunks for r in c.rows()]
    assert [(r["PID"], r["_line"]) for r in rows] == [("1", 2), ("2", 4)]
    (p,) = [p for c in chunks for p in c.problems]
    assert (p.rule, p.line, p.file, p.source) == ("line_too_long", 3, "PERSON", "F43_10699_202501.zip:person.txt")
    assert p.value == f"{GB2 * MIB:,}" and len(p.raw) == reader.LONG_LINE_HEAD  # its size, its first bytes
    assert "max_line_bytes" in p.reason_th and "max_line_bytes" in p.reason_en


@pytest.mark.parametrize("size", [70_000, 3 * MIB, 30 * MIB])  # inside a block, across blocks, many blocks
@pytest.mark.parametrize("encoding", ["utf-8", "bad-bytes"])
def test_a_long_line_is_quarantined_wherever_it_falls_and_the_count_stays_right(size: int, encoding: str) -> None:
    extra = b"\xff\xfe" if encoding == "bad-bytes" else b""  # a block that does not decode goes line by line
    head = text("SERVICE", [service("S1", "1", 1)]).encode()
    tail = text("SERVICE", [service("S2", "2", 2), service("S3", "3", 3)], header=False).encode()
    body = head + extra + b"\n" + b"y" * size + b"\n" + tail
    chunks = list(read_stream(io.BytesIO(body), schema.get("SERVICE"), "service.txt", max_line_bytes=65536))
    rows = [(r["SEQ"], r["_line"]) for c in chunks for r in c.rows()]
    assert rows == [("S1", 2), ("S2", 5), ("S3", 6)]
    long = [(p.line, p.value) for c in chunks for p in c.problems if p.rule == "line_too_long"]
    assert long == [(4, f"{size:,}")]


def test_a_2gb_member_without_a_line_break_is_quarantined_in_bounded_memory(tmp_path: Path) -> None:
    """The issue's 2 MB zip of a 2 GB PERSON.txt with no line break (streamed: the ratio check is off here),
    beside a good zip: the good zip and the bomb zip's other file load; memory stays under 1 GB."""
    z = bomb(tmp_path / "F43_10700_202501.zip", "person.txt", [(b"x" * MIB, GB2)])
    assert z.stat().st_size < 3 * MIB
    out = import_in_child(tmp_path / "s.duckdb", [good_zip(tmp_path), z], max_compression_ratio=0)
    assert out["peak_mb"] < PEAK_LIMIT_MB, out
    rep = out["report"]
    assert rep["quarantine_by_reason"]["line_too_long"]["by_file"] == {"PERSON": 1}
    assert rep["files"]["PERSON"]["accepted"] == 2 and rep["files"]["SERVICE"]["accepted"] == 2
    with Staging(tmp_path / "s.duckdb", read_only=True) as st:
        (e,) = [e for e in quarantine(st) if e["rule"] == "line_too_long"]
        assert (e["source"], e["line"], e["value"]) == ("F43_10700_202501.zip:person.txt", 1, f"{GB2 * MIB:,}")


@pytest.mark.slow
def test_a_250mb_line_among_good_lines_loads_the_good_ones_in_bounded_memory(tmp_path: Path) -> None:
    """A 250 MB line (a DuckDB OutOfMemoryException before): the lines before and after it load."""
    rows = text("PERSON", [person("1", 1, HOSPCODE="10700"), person("2", 2, HOSPCODE="10700")]).encode()
    after = text("PERSON", [person("3", 3, HOSPCODE="10700")], header=False).encode()
    z = bomb(tmp_path / "F43_10700_202501.zip", "person.txt", [rows, (b"7|" * (MIB // 2), 250), b"\r\n", after])
    out = import_in_child(tmp_path / "s.duckdb", [good_zip(tmp_path), z], max_compression_ratio=0)
    assert out["peak_mb"] < PEAK_LIMIT_MB, out
    with Staging(tmp_path / "s.duckdb", read_only=True) as st:
        assert sorted((r["HOSPCODE"], r["PID"]) for r in staged_rows(st, "PERSON")) == [
            ("10699", "1"), ("10699", "2"), ("10700", "1"), ("10700", "2"), ("10700", "3")]
        (e,) = [e for e in quarantine(st) if e["rule"] == "line_too_long"]
        assert (e["line"], e["value"]) == (4, f"{250 * MIB:,}")


@pytest.mark.slow
def test_lines_just_under_the_limit_are_checked_in_bounded_batches(tmp_path: Path) -> None:
    """1 GB of 60 KB lines, each under max_line_bytes: batches are bounded in bytes as well as rows (a row group of
    such lines is 7 GB) and checked one at a time (three at once ran DuckDB out of memory)."""
    line = b"10700|" + b"a" * 61_000 + b"|1\n"
    z = bomb(tmp_path / "F43_10700_202501.zip", "person.txt", [(line, 17_000)])
    out = import_in_child(tmp_path / "s.duckdb", [good_zip(tmp_path), z], timeout=400, max_compression_ratio=0)
    assert out["peak_mb"] < PEAK_LIMIT_MB, out
    rep = out["report"]
    assert rep["files"]["PERSON"]["quarantined"] == 17_000 and rep["files"]["PERSON"]["accepted"] == 2
    assert rep["exit_code"] == Exit.OK
    with Staging(tmp_path / "s.duckdb", read_only=True) as st:
        (longest,) = st.row("SELECT max(length(raw)) FROM quarantine")
        assert longest <= 4096  # an entry keeps the start of a hostile line, not all of it


def test_a_zip_bomb_member_is_refused_by_name_at_once_and_the_rest_loads(tmp_path: Path) -> None:
    """The issue's 3 MB zip of a 2 GB member ran for over 15 minutes: now the member is refused before a byte is
    inflated, with a message naming it; its zip's other file and the other zips load; the exit code says so."""
    z = bomb(tmp_path / "F43_10700_202501.zip", "person.txt", [(b"0|0|0|0\n" * (MIB // 8), GB2)])
    t0 = time.perf_counter()
    out = import_in_child(tmp_path / "s.duckdb", [good_zip(tmp_path), z])
    assert time.perf_counter() - t0 < 60 and out["peak_mb"] < PEAK_LIMIT_MB
    rep = out["report"]
    assert rep["exit_code"] == Exit.REFUSED
    (n,) = rep["not_imported"]
    assert (n["source"], n["file"], n["rule"]) == ("F43_10700_202501.zip:person.txt", "PERSON", "zip_ratio")
    assert "F43_10700_202501.zip:person.txt" in n["reason_th"] and "max_compression_ratio" in n["reason_en"]
    assert rep["files"]["PERSON"]["accepted"] == 2 and rep["files"]["SERVICE"]["accepted"] == 2


def test_a_member_over_the_size_limit_is_refused_and_the_rest_of_its_zip_loads(tmp_path: Path) -> None:
    z = write_zip(tmp_path / "F43_10699_202501.zip", {
        "person.txt": text("PERSON", [person(str(i), i) for i in range(1, 400)]),
        "service.txt": text("SERVICE", [service("S1", "1", 1)]),
    })
    with Staging(tmp_path / "s.duckdb") as st:
        rep = Importer(st, limits=ImportSection(max_member_bytes=10_000)).import_paths([z])
        assert rep.exit_code == Exit.REFUSED
        (n,) = rep.not_imported
        assert (n.source, n.rule) == ("F43_10699_202501.zip:person.txt", "member_too_large")
        assert "max_member_bytes" in n.reason_th and "10,000" in n.reason_en
        assert rep.files["SERVICE"].accepted == 1 and "PERSON" not in rep.files
        (e,) = quarantine(st)
        assert (e["rule"], e["hospcode"], e["line"]) == ("member_too_large", "10699", 0)


def test_small_members_are_not_judged_by_their_ratio(tmp_path: Path) -> None:
    """A small file of equal lines compresses far beyond 100:1 and is no bomb."""
    z = write_zip(tmp_path / "F43_10699_202501.zip", {
        "service.txt": text("SERVICE", [service("S1", "1", 1)] * 3000)})  # (the repeats are duplicates)
    info = zipfile.ZipFile(z).infolist()[0]
    assert info.file_size / info.compress_size > 100 and info.file_size < reader.RATIO_FROM_BYTES
    with Staging(tmp_path / "s.duckdb") as st:
        rep = Importer(st).import_paths([z])
        assert rep.exit_code == Exit.OK and rep.files["SERVICE"].read == 3000


# ---------------------------------------------------------------------------------------------------------------
# per-file failures: the rest of the batch goes on


def test_a_duckdb_failure_on_one_file_fails_that_file_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch mixes rows of many files; when DuckDB refuses it, each file is retried alone, and only the file at
    fault fails: none of its rows load, it is reported, and its zip is read again by the next import."""
    good = good_zip(tmp_path)
    bad = good_zip(tmp_path, "10700")
    real = Staging.append_checked

    def flaky(self: Staging, spec: Any, sql: str, import_id: int) -> pa.Table:
        (n,) = self.con.execute("SELECT count(*) FROM _chunk WHERE _src LIKE 'F43_10700%'").fetchall()
        if spec.name == "PERSON" and n and n[0]:
            raise duckdb.OutOfMemoryException("could not allocate block of 262144 bytes (1234567890121)")
        return real(self, spec, sql, import_id)

    monkeypatch.setattr(Staging, "append_checked", flaky)
    with Staging(tmp_path / "s.duckdb") as st:
        rep = Importer(st).import_paths([good, bad])
        assert rep.exit_code == Exit.REFUSED
        (n,) = rep.not_imported
        assert (n.source, n.rule) == ("F43_10700_202501.zip:person.txt", "file_failed")
        assert "OutOfMemoryException" in n.reason_en and "1234567890121" not in n.reason_en  # a CID is masked
        assert sorted((r["HOSPCODE"], r["PID"]) for r in staged_rows(st, "PERSON")) == [("10699", "1"), ("10699", "2")]
        assert {r["HOSPCODE"] for r in staged_rows(st, "SERVICE")} == {"10699", "10700"}  # its other file loaded
        assert rep.files["PERSON"].not_loaded == 2 and rep.files["PERSON"].accepted == 2
    monkeypatch.setattr(Staging, "append_checked", real)
    with Staging(tmp_path / "s.duckdb") as st:
        again = Importer(st).import_paths([good, bad])
        assert (again.skipped, again.sources, again.exit_code) == (1, 1, Exit.OK)
        assert len(list(staged_rows(st, "PERSON"))) == 4
        assert not [e for e in quarantine(st) if e["rule"] == "file_failed"]  # replaced by the new read


def test_an_arrow_failure_while_reading_fails_that_file_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What pyarrow raised on a huge line (ArrowCapacityError) ended the whole import with a traceback."""
    real = reader._block_chunks

    def flaky(state: Any, *a: Any, **k: Any) -> Any:
        if state.label.startswith("F43_10700") and state.spec.name == "SERVICE":
            raise pa.ArrowCapacityError("array cannot contain more than 2147483646 bytes")
        return real(state, *a, **k)

    monkeypatch.setattr(reader, "_block_chunks", flaky)
    with Staging(tmp_path / "s.duckdb") as st:
        rep = Importer(st).import_paths([good_zip(tmp_path), good_zip(tmp_path, "10700")])
        assert [(n.source, n.rule) for n in rep.not_imported] == [("F43_10700_202501.zip:service.txt",
                                                                   "file_failed")]
        assert "ArrowCapacityError" in rep.not_imported[0].reason_en
        assert {r["HOSPCODE"] for r in staged_rows(st, "SERVICE")} == {"10699"}
        assert len(list(staged_rows(st, "PERSON"))) == 4


# ---------------------------------------------------------------------------------------------------------------
# point 5: the quarantine cap, all-garbage files, bad and empty zips


def test_a_zip_of_millions_of_bad_lines_is_stopped_and_its_entries_capped(tmp_path: Path) -> None:
    """3 MB → 2 GB of ``0|0|0|0`` wrote 61.7 M quarantine rows: now the file's entries stop at the cap, its reading
    stops once every row checked is bad, and the report says so; the other files load."""
    z = bomb(tmp_path / "F43_10700_202501.zip", "person.txt", [(b"0|0|0|0\n" * (MIB // 8), GB2)])
    t0 = time.perf_counter()
    out = import_in_child(tmp_path / "s.duckdb", [good_zip(tmp_path), z], max_compression_ratio=0,
                          max_quarantine_per_file=20_000)
    assert time.perf_counter() - t0 < 120 and out["peak_mb"] < PEAK_LIMIT_MB, out
    rep = out["report"]
    assert rep["exit_code"] == Exit.REFUSED
    (n,) = rep["not_imported"]
    assert (n["source"], n["rule"]) == ("F43_10700_202501.zip:person.txt", "garbage_file")
    assert "reading this file stopped" in n["reason_en"] and "หยุดอ่าน" in n["reason_th"]
    assert rep["files"]["PERSON"]["read"] < 5_000_000  # of 262 M lines
    assert rep["files"]["PERSON"]["accepted"] == 2 and rep["files"]["SERVICE"]["accepted"] == 2
    with Staging(tmp_path / "s.duckdb", read_only=True) as st:
        (lines,) = st.row("SELECT count(DISTINCT line) FROM quarantine WHERE source = ? AND line > 0",
                          ["F43_10700_202501.zip:person.txt"])
        assert lines == 20_000
        (capped,) = [e for e in quarantine(st) if e["rule"] == "quarantine_capped"]
        assert int(capped["value"].replace(",", "")) + 20_000 == rep["files"]["PERSON"]["quarantined"]


def test_the_quarantine_cap_keeps_a_file_with_good_rows_loading(tmp_path: Path) -> None:
    rows = [service(f"S{i}", "1", 1, TYPEIN="9" if i % 2 else "1") for i in range(200)]  # half unknown codes
    z = write_zip(tmp_path / "F43_10699_202501.zip", {"service.txt": text("SERVICE", rows)})
    with Staging(tmp_path / "s.duckdb") as st:
        rep = Importer(st, limits=ImportSection(max_quarantine_per_file=10)).import_paths([z])
        assert rep.exit_code == Exit.OK and not rep.not_imported
        assert (rep.files["SERVICE"].accepted, rep.files["SERVICE"].quarantined) == (100, 100)
        entries = quarantine(st)
        assert sum(e["rule"] == "unknown_code" for e in entries) == 10
        (capped,) = [e for e in entries if e["rule"] == "quarantine_capped"]
        assert (capped["value"], capped["severity"]) == ("90", "warning")


def test_duplicate_rows_are_capped_too(tmp_path: Path) -> None:
    z = write_zip(tmp_path / "F43_10699_202501.zip", {"service.txt": text("SERVICE", [service("S1", "1", 1)] * 60)})
    with Staging(tmp_path / "s.duckdb") as st:
        rep = Importer(st, limits=ImportSection(max_quarantine_per_file=10)).import_paths([z])
        assert (rep.files["SERVICE"].accepted, rep.files["SERVICE"].quarantined) == (1, 59)
        assert sum(e["rule"] == "duplicate_key" for e in quarantine(st)) == 10
        assert len(list(staged_rows(st, "SERVICE"))) == 1


def test_a_small_file_read_whole_with_every_row_bad_is_reported_too(tmp_path: Path) -> None:
    """Whether the reader got to stop it or not, a file all bad up to the cap is reported: the exit code does not
    depend on how fast the checks ran."""
    z = write_zip(tmp_path / "F43_10699_202501.zip", {
        "service.txt": "\r\n".join(["0|0|0|0"] * 50) + "\r\n", "person.txt": text("PERSON", [person("1", 1)])})
    with Staging(tmp_path / "s.duckdb") as st:
        rep = Importer(st, limits=ImportSection(max_quarantine_per_file=20)).import_paths([z])
        assert [(n.source, n.rule) for n in rep.not_imported] == [("F43_10699_202501.zip:service.txt",
                                                                   "garbage_file")]
        assert rep.files["PERSON"].accepted == 1


def test_bad_empty_and_foreign_zips_are_reported_and_the_exit_code_says_so(tmp_path: Path) -> None:
    """A bad or non-zip ``.zip`` was recorded but the import exited 0; an empty zip was not reported at all."""
    (tmp_path / "in").mkdir()
    good_zip(tmp_path / "in")
    (tmp_path / "in" / "F43_10700_202501.zip").write_bytes(b"this is no zip")
    zipfile.ZipFile(tmp_path / "in" / "F43_10701_202501.zip", "w").close()
    write_zip(tmp_path / "in" / "F43_10702_202501.zip", {"readme.txt": "hello"})
    st = str(tmp_path / "s.duckdb")
    res = CliRunner().invoke(cli, ["import", str(tmp_path / "in"), "--staging", st, "--json"])
    assert res.exit_code == Exit.REFUSED == 1, res.output
    d = json.loads(res.output)
    assert {(n["source"], n["rule"]) for n in d["not_imported"]} == {
        ("F43_10700_202501.zip", "bad_zip"), ("F43_10701_202501.zip", "empty_zip"),
        ("F43_10702_202501.zip", "empty_zip")}
    assert d["files"]["PERSON"]["accepted"] == 2 and d["exit_code"] == 1
    res = CliRunner().invoke(cli, ["import", str(tmp_path / "in"), "--staging", st])  # the text report says it too
    assert res.exit_code == 1 and "not imported" in res.output and "F43_10701_202501.zip" in res.output
    res = CliRunner().invoke(cli, ["quarantine", "list", "--facility", "10701", "--staging", st, "--json"])
    assert [e["rule"] for e in json.loads(res.output)] == ["empty_zip"]  # filed under the zip's facility, once
    res = CliRunner().invoke(cli, ["import", str(tmp_path / "in" / "F43_10699_202501.zip"), "--staging", st])
    assert res.exit_code == 0, res.output  # nothing wrong: 0


def test_the_import_section_of_phrsync_toml_sets_the_limits(tmp_path: Path) -> None:
    z = write_zip(tmp_path / "F43_10699_202501.zip", {
        "person.txt": text("PERSON", [person(str(i), i) for i in range(1, 100)]),
        "service.txt": text("SERVICE", [service("S1", "1", 1)])})
    cfg = tmp_path / "phrsync.toml"
    cfg.write_text("[import]\nmax_member_bytes = 2048\n", encoding="utf-8")
    res = CliRunner().invoke(cli, ["--config", str(cfg), "import", str(z), "--staging", str(tmp_path / "s.duckdb"),
                                   "--json"])
    assert res.exit_code == 1, res.output
    assert [n["rule"] for n in json.loads(res.output)["not_imported"]] == ["member_too_large"]
    cfg.write_text("[import]\nmax_member_byte = 2048\n", encoding="utf-8")
    res = CliRunner().invoke(cli, ["--config", str(cfg), "import", str(z), "--staging", str(tmp_path / "t.duckdb")])
    assert res.exit_code == 2 and "did you mean max_member_bytes" in res.output


def test_the_library_passes_its_limits_to_the_import(tmp_path: Path) -> None:
    z = write_zip(tmp_path / "F43_10699_202501.zip", {"service.txt": text("SERVICE", [service("S1", "1", 1)])
                                                      .replace("ไข้ ไอ", "x" * 3000)})
    rep = api.import_sources(tmp_path / "s.duckdb", [z], limits=ImportSection(max_line_bytes=2048))
    assert rep.reasons[("SERVICE", "line_too_long", "error")] == 1 and rep.exit_code == Exit.OK
