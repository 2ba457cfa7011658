"""Per-facility data-quality report of a build: what was sent, what the validator refused and why, what
was estimated or unknown, and which rows the import quarantined — HTML for people, CSV for spreadsheets.

Written for the provincial office that must tell each health centre what to fix: one table per facility,
Thai first with English beside it, counts plus a few examples. Examples never show a full citizen ID
(``phrsync.pdpa.mask_cid``); dates are shown the Thai way (``phrsync.thai.thai_date``).
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import jinja2

from phrsync.f43 import schema
from phrsync.f43.read import quarantine_groups
from phrsync.pdpa import mask_cid, mask_text, mask_value
from phrsync.thai import thai_date

MAX_EXAMPLES = 3
_INDEX_RE = re.compile(r"\[\d+\]")

# category -> (Thai, English, sort order)
CATEGORIES: dict[str, tuple[str, str, int]] = {
    "refused": ("ถูกปฏิเสธโดยตัวตรวจสอบ (ไม่ส่ง)", "refused by the validator (not sent)", 0),
    "skipped": ("ข้าม ไม่สร้างข้อมูลส่ง", "skipped, no payload built", 1),
    "waiting": ("รอรหัสยา (ยังไม่ส่ง จะส่งเมื่อมีรหัส)", "waiting for a drug code (sent once the code is mapped)", 1),
    "quarantine": ("แถวที่ถูกกักตอนนำเข้า (ไม่ได้นำเข้า)", "rows quarantined at import (not loaded)", 2),
    "import_warning": ("คำเตือนตอนนำเข้า (นำเข้าแล้ว)", "import warnings (row loaded)", 7),
    "unknown_code": ("รหัสที่ไม่รู้จัก/ยังไม่มีรหัส PHR", "unknown code / no PHR code yet", 3),
    "missing": ("ข้อมูลขาด", "missing data", 4),
    "estimate": ("ค่าประมาณตามนโยบาย", "estimated by policy", 5),
    "warning": ("คำเตือนจากตัวตรวจสอบ", "validator warnings", 6),
}


# who fixes a problem and how: "facility" (the health centre, in its HIS), "province" (the provincial office:
# code tables, settings), "none" (an estimate by policy: nothing to fix). Keyed by note code or validator rule.
OWNERS: dict[str, tuple[str, str]] = {
    "facility": ("หน่วยบริการ", "facility"),
    "province": ("สสจ. (ตารางรหัส/ตั้งค่า)", "province (code tables, settings)"),
    "none": ("ไม่ต้องแก้", "nothing to fix"),
}
FIXES: dict[str, tuple[str, str, str]] = {
    "cid_missing": ("facility", "บันทึกเลขประจำตัวประชาชนใน HIS", "record the citizen ID in the HIS"),
    "cid_invalid": ("facility", "แก้เลขประจำตัวประชาชนให้ถูกต้อง", "correct the citizen ID"),
    "cid_checksum": ("facility", "แก้เลขประจำตัวประชาชนให้ถูกต้อง", "correct the citizen ID"),
    "person_missing": ("facility", "ส่งออกแฟ้ม PERSON ของผู้รับบริการให้ครบ", "export the patient's PERSON row"),
    "sex_unknown": ("facility", "บันทึกเพศ (1 ชาย 2 หญิง)", "record SEX (1 male, 2 female)"),
    "birth_missing": ("facility", "บันทึกวันเกิด", "record the birth date"),
    "time_missing": ("facility", "บันทึกเวลารับบริการ (TIME_SERV)", "record the visit time (TIME_SERV)"),
    "vital_signs_missing": ("facility", "บันทึกสัญญาณชีพ", "record vital signs"),
    "vital_dropped": ("facility", "แก้ค่าสัญญาณชีพที่บันทึกผิด", "correct the mistyped vital sign"),
    "discharge_before_admit": ("facility", "แก้วันเวลารับไว้/จำหน่าย", "correct the admission/discharge times"),
    "lab_unknown": ("facility", "ตรวจรหัส LABTEST (หรือ สสจ. เพิ่มใน lab_loinc)", "check LABTEST (or the province adds it to lab_loinc)"),
    "lab_no_result": ("facility", "บันทึกผลแล็บ", "record the lab result"),
    "prename_unknown": ("facility", "ตรวจรหัสคำนำหน้าชื่อ", "check the PRENAME code"),
    "nation_unknown": ("facility", "ตรวจรหัสสัญชาติ", "check the NATION code"),
    "instype_unknown": ("facility", "ตรวจรหัสสิทธิการรักษา INSTYPE", "check the INSTYPE code"),
    "typedisch_unknown": ("facility", "ตรวจสถานะการจำหน่าย TYPEDISCH", "check TYPEDISCH"),
    "typein_unmapped": ("province", "รอ/เติมรายการ encounter_type ของ PHR ใน typein_encounter", "add the PHR encounter_type codes to typein_encounter"),
    "chronic_no_cd_code": ("province", "เติม cd_code ของ PHR ใน chronic_groups", "add PHR cd_codes to chronic_groups"),
    "facility_name_unknown": ("province", "เพิ่มชื่อหน่วยบริการใน [facilities] หรือตารางรหัส", "add the facility name to [facilities] or the code table"),
    "coding_system": ("province", "จัดทำตาราง drug_tmt (รหัส TMT) ของจังหวัด", "load the province's drug_tmt table (TMT codes)"),
    "coding_system_local": ("province", "จัดทำ/ขอรายการรหัสมาตรฐาน (drug_tmt, encounter_type, lab_loinc)", "load the standard code lists (drug_tmt, encounter_type, lab_loinc)"),
    "drug_unmapped": ("province", "นำเข้า TMT และบัญชียาของหน่วยบริการ (phrsync codes import-tmt / import-drugs) หรือรับคำแนะนำที่ /codes/unmapped",
                      "import TMT and the facility's drug master (phrsync codes import-tmt / import-drugs) or accept a suggestion at /codes/unmapped"),
    "drug_unmapped_skipped": ("province", "นำเข้า TMT และบัญชียาของหน่วยบริการ (phrsync codes import-tmt / import-drugs)",
                              "import TMT and the facility's drug master (phrsync codes import-tmt / import-drugs)"),
    "allergy_waiting_code": ("province", "จับคู่รหัสยาที่แพ้กับสาร TMT (phrsync codes unmapped / หน้า /codes/unmapped) แล้ว build ใหม่",
                             "map the allergy drug to its TMT substance (phrsync codes unmapped, the /codes/unmapped page), then build again"),
    "end_estimated": ("none", "ค่าประมาณตามนโยบาย", "estimated by policy"),
    "end_from_last_update": ("none", "ค่าประมาณตามนโยบาย", "estimated by policy"),
    "time_default": ("facility", "บันทึกเวลารับบริการ (TIME_SERV)", "record the visit time (TIME_SERV)"),
    "lab_time_visit_start": ("none", "ค่าประมาณตามนโยบาย", "estimated by policy"),
    "epi_no_visit": ("none", "ค่าประมาณตามนโยบาย", "estimated by policy"),
}
_CATEGORY_OWNER = {"quarantine": ("facility", "แก้แถวตามเหตุผลแล้วส่งออกใหม่", "fix the row as the reason says and re-export"),
                   "import_warning": ("facility", "ตรวจแถวตามเหตุผล", "check the row as the reason says")}


def fix_for(category: str, code: str) -> tuple[str, str, str]:
    """(owner, Thai, English) of how to fix one report row."""
    if code in FIXES:
        return FIXES[code]
    if category in _CATEGORY_OWNER:
        return _CATEGORY_OWNER[category]
    if category == "estimate":
        return ("none", "ค่าประมาณตามนโยบาย", "estimated by policy")
    return ("facility", "ดูรายละเอียดและแก้ข้อมูลใน HIS", "see the detail and correct the HIS data")


@functools.lru_cache(maxsize=4096)
@functools.lru_cache(maxsize=1 << 12)
def _norm_path(path: str) -> str:
    """``Encounter[0].Medication[2].code`` → ``Encounter[].Medication[].code``: one report row per field.
    Cached: the same few paths come with almost every payload's notes and issues."""
    return _INDEX_RE.sub("[]", path)


