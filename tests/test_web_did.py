"""The monitoring web's Digital ID page on a small real state store: the district table equals
``build_report``'s (the province total row included), KPI pass/fail against the quarter's targets, the
denominators' labels, the trend chart's JSON, the per-facility follow-up list scoped by role on the server (a
facility user gets 403 on another facility's, URL typed by hand included), no full CID anywhere, "not
checked yet" rather than zeros before any check; the CSV/XLSX exports of both tables (what the page shows, same
roles, audited), a district viewer's narrowed table, and the eKYC export's per-source counts."""

from __future__ import annotations

import datetime as dt
import re
from html import unescape
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from f43files import cid
from fastapi.testclient import TestClient

from phrsync.did import kpi
from phrsync.did.report import build_report, trend
from phrsync.did.store import CITIZEN, PERSONNEL, SOURCE_F43, SOURCE_IMPORT, DidStore, Person
from phrsync.thai import BANGKOK
from phrsync.web import model
from phrsync.web.app import WebOptions, create_app
from phrsync.web.auth import ADMIN, DISTRICT, FACILITY, AuthStore

PW = "correct horse battery staple"
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
CID_RUN = re.compile(r"(?<![0-9])[0-9]{13}(?![0-9])")
H1, H1B, H2 = "10699", "00017", "10866"  # H1, H1B in เมืองสระแก้ว (2701); H2 in 2702


def login(c: TestClient, username: str) -> None:
    r = c.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', r.text)
    assert token
    r = c.post("/login", data={"username": username, "password": PW, "csrf": token.group(1)},
               follow_redirects=False)
    assert r.status_code == 303, r.text[:300]


def _app(url: str, names: dict[str, str] | None = None) -> TestClient:
    store = AuthStore(url, hasher=CHEAP)
    for u, role, kw in (("admin1", ADMIN, {}), ("district1", DISTRICT, {"district": "2701"}),
                        ("staff1", FACILITY, {"facility": H1}), ("staff2", FACILITY, {"facility": H2})):
        if u not in {x.username for x in store.users()}:
            store.add_user(u, PW, role, **kw)
    app = create_app(model.Sources(state_url=url, facility_names=names or {}), WebOptions(), store)
    return TestClient(app)


@pytest.fixture()
def url(tmp_path: Path) -> str:
    u = f"sqlite:///{tmp_path / 'state.sqlite'}"
    st = DidStore(u)
    people = [Person(cid(i), H1, "2701", f"คน {i}") for i in range(1, 11)]
    people += [Person(cid(i), H1B, "2701", f"คน {i}") for i in range(11, 15)]
    people += [Person(cid(i), H2, "2702", f"คน {i}") for i in range(15, 21)]
    st.replace_people(CITIZEN, SOURCE_IMPORT, people, file="nhso.csv")
    st.replace_people(PERSONNEL, SOURCE_F43, [Person(cid(i), H1, "2701", f"คน {i}") for i in (1, 2)]
                      + [Person(cid(15), H2, "2702", "คน 15")], file="43")
    st.take_snapshot()
    for i in (1, 2, 3, 11, 15):
        st.record_answer(cid(i), 1, "sandbox", 1)
    for i in (4, 5, 12, 16, 17):
        st.record_answer(cid(i), 0, "sandbox", 1)
    st.take_snapshot()
    st.close()
    return u


def client(url: str, user: str | None) -> TestClient:
    c = _app(url, {H1: "รพ.สระแก้ว"})
    if user:
        login(c, user)
    return c


def _cells(html: str, district: str) -> dict[str, str]:
    row = re.search(rf'<tr data-district="{district}"[^>]*>(.*?)</tr>', html, re.S)
    assert row, district
    return {k: re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", "", v))).strip()
            for k, v in re.findall(r'data-col="(\w+)">(.*?)</td>', row.group(1), re.S)}


