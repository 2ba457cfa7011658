"""The staging store's read API (phrsync.f43.read), import as a library (phrsync.f43.api), and the errors a wrong
path or facility gives instead of an empty success."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from f43files import cid, person, service, text, write_zip

from phrsync.cli import cli
from phrsync.errors import Exit, NotFoundError, SourceError, StoreError, UsageError
from phrsync.f43 import aggregates, api, read
from phrsync.f43.hdc import HDCError
from phrsync.f43.read import DayCount, QuarantineCount, Selection
from phrsync.f43.staging import Staging, StagingError

TODAY = dt.date(2026, 11, 25)
H = "10699"
BAD_CID = "1234567890123"  # fails its check digit: quarantined, and never shown whole


def _admission(an: str, pid: str, n: int, admit: str) -> dict[str, str]:
    return {"HOSPCODE": H, "PID": pid, "SEQ": "S1", "AN": an, "DATETIME_ADMIT": admit, "WARDADMIT": "00001",
            "INSTYPE": "0100", "TYPEIN": "1", "DATETIME_DISCH": "20250108100000", "WARDDISCH": "00001",
            "DISCHSTATUS": "1", "DISCHTYPE": "1", "PRICE": "1000.00", "PAYPRICE": "0", "ACTUALPAY": "0",
            "D_UPDATE": "20250108120000", "CID": cid(n)}


@pytest.fixture
def exports(tmp_path: Path) -> Path:
    """Two facilities: 10699 with visits on two days and an admission, 10700 with one visit and a bad CID."""
    d = tmp_path / "exports"
    d.mkdir()
    write_zip(d / "F43_10699_202501.zip", {
        "person.txt": text("PERSON", [person("1", 1), person("2", 2)]),
        "service.txt": text("SERVICE", [service("S1", "1", 1), service("S2", "2", 2),
                                        service("S3", "1", 1, DATE_SERV="20250106")]),
        "admission.txt": text("ADMISSION", [_admission("680000001", "1", 1, "20250106080000")]),
    })
    write_zip(d / "F43_10700_202501.zip", {
        "person.txt": text("PERSON", [person("1", 3, HOSPCODE="10700"), person("2", 4, HOSPCODE="10700", CID=BAD_CID)]),
        "service.txt": text("SERVICE", [service("S9", "1", 3, HOSPCODE="10700", MAIN="10700")]),
    })
    return d


@pytest.fixture
def store(exports: Path, tmp_path: Path) -> Path:
    path = tmp_path / "staging.duckdb"
    rep = api.import_sources(path, [exports], today=TODAY)
    assert rep.files["SERVICE"].accepted == 4 and rep.rows_quarantined == 1
    return path


def test_facilities_and_encounter_counts_per_facility_and_day(store: Path) -> None:
    with Staging(store, read_only=True) as st:
        assert read.facilities(st) == [H, "10700"]
        assert read.encounter_counts(st) == [
            DayCount(H, dt.date(2025, 1, 5), 2, 0), DayCount(H, dt.date(2025, 1, 6), 1, 1),
            DayCount("10700", dt.date(2025, 1, 5), 1, 0)]
        one_day = Selection((H,), dt.date(2025, 1, 6), dt.date(2025, 1, 6))
        assert read.encounter_counts(st, one_day) == [DayCount(H, dt.date(2025, 1, 6), 1, 1)]
        assert read.encounters_per_day(st.con, Selection()) == [(dt.date(2025, 1, 5), 3), (dt.date(2025, 1, 6), 2)]
        assert read.encounter_days(st, Selection(("10700",))) == [dt.date(2025, 1, 5)]
        assert read.row_counts(st)["SERVICE"] == 4 and read.row_counts(st)["PERSON"] == 3


def test_quarantine_rows_are_filtered_and_masked(store: Path) -> None:
    with Staging(store, read_only=True) as st:
        (row,) = read.quarantine_rows(st, facility="10700")
        assert (row.file, row.field, row.rule, row.severity) == ("PERSON", "CID", "cid_checksum", "error")
        assert BAD_CID not in json.dumps(row.to_dict()) and row.value  # masked, but still there to review
        assert read.quarantine_rows(st, facility=H) == []
        assert read.quarantine_rows(st, rule="cid_checksum", limit=0) == []
        assert read.quarantine_summary(st) == [QuarantineCount("10700", "PERSON", "cid_checksum", "error", 1)]


def test_require_facilities_names_the_unknown_one(store: Path) -> None:
    with Staging(store, read_only=True) as st:
        assert read.require_facilities(st, ["10700,10699", " 10699 "]) == (H, "10700")
        assert read.require_facilities(st, []) == ()
        with pytest.raises(NotFoundError, match="99999") as e:
            read.require_facilities(st, [H, "99999"])
        assert e.value.exit_code == Exit.USAGE and "no facility 99999 in the staging store" in str(e.value)
        assert "10699" in str(e.value)  # the hint lists what is there
        with pytest.raises(UsageError, match="1069"):
            read.require_facilities(st.con, ["1069"])


def test_quarantine_list_of_an_unknown_facility_is_an_error_not_an_empty_list(store: Path) -> None:
    for args in (["quarantine", "list", "--facility", "99999"], ["quarantine", "summary", "--facility", "99999"]):
        res = CliRunner().invoke(cli, [*args, "--staging", str(store), "--json"])
        assert res.exit_code == 2, res.output
        assert "no facility 99999 in the staging store" in res.output and "ไม่มีหน่วยบริการ 99999" in res.output
    res = CliRunner().invoke(cli, ["quarantine", "list", "--facility", "10700", "--staging", str(store), "--json"])
    assert res.exit_code == 0 and [e["rule"] for e in json.loads(res.output)] == ["cid_checksum"]
    res = CliRunner().invoke(cli, ["quarantine", "list", "--facility", H, "--staging", str(store), "--json"])
    assert res.exit_code == 0 and json.loads(res.output) == []  # a facility with nothing quarantined: empty, rightly
    res = CliRunner().invoke(cli, ["quarantine", "list", "--file", "SERVIS", "--staging", str(store)])
    assert res.exit_code == 2 and "unknown 43-file SERVIS" in res.output


@pytest.mark.parametrize("name", ["no/such/path", "README.md", "empty"])
def test_import_of_no_export_is_an_error_and_creates_nothing(tmp_path: Path, name: str) -> None:
    (tmp_path / "README.md").write_text("# not an export\n", encoding="utf-8")
    (tmp_path / "empty").mkdir()
    target = tmp_path / name
    staging = tmp_path / "data" / "staging.duckdb"
    res = CliRunner().invoke(cli, ["import", str(target), "--staging", str(staging)])
    assert res.exit_code == 2, res.output
    assert str(target) in res.output and "accepted: a 43-file zip" in res.output and "ผิดพลาด" in res.output
    assert not staging.exists() and not staging.parent.exists()


def test_a_wrong_path_leaves_an_existing_store_as_it_was(store: Path, tmp_path: Path) -> None:
    with Staging(store, read_only=True) as st:
        before = (st.query("SELECT count(*) FROM quarantine"), st.query("SELECT count(*) FROM imports"))
    with pytest.raises(NotFoundError):
        api.import_sources(store, [tmp_path / "missing.zip"])
    notes = tmp_path / "notes.txt"
    notes.write_text("not a 43-file\n", encoding="utf-8")
    for wrong in (store, notes):  # the store itself, a .txt that names no 43-file
        with pytest.raises(UsageError, match="not a 43-file export"):
            api.import_sources(store, [wrong])
    with Staging(store, read_only=True) as st:
        assert (st.query("SELECT count(*) FROM quarantine"), st.query("SELECT count(*) FROM imports")) == before
        assert "not_found" not in {r.rule for r in read.quarantine_rows(st, limit=1000)}


def test_import_sources_is_the_command_as_a_function(exports: Path, tmp_path: Path) -> None:
    seen: list[tuple[str, int, int]] = []
    path = tmp_path / "s.duckdb"
    rep = api.import_sources(path, [exports], progress=lambda label, done, total: seen.append((label, done, total)),
                             today=TODAY)
    assert rep.sources == 2 and rep.to_dict()["rows_loaded"] == rep.to_dict()["rows_read"] - 1
    assert [s[1:] for s in seen] == [(1, 2), (2, 2)]
    again = api.import_sources(path, [exports], today=TODAY)
    assert again.skipped == 2 and again.rows_read == 0
    assert api.import_sources(path, [exports], force=True, today=TODAY).sources == 2
    assert api.quarantine_summary(path)[0].count == 1  # a forced re-import replaces its own entries
    summary = api.staging_summary(path)
    assert summary.rows["SERVICE"] == 4 and [i.status for i in summary.imports] == ["done"] * 3
    assert json.loads(json.dumps(summary.to_dict()))["imports"][0]["id"] == 3
    res = CliRunner().invoke(cli, ["staging", "--staging", str(path), "--json"])
    assert res.exit_code == 0 and json.loads(res.output) == json.loads(json.dumps(summary.to_dict()))
    with pytest.raises(UsageError, match="--hdc only"):
        api.import_sources(path, [exports], since=dt.datetime(2025, 1, 1))
    with pytest.raises(UsageError, match="PATHS"):
        api.import_sources(path)
    with pytest.raises(UsageError, match="not both"):
        api.import_sources(path, [exports], hdc_url="mysql+pymysql://hdc@127.0.0.1:1/hdc")
    loose = tmp_path / "service.txt"  # one 43-file .txt on its own is an export too
    loose.write_text(text("SERVICE", [service("S7", "1", 1)]), encoding="utf-8")
    assert api.import_sources(path, [loose], today=TODAY).files["SERVICE"].inserted == 1
    with pytest.raises(NotFoundError, match="run phrsync import first"):
        api.staging_summary(tmp_path / "none.duckdb")
    assert not (tmp_path / "none.duckdb").exists()


def test_errors_carry_their_own_exit_codes() -> None:
    """HDC failing is a source error (6), not "undelivered" (3); a store that cannot be opened is 7."""
    assert issubclass(HDCError, SourceError) and HDCError("x").exit_code == Exit.SOURCE == 6
    assert issubclass(StagingError, StoreError) and StagingError("x").exit_code == Exit.STORE == 7
    with pytest.raises(HDCError) as e:
        api.import_sources("unused.duckdb", hdc_url="postgresql://u@h/db")
    assert e.value.th and e.value.en and "MySQL" in e.value.en
    assert not Path("unused.duckdb").exists()


# -- the summary table of encounters per facility and day (what the monitoring web reads) ----------

def test_the_summary_table_holds_what_counting_the_visits_gives(store: Path) -> None:
    with Staging(store, read_only=True) as st:
        assert read.encounter_day_totals(st) == read.encounter_counts(st)
        one_day = Selection((H,), dt.date(2025, 1, 6), dt.date(2025, 1, 6))
        assert read.encounter_day_totals(st, one_day) == [DayCount(H, dt.date(2025, 1, 6), 1, 1)]
        assert read.quarantine_counts(st) == {"10700": 1}  # the person row with a bad CID


def test_the_summary_table_follows_a_later_import(store: Path, tmp_path: Path) -> None:
    """A newer version of a visit that moves it to another day, and a new visit, of one facility: that facility's
    days are recomputed and the other facility's are left as they were."""
    d = tmp_path / "later"
    d.mkdir()
    write_zip(d / "F43_10699_202502.zip", {"service.txt": text("SERVICE", [
        service("S1", "1", 1, DATE_SERV="20250107", D_UPDATE="20250201120000"),
        service("S4", "2", 2, DATE_SERV="20250107", D_UPDATE="20250201120000")])})
    api.import_sources(store, [d], today=TODAY)
    with Staging(store, read_only=True) as st:
        got = read.encounter_day_totals(st)
        assert got == read.encounter_counts(st)
        assert got == [DayCount(H, dt.date(2025, 1, 5), 1, 0), DayCount(H, dt.date(2025, 1, 6), 1, 1),
                       DayCount(H, dt.date(2025, 1, 7), 2, 0), DayCount("10700", dt.date(2025, 1, 5), 1, 0)]


