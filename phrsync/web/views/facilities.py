"""The facilities table (``/facilities``) and its exports (``/facilities.csv``, ``/facilities.xlsx``): the
national PHR Dashboard's columns and more, only the facilities the user may see, filtered and sorted by the
query string — the same query string gives the page and its exports, so an export is what the page shows.
CIDs never appear here (the table holds counts and masked error texts only); every export is audited."""

from __future__ import annotations

import dataclasses
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from phrsync.web import auth, export, model, scope, table
from phrsync.web.views.common import CurrentUser, lang, page, sources

router = APIRouter()


def _shown(request: Request, user: auth.User) -> tuple[table.Query, list[model.FacilityRow], list[model.FacilityRow]]:
    """(query, rows the user may see, rows shown for the query)."""
    query = table.Query.parse(request.query_params)
    rows = scope.visible(user, model.facility_rows(sources(request)))
    return query, rows, table.apply(rows, query, lang(request))


@router.get("/facilities")
def facilities_page(request: Request, user: CurrentUser) -> Response:
    """Every facility the user may see is in the page, in the query's order; those the filters leave out are
    hidden (the browser filters and sorts again as one types, without a round trip, and keeps the address and
    the export links in step)."""
    query, rows, shown = _shown(request, user)
    lg = lang(request)
    ordered = table.apply(rows, dataclasses.replace(query, q="", district="", problem=""), lg)
    lines = [(r, table.matches(r, query), [(c, c.get(r, lg)) for c in table.COLUMNS]) for r in ordered]
    return page(request, "facilities.html", user, "facilities", query=query, lines=lines, shown=len(shown),
                total=len(rows), columns=table.COLUMNS, districts=table.districts(rows, lg),
                problems=[(p, model.PROBLEM_TEXT[p]) for p in model.PROBLEMS], qs=urlencode(query.params()),
                cell_text=table.cell_text, sort_value=table.sort_value, problem_text=model.PROBLEM_TEXT)


def _audit_export(request: Request, kind: str, query: table.Query, n: int) -> None:
    auth.audit(request, "export", f"facilities.{kind} {urlencode(query.params()) or '-'} rows={n}")


@router.get("/facilities.csv")
def facilities_csv(request: Request, user: CurrentUser) -> Response:
    query, _, shown = _shown(request, user)
    head, body = table.export_rows(shown, lang(request))
    _audit_export(request, "csv", query, len(shown))
    return export.csv_response(head, body, "facilities")


@router.get("/facilities.xlsx")
def facilities_xlsx(request: Request, user: CurrentUser) -> Response:
    query, _, shown = _shown(request, user)
    head, body = table.export_rows(shown, lang(request))
    _audit_export(request, "xlsx", query, len(shown))
    wide = [i for i, c in enumerate(table.COLUMNS) if c.key in ("name", "agent_state", "last_error", "problems")]
    return export.xlsx_response(head, body, "facilities", wide)