@dataclass
class _Item:
    count: int = 0
    message_th: str = ""
    message_en: str = ""
    severity: str = ""
    examples: list[str] = field(default_factory=list)


@dataclass
class FacilityTotals:
    built: int = 0  # payloads written to the NDJSON
    refused: int = 0
    skipped: int = 0
    waiting: int = 0  # held for a code (phrsync.phr.mapping.map_allergy), built once the code is mapped
    by_endpoint: dict[str, dict[str, int]] = field(default_factory=dict)

    def bump(self, endpoint: str, what: str) -> None:
        setattr(self, what, getattr(self, what) + 1)
        ep = self.by_endpoint.get(endpoint)
        if ep is None:
            ep = self.by_endpoint[endpoint] = {"built": 0, "refused": 0, "skipped": 0, "waiting": 0}
        ep[what] += 1


class Quality:
    """Collects the facts of one build, per facility; renders them with :func:`write_html` / :func:`write_csv`."""

    def __init__(self, facility_names: dict[str, str] | None = None) -> None:
        # (hospcode, category, endpoint or file, rule/note code, field, variant) -> counts and examples;
        # variant keeps notes with different texts apart (TYPEIN 2 vs TYPEIN 3), "" for validator issues
        self.items: dict[tuple[str, str, str, str, str, str], _Item] = {}
        self.totals: dict[str, FacilityTotals] = {}
        self.facility_names = dict(facility_names or {})
        self.quarantined: dict[str, int] = {}
        # (hospcode, kind, code) -> [name, payloads carrying it, payloads waiting for it]: the notes' subjects
        self.unmapped: dict[tuple[str, str, str], list[Any]] = {}

    def _fac(self, hcode: str) -> FacilityTotals:
        t = self.totals.get(hcode)
        if t is None:
            t = self.totals[hcode] = FacilityTotals()
        return t

    def _item(self, hcode: str, category: str, endpoint: str, code: str, npath: str, variant: str, th: str, en: str,
              severity: str) -> _Item:
        k = (hcode, category, endpoint, code, npath, variant)
        it = self.items.get(k)
        if it is None:
            it = self.items[k] = _Item(0, th, en, severity)
        return it

    def _add(self, hcode: str, category: str, endpoint: str, code: str, path: str, th: str, en: str,
             severity: str, example: str | None, n: int = 1, variant: str = "") -> None:
        it = self._item(hcode, category, endpoint, code, _norm_path(path), variant, th, en, severity)
        it.count += n
        if example and len(it.examples) < MAX_EXAMPLES and example not in it.examples:
            it.examples.append(example)
        self._fac(hcode)

    def payload(self, hcode: str, endpoint: str, outcome: str, example: str | Callable[[], str],
                issues: Iterable[Any] = (), notes: Iterable[Any] = ()) -> None:
        """Record one payload (``outcome`` built | refused | skipped), its validator issues and mapping notes.

        ``example`` may be a function giving the label: it masks a CID, and is only called while a report
        row still collects examples (a few per facility and problem, out of every payload that has it)."""
        self._fac(hcode).bump(endpoint, outcome)
        if not issues and not notes:  # the common case: nothing to report beyond the count
            return
        label = example if isinstance(example, str) else None
        seen: set[tuple[str, str]] = set()
        rows: list[_Item] = []
        for i in issues:
            npath = _norm_path(i.path)
            key = (i.rule, npath)
            if key in seen:  # one count per payload and problem, however many items repeat it
                continue
            seen.add(key)
            rows.append(self._item(hcode, "refused" if i.severity == "error" else "warning", endpoint, i.rule,
                                   npath, "", i.message_th, i.message_en, i.severity))
        subjects = {n.subject for n in notes if n.subject is not None}
        for kind, code, name in subjects:
            u = self.unmapped.get((hcode, kind, code))
            if u is None:
                u = self.unmapped[(hcode, kind, code)] = [name, 0, 0]
            elif name and not u[0]:
                u[0] = name
            u[1] += 1
            if outcome == "waiting":
                u[2] += 1
        for n in notes:
            key = ("note:" + n.code, n.path + n.message_en)
            if key in seen:
                continue
            seen.add(key)
            rows.append(self._item(hcode, n.kind, endpoint, n.code, _norm_path(n.path), n.message_en, n.message_th,
                                   n.message_en, "note"))
        for it in rows:
            it.count += 1
            if len(it.examples) < MAX_EXAMPLES:
                if label is None:
                    label = example() if callable(example) else example
                if label and label not in it.examples:
                    it.examples.append(label)

    def add_quarantine(self, con: duckdb.DuckDBPyConnection, facilities: tuple[str, ...] = ()) -> None:
        """The import's quarantine table (rows that never reached staging), grouped by file and rule."""
        try:
            groups = quarantine_groups(con, facilities, MAX_EXAMPLES)
        except duckdb.Error:
            return
        for g in groups:
            hcode, file, rule, sev, th, en, n, examples = (g.hospcode, g.file, g.rule, g.severity, g.reason_th,
                                                            g.reason_en, g.count, g.examples)
            cat = "quarantine" if sev == "error" else "import_warning"
            fld = (examples[0].get("field") or "") if examples else ""
            self._add(hcode, cat, file or "", rule or "", fld, th or "", en or "", sev or "", None, int(n))
            it = self.items[(hcode, cat, file or "", rule or "", _norm_path(fld), "")]
            for e in examples:
                label = quarantine_example(file or "", e)
                if len(it.examples) < MAX_EXAMPLES and label not in it.examples:
                    it.examples.append(label)
            if cat == "quarantine":
                self.quarantined[hcode] = self.quarantined.get(hcode, 0) + int(n)

    def merge(self, other: Quality) -> None:
        """Add another collector's facts (a parallel worker's) to this one."""
        for k, it in other.items.items():
            mine = self.items.get(k)
            if mine is None:
                self.items[k] = _Item(it.count, it.message_th, it.message_en, it.severity, list(it.examples))
                continue
            mine.count += it.count
            for e in it.examples:
                if len(mine.examples) < MAX_EXAMPLES and e not in mine.examples:
                    mine.examples.append(e)
        for h, t in other.totals.items():
            mine_t = self._fac(h)
            mine_t.built += t.built
            mine_t.refused += t.refused
            mine_t.skipped += t.skipped
            mine_t.waiting += t.waiting
            for ep, c in t.by_endpoint.items():
                d = mine_t.by_endpoint.setdefault(ep, {"built": 0, "refused": 0, "skipped": 0, "waiting": 0})
                for what, n in c.items():
                    d[what] += n
        for h, name in other.facility_names.items():
            self.facility_names.setdefault(h, name)
        for h, n in other.quarantined.items():
            self.quarantined[h] = self.quarantined.get(h, 0) + n
        for k, (name, payloads, waiting) in other.unmapped.items():
            u = self.unmapped.setdefault(k, [name, 0, 0])
            u[0] = u[0] or name
            u[1] += payloads
            u[2] += waiting

    def unmapped_rows(self) -> list[dict[str, Any]]:
        """The codes the build could not map, as BuildSummary.unmapped rows: most payloads waiting first, then
        most payloads carrying the code (what a reviewer should map first)."""
        rows = [{"kind": kind, "hospcode": h, "code": code, "name": name or None, "payloads": payloads,
                 "waiting": waiting} for (h, kind, code), (name, payloads, waiting) in self.unmapped.items()]
        return sorted(rows, key=lambda r: (-r["waiting"], -r["payloads"], r["hospcode"], r["kind"], r["code"]))

    # -- views ------------------------------------------------------------------------------------
    def facilities(self) -> list[str]:
        """Facilities, the one with the most to fix (at the facility itself) first."""
        def weight(h: str) -> tuple[int, int, str]:
            return (-self.facility_fix_count(h), -self.problem_count(h), h)
        return sorted(self.totals, key=weight)

    def facility_fix_count(self, hcode: str) -> int:
        """How many problems the health centre itself must fix (not code tables, not policy estimates)."""
        return sum(it.count for k, it in self.items.items() if k[0] == hcode and fix_for(k[1], k[3])[0] == "facility")

    def problem_count(self, hcode: str, categories: Iterable[str] | None = None) -> int:
        cats = set(categories) if categories is not None else set(CATEGORIES)
        return sum(it.count for k, it in self.items.items() if k[0] == hcode and k[1] in cats)

    def rows(self, hcode: str | None = None) -> list[dict[str, Any]]:
        out = []
        for (h, cat, ep, code, path, _variant), it in self.items.items():
            if hcode is not None and h != hcode:
                continue
            owner, fix_th, fix_en = fix_for(cat, code)
            out.append({"hospcode": h, "facility_name": self.facility_names.get(h, ""), "category": cat,
                        "owner": owner, "owner_th": OWNERS[owner][0], "fix_th": fix_th, "fix_en": fix_en,
                        "category_th": CATEGORIES[cat][0], "category_en": CATEGORIES[cat][1],
                        "endpoint_or_file": ep, "code": code, "path": path, "severity": it.severity,
                        "count": it.count, "message_th": it.message_th, "message_en": it.message_en,
                        "examples": list(it.examples)})
        out.sort(key=lambda r: (r["hospcode"], CATEGORIES[r["category"]][2], -r["count"], r["code"], r["path"]))
        return out

    def summary(self) -> dict[str, Any]:
        return {h: {"name": self.facility_names.get(h, ""), "built": t.built, "refused": t.refused,
                    "skipped": t.skipped, "waiting": t.waiting, "quarantined": self.quarantined.get(h, 0), "by_endpoint": t.by_endpoint,
                    "to_fix_at_facility": self.facility_fix_count(h),
                    "problems": {c: self.problem_count(h, [c]) for c in CATEGORIES if self.problem_count(h, [c])}}
                for h, t in sorted(self.totals.items())}


