"""Local MOPH-PHR server ("sandbox") over real HTTP on loopback, SQLite storage."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from test_sandbox_support import (
    FIXTURES,
    PASSWORD_KEY,
    SERVED,
    FakeClock,
    login,
    make_cid,
    refs,
    set_hcode,
    update_payload,
    upsert_and_remove_scenario,
    valid,
    webapp,
)

from phrsync.sandbox import auth, codec, ekyc, jwt
from phrsync.sandbox.server import SandboxThread, run_in_thread, running
from phrsync.sandbox.settings import FaultConfig, SandboxConfig

ENVELOPE_KEYS = {"result", "MessageCode", "Message", "RequestTime", "EndpointIP", "EndpointPort",
                 "processing_time_ms"}


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def st(tmp_path_factory: pytest.TempPathFactory, clock: FakeClock) -> Iterator[SandboxThread]:
    cfg = SandboxConfig(data_dir=tmp_path_factory.mktemp("sbx"), password_key=PASSWORD_KEY,
                        rate_limit_per_minute=0, clock=clock)
    with running(cfg) as s:
        yield s


@pytest.fixture(scope="module")
def c99(st: SandboxThread) -> Iterator[httpx.Client]:
    c = login(st, "99999")
    yield c
    c.close()


_CLIENTS: dict[str, httpx.Client] = {}


def stats(st: SandboxThread) -> dict:
    """Dashboard figures; one reused client (creating an httpx client costs more than the request)."""
    c = _CLIENTS.get(st.base_url)
    if c is None:
        c = _CLIENTS[st.base_url] = httpx.Client(base_url=st.base_url)
    return c.get("/dashboard", params={"format": "json"}).json()


# ---- JWT and password hash (unit) -------------------------------------------------------------------

def test_jwt_roundtrip_forgery_and_expiry() -> None:
    tok = jwt.encode({"exp": 2_000_000_000, "hospital_code": "99999"}, b"s1")
    assert jwt.decode(tok, b"s1", now=1_900_000_000)["hospital_code"] == "99999"
    with pytest.raises(jwt.TokenError) as e:
        jwt.decode(tok, b"s2", now=1_900_000_000)
    assert not e.value.expired
    h, p, s = tok.split(".")
    forged_claims = base64.urlsafe_b64encode(b'{"exp":2000000000,"hospital_code":"11111"}').rstrip(b"=").decode()
    with pytest.raises(jwt.TokenError):
        jwt.decode(f"{h}.{forged_claims}.{s}", b"s1", now=1_900_000_000)
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    with pytest.raises(jwt.TokenError):
        jwt.decode(f"{none_header}.{p}.", b"s1", now=1_900_000_000)
    with pytest.raises(jwt.TokenError) as e:
        jwt.decode(tok, b"s1", now=2_000_000_001)
    assert e.value.expired


def test_password_hash_is_upper_hex_hmac() -> None:
    import hashlib
    import hmac

    h = jwt.password_hash("pässword", "k")
    assert h == hmac.new(b"k", "pässword".encode(), hashlib.sha256).hexdigest().upper()
    assert len(h) == 64 and h == h.upper()


# ---- token endpoint -----------------------------------------------------------------------------

def test_token_endpoint_body_query_and_failures(st: SandboxThread) -> None:
    auth.add_user(st.sandbox.store, st.sandbox.cfg, "tok1", "10699", "pw1")
    good = jwt.password_hash("pw1", PASSWORD_KEY)
    url = st.base_url + "/token"
    r = httpx.post(url, params={"Action": "get_moph_access_token"},
                   content=json.dumps({"user": "tok1", "password_hash": good, "hospital_code": "10699"}))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    claims = jwt.decode(r.text, st.sandbox.cfg.secret(), now=st.sandbox.cfg.clock())
    assert claims["hospital_code"] == "10699" and "MOPH_PHR_HIE" in claims["permissions"]
    assert claims["exp"] > time.time() + 3600
    r = httpx.get(url, params={"Action": "get_moph_access_token", "user": "tok1", "password_hash": good,
                               "hospital_code": "10699"})
    assert r.status_code == 200 and r.text.count(".") == 2
    r = httpx.post(url, params={"Action": "get_moph_access_token", "user": "tok1", "password_hash": "0" * 64,
                                "hospital_code": "10699"})
    assert r.status_code == 401 and r.json()["MessageCode"] == 401 and r.json()["result"] is None
    r = httpx.post(url, params={"Action": "get_moph_access_token", "user": "tok1", "password_hash": good,
                                "hospital_code": "10700"})
    assert r.status_code == 403
    assert httpx.post(url, params={"Action": "other"}).status_code == 404


def test_lockout_after_repeated_failures(st: SandboxThread, clock: FakeClock) -> None:
    auth.add_user(st.sandbox.store, st.sandbox.cfg, "lock1", "10700", "pw")
    url = st.base_url + "/token"
    q = {"Action": "get_moph_access_token", "user": "lock1", "hospital_code": "10700"}
    for _ in range(5):
        assert httpx.post(url, params={**q, "password_hash": "F" * 64}).status_code == 401
    good = {**q, "password_hash": jwt.password_hash("pw", PASSWORD_KEY)}
    r = httpx.post(url, params=good)
    assert r.status_code == 401 and "locked" in r.json()["Message"]
    clock.advance(15 * 60 + 1)
    assert httpx.post(url, params=good).status_code == 200


def test_missing_forged_and_expired_tokens_are_401(st: SandboxThread) -> None:
    url = st.base_url + "/api/UpdatePHRv1"
    body = update_payload("99999", make_cid(1), "VNX")
    r = httpx.post(url, json=body)
    assert r.status_code == 401 and set(r.json()) >= ENVELOPE_KEYS
    forged = jwt.encode({"exp": time.time() + 3600, "hospital_code": "99999", "permissions": ["MOPH_PHR_HIE"]},
                        b"not-the-server-secret")
    assert httpx.post(url, json=body, headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    expired = jwt.encode({"exp": st.sandbox.cfg.clock() - 5, "hospital_code": "99999",
                          "permissions": ["MOPH_PHR_HIE"]}, st.sandbox.cfg.secret())
    r = httpx.post(url, json=body, headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and "expired" in r.json()["Message"]
    no_perm = jwt.encode({"exp": st.sandbox.cfg.clock() + 60, "hospital_code": "99999", "permissions": []},
                         st.sandbox.cfg.secret())
    assert httpx.post(url, json=body, headers={"Authorization": f"Bearer {no_perm}"}).status_code == 403
    assert httpx.post(url, json=body, headers={"Authorization": "Bearer 99999:{NOPE}"}).status_code == 401
    assert refs(login(st, "99999"), "99999", "2025-01-15").count("99999:VNX") == 0


def test_non_ascii_bearer_is_401_not_500(st: SandboxThread) -> None:
    """A bearer whose claims segment holds non-ASCII bytes (e.g. Latin-1 in the header) crashed the signature
    check with a UnicodeEncodeError: 500 and a traceback instead of 401 invalid token."""
    with pytest.raises(jwt.TokenError):
        jwt.decode("eyJhbGciOiJIUzI1NiJ9.\u00e9\u00e9.abc", b"s1", now=1_900_000_000)
    url = st.base_url + "/api/OrganizationSummary"
    q = {"data": "encounter_ref_code", "date": "2025-01-15"}
    for bearer in (b"Bearer eyJhbGciOiJIUzI1NiJ9.\xe9\xe9.abc", b"Bearer \xe9.\xe9.\xe9"):
        r = httpx.get(url, params=q, headers={"Authorization": bearer})
        assert r.status_code == 401 and r.json()["Message"] == "invalid token"
    r = httpx.post(st.base_url + "/api/UpdatePHRv1", json=update_payload("99999", make_cid(1), "VNA"),
                   headers={"Authorization": b"Bearer eyJhbGciOiJIUzI1NiJ9.\xe9\xe9.abc"})
    assert r.status_code == 401


def test_token_expires_on_the_clock_and_501_option(tmp_path: Path) -> None:
    clk = FakeClock()
    cfg = SandboxConfig(data_dir=tmp_path, password_key=PASSWORD_KEY, clock=clk, expired_status=501)
    with running(cfg) as s:
        c = login(s, "99999")
        q = {"data": "encounter_ref_code", "date": "2025-01-15"}
        assert c.get("/api/OrganizationSummary", params=q).status_code == 200  # verified and cached
        clk.advance(cfg.jwt_ttl_seconds + 1)
        r = c.get("/api/OrganizationSummary", params=q)
        assert r.status_code == 501 and r.json()["MessageCode"] == 501


def test_cross_facility_is_403(st: SandboxThread, c99: httpx.Client) -> None:
    other = update_payload("10699", make_cid(2), "VN1")
    r = c99.post("/api/UpdatePHRv1", json=other)
    assert r.status_code == 403 and r.json()["MessageCode"] == 403
    assert c99.get("/api/OrganizationSummary", params={"data": "encounter_ref_code", "date": "2025-01-15",
                                                        "hospital_code": "10699"}).status_code == 403
    assert c99.get("/api/RemoveEncounter", params={"hospital_code": "10699",
                                                    "encounter_ref_code": "10699:VN1"}).status_code == 403
    assert c99.post("/api/UpdateAgentStatus", json={"hospital_code": "10699", "agent_status": "x"}).status_code == 403
    imm = set_hcode(valid("ImmunizationRegisterv1"), "10699")
    assert c99.post("/api/ImmunizationRegisterv1", json=imm).status_code == 403


def test_facility_token_only_for_updatephr(st: SandboxThread) -> None:
    token, exp = auth.issue_facility_token(st.sandbox.store, st.sandbox.cfg, "10701")
    assert token.startswith("10701:{") and exp > time.time() + 360 * 86400
    h = {"Authorization": f"Bearer {token}"}
    r = httpx.post(st.base_url + "/api/UpdatePHRv1", json=update_payload("10701", make_cid(3), "VN1"), headers=h)
    assert r.status_code == 200, r.text
    r = httpx.get(st.base_url + "/api/OrganizationSummary", headers=h,
                  params={"data": "encounter_ref_code", "date": "2025-01-15"})
    assert r.status_code == 403
    new, _ = auth.issue_facility_token(st.sandbox.store, st.sandbox.cfg, "10701")  # revokes the old one
    r = httpx.post(st.base_url + "/api/UpdatePHRv1", json=update_payload("10701", make_cid(3), "VN1"), headers=h)
    assert r.status_code == 401
    r = httpx.post(st.base_url + "/api/UpdatePHRv1", json=update_payload("10701", make_cid(3), "VN1"),
                   headers={"Authorization": f"Bearer {new}"})
    assert r.status_code == 200
    row = st.sandbox.store.read(lambda c: c.execute(auth.select(auth.store.facility_tokens)).mappings().all())
    assert all(new not in str(dict(x)) for x in row)  # only a digest is stored


# ---- uploads and read side ---------------------------------------------------------------------------

def test_valid_updatephr_readable_through_webapp(c99: httpx.Client) -> None:
    p = valid("UpdatePHRv1")
    cid = p["Patient"]["identifier"][0]["value"]
    r = c99.post("/api/UpdatePHRv1", json=p)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= ENVELOPE_KEYS | {"processing_warning"}
    assert body["MessageCode"] == 200 and body["Message"] == "OK" and body["RequestTime"].endswith("Z")
    enc = [e for e in webapp(c99, "Encounter", cid) if e["encounter_ref_code"] == "99999:VN0001"][0]
    assert enc["organization_code"] == "99999" and enc["class_code"] == "AMB"
    assert enc["period_start"] == "2025-01-15T09:00:00" and enc["period_start_text"].startswith("15 ม.ค. 2568")
    assert enc["encounter_diagnosis_icd"] == "E11.9" and enc["vital_sign_bps_text"] == "125/78"
    s = webapp(c99, "PatientSummary", cid)
    assert s["patient"]["full_name_th"] == "นายทดสอบ ตัวอย่าง" and s["patient"]["gender"] == "M"
    assert s["patient_names_en"][0]["first_name"] == "Test"
    r = c99.post("/api/WebApp", params={"Action": "Encounter"}, json={"cid": cid})
    assert r.status_code == 200 and r.json()["result"]
    assert c99.get("/api/WebApp", params={"Action": "NoSuch", "cid": cid}).status_code == 404


@pytest.mark.parametrize("endpoint", [e for e in SERVED if e != "UpdatePHRv1"])
def test_other_valid_uploads_accepted(st: SandboxThread, c99: httpx.Client, endpoint: str) -> None:
    before = stats(st)["stored_bytes"]
    r = c99.post(f"/api/{endpoint}", json=valid(endpoint))
    assert r.status_code == 200, r.text
    assert r.json()["result"]["received"] >= 1
    if endpoint != "OrgEncounterSummary":
        assert stats(st)["stored_bytes"] > before
    action = {"ImmunizationRegisterv1": "Immunization", "PatientChronicRegisterv1": "NCD",
              "AllergyIntolerancev1": "Allergy", "ReferralRequest": "Referral", "CareGiver": "CareGiver",
              "SelfObservation": "SelfObservation"}.get(endpoint)
    if action:
        p = valid(endpoint)
        cid = p["person"]["cid"] if endpoint == "SelfObservation" else p["Patient"]["identifier"][0]["value"]
        items = webapp(c99, action, cid)
        assert items and items[0]["organization_code"] == "99999"
        before_n = len(items)
        assert c99.post(f"/api/{endpoint}", json=p).status_code == 200  # resend: replaced, not duplicated
        assert len(webapp(c99, action, cid)) == before_n


def _invalid_cases() -> list[Path]:
    out = []
    for f in sorted((FIXTURES / "invalid").glob("*.json")):
        if json.loads(f.read_text(encoding="utf-8"))["endpoint"] in SERVED:
            out.append(f)
    return out


@pytest.mark.parametrize("case", _invalid_cases(), ids=lambda p: p.stem)
def test_invalid_fixtures_refused_with_paths_and_nothing_stored(st: SandboxThread, c99: httpx.Client,
                                                                case: Path) -> None:
    from phrsync.phr import validate as v

    d = json.loads(case.read_text(encoding="utf-8"))
    body = base64.b64decode(d["body_b64"]) if "body_b64" in d else json.dumps(d["payload"]).encode()
    _, issues = v.parse_and_validate(d["endpoint"], body)
    before = stats(st)
    r = c99.post(f"/api/{d['endpoint']}", content=body, headers={"Content-Type": "application/json"})
    ans = r.json()
    assert set(ans) >= ENVELOPE_KEYS
    if v.has_errors(issues):
        assert r.status_code == 400 and ans["MessageCode"] == 400 and ans["result"] is None
        got = {(i["path"], i["rule"]) for i in ans["issues"]}
        want = {(p, rule) for p, rule in d["expect"]} & {(i.path, i.rule) for i in v.errors(issues)}
        assert want and want <= got
        assert all({"path", "rule", "message_th", "message_en", "severity"} <= set(i) for i in ans["issues"])
        assert stats(st) == before
    else:  # warnings only: accepted, warnings reported
        assert r.status_code == 200, r.text
        assert ans["processing_warning"]


def test_access_log_masks_cids(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = SandboxConfig(data_dir=tmp_path, password_key=PASSWORD_KEY, access_log=True)
    cid = make_cid(14)
    with caplog.at_level("INFO", logger="phrsync.sandbox.access"), running(cfg) as s:
        c = login(s, "99999")
        assert c.get("/api/WebApp", params={"Action": "Encounter", "cid": cid}).status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "phrsync.sandbox.access"]
    assert any("/api/WebApp" in x and " 200 " in x for x in lines)
    assert cid not in caplog.text and cid[0] + "-" + cid[1:5] + "-xxxxx" in caplog.text


def test_access_log_hides_query_credentials_and_percent_encoded_cids(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """/token takes user and password_hash as query parameters too, and the access log wrote the query string
    as it came: the password hash (enough to log in) and a JWT in ``token=`` landed in the log, as did a CID
    whose first digit was percent-encoded (``%31...``), which the 13-digit mask did not see."""
    cfg = SandboxConfig(data_dir=tmp_path, password_key=PASSWORD_KEY, access_log=True)
    cid = make_cid(15)
    with caplog.at_level("INFO", logger="phrsync.sandbox.access"), running(cfg) as s:
        good = s.add_user("log1", "10699", "pw1")
        r = httpx.get(s.base_url + "/token", params={"Action": "get_moph_access_token", "user": "log1",
                                                     "password_hash": good, "hospital_code": "10699"})
        assert r.status_code == 200
        jwt_text = r.text
        httpx.get(f"{s.base_url}/api/WebApp?Action=Encounter&cid=%{ord(cid[0]):X}{cid[1:]}&token={jwt_text}")
    log = "\n".join(r.getMessage() for r in caplog.records if r.name == "phrsync.sandbox.access")
    assert "/token?Action=get_moph_access_token&user=log1&password_hash=***&hospital_code=10699 200" in log
    assert good not in log and jwt_text not in log and "token=***" in log
    assert cid not in log and f"cid={cid[0]}-{cid[1:5]}-xxxxx-xx-{cid[12]}" in log


def test_body_too_large_is_413(tmp_path: Path) -> None:
    cfg = SandboxConfig(data_dir=tmp_path, password_key=PASSWORD_KEY, max_body_bytes=1000)
    with running(cfg) as s:
        c = login(s, "99999")
        r = c.post("/api/UpdatePHRv1", json=update_payload("99999", make_cid(5), "VN1"))
        assert r.status_code == 413 and r.json()["MessageCode"] == 413


def test_rate_limit_per_facility(tmp_path: Path) -> None:
    cfg = SandboxConfig(data_dir=tmp_path, password_key=PASSWORD_KEY, rate_limit_per_minute=2)
    with running(cfg) as s:
        c = login(s, "99999")
        codes = [c.post("/api/UpdatePHRv1", json=update_payload("99999", make_cid(6), f"VN{i}")).status_code
                 for i in range(3)]
        assert codes == [200, 200, 429]


def test_upsert_and_remove_sqlite(st: SandboxThread) -> None:
    upsert_and_remove_scenario(st, "10702")


def test_immunization_replace_all_and_chronic_remove(st: SandboxThread) -> None:
    import copy

    h = "10703"
    c = login(st, h)
    cid = make_cid(7)
    imm = set_hcode(valid("ImmunizationRegisterv1"), h)
    imm["Patient"]["identifier"][0]["value"] = cid
    second = copy.deepcopy(imm["Immunization"][0])
    second["encounterRefCode"] = f"{h}:VN0002"
    imm["Immunization"][0]["encounterRefCode"] = f"{h}:VN0001"
    imm["Immunization"].append(second)
    assert c.post("/api/ImmunizationRegisterv1", json=imm).json()["result"] == {"received": 2}
    imm["Immunization"] = imm["Immunization"][1:]
    assert c.post("/api/ImmunizationRegisterv1", json=imm).status_code == 200
    from phrsync.sandbox import store

    rows = st.sandbox.store.read(lambda conn: conn.execute(store.select(store.immunizations.c.encounter_ref_code)
                                 .where(store.immunizations.c.cid == cid)).scalars().all())
    assert rows == [f"{h}:VN0002"]

    chr_ = set_hcode(valid("PatientChronicRegisterv1"), h)
    chr_["Patient"]["identifier"][0]["value"] = cid
    cd = chr_["ChronicDiseaseRegister"][0]["code"]["coding"][0]["code"]
    other = copy.deepcopy(chr_["ChronicDiseaseRegister"][0])
    other["chronic_ref_code"] = "CHR-2"
    chr_["ChronicDiseaseRegister"].append(other)
    assert c.post("/api/PatientChronicRegisterv1", json=chr_).status_code == 200
    assert c.post("/api/PatientChronicRegisterv1", json=chr_).status_code == 200  # upsert, no duplicates
    q = {"data": "patient_chronic_registry", "hospital_code": h, "cd_code": cd}
    listed = c.get("/api/OrganizationSummary", params=q).json()["result"]
    assert sorted(listed) == sorted(["CHR-2", chr_["ChronicDiseaseRegister"][0]["chronic_ref_code"]])
    r = c.post("/api/PatientChronicRegisterv1", params={"mode": "remove", "cd_code": cd}, json=["CHR-2"])
    assert r.status_code == 200 and r.json()["result"] == 1
    assert c.get("/api/OrganizationSummary", params=q).json()["result"] == [listed[0] if listed[0] != "CHR-2"
                                                                              else listed[1]]
    r = c.post("/api/PatientChronicRegisterv1", params={"mode": "remove", "cd_code": cd}, json=[])
    assert r.json()["result"] == 1
    assert c.get("/api/OrganizationSummary", params=q).json()["result"] == []
    assert webapp(c, "PatientSummary", cid)["patient"]["cd_count"] == 0


def test_agent_status_five_second_rule(st: SandboxThread, clock: FakeClock) -> None:
    h = "10704"
    c = login(st, h)
    body = {"hospital_code": h, "agent_status": "processing 1/10", "agent_computer_name": "PC-01",
            "most_client_version": "1", "agent_version": "phrsync 0.1.0"}
    assert c.post("/api/UpdateAgentStatus", json=body).status_code == 200
    r = c.post("/api/UpdateAgentStatus", json=body)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    r = c.post("/api/UpdateAgentStatus", params={"mode": "Error"}, json={"hospital_code": h, "agent_status": "boom"})
    assert r.status_code == 429
    clock.advance(5.1)
    r = c.post("/api/UpdateAgentStatus", params={"mode": "Error"}, json={"hospital_code": h, "agent_status": "boom"})
    assert r.status_code == 200
    r = c.post("/api/GetAgentComputerName", json={"hospital_code": h})
    assert r.json()["result"]["agent_computer_name"] == "PC-01"
    assert c.post("/api/GetAgentComputerName", json={}).json()["result"]["hospital_code"] == h


def test_utility_endpoints(st: SandboxThread, c99: httpx.Client) -> None:
    r = c99.get("/api/CodingSystem")
    names = {x["name"] for x in r.json()["result"]}
    assert {"encounter_type", "allergy_seriousness", "tmt_substance"} <= names
    r = c99.get("/api/CodingSystem", params={"System": "encounter_type"})
    assert r.json()["result"] == [{"code": "1", "display": "มาเอง (ห้องบัตร)"}]
    assert c99.get("/api/CodingSystem", params={"System": "nope"}).status_code == 404
    cid = valid("UpdatePHRv1")["Patient"]["identifier"][0]["value"]
    c99.post("/api/UpdatePHRv1", json=valid("UpdatePHRv1"))
    # any valid CID is answered from its district's share (phrsync.sandbox.ekyc), known to the sandbox or not
    # (a person the sandbox knows by the district of the facility that sent them, another by digits 2-5)
    cfg = st.sandbox.cfg
    lives = ekyc.district_of_facility(valid("UpdatePHRv1")["managingOrganization"]["identifier"]["value"])
    for x, district in ((cid, lives), (make_cid(999), None)):
        assert c99.post("/idp/api/check_ekyc", json={"cid": x}).json()["result"] == ekyc.answer(
            x, cfg.did_shares, cfg.did_default_share, cfg.did_seed, district)
    bad = c99.get("/api/OrganizationSummary", params={"data": "encounter_ref_code", "date": "15/01/2025"})
    assert bad.status_code == 400 and bad.json()["issues"][0]["path"] == "date"
    assert c99.get("/api/OrganizationSummary").status_code == 400
    r = c99.get("/api/NoSuchThing")
    assert r.status_code == 404 and set(r.json()) >= ENVELOPE_KEYS
    assert c99.get("/api/UpdatePHRv1").status_code == 405
    assert "/api/UpdatePHRv1" in httpx.get(c99.base_url.join("/openapi.json")).json()["paths"]


def test_organization_summary_refuses_days_that_do_not_exist(c99: httpx.Client) -> None:
    """2025-13-01 or 2025-02-30 passed the shape check and answered 200 [] ('PHR holds nothing that day'),
    hiding the calling agent's date bug; they are now 400 like any malformed date."""
    for day in ("2025-13-01", "2025-02-30", "2025-00-10"):
        r = c99.get("/api/OrganizationSummary", params={"data": "encounter_ref_code", "date": day})
        assert r.status_code == 400 and r.json()["issues"][0]["path"] == "date", day
    for month in ("2025-13", "2025-00"):
        r = c99.get("/api/OrganizationSummary", params={"data": "month_summary", "month": month})
        assert r.status_code == 400 and r.json()["issues"][0]["path"] == "month", month
    assert c99.get("/api/OrganizationSummary", params={"data": "encounter_ref_code",
                                                       "date": "2024-02-29"}).status_code == 200
    assert c99.get("/api/OrganizationSummary", params={"data": "month_summary", "month": "2025-12"}).status_code == 200


