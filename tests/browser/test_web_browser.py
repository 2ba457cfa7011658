"""The monitoring web in a real browser (Debian's Chromium through Playwright) on a small real province: signing in
as each role, what a facility user may not open, export or do (also by typing the URL), sorting and filtering the
facilities table in the page, an export downloaded and read back equal to the rows shown, the charts drawn, Thai
text drawn with a Thai font (a screenshot kept in tests/artifacts/), the overview after ``phrsync demo --serve``
equal to ``phrsync status --json`` and to the sandbox's OrganizationSummary, and a refusal shown with who must
fix it, then confirmed after "send again"."""

from __future__ import annotations

import csv
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openpyxl
from browsing import Site, keep, login, off_loop
from click.testing import CliRunner

from phrsync.cli import cli
from phrsync.delivery import outbox as ob
from phrsync.web import model, table

UNKNOWN_TH = "ยังไม่ทราบ"
# the families fonts-thai-tlwg installs; Chromium must draw the Thai text with one of them (or another Thai font)
THAI_FONTS = ("Loma", "Garuda", "Kinnari", "Norasi", "Sawasdee", "Umpush", "Waree", "Purisa", "Laksaman",
              "Tlwg Typo", "Tlwg Typist", "Tlwg Typewriter", "Tlwg Mono", "Sarabun", "Noto Sans Thai")
THAI = re.compile(r"[\u0e00-\u0e7f]")


def number(text: str) -> int | None:
    """A figure as the page shows it (``12,345``); None for "not known yet"."""
    text = text.strip()
    if UNKNOWN_TH in text or "not known" in text:
        return None
    return int(text.replace(",", ""))


def visible_rows(page: Any) -> list[dict[str, Any]]:
    """The facilities table as the user sees it now: code and each cell's text, rows the filters hid left out."""
    return page.evaluate("""() => Array.from(document.querySelectorAll('#facilities-table tbody tr'))
        .filter(tr => !tr.hidden && tr.offsetParent !== null)
        .map(tr => ({code: tr.dataset.hospcode, district: tr.dataset.district, problems: tr.dataset.problems,
                     cells: Array.from(tr.cells).map(td => td.innerText.replace(/\\s+/g, ' ').trim())}))""")


def column(key: str) -> int:
    return [c.key for c in table.COLUMNS].index(key)


def tile(page: Any, name: str) -> int | None:
    return number(page.locator(f'[data-tile="{name}"] b').inner_text())


# ---- who sees what -------------------------------------------------------------------------------------------

def test_each_role_signs_in_to_its_own_start_page(site: Site, page: Any) -> None:
    login(page, site, "admin")
    assert page.url == site.url("/")
    assert page.locator("#current-user").get_attribute("data-role") == "admin"
    assert "จังหวัด" in page.locator("h1").inner_text()
    page.goto(site.url("/facilities"))
    assert len(visible_rows(page)) == len(site.province.facilities)

    page.context.clear_cookies()
    login(page, site, "district")
    assert page.url == site.url("/")
    assert "อำเภอ" in page.locator("h1").inner_text()
    page.goto(site.url("/facilities"))
    district = site.accounts["district"].district
    rows = visible_rows(page)
    assert rows and {r["district"] for r in rows} == {district}
    # the district's other facilities are not in the page at all (not merely hidden)
    assert page.locator(f'#facilities-table tr[data-hospcode="{site.other}"]').count() == 0
    assert {r["code"] for r in rows} >= {site.mine, site.neighbour}

    page.context.clear_cookies()
    login(page, site, "facility")
    assert page.url == site.url(f"/facility/{site.mine}")  # facility staff start on their own facility
    assert page.locator("#facility").get_attribute("data-hospcode") == site.mine
    page.goto(site.url("/facilities"))
    assert [r["code"] for r in visible_rows(page)] == [site.mine]