def quarantine_example(file: str, e: dict[str, Any]) -> str:
    """One quarantine example (``{source, line, field, value}`` of :func:`phrsync.f43.read.quarantine_groups`) as
    a person reads it, ``source:line FIELD=value``, with a personal field's value masked."""
    spec = schema.lookup(file)
    fld = e.get("field") or ""
    personal = bool(spec and fld and spec.by_name.get(fld) and spec.by_name[fld].personal)
    value = str(e.get("value") if e.get("value") is not None else "")
    if personal and "xxx" not in value:  # the importer already masks CIDs; never mask twice
        value = mask_value(value, True)
    return f"{e.get('source') or file}:{e.get('line')} {fld}={mask_text(value)}".strip()


def example_label(ref: str | None, cid: str | None) -> str:
    """How one payload is pointed at in the report: its visit reference and the MASKED CID."""
    parts = [p for p in (ref, mask_cid(cid) if cid else None) if p]
    return " ".join(parts)


# --- rendering ----------------------------------------------------------------------------------

CSV_COLUMNS = ("hospcode", "facility_name", "category", "category_th", "owner", "owner_th", "fix_th", "fix_en",
               "endpoint_or_file", "code", "path", "severity", "count", "message_th", "message_en", "examples")


def write_csv(q: Quality, path: str | Path) -> None:
    """UTF-8 with BOM so Excel (the tool health offices use) opens the Thai text correctly."""
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in q.rows():
            w.writerow({**r, "examples": " | ".join(r["examples"])})