def test_unknown_path_and_wrong_method_answer_in_thai_too(c99: httpx.Client) -> None:
    """404 and 405 came without MessageTH although every other error (and docs/sandbox.md) carries it."""
    r = c99.get("/api/NoSuchThing")
    assert r.status_code == 404 and r.json()["Message"] == "not found" and r.json()["MessageTH"]
    r = c99.get("/api/UpdatePHRv1")
    assert r.status_code == 405 and r.json()["MessageCode"] == 405 and r.json()["MessageTH"]
    assert "POST" in r.headers["allow"]


def test_bom_named_on_chronic_removal_and_utility_bodies(c99: httpx.Client) -> None:
    """A BOM before the removal array or a utility object was reported as 'body is not valid JSON', unlike
    the uploads, which name the BOM; the agent's developer was left looking for a JSON error that is not there."""
    r = c99.post("/api/PatientChronicRegisterv1", params={"mode": "remove", "cd_code": "001"},
                 content=b"\xef\xbb\xbf[]")
    assert r.status_code == 400 and r.json()["issues"][0]["rule"] == "json_bom"
    r = c99.post("/api/GetAgentComputerName", content=b'\xef\xbb\xbf{"hospital_code": "99999"}')
    assert r.status_code == 400 and r.json()["issues"][0]["rule"] == "json_bom"
    r = c99.post("/api/PatientChronicRegisterv1", params={"mode": "remove", "cd_code": "001"}, content=b"[")
    assert r.status_code == 400 and r.json()["issues"][0]["rule"] == "json_syntax"


