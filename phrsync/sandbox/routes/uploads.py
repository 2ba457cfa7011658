"""Uploads (``/api/UpdatePHRv1`` and the registers): validate with the shared validator, check the facility
and its rate, then one write transaction per accepted upload."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import Table
from starlette.responses import Response

from phrsync.sandbox import auth, codec, payloads, store
from phrsync.sandbox.deps import (
    JSON_BODY,
    Uploader,
    UploaderOrFacility,
    loads,
    read_body,
    require_json,
    sandbox_of,
)
from phrsync.sandbox.envelope import ApiError, envelope
from phrsync.sandbox.payloads import Bad, issue

router = APIRouter(tags=["upload"])
_JSON_ARRAY_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "string"}}]}}}}}
Issues = list[dict[str, Any]]
HOT_PATHS = ("/api/UpdatePHRv1",)  # served by phrsync.sandbox.hotpath: they carry the load


def _split(found: list[Any]) -> tuple[Issues, Issues]:
    """(errors, warnings) as plain dicts."""
    ds = [payloads.issue_dict(i) for i in found]
    return [d for d in ds if d["severity"] == "error"], [d for d in ds if d["severity"] != "error"]


async def _upload(request: Request, p: auth.Principal, endpoint: str, has_org: bool = True
                  ) -> tuple[str, dict[str, Any], Issues]:
    """The checks every upload passes, in order: Content-Type (415), size (413), bytes/JSON, facility (403),
    rate (429), content (400). Returns (facility code, payload, warnings)."""
    sbx = sandbox_of(request)
    require_json(request)
    body = await read_body(request)
    payload, found = sbx.validator.parse_and_validate(endpoint, body)
    errs, warns = _split(found)
    if payload is None or not isinstance(payload, dict):
        if not errs:
            errs = [issue("$", "payload_object", "ข้อมูลต้องเป็นออบเจ็กต์ JSON", "payload must be a JSON object")]
        raise Bad(errs)
    try:
        hcode = payloads.org_hcode(payload) if has_org else p.hospital_code  # SelfObservation: the token's
    except Bad:
        hcode = ""
    if auth.valid_hcode(hcode):
        auth.same_facility(p, hcode)  # 403 before content errors: another facility's data is not examined
        wait = sbx.rate.try_acquire(hcode, sbx.cfg.clock())
        if wait:
            raise ApiError(429, "rate limit exceeded", "ส่งข้อมูลถี่เกินกำหนด",
                           headers={"Retry-After": str(math.ceil(wait))})
    if errs:
        raise Bad(errs)
    if not auth.valid_hcode(hcode):
        raise Bad([issue("managingOrganization.identifier.value", "hcode", "รหัสหน่วยบริการต้องเป็นตัวเลข 5 หลัก",
                         "facility code must be 5 digits")])
    return hcode, payload, warns


def _accepted(request: Request, n: int, warns: Issues) -> Response:
    pw = [f"{w['path']}: {w['message_th']} / {w['message_en']}" for w in warns]
    return envelope(request, {"received": n}, extra={"processing_warning": pw})


async def _store(request: Request, payload: dict[str, Any], hcode: str, warns: Issues,
                 write: Callable[[Any, float], int], cid: str | None = None) -> Response:
    """One write transaction for an accepted upload: the facility's name/agent/last-seen, the
    person (registers that carry a Patient), then the endpoint's own rows."""
    sbx = sandbox_of(request)
    name, agent, now = payloads.org_name(payload), payloads.org_agent(payload), sbx.cfg.clock()
    person = (cid, codec.pack(payload.get("Patient"))) if cid is not None else None

    def job(conn: Any) -> int:
        store.touch_facility(conn, hcode, name, agent, now)
        if person is not None:
            store.put_person(conn, person[0], hcode, person[1], now)
        return write(conn, now)

    return _accepted(request, await sbx.write(job), warns)


@router.post("/api/UpdatePHRv1", openapi_extra=JSON_BODY,
             summary="บันทึกข้อมูลสุขภาพรายบุคคล / full personal health record (upsert by encounter ref)")
