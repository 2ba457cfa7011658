"""Read-side utilities an agent calls to reconcile: what PHR holds per day, month and chronic register, and
the coding systems."""

from __future__ import annotations

import csv
import datetime
import functools
import re

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from phrsync.sandbox import auth, payloads, store
from phrsync.sandbox.deps import Uploader, sandbox_of
from phrsync.sandbox.envelope import ApiError, envelope
from phrsync.sandbox.payloads import Bad, issue
from phrsync.terminology.tables import DATA_DIR

router = APIRouter(tags=["utility"])
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH_RE = re.compile(r"^\d{4}-\d{2}$")


def _real_date(text: str | None, pattern: re.Pattern[str], suffix: str = "") -> str | None:
    """``text`` when it has the shape and names a day that exists, else None: 2025-13-01 or 2025-02-30 would
    otherwise read as 'PHR holds nothing that day', and an agent walking the calendar would resend (or never
    notice) its bug."""
    if not text or not pattern.match(text):
        return None
    try:
        datetime.date.fromisoformat(text + suffix)
    except ValueError:
        return None
    return text


@router.get("/api/OrganizationSummary",
            summary="รายการ encounter_ref_code รายวัน / month_summary / patient_chronic_registry")
async def organization_summary(request: Request, p: Uploader, data: str = Query(...), date: str | None = None,
                               month: str | None = None, hospital_code: str | None = None,
                               cd_code: str | None = None) -> Response:
    hcode = auth.same_facility(p, hospital_code)
    st = sandbox_of(request).store
    if data == "encounter_ref_code":
        day = _real_date(date, _DATE_RE)
        if day is None:
            raise Bad([issue("date", "format", "date ต้องเป็นวันที่ที่มีจริง แบบ yyyy-mm-dd",
                             "date must be a real day as yyyy-mm-dd")])
        res = await run_in_threadpool(st.read, lambda c: store.refs_for_day(c, hcode, day))
    elif data == "month_summary":
        mon = _real_date(month, _MONTH_RE, "-01")
        if mon is None:
            raise Bad([issue("month", "format", "month ต้องเป็นเดือนที่มีจริง แบบ yyyy-mm",
                             "month must be a real month as yyyy-mm")])
        res = await run_in_threadpool(st.read, lambda c: store.month_counts(c, hcode, mon))
    elif data == "patient_chronic_registry":
        cd = payloads.clean(cd_code) if cd_code else None
        res = await run_in_threadpool(st.read, lambda c: store.chronic_refs(c, hcode, cd))
    else:
        raise Bad([issue("data", "enum", "data ไม่ถูกต้อง",
                         "data must be encounter_ref_code, month_summary or patient_chronic_registry")])
    return envelope(request, res)


@functools.cache
def _codes() -> tuple[dict[str, str], ...]:
    with (DATA_DIR / "phr_codingsystems.csv").open(encoding="utf-8", newline="") as fh:
        return tuple(csv.DictReader(fh))


def _system_name(row: dict[str, str]) -> str:
    s = row["system"]
    return s.split("System=", 1)[1] if "System=" in s else row["name"]


@router.get("/api/CodingSystem", summary="รายการรหัสมาตรฐาน / coding systems and codes")
async def coding_system(request: Request, p: Uploader, System: str | None = None) -> Response:  # noqa: N803
    codes = _codes()
    if not System:
        seen: dict[str, dict[str, str]] = {}
        for r in codes:
            seen.setdefault(_system_name(r), {"name": _system_name(r), "system": r["system"]})
        return envelope(request, list(seen.values()))
    System = payloads.clean(System)  # noqa: N806
    rows = [{"code": r["code"], "display": r["display"]} for r in codes
            if _system_name(r) == System or r["name"] == System]
    if not rows:
        raise ApiError(404, "unknown System", "ไม่รู้จักระบบรหัสนี้")
    return envelope(request, rows)
