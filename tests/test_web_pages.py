"""The monitoring web's pages on a real small province (synth → import → build → sandbox → sync): every page for
every role, 403 across facilities for pages, exports, charts and the action, exports equal to the table shown,
masked CIDs, unknown figures never shown as 0, "send again" after fixing the data, the security headers, the
shipped assets, and the ``phrsync web`` commands."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import openpyxl
import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner
from fastapi import FastAPI
from fastapi.testclient import TestClient
from webprovince import Province, province

from phrsync.cli import cli
from phrsync.delivery import outbox as ob
from phrsync.delivery.status import delivery_status
from phrsync.thai import be_date, be_datetime
from phrsync.web import actions, model, table
from phrsync.web.app import CSP, WebOptions, create_app
from phrsync.web.auth import ADMIN, DISTRICT, FACILITY, AuthStore

PW = "correct horse battery staple"
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
UNKNOWN_TH = "ยังไม่ทราบ"
CID_RUN = re.compile(r"(?<![0-9])[0-9]{13}(?![0-9])")
STATIC = Path(__file__).resolve().parent.parent / "phrsync" / "web" / "static"


# ---- the province and the site -----------------------------------------------------------------------------

@dataclass
class Site:
    prov: Province
    app: FastAPI
    store: AuthStore
    h: str  # a facility with data, in district ``d`` (it gets the refusals)
    d: str
    other: str  # a facility of another district
    same_district: str | None  # another facility of ``d``, if any

    def client(self, username: str | None) -> TestClient:
        c = TestClient(self.app)
        if username:
            login(c, username)
        return c


def login(c: TestClient, username: str, password: str = PW) -> None:
    r = c.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', r.text)
    assert token, r.text[:500]
    r = c.post("/login", data={"username": username, "password": password, "csrf": token.group(1)},
               follow_redirects=False)
    assert r.status_code == 303, r.text[:500]


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field"
    return m.group(1)


@pytest.fixture(scope="module")
def prov(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Province]:
    with province(tmp_path_factory.mktemp("web-pages") / "p") as p:
        yield p


@pytest.fixture(scope="module")
def site(prov: Province) -> Site:
    src = prov.sources()
    info = model.directory(src)
    built = [h for h in prov.facilities if info.get(h) and info[h].district_code]
    h = built[0]
    d = info[h].district_code
    assert d
    other = next(x for x in built if info[x].district_code != d)
    same = next((x for x in built if x != h and info[x].district_code == d), None)
    store = AuthStore(prov.state_url, hasher=CHEAP)
    store.add_user("admin1", PW, ADMIN)
    store.add_user("district1", PW, DISTRICT, district=d)
    store.add_user("staff1", PW, FACILITY, facility=h)
    app = create_app(src, WebOptions(), store, delivery=lambda: prov.settings)
    return Site(prov, app, store, h, d, other, same)


# ---- reading the HTML back ---------------------------------------------------------------------------------

class _Tables(HTMLParser):
    """Every table of a page: its header texts and its rows (the row's attributes and each cell's text)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, dict[str, Any]] = {}
        self._t: dict[str, Any] | None = None
        self._row: tuple[dict[str, str | None], list[str]] | None = None
        self._cell: list[str] | None = None
        self._in_head = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self._t = {"head": [], "rows": []}
            self.tables[a.get("id") or f"table{len(self.tables)}"] = self._t
        elif self._t is not None and tag == "thead":
            self._in_head = True
        elif self._t is not None and tag == "tr":
            self._row = (a, [])
        elif self._row is not None and tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row[1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._t is not None:
            if self._in_head:
                self._t["head"] = self._row[1]
            else:
                self._t["rows"].append(self._row)
            self._row = None
        elif tag == "thead":
            self._in_head = False
        elif tag == "table":
            self._t = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def tables(html: str) -> dict[str, dict[str, Any]]:
    p = _Tables()
    p.feed(html)
    return p.tables


def shown_rows(html: str, table_id: str = "facilities-table") -> tuple[list[str], list[list[str]]]:
    """The header and the visible rows of a table, as the user sees them."""
    t = tables(html)[table_id]
    return t["head"], [cells for attrs, cells in t["rows"] if "hidden" not in attrs]


def tile(html: str, name: str) -> str:
    m = re.search(r'data-tile="' + name + r'"><span>[^<]*</span><b>(.*?)</b>', html, re.S)
    assert m, name
    return re.sub(r"<[^>]+>", "", m.group(1)).strip()


# ---- every page, every role --------------------------------------------------------------------------------

def test_every_page_renders_for_each_role(site: Site) -> None:
    h = site.h
    common = ["/facilities", f"/facility/{h}", "/runs", "/phr", f"/api/chart/facility/{h}",
              "/facilities.csv", "/facilities.xlsx", f"/facility/{h}/days.csv", f"/facility/{h}/days.xlsx",
              f"/facility/{h}?lang=en", "/facilities?lang=th"]
    for user, extra in (("admin1", ["/", "/api/chart/overview", "/api/chart/districts"]),
                        ("district1", ["/", "/api/chart/overview", "/api/chart/districts"]),
                        ("staff1", [])):
        c = site.client(user)
        for path in common + extra:
            r = c.get(path)
            assert r.status_code == 200, (user, path, r.text[:300])
            if r.headers["content-type"].startswith("text/html"):
                assert 'id="lang-switch"' in r.text and 'id="current-user"' in r.text, (user, path)
                assert "Traceback" not in r.text
    # facility staff start on their own facility's page; the overview is the province's and districts'
    r = site.client("staff1").get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/facility/{h}"
    # not signed in: every page, export and chart sends to the login page, the JSON too says nothing
    anon = site.client(None)
    for path in ["/", "/facilities", f"/facility/{h}", "/facilities.csv", f"/api/chart/facility/{h}", "/runs"]:
        r = anon.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), path