async def update_phr(request: Request, p: UploaderOrFacility) -> Response:
    hcode, payload, warns = await _upload(request, p, "UpdatePHRv1")
    sbx = sandbox_of(request)
    cid = payloads.patient_cid(payload)
    encs = payloads.require_list(payload, "Encounter")
    keyed: dict[str, tuple[str, str, str, Any]] = {}
    problems: Issues = []
    for i, e in enumerate(encs):
        try:
            k = payloads.encounter_key(hcode, e, i)
        except Bad as b:
            problems.extend(b.issues)
            continue
        keyed[k.ref] = (k.ref, k.day, k.start_utc, e)
    if problems:
        raise Bad(problems)
    replace_all = payloads.is_scope_all(payload)
    allergy = payload.get("AllergyIntolerance")
    allergy_rows = [{"data": codec.pack(a)} for a in allergy] if isinstance(allergy, list) and allergy else None
    name, agent, now = payloads.org_name(payload), payloads.org_agent(payload), sbx.cfg.clock()
    write = store.EncounterWrite(hcode, name, agent, cid, payload.get("Patient"), list(keyed.values()), now)
    if not replace_all and allergy_rows is None:  # the common case: bulk-written with its batch
        return _accepted(request, await sbx.write(write), warns)

    def job(conn: Any) -> int:
        if replace_all:
            store.drop_other_encounters(conn, hcode, cid, set(keyed))
        if allergy_rows is not None:
            store.replace_list(conn, store.allergies, hcode, cid, allergy_rows, now)
        return write(conn)

    return _accepted(request, await sbx.write(job), warns)


async def _person_list(request: Request, p: auth.Principal, endpoint: str, key: str, table: Table,
                       ref_key: str | None) -> Response:
    """A register replaced whole per person and facility (vaccinations, allergies)."""
    hcode, payload, warns = await _upload(request, p, endpoint)
    cid = payloads.patient_cid(payload)
    items = payload.get(key)
    if not isinstance(items, list):
        raise Bad([issue(key, "required", f"ต้องมี {key} เป็นรายการ", f"{key} must be a list")])
    out, problems = [], []
    for i, it in enumerate(items):
        row: dict[str, Any] = {"data": codec.pack(it)}
        if ref_key:
            ref = it.get(ref_key) if isinstance(it, dict) else None
            if not isinstance(ref, str) or not ref.strip():
                problems.append(issue(f"{key}[{i}].{ref_key}", "required", f"ต้องระบุ {ref_key}",
                                      f"{ref_key} is required"))
                continue
            row["encounter_ref_code"] = payloads.normalize_ref(hcode, ref)
        out.append(row)
    if problems:
        raise Bad(problems)
    return await _store(request, payload, hcode, warns,
                        lambda conn, now: store.replace_list(conn, table, hcode, cid, out, now), cid=cid)


@router.post("/api/ImmunizationRegisterv1", openapi_extra=JSON_BODY,
             summary="ทะเบียนวัคซีน (แทนที่ทั้งรายการของบุคคลในหน่วยบริการ) / vaccination register, replace-all")
async def immunization(request: Request, p: Uploader) -> Response:
    return await _person_list(request, p, "ImmunizationRegisterv1", "Immunization", store.immunizations,
                              "encounterRefCode")


@router.post("/api/AllergyIntolerancev1", openapi_extra=JSON_BODY,
             summary="ประวัติแพ้ยา/อาหาร (แทนที่ทั้งรายการ) / allergy list, replace-all per person and facility")
async def allergy(request: Request, p: Uploader) -> Response:
    return await _person_list(request, p, "AllergyIntolerancev1", "AllergyIntolerance", store.allergies, None)


@router.post("/api/PatientChronicRegisterv1", openapi_extra=_JSON_ARRAY_BODY,
             summary="ทะเบียนโรคเรื้อรัง (upsert ตาม chronic_ref_code; mode=remove ลบ) / chronic registry")
async def chronic(request: Request, p: Uploader, mode: str | None = None, cd_code: str | None = None,
                  hospital_code: str | None = None) -> Response:
    sbx = sandbox_of(request)
    if (mode or "").lower() == "remove":
        hcode = auth.same_facility(p, hospital_code)
        if not cd_code:
            raise Bad([issue("cd_code", "required", "ต้องระบุ cd_code", "cd_code is required")])
        require_json(request)
        refs = loads(await read_body(request))
        if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
            raise Bad([issue("$", "type", "ต้องเป็นอาร์เรย์ของ chronic_ref_code",
                             "body must be a JSON array of chronic_ref_code strings")])
        code, wanted = payloads.clean(cd_code), [payloads.clean(r) for r in refs]
        n = await sbx.write(lambda c: store.remove_chronic(c, hcode, code, wanted))
        return envelope(request, n)
    hcode, payload, warns = await _upload(request, p, "PatientChronicRegisterv1")
    cid = payloads.patient_cid(payload)
    items = payloads.require_list(payload, "ChronicDiseaseRegister")
    rows, problems = [], []
    for i, it in enumerate(items):
        try:
            ref, cd = payloads.chronic_cd_code(it, i)
        except Bad as b:
            problems.extend(b.issues)
            continue
        rows.append({"chronic_ref_code": ref, "cd_code": cd, "data": codec.pack(it)})
    if problems:
        raise Bad(problems)
    return await _store(request, payload, hcode, warns,
                        lambda conn, now: store.upsert_chronic(conn, hcode, cid, rows, now), cid=cid)


