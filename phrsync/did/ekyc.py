"""The other numerator source: an IdP-admin export of eKYC results per person (``phrsync did import-ekyc``).

PHR's only documented check is per person (``check_ekyc``); a province may instead (or as well) hold a per-CID
list from the IdP's administrators. No public specification of such an export was found (docs/did.md says what
was searched and what is known), so the reader is tolerant: CSV (UTF-8 with or without BOM, or TIS-620; comma,
semicolon, tab or ``|``) or XLSX (first sheet, first non-empty row the header), header names matched loosely in
Thai or English:

==========  ==========================================================================================
column      accepted header names
==========  ==========================================================================================
CID         as ``did import-population`` (cid, pid, เลขบัตรประชาชน, …) — required
count       result, count, ekyc, ekyc_count, ekyc_result, pin, pin_count, kyc_count, จำนวน, จำนวนครั้ง,
            ผลekyc, จำนวนยืนยันตัวตน — a number: has a Digital ID when ≥ 1 (as check_ekyc's ``result``)
status      status, ekyc_status, verified, has_did, digital_id, สถานะ, สถานะekyc, สถานะการยืนยันตัวตน,
            ยืนยันตัวตน — yes/no words (ยืนยันแล้ว, ผ่าน, มี, สำเร็จ, Y, yes, true, verified, completed … and
            their opposites) or a number
date        date, ekyc_date, verified_at, checked_at, updated_at, วันที่, วันที่ยืนยันตัวตน, วันที่ทำekyc —
            optional; 2024-03-15, 15/03/2567 or 15/03/2024 (Buddhist years are told from their size), a
            spreadsheet date
==========  ==========================================================================================

One of count or status is required (count wins when a row has both). A bad row (CID, count, status or date) is
reported with file, line, field and reason in Thai and English, the CID masked, and left out. A CID listed twice
counts once: has a Digital ID if any of its rows says so, with the latest date.

The per-facility summary the IdP-admin site exports (``ekyc_hospital_summary``: one row per facility, no CIDs)
is refused with a message saying why: it counts eKYC done *at* a facility, not residents, so it cannot be a
numerator of KPI 54.2 by district.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from phrsync.did.population import _CID_SEP_RE, _HEADERS, Problem, _cell, _norm, _rows
from phrsync.did.store import DidStore, EkycRow
from phrsync.errors import NotFoundError, UsageError
from phrsync.pdpa import cid_is_valid, mask_value

LABEL = ("ไฟล์ส่งออกผล eKYC จาก IdP admin (นำเข้า)", "IdP-admin eKYC export (imported)")
CHECK_LABEL = ("ผลตรวจ check_ekyc ทีละคน", "check_ekyc answers, one person at a time")

_EKYC_HEADERS: dict[str, tuple[str, ...]] = {
    "cid": _HEADERS["cid"],
    "count": ("result", "count", "ekyc", "ekyccount", "ekycresult", "pin", "pincount", "pinresult", "kyccount",
              "ekycpin", "จำนวน", "จำนวนครั้ง", "ผลekyc", "จำนวนekyc", "จำนวนยืนยันตัวตน", "ผลการยืนยันตัวตน"),
    "status": ("status", "ekycstatus", "verified", "hasdid", "digitalid", "did", "สถานะ", "สถานะekyc",
               "สถานะการยืนยันตัวตน", "ยืนยันตัวตน", "digitalidstatus"),
    "date": ("date", "ekycdate", "verifiedat", "verifieddate", "checkedat", "updatedat", "datetime", "วันที่",
             "วันที่ยืนยันตัวตน", "วันที่ทำekyc", "วันที่ekyc", "วันเวลา", "วันที่ตรวจสอบ"),
}
_BY_NAME = {alias: key for key, aliases in _EKYC_HEADERS.items() for alias in aliases}
# headers of the per-facility summary (ekyc_hospital_summary), normalised
_SUMMARY_MARKS = {"ชื่อหน่วยให้บริการ", "จำนวนบุคลากรยืนยันekyc", "จำนวนtoken", "จำนวนอุปกรณ์", "จำนวนkyc(คน)",
                  "จำนวนkycคน", "จำนวนtokenคน"}
_YES = {"1", "y", "yes", "true", "t", "verified", "completed", "complete", "done", "success", "pass", "passed",
        "ยืนยันแล้ว", "ยืนยัน", "ผ่าน", "มี", "สำเร็จ", "ทำแล้ว", "มีdigitalid", "ใช่"}
_NO = {"0", "n", "no", "false", "f", "notverified", "unverified", "pending", "failed", "fail", "none",
       "ยังไม่ยืนยัน", "ไม่ยืนยัน", "ไม่ผ่าน", "ไม่มี", "ไม่สำเร็จ", "ยังไม่ทำ", "ไม่ใช่", "รอยืนยัน"}
_DATE_RE = re.compile(r"^(\d{1,2})[/\-.](\d{1,2})[/\-.](\d{4})(?:[ T].*)?$")
_ISO_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[ T].*)?$")


@dataclass
class EkycImport:
    """What ``did import-ekyc`` read: accepted, with a Digital ID, duplicates, bad rows, the newest date."""

    file: str
    accepted: int = 0
    with_did: int = 0
    duplicates: int = 0
    newest_day: str | None = None
    problems: list[Problem] = field(default_factory=list)
    import_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"source": "idpadmin", "label_th": LABEL[0], "label_en": LABEL[1], "file": self.file,
                "accepted": self.accepted, "with_did": self.with_did, "duplicates": self.duplicates,
                "newest_day": self.newest_day, "rejected": len(self.problems), "import_id": self.import_id,
                "problems": [asdict(p) for p in self.problems[:200]]}


def parse_day(v: Any) -> str | None:
    """An export's date as ISO (``None`` for an empty cell); ValueError when it is not a date."""
    if v is None or v == "":
        return None
    if isinstance(v, dt.datetime):
        return v.date().isoformat()
    if isinstance(v, dt.date):
        return v.isoformat()
    s = str(v).strip()
    if not s:
        return None
    m = _ISO_RE.match(s)
    if m:
        y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    else:
        m = _DATE_RE.match(s)
        if not m:
            raise ValueError(s)
        d, mo, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if y > 2400:  # a Buddhist-era year (2567 = 2024)
        y -= 543
    return dt.date(y, mo, d).isoformat()