def test_a_facility_user_cannot_open_export_chart_or_act_on_another_facility(site: Site) -> None:
    o = site.other
    name = model.directory(site.prov.sources())[o].name
    assert name
    for user in ("staff1", "district1"):
        c = site.client(user)
        for path in (f"/facility/{o}", f"/api/chart/facility/{o}", f"/facility/{o}/days.csv",
                     f"/facility/{o}/days.xlsx", f"/api/facility/{o}/send-again", f"/facility/{o}?lang=en"):
            r = c.get(path)
            assert r.status_code == 403, (user, path, r.status_code)
            assert name not in r.text  # nothing of it is shown
        token = csrf_of(c.get("/facilities").text)
        r = c.post(f"/facility/{o}/send-again", data={"csrf": token}, follow_redirects=False)
        assert r.status_code == 403, user
        # a code that does not exist answers like one that is not yours (nothing to learn by trying codes)
        assert c.get("/facility/99998").status_code == 403
    assert site.app.state.send_again.job(o) is None
    # lists hold only what the user may see
    staff = site.client("staff1")
    head, rows = shown_rows(staff.get("/facilities").text)
    assert [r[0] for r in rows] == [site.h]
    body = list(csv.reader(io.StringIO(staff.get("/facilities.csv").text.lstrip("\ufeff"))))
    assert [r[0] for r in body[1:]] == [site.h]
    assert list(csv.reader(io.StringIO(staff.get(f"/facilities.csv?q={o}").text.lstrip("\ufeff"))))[1:] == []
    dist = site.client("district1")
    _, rows = shown_rows(dist.get("/facilities").text)
    codes = {r[0] for r in rows}
    assert site.h in codes and o not in codes
    info = model.directory(site.prov.sources())
    assert all(info[c].district_code == site.d for c in codes)
    ov = dist.get("/").text
    assert {attrs.get("data-district") for attrs, _ in tables(ov)["districts-table"]["rows"]} <= {site.d}
    # only a province admin acts, and only with the form's CSRF token
    token = csrf_of(staff.get(f"/facility/{site.h}").text)
    assert staff.post(f"/facility/{site.h}/send-again", data={"csrf": token}).status_code == 403
    admin = site.client("admin1")
    assert admin.post(f"/facility/{site.h}/send-again", data={}).status_code == 403
    assert admin.post(f"/facility/{site.h}/send-again", data={"csrf": "forged"}).status_code == 403
    assert site.app.state.send_again.job(site.h) is None
    assert admin.get("/facility/99998").status_code == 404  # an admin may ask: it does not exist
    assert admin.get("/facility/12%2F45").status_code in (400, 404)


