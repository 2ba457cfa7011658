"""KPI 54 arithmetic on a hand-made population, the imports (columns, bad rows, personnel exclusions), and the
denominators' labels (imported extract vs the 43-file fallback)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from f43files import cid, person, text, write_zip

from phrsync.cli import cli
from phrsync.did import kpi
from phrsync.did.population import SOURCE_LABELS, import_file, load_fallback, read_people, sample_per_district
from phrsync.did.report import build_report, followup, to_csv, to_xlsx
from phrsync.did.store import CITIZEN, PERSONNEL, SOURCE_F43, SOURCE_IMPORT, DidStore, Person
from phrsync.errors import NotFoundError, UsageError

NAMES = {"2701": ("เมืองสระแก้ว", "Mueang Sa Kaeo"), "2705": ("วัฒนานคร", "Watthana Nakhon")}


def test_pct_rounds_half_up_to_two_decimals_as_the_sa_kaeo_report() -> None:
    assert kpi.pct(26_932, 537_792) == 5.01
    assert kpi.pct(2_935, 3_346) == 87.72
    assert kpi.pct(1, 8) == 12.5  # exactly 12.5
    assert kpi.pct(1, 800) == 0.13  # 0.125 rounds half up (banker's rounding would give 0.12)
    assert kpi.pct(0, 10) == 0.0
    assert kpi.pct(5, 0) is None  # nobody counted: not 0 %


def test_fiscal_year_and_quarters() -> None:
    assert kpi.fiscal_year(dt.date(2026, 9, 30)) == 2026
    assert kpi.fiscal_year(dt.date(2026, 10, 1)) == 2027
    assert kpi.fiscal_year_be(dt.date(2026, 10, 1)) == 2570
    assert [kpi.fiscal_quarter(dt.date(2027, m, 1)) for m in (10, 12, 1, 3, 4, 6, 7, 9)] == [1, 1, 2, 2, 3, 3, 4, 4]
    t = kpi.Targets()
    assert t.for_quarter(1) == ("6m", 25.0, 10.0) and t.for_quarter(2) == ("6m", 25.0, 10.0)
    assert t.for_quarter(3) == ("12m", 50.0, 25.0) and t.for_quarter(4) == ("12m", 50.0, 25.0)


def test_district_table_and_province_total_row() -> None:
    citizens = [kpi.Count("2701", 1000, 120, 1000), kpi.Count("2705", 3, 1, 3), kpi.Count(None, 7, 0, 7)]
    personnel = [kpi.Count("2701", 40, 30, 40), kpi.Count("2705", 8, 1, 8)]
    q2 = kpi.compute(citizens, personnel, NAMES, kpi.Targets(), dt.date(2027, 2, 1))
    assert [r.code for r in q2.rows] == ["2701", "2705", None, None]
    mueang, watthana, unknown, total = q2.rows
    assert (mueang.citizens_pct, mueang.citizens_pass) == (12.0, True)  # ≥ 10 % by 6 months
    assert (mueang.personnel_pct, mueang.personnel_pass) == (75.0, True)
    assert (watthana.citizens_pct, watthana.personnel_pct) == (33.33, 12.5)
    assert watthana.personnel_pass is False
    assert unknown.name == "ไม่ทราบอำเภอ" and unknown.personnel_pct is None and unknown.personnel_pass is None
    # the province adds numerators and denominators, it does not average percentages
    assert total.total and (total.citizens, total.citizens_did) == (1010, 121)
    assert total.citizens_pct == 11.98 and (total.personnel, total.personnel_did, total.personnel_pct) == (48, 31, 64.58)
    # the same figures in Q3 are judged against the 12-month targets
    q3 = kpi.compute(citizens, personnel, NAMES, kpi.Targets(), dt.date(2027, 4, 1))
    assert q3.period == "12m" and q3.rows[0].citizens_pass is False and q3.rows[0].personnel_pass is True


def test_a_district_without_people_still_has_its_row() -> None:
    rep = kpi.compute([kpi.Count("2701", 10, 1)], [], NAMES, kpi.Targets(), dt.date(2026, 11, 1))
    assert [r.code for r in rep.rows] == ["2701", "2705", None]
    assert rep.rows[1].citizens == 0 and rep.rows[1].citizens_pct is None


def test_report_from_the_store_matches_the_hand_count(tmp_path: Path) -> None:
    st = DidStore(f"sqlite:///{tmp_path / 's.sqlite'}")
    people = [Person(cid(i), "10699", "2701", f"คน {i}") for i in range(1, 11)]
    people += [Person(cid(i), "77702", "2705", f"คน {i}") for i in range(11, 14)]
    st.replace_people(CITIZEN, SOURCE_IMPORT, people, file="nhso.csv")
    st.replace_people(PERSONNEL, SOURCE_F43, [Person(cid(1), "10699", "2701", "คน 1")], file="43")
    for i in (1, 2, 11):
        st.record_answer(cid(i), 1, "sandbox", 1)
    st.record_answer(cid(3), 0, "sandbox", 1)
    rep = build_report(st, kpi.Targets(), dt.date(2026, 11, 1))
    m = rep.rows[0]
    assert (m.citizens, m.citizens_did, m.citizens_checked, m.citizens_pct) == (10, 2, 3, 20.0)
    assert (m.personnel, m.personnel_did, m.personnel_pct) == (1, 1, 100.0)  # one answer serves both lists
    assert rep.total.citizens == 13 and rep.total.citizens_did == 3 and rep.total.citizens_pct == 23.08
    assert rep.citizens_source == SOURCE_LABELS[(CITIZEN, SOURCE_IMPORT)]
    assert rep.personnel_source == SOURCE_LABELS[(PERSONNEL, SOURCE_F43)]
    assert rep.citizens_source != SOURCE_LABELS[(CITIZEN, SOURCE_F43)]
    csv_text = to_csv(rep)
    assert "รวมทั้งจังหวัด" in csv_text and "23.08" in csv_text and "NHSO registry" in csv_text
    import openpyxl

    wb = openpyxl.load_workbook(to_xlsx(rep, tmp_path / "r.xlsx"))
    cells = [c for row in wb.active.iter_rows(values_only=True) for c in row]
    assert "รวมทั้งจังหวัด" in cells and 23.08 in cells
    # the follow-up list: who is still without one, masked
    rows = followup(st, "10699")
    assert len(rows) == 8 and all("xxxxx" in r.cid_masked for r in rows)
    assert cid(1) not in json.dumps([r.__dict__ for r in rows], ensure_ascii=False)
    st.close()


def test_followup_refuses_another_facilitys_user(tmp_path: Path) -> None:
    from phrsync.web.auth import Forbidden, User

    st = DidStore(f"sqlite:///{tmp_path / 's.sqlite'}")
    st.replace_people(CITIZEN, SOURCE_IMPORT, [Person(cid(1), "10699", "2701", "ก")], file="x.csv")
    assert len(followup(st, "10699", User("a", "facility", facility="10699"))) == 1
    assert len(followup(st, "10699", User("d", "district", district="2701"))) == 1
    with pytest.raises(Forbidden):
        followup(st, "10699", User("b", "facility", facility="77702"))
    with pytest.raises(Forbidden):
        followup(st, "10699", User("d", "district", district="2705"))
    st.close()


def _csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    return path


def test_population_import_tolerates_thai_headers_and_reports_bad_rows(tmp_path: Path) -> None:
    f = _csv(tmp_path / "nhso.csv", [
        "เลขบัตรประชาชน,ชื่อ,นามสกุล,รหัสหน่วยบริการ,สิทธิหลัก",
        f"{cid(1)},สมชาย,ใจดี,10699,UCS",
        f"{cid(2)[:1]}-{cid(2)[1:5]}-{cid(2)[5:10]}-{cid(2)[10:12]}-{cid(2)[12]},สมหญิง,ใจดี,10699,OFC",
        "1234567890123,ผิด,เลข,10699,UCS",  # check digit wrong
        f"{cid(3)},ไม่มี,หน่วย,1234,UCS",  # 4 digits: zero-padded to 01234 (unknown facility: no district)
        f"{cid(1)},ซ้ำ,ซ้ำ,10699,UCS",
        f"{cid(4)},ผิด,หน่วย,ABC-1,UCS",
    ])
    people, res = read_people(f, CITIZEN)
    assert [p.cid for p in people] == [cid(1), cid(2), cid(3)]
    assert people[0].district == "2701" and people[0].name == "สมชาย ใจดี" and people[0].rights == "UCS"
    assert people[2].hospcode == "01234" and people[2].district is None and res.no_district == 1
    assert res.duplicates == 1
    assert [(p.line, p.field) for p in res.problems] == [(4, "CID"), (7, "facility")]
    assert "1234567890123" not in res.problems[0].text() and "check digit" in res.problems[0].text()
    assert res.problems[0].text().startswith("nhso.csv:4: CID")


def test_personnel_import_excludes_per_period_daily_and_contracted(tmp_path: Path) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["CID", "HOSPCODE", "ตำแหน่ง", "ประเภทการจ้าง"])
    ws.append([int(cid(1)), 10699, "พยาบาลวิชาชีพ", "ข้าราชการ"])  # numbers, as a spreadsheet stores them
    ws.append([cid(2), "10699", "ผู้ช่วยเหลือคนไข้", "ลูกจ้างรายวัน"])
    ws.append([cid(3), "10699", "แม่บ้าน", "จ้างเหมาบริการ"])
    ws.append([cid(4), "10699", "แพทย์", "จ้างรายคาบ"])
    ws.append([cid(5), "00214", "นักวิชาการสาธารณสุข", "พนักงานราชการ"])
    wb.save(tmp_path / "hrops.xlsx")
    st = DidStore(f"sqlite:///{tmp_path / 's.sqlite'}")
    from phrsync.settings import DidSection

    res = import_file(st, tmp_path / "hrops.xlsx", PERSONNEL, DidSection().personnel_exclude)
    assert res.accepted == 2 and sum(res.excluded.values()) == 3
    assert res.excluded == {"ลูกจ้างรายวัน": 1, "จ้างเหมาบริการ": 1, "จ้างรายคาบ": 1}
    assert st.count_people(PERSONNEL) == 2 and st.source_of(PERSONNEL) == SOURCE_IMPORT
    assert st.last_import(PERSONNEL).excluded == 3
    rep = build_report(st, kpi.Targets(), dt.date(2026, 11, 1))
    assert rep.total.personnel == 2 and any("3 personnel not counted" in en for _th, en in rep.notes)
    st.close()


def test_import_errors_are_bilingual(tmp_path: Path) -> None:
    st = DidStore(f"sqlite:///{tmp_path / 's.sqlite'}")
    with pytest.raises(NotFoundError):
        import_file(st, tmp_path / "nope.csv", CITIZEN)
    with pytest.raises(UsageError, match="no citizen ID column.*ชื่อ"):
        import_file(st, _csv(tmp_path / "a.csv", ["ชื่อ,hospcode", "ก,10699"]), CITIZEN)
    with pytest.raises(UsageError, match="needs a facility"):
        import_file(st, _csv(tmp_path / "b.csv", ["cid,ชื่อ", f"{cid(1)},ก"]), CITIZEN)
    with pytest.raises(UsageError, match="no usable row.*current list is kept"):
        import_file(st, _csv(tmp_path / "c.csv", ["cid,hospcode", "1,10699"]), CITIZEN)
    st.close()


def test_fallback_from_the_43_files_is_labelled_and_an_import_replaces_it(tmp_path: Path) -> None:
    from phrsync.f43 import api

    d = tmp_path / "exports"
    d.mkdir()
    death = {"HOSPCODE": "10699", "PID": "5", "DDEATH": "20250101", "CDEATH_A": "I21", "CDEATH": "I21",
             "PDEATH": "1", "D_UPDATE": "20250101120000"}
    prov = {"HOSPCODE": "10699", "PROVIDER": "1", "CID": cid(9), "PRENAME": "นาย", "NAME": "ก", "LNAME": "ข",
            "SEX": "1", "BIRTH": "19800101", "PROVIDERTYPE": "01", "STARTDATE": "20200101",
            "D_UPDATE": "20250101120000"}
    write_zip(d / "F43_10699_202501.zip", {
        "person.txt": text("PERSON", [person("1", 1), person("2", 2, TYPEAREA="4"), person("3", 3, NATION="048"),
                                      person("4", 4, DISCHARGE="1"), person("5", 5), person("6", 6, TYPEAREA="3")]),
        "death.txt": text("DEATH", [death]),
        "provider.txt": text("PROVIDER", [prov, {**prov, "PROVIDER": "2", "CID": cid(10), "OUTDATE": "20240101"}]),
    })
    api.import_sources(tmp_path / "staging.duckdb", [d])
    st = DidStore(f"sqlite:///{tmp_path / 's.sqlite'}")
    res = load_fallback(st, tmp_path / "staging.duckdb", CITIZEN)
    assert res.accepted == 2 and st.source_of(CITIZEN) == SOURCE_F43  # persons 1 and 6
    load_fallback(st, tmp_path / "staging.duckdb", PERSONNEL)
    assert st.count_people(PERSONNEL) == 1
    rep = build_report(st, kpi.Targets(), dt.date(2026, 11, 1))
    assert rep.citizens_source == SOURCE_LABELS[(CITIZEN, SOURCE_F43)] and "fallback" in rep.citizens_source[1]
    assert rep.rows[0].citizens == 2 and rep.rows[0].code == "2701"
    import_file(st, _csv(tmp_path / "n.csv", ["cid,hospcode", f"{cid(7)},10699"]), CITIZEN)
    rep = build_report(st, kpi.Targets(), dt.date(2026, 11, 1))
    assert rep.citizens_source == SOURCE_LABELS[(CITIZEN, SOURCE_IMPORT)] and rep.total.citizens == 1
    with pytest.raises(UsageError):
        load_fallback(st, tmp_path / "staging.duckdb", CITIZEN)  # an import wins over the fallback
    st.close()


def test_a_sample_per_district_is_a_fixed_draw_and_every_report_says_so(tmp_path: Path) -> None:
    rows = [Person(cid(i), "10699", "2701" if i % 3 else "2705") for i in range(1, 301)]
    rows.append(Person(cid(999), None, None))
    got = sample_per_district(rows, 40)
    by = {d: [p for p in got if p.district == d] for d in ("2701", "2705", None)}
    assert [len(v) for v in by.values()] == [40, 40, 1]  # 200 and 100 people: 40 each; "no district" kept
    assert {p.cid for p in sample_per_district(list(reversed(rows)), 40)} == {p.cid for p in got}  # order-free
    first = sorted(int(p.cid[5:12]) for p in by["2701"])
    assert first != sorted(int(p.cid[5:12]) for p in rows if p.district == "2701")[:40]  # not the file's head
    st = DidStore(f"sqlite:///{tmp_path / 's.sqlite'}")
    st.replace_people(CITIZEN, SOURCE_F43, got, file="43 แฟ้ม PERSON",
                      summary={"sample": {"per_district": 40, "of": len(rows)}})
    notes = build_report(st, kpi.Targets(), dt.date(2026, 11, 1)).notes
    assert ("citizens: a sample of 40 per district (81 of 301), not the whole list"
            in [en for _th, en in notes])
    st.replace_people(CITIZEN, SOURCE_F43, rows, file="43 แฟ้ม PERSON")  # the whole list: no such note
    assert not any("sample" in en for _th, en in build_report(st, kpi.Targets(), dt.date(2026, 11, 1)).notes)
    st.close()


def test_cli_import_and_report(tmp_path: Path) -> None:
    f = _csv(tmp_path / "nhso.csv", ["cid,district", f"{cid(1)},วัฒนานคร", f"{cid(2)},2701", f"{cid(3)},ไม่มีอำเภอนี้"])
    state = str(tmp_path / "state.sqlite")
    r = CliRunner().invoke(cli, ["did", "import-population", str(f), "--state", state, "--json"])
    assert r.exit_code == 1, r.output  # one bad row: reported, the rest imported
    out = json.loads(r.stdout)
    assert out["accepted"] == 2 and out["rejected"] == 1 and out["problems"][0]["field"] == "district"
    r = CliRunner().invoke(cli, ["did", "report", "--state", state, "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["rows"][-1]["name"] == "รวมทั้งจังหวัด" and rep["rows"][-1]["citizens"] == 2
    assert rep["citizens_source"][1] == "NHSO registry, all rights (imported)"
    assert oct(Path(state).stat().st_mode & 0o777) == "0o600"
    r = CliRunner().invoke(cli, ["did", "report", "--state", state, "--csv"])
    assert r.exit_code == 0 and "วัฒนานคร" in r.stdout and cid(1) not in r.stdout
    r = CliRunner().invoke(cli, ["did", "followup", "10699", "--state", state])
    assert r.exit_code == 0 and cid(1) not in r.output