def _has(value: str) -> tuple[int | None, bool] | None:
    """(count, has a Digital ID) from a row's count or status cell (a number, or a yes/no word: an "eKYC" column
    may hold either); None when it cannot be read."""
    c = value.replace(",", "").strip()
    if re.fullmatch(r"\d+(\.0+)?", c):
        n = int(float(c))
        return n, n >= 1
    if re.fullmatch(r"[+-]?\d*\.?\d+", c):
        return None  # a negative or fractional count (normalising would turn "-1" into "1")
    w = _norm(value)
    if w in _YES:
        return None, True
    if w in _NO:
        return None, False
    return None


def _header(path: Path, rows: Any) -> dict[str, int]:
    for _line, cells in rows:
        if not any(_cell(c) for c in cells):
            continue
        cols: dict[str, int] = {}
        for i, c in enumerate(cells):
            key = _BY_NAME.get(_norm(c))
            if key and key not in cols:
                cols[key] = i
        shown = ", ".join(_cell(c) for c in cells if _cell(c))[:300]
        names = {_norm(c) for c in cells}
        if "cid" not in cols and names & _SUMMARY_MARKS:
            raise UsageError(
                f"ไฟล์ {path.name} เป็นสรุปรายหน่วยบริการ (ekyc_hospital_summary) ไม่มีเลขบัตรรายคน: นับ eKYC ที่ทำ ณ "
                "หน่วยบริการ ไม่ใช่ผู้อยู่อาศัยในอำเภอ จึงใช้เป็นตัวตั้ง KPI 54 ไม่ได้ ต้องเป็นไฟล์รายคน (เลขบัตร + ผล eKYC)",
                f"{path.name} is the per-facility summary (ekyc_hospital_summary), without CIDs: it counts eKYC done at "
                "a facility, not the district's residents, so it cannot be KPI 54's numerator; a per-person file "
                "(CID + eKYC result) is needed")
        if "cid" not in cols:
            raise UsageError(f"ไฟล์ {path.name} ไม่มีคอลัมน์เลขบัตรประชาชน (เช่น cid, เลขบัตรประชาชน); หัวตารางที่พบ: {shown}",
                             f"{path.name} has no citizen ID column (e.g. cid, เลขบัตรประชาชน); header found: {shown}")
        if "count" not in cols and "status" not in cols:
            raise UsageError(f"ไฟล์ {path.name} ไม่มีคอลัมน์ผล eKYC (จำนวน เช่น result, count หรือสถานะ เช่น status, "
                             f"สถานะ); หัวตารางที่พบ: {shown}",
                             f"{path.name} has no eKYC result column (a count such as result, count, or a status "
                             f"such as status, สถานะ); header found: {shown}")
        return cols
    raise UsageError(f"ไฟล์ {path.name} ว่าง", f"{path.name} is empty")