# ---- the facilities table and its exports ------------------------------------------------------------------

def _norm(col: table.Column, text: str) -> str:
    """A cell's text as the export writes it: figures without thousands separators or the % sign."""
    if text == UNKNOWN_TH or text == "not known yet":
        return text
    if col.kind == table.NUM:
        return text.replace(",", "")
    if col.kind == table.PCT:
        return text.removesuffix(" %")
    return text


def _xlsx(col: table.Column, v: Any) -> str:
    """A workbook cell as the page's text (Excel keeps 50.0 as the number 50)."""
    if col.kind == table.PCT and isinstance(v, int | float):
        return f"{v:.1f}"
    return "" if v is None else str(v)


@pytest.mark.parametrize("query", ["", "sort=his&dir=desc", "sort=name", "sort=last_received&dir=desc",
                                   "problem=quarantine", "q=รพ.สต.", "sort=pct_in_phr&q=0"])
def test_exports_hold_exactly_the_table_shown(site: Site, query: str) -> None:
    c = site.client("admin1")
    html = c.get(f"/facilities?{query}").text
    head, rows = shown_rows(html)
    assert head == [col.title("th") for col in table.COLUMNS]
    if query.startswith("sort=his"):
        his = [int(r[3].replace(",", "")) for r in rows if r[3] != UNKNOWN_TH]
        assert his == sorted(his, reverse=True) and len(rows) == len(site.prov.facilities)
    expect = [[_norm(col, cell) for col, cell in zip(table.COLUMNS, r, strict=True)] for r in rows]
    # the export links of the page carry the same query
    qs = urlencode(table.Query.parse(dict(parse_qsl(query))).params())
    links = {m.group(1): unescape(m.group(2)) for m in re.finditer(r'id="(export-csv|export-xlsx)" href="([^"]+)"', html)}
    assert links == {"export-csv": "/facilities.csv" + (f"?{qs}" if qs else ""),
                     "export-xlsx": "/facilities.xlsx" + (f"?{qs}" if qs else "")}
    text = c.get(f"/facilities.csv?{query}").text
    got = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert got[0] == head
    assert [[v.removeprefix("'") for v in line] for line in got[1:]] == expect
    wb = openpyxl.load_workbook(io.BytesIO(c.get(f"/facilities.xlsx?{query}").content), read_only=True)
    sheet = [list(r) for r in wb.active.iter_rows(values_only=True)]
    assert [str(v) for v in sheet[0]] == head
    assert [[_xlsx(col, v) for col, v in zip(table.COLUMNS, line, strict=True)] for line in sheet[1:]] == expect
    kinds = {col.key: col.kind for col in table.COLUMNS}
    for line in sheet[1:]:  # figures are numbers in the workbook, not text
        for col, v in zip(table.COLUMNS, line, strict=True):
            if kinds[col.key] == table.NUM and v != UNKNOWN_TH:
                assert isinstance(v, int), (col.key, v)
    audit = [e for e in site.store.audit_log(20) if e.action == "export"]
    assert audit and audit[0].username == "admin1" and "facilities.xlsx" in audit[0].detail


