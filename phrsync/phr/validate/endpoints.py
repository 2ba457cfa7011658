"""The request bodies the validator knows (:data:`ENDPOINTS`) and its entry points: :func:`validate` for
parsed JSON, :func:`parse_and_validate` and :func:`validate_json_bytes` for a raw request body.

Each endpoint's check reads the top level of its body and hands every resource to :mod:`.resources`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from phrsync.pdpa import mask_text
from phrsync.phr.systems import PHR_CS, SYS_EPRESCRIPTION

from .primitives import (
    _TYPE_TH,
    Issue,
    _arr,
    _bool,
    _cid,
    _concept,
    _Ctx,
    _date,
    _datetime,
    _enum,
    _hcode,
    _json_type,
    _loinc_code,
    _nonneg,
    _obj,
    _objs,
    _opt_strs,
    _order,
    _Path,
    _period,
    _quantity,
    _short,
    _str,
    _strs,
)
from .resources import (
    _TMT_SYSTEMS,
    _allergy,
    _encounter,
    _human_name,
    _identifiers,
    _immunization,
    _item_org,
    _notes,
    _organization,
    _other_identifier,
    _patient,
    _practitioner,
    _ref_field,
)

# value sets of the resources only one endpoint sends
_MEDREQ_STATUS = frozenset({"active", "on-hold", "cancelled", "completed", "entered-in-error", "stopped",
                            "draft", "unknown"})
_REQ_INTENT = frozenset({"proposal", "plan", "directive", "order", "original-order", "reflex-order",
                         "filler-order", "instance-order", "option"})
_REFERRAL_STATUS = frozenset({"draft", "active", "on-hold", "suspended", "revoked", "cancelled", "completed",
                              "entered-in-error", "unknown"})
_PRIORITY = frozenset({"routine", "urgent", "asap", "stat"})
_PERIOD_UNIT = frozenset({"s", "min", "h", "d", "wk", "mo", "a"})
_SELF_GENDER = frozenset({"M", "F"})  # spec §2.6: M or F, not male/female
_ONE_PHR_CHRONIC_DISEASE = frozenset({PHR_CS + "chronic_disease"})
_ONE_PHR_CAREGIVER_TYPE = frozenset({PHR_CS + "caregiver_type"})
_ONE_PHR_DRP_CATEGORY = frozenset({PHR_CS + "drp_category"})


# --- endpoints ----------------------------------------------------------------------------------------

def _top_keys(c: _Ctx, payload: dict, known: frozenset[str]) -> None:
    if payload.keys() <= known:
        return
    for key in payload:
        if key not in known:
            c.add(key, "unknown_key", key, key)


def _v_update_phr(c: _Ctx, payload: dict) -> None:
    _organization(c, payload, "", "managingOrganization", True, sender=True, agent=True)
    _patient(c, payload)
    org = payload.get("managingOrganization")
    scope = org.get("scope") if type(org) is dict else None
    if scope is None:
        top = payload.get("scope")
        if top is not None and type(top) is not str:
            c.bad_type("scope", "string", top)
        else:
            scope = top
    for ap, a in _objs(c, payload, "", "AllergyIntolerance"):
        _allergy(c, a, ap, False)
    care = _arr(c, payload, "", "CarePlan")
    if care:
        c.add("CarePlan", "unspecified_content", "ส่ง []", "send []")
        for i, item in enumerate(care):
            if type(item) is not dict:
                c.bad_type(f"CarePlan[{i}]", "object", item)
    encounters = _objs(c, payload, "", "Encounter", True, True)
    for ep, enc in encounters:
        _encounter(c, enc, ep)
    if len(encounters) > 1 and scope != "ALL":
        c.add("Encounter", "one_encounter", f"มี {len(encounters)} รายการ โดยไม่ได้ตั้ง scope ALL",
              f"{len(encounters)} items without scope ALL")


def _v_allergy(c: _Ctx, payload: dict) -> None:
    _organization(c, payload, "", "managingOrganization", True, sender=True)
    _patient(c, payload)
    for ap, a in _objs(c, payload, "", "AllergyIntolerance", True, True):
        _allergy(c, a, ap, True)


def _v_chronic(c: _Ctx, payload: dict) -> None:
    _organization(c, payload, "", "managingOrganization", True, sender=True)
    _patient(c, payload)
    seen: dict[str, _Path] = {}
    for p, o in _objs(c, payload, "", "ChronicDiseaseRegister", True, True):
        _item_org(c, o, p, True)
        cods = _concept(c, o, p, "code", True, _ONE_PHR_CHRONIC_DISEASE)
        for i, (_s, code) in enumerate(cods or ()):
            if code is not None and not (len(code) == 3 and code.isascii() and code.isdigit()):
                c.add((((p, "code.coding"), i), "code"), "code_unusual", f"cd_code '{_short(code)}' (3 หลัก เช่น 001)",
                      f"cd_code '{_short(code)}' (3 digits, e.g. 001)")
        _concept(c, o, p, "clinicalStatus", True)
        ref = _str(c, o, p, "chronic_ref_code", True)
        if ref is not None:
            if ref in seen:
                c.duplicate((p, "chronic_ref_code"), seen[ref])
            else:
                seen[ref] = (p, "chronic_ref_code")
        if "clinicalText" in o:
            _str(c, o, p, "clinicalText")
        reg = _date(c, o, p, "registerDate", True)
        dis = _date(c, o, p, "dischargeDate") if "dischargeDate" in o else None
        _order(c, (p, "dischargeDate"), reg, dis)
        if "recordedDate" in o:
            _datetime(c, o, p, "recordedDate", date_ok=True)
        _strs(c, o, p, "description")
        for qp, q in _objs(c, o, p, "condition"):
            _str(c, q, qp, "system", True)
            _str(c, q, qp, "code", True)
            for key in ("display", "text"):
                if key in q:
                    _str(c, q, qp, key)


def _v_immunization(c: _Ctx, payload: dict) -> None:
    _organization(c, payload, "", "managingOrganization", True, sender=True)
    _patient(c, payload)
    items = _objs(c, payload, "", "Immunization", True)
    if type(payload.get("Immunization")) is list and not payload["Immunization"]:
        c.add("Immunization", "replace_all_empty", "ประวัติวัคซีนของบุคคลนี้ที่สถานพยาบาลจะถูกลบทั้งหมด",
              "all of this person's vaccinations at the facility will be deleted")
    for p, o in items:
        _immunization(c, o, p, True)


_SUMMARY_ALIASES = {"opd_count": "opd_encounter_count", "ipd_count": "ipd_encounter_count",
                    "period_end": "period_start"}
_SUMMARY_KEYS = frozenset({"period_start", "opd_encounter_count", "ipd_encounter_count", "ipd_discharge_count"})


def _v_org_summary(c: _Ctx, payload: dict) -> None:
    _organization(c, payload, "", "managingOrganization", True, sender=True)
    days: dict[dt.date, _Path] = {}
    for p, o in _objs(c, payload, "", "EncounterSummary", True, True):
        for key in o:
            if key in _SUMMARY_ALIASES:
                if _SUMMARY_ALIASES[key] not in o:
                    c.add((p, key), "alias_key", f"ใช้ '{_SUMMARY_ALIASES[key]}' ตามสเปก",
                          f"use the spec's '{_SUMMARY_ALIASES[key]}'")
            elif key not in _SUMMARY_KEYS:
                c.add((p, str(key)), "unknown_key", key, key)
        day_key = "period_start" if "period_start" in o or "period_end" not in o else "period_end"
        day = _date(c, o, p, day_key, True, birth_check=False)
        if day is not None:
            if day in days:
                c.duplicate((p, day_key), days[day])
            else:
                days[day] = (p, day_key)
        for key, alias in (("opd_encounter_count", "opd_count"), ("ipd_encounter_count", "ipd_count"),
                           ("ipd_discharge_count", None)):
            use = key if key in o or alias is None or alias not in o else alias
            _nonneg(c, o, p, use, True, integer=True)
    if days and (max(days) - min(days)).days > 30:
        c.add("EncounterSummary", "summary_span", f"{min(days).isoformat()} ถึง {max(days).isoformat()}",
              f"{min(days).isoformat()} to {max(days).isoformat()}")


def _v_referral(c: _Ctx, payload: dict) -> None:
    sender = _organization(c, payload, "", "managingOrganization", True, sender=True)
    _patient(c, payload)
    seen: dict[str, _Path] = {}
    for p, o in _objs(c, payload, "", "ReferralRequest", True, True):
        _organization(c, o, p, "managingOrganization", True)
        saved, c.hcode = c.hcode, None  # the recipient is another facility by design
        rec = _organization(c, o, p, "recipientOrganization", True)
        c.hcode = saved
        if rec is not None and rec == sender:
            c.add((p, "recipientOrganization.identifier.value"), "org_mismatch", "ส่งต่อไปยังสถานพยาบาลเดียวกัน",
                  "referral to the same facility")
        _ref_field(c, o, p, "encounterRefCode", True, None)
        ref = _str(c, o, p, "referralRefCode", True)
        if ref is not None:
            if ref in seen:
                c.duplicate((p, "referralRefCode"), seen[ref])
            seen.setdefault(ref, (p, "referralRefCode"))
        _enum(c, o, p, "status", _REFERRAL_STATUS, True)
        _enum(c, o, p, "intent", _REQ_INTENT, True)
        if "priority" in o:
            _enum(c, o, p, "priority", _PRIORITY)
        for key in ("type", "serviceRequested", "specialty"):
            if key in o:
                _concept(c, o, p, key, text_ok=True)
        ctx = _obj(c, o, p, "context")
        if ctx is not None:
            _str(c, ctx, (p, "context"), "display")
        occ = _datetime(c, o, p, "occurrenceDateTime", future_ok=True, date_ok=True) if "occurrenceDateTime" in o \
            else None
        op = _obj(c, o, p, "occurrencePeriod")
        if op is not None:
            end = _datetime(c, op, (p, "occurrencePeriod"), "end", future_ok=True, birth_check=False, date_ok=True)
            _order(c, (p, "occurrencePeriod.end"), occ, end)
        if "authoredOn" in o:
            _datetime(c, o, p, "authoredOn", date_ok=True)
        req = _obj(c, o, p, "requester")
        if req is not None:
            _practitioner(c, req, (p, "requester"), "agent")
        for key in ("description", "note", "supporting_info_diagnosis", "supporting_info_vital_sign",
                    "supporting_info_medication", "supporting_info_observation", "supporting_info_social_problem",
                    "supporting_info_present_illness"):
            if key in o:
                _str(c, o, p, key)


def _v_self_observation(c: _Ctx, payload: dict) -> None:
    _str(c, payload, "", "system_name", True)
    gis = _obj(c, payload, "", "location_gis")
    if gis is not None:
        for key, limit in (("latitude", 90.0), ("longitude", 180.0)):
            v = gis.get(key)
            if v is None:
                continue
            if type(v) in (int, float):
                c.add(f"location_gis.{key}", "shape_variant", "ส่งเป็นตัวเลข สเปกใช้ข้อความ",
                      "sent as a number; the spec uses a string")
                num: float | None = float(v)
            elif type(v) is str:
                try:
                    num = float(v)
                except ValueError:
                    c.add(f"location_gis.{key}", "type", f"ไม่ใช่ตัวเลข '{_short(v)}'", f"not a number '{_short(v)}'")
                    num = None
            else:
                c.bad_type(f"location_gis.{key}", "string", v)
                num = None
            if num is not None and not -limit <= num <= limit:
                c.add(f"location_gis.{key}", "number_range", f"{num}", f"{num}")
    _str(c, payload, "", "observation_ref_code", True)
    person = _obj(c, payload, "", "person", True)
    if person is not None:
        _cid(c, "person.cid", person.get("cid"))
        for key in ("prefix", "first_name", "last_name"):
            _str(c, person, "person", key, True)
        c.set_birth(_date(c, person, "person", "birth_date", True, birth_check=False))
        _enum(c, person, "person", "gender", _SELF_GENDER, True)
    obs = _obj(c, payload, "", "observation", True)
    if obs is not None:
        p = "observation"
        _str(c, obs, p, "reference_id", True)
        code = _str(c, obs, p, "loinc_code", True)
        if code is not None:
            _loinc_code(c, "observation.loinc_code", code)
        _str(c, obs, p, "loinc_display", True)
        _datetime(c, obs, p, "effective_datetime", True)
        for key in ("device_display", "performer_display"):
            if key in obs:
                _str(c, obs, p, key)
        _str(c, obs, p, "observation_value", True)
        _str(c, obs, p, "observation_unit", True)


def _v_caregiver(c: _Ctx, payload: dict) -> None:
    _organization(c, payload, "", "managingOrganization", True, sender=True)
    patient_cid = _patient(c, payload)
    c.set_birth(None)  # dates inside a caregiver item are about the caregiver, not the patient
    for p, o in _objs(c, payload, "", "CareGiver", True, True):
        cid = _identifiers(c, o, p, True)
        if cid is not None and cid == patient_cid:
            c.add((p, "identifier"), "duplicate_key", "ผู้ดูแลเป็นคนเดียวกับผู้ป่วย", "the caregiver is the patient")
        _bool(c, o, p, "active", True)
        if "intent" in o:
            _str(c, o, p, "intent")
        name = o.get("name")
        if type(name) is list:
            c.bad_type((p, "name"), "object", name)
        else:
            n = _obj(c, o, p, "name", True)
            if n is not None:
                _human_name(c, n, (p, "name"))
        if "telecom_phone" in o:
            _str(c, o, p, "telecom_phone")
        _concept(c, o, p, "qualification", True, _ONE_PHR_CAREGIVER_TYPE)
        alias = o.get("care_giver_name")
        if alias is not None and type(alias) not in (str, dict):
            c.bad_type((p, "care_giver_name"), "string", alias)


def _v_medication_request(c: _Ctx, payload: dict) -> None:
    _organization(c, payload, "", "managingOrganization", True, sender=True)
    _patient(c, payload)
    for p, o in _objs(c, payload, "", "MedicationRequest", True, True):
        ids = _objs(c, o, p, "identifier", True, True)
        for ip, ident in ids:
            _other_identifier(c, ident, ip)
            s = ident.get("system")
            if type(s) is str and s and s != SYS_EPRESCRIPTION:
                c.add((ip, "system"), "coding_system_local", f"สเปกใช้ {SYS_EPRESCRIPTION}",
                      f"the spec uses {SYS_EPRESCRIPTION}")
        _enum(c, o, p, "status", _MEDREQ_STATUS, True)
        _enum(c, o, p, "intent", _REQ_INTENT, True)
        _concept(c, o, p, "medication", True, _TMT_SYSTEMS)
        _ref_field(c, o, p, "encounter_ref_code", True, None)
        _datetime(c, o, p, "authoredOn", True, date_ok=True)
        _practitioner(c, o, p, "requester", True, True)
        _notes(c, o, p)
        for dp, d in _objs(c, o, p, "dosageInstruction", True, True):
            if "sequence" in d:
                _nonneg(c, d, dp, "sequence", positive=True, integer=True)
            for key in ("text", "patientInstruction"):
                if key in d:
                    _str(c, d, dp, key)
            timing = _obj(c, d, dp, "timing")
            if timing is not None:
                rep = _obj(c, timing, (dp, "timing"), "repeat")
                if rep is not None:
                    rp: _Path = (dp, "timing.repeat")
                    _nonneg(c, rep, rp, "frequency", positive=True, integer=True)
                    _nonneg(c, rep, rp, "period", positive=True)
                    _enum(c, rep, rp, "periodUnit", _PERIOD_UNIT)
            if "route" in d:
                _concept(c, d, dp, "route")
            for rp, r in _objs(c, d, dp, "doseAndRate"):
                _quantity(c, r, rp, "doseQuantity", positive=True)
        disp = _obj(c, o, p, "dispenseRequest")
        if disp is not None:
            dp = (p, "dispenseRequest")
            _period(c, disp, dp, "validityPeriod", False, future_ok=True)
            _nonneg(c, disp, dp, "numberOfRepeatsAllowed", integer=True)
            _quantity(c, disp, dp, "quantity", positive=True)
            _quantity(c, disp, dp, "expectedSupplyDuration", positive=True)


def _v_drp(c: _Ctx, payload: dict) -> None:
    _organization(c, payload, "", "managingOrganization", True, sender=True)
    _patient(c, payload)
    seen: dict[str, _Path] = {}
    for p, o in _objs(c, payload, "", "DrugRelatedProblem", True, True):
        ref = _str(c, o, p, "drp_ref_code", True)
        if ref is not None:
            if ref in seen:
                c.duplicate((p, "drp_ref_code"), seen[ref])
            seen.setdefault(ref, (p, "drp_ref_code"))
        _bool(c, o, p, "active")
        if "intent" in o:
            _str(c, o, p, "intent")
        _concept(c, o, p, "medication", True, _TMT_SYSTEMS)
        if "category" in o:
            _concept(c, o, p, "category", systems=_ONE_PHR_DRP_CATEGORY)
        if "description" in o:
            _str(c, o, p, "description")
        if "recordedDate" in o:
            _datetime(c, o, p, "recordedDate", date_ok=True)


def _hospital_code(c: _Ctx, payload: dict) -> None:
    code = _str(c, payload, "", "hospital_code", True)
    if code is not None and _hcode(c, "hospital_code", code):
        c.hcode = code


def _v_agent_status(c: _Ctx, payload: dict) -> None:
    """UpdateAgentStatus (§4), both modes: the error mode sends only hospital_code and agent_status."""
    _hospital_code(c, payload)
    _str(c, payload, "", "agent_status", True)
    _opt_strs(c, payload, "", ("agent_computer_name", "most_client_version", "agent_version"))


def _v_agent_name(c: _Ctx, payload: dict) -> None:
    _hospital_code(c, payload)


def _v_mask_encounter(c: _Ctx, payload: dict) -> None:
    """MaskEncounter?mode=set|get (§4): {cid, encounter_ref_code}."""
    _cid(c, "cid", payload.get("cid"))
    _ref_field(c, payload, "", "encounter_ref_code", True, None)


def _v_chronic_remove(c: _Ctx, payload: list) -> None:
    """PatientChronicRegisterv1?mode=remove (§2.3): a JSON array of chronic_ref_code strings; [] removes
    every row of that cd_code."""
    if not payload:
        c.add("$", "replace_all_empty", "ลบทะเบียนโรคเรื้อรังของ cd_code นี้ทั้งหมดของสถานพยาบาล",
              "removes every registry row of this cd_code for the facility")
    seen: set[str] = set()
    for i, v in enumerate(payload):
        if type(v) is not str:
            c.bad_type(f"$[{i}]", "string", v)
        elif not v or v.isspace():
            c.add(f"$[{i}]", "not_empty", "", "")
        elif v in seen:
            c.add(f"$[{i}]", "duplicate_key", v, v)
        else:
            seen.add(v)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A request body the validator knows: name, URL path (with its query when that selects the body),
    the resource array (uploads), the known top-level keys and whether the body is an object or array."""

    name: str
    path: str
    resource_key: str
    top_keys: frozenset[str]
    title_th: str
    title_en: str
    check: Callable[[_Ctx, Any], None]
    root: str = "object"