def read_ekyc(path: str | Path) -> tuple[list[EkycRow], EkycImport]:
    """The people of an eKYC export, and what was left out and why (nothing is written)."""
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"ไม่พบไฟล์ {p}", f"file not found: {p}")
    res = EkycImport(p.name)
    rows = _rows(p)
    cols = _header(p, rows)
    by_cid: dict[str, EkycRow] = {}

    def get(cells: list[Any], key: str) -> str:
        i = cols.get(key)
        return _cell(cells[i]) if i is not None and i < len(cells) else ""

    def bad(line: int, fld: str, value: str, th: str, en: str, personal: bool = False) -> None:
        res.problems.append(Problem(p.name, line, fld, mask_value(value, personal) if personal else value[:40],
                                    th, en))

    for line, cells in rows:
        if not any(_cell(c) for c in cells):
            continue
        raw_cid = get(cells, "cid")
        cid = _CID_SEP_RE.sub("", raw_cid)
        if not cid:
            bad(line, "CID", "", "ไม่มีเลขบัตรประชาชน", "no citizen ID")
            continue
        if not (len(cid) == 13 and cid.isdigit()):
            bad(line, "CID", raw_cid, "เลขบัตรประชาชนต้องเป็นตัวเลข 13 หลัก", "a citizen ID has 13 digits", True)
            continue
        if not cid_is_valid(cid):
            bad(line, "CID", cid, "เลขบัตรประชาชนผิด (เลขตรวจสอบไม่ตรง)", "invalid citizen ID (check digit)", True)
            continue
        count, status = get(cells, "count"), get(cells, "status")
        fld, value = ("count", count) if count else ("status", status)
        got = _has(value) if value else None
        if got is None:
            if value:
                bad(line, fld, value, "อ่านผล eKYC ไม่ได้: ต้องเป็นจำนวนเต็มไม่ติดลบ หรือสถานะ (เช่น ยืนยันแล้ว / "
                    "ยังไม่ยืนยัน, Y / N)", "cannot read the eKYC result: a whole number ≥ 0 or a status (e.g. "
                    "ยืนยันแล้ว / ยังไม่ยืนยัน, Y / N)")
            else:
                bad(line, "count/status", "", "ไม่มีผล eKYC", "no eKYC result")
            continue
        i = cols.get("date")
        raw_day = cells[i] if i is not None and i < len(cells) else None
        try:
            day = parse_day(raw_day)
        except ValueError:
            bad(line, "date", _cell(raw_day), "วันที่ไม่ถูกต้อง (เช่น 2024-03-15 หรือ 15/03/2567)",
                "not a date (e.g. 2024-03-15 or 15/03/2567)")
            continue
        n, has = got
        old = by_cid.get(cid)
        if old is not None:
            res.duplicates += 1
            days = [d for d in (old.day, day) if d]
            n = max((x for x in (old.result, n) if x is not None), default=None)
            by_cid[cid] = EkycRow(cid, n, old.has_did or has, max(days) if days else None)
            continue
        by_cid[cid] = EkycRow(cid, n, has, day)
    out = list(by_cid.values())
    res.accepted = len(out)
    res.with_did = sum(1 for r in out if r.has_did)
    res.newest_day = max((r.day for r in out if r.day), default=None)
    return out, res


def import_ekyc(store: DidStore, path: str | Path) -> EkycImport:
    """Read an eKYC export and make it the IdP-admin source (replacing an earlier export; a file with no usable
    row changes nothing)."""
    rows, res = read_ekyc(path)
    if not rows:
        raise UsageError(f"ไม่มีแถวที่ใช้ได้ใน {res.file} ({len(res.problems)} แถวผิด) จึงไม่ได้แทนไฟล์ eKYC เดิม",
                         f"no usable row in {res.file} ({len(res.problems)} bad rows): the current eKYC export is "
                         "kept", hint="; ".join(pr.text() for pr in res.problems[:3]) or None)
    res.import_id = store.replace_ekyc(rows, file=res.file, rejected=len(res.problems),
                                       summary={"with_did": res.with_did, "duplicates": res.duplicates,
                                                "newest_day": res.newest_day,
                                                "problems": [pr.text() for pr in res.problems[:50]]})
    return res