def test_the_table_filters_by_district_and_problem(site: Site) -> None:
    c = site.client("admin1")
    html = c.get(f"/facilities?district={site.d}").text
    _, rows = shown_rows(html)
    info = model.directory(site.prov.sources())
    assert rows and all(info[r[0]].district_code == site.d for r in rows)
    all_rows = tables(html)["facilities-table"]["rows"]
    assert len(all_rows) == len(site.prov.facilities)  # the others are in the page, hidden, for the browser
    assert all(("hidden" in a) == (a["data-district"] != site.d) for a, _ in all_rows)
    head, rows = shown_rows(c.get(f"/facilities?q={site.h}").text)
    assert [r[0] for r in rows] == [site.h]
    for bad in ("sort=nope", "dir=up", "problem=bored", "district=27"):
        r = c.get(f"/facilities?{bad}")
        assert r.status_code == 400 and ("ไม่รู้จัก" in r.text or "ต้อง" in r.text), bad
        assert c.get(f"/facilities.csv?{bad}").status_code == 400


def test_the_table_shows_what_status_says(site: Site) -> None:
    """The facilities table's queue figures (every endpoint) and last delivery are ``phrsync status``'s,
    facility by facility; its encounter figures are the model's."""
    rep = delivery_status(site.prov.state_url)
    c = site.client("admin1")
    _, rows = shown_rows(c.get("/facilities").text)
    col = {c.key: i for i, c in enumerate(table.COLUMNS)}
    model_rows = {r.info.hospcode: r for r in model.facility_rows(site.prov.sources())}
    seen = 0
    for r in rows:
        f = rep.facilities.get(r[0])
        if f is None:
            continue
        seen += 1
        for key, want in (("pending", f.pending), ("refused", f.refused), ("failed", f.failed),
                          ("built", model_rows[r[0]].built), ("confirmed", model_rows[r[0]].confirmed),
                          ("his", model_rows[r[0]].his)):
            assert r[col[key]] == (UNKNOWN_TH if want is None else f"{want:,}"), (r[0], key)
        assert r[col["last_received"]] == be_datetime(f.last_delivery), r[0]
    assert seen == len(site.prov.facilities)


# ---- PDPA, unknowns, language, headers, assets -------------------------------------------------------------

def test_no_full_cid_leaves_the_server(site: Site) -> None:
    c = site.client("admin1")
    paths = ["/", "/facilities", "/runs", "/phr", "/api/chart/overview", "/api/chart/districts",
             "/facilities.csv"]
    for h in site.prov.facilities[:15]:
        paths += [f"/facility/{h}", f"/api/chart/facility/{h}", f"/facility/{h}/days.csv"]
    masked = 0
    for path in paths:
        r = c.get(path)
        assert r.status_code == 200, path
        assert not CID_RUN.search(r.text), (path, CID_RUN.search(r.text))
        masked += len(re.findall(r"[0-9]-[0-9]{4}-xxxxx-xx-[0-9]", r.text))
    wb = openpyxl.load_workbook(io.BytesIO(c.get("/facilities.xlsx").content), read_only=True)
    for line in wb.active.iter_rows(values_only=True):
        assert not any(CID_RUN.search(str(v)) for v in line if v is not None)
    assert masked > 0  # the quarantine examples of the dirty province are there, masked


def test_what_is_not_known_yet_is_never_shown_as_zero(tmp_path: Path) -> None:
    """A site on a state store that never saw a run and no staging: the tiles say "not known yet"."""
    state = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    store = AuthStore(state, hasher=CHEAP)
    store.add_user("admin1", PW, ADMIN)
    app = create_app(model.Sources(state_url=state), WebOptions(), store)
    c = TestClient(app)
    login(c, "admin1")
    html = c.get("/").text
    for name in ("his_month", "pct_month"):  # no staging store: the HIS side is not known
        assert tile(html, name) == UNKNOWN_TH, name
    ov = model.overview(model.Sources(state_url=state))
    for name in ("sending_today", "sending_7d", "silent", "phr_month", "pending", "refused", "failed"):
        v = getattr(ov, name)
        assert tile(html, name) == (UNKNOWN_TH if v is None else f"{v:,}"), name
    assert ov.notes and all(th in html for th, _ in ov.notes)  # and the page says why
    r = c.get("/runs")
    assert r.status_code == 200 and "ยังไม่มีรอบการส่ง" in r.text and UNKNOWN_TH in r.text