def test_the_page_shows_build_reports_figures_with_the_total_row(url: str) -> None:
    st = DidStore(url)
    rep = build_report(st, kpi.Targets())
    c = client(url, "admin1")
    r = c.get("/did")
    assert r.status_code == 200
    html = r.text
    assert "did-not-checked" not in html
    seen = 0
    for row in rep.rows:
        key = "total" if row.total else (row.code or "-")
        cells = _cells(html, key)
        assert cells["citizens"] == f"{row.citizens:,}"
        assert cells["personnel"] == f"{row.personnel:,}"
        if row.citizens_checked:
            assert cells["citizens_did"] == f"{row.citizens_did:,}"
            assert cells["citizens_pct"] == f"{row.citizens_pct:.2f} %"
            assert cells["citizens_pass"] == ("ผ่าน" if row.citizens_pass else "ไม่ผ่าน")
            seen += 1
    assert seen == 3  # 2701, 2702 and the province total were checked
    total = _cells(html, "total")
    assert total["citizens"] == "20" and total["citizens_did"] == "5" and total["citizens_pct"] == "25.00 %"
    assert total["personnel"] == "3" and total["personnel_pct"] == "100.00 %"  # 1, 2, 15 all have one
    # a district whose people were never asked says so, it is not 0
    assert _cells(html, "2703")["citizens"] == "0"
    assert 'id="target-citizens">' in html and f"{rep.target_citizens:g} %" in html
    src = re.search(r'<li id="source-citizens"[^>]*>(.*?)</li>', html).group(1)  # type: ignore[union-attr]
    assert "NHSO" not in src and "ทะเบียน สปสช. (นำเข้า)" in src  # the imported extract, Thai first
    pers = re.search(r'<li id="source-personnel"[^>]*>(.*?)</li>', html).group(1)  # type: ignore[union-attr]
    assert "ทดแทน: 43 แฟ้ม PROVIDER" in pers  # the personnel fallback is labelled differently
    assert 'data-chart="/api/chart/did"' in html
    assert not CID_RUN.search(html)
    en = c.get("/did?lang=en").text
    assert "NHSO registry, all rights (imported)" in en and "fallback: 43-file PROVIDER" in en
    assert "province total" in en and not CID_RUN.search(en)


def test_trend_chart_json_equals_the_snapshots(url: str) -> None:
    st = DidStore(url)
    want = [p.pct for p in trend(st, CITIZEN)]
    r = client(url, "admin1").get("/api/chart/did")
    assert r.status_code == 200
    opt = r.json()["option"]
    assert r.json()["categories"] == opt["xAxis"]["data"] and len(r.json()["times"]) == 2
    cit = next(s for s in opt["series"] if s["id"] == "citizens")
    assert cit["data"] == want and want == [0.0, 25.0]
    assert cit["markLine"]["data"][0]["yAxis"] == build_report(st, kpi.Targets()).target_citizens
    be_year = str(dt.datetime.now(BANGKOK).year + 543)
    assert opt["xAxis"]["data"] and all(be_year in x for x in opt["xAxis"]["data"])  # Buddhist-era dates


def test_followup_lists_per_role(url: str) -> None:
    admin = client(url, "admin1")
    page = admin.get("/did").text
    assert all(f'href="/did/facility/{h}"' in page for h in (H1, H1B, H2))
    r = admin.get(f"/did/facility/{H1}")
    assert r.status_code == 200
    rows = re.findall(r'<tr data-cid="([^"]+)">', r.text)
    assert len(rows) == 7  # 10 people, 3 with a Digital ID (4, 5 answered no; 6–10 not asked)
    assert all("xxxxx" in x for x in rows) and not CID_RUN.search(r.text)
    assert "ยังไม่ได้ตรวจ Digital ID" in r.text  # the ones never asked say so

    district = client(url, "district1")
    dpage = district.get("/did").text
    assert f'href="/did/facility/{H1}"' in dpage and f'href="/did/facility/{H2}"' not in dpage
    assert district.get(f"/did/facility/{H1B}").status_code == 200
    assert district.get(f"/did/facility/{H2}").status_code == 403

    staff = client(url, "staff1")
    spage = staff.get("/did")
    assert spage.status_code == 200
    assert f'href="/did/facility/{H1}"' in spage.text
    assert f'href="/did/facility/{H1B}"' not in spage.text and f'href="/did/facility/{H2}"' not in spage.text
    assert staff.get(f"/did/facility/{H1}").status_code == 200
    for other in (H1B, H2, "99999"):  # typed by hand: same district, another district, unknown code
        r = staff.get(f"/did/facility/{other}")
        assert r.status_code == 403, other
        assert "data-cid" not in r.text
    assert client(url, "staff2").get(f"/did/facility/{H1}").status_code == 403