def test_a_facility_user_cannot_open_export_or_act_on_another_facility(site: Site, page: Any) -> None:
    login(page, site, "facility")
    for path in (f"/facility/{site.other}", f"/facility/{site.neighbour}"):  # typed into the address bar
        resp = page.goto(site.url(path))
        assert resp is not None and resp.status == 403, path
        assert "ไม่มีสิทธิ์" in page.locator("h1").inner_text() and "403" in page.locator("h1").inner_text()
        assert site.other not in page.locator("main").inner_text().replace(path, "")
    for path in (f"/api/chart/facility/{site.other}", f"/facility/{site.other}/days.csv",
                 f"/facility/{site.other}/days.xlsx", f"/api/facility/{site.other}/send-again"):
        r = page.request.get(site.url(path))
        assert r.status == 403, path
    # the facilities export holds their own facility only, whatever the query asks
    r = page.request.get(site.url(f"/facilities.csv?q={site.other}"))
    assert r.status == 200 and site.other not in r.text()
    r = page.request.get(site.url("/facilities.csv"))
    codes = [line[0] for line in csv.reader(r.text().lstrip("\ufeff").splitlines()[1:])]
    assert codes == [site.mine]
    # the action: not even for their own facility (a province admin's), let alone another; with a valid CSRF token
    page.goto(site.url(f"/facility/{site.mine}"))
    assert page.locator("#send-again-button").count() == 0  # no button is offered ...
    csrf = page.locator("form[action='/logout'] input[name=csrf]").first.get_attribute("value")
    for h in (site.mine, site.other):  # ... and the server refuses the POST anyway
        r = page.request.post(site.url(f"/facility/{h}/send-again"), form={"csrf": csrf}, max_redirects=0)
        assert r.status == 403, h
    assert site.app.state.send_again.job(site.other) is None


def test_a_district_viewer_sees_its_district_only(site: Site, page: Any) -> None:
    login(page, site, "district")
    assert page.goto(site.url(f"/facility/{site.neighbour}")).status == 200
    resp = page.goto(site.url(f"/facility/{site.other}"))
    assert resp is not None and resp.status == 403
    assert page.request.get(site.url(f"/api/chart/facility/{site.other}")).status == 403


# ---- the facilities table ------------------------------------------------------------------------------------

def test_sort_and_filter_the_facilities_table(site: Site, page: Any) -> None:
    login(page, site, "admin")
    page.goto(site.url("/facilities"))
    rows = model.facility_rows(site.province.sources())
    assert [r["code"] for r in visible_rows(page)] == sorted(r.info.hospcode for r in rows)
    his = page.locator('th[data-col="his"] button.sort')
    his.click()  # ascending
    shown = visible_rows(page)
    values = [number(r["cells"][column("his")]) for r in shown]
    known = [v for v in values if v is not None]
    assert known == sorted(known) and values[: len(known)] == known  # unknown last
    his.click()  # descending
    shown = visible_rows(page)
    values = [number(r["cells"][column("his")]) for r in shown]
    known = [v for v in values if v is not None]
    assert known == sorted(known, reverse=True) and known[0] > known[-1]
    expect = [r.info.hospcode for r in table.apply(rows, table.Query(sort="his", desc=True), "th")]
    assert [r["code"] for r in shown] == expect  # the browser's order is the server's (and so the export's)
    assert page.locator('th[data-col="his"]').get_attribute("aria-sort") == "descending"
    assert "sort=his" in page.url and "dir=desc" in page.url  # the address keeps the view

    # search by (part of) a name, as typed
    target = next(r for r in rows if r.info.name and r.info.hospcode == site.neighbour)
    word = target.info.name.split()[-1]
    page.fill("#filter-q", word)
    shown = visible_rows(page)
    assert shown and site.neighbour in [r["code"] for r in shown]
    assert all(word.lower() in r["cells"][column("name")].lower() or word in r["code"] for r in shown)
    assert page.locator("#shown-count").inner_text() == str(len(shown))
    # by code
    page.fill("#filter-q", site.other)
    assert [r["code"] for r in visible_rows(page)] == [site.other]
    # by district
    page.fill("#filter-q", "")
    district = site.accounts["district"].district
    page.select_option("#filter-district", district)
    shown = visible_rows(page)
    in_district = {r.info.hospcode for r in rows if r.info.district_code == district}
    assert {r["code"] for r in shown} == in_district and len(shown) < len(rows)
    # by problem: the facilities with quarantined rows (the synthetic data has defects)
    page.select_option("#filter-district", "")
    page.select_option("#filter-problem", model.QUARANTINE)
    shown = visible_rows(page)
    with_q = {r.info.hospcode for r in rows if model.QUARANTINE in r.problems}
    assert with_q and {r["code"] for r in shown} == with_q
    assert all(number(r["cells"][column("quarantined")]) for r in shown)


def _csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        got = list(csv.reader(fh))
    return got[0], [[v.removeprefix("'") for v in line] for line in got[1:]]


