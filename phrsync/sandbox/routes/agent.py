"""Agent utilities: the heartbeat (UpdateAgentStatus), which computer is sending (GetAgentComputerName) and
removing one encounter."""

from __future__ import annotations

import math

from fastapi import APIRouter, Query, Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from phrsync.sandbox import auth, payloads, store
from phrsync.sandbox.deps import JSON_BODY, Uploader, json_object, sandbox_of
from phrsync.sandbox.envelope import ApiError, envelope, iso_utc

router = APIRouter(tags=["utility"])


@router.get("/api/RemoveEncounter", summary="ลบการรับบริการ 1 รายการ / remove one encounter")
async def remove_encounter(request: Request, p: Uploader, encounter_ref_code: str = Query(...),
                           hospital_code: str | None = None) -> Response:
    hcode = auth.same_facility(p, hospital_code)
    ref = payloads.normalize_ref(hcode, encounter_ref_code)
    n = await sandbox_of(request).write(lambda c: store.remove_encounter(c, hcode, ref))
    return envelope(request, n)


@router.post("/api/UpdateAgentStatus", openapi_extra=JSON_BODY,
             summary="สถานะโปรแกรมส่งข้อมูล (ห่างกันอย่างน้อย 5 วินาที) / agent heartbeat, mode=Error for errors")
async def update_agent_status(request: Request, p: Uploader, mode: str | None = None) -> Response:
    sbx = sandbox_of(request)
    cfg = sbx.cfg
    data = await json_object(request)
    hcode = auth.same_facility(p, str(data.get("hospital_code") or ""))
    fields = {k: payloads.clean(str(v)) for k, v in data.items() if isinstance(v, str | int | float)}
    error = (mode or "").lower() == "error"
    now = cfg.clock()
    try:
        await sbx.write(lambda c: store.record_agent_status(c, hcode, fields, error, now, cfg.agent_status_interval))
    except store.TooSoon as e:
        raise ApiError(429, "UpdateAgentStatus allowed at most once every "
                       f"{cfg.agent_status_interval:g} s per facility",
                       "ส่งสถานะถี่เกินไป ต้องเว้นอย่างน้อย 5 วินาที",
                       headers={"Retry-After": str(math.ceil(e.wait))}) from e
    return envelope(request, {"hospital_code": hcode, "mode": "Error" if error else "Status"})


@router.post("/api/GetAgentComputerName", openapi_extra=JSON_BODY,
             summary="เครื่องที่กำลังส่งข้อมูลของหน่วยบริการ / last reporting agent computer")
async def get_agent_computer_name(request: Request, p: Uploader) -> Response:
    data = await json_object(request)
    hcode = auth.same_facility(p, str(data.get("hospital_code") or ""))
    row = await run_in_threadpool(sandbox_of(request).store.read, lambda c: c.execute(
        select(store.agent_status).where(store.agent_status.c.hospital_code == hcode)).mappings().first())
    if row is None or not row["computer_name"]:
        return envelope(request, None)
    # agent_status (the last status text) is the sandbox's addition: it tells a finished agent ("idle") from
    # one still sending
    return envelope(request, {"hospital_code": hcode, "agent_computer_name": row["computer_name"],
                              "last_update": iso_utc(row["last_update"]), "agent_status": row["status"]})
