"""The Digital ID page (``/did``): KPI 54 by district as ``phrsync did report`` prints it (the same
:func:`phrsync.did.report.build_report`), the targets of the current quarter with pass/fail, which denominator
each figure uses, the trend of the check runs' snapshots (``/api/chart/did``), and per facility the follow-up
list of residents without a Digital ID (``/did/facility/{h}``, masked CIDs) — which a facility user may open for
their own facility only, a district viewer for their district's, checked here on the server. A district viewer's
table holds their district's row and the province total (:func:`phrsync.web.scope.did_rows`). Both tables export
as CSV and XLSX (``/did.csv``, ``/did/facility/{h}.xlsx``) from their one definition
(:mod:`phrsync.web.didtable`), under the same checks, and every export is audited."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import Response

from phrsync.did import kpi, report
from phrsync.did.population import facility_district
from phrsync.did.store import CITIZEN, PERSONNEL, DidStore
from phrsync.errors import NotFoundError, UsageError
from phrsync.web import auth, charts, didtable, export, scope
from phrsync.web.render import t
from phrsync.web.views.common import CurrentUser, json, lang, page, sources

router = APIRouter()
HCODE = re.compile(r"^[0-9A-Za-z]{5}$")
FOLLOWUP_LIMIT = 5000  # a health centre's list; more is a province's, not a visit list
NOT_CHECKED = didtable.NOT_CHECKED_TEXT


def did_store(request: Request) -> DidStore:
    """One :class:`DidStore` over the web's state store for the app's life (opening it creates its tables)."""
    st: DidStore | None = getattr(request.app.state, "did_store", None)
    if st is None:
        st = DidStore(sources(request).state_url)
        request.app.state.did_store = st
    return st


def targets(request: Request) -> kpi.Targets:
    tg: kpi.Targets = getattr(request.app.state.options, "did_targets", None) or kpi.Targets()
    return tg


def _district_of(store: DidStore, hospcode: str) -> str | None:
    return facility_district(hospcode) or store.district_of(hospcode)


def _facilities(request: Request, store: DidStore, user: auth.User) -> list[dict[str, object]]:
    """The facilities with residents on the citizens' list that ``user`` may see, with how many lack a DID."""
    names = sources(request).facility_names
    per: dict[str, dict[str, object]] = {}
    for g in store.group_counts(CITIZEN):
        if not g.hospcode:
            continue
        d = g.district or _district_of(store, g.hospcode)
        if not user.can_see(g.hospcode, d):
            continue
        a = per.setdefault(g.hospcode, {"hospcode": g.hospcode, "name": names.get(g.hospcode, ""), "district": d,
                                        "people": 0, "checked": 0, "with_did": 0})
        for k in ("people", "checked", "with_did"):
            a[k] = int(a[k]) + int(getattr(g, k))  # type: ignore[call-overload]
    out = sorted(per.values(), key=lambda a: str(a["hospcode"]))
    for a in out:
        a["without"] = int(a["people"]) - int(a["with_did"])  # type: ignore[call-overload]
    return out


def _report(request: Request, store: DidStore, user: auth.User) -> tuple[kpi.Report, list[kpi.Row]]:
    """The report and the rows ``user`` may see of it (the page and its exports)."""
    rep = report.build_report(store, targets(request))
    return rep, scope.did_rows(user, rep.rows)


def _ext(ext: str) -> str:
    if ext not in ("csv", "xlsx"):
        raise NotFoundError(f"ไม่มีการส่งออกแบบ {ext[:10]}", f"no {ext[:10]} export")
    return ext


def _send(ext: str, head: list[str], body: list[list[object]], stem: str, wide: list[int]) -> Response:
    return export.csv_response(head, body, stem) if ext == "csv" else export.xlsx_response(head, body, stem, wide)