def test_dashboard_thai_regions_and_facilities(st: SandboxThread) -> None:
    h = "10699"  # โรงพยาบาลสมเด็จพระยุพราชสระแก้ว, Sa Kaeo = health region 6
    c = login(st, h)
    assert c.post("/api/UpdatePHRv1", json=update_payload(h, make_cid(8), "VN1")).status_code == 200
    c.post("/api/UpdateAgentStatus", json={"hospital_code": h, "agent_status": "ok", "agent_version": "agent-9.9"})
    data = stats(st)
    assert data["by_region"]["6"] >= 1
    sk = {r["hospital_code"]: r for r in data["by_province"]["สระแก้ว"]}
    assert sk[h]["district"] == "เมืองสระแก้ว" and sk[h]["agent_version"] == "agent-9.9"
    assert "99999" in {r["hospital_code"] for r in data["by_province"]["ไม่ทราบ"]}
    html = httpx.get(st.base_url + "/dashboard").text
    assert "เขตสุขภาพที่ 6" in html and "โรงพยาบาลสมเด็จพระยุพราชสระแก้ว" in html and "agent-9.9" in html
    assert sk[h]["last_received_th"] in html and "256" in sk[h]["last_received_th"]  # Buddhist-era year
    assert make_cid(8) not in html


def test_storage_is_compact(st: SandboxThread) -> None:
    from phrsync.sandbox import store

    n, size = st.sandbox.store.read(lambda c: c.execute(store.select(
        store.func.count(), store.func.sum(store.func.length(store.encounters.c.data)))).one())
    assert n > 0 and size / n < 1500  # production averages ~7.3 KB per encounter
    p = valid("UpdatePHRv1")["Encounter"][0]
    assert codec.unpack(codec.pack(p)) == p


