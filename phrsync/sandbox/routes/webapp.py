"""What the citizen sees (``/api/WebApp``) and the eKYC status (``/idp/api/check_ekyc``)."""

from __future__ import annotations

import math

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from phrsync.sandbox import readside
from phrsync.sandbox.deps import JSON_BODY, IdpUser, Uploader, json_object, sandbox_of
from phrsync.sandbox.envelope import ApiError, envelope
from phrsync.sandbox.payloads import Bad, issue

router = APIRouter()
HOT_PATHS = ("/idp/api/check_ekyc",)  # served by phrsync.sandbox.hotpath: a checking run is one call per person
WEBAPP_ACTIONS = {"PatientSummary", "Address", "Telecom", "Coverage", "Encounter", "VitalSign", "Condition",
                  "Appointment", "Observation", "DiagnosticReport", "Medication", "ProfileImage", "Immunization",
                  "Allergy", "NCD", "Referral", "SelfObservation", "CareGiver", "Pregnancy", "ReportEncounter",
                  "ValidateOTP", "RequestOTP"}


def _is_cid(cid: str) -> bool:
    return len(cid) == 13 and cid.isdigit()


@router.post("/idp/api/check_ekyc", tags=["utility"], openapi_extra=JSON_BODY,
             summary="สถานะยืนยันตัวตน eKYC (ต้องมีสิทธิ์ MOPH_IDP_API) / eKYC status")
async def check_ekyc(request: Request, p: IdpUser) -> Response:
    """For any valid CID, from the register or the district's configured share (:mod:`phrsync.sandbox.ekyc`), within the
    account's ``ekyc_rate_limit_per_minute`` (429 beyond it); 403 for a token without MOPH_IDP_API."""
    data = await json_object(request)
    cid = str(data.get("cid") or "")
    if not _is_cid(cid):
        raise Bad([issue("cid", "format", "cid ต้องเป็นตัวเลข 13 หลัก", "cid must be 13 digits")])
    sbx = sandbox_of(request)
    wait = sbx.ekyc_rate.try_acquire(p.hospital_code, sbx.cfg.clock())
    if wait:
        raise ApiError(429, "rate limit exceeded", "ตรวจถี่เกินกำหนด", headers={"Retry-After": str(math.ceil(wait))})
    return envelope(request, await sbx.ekyc.answer(cid))


@router.get("/api/WebApp", tags=["read"], operation_id="webapp_get",
            summary="มุมมองของประชาชน (Encounter, PatientSummary, Immunization, NCD, Allergy, Referral, "
                    "SelfObservation, CareGiver) / what the citizen sees")
@router.post("/api/WebApp", tags=["read"], operation_id="webapp_post",
             summary="มุมมองของประชาชน (cid ในเนื้อความ) / what the citizen sees (cid in the body)")
async def webapp(request: Request, p: Uploader, Action: str = Query(...), cid: str | None = None,  # noqa: N803
                 mode: str | None = None) -> Response:
    if request.method == "POST" and not cid:
        cid = str((await json_object(request)).get("cid") or "")
    if Action not in WEBAPP_ACTIONS:
        raise ApiError(404, "unknown Action", "ไม่รู้จัก Action")
    if Action not in ("Encounter", "PatientSummary", *readside.LIST_ACTIONS):
        raise ApiError(501, f"Action {Action} is not implemented in the sandbox",
                       "แซนด์บ็อกซ์ยังไม่รองรับ Action นี้")
    if not cid or not _is_cid(cid):
        raise Bad([issue("cid", "format", "cid ต้องเป็นตัวเลข 13 หลัก", "cid must be 13 digits")])
    c = cid
    sbx = sandbox_of(request)
    if Action == "Encounter":
        res = await run_in_threadpool(sbx.store.read, lambda conn: readside.encounters_for(conn, c))
    elif Action in readside.LIST_ACTIONS:
        res = await run_in_threadpool(sbx.store.read, lambda conn: readside.items_for(conn, Action, c))
    else:
        now = sbx.cfg.clock()
        res = await run_in_threadpool(sbx.store.read, lambda conn: readside.patient_summary(conn, c, now))
    return envelope(request, res)
