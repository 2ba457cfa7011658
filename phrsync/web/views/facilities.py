"""The facilities table (``/facilities``) and its exports (``/facilities.csv``, ``/facilities.xlsx``): the
national PHR Dashboard's columns and more, only the facilities the user may see, filtered and sorted by the
query string — the same query string gives the page and its exports, so an export is what the page shows.
CIDs never appear here (the table holds counts and masked error texts only); every export is audited."""

from __future__ import annotations

import csv
import dataclasses
import io
import time
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from phrsync.thai import BANGKOK, local_time
from phrsync.web import auth, model, scope, table
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


def _csv_safe(v: object) -> object:
    """A text cell that a spreadsheet would run as a formula (a facility name or an error text from another
    system starting with ``=``, ``+``, ``@`` or ``-x``) gets a leading apostrophe (OWASP's CSV injection rule)."""
    if isinstance(v, str) and v and (v[0] in "=+@\t\r" or (v[0] == "-" and len(v) > 1 and not v[1].isspace())):
        return "'" + v
    return v


def _filename(ext: str) -> str:
    return f"phrsync-facilities-{local_time(time.time(), BANGKOK):%Y%m%d-%H%M}.{ext}"


def _audit_export(request: Request, kind: str, query: table.Query, n: int) -> None:
    auth.audit(request, "export", f"facilities.{kind} {urlencode(query.params()) or '-'} rows={n}")


@router.get("/facilities.csv")
def facilities_csv(request: Request, user: CurrentUser) -> Response:
    query, _, shown = _shown(request, user)
    head, body = table.export_rows(shown, lang(request))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(head)
    w.writerows([_csv_safe(v) for v in line] for line in body)
    _audit_export(request, "csv", query, len(shown))
    # a BOM: Excel opens a UTF-8 CSV of Thai text as mojibake without one
    return Response(("\ufeff" + buf.getvalue()).encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{_filename("csv")}"'})


@router.get("/facilities.xlsx")
def facilities_xlsx(request: Request, user: CurrentUser) -> Response:
    import xlsxwriter

    query, _, shown = _shown(request, user)
    lg = lang(request)
    head, body = table.export_rows(shown, lg)
    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True, "strings_to_numbers": False, "strings_to_formulas": False,
                                   "strings_to_urls": False})
    ws = wb.add_worksheet("facilities")
    bold = wb.add_format({"bold": True, "bg_color": "#e8f1ec", "border": 1})
    ws.write_row(0, 0, head, bold)
    for i, line in enumerate(body, start=1):
        ws.write_row(i, 0, line)
    ws.freeze_panes(1, 2)
    ws.autofilter(0, 0, max(len(body), 1), len(head) - 1)
    for j, c in enumerate(table.COLUMNS):
        ws.set_column(j, j, 28 if c.kind == table.TEXT and c.key in ("name", "last_error", "agent_state") else 14)
    wb.close()
    _audit_export(request, "xlsx", query, len(shown))
    return Response(buf.getvalue(),
                    media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f'attachment; filename="{_filename("xlsx")}"'})