def test_signed_out_is_sent_to_login(url: str) -> None:
    c = client(url, None)
    for path in ("/did", f"/did/facility/{H1}", "/api/chart/did"):
        r = c.get(path, follow_redirects=False)
        assert r.status_code in (303, 401), path
        assert "data-cid" not in r.text


def test_bad_facility_code_is_a_bilingual_400(url: str) -> None:
    r = client(url, "admin1").get("/did/facility/12")
    assert r.status_code == 400 and "5" in r.text


def test_no_did_data_yet_says_not_checked_never_zeros(tmp_path: Path) -> None:
    u = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    c = client(u, "admin1")
    html = c.get("/did").text
    assert "ยังไม่ได้ตรวจ Digital ID" in html and 'id="did-table"' not in html
    assert "0.00 %" not in html
    assert "not checked yet" in c.get("/did?lang=en").text
    assert c.get("/api/chart/did").json()["option"]["series"][0]["data"] == []
    # a list imported but nobody asked yet: the table shows the denominators, the numerators say "not checked"
    st = DidStore(u)
    st.replace_people(CITIZEN, SOURCE_IMPORT, [Person(cid(i), H1, "2701", "ก") for i in range(1, 4)], file="x")
    html = c.get("/did?lang=th").text
    assert 'id="did-not-checked"' in html
    cells = _cells(html, "2701")
    assert cells["citizens"] == "3" and cells["citizens_did"] == "ยังไม่ได้ตรวจ Digital ID"
    assert "0.00 %" not in html


def _csv(r) -> list[list[str]]:  # type: ignore[no-untyped-def]
    import csv
    import io

    assert r.status_code == 200, r.text[:300]
    assert r.content.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))


def _audits(url: str) -> list[str]:
    st = AuthStore(url, hasher=CHEAP)
    try:
        return [f"{e.username} {e.action} {e.detail}" for e in st.audit_log()]
    finally:
        st.close()


def test_district_table_exports_equal_the_page_and_are_audited(url: str) -> None:
    import openpyxl

    c = client(url, "admin1")
    html = c.get("/did").text
    assert 'href="/did.csv"' in html and 'href="/did.xlsx"' in html
    rows = _csv(c.get("/did.csv"))
    head, body = rows[0], rows[1:]
    assert head[:5] == ["อำเภอ", "ประชาชน", "ประชาชนมีดิจิทัลไอดี", "ร้อยละ", "ผ่านเป้า 54.2"]
    rep = build_report(DidStore(url), kpi.Targets())
    assert len(body) == len(rep.rows) and body[-1][0] == "รวมทั้งจังหวัด"
    by_name = {b[0]: b for b in body}
    for r in rep.rows:
        cells = _cells(html, "total" if r.total else (r.code or "-"))
        line = by_name[r.name]
        assert line[1] == str(r.citizens) and cells["citizens"] == f"{r.citizens:,}"
        assert line[2] == cells["citizens_did"].replace(",", "")  # the same text, "not checked" included
        assert line[4] == cells["citizens_pass"]
    assert by_name["รวมทั้งจังหวัด"][3] == "25.0"
    never = next(b for b in body if b[1] == "0")
    assert never[2] == "ยังไม่ทราบ"  # a district with nobody counted: not known, never 0
    en = _csv(c.get("/did.csv?lang=en"))
    assert en[0][0] == "District" and en[-1][0] == "province total"
    x = c.get("/did.xlsx")
    assert x.status_code == 200 and x.headers["content-type"].startswith("application/vnd.openxmlformats")
    p = Path(url.removeprefix("sqlite:///")).with_name("did.xlsx")
    p.write_bytes(x.content)
    ws = openpyxl.load_workbook(p).active
    values = [[cell.value for cell in row] for row in ws.iter_rows()]
    assert values[0] == head and values[-1][1] == 20 and values[-1][3] == 25.0  # figures stay numbers
    assert c.get("/did.pdf").status_code == 404
    log = _audits(url)
    assert any("admin1 export did.csv rows=" in a for a in log) and any("export did.xlsx" in a for a in log)


