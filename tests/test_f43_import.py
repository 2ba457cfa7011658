"""Import into staging: checks, quarantine, latest-D_UPDATE-wins merge, idempotence, no crash on any input."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from f43files import cid, person, service, text, write_zip
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from phrsync.cli import cli
from phrsync.errors import Exit
from phrsync.f43 import schema
from phrsync.f43.importer import Importer, staged_rows
from phrsync.f43.reader import _is_header
from phrsync.f43.staging import Staging

TODAY = dt.date(2026, 11, 25)


@pytest.fixture
def store(tmp_path: Path):
    with Staging(tmp_path / "staging.duckdb") as s:
        yield s


def run(store: Staging, *paths: Path, force: bool = False):
    return Importer(store, today=TODAY, force=force).import_paths(paths)


def quarantine(store: Staging) -> list[dict]:
    cur = store.con.execute("SELECT * FROM quarantine ORDER BY id")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def test_round_trip_values_are_typed_and_exact(store: Staging, tmp_path: Path) -> None:
    z = write_zip(tmp_path / "F43_10699_202501.zip", {
        "person.txt": text("PERSON", [person("1", 1), person("2", 2, SEX="2", PRENAME="005", NAME="สมศรี")]),
        "service.txt": text("SERVICE", [service("S1", "1", 1), service("S2", "2", 2, BTEMP="38.5")]),
    })
    rep = run(store, z)
    assert rep.files["PERSON"].accepted == 2 and rep.files["SERVICE"].accepted == 2
    assert rep.rows_quarantined == 0
    svc = {r["SEQ"]: r for r in staged_rows(store, "SERVICE")}
    assert svc["S2"]["BTEMP"] == 38.5
    assert svc["S1"]["DATE_SERV"] == dt.date(2025, 1, 5)
    assert svc["S1"]["D_UPDATE"] == dt.datetime(2025, 1, 5, 10, 30)
    assert svc["S1"]["SBP"] == 128 and svc["S1"]["CID"] == cid(1)
    assert svc["S1"]["CHIEFCOMP"] == "ไข้ ไอ"
    people = {r["PID"]: r for r in staged_rows(store, "PERSON")}
    assert people["2"]["NAME"] == "สมศรี" and people["2"]["BIRTH"] == dt.date(1970, 1, 1)


def test_reimport_same_export_changes_nothing(store: Staging, tmp_path: Path) -> None:
    z = write_zip(tmp_path / "F43_10699_202501.zip", {
        "service.txt": text("SERVICE", [service("S1", "1", 1), service("S2", "2", 2, TYPEIN="9")]),
    })
    run(store, z)
    before_rows = list(staged_rows(store, "SERVICE"))
    before_q = quarantine(store)
    rep2 = run(store, z)
    assert rep2.skipped == 1 and rep2.sources == 0
    rep3 = run(store, z, force=True)
    assert rep3.files["SERVICE"].unchanged == 1 and rep3.files["SERVICE"].inserted == 0
    after_rows = list(staged_rows(store, "SERVICE"))
    strip = lambda rows: [{k: v for k, v in r.items() if k != "_import"} for r in rows]  # noqa: E731
    assert strip(after_rows) == strip(before_rows)
    after_q = quarantine(store)
    assert [(q["line"], q["rule"]) for q in after_q] == [(q["line"], q["rule"]) for q in before_q]


def test_latest_d_update_wins_across_exports(store: Staging, tmp_path: Path) -> None:
    jan = write_zip(tmp_path / "F43_10699_202501.zip", {
        "person.txt": text("PERSON", [person("1", 1, MSTATUS="1", D_UPDATE="20250101120000")]),
    })
    feb = write_zip(tmp_path / "F43_10699_202502.zip", {
        "person.txt": text("PERSON", [person("1", 1, MSTATUS="2", D_UPDATE="20250201120000")]),
    })
    stale = write_zip(tmp_path / "F43_10699_202412.zip", {
        "person.txt": text("PERSON", [person("1", 1, MSTATUS="3", D_UPDATE="20241201120000")]),
    })
    run(store, feb, jan)  # order of arrival does not matter
    run(store, stale)
    rows = list(staged_rows(store, "PERSON"))
    assert len(rows) == 1 and rows[0]["MSTATUS"] == "2"


@pytest.mark.parametrize("first,second,kept,replaced", [
    ("20250105103000", "20250106080000", 39.0, 2),  # the later D_UPDATE wins
    ("20250106080000", "20250105103000", 37.2, 3),  # whichever line it is on
    ("20250105103000", "20250105103000", 39.0, 2),  # equal: the later line wins
])
def test_duplicate_key_in_one_file_the_latest_row_wins(store: Staging, tmp_path: Path, first: str, second: str,
                                                       kept: float, replaced: int) -> None:
    z = write_zip(tmp_path / "F43_10699_202501.zip", {
        "service.txt": text("SERVICE", [service("S1", "1", 1, D_UPDATE=first),
                                        service("S1", "1", 1, BTEMP="39.0", D_UPDATE=second)]),
    })
    rep = run(store, z)
    rows = list(staged_rows(store, "SERVICE"))
    assert len(rows) == 1 and rows[0]["BTEMP"] == kept
    q = [e for e in quarantine(store) if e["rule"] == "duplicate_key"]
    assert len(q) == 1 and q[0]["line"] == replaced and q[0]["file"] == "SERVICE"
    other = 5 - replaced  # lines 2 and 3
    assert f"replaced by line {other}" in q[0]["reason_en"] and f"บรรทัด {other}" in q[0]["reason_th"]
    assert rep.files["SERVICE"].quarantined == 1


@pytest.mark.parametrize("field,value,rule", [
    ("CID", "1270000000010", "cid_checksum"),
    ("DATE_SERV", "20250230", "bad_date"),
    ("DATE_SERV", "25680105", "be_year"),
    ("DATE_SERV", "20270105", "future_date"),
    ("TYPEIN", "9", "unknown_code"),
    ("INSTYPE", "", "required"),
    ("INSTYPE", "01", "bad_format"),
    ("SBP", "1x0", "bad_number"),
    ("HN", "H" * 16, "too_long"),
    ("D_UPDATE", "20250105256100", "bad_datetime"),
])
def test_each_rule_quarantines_with_file_line_field_and_reason(store: Staging, tmp_path: Path,
                                                                field: str, value: str, rule: str) -> None:
    bad = service("S2", "2", 2, **{field: value})
    z = write_zip(tmp_path / "F43_10699_202501.zip", {
        "service.txt": text("SERVICE", [service("S1", "1", 1), bad, service("S3", "3", 3)]),
    })
    run(store, z)
    assert sorted(r["SEQ"] for r in staged_rows(store, "SERVICE")) == ["S1", "S3"]
    errors = [e for e in quarantine(store) if e["severity"] == "error"]
    assert [(e["file"], e["line"], e["field"], e["rule"]) for e in errors] == [("SERVICE", 3, field, rule)]
    e = errors[0]
    assert e["hospcode"] == "10699" and e["source"] == "F43_10699_202501.zip:service.txt"
    assert e["reason_th"] and e["reason_en"] and field in e["reason_en"]
    assert e["raw"].startswith("10699|2|")


def test_truncated_and_overlong_lines_are_quarantined_and_the_rest_loads(store: Staging, tmp_path: Path) -> None:
    good = text("SERVICE", [service("S1", "1", 1), service("S3", "3", 3)], header=True)
    lines = good.split("\r\n")
    cut = lines[1][: len(lines[1]) // 3]
    extra = lines[2].replace("S3", "S4") + "|x|y|z"
    body = "\r\n".join([lines[0], lines[1], cut, extra, lines[2]]) + "\r\n"
    run(store, write_zip(tmp_path / "F43_10699_202501.zip", {"service.txt": body}))
    assert sorted(r["SEQ"] for r in staged_rows(store, "SERVICE")) == ["S1", "S3"]
    by_rule = {e["rule"]: e for e in quarantine(store) if e["severity"] == "error"}
    assert by_rule["truncated_line"]["line"] == 3 and by_rule["truncated_line"]["raw"] == cut
    assert by_rule["field_count"]["line"] == 4
    assert "expected 31" in by_rule["field_count"]["reason_en"] and by_rule["truncated_line"]["reason_th"]
    assert len(by_rule) == 2  # a broken line reports its shape, not every field it garbles


def test_missing_optional_trailing_columns_load(store: Staging, tmp_path: Path) -> None:
    data = text("SERVICE", [service("S1", "1", 1)])
    header, row = data.split("\r\n")[:2]
    short = row.rsplit("|", 2)[0]  # drop HSUB and CID (both optional, appended)
    run(store, write_zip(tmp_path / "F43_10699_202501.zip", {"service.txt": header + "\r\n" + short + "\r\n"}))
    (row,) = staged_rows(store, "SERVICE")
    assert row["CID"] is None and row["D_UPDATE"] == dt.datetime(2025, 1, 5, 10, 30)
    assert [e["rule"] for e in quarantine(store) if e["severity"] == "error"] == []


def test_personal_values_are_masked_in_quarantine(store: Staging, tmp_path: Path) -> None:
    z = write_zip(tmp_path / "F43_10699_202501.zip", {
        "service.txt": text("SERVICE", [service("S1", "1", 1, CID="1270000000010")]),
    })
    run(store, z)
    (e,) = [e for e in quarantine(store) if e["rule"] == "cid_checksum"]
    assert e["value"] == "1-2700-xxxxx-xx-0"


def test_warnings_keep_the_row(store: Staging, tmp_path: Path) -> None:
    z = write_zip(tmp_path / "F43_10699_202501.zip", {
        "service.txt": text("SERVICE", [service("S1", "1", 1, TIME_SERV="")]),
    })
    rep = run(store, z)
    assert len(list(staged_rows(store, "SERVICE"))) == 1
    assert [(e["rule"], e["severity"]) for e in quarantine(store)] == [("missing_time", "warning")]
    assert rep.files["SERVICE"].warnings == 1


def test_cli_import_json_counts_per_file_and_reason(tmp_path: Path) -> None:
    z = write_zip(tmp_path / "F43_10699_202501.zip", {
        "person.txt": text("PERSON", [person("1", 1)]),
        "service.txt": text("SERVICE", [service("S1", "1", 1), service("S2", "2", 2, TYPEIN="9")]),
    })
    res = CliRunner().invoke(cli, ["import", str(z), "--staging", str(tmp_path / "s.duckdb"), "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["files"]["SERVICE"]["accepted"] == 1 and d["files"]["SERVICE"]["quarantined"] == 1
    assert d["files"]["PERSON"]["accepted"] == 1
    assert d["quarantine_by_reason"]["unknown_code"]["by_file"] == {"SERVICE": 1}
    res = CliRunner().invoke(cli, ["quarantine", "list", "--staging", str(tmp_path / "s.duckdb"), "--json"])
    assert res.exit_code == 0, res.output
    entries = json.loads(res.output)
    assert entries[0]["field"] == "TYPEIN" and entries[0]["line"] == 3
    res = CliRunner().invoke(cli, ["staging", "--staging", str(tmp_path / "s.duckdb"), "--json"])
    assert json.loads(res.output)["rows"]["SERVICE"] == 1


def test_hdc_password_is_never_taken_from_the_command_line(tmp_path: Path) -> None:
    """``--hdc "$PHRSYNC_HDC_URL"`` (the documented example) put the password in argv, where ``ps`` shows it to
    every local user. A URL with a password on the command line is refused; ``--hdc`` alone reads the URL from
    the environment; and an exported URL no longer silently replaces the PATHS given to ``import``."""
    st = str(tmp_path / "s.duckdb")
    url = "mysql+pymysql://hdc:s3cretpw@127.0.0.1:1/hdc"
    res = CliRunner().invoke(cli, ["import", "--hdc", url, "--staging", st])
    assert res.exit_code == 2 and "PHRSYNC_HDC_URL" in res.output and "s3cretpw" not in res.output
    res = CliRunner().invoke(cli, ["import", "--hdc", "mysql+pymysql//hdc:s3cretpw@h/hdc", "--staging", st])
    assert res.exit_code == 2, res.output  # unparseable, still a password
    res = CliRunner().invoke(cli, ["import", "--hdc", "--since", "2025-10-01", "--staging", st],
                             env={"PHRSYNC_HDC_URL": url})
    assert res.exit_code == 6 and "127.0.0.1:1/hdc" in res.output and "s3cretpw" not in res.output  # SOURCE
    assert not Path(st).exists()  # HDC is reached before the store is created
    res = CliRunner().invoke(cli, ["import", "--hdc", "--staging", st], env={"PHRSYNC_HDC_URL": ""})
    assert res.exit_code == 2 and "PHRSYNC_HDC_URL" in res.output
    z = write_zip(tmp_path / "F43_10699_202501.zip", {"person.txt": text("PERSON", [person("1", 1)])})
    res = CliRunner().invoke(cli, ["import", str(z), "--staging", st, "--json"], env={"PHRSYNC_HDC_URL": url})
    assert res.exit_code == 0 and json.loads(res.output)["files"]["PERSON"]["accepted"] == 1


def test_cli_help_on_every_import_verb() -> None:
    for args in (["import", "--help"], ["quarantine", "list", "--help"], ["quarantine", "summary", "--help"],
                 ["staging", "--help"]):
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 0 and "--json" in res.output


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(
    st.binary(max_size=600),
    st.lists(st.one_of(
        st.sampled_from([b"10699", b"", b"20250105", b"\xff\xfe", "ไข้".encode(), "ไข้".encode("cp874"),
                         b"093000", b"0100", b"1", b"|", b"\r", cid(5).encode(), b"25680101"]),
        st.binary(max_size=8)), max_size=80).map(b"|".join),
))
@example(body=b"\x00").via("found by hypothesis: a line of NULs alone")  # type: ignore[misc]
@example(body=b"\x1c").via("found by hypothesis: a line of Unicode whitespace alone")  # type: ignore[misc]
@example(body=b"\xa0").via("found by hypothesis: a no-break space alone, in TIS-620")  # type: ignore[misc]
@example(body=b"1|2\r3|4\r").via("lines ended by CR alone")  # type: ignore[misc]
def test_arbitrary_bytes_give_rows_or_quarantine_never_an_exception(tmp_path_factory, body: bytes) -> None:
    d = tmp_path_factory.mktemp("fuzz")
    header = text("SERVICE", []).encode()
    lines_body = body
    z = d / "F43_10699_202501.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("service.txt", lines_body)
        zf.writestr("person.txt", header + lines_body)
    with Staging(d / "s.duckdb") as store:
        Importer(store, today=TODAY).import_paths([z])
        for file, data, has_header in (("SERVICE", lines_body, False), ("PERSON", header + lines_body, True)):
            data = data.removeprefix(b"\xef\xbb\xbf")
            if b"\n" not in data and b"\r" in data[:-1]:  # lines ended by CR alone
                data = data.replace(b"\r", b"\n")
            raw_lines = data.split(b"\n")
            # the reader drops NUL bytes and takes a line of whitespace alone for a blank line — Unicode's
            # whitespace, which counts the separators \x1c-\x1f, and a TIS-620 file's 0xA0 (no-break space)
            expected = {i + 1 for i, ln in enumerate(raw_lines)
                        if all(ln.replace(b"\x00", b"").rstrip(b"\r\n").decode(enc, "replace").strip()
                               for enc in ("utf-8", "cp874"))
                        and not (i == 0 and (
                            has_header or _is_header(schema.get(file), ln.rstrip(b"\r").decode("utf-8", "replace"))))}
            staged = {r[0] for r in store.query(f"SELECT _line FROM f43_{file.lower()}")}
            quarantined = {r[0] for r in store.query(
                "SELECT DISTINCT line FROM quarantine WHERE file = ? AND severity = 'error' AND line > 0", [file])}
            assert staged.isdisjoint(quarantined)
            # every line is accounted for, unless the whole file was reported unreadable
            whole_file = store.query("SELECT count(*) FROM quarantine WHERE file = ? AND line = 0 "
                                     "AND severity = 'error'", [file])[0][0]
            if not whole_file:
                assert expected <= staged | quarantined


def test_an_import_killed_before_compaction_is_recovered_by_the_next(tmp_path: Path) -> None:
    from phrsync.f43.reader import iter_members, read_member

    z = write_zip(tmp_path / "F43_10699_202501.zip", {
        "service.txt": text("SERVICE", [service("S1", "1", 1), service("S2", "2", 2, TYPEIN="9"),
                                        service("S3", "3", 3)]),
    })
    path = tmp_path / "s.duckdb"
    with Staging(path) as st:  # first run: rows appended and problems stored, then the process "dies"
        imp = Importer(st, today=TODAY)
        imp._start("files", str(z))
        for m in iter_members([z]):
            for ch in read_member(m):  # type: ignore[arg-type]
                imp._chunk(ch, "sha-of-zip", 1)
        for key in list(imp._buf):
            imp._flush(key)
        imp._drain()  # the rows reached the store; then the process "dies" before compaction
    with Staging(path) as st:  # the source was never marked imported: the next run reads it again
        rep = Importer(st, today=TODAY).import_paths([z])
        assert rep.sources == 1
        assert sorted(r["SEQ"] for r in staged_rows(st, "SERVICE")) == ["S1", "S3"]
        assert [(e["line"], e["rule"]) for e in quarantine(st) if e["severity"] == "error"] == [(3, "unknown_code")]
        assert st.query("SELECT status FROM imports ORDER BY id") == [("interrupted",), ("done",)]


def test_one_zip_open_at_a_time(store: Staging, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A province sends thousands of zips; holding each open would run out of file descriptors (1,024 by
    default under systemd). The importer opens a container, reads it and closes it before the next."""
    folder = tmp_path / "exports"
    folder.mkdir()
    for i in range(40):
        write_zip(folder / f"F43_10699_2025{1 + i % 12:02d}_{i}.zip",
                  {"PERSON.txt": text("PERSON", [person(f"{i}", i)])})
    open_now, most = set(), [0]
    real_init, real_close = zipfile.ZipFile.__init__, zipfile.ZipFile.close

    def init(self, *a, **kw):  # type: ignore[no-untyped-def]
        real_init(self, *a, **kw)
        open_now.add(id(self))
        most[0] = max(most[0], len(open_now))

    def close(self):  # type: ignore[no-untyped-def]
        open_now.discard(id(self))
        real_close(self)

    monkeypatch.setattr(zipfile.ZipFile, "__init__", init)
    monkeypatch.setattr(zipfile.ZipFile, "close", close)
    rep = run(store, folder)
    assert rep.sources == 40 and rep.files["PERSON"].accepted == 40
    assert most[0] == 1 and not open_now