def _same_cell(col: table.Column, shown: str, exported: Any, row: dict[str, Any]) -> bool:
    """A cell of the page against the export's: figures as numbers, the problems as the texts of the row's
    problem codes in order (badges on the page), the rest as the text shown."""
    if exported is None:
        exported = ""
    if col.key == "problems":
        texts = [model.PROBLEM_TEXT[p][0] for p in (row["problems"] or "").split()]
        return str(exported) == ", ".join(texts) and shown.replace(",", " ").split() == " ".join(texts).split()
    if col.kind == table.NUM and number(shown) is not None:
        return int(str(exported).replace(",", "")) == number(shown)
    if col.kind == table.PCT and UNKNOWN_TH not in shown:
        return abs(float(str(exported).rstrip(" %")) - float(shown.rstrip(" %"))) < 0.05
    return " ".join(str(exported).split()) == shown


def test_exports_downloaded_are_the_rows_shown(site: Site, page: Any, artifacts: Path) -> None:
    login(page, site, "admin")
    page.goto(site.url("/facilities"))
    page.locator('th[data-col="his"] button.sort').click()
    page.locator('th[data-col="his"] button.sort').click()  # most encounters first
    district = site.accounts["district"].district
    page.select_option("#filter-district", district)
    shown = visible_rows(page)
    assert len(shown) >= 2
    head_shown = page.evaluate("""() => Array.from(document.querySelectorAll('#facilities-table thead th'))
        .map(th => th.innerText.trim())""")
    with page.expect_download() as dl:
        page.click("#export-csv")
    path = keep(Path(dl.value.path()), artifacts, "facilities-export.csv")
    assert dl.value.suggested_filename.endswith(".csv")
    head, body = _csv_rows(path)
    assert head == head_shown
    assert [line[0] for line in body] == [r["code"] for r in shown]  # the same rows, in the same order
    for line, r in zip(body, shown, strict=True):
        for col, exported, cell in zip(table.COLUMNS, line, r["cells"], strict=True):
            assert _same_cell(col, cell, exported, r), (r["code"], col.key, cell, exported)

    with page.expect_download() as dl:
        page.click("#export-xlsx")
    path = keep(Path(dl.value.path()), artifacts, "facilities-export.xlsx")
    wb = openpyxl.load_workbook(path, read_only=True)
    sheet = [list(x) for x in wb.active.iter_rows(values_only=True)]
    assert [str(v) for v in sheet[0]] == head_shown
    assert [str(line[0]) for line in sheet[1:]] == [r["code"] for r in shown]
    for line, r in zip(sheet[1:], shown, strict=True):
        for col, exported, cell in zip(table.COLUMNS, line, r["cells"], strict=True):
            assert _same_cell(col, cell, exported, r), (r["code"], col.key, cell, exported)
            if col.kind == table.NUM and number(cell) is not None:
                assert isinstance(exported, int), (col.key, exported)  # a figure is a number in the workbook


# ---- drawn as a person sees it -------------------------------------------------------------------------------

CANVAS_INK = """(sel) => {
    const c = document.querySelector(sel + ' canvas');
    if (!c) return -1;
    const ctx = c.getContext('2d');
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    let ink = 0;
    for (let i = 0; i < d.length; i += 4) {
        if (d[i + 3] > 0 && (d[i] < 235 || d[i + 1] < 235 || d[i + 2] < 235)) ink++;
    }
    return ink / (c.width * c.height);
}"""
# the pixels of one series' colour (phrsync/web/charts.py SERIES), so the ink is data, not only axes and labels
SERIES_INK = """([sel, rgb]) => {
    const c = document.querySelector(sel + ' canvas');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) {
        if (d[i + 3] > 200 && Math.abs(d[i] - rgb[0]) < 24 && Math.abs(d[i + 1] - rgb[1]) < 24
            && Math.abs(d[i + 2] - rgb[2]) < 24) n++;
    }
    return n;
}"""


def _rgb(hex_colour: str) -> list[int]:
    return [int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]


def test_charts_are_drawn(site: Site, page: Any, artifacts: Path) -> None:
    from phrsync.web.charts import SERIES

    login(page, site, "admin")
    page.goto(site.url(f"/facility/{site.mine}"))
    chart = page.locator("#chart-facility[data-chart-drawn]")
    chart.wait_for()
    assert int(chart.get_attribute("data-chart-drawn") or 0) > 0  # days drawn
    assert page.evaluate(CANVAS_INK, "#chart-facility") > 0.005
    assert page.evaluate(SERIES_INK, ["#chart-facility", _rgb(SERIES["his"][1])]) > 50  # the HIS bars
    chart.screenshot(path=str(artifacts / "chart-facility.png"))

    page.goto(site.url("/"))
    for sel in ("#chart-daily", "#chart-districts"):
        page.locator(f"{sel}[data-chart-drawn]").wait_for()
        assert page.evaluate(CANVAS_INK, sel) > 0.005, sel
    assert page.locator("#chart-daily").get_attribute("data-chart-error") is None
    assert page.evaluate(SERIES_INK, ["#chart-daily", _rgb(SERIES["his"][1])]) > 20  # the HIS line


