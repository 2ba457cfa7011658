"""The morning page (``/``): tiles, the last 90 days (HIS vs confirmed), by district, what needs attention.

A province admin sees the province. A district viewer sees the same page made of their district only: its
tiles from the district's row and its facilities, the chart from their days. Facility staff have their own
facility's page as their start page."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from phrsync.thai import BANGKOK
from phrsync.web import auth, charts, model, scope
from phrsync.web.render import t
from phrsync.web.views.common import CurrentUser, json, lang, page, sources

router = APIRouter()


def _district_overview(src: model.Sources, user: auth.User, ov: model.Overview) -> model.Overview:
    """``ov`` cut down to the district of ``user``: nothing of another district stays on the page."""
    rows = scope.visible(user, model.facility_rows(src))
    codes = {r.info.hospcode for r in rows}
    mine = [d for d in ov.districts if d.code is not None and d.code == user.district]
    d = mine[0] if mine else None
    today = dt.datetime.fromtimestamp(time.time(), BANGKOK).date()
    received = [r.last_received for r in rows]
    since7 = dt.datetime.combine(today - dt.timedelta(days=6), dt.time(), BANGKOK).timestamp()
    start_today = dt.datetime.combine(today, dt.time(), BANGKOK).timestamp()
    first = ov.daily[0].day if ov.daily else today - dt.timedelta(days=89)
    last = ov.daily[-1].day if ov.daily else today
    daily = model.facilities_days(src, sorted(codes), first, last)  # the province chart's days, a gap alike
    return dataclasses.replace(
        ov, facilities=len(rows),
        # known for the district when the province's figure is known (the state store answered)
        sending_today=(sum(1 for x in received if x is not None and x >= start_today)
                       if ov.sending_today is not None else None),
        sending_7d=sum(1 for x in received if x is not None and x >= since7) if ov.sending_7d is not None else None,
        silent=sum(1 for r in rows if model.SILENT in r.problems) if ov.silent is not None else None,
        his_month=d.his_month if d else None, phr_month=d.phr_month if d else None,
        pct_month=d.pct_month if d else None, pending=d.pending if d else None,
        refused=d.refused if d else None, failed=d.failed if d else None,
        daily=daily, districts=mine,
        attention=[a for a in ov.attention if a.hospcode in codes or (a.hospcode is None
                                                                       and a.kind in ("scheduler", "agent"))])


def scoped_overview(src: model.Sources, user: auth.User) -> model.Overview:
    ov = model.overview(src)
    if user.is_admin:
        return ov
    return _district_overview(src, user, ov)


@router.get("/", response_model=None)
def overview_page(request: Request, user: CurrentUser) -> Response:
    if not user.is_admin and user.role == auth.FACILITY and user.facility:
        return RedirectResponse(f"/facility/{user.facility}", status_code=303)
    ov = scoped_overview(sources(request), user)
    return page(request, "overview.html", user, "overview", ov=ov, problem_text=model.PROBLEM_TEXT)


@router.get("/api/chart/overview")
def overview_chart(request: Request, user: CurrentUser) -> Response:
    """The last 90 days of what the user may see: HIS vs confirmed (and what PHR said it holds)."""
    if user.role == auth.FACILITY:
        raise auth.Forbidden("หน้าภาพรวมเป็นของจังหวัดและอำเภอ", "the overview is for the province and districts")
    ov = scoped_overview(sources(request), user)
    lg = lang(request)
    opt = charts.daily(ov.daily, lg, ("his", "confirmed", "phr"),
                       t(lg, "90 วันล่าสุด: ใน HIS เทียบกับ PHR ยืนยัน", "last 90 days: in the HIS vs confirmed"))
    return json({"option": opt, "days": [p.day.isoformat() for p in ov.daily]})


@router.get("/api/chart/districts")
def districts_chart(request: Request, user: CurrentUser) -> Response:
    if user.role == auth.FACILITY:
        raise auth.Forbidden("หน้าภาพรวมเป็นของจังหวัดและอำเภอ", "the overview is for the province and districts")
    ov = scoped_overview(sources(request), user)
    return json({"option": charts.districts(ov.districts, lang(request), ov.month),
                 "categories": [d.code for d in ov.districts]})
