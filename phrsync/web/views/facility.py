"""One facility's page (``/facility/{h}``): per day over the months HIS vs built vs confirmed vs what PHR holds,
refusals grouped by reason with masked examples and who must fix them, quarantined rows by rule, the build's
data-quality notes, the runs that touched it — and, for a province admin, "ส่งใหม่หลังแก้ไข / send again after
fixing" (CSRF-checked, audited; :mod:`phrsync.web.actions`)."""

from __future__ import annotations

import datetime as dt
import re

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from phrsync.errors import NotFoundError, UsageError
from phrsync.web import actions, auth, charts, export, model, scope
from phrsync.web.actions import SendAgain
from phrsync.web.render import day, t, unknown
from phrsync.web.views.common import AdminUser, CurrentUser, json, lang, page, sources

router = APIRouter()
HCODE = re.compile(r"^[0-9A-Za-z]{5}$")


def _hcode(h: str) -> str:
    if not HCODE.match(h):
        raise UsageError(f"รหัสหน่วยบริการต้องมี 5 ตัว: {h[:20]}", f"a facility code has 5 characters: {h[:20]}")
    return h


def _months(days: list[model.DayPoint]) -> list[dict[str, object]]:
    """Per month totals of the days (newest first): a sum stays None only when no day of it is known."""
    out: dict[dt.date, dict[str, object]] = {}
    for p in days:
        m = p.day.replace(day=1)
        acc = out.setdefault(m, {"month": m, "his": None, "built": None, "confirmed": None, "phr": None})
        for k in ("his", "built", "confirmed", "phr"):
            v = getattr(p, k)
            if v is not None:
                acc[k] = int(acc[k] or 0) + v  # type: ignore[call-overload]
    return [out[m] for m in sorted(out, reverse=True)]


@router.get("/facility/{hospcode}")
def facility_page(hospcode: str, request: Request, user: CurrentUser) -> Response:
    src = sources(request)
    scope.facility_info(src, user, _hcode(hospcode))
    detail = model.facility_detail(src, hospcode)
    detail.runs = scope.runs_seen(src, user, detail.runs)
    jobs: SendAgain = request.app.state.send_again
    job = jobs.job(hospcode)
    return page(request, "facility.html", user, "facilities", d=detail, r=detail.row, months=_months(detail.days),
                job=job, job_text=actions.STATE_TEXT, can_send_again=user.is_admin and jobs.available,
                owner_text=model.OWNER_TEXT, problem_text=model.PROBLEM_TEXT,
                refresh=job is not None and job.state == actions.RUNNING)


@router.post("/facility/{hospcode}/send-again", dependencies=[Depends(auth.check_csrf)])
def send_again(hospcode: str, request: Request, user: AdminUser) -> Response:
    """What ``phrsync retry --refused --facility H`` does, in the background; back to the page, which shows it
    running and then its result."""
    src = sources(request)
    scope.facility_info(src, user, _hcode(hospcode))
    jobs: SendAgain = request.app.state.send_again
    if not jobs.available:
        raise UsageError("เว็บนี้เปิดโดยไม่มีการตั้งค่าการส่ง", "this site runs without delivery settings")
    model.facility_detail(src, hospcode)  # an admin typing a code no store knows gets 404, not a job
    store = request.app.state.auth
    client = request.client.host if request.client else "-"
    jobs.start(hospcode, user.username, on_done=lambda j: store.audit(
        user.username, "send_again_done", jobs.summary(j), client))
    auth.audit(request, "send_again", f"facility={hospcode}")
    return RedirectResponse(f"/facility/{hospcode}#send-again", status_code=303)


@router.get("/api/facility/{hospcode}/send-again")
def send_again_state(hospcode: str, request: Request, user: CurrentUser) -> Response:
    """The job's state as JSON (the page polls it while it runs)."""
    scope.facility_info(sources(request), user, _hcode(hospcode))
    job = request.app.state.send_again.job(hospcode)
    return json({"job": job.to_dict() if job else None})


def _day_rows(detail: model.FacilityDetail, lg: str) -> tuple[list[str], list[list[object]]]:
    """The chart's days as a table: a Buddhist-era day, then the four figures (unknown as the page says it)."""
    head = [t(lg, "วันที่", "Day"), t(lg, "ใน HIS", "In the HIS"), t(lg, "สร้างแล้ว", "Built"),
            t(lg, "PHR ยืนยัน", "Confirmed"), t(lg, "PHR มีอยู่", "Held by PHR")]
    body: list[list[object]] = []
    for p in detail.days:
        body.append([day(p.day, lg), *(unknown(lg) if v is None else int(v)
                                       for v in (p.his, p.built, p.confirmed, p.phr))])
    return head, body


@router.get("/facility/{hospcode}/days.{ext}")
def facility_days_export(hospcode: str, ext: str, request: Request, user: CurrentUser) -> Response:
    """The facility's days (what its chart draws) as CSV or XLSX; audited."""
    if ext not in ("csv", "xlsx"):
        raise NotFoundError(f"ไม่มีการส่งออกแบบ {ext[:10]}", f"no {ext[:10]} export")
    src = sources(request)
    scope.facility_info(src, user, _hcode(hospcode))
    detail = model.facility_detail(src, hospcode)
    head, body = _day_rows(detail, lang(request))
    auth.audit(request, "export", f"facility={hospcode} days.{ext} rows={len(body)}")
    stem = f"{hospcode}-days"
    return export.csv_response(head, body, stem) if ext == "csv" else export.xlsx_response(head, body, stem)


@router.get("/api/chart/facility/{hospcode}")
def facility_chart(hospcode: str, request: Request, user: CurrentUser) -> Response:
    src = sources(request)
    scope.facility_info(src, user, _hcode(hospcode))
    detail = model.facility_detail(src, hospcode)
    lg = lang(request)
    opt = charts.daily(charts.every_day(detail.days), lg, ("his", "built", "confirmed", "phr"),
                       t(lg, "รายวัน: ใน HIS, สร้างแล้ว, PHR ยืนยัน, PHR มีอยู่",
                         "per day: in the HIS, built, confirmed, held by PHR"), kind="bar", zoom_days=92)
    return json({"option": opt, "days": [p.day.isoformat() for p in charts.every_day(detail.days)]})