def _doc_key(endpoint: str, item: Any) -> Any:
    if not isinstance(item, dict):
        return None
    if endpoint == "ReferralRequest":
        return item.get("referralRefCode")
    if endpoint == "DrugRelatedProblem":
        return item.get("drp_ref_code")
    ids = item.get("identifier")  # MedicationRequest: prescription ID; CareGiver: caregiver CID
    return ids[0].get("value") if isinstance(ids, list) and ids and isinstance(ids[0], dict) else None


async def _documents(request: Request, p: auth.Principal, endpoint: str) -> Response:
    """Items upserted by their own reference key (referrals, prescriptions, drug problems, caregivers)."""
    hcode, payload, warns = await _upload(request, p, endpoint)
    cid = payloads.patient_cid(payload)
    items = payloads.require_list(payload, endpoint)
    rows, problems = [], []
    for i, it in enumerate(items):
        key = _doc_key(endpoint, it)
        if not isinstance(key, str) or not key.strip():
            problems.append(issue(f"{endpoint}[{i}]", "required", "ต้องมีรหัสอ้างอิงของรายการ",
                                  "the item's reference key is required"))
            continue
        rows.append({"ref": payloads.clean(key.strip()), "data": codec.pack(it)})
    if problems:
        raise Bad(problems)
    return await _store(request, payload, hcode, warns,
                        lambda conn, now: store.upsert_documents(conn, endpoint, hcode, cid, rows, now))


def _doc_route_for(endpoint: str) -> Callable[..., Any]:
    # bound by closure, not a default argument: FastAPI would expose a defaulted parameter as a
    # query parameter that a client could set (the schemathesis run found exactly that)
    async def _doc_route(request: Request, p: Uploader) -> Response:
        return await _documents(request, p, endpoint)

    return _doc_route


for _ep in ("ReferralRequest", "MedicationRequest", "DrugRelatedProblem", "CareGiver"):
    router.add_api_route(f"/api/{_ep}", _doc_route_for(_ep), methods=["POST"], openapi_extra=JSON_BODY,
                         operation_id=f"upload_{_ep}", summary=f"{_ep}: upsert ตามรหัสอ้างอิงของรายการ / by item key")


def _dig_str(obj: Any, *keys: str) -> str:
    for k in keys:
        obj = obj.get(k) if isinstance(obj, dict) else None
    return obj.strip() if isinstance(obj, str) else ""


@router.post("/api/SelfObservation", openapi_extra=JSON_BODY,
             summary="ผลตรวจวัดด้วยตนเอง (หน่วยบริการ = ของโทเค็น) / home or kiosk measurement")
async def self_observation(request: Request, p: Uploader) -> Response:
    hcode, payload, warns = await _upload(request, p, "SelfObservation", has_org=False)
    cid = _dig_str(payload, "person", "cid")
    ref = _dig_str(payload, "observation_ref_code")
    if not (len(cid) == 13 and cid.isdigit()) or not ref:
        raise Bad([issue("person.cid", "required", "ต้องมี person.cid และ observation_ref_code",
                         "person.cid and observation_ref_code are required")])
    row = {"ref": payloads.clean(ref), "data": codec.pack(payload)}
    sbx = sandbox_of(request)
    now = sbx.cfg.clock()
    n = await sbx.write(lambda c: store.upsert_documents(c, "SelfObservation", hcode, cid, [row], now))
    return _accepted(request, n, warns)


@router.post("/api/OrgEncounterSummary", openapi_extra=JSON_BODY,
             summary="ยอดการรับบริการรายวันจาก HIS / daily encounter counts (at most one month per call)")
async def org_summary(request: Request, p: Uploader) -> Response:
    hcode, payload, warns = await _upload(request, p, "OrgEncounterSummary")
    rows = payloads.summary_rows(payload)
    if len({r["day"][:7] for r in rows}) > 1:
        raise Bad([issue("EncounterSummary", "one_month", "ส่งได้ครั้งละไม่เกิน 1 เดือน",
                         "send at most one month per call")])
    return await _store(request, payload, hcode, warns,
                        lambda conn, now: store.put_org_summary(conn, hcode, rows, now))