# ---- faults, persistence, CLI ------------------------------------------------------------------------

def _statuses(tmp: Path, seed: int, n: int = 40) -> list[str]:
    faults = FaultConfig(p500=0.1, p502=0.1, p503=0.1, p429=0.1, p_drop=0.1, seed=seed)
    cfg = SandboxConfig(data_dir=tmp, password_key=PASSWORD_KEY, rate_limit_per_minute=0, faults=faults)
    out = []
    with running(cfg) as s:
        c = login(s, "99999")
        for i in range(n):
            try:
                r = c.post("/api/UpdatePHRv1", json=update_payload("99999", make_cid(9), f"F{i}"))
                out.append(str(r.status_code))
                if r.status_code == 429:
                    assert r.headers["retry-after"] == "1"
                if r.status_code in (502, 503):
                    assert "nginx" in r.text
            except httpx.TransportError:
                out.append("drop")
        assert httpx.get(s.base_url + "/dashboard").status_code == 200  # never faulted
        assert s.sandbox.plan is not None and len(s.sandbox.plan.history) == n
    return out


def test_fault_injection_reproducible_with_seed(tmp_path: Path) -> None:
    a = _statuses(tmp_path / "a", 7)
    b = _statuses(tmp_path / "b", 7)
    other = _statuses(tmp_path / "c", 8)
    assert a == b
    assert a != other
    assert {"200", "500", "502", "503", "429", "drop"} <= set(a)


