"""CSV and XLSX answers of a table as the page shows it: (headers, rows of values) in, a download out.
Figures stay numbers; text that a spreadsheet would run as a formula is defused (OWASP's CSV-injection rule in
the CSV, strings never turned into formulas in the XLSX)."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence
from typing import Any

from fastapi.responses import Response

from phrsync.thai import BANGKOK, local_time

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def csv_safe(v: Any) -> Any:
    """A text cell starting with ``=``, ``+``, ``@``, a tab, a CR or ``-x`` (a facility name or an error text
    from another system) gets a leading apostrophe, so a spreadsheet shows it instead of running it."""
    if isinstance(v, str) and v and (v[0] in "=+@\t\r" or (v[0] == "-" and len(v) > 1 and not v[1].isspace())):
        return "'" + v
    return v


def filename(stem: str, ext: str) -> str:
    """``phrsync-<stem>-YYYYMMDD-HHMM.<ext>`` in Asia/Bangkok time."""
    return f"phrsync-{stem}-{local_time(time.time(), BANGKOK):%Y%m%d-%H%M}.{ext}"


def _disposition(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


def csv_response(head: Sequence[str], body: Sequence[Sequence[Any]], stem: str) -> Response:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(head)
    w.writerows([csv_safe(v) for v in line] for line in body)
    # a BOM: Excel opens a UTF-8 CSV of Thai text as mojibake without one
    return Response(("\ufeff" + buf.getvalue()).encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers=_disposition(filename(stem, "csv")))


def xlsx_response(head: Sequence[str], body: Sequence[Sequence[Any]], stem: str,
                  wide: Sequence[int] = ()) -> Response:
    """One sheet, a bold frozen header with a filter; ``wide``: the columns of long text."""
    import xlsxwriter

    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True, "strings_to_numbers": False, "strings_to_formulas": False,
                                   "strings_to_urls": False})
    ws = wb.add_worksheet(stem[:31])
    bold = wb.add_format({"bold": True, "bg_color": "#e8f1ec", "border": 1})
    ws.write_row(0, 0, list(head), bold)
    for i, line in enumerate(body, start=1):
        ws.write_row(i, 0, list(line))
    ws.freeze_panes(1, 0)
    if head:
        ws.autofilter(0, 0, max(len(body), 1), len(head) - 1)
    for j in range(len(head)):
        ws.set_column(j, j, 30 if j in wide else 14)
    wb.close()
    return Response(buf.getvalue(), media_type=XLSX_TYPE, headers=_disposition(filename(stem, "xlsx")))