def test_district_viewer_sees_their_district_and_the_labelled_province_total(url: str) -> None:
    c = client(url, "district1")
    html = c.get("/did").text
    assert 'id="did-narrowed"' in html
    shown = re.findall(r'<tr data-district="([^"]+)"', html)
    assert shown == ["2701", "total"]
    total = re.search(r'<tr data-district="total"[^>]*>(.*?)</tr>', html, re.S).group(1)  # type: ignore[union-attr]
    assert "ไม่ใช่เฉพาะอำเภอของท่าน" in total and "20" in _cells(html, "total")["citizens"]
    assert _cells(html, "2701")["citizens"] == "14"
    body = _csv(c.get("/did.csv"))[1:]
    assert [b[0] for b in body] == ["เมืองสระแก้ว", "รวมทั้งจังหวัด (ทุกอำเภอ ไม่ใช่เฉพาะอำเภอของท่าน)"]
    assert "province total (all districts, not only yours)" in c.get("/did?lang=en").text
    # an admin and facility staff see every district
    assert len(re.findall(r'<tr data-district="', client(url, "admin1").get("/did").text)) > 2
    assert 'id="did-narrowed"' not in client(url, "staff1").get("/did").text


def test_followup_exports_are_masked_scoped_and_audited(url: str) -> None:
    import openpyxl

    staff = client(url, "staff1")
    page = staff.get(f"/did/facility/{H1}").text
    assert f'href="/did/facility/{H1}.csv"' in page
    rows = _csv(staff.get(f"/did/facility/{H1}.csv"))
    assert rows[0] == ["ลำดับ", "เลขประจำตัวประชาชน", "ชื่อ", "ตรวจล่าสุด", "ครั้งที่ถาม"]
    assert len(rows) == 1 + 7 and all("xxxxx" in r[1] for r in rows[1:])
    page_cids = re.findall(r'<tr data-cid="([^"]+)">', page)
    assert [r[1] for r in rows[1:]] == page_cids  # the page's rows, in its order
    assert {r[3] for r in rows[1:]} >= {"ยังไม่ได้ตรวจ Digital ID"}
    x = staff.get(f"/did/facility/{H1}.xlsx")
    p = Path(url.removeprefix("sqlite:///")).with_name("f.xlsx")
    p.write_bytes(x.content)
    ws = openpyxl.load_workbook(p).active
    assert [r[1].value for r in list(ws.iter_rows())[1:]] == page_cids
    assert not CID_RUN.search(staff.get(f"/did/facility/{H1}.csv").content.decode("utf-8-sig"))
    assert not any(CID_RUN.search(str(c.value or "")) for row in ws.iter_rows() for c in row)
    for other in (H1B, H2, "99999"):
        for ext in ("csv", "xlsx"):
            r = staff.get(f"/did/facility/{other}.{ext}")
            assert r.status_code == 403, (other, ext)
            assert "xxxxx" not in r.text
    assert client(url, "district1").get(f"/did/facility/{H2}.csv").status_code == 403
    assert client(url, "district1").get(f"/did/facility/{H1B}.csv").status_code == 200
    assert staff.get("/did/facility/12.csv").status_code == 400
    assert client(url, None).get(f"/did/facility/{H1}.csv", follow_redirects=False).status_code in (303, 401)
    log = _audits(url)
    assert any(f"staff1 export did_followup facility={H1} .csv rows=7" in a for a in log)


def test_page_names_the_ekyc_export_and_shows_each_sources_count(url: str, tmp_path: Path) -> None:
    from phrsync.did.ekyc import import_ekyc

    f = tmp_path / "ekyc.csv"
    f.write_text(f"cid,status,date\n{cid(4)},ยืนยันแล้ว,15/06/2567\n{cid(1)},Y,\n", encoding="utf-8")
    st = DidStore(url)
    import_ekyc(st, f)
    st.close()
    c = client(url, "admin1")
    html = c.get("/did").text
    nums = re.search(r'<li id="source-numerators"[^>]*>(.*?)</li>', html).group(1)  # type: ignore[union-attr]
    assert "check_ekyc" in nums and "IdP admin" in nums
    assert "ekyc.csv" in html
    total = _cells(html, "total")
    assert total["citizens_did"] == "6"  # 1, 2, 3, 11, 15 by check_ekyc + 4 by the export (1 in both)
    assert total["citizens_did_check"] == "5" and total["citizens_did_ekyc"] == "2"
    head = _csv(c.get("/did.csv"))[0]
    assert "ประชาชนมี DID ตามไฟล์ IdP admin" in head
