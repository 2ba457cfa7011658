"""The DID report as the command and the web show it: the KPI table with its denominators' labels, the trend from
the snapshots, the per-facility follow-up list (masked), and the CSV/XLSX exports.

The web calls :func:`build_report`, :func:`trend` and :func:`followup` (which enforces who may see which
facility's list: a facility user only their own, a district viewer their district's)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phrsync.did import kpi
from phrsync.did.population import NO_SOURCE, SOURCE_LABELS, districts, facility_district
from phrsync.did.store import CITIZEN, PERSONNEL, DidStore, FollowUp, Snapshot
from phrsync.thai import BANGKOK, thai_date, thai_datetime


def _today() -> dt.date:
    return dt.datetime.now(BANGKOK).date()


def build_report(store: DidStore, targets: kpi.Targets, today: dt.date | None = None) -> kpi.Report:
    """KPI 54 by district and for the province, from the state store's counts (one GROUP BY)."""
    today = today or _today()
    per: dict[str, dict[str | None, list[int]]] = {CITIZEN: {}, PERSONNEL: {}}
    for g in store.group_counts():
        a = per[g.kind].setdefault(g.district, [0, 0, 0, 0, 0])
        a[0] += g.people
        a[1] += g.with_did
        a[2] += g.checked
        a[3] += g.with_did_check
        a[4] += g.with_did_ekyc
    counts = {k: [kpi.Count(d, *a) for d, a in v.items()] for k, v in per.items()}
    rep = kpi.compute(counts[CITIZEN], counts[PERSONNEL], districts(), targets, today)
    for kind, attr in ((CITIZEN, "citizens_source"), (PERSONNEL, "personnel_source")):
        src = store.source_of(kind)
        setattr(rep, attr, SOURCE_LABELS[(kind, src)] if src else NO_SOURCE)
        imp = store.last_import(kind)
        smp = imp.summary.get("sample") if imp else None
        if imp and isinstance(smp, dict):
            th, en = ("ประชาชน", "citizens") if kind == CITIZEN else ("บุคลากร", "personnel")
            rep.notes.append((f"{th}: ตัวอย่าง {smp.get('per_district', 0):,} คนต่ออำเภอ ({imp.accepted:,} จาก "
                              f"{smp.get('of', 0):,} คน) ไม่ใช่ทั้งรายชื่อ",
                              f"{en}: a sample of {smp.get('per_district', 0):,} per district "
                              f"({imp.accepted:,} of {smp.get('of', 0):,}), not the whole list"))
        if imp and imp.excluded:
            rep.notes.append((f"ไม่นับบุคลากร {imp.excluded:,} คน (จ้างรายคาบ/รายวัน/จ้างเหมา ตามนิยาม KPI)",
                              f"{imp.excluded:,} personnel not counted (per-period, daily or contracted, as the "
                              "KPI defines)"))
    rep.numerator_source, ekyc_note = numerator_source(store)
    if ekyc_note:
        rep.notes.append(ekyc_note)
    t = rep.total
    for label, n, checked in (("ประชาชน / citizens", t.citizens, t.citizens_checked),
                              ("บุคลากร / personnel", t.personnel, t.personnel_checked)):
        if n and checked < n:
            rep.notes.append((f"{label}: ยังไม่ได้ตรวจ {n - checked:,} จาก {n:,} คน (นับเป็นยังไม่มี Digital ID)",
                              f"{label}: {n - checked:,} of {n:,} not checked yet (counted as without one)"))
    return rep


def numerator_source(store: DidStore) -> tuple[tuple[str, str], tuple[str, str] | None]:
    """(which sources the numerators use, a note naming the eKYC export's file and day): a person has a Digital
    ID when check_ekyc answered result ≥ 1 or the IdP-admin export says so; each source's count is shown too."""
    from phrsync.did.ekyc import CHECK_LABEL, LABEL

    imp = store.ekyc_import()
    checked = store.has_check_answers()
    if imp and checked:
        src = (f"{CHECK_LABEL[0]} หรือ {LABEL[0]}: มี Digital ID ถ้าแหล่งใดแหล่งหนึ่งบอกว่ามี (นับคนละครั้ง)",
               f"{CHECK_LABEL[1]} or the {LABEL[1]}: has a Digital ID if either says so (each person once)")
    elif imp:
        src = (f"{LABEL[0]} เท่านั้น (ยังไม่มีผล check_ekyc)", f"{LABEL[1]} only (no check_ekyc answer yet)")
    elif checked:
        src = (f"{CHECK_LABEL[0]} เท่านั้น", f"{CHECK_LABEL[1]} only")
    else:
        src = ("ยังไม่มีผลตรวจ", "no answer yet")
    if imp is None:
        return src, None
    day = imp.summary.get("newest_day")
    when = thai_date(dt.date.fromisoformat(day)) if day else "ไม่ระบุวันที่"
    return src, (f"ไฟล์ eKYC จาก IdP admin: {imp.file} ({imp.accepted:,} คน มี Digital ID "
                 f"{int(imp.summary.get('with_did', 0)):,} คน ข้อมูลถึง {when}; นำเข้า {thai_datetime(imp.at)})",
                 f"IdP-admin eKYC export: {imp.file} ({imp.accepted:,} people, "
                 f"{int(imp.summary.get('with_did', 0)):,} with a Digital ID, as of {day or 'no date given'}; "
                 f"imported {thai_datetime(imp.at)})")