def test_thai_first_english_on_request_buddhist_era_and_bangkok_time(site: Site) -> None:
    c = site.client("admin1")
    th = c.get(f"/facility/{site.h}").text
    assert '<html lang="th">' in th and "รายวัน" in th and "Asia/Bangkok" in th
    assert re.search(r"25[6-9][0-9]", th) and not re.search(r"\b20[2-3][0-9]-[01][0-9]-[0-3][0-9]\b", re.sub(
        r'(datetime|data-month)="[^"]*"', "", th))  # dates are Buddhist era (ISO only in machine attributes)
    r = c.get(f"/facility/{site.h}?lang=en")
    assert '<html lang="en">' in r.text and "Per day" in r.text and " BE" in r.text
    assert "lang=en" in r.headers.get("set-cookie", "")
    assert '<html lang="en">' in c.get("/facilities").text  # remembered
    assert "?lang=th" in c.get("/runs").text  # every page has the switch back
    chart = c.get(f"/api/chart/facility/{site.h}").json()
    assert chart["option"]["xAxis"]["data"][0].endswith(" BE")


def test_security_headers_and_no_inline_script(site: Site) -> None:
    c = site.client("admin1")
    for path in ("/", "/facilities", f"/facility/{site.h}", "/runs", "/phr", "/facilities.csv",
                 f"/api/chart/facility/{site.h}"):
        r = c.get(path)
        assert r.headers["content-security-policy"] == CSP and "script-src 'self'" in CSP
        assert "unsafe-inline" not in CSP.split("script-src")[1].split(";")[0]
        assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["cache-control"] == "no-store", path
        if r.headers["content-type"].startswith("text/html"):
            assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", r.text), path  # no inline script
            assert not re.search(r"\son[a-z]+=", r.text), path  # no inline event handler
            assert not re.search(r'(src|href)="(https?:)?//', r.text), path  # nothing from another site
    r = c.get("/static/app.js")
    assert r.status_code == 200 and "public" in r.headers["cache-control"]


def test_the_charting_library_is_shipped_not_fetched() -> None:
    js = (STATIC / "echarts.min.js").read_text(encoding="utf-8")
    assert 't.version="6.1.0"' in js and len(js) > 500_000
    sources = (STATIC / "SOURCES.md").read_text(encoding="utf-8")
    assert "echarts@6.1.0" in sources and "Apache-2.0" in sources
    assert "Apache License" in (STATIC / "ECHARTS-LICENSE").read_text(encoding="utf-8")
    assert "The Apache Software Foundation" in (STATIC / "ECHARTS-NOTICE").read_text(encoding="utf-8")
    for tpl in (STATIC.parent / "templates").glob("*.html"):
        assert not re.search(r'(src|href)="(https?:)?//', tpl.read_text(encoding="utf-8")), tpl


