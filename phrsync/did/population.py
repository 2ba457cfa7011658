"""Whom KPI 54 counts (the denominators): an imported extract, or the 43-file staging as a labelled fallback.

Accepted files (``did import-population``, ``did import-personnel``): CSV (UTF-8, with or without BOM, or
TIS-620/CP874; comma, semicolon, tab or ``|``) or XLSX (the first sheet; the first non-empty row is the header).
Header names are matched loosely (case, spaces, ``_``, ``-`` and ``.`` ignored), in Thai or English:

============  ========================================================================================
column        accepted header names
============  ========================================================================================
CID           cid, pid, citizen_id, national_id, person_id, เลขบัตรประชาชน, เลขประจำตัวประชาชน, เลขบัตร
facility      hospcode, hcode, hmain, hmain_op, facility, hosp, off_id, รหัสหน่วยบริการ, รหัสสถานบริการ,
              หน่วยบริการ, รหัสหน่วยงาน
district      district, district_code, ampur, amphur, ampur_code, อำเภอ, รหัสอำเภอ (4-digit DOPA code or the
              Thai/English name)
rights        rights, right, maininscl, instype, สิทธิ, สิทธิหลัก, ประเภทสิทธิ (citizens)
position      position, position_name, ตำแหน่ง (personnel)
employment    employment, employment_type, emp_type, type_name, ประเภทการจ้าง, ประเภทบุคลากร, สถานะการจ้าง
name          name, fullname, ชื่อ-สกุล, ชื่อ-นามสกุล, ชื่อสกุล; or first name (fname, first_name, ชื่อ) and last
              name (lname, last_name, surname, นามสกุล)
============  ========================================================================================

CID and one of facility or district are required. The district is the given one, else the facility's (the
shipped Sa Kaeo facility table). A bad row (a CID that is not 13 digits or fails its check digit, a facility
code that is not 5 digits, an unknown district) is reported with its file, line, field and reason, in Thai and
English, with the value masked, and left out; every other row is kept. A CID listed twice counts once.

Personnel: the KPI does not count per-period, daily or contracted workers. A row whose employment type contains
one of ``[did] personnel_exclude`` is left out and counted by reason.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from phrsync.did.store import CITIZEN, PERSONNEL, SOURCE_F43, SOURCE_IMPORT, DidStore, Person
from phrsync.errors import NotFoundError, UsageError
from phrsync.pdpa import cid_is_valid, mask_value

# what each kind's list is, by source: every figure carries one of these (Thai, English)
SOURCE_LABELS: dict[tuple[str, str], tuple[str, str]] = {
    (CITIZEN, SOURCE_IMPORT): ("ประชากรทุกสิทธิจากทะเบียน สปสช. (นำเข้า)", "NHSO registry, all rights (imported)"),
    (CITIZEN, SOURCE_F43): ("ทดแทน: 43 แฟ้ม PERSON TYPEAREA 1, 3 มีชีวิต สัญชาติไทย",
                            "fallback: 43-file PERSON, type-area 1 and 3, alive, Thai"),
    (PERSONNEL, SOURCE_IMPORT): ("บุคลากรจากทะเบียน HROPS (นำเข้า)", "HROPS personnel registry (imported)"),
    (PERSONNEL, SOURCE_F43): ("ทดแทน: 43 แฟ้ม PROVIDER ที่ยังปฏิบัติงาน (ไม่มี OUTDATE)",
                              "fallback: 43-file PROVIDER still working (no OUTDATE)"),
}
NO_SOURCE = ("ยังไม่มีรายชื่อ", "no list yet")

_HEADERS: dict[str, tuple[str, ...]] = {
    "cid": ("cid", "pid", "citizenid", "nationalid", "personid", "idcard", "เลขบัตรประชาชน", "เลขประจำตัวประชาชน",
            "เลขบัตร", "บัตรประชาชน", "เลขที่บัตรประชาชน"),
    "facility": ("hospcode", "hcode", "hmain", "hmainop", "facility", "facilitycode", "hosp", "offid",
                 "รหัสหน่วยบริการ", "รหัสสถานบริการ", "หน่วยบริการ", "รหัสหน่วยงาน", "รหัสสถานพยาบาล"),
    "district": ("district", "districtcode", "ampur", "amphur", "amphoe", "ampurcode", "อำเภอ", "รหัสอำเภอ"),
    "rights": ("rights", "right", "maininscl", "instype", "สิทธิ", "สิทธิหลัก", "ประเภทสิทธิ", "สิทธิการรักษา"),
    "position": ("position", "positionname", "ตำแหน่ง", "ชื่อตำแหน่ง"),
    "employment": ("employment", "employmenttype", "emptype", "typename", "ประเภทการจ้าง", "ประเภทบุคลากร",
                   "สถานะการจ้าง", "ประเภทการจ้างงาน"),
    "name": ("name", "fullname", "ชื่อสกุล", "ชื่อนามสกุล"),
    "fname": ("fname", "firstname", "ชื่อ"),
    "lname": ("lname", "lastname", "surname", "นามสกุล"),
}
_NORM_RE = re.compile(r"[\s_\-./()]+")
_CID_SEP_RE = re.compile(r"[\s\-]")


def _norm(header: Any) -> str:
    return _NORM_RE.sub("", str(header or "").strip().lower()).lstrip("\ufeff")


_BY_NAME = {alias: key for key, aliases in _HEADERS.items() for alias in aliases}


@dataclass(frozen=True)
class Problem:
    """A row left out: where, which field, why (Thai, English); the value masked."""

    file: str
    line: int
    field: str
    value: str
    reason_th: str
    reason_en: str

    def text(self) -> str:
        return (f"{self.file}:{self.line}: {self.field} {self.value!r}: {self.reason_th} / {self.reason_en}")


@dataclass
class ImportResult:
    kind: str
    source: str
    file: str
    accepted: int = 0
    duplicates: int = 0
    excluded: dict[str, int] = field(default_factory=dict)  # employment type -> rows not counted (personnel)
    problems: list[Problem] = field(default_factory=list)
    no_district: int = 0  # kept, counted in the province only
    import_id: int | None = None

    @property
    def label(self) -> tuple[str, str]:
        return SOURCE_LABELS[(self.kind, self.source)]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "label_th": self.label[0], "label_en": self.label[1],
                "file": self.file, "accepted": self.accepted, "duplicates": self.duplicates,
                "excluded": dict(self.excluded), "excluded_total": sum(self.excluded.values()),
                "rejected": len(self.problems), "no_district": self.no_district, "import_id": self.import_id,
                "problems": [asdict(p) for p in self.problems[:200]]}


# -- districts and facilities ----------------------------------------------------------------------------------

def districts() -> dict[str, tuple[str, str]]:
    """DOPA ampur code -> (Thai name, English name), from the shipped Sa Kaeo table (or the province's own)."""
    from phrsync.terminology.tables import get_table

    return {r["ampur_code"]: (r["name_th"], r["name_en"]) for r in get_table("sakaeo_districts").rows}


def facility_district(hospcode: str | None) -> str | None:
    """The district of a facility by the code table; None when the table does not know the facility."""
    if not hospcode:
        return None
    from phrsync.terminology.tables import lookup

    row = lookup("sakaeo_facilities", hospcode)
    code = (row or {}).get("ampur_code") or ""
    return code if len(code) == 4 and code.isdigit() else None


def facility_name(hospcode: str | None) -> str | None:
    from phrsync.terminology.tables import lookup

    return ((lookup("sakaeo_facilities", hospcode) or {}).get("name_th") or None) if hospcode else None


def _district_names() -> dict[str, str]:
    out: dict[str, str] = {}
    for code, (th, en) in districts().items():
        out[code] = code
        out[_norm(th)] = code
        out[_norm(th).removeprefix("อำเภอ")] = code
        out[_norm(en)] = code
    return out


# -- reading a file ------------------------------------------------------------------------------------------

def _csv_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp874", errors="replace")  # TIS-620, as Thai Windows exports write


def _rows(path: Path) -> Iterator[tuple[int, list[Any]]]:
    """(line number, cells) of every row, the header included."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        try:
            import openpyxl
        except ImportError as e:  # pragma: no cover - a dependency
            raise UsageError("อ่าน XLSX ไม่ได้: ไม่มี openpyxl", "cannot read XLSX: openpyxl is missing") from e
        try:
            wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as e:  # openpyxl raises many kinds for a broken file
            raise UsageError(f"อ่านไฟล์ XLSX ไม่ได้ {path.name}: {type(e).__name__}",
                             f"cannot read the XLSX file {path.name}: {type(e).__name__}") from None
        try:
            for i, row in enumerate(wb.worksheets[0].iter_rows(values_only=True), start=1):
                yield i, list(row)
        finally:
            wb.close()
        return
    text = _csv_text(path)
    sample = text[:4096]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    for i, row in enumerate(csv.reader(io.StringIO(text), dialect), start=1):
        yield i, row


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        v = int(v)  # a CID or code typed into a spreadsheet becomes a number
    return str(v).strip()


def _header(path: Path, rows: Iterator[tuple[int, list[Any]]], kind: str) -> dict[str, int]:
    for _line, cells in rows:
        if not any(_cell(c) for c in cells):
            continue
        cols: dict[str, int] = {}
        for i, c in enumerate(cells):
            key = _BY_NAME.get(_norm(c))
            if key and key not in cols:
                cols[key] = i
        shown = ", ".join(_cell(c) for c in cells if _cell(c))[:300]
        if "cid" not in cols:
            raise UsageError(f"ไฟล์ {path.name} ไม่มีคอลัมน์เลขบัตรประชาชน (เช่น cid, เลขบัตรประชาชน); หัวตารางที่พบ: {shown}",
                             f"{path.name} has no citizen ID column (e.g. cid, เลขบัตรประชาชน); header found: {shown}")
        if "facility" not in cols and "district" not in cols:
            raise UsageError(f"ไฟล์ {path.name} ต้องมีคอลัมน์หน่วยบริการ (hospcode) หรืออำเภอ (district); หัวตารางที่พบ: "
                             f"{shown}", f"{path.name} needs a facility (hospcode) or district column; header "
                                         f"found: {shown}")
        if kind == PERSONNEL and "employment" not in cols:
            pass  # no employment type: nobody can be excluded (reported in the result as 0 excluded)
        return cols
    raise UsageError(f"ไฟล์ {path.name} ว่าง", f"{path.name} is empty")


def _excluded_by(employment: str, patterns: list[str]) -> str | None:
    e = employment.lower()
    return next((p for p in patterns if p and p.lower() in e), None)


def read_people(path: str | Path, kind: str, exclude: list[str] | None = None) -> tuple[list[Person], ImportResult]:
    """The people of an extract, and what was left out and why (nothing is written)."""
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"ไม่พบไฟล์ {p}", f"file not found: {p}")
    res = ImportResult(kind, SOURCE_IMPORT, p.name)
    rows = _rows(p)
    cols = _header(p, rows, kind)
    names = _district_names()
    seen: set[str] = set()
    out: list[Person] = []
    excluded: Counter[str] = Counter()

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
        hosp = get(cells, "facility")
        if hosp.isdigit() and len(hosp) < 5:
            hosp = hosp.zfill(5)  # a spreadsheet dropped the leading zeros
        if hosp and not re.fullmatch(r"[0-9A-Za-z]{5}", hosp):
            bad(line, "facility", hosp, "รหัสหน่วยบริการต้องมี 5 ตัว", "a facility code has 5 characters")
            continue
        dist_raw = get(cells, "district")
        district = None
        if dist_raw:
            district = names.get(_norm(dist_raw)) or names.get(_norm(dist_raw).removeprefix("อำเภอ"))
            if district is None:
                bad(line, "district", dist_raw, "ไม่รู้จักอำเภอนี้ (ใช้รหัส DOPA 4 หลักหรือชื่ออำเภอ)",
                    "unknown district (give the 4-digit DOPA code or the district's name)")
                continue
        else:
            district = facility_district(hosp or None)
        if cid in seen:
            res.duplicates += 1
            continue
        employment = get(cells, "employment")
        if kind == PERSONNEL and employment:
            why = _excluded_by(employment, exclude or [])
            if why:
                excluded[employment] += 1
                seen.add(cid)
                continue
        seen.add(cid)
        name = get(cells, "name") or " ".join(x for x in (get(cells, "fname"), get(cells, "lname")) if x)
        if district is None:
            res.no_district += 1
        out.append(Person(cid, hosp or None, district, name, get(cells, "rights") or None,
                          get(cells, "position") or None, employment or None))
    res.accepted = len(out)
    res.excluded = dict(excluded)
    return out, res


def import_file(store: DidStore, path: str | Path, kind: str, exclude: list[str] | None = None) -> ImportResult:
    """Read an extract and make it the list of ``kind`` (replacing any earlier list, imported or fallback)."""
    rows, res = read_people(path, kind, exclude)
    if not rows:
        raise UsageError(f"ไม่มีแถวที่ใช้ได้ใน {res.file} ({len(res.problems)} แถวผิด) จึงไม่ได้แทนรายชื่อเดิม",
                         f"no usable row in {res.file} ({len(res.problems)} bad rows): the current list is kept",
                         hint="; ".join(pr.text() for pr in res.problems[:3]) or None)
    res.import_id = store.replace_people(kind, SOURCE_IMPORT, rows, file=res.file,
                                         excluded=sum(res.excluded.values()), rejected=len(res.problems),
                                         summary={"excluded": res.excluded, "duplicates": res.duplicates,
                                                  "no_district": res.no_district,
                                                  "problems": [pr.text() for pr in res.problems[:50]]})
    return res


def fallback_people(staging: str | Path, kind: str) -> list[Person]:
    """The 43-file list of ``kind``: PERSON residents or PROVIDER staff (through :mod:`phrsync.f43.read`)."""
    from phrsync.f43 import read
    from phrsync.f43.staging import Staging

    sp = Path(staging)
    if not sp.is_file():
        raise NotFoundError(f"ไม่พบที่พักข้อมูล 43 แฟ้ม {sp} และยังไม่ได้นำเข้ารายชื่อ (did import-population / "
                            "import-personnel)", f"no 43-file staging store at {sp} and no imported list "
                                                 "(did import-population / import-personnel)")
    with Staging(sp, read_only=True) as st:
        if kind == CITIZEN:
            return [Person(r.cid, r.hospcode, facility_district(r.hospcode) or r.ampur, r.name)
                    for r in read.residents(st)]
        return [Person(r.cid, r.hospcode, facility_district(r.hospcode), r.name, position=r.providertype)
                for r in read.active_providers(st)]


def sample_per_district(rows: list[Person], n: int) -> list[Person]:
    """At most ``n`` people of each district (and of "no district"), the same ones every time: those whose
    BLAKE2b of ``"phrsync-sample:" + CID`` is smallest — a fixed draw unrelated to the order of the files and to
    any answer, so the sample's figures estimate the whole list's."""
    by: dict[str | None, list[tuple[bytes, Person]]] = {}
    for p in rows:
        key = hashlib.blake2b(b"phrsync-sample:" + p.cid.encode(), digest_size=8).digest()
        by.setdefault(p.district, []).append((key, p))
    return [p for group in by.values() for _k, p in sorted(group, key=lambda kp: kp[0])[:n]]


def load_fallback(store: DidStore, staging: str | Path, kind: str, *,
                  sample: int | None = None) -> ImportResult:
    """The 43-file list of ``kind`` (:func:`fallback_people`), made the list unless an extract was imported (an
    import always wins; this refreshes an earlier fallback). ``sample``: keep only that many people per district
    (:func:`sample_per_district`; the demo's quick check), recorded with the import so every report says so."""
    if store.source_of(kind) == SOURCE_IMPORT:
        raise UsageError("มีรายชื่อที่นำเข้าแล้ว จึงไม่ใช้ 43 แฟ้มแทน", "an imported list exists: the 43-file "
                                                                       "fallback is not used")
    rows = fallback_people(staging, kind)
    res = ImportResult(kind, SOURCE_F43, "43 แฟ้ม PERSON" if kind == CITIZEN else "43 แฟ้ม PROVIDER")
    summary: dict[str, Any] = {}
    if sample is not None:
        summary["sample"] = {"per_district": sample, "of": len(rows)}
        rows = sample_per_district(rows, sample)
        res.file += f" (ตัวอย่าง {sample:,} คนต่ออำเภอ / sample of {sample:,} per district)"
    res.accepted = len(rows)
    res.no_district = sum(1 for r in rows if r.district is None)
    summary["no_district"] = res.no_district
    res.import_id = store.replace_people(kind, SOURCE_F43, rows, file=res.file, summary=summary)
    return res


def ensure_lists(store: DidStore, staging: str | Path | None, kinds: tuple[str, ...]) -> list[ImportResult]:
    """Before a check or report: a kind with no imported list takes (or refreshes) the 43-file fallback when the
    staging store exists; a kind with neither is left empty (its figures show "no list yet")."""
    done = []
    for kind in kinds:
        if store.source_of(kind) == SOURCE_IMPORT or staging is None or not Path(staging).is_file():
            continue
        done.append(load_fallback(store, staging, kind))
    return done