def _fonts_of(page: Any, selector: str) -> list[dict[str, Any]]:
    """The fonts Chromium really drew a node's text with (DevTools ``CSS.getPlatformFontsForNode``)."""
    cdp = page.context.new_cdp_session(page)
    try:
        cdp.send("DOM.enable")
        cdp.send("CSS.enable")
        root = cdp.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
        node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        assert node, selector
        return list(cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"])
    finally:
        cdp.detach()


def test_thai_text_is_drawn_with_a_thai_font(site: Site, page: Any, artifacts: Path) -> None:
    login(page, site, "admin")
    page.goto(site.url("/"))
    page.locator("#chart-daily[data-chart-drawn]").wait_for()
    h1 = page.locator("h1").inner_text()
    assert THAI.search(h1), h1
    fonts = _fonts_of(page, "h1")
    thai = [f for f in fonts if any(name.lower() in f["familyName"].lower() for name in THAI_FONTS)]
    # every glyph of the heading came from a real font (no box for a missing glyph): a Thai one drew the Thai
    assert thai and sum(f["glyphCount"] for f in thai) >= len(THAI.findall(h1)) * 0.8, fonts
    shot = artifacts / "overview-th.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    page.goto(site.url(f"/facility/{site.mine}"))
    page.locator("#chart-facility[data-chart-drawn]").wait_for()
    page.screenshot(path=str(artifacts / "facility-th.png"), full_page=True)
    # English is one click away on every page
    page.click("#lang-switch")
    assert page.locator("html").get_attribute("lang") == "en"
    assert "Refused payloads by reason" in page.locator("main").inner_text()


# ---- a refusal, who must fix it, and "send again" ---------------------------------------------------------

def test_a_refusal_shows_its_owner_and_send_again_confirms_it(site: Site, page: Any, artifacts: Path) -> None:
    p, h = site.province, site.neighbour
    key = p.break_one(h)  # PHR refuses this payload: its Patient has no birthDate
    off_loop(p.sync)
    login(page, site, "admin")
    page.goto(site.url(f"/facility/{h}"))
    assert tile(page, "refused") == 1
    rows = page.locator("#refusals tbody tr")
    assert rows.count() >= 1
    texts = [rows.nth(i).inner_text() for i in range(rows.count())]
    assert any("birthDate" in t for t in texts), texts
    for i in range(rows.count()):  # each reason says who must fix it
        owner = rows.nth(i).get_attribute("data-owner")
        assert owner in model.OWNER_TEXT
        assert model.OWNER_TEXT[owner][0] in rows.nth(i).locator(".owner").inner_text()
    assert all(not re.search(r"(?<!\d)\d{13}(?!\d)", t) for t in texts)  # examples masked: no full CID
    page.locator("#refusals").screenshot(path=str(artifacts / "refusals-th.png"))
    confirmed_before = tile(page, "confirmed")

    off_loop(p.build)  # the facility fixed its data in the HIS; the province rebuilt
    page.click("#send-again-button")
    page.wait_for_url(re.compile(rf"/facility/{h}"))
    page.locator('#send-again-state[data-state="done"]').wait_for(timeout=120_000)  # the page follows the job
    assert page.locator('[data-result="refused"]').inner_text().strip() == "0"
    assert tile(page, "refused") == 0
    # nothing PHR refused is left (what the validator refused at build time, never sent, stays listed)
    assert page.locator('#refusals tbody tr[data-at-build="0"]').count() == 0
    assert not any("birthDate" in page.locator("#refusals").inner_text() for _ in (0,))
    confirmed = tile(page, "confirmed")
    assert confirmed is not None and confirmed_before is not None and confirmed == confirmed_before + 1
    box = ob.Outbox(p.state_url)
    try:
        assert box.row(key)["status"] == ob.CONFIRMED  # type: ignore[index]
    finally:
        box.close()


# ---- after phrsync demo --serve: the overview is what status and PHR say ---------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _organization_summary(sandbox_dir: Path, base_url: str, hcodes: list[str],
                          months: list[str]) -> dict[str, dict[str, int]]:
    """What the sandbox answers to OrganizationSummary ``month_summary``: {hcode: {day: encounters}}, asked over
    HTTP with an Account Center token of a reader account made for the purpose."""
    import secrets

    from phrsync.sandbox import auth, jwt
    from phrsync.sandbox.settings import SandboxConfig
    from phrsync.sandbox.store import Store

    cfg = SandboxConfig(data_dir=sandbox_dir)
    st = Store(cfg.url, cfg.commit_batch_max, cfg.sqlite_synchronous)
    pw = secrets.token_urlsafe(12)
    try:
        for h in hcodes:
            auth.add_user(st, cfg, f"check{h}", h, pw)
    finally:
        st.close()
    out: dict[str, dict[str, int]] = {}
    with httpx.Client(base_url=base_url, timeout=30) as c:
        for h in hcodes:
            tok = c.post("/token", params={"Action": "get_moph_access_token"},
                         json={"user": f"check{h}", "password_hash": jwt.password_hash(pw, cfg.hash_key()),
                               "hospital_code": h})
            assert tok.status_code == 200, tok.text
            days: dict[str, int] = {}
            for m in months:
                r = c.get("/api/OrganizationSummary", params={"data": "month_summary", "month": m,
                                                              "hospital_code": h},
                          headers={"Authorization": f"Bearer {tok.text}"})
                assert r.status_code == 200, r.text
                days.update({d["date"]: int(d["encounter_count"]) for d in r.json()["result"]})
            out[h] = days
    return out