def test_a_store_made_before_the_summary_table_is_counted_then_gets_it(store: Path) -> None:
    with duckdb.connect(str(store)) as con:
        con.execute("DROP TABLE agg_encounter_days")
    with Staging(store, read_only=True) as st:  # read-only: cannot add it, counts the visits instead
        assert not aggregates.exists(st.con)
        assert read.encounter_day_totals(st) == read.encounter_counts(st)
    with Staging(store) as st:  # the first read-write open builds it
        assert aggregates.exists(st.con)
        assert st.query(f"SELECT count(*) FROM {aggregates.TABLE}") == [(3,)]
        assert read.encounter_day_totals(st) == read.encounter_counts(st)


def test_a_writer_waits_a_moment_for_a_reader_and_a_reader_does_not(store: Path) -> None:
    """The web holds the file read-only for milliseconds: an import that starts then waits instead of failing. A
    reader is told at once that an import holds it (``locked``), so a page never waits for an import."""
    code = ("import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == 'ro'); "
            "print('held', flush=True); time.sleep(float(sys.argv[3]))")
    holder = subprocess.Popen([sys.executable, "-c", code, str(store), "ro", "0.6"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StagingError) as e:
            Staging(store, lock_wait=0)
        assert e.value.locked and "staging" in str(e.value)
        t0 = time.monotonic()
        with Staging(store) as st:  # waits for the reader to let go
            assert st.query("SELECT count(*) FROM imports")[0][0] == 1
        assert time.monotonic() - t0 < 5
    finally:
        holder.wait()
    holder = subprocess.Popen([sys.executable, "-c", code, str(store), "rw", "3"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        with pytest.raises(StagingError) as e:
            Staging(store, read_only=True)
        assert e.value.locked and time.monotonic() - t0 < 1
    finally:
        holder.kill()
        holder.wait()