def test_store_from_an_older_version_with_a_hash_column_still_imports(store: Staging, tmp_path: Path) -> None:
    store.con.execute("ALTER TABLE f43_person ADD COLUMN _hash UBIGINT")  # as stores made before 0.2 have it
    z = write_zip(tmp_path / "F43_10699_202501.zip", {"PERSON.txt": text("PERSON", [person("1", 1)])})
    assert run(store, z).files["PERSON"].accepted == 1
    z2 = write_zip(tmp_path / "F43_10699_202502.zip", {"PERSON.txt": text("PERSON", [person("1", 1)])})
    rep = run(store, z2)  # the same row again: compaction compares content without the stored hash
    assert rep.files["PERSON"].unchanged == 1 and rep.files["PERSON"].inserted == 0
    assert store.row("SELECT count(*) FROM f43_person")[0] == 1


def test_batches_of_whole_row_groups_and_joined_pieces_import_the_same(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches cut at row-group multiples (the rest leading the next batch) and buffers whose small
    pieces are joined give the same staging rows and quarantine as one batch per 43-file."""
    from phrsync.f43 import importer

    zips = []
    for month in range(1, 7):
        rows = [service(f"S{month}-{i}", str(i), i) for i in range(1, 6)]
        rows[2] = service(f"S{month}-3", "3", 3, CID="1270000000010")  # a bad check digit: quarantined
        zips.append(write_zip(tmp_path / f"F43_10699_2025{month:02d}.zip", {
            "service.txt": text("SERVICE", rows),
            "person.txt": text("PERSON", [person(str(i), i) for i in range(1, 4)]),
        }))

    def outcome(store_path: Path) -> tuple[list[tuple], list[tuple]]:
        with Staging(store_path) as s:
            run(s, *zips)
            staged = sorted((tuple(r.values()) for f in ("SERVICE", "PERSON") for r in staged_rows(s, f)), key=repr)
            q = sorted((e["file"], e["source"], e["line"], e["field"], e["rule"]) for e in quarantine(s))
            return staged, q

    whole = outcome(tmp_path / "whole.duckdb")
    sizes: list[int] = []
    check = importer.Importer._check_batch

    def spy(self: importer.Importer, key: importer.BufKey, table) -> None:  # type: ignore[no-untyped-def]
        sizes.append(table.num_rows)
        check(self, key, table)

    monkeypatch.setattr(importer, "ROW_GROUP", 4)
    monkeypatch.setattr(importer, "CHECK_ROWS", 4)
    monkeypatch.setattr(importer, "MAX_PIECES", 2)
    monkeypatch.setattr(importer.Importer, "_check_batch", spy)
    assert outcome(tmp_path / "cut.duckdb") == whole
    assert whole[1] and len(sizes) > 4
    # every batch but the last of each 43-file (flushed when the import ends) is whole row groups
    assert sum(1 for n in sizes if n % 4) <= 2


def test_a_shifted_line_is_filed_under_the_export_facility_not_its_first_item(store: Staging,
                                                                                tmp_path: Path) -> None:
    """A line whose first item is not a facility code (here a citizen ID, as when columns are shifted)
    must not put that item, unmasked, in the quarantine's facility column."""
    header, good = text("SERVICE", [service("S1", "1", 1)]).splitlines()
    body = "\r\n".join([header, good, f"{cid(2)}|2|S2", "x" * 10_000 + "|1"]) + "\r\n"
    run(store, write_zip(tmp_path / "F43_10699_202501.zip", {"service.txt": body}))
    entries = [e for e in quarantine(store) if e["rule"] == "truncated_line"]
    assert [e["line"] for e in entries] == [3, 4]
    assert {e["hospcode"] for e in entries} == {"10699"}


def test_zips_inside_a_batch_zip_are_read_and_a_broken_one_is_named(store: Staging, tmp_path: Path) -> None:
    """A batch zip of facility zips was skipped without a word: every row in it was lost."""
    inner = write_zip(tmp_path / "F43_10699_202501.zip", {"service.txt": text("SERVICE", [service("S1", "1", 1)])})
    qof = write_zip(tmp_path / "QOF_10699_202501.zip", {"service.txt": text("SERVICE", [service("S1", "1", 1)])})
    batch = tmp_path / "in" / "batch_202501.zip"
    batch.parent.mkdir()
    with zipfile.ZipFile(batch, "w") as z:
        z.write(inner, "exports/" + inner.name)
        z.write(qof, qof.name)  # the same rows with header lines: not read twice
        z.writestr("F43_10700_202501.zip", b"PK\x03\x04 cut short")
    rep = run(store, batch.parent)
    assert rep.files["SERVICE"].accepted == 1 and rep.files["SERVICE"].inserted == 1
    (row,) = staged_rows(store, "SERVICE")
    assert row["_source"] == "batch_202501.zip:F43_10699_202501.zip:service.txt"
    (e,) = quarantine(store)
    assert (e["rule"], e["source"]) == ("bad_zip", "batch_202501.zip:F43_10700_202501.zip")
    assert rep.exit_code == Exit.REFUSED and [n.source for n in rep.not_imported] == [e["source"]]
    # fingerprinted as one export, which did not load whole: read again (not skipped), its entry replaced
    again = run(store, batch.parent)
    assert again.skipped == 0 and again.sources == 1 and again.exit_code == Exit.REFUSED
    assert [q["rule"] for q in quarantine(store)] == ["bad_zip"]
    assert len(list(staged_rows(store, "SERVICE"))) == 1


def test_reading_commands_on_a_missing_or_busy_store_say_so_without_a_traceback(tmp_path: Path) -> None:
    missing = str(tmp_path / "none.duckdb")
    for args in (["quarantine", "list"], ["quarantine", "summary"], ["staging"]):
        res = CliRunner().invoke(cli, [*args, "--staging", missing, "--json"])
        assert res.exit_code == 2, res.exception
        assert "run phrsync import first" in res.output and not (tmp_path / "none.duckdb").exists()
    busy = tmp_path / "busy.duckdb"
    Staging(busy).close()
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); sys.stdin.read()", str(busy)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"  # as an import would
        res = CliRunner().invoke(cli, ["quarantine", "summary", "--staging", str(busy)])
    finally:
        holder.communicate("")
    assert res.exit_code == 7 and "cannot open staging store" in res.output, res.exception  # STORE