@router.get("/did")
def did_page(request: Request, user: CurrentUser) -> Response:
    store = did_store(request)
    has_data = store.count_people() > 0
    rep, rows = _report(request, store, user) if has_data else (None, [])
    checked = bool(rep and (rep.total.citizens_checked or rep.total.personnel_checked))
    return page(request, "did.html", user, "did", rep=rep, rows=rows, has_data=has_data, checked=checked,
                columns=didtable.district_columns(store.ekyc_import() is not None),
                narrowed=user.role == auth.DISTRICT, has_trend=bool(store.snapshots()),
                facilities=_facilities(request, store, user) if has_data else [], not_checked=NOT_CHECKED)


@router.get("/did.{ext}")
def did_export(ext: str, request: Request, user: CurrentUser) -> Response:
    """The district table as the page shows it to ``user`` (a district viewer: their district and the total)."""
    ext = _ext(ext)
    store = did_store(request)
    _rep, rows = _report(request, store, user)
    columns = didtable.district_columns(store.ekyc_import() is not None)
    head, body = didtable.export_rows(columns, rows, lang(request))
    auth.audit(request, "export", f"did.{ext} rows={len(body)}")
    return _send(ext, head, body, "did-kpi54", [0])


@router.get("/did/facility/{hospcode}.{ext}")
def did_followup_export(hospcode: str, ext: str, request: Request, user: CurrentUser) -> Response:
    """A facility's follow-up list, masked, for whom may see it (:func:`report.followup` raises Forbidden)."""
    ext = _ext(ext)
    _hcode(hospcode)
    people = report.followup(did_store(request), hospcode, user, CITIZEN, limit=FOLLOWUP_LIMIT)
    head, body = didtable.export_rows(didtable.FOLLOWUP_COLUMNS, people, lang(request), numbered=True)
    auth.audit(request, "export", f"did_followup facility={hospcode} .{ext} rows={len(body)}")
    return _send(ext, head, body, f"{hospcode}-did-followup", [1, 2])


def _hcode(hospcode: str) -> str:
    if not HCODE.match(hospcode):
        raise UsageError(f"รหัสหน่วยบริการต้องมี 5 ตัว: {hospcode[:20]}",
                         f"a facility code has 5 characters: {hospcode[:20]}")
    return hospcode


@router.get("/did/facility/{hospcode}")
def did_followup(hospcode: str, request: Request, user: CurrentUser) -> Response:
    """A facility's residents without a Digital ID; :func:`report.followup` raises Forbidden for another's."""
    _hcode(hospcode)
    store = did_store(request)
    people = report.followup(store, hospcode, user, CITIZEN, limit=FOLLOWUP_LIMIT + 1)
    auth.audit(request, "did_followup", f"facility={hospcode} rows={min(len(people), FOLLOWUP_LIMIT)}")
    return page(request, "did.html", user, "did", rep=None, has_data=True, checked=True, has_trend=False,
                facilities=[], followup=people[:FOLLOWUP_LIMIT], more=len(people) > FOLLOWUP_LIMIT,
                columns=didtable.FOLLOWUP_COLUMNS, hospcode=hospcode,
                facility_name=sources(request).facility_names.get(hospcode, ""),
                district=_district_of(store, hospcode), not_checked=NOT_CHECKED)


@router.get("/api/chart/did")
def did_chart(request: Request, user: CurrentUser) -> Response:
    """KPI 54.1 and 54.2 of the province after each check run, with the quarter's targets as lines."""
    store = did_store(request)
    lg = lang(request)
    cit, pers = report.trend(store, CITIZEN), report.trend(store, PERSONNEL)
    rep = report.build_report(store, targets(request)) if store.count_people() else None
    opt = charts.did_trend(cit, pers, lg, rep.target_citizens if rep else None,
                           rep.target_personnel if rep else None,
                           t(lg, "แนวโน้ม KPI 54 ทั้งจังหวัด (ร้อยละที่มี Digital ID)",
                             "KPI 54 trend, province (% with a Digital ID)"))
    # "categories" (the x labels) is what app.js counts into data-chart-drawn; "times" the runs' epoch seconds
    return json({"option": opt, "categories": opt["xAxis"]["data"],
                 "times": sorted({p.taken_at for p in cit + pers})})