def test_charts_carry_the_models_days(site: Site) -> None:
    c = site.client("admin1")
    detail = model.facility_detail(site.prov.sources(), site.h)
    d = c.get(f"/api/chart/facility/{site.h}").json()
    # every calendar day from the first to the last with data; a day the model has nothing for is null (no bar)
    first, last = detail.days[0].day, detail.days[-1].day
    assert d["days"][0] == first.isoformat() and d["days"][-1] == last.isoformat()
    assert len(d["days"]) == (last - first).days + 1
    series = {s["id"]: s["data"] for s in d["option"]["series"]}
    at = {p.day.isoformat(): p for p in detail.days}
    for key, attr in (("his", "his"), ("built", "built"), ("confirmed", "confirmed"), ("phr", "phr")):
        assert series[key] == [getattr(at[x], attr) if x in at else None for x in d["days"]], key
    assert sum(v or 0 for v in series["his"]) == detail.row.his
    assert d["option"]["xAxis"]["data"][0] == be_date(first)
    ov = c.get("/api/chart/overview").json()
    days = model.overview(site.prov.sources()).daily
    assert ov["days"] == [p.day.isoformat() for p in days]
    assert {s["id"]: s["data"] for s in ov["option"]["series"]}["his"] == [p.his for p in days]
    # the district viewer's chart is the sum of their district's facilities, day by day
    dist = site.client("district1").get("/api/chart/overview").json()
    assert dist["days"] == ov["days"]
    his = {s["id"]: s["data"] for s in dist["option"]["series"]}["his"]
    src = site.prov.sources()
    mine = [r.info.hospcode for r in model.facility_rows(src) if r.info.district_code == site.d]
    per_day: dict[str, int] = {}
    for h in mine:
        for p in model.facility_detail(src, h).days:
            if p.his is not None:
                per_day[p.day.isoformat()] = per_day.get(p.day.isoformat(), 0) + p.his
    assert his == [per_day.get(day, 0) for day in dist["days"]]  # a day without visits is 0: staging answered


# ---- "send again after fixing" -----------------------------------------------------------------------------

def _refused(state_url: str, h: str) -> dict[str, int]:
    box = ob.Outbox(state_url)
    try:
        return box.counts().get(h, {})
    finally:
        box.close()