@functools.lru_cache(maxsize=1)
def _templates() -> jinja2.Environment:
    """The report's templates (``phrsync/phr/templates``), HTML-escaping every value they print."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("phrsync.phr", "templates"), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["num"] = lambda n: f"{n:,}"
    return env


def _view(q: Quality, generated: dt.datetime, selection: dict[str, Any], policies: dict[str, Any] | None
          ) -> dict[str, Any]:
    """What the template shows, worked out here so that it only lays it out."""
    d_from, d_to = selection.get("date_from"), selection.get("date_to")
    overview, details = [], []
    for h in q.facilities():
        t = q.totals[h]
        name = q.facility_names.get(h, "")
        overview.append({"code": h, "name": name, "cls": "bad" if (t.refused or t.skipped or t.waiting or q.quarantined.get(h))
                         else "ok", "built": t.built, "refused": t.refused, "skipped": t.skipped,
                         "waiting": t.waiting, "quarantined": q.quarantined.get(h, 0), "estimates": q.problem_count(h, ["estimate"]),
                         "unknown_codes": q.problem_count(h, ["unknown_code"]),
                         "warnings": q.problem_count(h, ["warning", "missing"]), "to_fix": q.facility_fix_count(h)})
        rows = [{**r, "owner_en": OWNERS[r["owner"]][1],
                 "cls": "bad" if r["category"] in ("refused", "skipped", "waiting", "quarantine") else "warn"} for r in q.rows(h)]
        details.append({"code": h, "name": name, "rows": rows, "endpoints": ", ".join(
            f"{ep}: {v['built']:,}/{v['refused']:,}/{v['skipped']:,}" for ep, v in sorted(t.by_endpoint.items()))})
    return {"generated_th": thai_date(generated), "generated_iso": generated.isoformat(timespec="seconds"),
            "range_th": f"{thai_date(d_from)} ถึง {thai_date(d_to)}" if (d_from or d_to) else "ทั้งหมด",
            "range_en": f"{d_from or '…'} to {d_to or '…'}" if (d_from or d_to) else "all dates",
            "facilities": ", ".join(selection.get("facilities") or []) or "ทุกหน่วยบริการ",
            "overview": overview, "details": details, "policies": policies or {}}


def render_html(q: Quality, *, generated: dt.datetime, selection: dict[str, Any] | None = None,
                policies: dict[str, Any] | None = None) -> str:
    """The report as one HTML page (template ``quality.html.j2``)."""
    return _templates().get_template("quality.html.j2").render(_view(q, generated, selection or {}, policies))


def write_html(q: Quality, path: str | Path, **kw: Any) -> None:
    Path(path).write_text(render_html(q, **kw), encoding="utf-8")
