"""``phrsync codes import-drugs``: a facility's drug master → the store's ``drug_master`` rows.

Where the mapping from a facility's drug code to TMT really lives (no public file maps the 24-digit code to
TMT): each facility's own drug master and the NHSO Drug Catalogue each hospital keeps. The formats read, by
their own column names (upper or lower case, any order; extra columns ignored):

``nhso-catalogue``  the hospital's NHSO Drug Catalogue (บัญชีรายการยาโรงพยาบาล ส่ง สปสช.), Excel or CSV:
                    ``HospDrugCode`` (required), ``TMTID``, ``NDC24`` (24 digits), ``GenericName``, ``TradeName``,
                    ``Strength``, ``DosageForm``, ``UpdateFlag`` (A/E/U/D; D rows are left out), …
``jhcis-cdrug``     JHCIS table ``cdrug``: ``drugcode`` (required), ``drugcode24``, ``tmtcode``, ``drugname``
``hosxp-drugitems`` HOSxP table ``drugitems``: ``icode`` (required), ``did``, ``tmt_tp_code`` (else
                    ``tmt_gp_code``), ``name`` (+ ``strength``, ``units`` when present)
``hospitalos``      HospitalOS, an export of ``b_nhso_map_drug`` (``b_item_id``, ``f_nhso_drug_id`` = the 24-digit
                    code, longer values cut to 24 as HospitalOS's own 43-file queries do) joined to ``b_item``
                    (``item_number`` = the code DRUG_OPD.DID carries, ``item_common_name``) and ``b_map_drug_tmt``
                    (``b_drug_tmt_tpucode``); ``item_number`` required, else ``b_item_id``
``csv``             phrsync's own: ``code`` (required), ``did24``, ``tmtid``, ``name``, optional ``hcode``
                    (blank = province-wide) and ``source``; or a ``drug_tmt.csv`` (``didstd``, ``tmt_code``,
                    ``name``, ``source``) as a codes directory holds it

A later import replaces the same facility's imported rows (reviewed mappings stay unless the file has that
code). Within one file a code given twice keeps its last row (a catalogue's later update). Bad rows are named
by file, line, field and reason; a bad 24-digit code or TMT ID is left out of the row, which is kept.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phrsync.errors import UsageError
from phrsync.terminology.codestore import CodeStore, now_local
from phrsync.terminology.sheets import Issues, RowIssue, SheetNotes, header_index, iter_rows

FORMATS = ("nhso-catalogue", "jhcis-cdrug", "hosxp-drugitems", "hospitalos", "csv")
NEEDS_FACILITY = ("jhcis-cdrug", "hosxp-drugitems", "hospitalos")  # local codes mean something in one facility only
HCODE_RE = re.compile(r"^[0-9A-Za-z]{5}$")
DID24_RE = re.compile(r"^\d{24}$")
TMTID_RE = re.compile(r"^\d{1,18}$")

# format → (required code column, 24-digit columns, TMT columns, name columns)
_COLUMNS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "nhso-catalogue": ("HOSPDRUGCODE", ("NDC24",), ("TMTID",), ("TRADENAME", "GENERICNAME", "STRENGTH", "DOSAGEFORM")),
    "jhcis-cdrug": ("DRUGCODE", ("DRUGCODE24",), ("TMTCODE",), ("DRUGNAME",)),
    "hosxp-drugitems": ("ICODE", ("DID",), ("TMT_TP_CODE", "TMT_GP_CODE"), ("NAME", "STRENGTH", "UNITS")),
    "hospitalos": ("ITEM_NUMBER", ("F_NHSO_DRUG_ID",), ("B_DRUG_TMT_TPUCODE",), ("ITEM_COMMON_NAME",)),
    "csv": ("CODE", ("DID24",), ("TMTID",), ("NAME",)),
}


@dataclass
class DrugImportResult:
    file: str
    format: str
    source: str
    rows: dict[str, int] = field(default_factory=dict)  # per facility ('' = province-wide)
    with_tmt: int = 0
    with_did24: int = 0
    deleted: int = 0  # catalogue rows flagged D
    repeated: int = 0  # codes given more than once (the last row kept)
    kept_reviewed: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    issues: Issues = field(default_factory=Issues)

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "format": self.format, "source": self.source, "rows": self.rows,
                "rows_total": sum(self.rows.values()), "with_tmt": self.with_tmt, "with_did24": self.with_did24,
                "deleted": self.deleted, "repeated": self.repeated, "kept_reviewed": self.kept_reviewed,
                "warnings": self.warnings, "bad_rows": self.issues.count,
                "bad_row_examples": [i.to_dict() for i in self.issues.rows]}


def _name(fmt: str, row: dict[str, str]) -> str:
    if fmt == "nhso-catalogue":
        base = row.get("TRADENAME") or row.get("GENERICNAME") or ""
        extra = [row.get(k, "") for k in ("STRENGTH", "DOSAGEFORM") if row.get(k) and row.get(k) not in base]
        return " ".join([base, *extra]).strip()
    if fmt == "hosxp-drugitems":
        base = row.get("NAME", "")
        extra = [row.get(k, "") for k in ("STRENGTH", "UNITS") if row.get(k) and row.get(k) not in base]
        return " ".join([base, *extra]).strip()
    return row.get(_COLUMNS[fmt][3][0], "")


def import_drugs(store: CodeStore, path: str | Path, fmt: str, facility: str | None = None, *,
                 today: dt.date | None = None,
                 progress: Callable[[int], None] | None = None) -> DrugImportResult:
    """Read one drug master and replace the facility's rows with it (see the module for the formats)."""
    p = Path(path)
    if fmt not in FORMATS:
        raise UsageError(f"ไม่รู้จักรูปแบบ {fmt}", f"unknown format {fmt}", hint=", ".join(FORMATS))
    if facility is not None and not HCODE_RE.match(facility):
        raise UsageError(f"รหัสหน่วยบริการ {facility!r} ไม่ถูกต้อง (5 หลัก)",
                         f"facility code {facility!r} is not 5 characters")
    if fmt in NEEDS_FACILITY and not facility:
        raise UsageError(f"รูปแบบ {fmt} ต้องระบุ --facility (รหัสยาภายในใช้ได้ในหน่วยบริการเดียว)",
                         f"{fmt} needs --facility (a local drug code means something in one facility only)")
    if not p.is_file():
        raise UsageError(f"ไม่พบไฟล์ {p}", f"no such file {p}")
    day = (today or now_local().date()).isoformat()
    source = f"{fmt}: {p.name} (นำเข้า / imported {day})"
    res = DrugImportResult(file=p.name, format=fmt, source=source)
    code_col, did_cols, tmt_cols, _ = _COLUMNS[fmt]
    notes = SheetNotes()
    per: dict[str, dict[str, tuple[str, str, str, str, str]]] = {}
    with p.open("rb") as raw:
        rows = iter_rows(raw, p.name, notes)
        try:
            _, header = next(rows)
        except StopIteration:
            raise UsageError(f"{p.name}: ไฟล์ว่าง", f"{p.name}: the file is empty") from None
        idx = header_index(header)
        if fmt == "csv" and code_col not in idx and "DIDSTD" in idx:  # the drug_tmt.csv layout of a codes dir
            code_col, did_cols, tmt_cols = "DIDSTD", ("DIDSTD",), ("TMT_CODE", "TMTID")
        if fmt == "hospitalos" and code_col not in idx and "B_ITEM_ID" in idx:  # b_nhso_map_drug without b_item
            code_col = "B_ITEM_ID"
            res.warnings.append(f"{p.name}: ไม่มี item_number ใช้ b_item_id เป็นรหัสยา (ไม่ใช่รหัสที่ DRUG_OPD.DID ส่ง) / "
                                "no item_number: b_item_id used as the code (not the code DRUG_OPD.DID carries)")
        if code_col not in idx:
            raise UsageError(f"{p.name}: ไม่มีคอลัมน์ {code_col} (รูปแบบ {fmt})",
                             f"{p.name}: no {code_col} column (format {fmt})",
                             hint=f"header: {', '.join(header[:12])}")
        has_hcode = fmt == "csv" and "HCODE" in idx
        for n, (line, cells) in enumerate(rows, start=1):
            if progress and n % 5000 == 0:
                progress(n)
            if not any(cells):
                continue
            row = {h: (cells[i] if i < len(cells) else "") for h, i in idx.items()}
            code = row[code_col]
            if not code:
                res.issues.add(RowIssue(p.name, line, header[idx[code_col]], "ไม่มีรหัสยา แถวนี้ถูกข้าม",
                                        "no drug code; row left out"))
                continue
            if fmt == "nhso-catalogue" and row.get("UPDATEFLAG", "").upper() == "D":
                res.deleted += 1
                for d in per.values():
                    d.pop(code, None)
                continue
            hcode = facility or ""
            if has_hcode and row.get("HCODE"):
                h = row["HCODE"]
                if not HCODE_RE.match(h):
                    res.issues.add(RowIssue(p.name, line, header[idx["HCODE"]],
                                            f"รหัสหน่วยบริการ {h!r} ไม่ใช่ 5 หลัก แถวนี้ถูกข้าม",
                                            f"facility code {h!r} is not 5 characters; row left out"))
                    continue
                if facility and h != facility:
                    res.issues.add(RowIssue(p.name, line, header[idx["HCODE"]],
                                            f"หน่วยบริการ {h} ไม่ตรงกับ --facility {facility} แถวนี้ถูกข้าม",
                                            f"facility {h} is not --facility {facility}; row left out"))
                    continue
                hcode = h
            did24 = next((row[c] for c in did_cols if row.get(c)), "")
            if fmt == "hospitalos" and len(did24) > 24 and did24[:24].isdigit():
                did24 = did24[:24]  # f_nhso_drug_id may run past 24 digits; HospitalOS sends its first 24
            if did24 and not DID24_RE.match(did24):
                col = next(c for c in did_cols if row.get(c))
                res.issues.add(RowIssue(p.name, line, header[idx[col]],
                                        f"รหัสยา 24 หลักไม่ถูกต้อง ({did24!r}) ใช้แถวนี้โดยไม่มีรหัสนี้",
                                        f"not a 24-digit code ({did24!r}); row kept without it"))
                did24 = ""
            tmt_col = next((c for c in tmt_cols if row.get(c)), None)
            tmtid = row[tmt_col] if tmt_col else ""
            if tmtid.endswith(".0"):
                tmtid = tmtid[:-2]
            if tmtid and not TMTID_RE.match(tmtid):
                res.issues.add(RowIssue(p.name, line, header[idx[tmt_col]],  # type: ignore[index]
                                        f"รหัส TMT ต้องเป็นตัวเลข ({tmtid!r}) ใช้แถวนี้โดยไม่มีรหัสนี้",
                                        f"a TMT ID must be digits ({tmtid!r}); row kept without it"))
                tmtid = ""
            rsource = row.get("SOURCE", "") if fmt == "csv" else ""
            bucket = per.setdefault(hcode, {})
            if code in bucket:
                res.repeated += 1
            bucket[code] = (code, did24, tmtid, _name(fmt, row), rsource)
    res.warnings.extend(notes.warnings)
    if not any(per.values()):
        raise UsageError(f"{p.name}: ไม่มีแถวยาที่ใช้ได้ ไม่ได้เปลี่ยนอะไร", f"{p.name}: no usable drug rows; nothing "
                         "was changed", hint=res.issues.rows[0].text if res.issues.rows else None)
    for hcode, rowmap in sorted(per.items()):
        n, kept = store.replace_drug_master(hcode, rowmap.values(), source)
        res.rows[hcode] = n
        if kept:
            res.kept_reviewed[hcode] = kept
        res.with_tmt += sum(1 for r in rowmap.values() if r[2])
        res.with_did24 += sum(1 for r in rowmap.values() if r[1])
    return res
