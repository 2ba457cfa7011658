"""``phrsync codes import-labs``: a facility's list of its own lab codes → the store's ``lab_map`` rows.

Why: LABFU.LABTEST should be the 7-digit ICD-10-TM lab code (or the old 2-digit one) that ``lab_loinc`` turns into
LOINC, but many HIS send their own lab item codes. The lab knows what each one is; this reads that list in bulk
instead of one ``codes accept lab`` per code. Columns (any case, any order, extra columns ignored; CSV, tab text,
.xlsx or .xls):

``code``     the facility's own lab code as LABFU.LABTEST carries it (required; also ``local_code``)
``labtest``  the standard lab code it means: 7-digit or old 2-digit code of ``lab_loinc`` (also ``labcode``)
``loinc``    or its LOINC, when ``labtest`` is blank: must belong to exactly one ``lab_loinc`` row
``name``     the lab's name in the HIS; a row with a name and no standard code is kept as the name only, so
             ``codes unmapped --kind lab`` can suggest a code for it (it maps nothing)
``hcode``    the facility (blank = ``--facility``, else province-wide); optional ``source``

A later import replaces that facility's imported rows; reviewed rows (``codes accept lab``) stay unless the file
maps that code (a name-only row never replaces a reviewed mapping). Bad rows are named by file, line, field and
reason and left out; a file without a usable row changes nothing.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phrsync.errors import UsageError
from phrsync.terminology.codestore import CodeStore, now_local
from phrsync.terminology.sheets import Issues, RowIssue, SheetNotes, header_index, iter_rows

HCODE_RE = re.compile(r"^[0-9A-Za-z]{5}$")
LOINC_RE = re.compile(r"^\d{1,7}-\d$")
CODE_COLS = ("CODE", "LOCAL_CODE")
STD_COLS = ("LABTEST", "LABCODE")


@dataclass
class LabImportResult:
    file: str
    source: str
    rows: dict[str, int] = field(default_factory=dict)  # mapped rows per facility ('' = province-wide)
    names_only: int = 0  # rows kept as a name for suggestions, mapping nothing
    repeated: int = 0
    kept_reviewed: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    issues: Issues = field(default_factory=Issues)

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "source": self.source, "rows": self.rows, "rows_total": sum(self.rows.values()),
                "names_only": self.names_only, "repeated": self.repeated, "kept_reviewed": self.kept_reviewed,
                "warnings": self.warnings, "bad_rows": self.issues.count,
                "bad_row_examples": [i.to_dict() for i in self.issues.rows]}


def _by_loinc() -> dict[str, list[dict[str, str]]]:
    from phrsync.terminology.tables import get_table

    out: dict[str, list[dict[str, str]]] = {}
    for r in get_table("lab_loinc").rows:
        if r.get("loinc"):
            out.setdefault(r["loinc"], []).append(r)
    return out


def import_labs(store: CodeStore, path: str | Path, facility: str | None = None, *,
                today: dt.date | None = None) -> LabImportResult:
    """Read one lab-code list and replace the facility's imported rows with it (see the module for columns)."""
    from phrsync.terminology.tables import get_table

    p = Path(path)
    if facility is not None and not HCODE_RE.match(facility):
        raise UsageError(f"รหัสหน่วยบริการ {facility!r} ไม่ถูกต้อง (5 หลัก)",
                         f"facility code {facility!r} is not 5 characters")
    if not p.is_file():
        raise UsageError(f"ไม่พบไฟล์ {p}", f"no such file {p}")
    day = (today or now_local().date()).isoformat()
    source = f"lab list: {p.name} (นำเข้า / imported {day})"
    res = LabImportResult(file=p.name, source=source)
    table = get_table("lab_loinc")
    by_loinc = _by_loinc()
    notes = SheetNotes()
    # hcode -> code -> (labcode, loinc, name, row source)
    per: dict[str, dict[str, tuple[str, str, str, str]]] = {}
    with p.open("rb") as raw:
        rows = iter_rows(raw, p.name, notes)
        try:
            _, header = next(rows)
        except StopIteration:
            raise UsageError(f"{p.name}: ไฟล์ว่าง", f"{p.name}: the file is empty") from None
        idx = header_index(header)
        code_col = next((c for c in CODE_COLS if c in idx), None)
        std_col = next((c for c in STD_COLS if c in idx), None)
        if code_col is None:
            raise UsageError(f"{p.name}: ไม่มีคอลัมน์ code (รหัสแล็บของหน่วยบริการ)",
                             f"{p.name}: no code column (the facility's lab code)",
                             hint=f"header: {', '.join(header[:12])}")
        if std_col is None and "LOINC" not in idx and "NAME" not in idx:
            raise UsageError(f"{p.name}: ไม่มีคอลัมน์ labtest, loinc หรือ name", f"{p.name}: no labtest, loinc or "
                             "name column", hint=f"header: {', '.join(header[:12])}")

        def bad(line: int, col: str, th: str, en: str) -> None:
            res.issues.add(RowIssue(p.name, line, header[idx[col]], th, en))

        for line, cells in rows:
            if not any(cells):
                continue
            row = {h: (cells[i] if i < len(cells) else "") for h, i in idx.items()}
            code = row[code_col]
            if not code:
                bad(line, code_col, "ไม่มีรหัสแล็บ แถวนี้ถูกข้าม", "no lab code; row left out")
                continue
            hcode = facility or ""
            if row.get("HCODE"):
                h = row["HCODE"]
                if not HCODE_RE.match(h):
                    bad(line, "HCODE", f"รหัสหน่วยบริการ {h!r} ไม่ใช่ 5 หลัก แถวนี้ถูกข้าม",
                        f"facility code {h!r} is not 5 characters; row left out")
                    continue
                if facility and h != facility:
                    bad(line, "HCODE", f"หน่วยบริการ {h} ไม่ตรงกับ --facility {facility} แถวนี้ถูกข้าม",
                        f"facility {h} is not --facility {facility}; row left out")
                    continue
                hcode = h
            std = row.get(std_col, "") if std_col else ""
            loinc = row.get("LOINC", "")
            name = row.get("NAME", "")
            target: dict[str, str] | None = None
            if std:
                target = table.get(std)
                if target is None:
                    bad(line, std_col or "LABTEST", f"ไม่พบรหัสแล็บ {std!r} ในตาราง lab_loinc แถวนี้ถูกข้าม",
                        f"lab code {std!r} is not in lab_loinc; row left out")
                    continue
                if loinc and target.get("loinc") and loinc != target["loinc"]:
                    bad(line, "LOINC", f"LOINC {loinc} ไม่ตรงกับรหัสแล็บ {std} ({target['loinc']}) แถวนี้ถูกข้าม",
                        f"LOINC {loinc} is not lab code {std}'s ({target['loinc']}); row left out")
                    continue
            elif loinc:
                if not LOINC_RE.match(loinc):
                    bad(line, "LOINC", f"LOINC {loinc!r} ผิดรูปแบบ (เช่น 4548-4) แถวนี้ถูกข้าม",
                        f"LOINC {loinc!r} is malformed (e.g. 4548-4); row left out")
                    continue
                found = by_loinc.get(loinc, [])
                if len(found) != 1:
                    why_th = ("ไม่มีในตาราง lab_loinc" if not found else
                              "ตรงกับหลายรหัสแล็บ (" + ", ".join(r["labtest"] for r in found) + ") ให้ระบุ labtest")
                    why_en = ("is not in lab_loinc" if not found else
                              "matches several lab codes (" + ", ".join(r["labtest"] for r in found)
                              + "); give labtest")
                    bad(line, "LOINC", f"LOINC {loinc} {why_th} แถวนี้ถูกข้าม", f"LOINC {loinc} {why_en}; row left out")
                    continue
                target = found[0]
            elif not name:
                bad(line, std_col or "LOINC", "ไม่มีรหัสมาตรฐาน (labtest/loinc) และไม่มีชื่อ แถวนี้ถูกข้าม",
                    "no standard code (labtest/loinc) and no name; row left out")
                continue
            labcode = target["labtest"] if target else ""
            bucket = per.setdefault(hcode, {})
            if code in bucket:
                res.repeated += 1
            bucket[code] = (labcode, (target or {}).get("loinc", ""), name or (target or {}).get("name_en", ""),
                            row.get("SOURCE", ""))
    res.warnings.extend(notes.warnings)
    if not any(per.values()):
        raise UsageError(f"{p.name}: ไม่มีแถวรหัสแล็บที่ใช้ได้ ไม่ได้เปลี่ยนอะไร",
                         f"{p.name}: no usable lab rows; nothing was changed",
                         hint=res.issues.rows[0].text if res.issues.rows else None)
    for hcode, rowmap in sorted(per.items()):
        n, kept = store.replace_lab_map(hcode, [(c, *v) for c, v in rowmap.items()], source)
        res.rows[hcode] = n
        res.names_only += sum(1 for v in rowmap.values() if not v[0])
        if kept:
            res.kept_reviewed[hcode] = kept
    return res