def test_fault_timeout_sleeps_past_client_timeout(tmp_path: Path) -> None:
    faults = FaultConfig(p_timeout=1.0, timeout_seconds=1.0, seed=1)
    cfg = SandboxConfig(data_dir=tmp_path, password_key=PASSWORD_KEY, faults=faults)
    with running(cfg) as s:
        c = login(s, "99999")
        with pytest.raises(httpx.ReadTimeout):
            c.post("/api/UpdatePHRv1", json=update_payload("99999", make_cid(10), "T1"), timeout=0.3)
        # the late request is still processed after the delay: the write lands although the client gave up
        from phrsync.sandbox import store

        def stored() -> list[str]:
            return s.sandbox.store.read(lambda conn: list(conn.execute(store.select(store.encounters.c.ref)).scalars()))

        deadline = time.time() + 10
        while not stored() and time.time() < deadline:
            time.sleep(0.1)
        assert stored() == ["99999:T1"]


def test_thread_helpers_for_demos(tmp_path: Path) -> None:
    cfg = SandboxConfig(data_dir=tmp_path, password_key=PASSWORD_KEY)
    with running(cfg) as s:
        pw_hash = s.add_user("demo", "10699", "pw")
        r = httpx.post(s.base_url + "/token", params={"Action": "get_moph_access_token", "user": "demo",
                                                      "password_hash": pw_hash, "hospital_code": "10699"})
        assert r.status_code == 200
        tok = s.issue_facility_token("10699")
        r = httpx.post(s.base_url + "/api/UpdatePHRv1", json=update_payload("10699", make_cid(13), "D1"),
                       headers={"Authorization": f"Bearer {tok}"})
        assert r.status_code == 200, r.text