@dataclass(frozen=True)
class TrendPoint:
    taken_at: float
    kind: str
    numerator: int
    denominator: int
    pct: float | None


def trend(store: DidStore, kind: str, district: str | None = None) -> list[TrendPoint]:
    """The province's (or one district's) figure after each check run, oldest first."""
    per: dict[float, list[int]] = {}
    for s in store.snapshots(kind):
        if district is not None and s.district != district:
            continue
        a = per.setdefault(s.taken_at, [0, 0])
        a[0] += s.numerator
        a[1] += s.denominator
    return [TrendPoint(at, kind, a[0], a[1], kpi.pct(a[0], a[1])) for at, a in sorted(per.items())]


def followup(store: DidStore, hospcode: str, user: Any = None, kind: str = CITIZEN,
             limit: int | None = None) -> list[FollowUp]:
    """A facility's residents without a Digital ID (CIDs masked), for staff to go and register them.

    ``user`` (a :class:`phrsync.web.auth.User`) must be allowed the facility: otherwise
    :class:`phrsync.web.auth.Forbidden`. None is the command line (the operator of the state store)."""
    if user is not None and not user.can_see(hospcode, facility_district(hospcode) or store.district_of(hospcode)):
        from phrsync.web.auth import Forbidden

        raise Forbidden("ไม่มีสิทธิ์ดูรายชื่อของหน่วยบริการนี้", "you may not see this facility's list")
    return store.followup(hospcode, kind, limit)


def snapshots(store: DidStore) -> list[Snapshot]:
    return store.snapshots()


# -- exports ---------------------------------------------------------------------------------------------------

HEADER_TH = ["รหัสอำเภอ", "อำเภอ", "ประชาชน", "ประชาชนมีดิจิทัลไอดี", "ร้อยละ", "บุคลากรสาธารณสุข",
             "บุคลากรที่มีดิจิทัลไอดี", "ร้อยละ", "ผ่านเป้าประชาชน", "ผ่านเป้าบุคลากร",
             "ประชาชนมี DID ตาม check_ekyc", "ประชาชนมี DID ตามไฟล์ IdP admin", "บุคลากรมี DID ตาม check_ekyc",
             "บุคลากรมี DID ตามไฟล์ IdP admin"]
HEADER_EN = ["district code", "district", "citizens", "citizens with DID", "%", "health personnel",
             "personnel with DID", "%", "citizens target met", "personnel target met",
             "citizens with DID by check_ekyc", "citizens with DID by the IdP-admin export",
             "personnel with DID by check_ekyc", "personnel with DID by the IdP-admin export"]


def _yes(v: bool | None) -> str:
    return "" if v is None else ("ผ่าน / pass" if v else "ไม่ผ่าน / fail")


def table_rows(rep: kpi.Report) -> list[list[Any]]:
    return [[r.code or "", r.name, r.citizens, r.citizens_did, r.citizens_pct, r.personnel, r.personnel_did,
             r.personnel_pct, _yes(r.citizens_pass), _yes(r.personnel_pass), r.citizens_did_check,
             r.citizens_did_ekyc, r.personnel_did_check, r.personnel_did_ekyc] for r in rep.rows]


def _caption(rep: kpi.Report) -> list[str]:
    return [f"KPI 54 ปีงบประมาณ {rep.fiscal_year_be} ไตรมาส {rep.quarter} (เป้า {rep.period}: บุคลากร ≥ "
            f"{rep.target_personnel:g} % ประชาชน ≥ {rep.target_citizens:g} %)",
            f"ตัวหารประชาชน / citizens' denominator: {rep.citizens_source[0]} / {rep.citizens_source[1]}",
            f"ตัวหารบุคลากร / personnel denominator: {rep.personnel_source[0]} / {rep.personnel_source[1]}",
            f"ตัวตั้ง / numerators: {rep.numerator_source[0]} / {rep.numerator_source[1]}"]


def to_csv(rep: kpi.Report) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    for line in _caption(rep):
        w.writerow([line])
    w.writerow(HEADER_TH)
    w.writerow(HEADER_EN)
    w.writerows(table_rows(rep))
    return "\ufeff" + buf.getvalue()  # a BOM: Excel opens Thai UTF-8 right


def to_xlsx(rep: kpi.Report, path: str | Path) -> Path:
    import xlsxwriter

    p = Path(path)
    wb = xlsxwriter.Workbook(str(p), {"strings_to_formulas": False, "strings_to_urls": False})
    ws = wb.add_worksheet("KPI 54")
    bold = wb.add_format({"bold": True})
    pctf = wb.add_format({"num_format": "0.00"})
    r = 0
    for line in _caption(rep):
        ws.write_string(r, 0, line)
        r += 1
    for header in (HEADER_TH, HEADER_EN):
        ws.write_row(r, 0, header, bold)
        r += 1
    for row, rr in zip(table_rows(rep), rep.rows, strict=True):
        fmt = bold if rr.total else None
        for c, v in enumerate(row):
            if v is None:
                ws.write_blank(r, c, None)
            elif isinstance(v, float):
                ws.write_number(r, c, v, pctf)
            elif isinstance(v, int):
                ws.write_number(r, c, v, fmt)
            else:
                ws.write_string(r, c, str(v), fmt)
        r += 1
    ws.set_column(0, 0, 10)
    ws.set_column(1, 1, 22)
    ws.set_column(2, 13, 14)
    wb.close()
    return p
