"""Helpers shared by the sandbox tests (SQLite and PostgreSQL): payload builders, a controllable clock,
a logged-in client and the upsert/remove scenario run against both storage engines."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx

from phrsync.pdpa import cid_check_digit
from phrsync.sandbox import auth, jwt
from phrsync.sandbox.server import SandboxThread

FIXTURES = Path(__file__).parent / "fixtures" / "payloads"
PASSWORD_KEY = "sandbox-test-key"
SERVED = ("UpdatePHRv1", "AllergyIntolerancev1", "PatientChronicRegisterv1", "ImmunizationRegisterv1",
          "OrgEncounterSummary", "ReferralRequest", "MedicationRequest", "DrugRelatedProblem", "CareGiver",
          "SelfObservation")


class FakeClock:
    """Wall clock plus a manual offset, so 5-second and 15-minute rules are tested without sleeping."""

    def __init__(self) -> None:
        import time

        self._time = time.time
        self.offset = 0.0

    def __call__(self) -> float:
        return self._time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def valid(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / "valid" / f"{name}.json").read_text(encoding="utf-8"))


def make_cid(n: int) -> str:
    first12 = f"3{n:011d}"
    return first12 + cid_check_digit(first12)


def set_hcode(obj: Any, hcode: str) -> Any:
    """Every managingOrganization (top level and inside items) moved to ``hcode``."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "managingOrganization" and isinstance(v, dict):
                v["identifier"]["value"] = hcode
                v["display"] = f"Test Facility {hcode}"
            else:
                set_hcode(v, hcode)
    elif isinstance(obj, list):
        for v in obj:
            set_hcode(v, hcode)
    return obj


def update_payload(hcode: str, cid: str, vn: str, day: str = "2025-01-15", weight: float = 70,
                   scope: str | None = None) -> dict[str, Any]:
    p = set_hcode(copy.deepcopy(valid("UpdatePHRv1")), hcode)
    p["Patient"]["identifier"][0]["value"] = cid
    enc = p["Encounter"][0]
    enc["identifier"][0]["value"] = f"{hcode}:{vn}"
    enc["period"] = {"start": f"{day}T09:00:00+07:00", "end": f"{day}T11:30:00+07:00"}
    for o in enc.get("Observation", []):
        o["effectiveDateTime"] = f"{day}T09:20:00+07:00"
    for c in enc.get("Condition", []):
        c["recordedDate"] = f"{day}T10:00:00+07:00"
    enc["vital_signs"]["body_weight_kg"] = weight
    enc["vital_signs"].pop("body_mass_index", None)  # keep BMI consistent whatever the weight
    if scope:
        p["managingOrganization"]["scope"] = scope
    return p


def add_encounter(p: dict[str, Any], hcode: str, vn: str, day: str) -> dict[str, Any]:
    enc = copy.deepcopy(p["Encounter"][0])
    enc["identifier"][0]["value"] = f"{hcode}:{vn}"
    enc["period"] = {"start": f"{day}T09:00:00+07:00", "end": f"{day}T11:30:00+07:00"}
    for o in enc.get("Observation", []):
        o["effectiveDateTime"] = f"{day}T09:20:00+07:00"
    for c in enc.get("Condition", []):
        c["recordedDate"] = f"{day}T10:00:00+07:00"
    p["Encounter"].append(enc)
    return p


def login(st: SandboxThread, hcode: str, user: str | None = None) -> httpx.Client:
    """A client for ``hcode`` holding a JWT from the /token endpoint."""
    user = user or f"user{hcode}"
    auth.add_user(st.sandbox.store, st.sandbox.cfg, user, hcode, "secret-pw")
    c = httpx.Client(base_url=st.base_url, timeout=30)
    r = c.post("/token", params={"Action": "get_moph_access_token"},
               content=json.dumps({"user": user, "password_hash": jwt.password_hash("secret-pw", PASSWORD_KEY),
                                   "hospital_code": hcode}))
    assert r.status_code == 200, r.text
    c.headers["Authorization"] = f"Bearer {r.text.strip()}"
    return c


def refs(c: httpx.Client, hcode: str, day: str) -> list[str]:
    r = c.get("/api/OrganizationSummary", params={"data": "encounter_ref_code", "date": day, "hospital_code": hcode})
    assert r.status_code == 200, r.text
    return r.json()["result"]


def webapp(c: httpx.Client, action: str, cid: str) -> Any:
    r = c.get("/api/WebApp", params={"Action": action, "cid": cid})
    assert r.status_code == 200, r.text
    return r.json()["result"]


def upsert_and_remove_scenario(st: SandboxThread, hcode: str) -> None:
    """Same ref twice replaces; removal really removes; scope=ALL replaces the person's history here."""
    c = login(st, hcode)
    cid = make_cid(int(hcode))
    day = "2025-03-10"
    r = c.post("/api/UpdatePHRv1", json=update_payload(hcode, cid, "VN1", day, weight=70))
    assert r.status_code == 200, r.text
    assert r.json()["result"] == {"received": 1}
    r = c.post("/api/UpdatePHRv1", json=update_payload(hcode, cid, "VN1", day, weight=82))
    assert r.status_code == 200, r.text
    assert refs(c, hcode, day) == [f"{hcode}:VN1"]
    encs = webapp(c, "Encounter", cid)
    assert len(encs) == 1 and encs[0]["vital_sign_body_weight_kg"] == 82
    # unprefixed ref is stored with the HCODE prefix and is the same encounter as the prefixed one
    p = update_payload(hcode, cid, "VN2", day)
    p["Encounter"][0]["identifier"][0]["value"] = "VN2"
    assert c.post("/api/UpdatePHRv1", json=p).status_code == 200
    c.post("/api/UpdatePHRv1", json=update_payload(hcode, cid, "VN2", day))
    assert refs(c, hcode, day) == [f"{hcode}:VN1", f"{hcode}:VN2"]
    # month summary counts them on their day
    r = c.get("/api/OrganizationSummary", params={"data": "month_summary", "month": day[:7], "hospital_code": hcode})
    assert r.json()["result"] == [{"date": day, "encounter_count": 2}]
    # removal
    r = c.get("/api/RemoveEncounter", params={"hospital_code": hcode, "encounter_ref_code": f"{hcode}:VN1"})
    assert r.status_code == 200 and r.json()["result"] == 1
    assert refs(c, hcode, day) == [f"{hcode}:VN2"]
    r = c.get("/api/RemoveEncounter", params={"hospital_code": hcode, "encounter_ref_code": f"{hcode}:VN1"})
    assert r.json()["result"] == 0
    assert [e["encounter_ref_code"] for e in webapp(c, "Encounter", cid)] == [f"{hcode}:VN2"]
    # scope=ALL: VN3 + VN4 become the whole history; VN2 goes
    p = add_encounter(update_payload(hcode, cid, "VN3", day, scope="ALL"), hcode, "VN4", "2025-03-11")
    r = c.post("/api/UpdatePHRv1", json=p)
    assert r.status_code == 200, r.text
    assert r.json()["result"] == {"received": 2}
    assert refs(c, hcode, day) == [f"{hcode}:VN3"]
    assert refs(c, hcode, "2025-03-11") == [f"{hcode}:VN4"]
    summary = webapp(c, "PatientSummary", cid)
    assert summary["patient"]["encounter_count"] == 2
    assert summary["patient"]["cid"] == cid
    c.close()