def test_send_again_after_fixing_the_data_confirms_the_refused(site: Site) -> None:
    p, h = site.prov, site.h
    key = p.break_one(h)
    p.sync()
    assert _refused(p.state_url, h)[ob.REFUSED] == 1
    admin = site.client("admin1")
    html = admin.get(f"/facility/{h}").text
    by_phr = [(a, cells) for a, cells in tables(html)["refusals"]["rows"] if a["data-at-build"] == "0"]
    assert len(by_phr) == 1 and "birthDate" in by_phr[0][1][0]  # the reason, as PHR gave it
    assert by_phr[0][0]["data-owner"] == model.OWNER_FACILITY
    assert by_phr[0][1][2] == "หน่วยบริการแก้ข้อมูลใน HIS"  # who must fix it, in words
    assert not CID_RUN.search(by_phr[0][1][3])  # its examples, masked
    assert tile(html, "refused") == "1"
    assert 'id="send-again-button"' in html and key.split("|")[0] == "UpdatePHRv1"
    _, rows = shown_rows(admin.get("/facilities?problem=refused").text)
    assert h in [r[0] for r in rows]
    # the HIS fixes it; the province rebuilds; an admin presses "send again"
    p.build()
    r = admin.post(f"/facility/{h}/send-again", data={"csrf": csrf_of(html)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith(f"/facility/{h}")
    page = admin.get(f"/facility/{h}").text
    assert 'id="send-again-state"' in page  # running (or already done on a fast machine)
    job = site.app.state.send_again.wait(h, timeout=120)
    assert job is not None and job.state == actions.DONE, job
    assert job.result["attempted"] >= 1 and job.result["refused"] == 0
    assert re.search(r'data-result="refused">0<', admin.get(f"/facility/{h}").text)
    assert job.result["outbox"][ob.REFUSED] == 0 and job.result["outbox"][ob.CONFIRMED] >= 1
    after = admin.get(f"/facility/{h}").text
    assert 'data-state="done"' in after and tile(after, "refused") == "0"
    assert not [a for a, _ in tables(after).get("refusals", {"rows": []})["rows"] if a["data-at-build"] == "0"]
    counts = _refused(p.state_url, h)
    assert counts[ob.REFUSED] == 0 and counts[ob.PENDING] == 0
    detail = model.facility_detail(p.sources(), h)
    assert detail.row.confirmed == detail.row.built
    log = [(e.action, e.username) for e in site.store.audit_log(50)]
    assert ("send_again", "admin1") in log
    for _ in range(50):  # the end is audited from the job's thread
        if ("send_again_done", "admin1") in [(e.action, e.username) for e in site.store.audit_log(50)]:
            break
        time.sleep(0.05)
    assert ("send_again_done", "admin1") in [(e.action, e.username) for e in site.store.audit_log(50)]


def test_send_again_while_an_agent_runs_queues_for_its_next_round(site: Site) -> None:
    p = site.prov
    h = site.same_district or site.other
    p.break_one(h)
    p.sync()
    assert _refused(p.state_url, h)[ob.REFUSED] == 1
    p.build()
    other = ob.Outbox(p.state_url)
    try:
        assert other.take_lease("another-agent", 60) is None  # an agent (phrsync run) holds the store
        admin = site.client("admin1")
        html = admin.get(f"/facility/{h}").text
        admin.post(f"/facility/{h}/send-again", data={"csrf": csrf_of(html)})
        job = site.app.state.send_again.wait(h, timeout=60)
        assert job is not None and job.state == actions.REQUEUED and job.requeued == 1
        page = admin.get(f"/facility/{h}").text
        assert 'data-state="requeued"' in page and "รอบถัดไป" in page
        counts = _refused(p.state_url, h)
        assert counts[ob.REFUSED] == 0 and counts[ob.PENDING] == 1
    finally:
        other.release_lease()
        other.close()
    p.sync()  # the agent's next round sends them, with the fixed data
    counts = _refused(p.state_url, h)
    assert counts[ob.REFUSED] == 0 and counts[ob.PENDING] == 0


# ---- phrsync web -------------------------------------------------------------------------------------------

def _conf(tmp_path: Path) -> list[str]:
    (tmp_path / "phrsync.toml").write_text('data_dir = "data"\n[web]\nport = 18080\n', encoding="utf-8")
    return ["--config", str(tmp_path / "phrsync.toml")]


def test_web_help_and_accounts(tmp_path: Path) -> None:
    run = CliRunner()
    r = run.invoke(cli, ["web", "--help"])
    assert r.exit_code == 0 and "add-user" in r.output and "--port" in r.output and "users" in r.output
    for sub in ("add-user", "users"):
        assert run.invoke(cli, ["web", sub, "--help"]).exit_code == 0
    conf = _conf(tmp_path)
    pw = tmp_path / "pw"
    pw.write_text(PW + "\n", encoding="utf-8")
    r = run.invoke(cli, [*conf, "web", "add-user", "Somchai", "--role", "district", "--district", "2701",
                         "--password-file", str(pw), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {"username": "somchai", "role": "district", "district": "2701",
                                    "facility": None, "updated": False}
    r = run.invoke(cli, [*conf, "web", "add-user", "somchai", "--role", "facility", "--facility", "10699",
                         "--password-file", str(pw), "--json"])
    assert json.loads(r.output)["updated"] is True and json.loads(r.output)["facility"] == "10699"
    r = run.invoke(cli, [*conf, "web", "users", "--json"])
    assert json.loads(r.output) == [{"username": "somchai", "role": "facility", "district": None,
                                     "facility": "10699"}]
    assert PW not in r.output
    # the password was stored hashed, in the state store the web reads
    src = model.Sources.from_config(__import__("phrsync.config", fromlist=["load_config"]).load_config(
        tmp_path / "phrsync.toml"))
    user = AuthStore(src.state_url).authenticate("somchai", PW, "test")
    assert user.facility == "10699"
    # a weak password or a missing district: a bilingual usage error, nothing stored
    pw.write_text("short\n", encoding="utf-8")
    r = run.invoke(cli, [*conf, "web", "add-user", "nid", "--role", "admin", "--password-file", str(pw)])
    assert r.exit_code == 2 and "รหัสผ่านสั้นเกินไป" in r.output and "too short" in r.output
    r = run.invoke(cli, [*conf, "web", "add-user", "nid", "--role", "district", "--password-file", str(pw)])
    assert r.exit_code == 2
    r = run.invoke(cli, [*conf, "web", "add-user", "nid", "--role", "admin"], input=f"{PW}\n{PW}\n")
    assert r.exit_code == 0, r.output  # asked for, hidden, twice
    assert PW not in r.output


def test_phrsync_web_serves_over_http(tmp_path: Path) -> None:
    """``phrsync web --port`` in its own process: prints where it answers; the login page answers there."""
    conf = _conf(tmp_path)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "phrsync", *conf, "web", "--port", str(port), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["url"] == f"http://127.0.0.1:{port}/" and "state" in info
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/login", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.1)
        assert r.status_code == 200 and "เข้าสู่ระบบ" in r.text
        assert httpx.get(f"http://127.0.0.1:{port}/facilities", timeout=5).status_code == 303
        # a second one on the same port: a clear bilingual error, exit 2
        r = subprocess.run([sys.executable, "-m", "phrsync", *conf, "web", "--port", str(port)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and "ใช้ --port อื่น" in r.stderr and "another --port" in r.stderr, r.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.slow
def test_demo_serve_opens_the_web_on_the_demos_data(tmp_path: Path) -> None:
    """``phrsync demo --serve``: after the demo the web answers on its data, with a generated admin password in a
    private file (the path is printed, not the password), and the PHR centre view reads the demo's sandbox."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "phrsync.toml").write_text(f'data_dir = "data"\n[web]\nport = {port}\n', encoding="utf-8")
    data = tmp_path / "demo"
    proc = subprocess.Popen([sys.executable, "-m", "phrsync", "--config", str(tmp_path / "phrsync.toml"), "demo",
                             "-n", "300", "--faults", "0", "--data-dir", str(data), "--serve", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        out = []
        for line in proc.stdout:
            out.append(line)
            if line.startswith('{"url"'):
                break
        info = json.loads(out[-1])
        assert info["url"] == f"http://127.0.0.1:{port}/", "".join(out)
        secret = Path(info["password_file"])
        assert secret.stat().st_mode & 0o777 == 0o600
        password = secret.read_text(encoding="utf-8").split("password: ")[1].strip()
        assert password not in "".join(out)
        with httpx.Client(base_url=info["url"], timeout=10, follow_redirects=True) as c:
            deadline = time.monotonic() + 30
            while True:
                try:
                    r = c.get("/login")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline and proc.poll() is None
                    time.sleep(0.1)
            r = c.post("/login", data={"username": "admin", "password": password, "csrf": csrf_of(r.text)})
            assert r.status_code == 200 and 'data-tile="his_month"' in r.text, r.text[:300]
            assert tile(r.text, "his_month") != UNKNOWN_TH
            phr = c.get("/phr").text
            assert 'data-source="sandbox"' in phr and 'id="phr-facilities"' in phr
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_run_shows_others_only_their_own_facilities_errors(site: Site) -> None:
    """A run's errors are the province's, one line per facility: staff see the lines of their facility only."""
    from phrsync.web import scope
    from phrsync.web.auth import User

    run = model.RunRow(id=9, target="t", started_at=1.0, finished_at=2.0, exit_code=3,
                       errors=[f"{site.h}: login refused", f"{site.other}: timed out", "PHR down: 503"],
                       facilities=[site.h, site.other])
    staff = User("staff1", FACILITY, facility=site.h)
    seen = scope.runs_seen(site.prov.sources(), staff, [run])[0]
    assert seen.errors == [f"{site.h}: login refused", "PHR down: 503"] and seen.facilities == [site.h]
    admin = User("admin1", ADMIN)
    assert scope.runs_seen(site.prov.sources(), admin, [run])[0].errors == run.errors
