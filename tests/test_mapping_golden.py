"""Golden tests: a hand-made 43-file set → payloads checked field by field against hand-written JSON
(tests/fixtures/golden/, derived from the PHR spec and docs/mapping.md, never from phrsync's output)."""

from __future__ import annotations

import copy
import datetime as dt
import io
from pathlib import Path
from typing import Any

import orjson
import pytest
from fixtures.golden import dataset as D

from phrsync.f43 import extract as E
from phrsync.f43.read import Selection
from phrsync.f43.staging import Staging
from phrsync.phr import build as B
from phrsync.phr import mapping as M
from phrsync.phr.policies import Policies
from phrsync.phr.validate import validate
from phrsync.terminology import configure, reset

NOW = dt.datetime(2025, 2, 1, 3, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return D.make_staging(tmp_path_factory.mktemp("golden"))


@pytest.fixture(scope="module")
def built(staging: Path) -> dict[str, dict[str, Any]]:
    with Staging(staging, read_only=True) as st:
        buf = io.BytesIO()
        B.build_to(buf, st.con, Selection(), M.MapContext(now=NOW))
    lines = [orjson.loads(x) for x in buf.getvalue().splitlines()]
    return {x["key"]: x for x in lines}


def _bundles(staging: Path, sel: Selection | None = None) -> dict[str, dict[str, Any]]:
    with Staging(staging, read_only=True) as st:
        return {f"{b['hospcode']}:{b['ref']}": b for b in E.iter_bundles(st.con, sel or Selection())}


def _register(staging: Path, kind: str, pid: str) -> dict[str, Any]:
    it = {"epi": E.iter_immunization_registers, "chronic": E.iter_chronic_registers,
          "allergy": E.iter_allergy_registers}[kind]
    with Staging(staging, read_only=True) as st:
        return next(r for r in it(st.con) if r["pid"] == pid)


GOLDEN = [
    ("enc_V001.json", "UpdatePHRv1|10699:V001"),
    ("enc_V002.json", "UpdatePHRv1|10699:V002"),
    ("enc_V003.json", "UpdatePHRv1|10699:V003"),
    ("enc_680000001.json", "UpdatePHRv1|10699:680000001"),
    ("summary_2025-01.json", "OrgEncounterSummary|10699|2025-01"),
]


@pytest.mark.parametrize(("name", "key"), GOLDEN)
def test_golden_payload(built: dict[str, dict[str, Any]], name: str, key: str) -> None:
    assert key in built, sorted(built)
    assert D.diff(D.expected(name), built[key]["payload"]) == []
    assert built[key]["hospcode"] == "10699"


@pytest.mark.parametrize(("name", "endpoint"), [("imm_p2.json", "ImmunizationRegisterv1"),
                                                ("chronic_p1.json", "PatientChronicRegisterv1")])
def test_golden_register(built: dict[str, dict[str, Any]], name: str, endpoint: str) -> None:
    exp = D.expected(name)
    got = [x for x in built.values() if x["endpoint"] == endpoint]
    assert len(got) == 1  # only one person has rows of that register
    assert D.diff(exp, got[0]["payload"]) == []
    cid = exp["Patient"]["identifier"][0]["value"]
    assert got[0]["key"] == f"{endpoint}|10699|{M.cid_digest(cid)}"
    assert cid not in got[0]["key"]


def test_every_golden_payload_passes_the_shared_validator() -> None:
    for name, endpoint in [(n, "UpdatePHRv1") for n, _ in GOLDEN[:4]] + [
            ("summary_2025-01.json", "OrgEncounterSummary"), ("imm_p2.json", "ImmunizationRegisterv1"),
            ("chronic_p1.json", "PatientChronicRegisterv1"), ("allergy_p2_tmt.json", "AllergyIntolerancev1")]:
        errors = [i for i in validate(endpoint, D.expected(name)) if i.severity == "error"]
        assert errors == [], (name, errors)


def test_quarantined_person_is_not_built(built: dict[str, dict[str, Any]]) -> None:
    assert not any("V004" in k for k in built)
    summary = D.expected("summary_2025-01.json")["EncounterSummary"]
    assert sum(d["opd_encounter_count"] for d in summary) == 3  # V004 never reached staging


@pytest.mark.parametrize(("ref", "codes"), [
    ("10699:V001", {"lab_unknown", "lab_time_visit_start", "drug_unmapped"}),  # no code store: local drug code
    ("10699:V002", {"time_missing", "typein_unmapped"}),
    ("10699:V003", set()),
    ("10699:680000001", {"drug_unmapped"}),
])
def test_notes_per_encounter(staging: Path, ref: str, codes: set[str]) -> None:
    bundle = _bundles(staging)[ref]
    payload, notes = M.map_encounter(bundle, M.MapContext(now=NOW))
    assert payload is not None
    assert {n.code for n in notes} == codes
    for n in notes:
        assert n.message_th and n.message_en and n.kind in ("estimate", "missing", "unknown_code", "skipped")
        assert n.subject is None or n.subject[0] in ("drug", "lab")


def test_register_notes(staging: Path) -> None:
    _, notes = M.map_immunization_register(_register(staging, "epi", "2"), M.MapContext(now=NOW))
    assert [n.code for n in notes] == ["epi_no_visit"]
    _, notes = M.map_chronic_register(_register(staging, "chronic", "1"), M.MapContext(now=NOW))
    assert [n.code for n in notes] == ["chronic_no_cd_code"]
    assert "I10–I15" in notes[0].message_en and "HT" in notes[0].message_en


def test_immunization_register_holds_the_whole_list(staging: Path) -> None:
    """Only the 2025 dose lies in the range, but the register payload must still carry both doses:
    ImmunizationRegisterv1 deletes whatever the new list leaves out."""
    sel = Selection(("10699",), dt.date(2025, 1, 6), dt.date(2025, 1, 6))
    with Staging(staging, read_only=True) as st:
        regs = list(E.iter_immunization_registers(st.con, sel))
    assert [r["pid"] for r in regs] == ["2"]
    payload, _ = M.map_immunization_register(regs[0], M.MapContext(now=NOW))
    assert payload is not None
    assert [i["vaccineCode"]["coding"][0]["code"] for i in payload["Immunization"]] == ["010", "041"]


def test_allergy_without_tmt_waits_for_a_code(staging: Path) -> None:
    """No TMT substance for the allergy drug: the payload is held (None) with a waiting note naming the code,
    never built for the validator to refuse."""
    payload, notes = M.map_allergy(_register(staging, "allergy", "2"), M.MapContext(now=NOW))
    assert payload is None
    assert [(n.code, n.kind, n.subject) for n in notes] == [
        ("allergy_waiting_code", "waiting", ("allergy", "200000000000000000000002", "Amoxicillin 250 mg cap"))]


def test_allergy_with_province_tmt_table(staging: Path, tmp_path: Path) -> None:
    (tmp_path / "drug_tmt.csv").write_text(
        "didstd,tmt_code,tmt_level,name,source\n200000000000000000000002,1234567,SUBS,AMOXICILLIN,test table\n",
        encoding="utf-8")
    configure(tmp_path)
    M.reset_code_cache()
    try:
        payload, notes = M.map_allergy(_register(staging, "allergy", "2"), M.MapContext(now=NOW))
    finally:
        reset()
        M.reset_code_cache()
    assert notes == []
    assert D.diff(D.expected("allergy_p2_tmt.json"), payload) == []


# --- policies --------------------------------------------------------------------------------------

def _enc(staging: Path, ref: str, pol: Policies, now: dt.datetime = NOW) -> tuple[dict[str, Any], list[M.Note]]:
    payload, notes = M.map_encounter(_bundles(staging)[ref], M.MapContext(now=now, policies=pol))
    assert payload is not None
    return payload["Encounter"][0], notes


def test_policy_visit_end_estimate(staging: Path) -> None:
    enc, notes = _enc(staging, "10699:V001", Policies(visit_end="estimate", visit_minutes_opd=45))
    assert enc["period"] == {"start": "2025-01-05T09:30:00+07:00", "end": "2025-01-05T10:15:00+07:00"}
    assert "end_estimated" in {n.code for n in notes}
    # an estimate never lies in the future: "now" is 09:40 Bangkok time
    enc, _ = _enc(staging, "10699:V001", Policies(visit_end="estimate"), dt.datetime(2025, 1, 5, 2, 40, tzinfo=dt.UTC))
    assert enc["period"]["end"] == "2025-01-05T09:40:00+07:00"


def test_policy_visit_end_from_last_update(staging: Path) -> None:
    enc, notes = _enc(staging, "10699:V001", Policies(visit_end="last_update"))
    # latest D_UPDATE among SERVICE (10:30:00) and its child rows (10:10 at most)
    assert enc["period"]["end"] == "2025-01-05T10:30:00+07:00"
    assert "end_from_last_update" in {n.code for n in notes}


def test_policy_visit_end_omit_is_default(staging: Path) -> None:
    enc, notes = _enc(staging, "10699:V001", Policies())
    assert "end" not in enc["period"]
    assert not {n.code for n in notes} & {"end_estimated", "end_from_last_update"}


def test_policy_missing_time_default(staging: Path) -> None:
    enc, notes = _enc(staging, "10699:V002", Policies(missing_time="default_time", default_time="08:15"))
    assert enc["period"]["start"] == "2025-01-06T08:15:00+07:00"
    assert "time_default" in {n.code for n in notes} and "time_missing" not in {n.code for n in notes}


def test_policy_lab_time_and_card_dates(staging: Path) -> None:
    enc, notes = _enc(staging, "10699:V001", Policies(lab_time="date", card_dates="omit"))
    assert [o["effectiveDateTime"] for o in enc["Observation"]] == ["2025-01-05", "2025-01-05"]
    assert "period" not in enc["Coverage"][0]
    assert "lab_time_visit_start" not in {n.code for n in notes}


def test_ipd_ref_prefix_policy(staging: Path) -> None:
    enc, _ = _enc(staging, "10699:680000001", Policies(ipd_ref_prefix="AN"))
    assert enc["identifier"][0]["value"] == "10699:AN680000001"


def test_missing_cid_is_skipped_with_a_note(staging: Path) -> None:
    bundle = copy.deepcopy(_bundles(staging)["10699:V003"])
    bundle["person"]["CID"] = None
    bundle["service"]["CID"] = None
    payload, notes = M.map_encounter(bundle, M.MapContext(now=NOW))
    assert payload is None and [n.code for n in notes] == ["cid_missing"]
    bundle["person"]["CID"] = D.BAD_CID
    payload, notes = M.map_encounter(bundle, M.MapContext(now=NOW))
    assert payload is None and [n.code for n in notes] == ["cid_invalid"]
    assert D.BAD_CID not in notes[0].message_th + notes[0].message_en


def test_mapping_is_pure(staging: Path) -> None:
    bundle = _bundles(staging)["10699:V001"]
    before = copy.deepcopy(bundle)
    a = M.map_encounter(bundle, M.MapContext(now=NOW))
    b = M.map_encounter(bundle, M.MapContext(now=NOW))
    assert bundle == before
    assert a == b


def test_date_selection(staging: Path) -> None:
    refs = set(_bundles(staging, Selection((), dt.date(2025, 1, 6), dt.date(2025, 1, 7))))
    assert refs == {"10699:V002", "10699:V003", "10699:680000001"}
    assert _bundles(staging, Selection(("99999",))) == {}


@pytest.mark.parametrize(("code", "dotted"), [("E119", "E11.9"), ("I10", "I10"), ("S7200", "S72.00"),
                                              ("e11.9", "E11.9")])
def test_icd10_dotted(code: str, dotted: str) -> None:
    assert M.icd10_dotted(code) == dotted


def test_policy_implausible_vitals(staging: Path) -> None:
    bundle = copy.deepcopy(_bundles(staging)["10699:V001"])
    bundle["service"]["SBP"], bundle["service"]["DBP"] = 80, 120  # swapped at the keyboard
    bundle["service"]["BTEMP"] = 372.0  # decimal point lost
    payload, notes = M.map_encounter(bundle, M.MapContext(now=NOW))
    assert payload is not None
    vs = payload["Encounter"][0]["vital_signs"]
    assert "body_temp_cel" not in vs and "bp_systolic_mmhg" not in vs and "bp_diastolic_mmhg" not in vs
    assert vs["pulse"] == 78 and vs["body_mass_index"] == 24.4
    assert [n.path for n in notes if n.code == "vital_dropped"] == [
        "Encounter[0].vital_signs.body_temp_cel", "Encounter[0].vital_signs.bp_diastolic_mmhg"]
    assert not [i for i in validate("UpdatePHRv1", payload) if i.severity == "error"]
    payload, _ = M.map_encounter(bundle, M.MapContext(now=NOW, policies=Policies(implausible_vitals="send")))
    assert payload is not None
    rules = {i.rule for i in validate("UpdatePHRv1", payload) if i.severity == "error"}
    assert rules == {"vital_range", "bp_order"}
