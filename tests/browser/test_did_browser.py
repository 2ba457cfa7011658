"""The Digital ID follow-up lists in a real browser (Chromium through Playwright), as issue #13 asks: a facility
user sees their own facility's list, masked, and downloads it masked; another facility's list is refused with
403 however it is reached — a link copied from the province admin's page, an address typed by hand, the export
URL — and nothing of it (no name, no masked CID) reaches the page.

The site is served over a small Digital ID state of its own (not the province of :mod:`webprovince`: the
follow-up lists need only the state store), with one account per role made through the web's account store."""

from __future__ import annotations

import csv
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browsing import Account, Site, keep, login
from f43files import cid

CID_RUN = re.compile(r"(?<![0-9])[0-9]{13}(?![0-9])")
MINE, NEIGHBOUR, OTHER = "10699", "00017", "10866"  # 2701, 2701, 2702


@pytest.fixture(scope="module")
def site(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    from argon2 import PasswordHasher

    from phrsync.did.store import CITIZEN, SOURCE_IMPORT, DidStore, Person
    from phrsync.web import model
    from phrsync.web.app import WebOptions, create_app
    from phrsync.web.auth import AuthStore
    from phrsync.web.server import running

    root = tmp_path_factory.mktemp("web-did")
    url = f"sqlite:///{root / 'state.sqlite'}"
    st = DidStore(url)
    people = [Person(cid(i), MINE, "2701", f"สมหญิง ใจดี {i}") for i in range(1, 9)]
    people += [Person(cid(i), NEIGHBOUR, "2701", f"เพื่อนบ้าน {i}") for i in range(20, 25)]
    people += [Person(cid(i), OTHER, "2702", f"อำเภออื่น {i}") for i in range(40, 46)]
    st.replace_people(CITIZEN, SOURCE_IMPORT, people, file="nhso.csv")
    for i, r in ((1, 1), (2, 0), (20, 0), (40, 0), (41, 1)):
        st.record_answer(cid(i), r, "sandbox", 1)
    st.take_snapshot()
    st.close()
    store = AuthStore(url, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    accounts = {
        "admin": Account("somchai.admin", secrets.token_urlsafe(12), "admin"),
        "district": Account("suda.district", secrets.token_urlsafe(12), "district", district="2701"),
        "facility": Account("malee.facility", secrets.token_urlsafe(12), "facility", facility=MINE),
    }
    for a in accounts.values():
        store.add_user(a.username, a.password, a.role, district=a.district, facility=a.facility, client="test")
    app = create_app(model.Sources(state_url=url, facility_names={MINE: "รพ.สระแก้ว", OTHER: "รพ.วังน้ำเย็น"}),
                     WebOptions(), store)
    with running(app) as w:
        yield Site(w.base_url, None, app, accounts, mine=MINE, other=OTHER, neighbour=NEIGHBOUR)
    store.close()


def _list(page: Any) -> list[dict[str, str]]:
    return page.evaluate("""() => Array.from(document.querySelectorAll('#did-followup tbody tr[data-cid]'))
        .map(tr => ({cid: tr.dataset.cid, text: tr.innerText}))""")


def test_a_facility_user_sees_their_own_list_masked_and_no_other(site: Site, page: Any, artifacts: Path) -> None:
    # the links the province admin's page offers (what a colleague might paste into a chat)
    login(page, site, "admin", "/did")
    admin_links = {h: page.locator(f'#did-facilities-table a[href="/did/facility/{h}"]').get_attribute("href")
                   for h in (MINE, NEIGHBOUR, OTHER)}
    assert all(admin_links.values())
    page.goto(site.url(f"/did/facility/{OTHER}"))
    other_cids = [r["cid"] for r in _list(page)]
    assert len(other_cids) == 5  # 40 answered no, 42–45 not asked; 41 has one
    page.context.clear_cookies()

    login(page, site, "facility", "/did")
    links = page.eval_on_selector_all("#did-facilities-table a", "els => els.map(a => a.getAttribute('href'))")
    assert links == [f"/did/facility/{MINE}"]  # only their own facility is offered
    page.click(f'#did-facilities-table a[href="/did/facility/{MINE}"]')
    page.wait_for_url(f"**/did/facility/{MINE}")
    rows = _list(page)
    assert len(rows) == 7  # 8 people, 1 with a Digital ID
    body = page.locator("main").inner_text()
    assert all(re.fullmatch(r"\d-\d{4}-xxxxx-xx-\d", r["cid"]) for r in rows)
    assert all(r["cid"] in r["text"] for r in rows) and not CID_RUN.search(page.content())
    assert "สมหญิง ใจดี 3" in body and "ยังไม่ได้ตรวจ Digital ID" in body
    page.screenshot(path=str(artifacts / "did-followup-own.png"), full_page=True)

    with page.expect_download() as dl:
        page.click("#export-followup-csv")
    path = keep(Path(dl.value.path()), artifacts, "did-followup.csv")
    lines = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    assert [line[1] for line in lines[1:]] == [r["cid"] for r in rows]
    assert not CID_RUN.search(path.read_text(encoding="utf-8-sig"))

    for h in (OTHER, NEIGHBOUR):  # another district's facility, and one of their own district
        for how, path_ in (("link", admin_links[h]), ("typed", f"/did/facility/{h}")):
            resp = page.goto(site.url(str(path_)))
            assert resp is not None and resp.status == 403, (h, how)
            assert "403" in page.locator("h1").inner_text()
            html = page.content()
            assert "data-cid" not in html and "อำเภออื่น" not in html and "เพื่อนบ้าน" not in html
            assert not any(c in html for c in other_cids)
        for ext in ("csv", "xlsx"):
            r = page.request.get(site.url(f"/did/facility/{h}.{ext}"))
            assert r.status == 403, (h, ext)
            assert "xxxxx" not in r.text()
    page.goto(site.url(f"/did/facility/{OTHER}"))
    page.screenshot(path=str(artifacts / "did-followup-forbidden.png"), full_page=True)
