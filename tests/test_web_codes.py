"""The web's review page of unmapped codes (``/codes/unmapped``): ranked by waiting payloads, suggestions from the
imported (synthetic) TMT, an admin accepts one (CSRF-checked, audited, the mapping's source names the reviewer)
and the code leaves the list; facility staff see only their facility's codes and cannot accept."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from phrsync.phr.buildfile import BuildSummary, write_summary
from phrsync.synth.drugs import plan, write_tmt_zip
from phrsync.terminology.codestore import CodeStore, load_drug_codes
from phrsync.terminology.tmtimport import import_tmt
from phrsync.web import model
from phrsync.web.app import create_app
from phrsync.web.auth import ADMIN, FACILITY, AuthStore

PW = "correct horse battery staple"
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def login(c: TestClient, username: str) -> None:
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text)
    assert token
    r = c.post("/login", data={"username": username, "password": PW, "csrf": token.group(1)}, follow_redirects=False)
    assert r.status_code == 303, r.text[:300]


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m
    return m.group(1)


@pytest.fixture
def site(tmp_path: Path) -> tuple[TestClient, TestClient, AuthStore, Path, tuple[str, str, str]]:
    p = plan()
    did24, tpu, name = p["catalogue"][0]
    codes = tmp_path / "codes.sqlite"
    with CodeStore(codes) as st:
        import_tmt(st, write_tmt_zip(tmp_path, p))
    build = tmp_path / "payloads.ndjson"
    build.write_bytes(b"")
    write_summary(build, BuildSummary(built_at=dt.datetime.now(dt.UTC), facilities={
        "10699": {"AllergyIntolerancev1": {"built": 0, "refused": 0, "skipped": 0, "waiting": 3}}},
        unmapped=[{"kind": "allergy", "hospcode": "10699", "code": did24, "name": name, "payloads": 3, "waiting": 3},
                  {"kind": "drug", "hospcode": "10870", "code": "L-0007", "name": name, "payloads": 9,
                   "waiting": 0}]))
    state = f"sqlite:///{tmp_path / 'state.sqlite'}"
    store = AuthStore(state, hasher=CHEAP)
    store.add_user("admin", PW, ADMIN)
    store.add_user("staff70", PW, FACILITY, facility="10870")
    app = create_app(model.Sources(state_url=state, build_file=build, code_store=codes), auth_store=store)
    admin, staff = TestClient(app), TestClient(app)
    login(admin, "admin")
    login(staff, "staff70")
    return admin, staff, store, codes, (did24, tpu, name)


def test_the_list_is_ranked_with_suggestions_and_scoped(
        site: tuple[TestClient, TestClient, AuthStore, Path, tuple[str, str, str]]) -> None:
    admin, staff, _store, _codes, (did24, tpu, _name) = site
    r = admin.get("/codes/unmapped")
    assert r.status_code == 200
    assert "รหัสที่ยังไม่จับคู่" in r.text  # Thai first, English on asking
    assert "Unmapped codes" in admin.get("/codes/unmapped?lang=en").text
    rows = re.findall(r'<tr data-kind="(\w+)" data-hospcode="(\d+)" data-code="([^"]+)"', r.text)
    assert rows == [("allergy", "10699", did24), ("drug", "10870", "L-0007")]  # waiting first
    assert 'id="waiting-count">3<' in r.text
    assert 'action="/codes/unmapped/accept"' in r.text  # the admin may accept a suggestion
    mine = staff.get("/codes/unmapped")
    assert mine.status_code == 200
    assert re.findall(r'<tr data-kind="(\w+)" data-hospcode="(\d+)"', mine.text) == [("drug", "10870")]
    assert did24 not in mine.text and "/codes/unmapped/accept" not in mine.text
    assert staff.get("/codes/unmapped?facility=10699").status_code == 200  # their own facility regardless
    assert did24 not in staff.get("/codes/unmapped?facility=10699").text
    assert admin.get("/codes/unmapped?kind=bogus").status_code == 400


def test_admin_accepts_a_suggestion_audited_and_the_next_build_has_it(
        site: tuple[TestClient, TestClient, AuthStore, Path, tuple[str, str, str]]) -> None:
    admin, staff, store, codes, (did24, tpu, _name) = site
    html = admin.get("/codes/unmapped").text
    form = {"kind": "allergy", "hcode": "10699", "code": did24, "tmtid": tpu}
    assert admin.post("/codes/unmapped/accept", data={**form, "csrf": "forged"}).status_code == 403
    token = csrf_of(staff.get("/codes/unmapped").text)
    assert staff.post("/codes/unmapped/accept", data={**form, "csrf": token}).status_code == 403
    r = admin.post("/codes/unmapped/accept", data={**form, "csrf": csrf_of(html)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/codes/unmapped?done=")
    after = admin.get(r.headers["location"]).text
    assert 'id="accepted"' in after and f'data-code="{did24}"' not in after
    c = load_drug_codes(codes).lookup("10699", did24)
    assert c is not None and c.substances and "reviewed by admin" in c.source
    # audited (a long digit run such as a 24-digit code is masked in the log like a CID would be)
    assert any(e.action == "code_accept" and e.username == "admin" and "kind=allergy facility=10699" in e.detail
               and f"tmtid={tpu}" in e.detail for e in store.audit_log())
    bad = admin.post("/codes/unmapped/accept", data={**form, "tmtid": "000000", "csrf": csrf_of(after)})
    assert bad.status_code == 400 and "000000" in bad.text
