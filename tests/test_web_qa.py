"""What a QA pass over the monitoring web found, each kept from coming back: a mistyped address is the site's
bilingual page (not the framework's English JSON), the overview's month is Buddhist era like every other date,
and a fresh install's facility count is "not known yet", not 0."""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from phrsync.thai import BANGKOK, be_month
from phrsync.web import model
from phrsync.web.app import WebOptions, create_app
from phrsync.web.auth import ADMIN, AuthStore

PW = "correct horse battery staple"
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
UNKNOWN_TH = "ยังไม่ทราบ"


def _login(c: TestClient, username: str = "admin1") -> None:
    r = c.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', r.text)
    assert token
    r = c.post("/login", data={"username": username, "password": PW, "csrf": token.group(1)},
               follow_redirects=False)
    assert r.status_code == 303


@pytest.fixture
def fresh(tmp_path: Path) -> TestClient:
    """A site on a state store that never saw a run, with no staging store: a fresh install."""
    state = f"sqlite:///{tmp_path / 'state.sqlite'}"
    store = AuthStore(state, hasher=CHEAP)
    store.add_user("admin1", PW, ADMIN)
    app = create_app(model.Sources(state_url=state, staging=tmp_path / "staging.duckdb"), WebOptions(), store)
    c = TestClient(app)
    _login(c)
    return c


def _tile(html: str, name: str) -> str:
    m = re.search(rf'data-tile="{name}"><span>[^<]*</span><b>(.*?)</b>', html, re.S)
    assert m, name
    return re.sub(r"<[^>]+>|\{#.*?#\}", "", m.group(1)).strip()


@pytest.mark.parametrize("path", ["/facilitys", "/facility/02435/nothing", "/static/nothing.js"])
def test_a_mistyped_address_is_a_bilingual_page(fresh: TestClient, path: str) -> None:
    r = fresh.get(path)
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), r.text[:200]
    assert "ไม่มีหน้านี้" in r.text and "no such page" in r.text and '"detail"' not in r.text
    assert r.headers["cache-control"] == "no-store" or path.startswith("/static/")
    r = fresh.get("/api/nothing")  # under /api/ the same, as JSON
    assert r.status_code == 404 and r.json()["error"]["en"] == "no such page: check the address"


def test_a_wrong_method_is_a_bilingual_page(fresh: TestClient) -> None:
    r = fresh.get("/facility/02435/send-again")  # the action is a POST (a typed address is a GET)
    assert r.status_code == 405 and "หน้านี้ไม่รับคำขอแบบนี้" in r.text and '"detail"' not in r.text


def test_the_overview_month_is_buddhist_era(fresh: TestClient) -> None:
    today = dt.datetime.fromtimestamp(time.time(), BANGKOK).date()
    iso = f"{today:%Y-%m}"
    for lang in ("th", "en"):
        html = fresh.get(f"/?lang={lang}").text
        shown = re.sub(r'(datetime|data-[a-z-]+)="[^"]*"', "", html)  # ISO only in machine attributes
        assert be_month(today, lang) in shown and iso not in shown, lang
        title = fresh.get(f"/api/chart/districts?lang={lang}").json()["option"]["title"]["text"]
        assert be_month(today, lang) in title and iso not in title, title


def test_a_fresh_install_does_not_count_zero_facilities(fresh: TestClient) -> None:
    """No staging, no run: how many facilities there are is not known yet (the page says why)."""
    html = fresh.get("/").text
    assert _tile(html, "facilities") == UNKNOWN_TH


def test_a_cid_typed_into_the_search_is_not_shown_back(fresh: TestClient) -> None:
    cid = "1270119065670"
    for path in (f"/facilities?q={cid}", f"/facilities?q={cid}&lang=en"):
        html = fresh.get(path).text
        assert cid not in html and "1-2701-xxxxx-xx-0" in html, path  # the box (and the export links) masked
    assert cid not in fresh.get(f"/facilities.csv?q={cid}").content.decode("utf-8-sig")