def test_data_survives_restart(tmp_path: Path) -> None:
    cfg = SandboxConfig(data_dir=tmp_path, password_key=PASSWORD_KEY)
    with running(cfg) as s:
        c = login(s, "99999")
        assert c.post("/api/UpdatePHRv1", json=update_payload("99999", make_cid(11), "P1")).status_code == 200
        token = c.headers["Authorization"]
    cfg2 = SandboxConfig(data_dir=tmp_path, password_key=PASSWORD_KEY)  # secret re-read from the data dir
    with run_in_thread(cfg2) as base:
        c2 = httpx.Client(base_url=base, headers={"Authorization": token})
        assert refs(c2, "99999", "2025-01-15") == ["99999:P1"]
        assert webapp(c2, "PatientSummary", make_cid(11))["patient"]["encounter_count"] == 1


def test_cli_add_user_issue_token_stats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from phrsync.cli import cli

    monkeypatch.setenv("PHRSYNC_SANDBOX_PASSWORD_KEY", PASSWORD_KEY)
    monkeypatch.delenv("PHRSYNC_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    dd = str(tmp_path / "sbx")
    r = runner.invoke(cli, ["sandbox", "--data-dir", dd, "add-user", "cliuser", "--hospcode", "27001",
                            "--password-stdin", "--json"], input="cli-pw\n")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["hospital_code"] == "27001" and "cli-pw" not in r.output
    r = runner.invoke(cli, ["sandbox", "--data-dir", dd, "issue-token", "27001", "--json"])
    assert r.exit_code == 0, r.output
    token = json.loads(r.output)["token"]
    assert token.startswith("27001:")
    r = runner.invoke(cli, ["sandbox", "--data-dir", dd, "issue-token", "2700"])
    assert r.exit_code != 0
    r = runner.invoke(cli, ["sandbox", "--data-dir", dd, "stats", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["facilities"] == 0
    for sub in ("serve", "add-user", "issue-token", "seed-register", "stats"):
        assert runner.invoke(cli, ["sandbox", sub, "--help"]).exit_code == 0
    # the CLI-made account logs in on a server over the same data dir
    cfg = SandboxConfig(data_dir=Path(dd), password_key=PASSWORD_KEY)
    with running(cfg) as s:
        r = httpx.post(s.base_url + "/token", params={
            "Action": "get_moph_access_token", "user": "cliuser", "hospital_code": "27001",
            "password_hash": jwt.password_hash("cli-pw", PASSWORD_KEY)})
        assert r.status_code == 200
        r = httpx.post(s.base_url + "/api/UpdatePHRv1", json=update_payload("27001", make_cid(12), "C1"),
                       headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text


@pytest.mark.slow
def test_cli_serve_with_two_workers(tmp_path: Path) -> None:
    """The real command line: ``serve --workers 2`` in its own process, account made with ``add-user``."""
    import os
    import socket
    import subprocess
    import sys

    env = {**os.environ, "PHRSYNC_SANDBOX_PASSWORD_KEY": PASSWORD_KEY}
    env.pop("PHRSYNC_CONFIG", None)
    base = [sys.executable, "-m", "phrsync", "sandbox", "--data-dir", str(tmp_path / "d")]
    subprocess.run([*base, "add-user", "w", "--hospcode", "99999", "--password-stdin"], input="pw\n", text=True,
                   env=env, cwd=tmp_path, check=True, capture_output=True)
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    srv = subprocess.Popen([*base, "serve", "--port", str(port), "--workers", "2", "--rate-limit", "0", "--json"],
                           env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        info = json.loads(srv.stdout.readline())  # type: ignore[union-attr]
        assert info["workers"] == 2 and info["url"].endswith(str(port))
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 30
        while True:
            try:
                httpx.get(url + "/openapi.json", timeout=1)
                break
            except httpx.TransportError:
                assert time.time() < deadline, "server did not start"
                time.sleep(0.2)
        tok = httpx.post(url + "/token", params={"Action": "get_moph_access_token", "user": "w",
                                                 "hospital_code": "99999",
                                                 "password_hash": jwt.password_hash("pw", PASSWORD_KEY)}).text
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tok}"}) as c:
            codes = [c.post("/api/UpdatePHRv1", json=update_payload("99999", make_cid(20), f"W{i}")).status_code
                     for i in range(6)]
            assert codes == [200] * 6
            assert len(refs(c, "99999", "2025-01-15")) == 6
    finally:
        srv.terminate()
        srv.wait(timeout=30)


def test_upload_labelled_as_anything_but_json_is_415(st: SandboxThread, c99: httpx.Client) -> None:
    """The sandbox stored a payload sent as ``text/plain`` (or as a form, or in TIS-620): a strict server refuses
    such a client, so the rehearsal must too. 415 in the envelope, nothing stored; JSON labels still pass."""
    body = json.dumps(update_payload("99999", make_cid(31), "VN-CT")).encode()
    before = stats(st)
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                  "application/json; charset=tis-620"):
        r = c99.post("/api/UpdatePHRv1", content=body, headers={"Content-Type": ctype})
        assert r.status_code == 415, (ctype, r.text)
        ans = r.json()
        assert ans["MessageCode"] == 415 and "application/json" in ans["Message"] and ans["MessageTH"]
    for route in ("ImmunizationRegisterv1", "ReferralRequest", "OrgEncounterSummary", "UpdateAgentStatus"):
        r = c99.post(f"/api/{route}", content=b"{}", headers={"Content-Type": "text/plain"})
        assert r.status_code == 415, (route, r.text)
    r = c99.post("/api/PatientChronicRegisterv1", params={"mode": "remove", "cd_code": "001"}, content=b"[]",
                 headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert stats(st) == before
    for ctype in ("application/json; charset=UTF-8", "application/fhir+json"):
        r = c99.post("/api/UpdatePHRv1", content=body, headers={"Content-Type": ctype})
        assert r.status_code == 200, (ctype, r.text)


def test_access_log_masks_dashed_cids(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``cid=1-1001-00334-43-9`` in a query string reached the access log as it was."""
    cfg = SandboxConfig(data_dir=tmp_path, password_key=PASSWORD_KEY, access_log=True)
    cid = make_cid(16)
    dashed = f"{cid[0]}-{cid[1:5]}-{cid[5:10]}-{cid[10:12]}-{cid[12]}"
    with caplog.at_level("INFO", logger="phrsync.sandbox.access"), running(cfg) as s:
        c = login(s, "99999")
        c.get("/api/WebApp", params={"Action": "Encounter", "cid": dashed})
        c.get("/api/RemoveEncounter", params={"encounter_ref_code": f"99999{cid}01"})
    log = "\n".join(r.getMessage() for r in caplog.records if r.name == "phrsync.sandbox.access")
    assert "/api/WebApp" in log and "/api/RemoveEncounter" in log
    assert dashed not in log and cid not in log and cid[5:10] not in log, log


def _raw(port: int, data: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(data)
    return s


def _wait_for(cond: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_large_bodies_in_flight_are_bounded(tmp_path: Path) -> None:
    """48 logged-in clients each sending 19 MB held 832 MB of server memory: every large body was read at once.
    Now at most ``max_large_bodies`` are read together; the next is answered 503 with Retry-After (retried by
    every client), a small upload is not held up, and the slot comes back when the large one ends."""
    cfg = SandboxConfig(data_dir=tmp_path, password_key=PASSWORD_KEY, rate_limit_per_minute=0,
                        large_body_bytes=4096, max_large_bodies=1)
    with running(cfg) as s:
        c = login(s, "99999")
        bearer = c.headers["Authorization"].encode()
        slow = _raw(s.port, b"POST /api/UpdatePHRv1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Authorization: " + bearer + b"\r\nContent-Length: 100000\r\n\r\n" + b"{" * 5000)
        try:
            _wait_for(lambda: s.sandbox.gate.in_flight == 1)
            big = update_payload("99999", make_cid(41), "VN-BIG")
            big["Patient"]["name"][0]["text"] = "x" * 5000
            r = c.post("/api/UpdatePHRv1", json=big)
            assert r.status_code == 503 and r.headers["Retry-After"] == "1", r.text
            assert r.json()["MessageCode"] == 503 and r.json()["MessageTH"]
            # chunked (no Content-Length): refused once what arrived passes the threshold
            r = c.post("/api/UpdatePHRv1", content=iter([json.dumps(big).encode()]),
                       headers={"Content-Type": "application/json"})
            assert r.status_code == 503, r.text
            # a route served by FastAPI (not the UpdatePHRv1 shortcut) answers the same
            r = c.post("/api/ImmunizationRegisterv1", json={"pad": "x" * 5000})
            assert r.status_code == 503 and r.json()["MessageCode"] == 503, r.text
            small = c.post("/api/UpdatePHRv1", json=update_payload("99999", make_cid(42), "VN-SMALL"))
            assert small.status_code == 200, small.text
        finally:
            slow.close()
        _wait_for(lambda: s.sandbox.gate.in_flight == 0)
        r = c.post("/api/UpdatePHRv1", json=big)
        assert r.status_code == 200, r.text