def _ep(name: str, resource: str, keys: tuple[str, ...], th: str, en: str, check: Callable[[_Ctx, Any], None],
        path: str | None = None, root: str = "object") -> Endpoint:
    return Endpoint(name, path or f"/api/{name}", resource, frozenset(keys), th, en, check, root)


_STD = ("managingOrganization", "Patient")
ENDPOINTS: dict[str, Endpoint] = {e.name: e for e in (
    _ep("UpdatePHRv1", "Encounter", (*_STD, "AllergyIntolerance", "CarePlan", "Encounter", "scope"),
        "ข้อมูลสุขภาพรายบุคคล (การรับบริการ)", "personal health record (encounters)", _v_update_phr),
    _ep("AllergyIntolerancev1", "AllergyIntolerance", (*_STD, "AllergyIntolerance"),
        "ประวัติการแพ้ยา/อาหาร", "drug/food allergies", _v_allergy),
    _ep("PatientChronicRegisterv1", "ChronicDiseaseRegister", (*_STD, "ChronicDiseaseRegister"),
        "ทะเบียนโรคเรื้อรัง", "chronic-disease registry", _v_chronic),
    _ep("ImmunizationRegisterv1", "Immunization", (*_STD, "Immunization"),
        "ทะเบียนการได้รับวัคซีน", "vaccination register", _v_immunization),
    _ep("OrgEncounterSummary", "EncounterSummary", ("managingOrganization", "EncounterSummary"),
        "จำนวนการรับบริการรายวัน", "daily encounter counts", _v_org_summary),
    _ep("ReferralRequest", "ReferralRequest", (*_STD, "ReferralRequest"),
        "การส่งต่อผู้ป่วย", "referral", _v_referral),
    _ep("SelfObservation", "observation",
        ("system_name", "location_gis", "observation_ref_code", "person", "observation"),
        "ผลตรวจวัดด้วยตนเอง", "self/kiosk measurement", _v_self_observation),
    _ep("CareGiver", "CareGiver", (*_STD, "CareGiver"), "ผู้ดูแล", "caregiver", _v_caregiver),
    _ep("MedicationRequest", "MedicationRequest", (*_STD, "MedicationRequest"),
        "ใบสั่งยา", "prescription", _v_medication_request),
    _ep("DrugRelatedProblem", "DrugRelatedProblem", (*_STD, "DrugRelatedProblem"),
        "ปัญหาจากการใช้ยา", "drug-related problem", _v_drp),
    # utility bodies (§2.3 remove, §4)
    _ep("PatientChronicRegisterv1_remove", "", (), "ลบรายการทะเบียนโรคเรื้อรัง", "remove chronic registry rows",
        _v_chronic_remove, path="/api/PatientChronicRegisterv1?mode=remove", root="array"),
    _ep("UpdateAgentStatus", "", ("hospital_code", "agent_status", "agent_computer_name", "most_client_version",
                                  "agent_version"),
        "สถานะโปรแกรมส่งข้อมูล", "sending-agent status", _v_agent_status),
    _ep("GetAgentComputerName", "", ("hospital_code",), "เครื่องที่กำลังส่งข้อมูล", "computer currently sending",
        _v_agent_name),
    _ep("MaskEncounter", "", ("cid", "encounter_ref_code"), "ซ่อน/ตรวจสถานะการรับบริการที่ข้อมูลผิด",
        "mask or query a wrong encounter", _v_mask_encounter),
)}


