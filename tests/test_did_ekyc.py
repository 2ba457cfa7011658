"""The IdP-admin eKYC export as a second numerator source: tolerant headers (Thai, English; counts or status
words; ISO, Buddhist-era and spreadsheet dates), bad rows named by file, line and field with the CID masked, the
per-facility summary refused, kept apart from check_ekyc's answers and combined as "either says so" with each
source's count in the report, its CSV/XLSX/JSON and the follow-up list."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from dbfixtures import postgres_server  # noqa: F401 - a fixture
from f43files import cid

from phrsync.cli import cli
from phrsync.did import kpi
from phrsync.did.ekyc import import_ekyc, parse_day, read_ekyc
from phrsync.did.report import build_report, followup, to_csv, to_xlsx
from phrsync.did.store import CITIZEN, PERSONNEL, SOURCE_IMPORT, DidStore, Person
from phrsync.errors import UsageError

H1, H2 = "10699", "10866"  # เมืองสระแก้ว (2701), 2702
CID_RUN = re.compile(r"(?<![0-9])[0-9]{13}(?![0-9])")


def _store(tmp_path: Path, url: str | None = None) -> DidStore:
    st = DidStore(url or f"sqlite:///{tmp_path / 'state.sqlite'}")
    st.replace_people(CITIZEN, SOURCE_IMPORT, [Person(cid(i), H1, "2701", f"คน {i}") for i in range(1, 11)]
                      + [Person(cid(i), H2, "2702", f"คน {i}") for i in range(11, 21)], file="nhso.csv")
    st.replace_people(PERSONNEL, SOURCE_IMPORT, [Person(cid(i), H1, "2701", f"คน {i}") for i in (1, 2, 30)],
                      file="hrops.csv")
    return st


def test_parse_day_accepts_iso_buddhist_and_christian_slashes_and_spreadsheet_dates() -> None:
    assert parse_day("2024-03-15") == "2024-03-15"
    assert parse_day("2024-03-15 10:22:01") == "2024-03-15"
    assert parse_day("15/03/2567") == "2024-03-15"
    assert parse_day("15/03/2024") == "2024-03-15"
    assert parse_day("5-3-2567") == "2024-03-05"
    assert parse_day(dt.datetime(2024, 3, 15, 9, 0)) == "2024-03-15"
    assert parse_day("") is None and parse_day(None) is None
    for bad in ("31/02/2567", "yesterday", "2567/03/15x"):
        with pytest.raises(ValueError):
            parse_day(bad)


def test_csv_with_thai_headers_counts_statuses_duplicates_and_bad_rows(tmp_path: Path) -> None:
    f = tmp_path / "ekyc.csv"
    bad_cid = cid(5)[:-1] + str((int(cid(5)[-1]) + 1) % 10)
    f.write_text("\n".join([
        "เลขบัตรประชาชน,จำนวน,สถานะ,วันที่ยืนยันตัวตน",
        f"{cid(1)},2,,15/03/2567",          # line 2: a count
        f"{cid(2)},,ยืนยันแล้ว,2024-04-01",  # line 3: a status word
        f"{cid(3)},0,,",                      # line 4: counted, without one
        f"{cid(4)},,ยังไม่ยืนยัน,",            # line 5
        f"{bad_cid},1,,",                     # line 6: check digit
        f"{cid(6)},,maybe,",                  # line 7: unknown status
        f"{cid(7)},1,,32/13/2567",            # line 8: not a date
        f"{cid(8)},-1,,",                     # line 9: a negative count
        f"{cid(3)},1,,2024-05-02",            # line 10: a duplicate that says yes
        "",
    ]), encoding="utf-8-sig")
    rows, res = read_ekyc(f)
    by = {r.cid: r for r in rows}
    assert set(by) == {cid(1), cid(2), cid(3), cid(4)}
    assert by[cid(1)].result == 2 and by[cid(1)].has_did and by[cid(1)].day == "2024-03-15"
    assert by[cid(2)].result is None and by[cid(2)].has_did
    assert by[cid(3)].has_did and by[cid(3)].day == "2024-05-02" and res.duplicates == 1  # either row says yes
    assert not by[cid(4)].has_did
    assert res.with_did == 3 and res.newest_day == "2024-05-02"
    got = {(p.line, p.field) for p in res.problems}
    assert got == {(6, "CID"), (7, "status"), (8, "date"), (9, "count")}
    text = "\n".join(p.text() for p in res.problems)
    assert "ekyc.csv:6: CID" in text and "เลขตรวจสอบ" in text and "check digit" in text
    assert not CID_RUN.search(text)  # the bad CID is masked


def test_xlsx_with_english_headers_and_date_cells(tmp_path: Path) -> None:
    import xlsxwriter

    f = tmp_path / "idp.xlsx"
    wb = xlsxwriter.Workbook(str(f))
    ws = wb.add_worksheet()
    datef = wb.add_format({"num_format": "yyyy-mm-dd"})
    ws.write_row(0, 0, ["No.", "Citizen ID", "eKYC Status", "Verified At"])
    ws.write_row(1, 0, [1, int(cid(1)), "Y"])
    ws.write_datetime(1, 3, dt.datetime(2024, 6, 30), datef)
    ws.write_row(2, 0, [2, cid(2), "N", ""])
    wb.close()
    rows, res = read_ekyc(f)
    assert [(r.cid, r.has_did, r.day) for r in rows] == [(cid(1), True, "2024-06-30"), (cid(2), False, None)]
    assert not res.problems


def test_the_per_facility_summary_and_headerless_files_are_refused(tmp_path: Path) -> None:
    f = tmp_path / "ekyc_hospital_summary_202557.csv"
    f.write_text("ลำดับ,รหัส,ชื่อหน่วยให้บริการ,จำนวนอุปกรณ์,จำนวนคน,จำนวน Token,จำนวนบุคลากร,จำนวนบุคลากร ยืนยัน eKYC\n"
                 "1,10699,รพ.สระแก้ว,3,1200,900,400,380\n", encoding="utf-8")
    with pytest.raises(UsageError) as e:
        read_ekyc(f)
    assert "ekyc_hospital_summary" in str(e.value.th) and "per-facility" in str(e.value.en)
    g = tmp_path / "no-result.csv"
    g.write_text(f"cid,name\n{cid(1)},x\n", encoding="utf-8")
    with pytest.raises(UsageError) as e:
        read_ekyc(g)
    assert "no-result.csv" in str(e.value.en) and "eKYC result" in str(e.value.en)


def test_sources_are_kept_apart_and_combined_as_either(tmp_path: Path) -> None:
    st = _store(tmp_path)
    targets = kpi.Targets()
    # check_ekyc: 1, 2 and 11 have one; 3 and 12 do not
    for i, r in ((1, 1), (2, 1), (11, 1), (3, 0), (12, 0)):
        st.record_answer(cid(i), r, "sandbox", 1)
    rep = build_report(st, targets)
    assert rep.numerator_source[1] == "check_ekyc answers, one person at a time only"
    assert rep.total.citizens_did == 3 and rep.total.citizens_did_ekyc == 0

    f = tmp_path / "ekyc.csv"
    # the export: 2 (also checked yes), 3 (checked no → yes now), 4 (never checked), 13, 30 (personnel); 5 says no
    f.write_text("cid,result,date\n" + "".join(f"{cid(i)},{r},2024-06-0{1 + i % 9}\n"
                                               for i, r in ((2, 1), (3, 2), (4, 1), (13, 1), (30, 1), (5, 0))),
                 encoding="utf-8")
    res = import_ekyc(st, f)
    assert res.accepted == 6 and res.with_did == 5
    assert st.check_of(cid(3))["has_did"] is False  # the check answer is not touched: kept apart
    rep = build_report(st, targets)
    t = rep.total
    # citizens with one: check {1, 2, 11} ∪ export {2, 3, 4, 13} = 6 people, 2 counted once
    assert (t.citizens_did, t.citizens_did_check, t.citizens_did_ekyc) == (6, 3, 4)
    assert t.citizens_pct == 30.0
    # answered: checked {1, 2, 3, 11, 12} ∪ listed {2, 3, 4, 5, 13} = 8
    assert t.citizens_checked == 8
    d1 = next(r for r in rep.rows if r.code == "2701")
    assert (d1.citizens_did, d1.citizens_did_check, d1.citizens_did_ekyc) == (4, 2, 3)
    assert (t.personnel_did, t.personnel_did_check, t.personnel_did_ekyc) == (3, 2, 2)  # 1, 2 checked; 2, 30 listed
    assert "either says so" in rep.numerator_source[1] and "หรือ" in rep.numerator_source[0]
    assert any("ekyc.csv" in en and "6 people" in en for _th, en in rep.notes)
    # the follow-up list leaves out whom the export says has one
    names = {f.name for f in followup(st, H1)}
    assert names == {f"คน {i}" for i in range(5, 11)}  # 1, 2, 3, 4 have one
    # CSV, XLSX and JSON carry the sources
    csv_text = to_csv(rep)
    assert "ตัวตั้ง / numerators" in csv_text and "citizens with DID by the IdP-admin export" in csv_text
    last = csv_text.strip().splitlines()[-1].split(",")
    assert last[-4:] == ["3", "4", "2", "2"]
    to_xlsx(rep, tmp_path / "k.xlsx")
    import openpyxl

    ws = openpyxl.load_workbook(tmp_path / "k.xlsx").active
    assert [c.value for c in list(ws.iter_rows())[-1]][-4:] == [3, 4, 2, 2]
    d = rep.to_dict()
    assert d["rows"][-1]["citizens_did_ekyc"] == 4 and d["numerator_source"][1] == rep.numerator_source[1]
    st.take_snapshot()
    assert sum(s.numerator for s in st.snapshots(CITIZEN)) == 6  # the trend follows the combined figure

    # a newer export replaces the older; a file with no usable row keeps it
    f.write_text(f"cid,status\n{cid(4)},no\n", encoding="utf-8")
    import_ekyc(st, f)
    assert build_report(st, targets).total.citizens_did_ekyc == 0 and st.ekyc_of(cid(3)) is None
    f.write_text("cid,status\n123,yes\n", encoding="utf-8")
    with pytest.raises(UsageError):
        import_ekyc(st, f)
    assert st.ekyc_of(cid(4)) is not None
    st.close()


def test_export_only_is_labelled_as_such(tmp_path: Path) -> None:
    st = _store(tmp_path)
    f = tmp_path / "e.csv"
    f.write_text(f"cid,status\n{cid(1)},ยืนยันแล้ว\n", encoding="utf-8")
    import_ekyc(st, f)
    rep = build_report(st, kpi.Targets())
    assert rep.numerator_source == ("ไฟล์ส่งออกผล eKYC จาก IdP admin (นำเข้า) เท่านั้น (ยังไม่มีผล check_ekyc)",
                                    "IdP-admin eKYC export (imported) only (no check_ekyc answer yet)")
    assert any("no date given" in en for _th, en in rep.notes)
    st.close()


def test_cli_import_ekyc_json_exit_codes_and_report(tmp_path: Path) -> None:
    _store(tmp_path).close()  # the people, in tmp_path/state.sqlite
    state = str(tmp_path / "state.sqlite")
    f = tmp_path / "ekyc.csv"
    f.write_text(f"CID,eKYC\n{cid(1)},1\n{cid(2)},0\nabc,1\n", encoding="utf-8")
    r = CliRunner().invoke(cli, ["did", "import-ekyc", str(f), "--state", state, "--json"])
    assert r.exit_code == 1, r.output  # a bad row: imported the rest, exit 1
    out = json.loads(r.stdout)
    assert out["accepted"] == 2 and out["with_did"] == 1 and out["rejected"] == 1
    assert out["problems"][0]["line"] == 4 and out["label_en"] == "IdP-admin eKYC export (imported)"
    r = CliRunner().invoke(cli, ["did", "report", "--state", state, "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["rows"][-1]["citizens_did_ekyc"] == 1 and "IdP-admin" in rep["numerator_source"][1]
    r = CliRunner().invoke(cli, ["did", "report", "--state", state])
    assert "IdP admin 1" in r.output and "ตัวตั้ง / numerators" in r.output
    r = CliRunner().invoke(cli, ["did", "import-ekyc", "--help"])
    assert r.exit_code == 0 and "IdP" in r.output
    r = CliRunner().invoke(cli, ["did", "import-ekyc", str(tmp_path / "none.csv"), "--state", state])
    assert r.exit_code != 0 and "none.csv" in r.output


def test_the_combined_counts_on_postgresql(tmp_path: Path, postgres_server: str) -> None:  # noqa: F811
    """The same GROUP BY (CASE over two outer joins, booleans) on PostgreSQL, the store a province may run."""
    import os

    from sqlalchemy import create_engine, text

    name = f"phrsync_test_{os.getpid()}_did_ekyc"
    url = postgres_server.rsplit("/", 1)[0] + "/" + name
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    try:
        st = _store(tmp_path, url)
        for i, r in ((1, 1), (2, 1), (11, 1), (3, 0)):
            st.record_answer(cid(i), r, "sandbox", 1)
        f = tmp_path / "e.csv"
        f.write_text("cid,count\n" + "".join(f"{cid(i)},{r}\n" for i, r in ((2, 1), (3, 1), (4, 0), (30, 1))),
                     encoding="utf-8")
        import_ekyc(st, f)
        t = build_report(st, kpi.Targets()).total
        assert (t.citizens_did, t.citizens_did_check, t.citizens_did_ekyc, t.citizens_checked) == (4, 3, 2, 5)
        assert (t.personnel_did, t.personnel_did_check, t.personnel_did_ekyc) == (3, 2, 2)
        assert {f.name for f in followup(st, H1)} == {f"คน {i}" for i in range(4, 11)}
        st.close()
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
