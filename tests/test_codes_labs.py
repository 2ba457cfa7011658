"""``phrsync codes import-labs``: a facility's lab codes → lab_map (bulk, replacing, reviewed rows kept), bad rows
named by file, line, field and reason, Excel as well as CSV, and the names feeding ``codes unmapped``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from phrsync.cli import cli
from phrsync.errors import UsageError
from phrsync.phr.buildfile import BuildSummary, write_summary
from phrsync.terminology.codestore import CodeStore, load_lab_codes
from phrsync.terminology.labimport import import_labs
from phrsync.terminology.review import accept, unmapped

H = "03001"


@pytest.fixture
def store(tmp_path: Path) -> CodeStore:
    s = CodeStore(tmp_path / "codes.sqlite")
    yield s
    s.close()


def _csv(tmp_path: Path, text: str, name: str = "labs.csv") -> Path:
    f = tmp_path / name
    f.write_text(text, encoding="utf-8")
    return f


def test_import_maps_by_labtest_two_digit_and_loinc(tmp_path: Path, store: CodeStore) -> None:
    f = _csv(tmp_path, "code,labtest,loinc,name\nFBS,0531002,,FBS\nA1C,05,,HbA1c\nCR,,2160-0,Creatinine\n"
                       "XX,,,Some local test\n")
    res = import_labs(store, f, H, today=dt.date(2026, 12, 7))
    assert res.rows == {H: 4} and res.names_only == 1 and res.issues.count == 0
    assert load_lab_codes(store.path) == {(H, "FBS"): "0531002", (H, "A1C"): "0531601", (H, "CR"): "0581902"}
    rows = {r["code"]: r for r in store.lab_rows()}
    assert rows["CR"]["loinc"] == "2160-0" and rows["XX"]["labcode"] == "" and rows["XX"]["name"] == "Some local test"
    assert rows["FBS"]["source"] == "lab list: labs.csv (นำเข้า / imported 2026-12-07)"


def test_bad_rows_are_named_and_left_out(tmp_path: Path, store: CodeStore) -> None:
    f = _csv(tmp_path, "code,labtest,loinc,name,hcode\n"
                       "OK,0531002,,,\n"           # 2
                       ",0531002,,,\n"             # 3 no code
                       "B1,1234567,,,\n"           # 4 not in lab_loinc
                       "B2,,45484,,\n"             # 5 malformed LOINC
                       "B3,,1-8,,\n"               # 6 LOINC not in lab_loinc
                       "B4,0531002,4548-4,,\n"     # 7 LOINC disagrees with labtest
                       "B5,,,,\n"                  # 8 nothing to map
                       "B6,0531002,,,1070\n"       # 9 bad hcode
                       "B7,0531002,,,10700\n")     # 10 not --facility
    res = import_labs(store, f, H)
    texts = [i.text for i in res.issues.rows]
    assert res.issues.count == 8 and res.rows == {H: 1}
    for line, fld in ((3, "code"), (4, "labtest"), (5, "loinc"), (6, "loinc"), (7, "loinc"), (8, "labtest"),
                      (9, "hcode"), (10, "hcode")):
        assert any(f"labs.csv line {line} field {fld}:" in t for t in texts), (line, texts)
    assert any("บรรทัด 4 ช่อง labtest" in t and "lab_loinc" in t for t in texts)  # Thai first
    assert any("4548-4" in t and "0531002" in t for t in texts)


def test_reimport_replaces_facility_rows_and_keeps_reviewed(tmp_path: Path, store: CodeStore) -> None:
    import_labs(store, _csv(tmp_path, "code,labtest\nFBS,0531002\nOLD,0531601\n"), H)
    import_labs(store, _csv(tmp_path, "code,labtest\nP1,0531002\n"), None)  # province-wide stays apart
    accept(store, "lab", H, "REV", "0581902", "lab lead")
    accept(store, "lab", H, "REV2", "0581902", "lab lead")
    res = import_labs(store, _csv(tmp_path, "code,labtest,name\nFBS,0531004,\nREV,0531002,\nREV2,,Creat\n"), H)
    assert res.kept_reviewed == {H: 1}  # REV2: a name-only row does not replace the reviewed mapping
    codes = load_lab_codes(store.path)
    assert codes == {(H, "FBS"): "0531004", (H, "REV"): "0531002", (H, "REV2"): "0581902", ("", "P1"): "0531002"}
    assert (H, "OLD") not in codes  # gone with the earlier import


def test_a_file_without_usable_rows_changes_nothing(tmp_path: Path, store: CodeStore) -> None:
    import_labs(store, _csv(tmp_path, "code,labtest\nFBS,0531002\n"), H)
    with pytest.raises(UsageError, match="no usable lab rows"):
        import_labs(store, _csv(tmp_path, "code,labtest\nFBS,nope\n", "b.csv"), H)
    with pytest.raises(UsageError, match="no code column"):
        import_labs(store, _csv(tmp_path, "labtest,name\n0531002,x\n", "c.csv"), H)
    with pytest.raises(UsageError, match="5 characters"):
        import_labs(store, _csv(tmp_path, "code,labtest\nFBS,0531002\n", "d.csv"), "1")
    assert load_lab_codes(store.path) == {(H, "FBS"): "0531002"}


def test_xlsx(tmp_path: Path, store: CodeStore) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(["Code", "LabTest", "Name", "HCode"])
    ws.append([101, 531002, "FBS", H])  # Excel numbers: 531002 lost its leading 0 → not a lab code
    ws.append(["102", "0531601", "HbA1c", H])
    f = tmp_path / "labs.xlsx"
    wb.save(f)
    res = import_labs(store, f)
    assert res.rows == {H: 1} and res.issues.count == 1
    assert "labs.xlsx line 2 field LabTest" in res.issues.rows[0].text
    assert load_lab_codes(store.path) == {(H, "102"): "0531601"}


def test_cli_and_names_feed_suggestions(tmp_path: Path) -> None:
    run = CliRunner().invoke
    db = str(tmp_path / "c.sqlite")
    f = _csv(tmp_path, "code,labtest,name\nFBS,0531002,\nGLU,,Glucose serum plasma\nBAD,9,\n")
    r = run(cli, ["codes", "import-labs", str(f), "--facility", H, "--store", db, "--json"])
    assert r.exit_code == 1, r.output  # one bad row
    d = json.loads(r.stdout)
    assert d["rows"] == {H: 2} and d["names_only"] == 1 and d["bad_rows"] == 1
    assert "labs.csv line 4 field labtest" in d["bad_row_examples"][0]["text"]
    r = run(cli, ["codes", "import-labs", str(f), "--facility", H, "--store", db])
    assert r.exit_code == 1 and "มีแต่ชื่อ" in r.stdout and "labs.csv line 4" in r.stdout
    assert run(cli, ["codes", "import-labs", "--help"]).exit_code == 0
    build = tmp_path / "p.ndjson"
    build.write_bytes(b"")
    write_summary(build, BuildSummary(built_at=dt.datetime(2025, 1, 1), unmapped=[
        {"kind": "lab", "hospcode": H, "code": "GLU", "name": None, "payloads": 3, "waiting": 0},
        {"kind": "lab", "hospcode": H, "code": "FBS", "name": None, "payloads": 2, "waiting": 0}]))
    with CodeStore(db) as s:
        rows = unmapped(BuildSummary(built_at=dt.datetime(2025, 1, 1), unmapped=[
            {"kind": "lab", "hospcode": H, "code": "GLU", "name": None, "payloads": 3, "waiting": 0},
            {"kind": "lab", "hospcode": H, "code": "FBS", "name": None, "payloads": 2, "waiting": 0}]), s)
    assert [r.code for r in rows] == ["GLU"]  # FBS is mapped now; GLU (name only) is still to review
    assert rows[0].suggestions and rows[0].suggestions[0].code == "0531002"
    r = run(cli, ["codes", "unmapped", "--build", str(build), "--store", db, "--kind", "lab", "--json"])
    assert [x["code"] for x in json.loads(r.stdout)["rows"]] == ["GLU"]