# --- entry points -------------------------------------------------------------------------------------

def validate(endpoint: str, payload: Any) -> list[Issue]:
    """Every problem of ``payload`` (already parsed JSON) for ``endpoint`` (e.g. ``"UpdatePHRv1"``).

    Never raises on bad data; raises ``ValueError`` only for an endpoint name it does not know.
    """
    ep = ENDPOINTS.get(endpoint)
    if ep is None:
        raise ValueError(f"unknown endpoint {endpoint!r}; known: {', '.join(ENDPOINTS)}")
    c = _Ctx()
    if ep.root == "array":
        if type(payload) is not list:
            c.add("$", "payload_array", f"ได้ {_TYPE_TH.get(_json_type(payload), _json_type(payload))}",
                  f"got {_json_type(payload)}")
        else:
            ep.check(c, payload)
        return c.issues
    if type(payload) is not dict:
        c.add("$", "payload_object", f"ได้ {_TYPE_TH.get(_json_type(payload), _json_type(payload))}",
              f"got {_json_type(payload)}")
        return c.issues
    _top_keys(c, payload, ep.top_keys)
    ep.check(c, payload)
    return c.issues


def parse_and_validate(endpoint: str, body: bytes) -> tuple[Any, list[Issue]]:
    """Parse a request body and validate it: ``(payload or None, issues)``. A leading BOM is reported
    and then skipped so the rest of the body is still checked; bad UTF-8 or JSON stops there."""
    if endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; known: {', '.join(ENDPOINTS)}")
    c = _Ctx()
    if body.startswith(b"\xef\xbb\xbf"):
        c.add("$", "json_bom", "ลบ BOM (EF BB BF) ออกก่อนส่ง", "remove the EF BB BF bytes before sending")
        body = body[3:]
    elif body[:2] in (b"\xff\xfe", b"\xfe\xff"):
        c.add("$", "json_bom", "UTF-16 BOM — ต้องส่งเป็น UTF-8", "UTF-16 BOM; send UTF-8")
        return None, c.issues
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as ue:
            c.add("$", "json_utf8", f"ไบต์ที่ {ue.start}", f"at byte {ue.start}")
            return None, c.issues
        pos = getattr(e, "pos", None)
        where_th = f" ตำแหน่ง {pos}" if pos is not None else ""
        where_en = f" at position {pos}" if pos is not None else ""
        detail = mask_text(str(e.msg if hasattr(e, "msg") else e))[:120]
        c.add("$", "json_syntax", f"{detail}{where_th}", f"{detail}{where_en}")
        return None, c.issues
    return payload, c.issues + validate(endpoint, payload)


def validate_json_bytes(endpoint: str, body: bytes) -> list[Issue]:
    """Issues of a raw request body: BOM, invalid UTF-8 or JSON, then everything :func:`validate` finds."""
    return parse_and_validate(endpoint, body)[1]
