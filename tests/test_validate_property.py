"""Property tests: damaging a valid payload never crashes the validator and is always reported."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phrsync.phr.validate import has_errors, validate

FIX = Path(__file__).parent / "fixtures" / "payloads" / "valid"
PAYLOADS: dict[str, tuple[str, Any]] = {
    p.name: (p.name.split(".")[0], json.loads(p.read_text(encoding="utf-8"))) for p in sorted(FIX.glob("*.json"))
}
CID_RE = re.compile(r"(?<!\d)\d{13}(?!\d)")

# Subtrees whose content the spec leaves open (§3.2 DiagnosticReport, statement dosage, participants):
# a changed type there need not be reported.
FREE = re.compile(r"(^|\.)(DiagnosticReport|dosage|participant|subject)(\[|\.|$)")

# Required fields per endpoint, from the 'Req. = yes' columns of moph-phr-api.md §2–3 ([i] = every item).
_ORG = ["managingOrganization", "managingOrganization.type", "managingOrganization.identifier",
        "managingOrganization.identifier.use", "managingOrganization.identifier.system",
        "managingOrganization.identifier.value", "managingOrganization.display"]
_PT = ["Patient", "Patient.identifier", "Patient.identifier[0].value", "Patient.identifier[0].system",
       "Patient.name", "Patient.gender", "Patient.birthDate"]
REQUIRED: dict[str, list[str]] = {
    "UpdatePHRv1": _ORG + _PT + [
        "Encounter", "Encounter[0].identifier", "Encounter[0].identifier[0].value",
        "Encounter[0].identifier[0].system", "Encounter[0].status", "Encounter[0].class",
        "Encounter[0].class.code", "Encounter[0].class.system", "Encounter[0].type", "Encounter[0].period",
        "Encounter[0].period.start", "Encounter[0].Condition[0].code",
        "Encounter[0].Observation[0].code", "Encounter[0].Medication[0].code",
        "Encounter[0].Condition[0].code.coding[0].code"],
    "AllergyIntolerancev1": _ORG + _PT + [
        "AllergyIntolerance", "AllergyIntolerance[0].clinicalStatus", "AllergyIntolerance[0].verificationStatus",
        "AllergyIntolerance[0].type", "AllergyIntolerance[0].category", "AllergyIntolerance[0].code",
        "AllergyIntolerance[0].recordedDate"],
    "PatientChronicRegisterv1": _ORG + _PT + [
        "ChronicDiseaseRegister", "ChronicDiseaseRegister[0].code", "ChronicDiseaseRegister[0].clinicalStatus",
        "ChronicDiseaseRegister[0].chronic_ref_code", "ChronicDiseaseRegister[0].registerDate"],
    "ImmunizationRegisterv1": _ORG + _PT + [
        "Immunization", "Immunization[0].status", "Immunization[0].vaccineCode",
        "Immunization[0].encounterRefCode", "Immunization[0].occurrenceDateTime"],
    "OrgEncounterSummary": _ORG + [
        "EncounterSummary", "EncounterSummary[0].period_start", "EncounterSummary[0].opd_encounter_count",
        "EncounterSummary[0].ipd_encounter_count", "EncounterSummary[0].ipd_discharge_count"],
    "ReferralRequest": _ORG + _PT + [
        "ReferralRequest", "ReferralRequest[0].managingOrganization", "ReferralRequest[0].recipientOrganization",
        "ReferralRequest[0].encounterRefCode", "ReferralRequest[0].referralRefCode", "ReferralRequest[0].status",
        "ReferralRequest[0].intent"],
    "SelfObservation": [
        "system_name", "observation_ref_code", "person", "person.cid", "person.prefix", "person.first_name",
        "person.last_name", "person.birth_date", "person.gender", "observation", "observation.reference_id",
        "observation.loinc_code", "observation.loinc_display", "observation.effective_datetime",
        "observation.observation_value", "observation.observation_unit"],
    "CareGiver": _ORG + _PT + [
        "CareGiver", "CareGiver[0].identifier", "CareGiver[0].identifier[0].value", "CareGiver[0].active",
        "CareGiver[0].name", "CareGiver[0].qualification"],
    "MedicationRequest": _ORG + _PT + [
        "MedicationRequest", "MedicationRequest[0].identifier", "MedicationRequest[0].status",
        "MedicationRequest[0].intent", "MedicationRequest[0].medication", "MedicationRequest[0].encounter_ref_code",
        "MedicationRequest[0].authoredOn", "MedicationRequest[0].requester",
        "MedicationRequest[0].requester.reference", "MedicationRequest[0].dosageInstruction"],
    "DrugRelatedProblem": _ORG + _PT + [
        "DrugRelatedProblem", "DrugRelatedProblem[0].drp_ref_code", "DrugRelatedProblem[0].medication"],
    "PatientChronicRegisterv1_remove": [],
    "UpdateAgentStatus": ["hospital_code", "agent_status"],
    "GetAgentComputerName": ["hospital_code"],
    "MaskEncounter": ["cid", "encounter_ref_code"],
}

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _split(path: str) -> list[str | int]:
    return [m.group(1) if m.group(1) is not None else int(m.group(2)) for m in _STEP.finditer(path)]


def _locations(node: Any, path: str = "") -> list[tuple[str, list[str | int]]]:
    """Every (path, steps) of a value inside the payload."""
    out: list[tuple[str, list[str | int]]] = []
    if isinstance(node, dict):
        for k, v in node.items():
            p = f"{path}.{k}" if path else k
            out.append((p, _split(p)))
            out.extend(_locations(v, p))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            p = f"{path}[{i}]"
            out.append((p, _split(p)))
            out.extend(_locations(v, p))
    return out


def _parent(payload: Any, steps: list[str | int]) -> Any:
    node = payload
    for s in steps[:-1]:
        node = node[s]
    return node


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    return {str: "str", list: "list", dict: "dict"}.get(type(v), "null")


# Replacement values of another JSON type than the original.
WRONG: dict[str, list[Any]] = {
    "str": [17, 2.5, True, [], ["x"], {}, {"a": 1}],
    "number": ["abc", True, False, [], [1], {}, {"value": 1}],
    "bool": ["true", 1, 0, [], {}],
    "list": ["x", 1, True, {}, {"a": "b"}],
    "dict": ["x", 0, True, [], [{}]],
}
LOCS = [(name, p, steps) for name, (_, payload) in PAYLOADS.items() for p, steps in _locations(payload)]


@pytest.mark.parametrize(("name", "path"), [(n, r) for n, (ep, _) in PAYLOADS.items()
                                            if n == f"{ep}.json" for r in REQUIRED[ep]])
def test_deleting_a_required_field_is_an_error(name: str, path: str) -> None:
    endpoint, payload = PAYLOADS[name]
    p = copy.deepcopy(payload)
    steps = _split(path)
    parent = _parent(p, steps)
    del parent[steps[-1]]
    issues = validate(endpoint, p)
    assert has_errors(issues), (path, [i.to_dict() for i in issues])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(loc=st.sampled_from(LOCS), data=st.data())
def test_wrong_type_anywhere_is_reported(loc: tuple[str, str, list[str | int]], data: st.DataObject) -> None:
    name, path, steps = loc
    endpoint, payload = PAYLOADS[name]
    p = copy.deepcopy(payload)
    parent = _parent(p, steps)
    original = parent[steps[-1]]
    replacement = data.draw(st.sampled_from(WRONG[_kind(original)]))
    parent[steps[-1]] = replacement
    before = {(i.path, i.rule) for i in validate(endpoint, payload)}
    issues = validate(endpoint, p)
    if FREE.search(path):
        return
    assert {(i.path, i.rule) for i in issues} - before, (path, replacement)


@settings(max_examples=300, deadline=None)
@given(loc=st.sampled_from(LOCS), data=st.data())
def test_deleting_or_nulling_anything_never_raises(loc: tuple[str, str, list[str | int]],
                                                   data: st.DataObject) -> None:
    name, _path, steps = loc
    endpoint, payload = PAYLOADS[name]
    p = copy.deepcopy(payload)
    parent = _parent(p, steps)
    if data.draw(st.booleans()):
        del parent[steps[-1]]
    else:
        parent[steps[-1]] = None
    issues = validate(endpoint, p)
    for i in issues:
        assert i.severity in ("error", "warning")
        assert not CID_RE.search(i.message_th + i.message_en)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20) | st.sampled_from(["0000000000001", "2025-01-15", "99999:VN1", "http://loinc.org"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(endpoint=st.sampled_from(sorted(REQUIRED)), loc=st.sampled_from(LOCS), junk=_json)
def test_arbitrary_json_never_raises(endpoint: str, loc: tuple[str, str, list[str | int]], junk: Any) -> None:
    validate(endpoint, junk)  # junk at the root
    name, _path, steps = loc
    ep, payload = PAYLOADS[name]
    p = copy.deepcopy(payload)
    _parent(p, steps)[steps[-1]] = junk  # junk anywhere inside a valid payload
    for i in validate(ep, p):
        assert not CID_RE.search(i.message_th + i.message_en)


def test_wrong_type_at_every_location_is_reported() -> None:
    """The exhaustive version of the property above: every location × every replacement kind."""
    missed = []
    for name, path, steps in LOCS:
        if FREE.search(path):
            continue
        endpoint, payload = PAYLOADS[name]
        before = {(i.path, i.rule) for i in validate(endpoint, payload)}
        for wrong in WRONG[_kind(_parent(payload, steps)[steps[-1]])]:
            p = copy.deepcopy(payload)
            _parent(p, steps)[steps[-1]] = wrong
            if not {(i.path, i.rule) for i in validate(endpoint, p)} - before:
                missed.append((name, path, wrong))
    assert len(LOCS) > 500
    assert not missed, missed[:20]