def _confirmed_encounters(state_url: str) -> dict[str, int]:
    """Encounter payloads PHR confirmed, per facility, straight from the state store's rows."""
    from sqlalchemy import create_engine, func, select

    eng = create_engine(state_url)
    try:
        with eng.connect() as c:
            q = (select(ob.outbox.c.hospcode, func.count()).where(ob.outbox.c.endpoint == ob.ENCOUNTER_EP,
                                                                  ob.outbox.c.status == ob.CONFIRMED)
                 .group_by(ob.outbox.c.hospcode))
            return {h: int(n) for h, n in c.execute(q)}
    finally:
        eng.dispose()


def test_after_demo_serve_the_overview_is_what_status_and_phr_say(browser: Any, tmp_path: Path,
                                                                  artifacts: Path) -> None:
    """``phrsync demo --serve`` as a person runs it; then the overview's and the facilities table's HIS and PHR
    figures against ``phrsync status --json`` (the state store), the staging store's own count of the visits and
    what the sandbox answers to OrganizationSummary."""
    from phrsync.f43.api import open_store
    from phrsync.f43.read import encounter_counts

    port = _free_port()
    conf = tmp_path / "phrsync.toml"
    conf.write_text(f'data_dir = "data"\n[web]\nport = {port}\n', encoding="utf-8")
    data = tmp_path / "demo"
    # no injected faults: with them a day PHR failed to answer stays unasked, and the test would be about luck
    proc = subprocess.Popen([sys.executable, "-m", "phrsync", "--config", str(conf), "demo", "-n", "400",
                             "--faults", "0", "--data-dir", str(data), "--serve", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    ctx = browser.new_context(locale="th-TH", timezone_id="Asia/Bangkok")
    try:
        assert proc.stdout is not None
        info: dict[str, Any] = {}
        for line in proc.stdout:
            if line.startswith('{"url"'):
                info = json.loads(line)
                break
        assert info, proc.stderr.read() if proc.stderr else ""
        password = Path(info["password_file"]).read_text(encoding="utf-8").split("password: ")[1].strip()
        page = ctx.new_page()
        for _ in range(100):
            try:
                page.goto(info["url"] + "login")
                break
            except Exception:
                assert proc.poll() is None
                time.sleep(0.1)
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_url(info["url"])
        page.screenshot(path=str(artifacts / "demo-overview-th.png"), full_page=True)
        tiles = {k: tile(page, k) for k in ("his_month", "phr_month", "pending", "refused", "failed")}

        # phrsync status --json: the state store's view, facility by facility
        run = CliRunner()
        r = run.invoke(cli, ["--config", str(conf), "status", "--target", "sandbox", "--state",
                             str(data / "outbox.sqlite"), "-i", str(data / "payloads.ndjson"), "--json"])
        assert r.exit_code == 0, r.output
        status = json.loads(r.stdout)["facilities"]
        assert tiles["pending"] == sum(f["pending"] for f in status.values())
        assert tiles["refused"] == sum(f["refused"] for f in status.values())
        assert tiles["failed"] == sum(f["failed"] for f in status.values())

        # the staging store, counted from its visits (not the summary table the web reads)
        with open_store(data / "staging.duckdb") as stg:
            his_days = encounter_counts(stg)
        # the overview's month (this month, Asia/Bangkok): shown in the Buddhist era, ISO in its datetime
        month = page.locator(".asof time[datetime]").get_attribute("datetime") or ""
        assert re.fullmatch(r"\d{4}-\d{2}", month), page.locator(".asof").inner_text()
        his: dict[str, int] = {}
        for d in his_days:
            his[d.hospcode] = his.get(d.hospcode, 0) + d.total
        his_month = sum(d.total for d in his_days if f"{d.day:%Y-%m}" == month)
        assert tiles["his_month"] == his_month

        # the sandbox's OrganizationSummary, asked over HTTP, for every month the HIS has and this one
        months = sorted({f"{d.day:%Y-%m}" for d in his_days} | {month})
        sandbox_url = info["sandbox_dashboard"].removesuffix("/dashboard")
        phr = _organization_summary(data / "sandbox", sandbox_url, sorted(status), months)
        phr_month = sum(n for days in phr.values() for day, n in days.items() if day.startswith(month))
        # PHR was never asked about a month without visits: "not known yet" is the honest answer there
        assert tiles["phr_month"] == phr_month or (tiles["phr_month"] is None and his_month == 0)

        # facility by facility, all months: the table's HIS, confirmed, held by PHR
        confirmed = _confirmed_encounters(f"sqlite:///{(data / 'outbox.sqlite').resolve()}")
        page.goto(info["url"] + "facilities")
        seen = 0
        for row in visible_rows(page):
            h, cells = row["code"], row["cells"]
            if h not in status:
                continue
            seen += 1
            assert number(cells[column("his")]) == his.get(h), h
            # the table's "confirmed" is the encounters' (status counts every endpoint): read from the store
            assert number(cells[column("confirmed")]) == confirmed.get(h, 0), h
            assert number(cells[column("refused")]) in (status[h]["refused"], None), h
            assert number(cells[column("phr_holds")]) == sum(phr[h].values()), h
        assert seen == len(status) and seen > 10
    finally:
        ctx.close()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


# ---- the user guide's pictures ---------------------------------------------------------------------------------

def test_pictures_for_the_user_guide(site: Site, browser: Any, artifacts: Path) -> None:
    """The screenshots of docs/user-guide-th.md §11, taken from the site as it runs: tests/artifacts/guide/ (the
    guide's copies in docs/img/ are these, committed by hand when the pages change)."""
    out = artifacts / "guide"
    out.mkdir(exist_ok=True)
    ctx = browser.new_context(locale="th-TH", timezone_id="Asia/Bangkok", viewport={"width": 1200, "height": 760},
                              device_scale_factor=1)
    try:
        page = ctx.new_page()
        page.goto(site.url("/login"))
        page.locator("main").screenshot(path=str(out / "web-login.png"))
        login(page, site, "admin")
        page.locator("#chart-daily[data-chart-drawn]").wait_for()
        page.screenshot(path=str(out / "web-overview.png"))
        page.goto(site.url("/facilities?sort=his&dir=desc"))
        page.screenshot(path=str(out / "web-facilities.png"))
        h = next(x for x in reversed(site.province.facilities) if x not in (site.mine, site.neighbour, site.other))
        site.province.break_one(h)
        off_loop(site.province.sync)
        page.goto(site.url(f"/facility/{h}"))
        page.locator("#chart-facility[data-chart-drawn]").wait_for()
        page.screenshot(path=str(out / "web-facility.png"))
        page.locator("#refusals").screenshot(path=str(out / "web-refusals.png"))
        page.locator("#send-again").screenshot(path=str(out / "web-send-again.png"))
        page.goto(site.url("/phr"))
        page.screenshot(path=str(out / "web-phr.png"))
        page.goto(site.url("/runs"))
        page.screenshot(path=str(out / "web-runs.png"))
        page.context.clear_cookies()
        login(page, site, "facility")
        page.goto(site.url(f"/facility/{site.other}"))
        page.locator("main").screenshot(path=str(out / "web-forbidden.png"))
    finally:
        ctx.close()
    for p in out.iterdir():
        assert p.stat().st_size > 5_000, p  # a picture, not a blank
