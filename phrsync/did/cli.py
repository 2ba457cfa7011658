"""``phrsync did``: Digital ID (eKYC) lists, checks and KPI 54 (see :mod:`phrsync.did`)."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

import click

from phrsync.did.store import CITIZEN, KINDS, PERSONNEL, DidStore
from phrsync.thai import bilingual, thai_date, thai_datetime

_STATE = click.option("--state", "state", default=None, metavar="PATH|URL",
                      help="ที่เก็บสถานะ (ไฟล์ SQLite หรือ URL) แทน [delivery] / the state store instead of [delivery]'s")
_JSON = click.option("--json", "as_json", is_flag=True, help="ผลแบบ JSON / machine-readable output")


def _cfg(ctx: click.Context) -> Any:
    from phrsync.config import config_from_context

    return config_from_context(ctx)


def _state_url(cfg: Any, state: str | None, target: str | None = None) -> str:
    from phrsync.delivery.config import load_delivery, state_url

    if state:
        return state_url(state)
    return load_delivery(cfg, target or cfg.settings.did.target).state_url


def _emit(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


@click.group("did")
def did_cmd() -> None:
    """Digital ID (หมอพร้อม eKYC) ตามอำเภอ และ KPI 54 / Digital IDs by district and KPI 54.

    \b
    ลำดับ / flow: import-population, import-personnel (หรือ 43 แฟ้ม / or the 43 files) → check
    (และ/หรือ / and/or import-ekyc) → report
    """


def _import(ctx: click.Context, file: str, kind: str, state: str | None, as_json: bool) -> None:
    from phrsync.did.population import import_file

    cfg = _cfg(ctx)
    store = DidStore(_state_url(cfg, state))
    try:
        res = import_file(store, file, kind, cfg.settings.did.personnel_exclude if kind == PERSONNEL else None)
    finally:
        store.close()
    if as_json:
        _emit(res.to_dict())
    else:
        th, en = res.label
        click.echo(f"{bilingual('นำเข้า', 'imported')} {res.accepted:,} {bilingual('คน', 'people')} — {th} / {en}")
        if res.duplicates:
            click.echo(f"  {bilingual('ซ้ำ (นับครั้งเดียว)', 'duplicates (counted once)')}: {res.duplicates:,}")
        if res.no_district:
            click.echo(f"  {bilingual('ไม่ทราบอำเภอ (นับในยอดจังหวัด)', 'district not known (in the province total)')}"
                       f": {res.no_district:,}")
        for emp, n in sorted(res.excluded.items(), key=lambda kv: -kv[1]):
            click.echo(f"  {bilingual('ไม่นับตามนิยาม KPI', 'not counted by the KPI')}: {n:,} × {emp}")
        for p in res.problems[:20]:
            click.echo(f"  {bilingual('ข้ามแถว', 'row left out')}: {p.text()}", err=True)
        if len(res.problems) > 20:
            click.echo(f"  … +{len(res.problems) - 20:,}", err=True)
    if res.problems:
        ctx.exit(1)


@did_cmd.command("import-population")
@click.argument("file", type=click.Path(dir_okay=False))
@_STATE
@_JSON
@click.pass_context
def import_population_cmd(ctx: click.Context, file: str, state: str | None, as_json: bool) -> None:
    """นำเข้าประชากรทุกสิทธิ (สปสช.) เป็นตัวหาร 54.2 / import the NHSO population (B2) from CSV or XLSX.

    คอลัมน์ / columns: CID (cid, เลขบัตรประชาชน), หน่วยบริการ (hospcode) หรือ อำเภอ (district), สิทธิ (rights).
    แถวที่ผิดถูกข้ามพร้อมบอกบรรทัดและเหตุผล (exit 1) / bad rows are left out and reported (exit 1).
    """
    _import(ctx, file, CITIZEN, state, as_json)


@did_cmd.command("import-personnel")
@click.argument("file", type=click.Path(dir_okay=False))
@_STATE
@_JSON
@click.pass_context
def import_personnel_cmd(ctx: click.Context, file: str, state: str | None, as_json: bool) -> None:
    """นำเข้าบุคลากร (HROPS) เป็นตัวหาร 54.1 / import the HROPS personnel (B1) from CSV or XLSX.

    คอลัมน์ / columns: CID, หน่วยบริการ (hospcode), ตำแหน่ง (position), ประเภทการจ้าง (employment type).
    จ้างรายคาบ/รายวัน/จ้างเหมา ไม่นับ ([did] personnel_exclude) / per-period, daily and contracted workers are
    not counted.
    """
    _import(ctx, file, PERSONNEL, state, as_json)


@did_cmd.command("import-ekyc")
@click.argument("file", type=click.Path(dir_okay=False))
@_STATE
@_JSON
@click.pass_context
def import_ekyc_cmd(ctx: click.Context, file: str, state: str | None, as_json: bool) -> None:
    """นำเข้าผล eKYC รายคนจากไฟล์ส่งออกของ IdP admin เป็นตัวตั้งอีกแหล่ง / import an IdP-admin eKYC export (per CID).

    \b
    คอลัมน์ / columns: CID (cid, เลขบัตรประชาชน), ผล eKYC เป็นจำนวน (result, count, จำนวน) หรือสถานะ
    (status, สถานะ: ยืนยันแล้ว / ยังไม่ยืนยัน, Y / N), วันที่ (date, วันที่) ถ้ามี.
    เก็บแยกจากผล check_ekyc; มี Digital ID ถ้าแหล่งใดแหล่งหนึ่งบอกว่ามี และรายงานแสดงจำนวนของแต่ละแหล่ง
    / kept apart from check_ekyc's answers; a person has a Digital ID if either source says so, and the report
    shows each source's count. ไฟล์ใหม่แทนไฟล์เดิม / a newer export replaces the older. ดู / see docs/did.md.
    """
    from phrsync.did.ekyc import LABEL, import_ekyc

    cfg = _cfg(ctx)
    store = DidStore(_state_url(cfg, state))
    try:
        res = import_ekyc(store, file)
    finally:
        store.close()
    if as_json:
        _emit(res.to_dict())
    else:
        click.echo(f"{bilingual('นำเข้า', 'imported')} {res.accepted:,} {bilingual('คน', 'people')} "
                   f"({bilingual('มี Digital ID', 'with a Digital ID')} {res.with_did:,}) — {LABEL[0]} / {LABEL[1]}")
        if res.newest_day:
            click.echo(f"  {bilingual('ข้อมูลถึง', 'as of')}: {thai_date(date.fromisoformat(res.newest_day))}")
        if res.duplicates:
            click.echo(f"  {bilingual('ซ้ำ (นับครั้งเดียว)', 'duplicates (counted once)')}: {res.duplicates:,}")
        for p in res.problems[:20]:
            click.echo(f"  {bilingual('ข้ามแถว', 'row left out')}: {p.text()}", err=True)
        if len(res.problems) > 20:
            click.echo(f"  … +{len(res.problems) - 20:,}", err=True)
    if res.problems:
        ctx.exit(1)


@did_cmd.command("check")
@click.option("--district", default=None, metavar="CODE", help="เฉพาะอำเภอ (รหัส 4 หลัก) / one district (DOPA code)")
@click.option("--facility", default=None, metavar="HCODE", help="เฉพาะหน่วยบริการ / one facility")
@click.option("--personnel", "only", flag_value=PERSONNEL, help="เฉพาะบุคลากร / personnel only")
@click.option("--citizens", "only", flag_value=CITIZEN, help="เฉพาะประชาชน / citizens only")
@click.option("--target", default=None, help="production | uat | sandbox | [targets] (แทน [did] target)")
@click.option("--staging", type=click.Path(dir_okay=False), default=None,
              help="ที่พักข้อมูล 43 แฟ้ม สำหรับรายชื่อทดแทน / the 43-file staging store for the fallback lists")
@_STATE
@_JSON
@click.pass_context
def check_cmd(ctx: click.Context, district: str | None, facility: str | None, only: str | None,
              target: str | None, staging: str | None, state: str | None, as_json: bool) -> None:
    """ตรวจ Digital ID ทีละคนกับ PHR (check_ekyc) / ask PHR who has a Digital ID, one person at a time.

    ถามเฉพาะคนที่ยังไม่มีคำตอบ หรือตอบว่าไม่มีเกิน [did] recheck_days วัน; หยุดกลางคัน (Ctrl+C) แล้วรันใหม่ได้
    / asks only who has no answer yet, or answered "none" over recheck_days ago; stop any time and run again.
    """
    from phrsync.did.check import options_from_config
    from phrsync.did.population import ensure_lists
    from phrsync.errors import UsageError

    if district and not (len(district) == 4 and district.isdigit()):
        raise UsageError("รหัสอำเภอต้องเป็นตัวเลข 4 หลัก (เช่น 2701)", "a district code has 4 digits (e.g. 2701)")
    if facility and len(facility) != 5:
        raise UsageError("รหัสหน่วยบริการต้องมี 5 ตัว", "a facility code has 5 characters")
    cfg = _cfg(ctx)
    opts, url = options_from_config(cfg, target)
    store = DidStore(_state_url(cfg, state, target) if state else url)
    kinds = (only,) if only else KINDS
    try:
        ensure_lists(store, staging or cfg.staging, kinds)
        if not any(store.count_people(k) for k in kinds):
            raise UsageError("ยังไม่มีรายชื่อให้ตรวจ: นำเข้าด้วย did import-population / import-personnel หรือมีที่พักข้อมูล "
                             "43 แฟ้ม", "no list to check: import one (did import-population / import-personnel) "
                                       "or have a 43-file staging store")
        res = _run_with_progress(store, opts, kinds, district, facility, quiet=as_json)
    finally:
        store.close()
    if as_json:
        _emit(res.to_dict())
    else:
        click.echo(f"{bilingual('ต้องตรวจ', 'due')} {res.due:,}; {bilingual('ได้คำตอบ', 'answered')} {res.answered:,} "
                   f"({bilingual('มี Digital ID', 'with a Digital ID')} {res.with_did:,}); "
                   f"{bilingual('ไม่ได้คำตอบ (ตรวจใหม่รอบหน้า)', 'no answer (asked next run)')} "
                   f"{res.failed + res.refused:,}; {res.per_second:.1f}/s, {res.seconds:.1f} s")
    if res.failed or res.refused:
        ctx.exit(3)


def _run_with_progress(store: DidStore, opts: Any, kinds: tuple[str, ...], district: str | None,
                       facility: str | None, quiet: bool) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from phrsync.did.check import run_check

    if quiet or not sys.stderr.isatty():
        return run_check(store, opts, kinds=kinds, district=district, facility=facility)
    with Progress(TextColumn("check_ekyc"), BarColumn(), MofNCompleteColumn(), TextColumn("ETA"),
                  TimeRemainingColumn(), console=Console(stderr=True)) as bar:
        task = bar.add_task("check", total=None)
        return run_check(store, opts, kinds=kinds, district=district, facility=facility,
                         on_start=lambda n: bar.update(task, total=n),
                         progress=lambda done, _n: bar.update(task, completed=done))


@did_cmd.command("report")
@click.option("--csv", "csv_out", is_flag=True, help="ตารางแบบ CSV ทาง stdout / the table as CSV on stdout")
@click.option("--xlsx", "xlsx", type=click.Path(dir_okay=False), default=None, help="เขียนเป็นไฟล์ XLSX / write XLSX")
@click.option("--staging", type=click.Path(dir_okay=False), default=None,
              help="ที่พักข้อมูล 43 แฟ้ม สำหรับรายชื่อทดแทน / the 43-file staging store for the fallback lists")
@_STATE
@_JSON
@click.pass_context
def report_cmd(ctx: click.Context, csv_out: bool, xlsx: str | None, staging: str | None, state: str | None,
               as_json: bool) -> None:
    """ตาราง Digital ID ตามอำเภอ พร้อมยอดจังหวัด และ KPI 54 / the district table, province total and KPI 54."""
    from phrsync.did.kpi import Targets
    from phrsync.did.population import ensure_lists
    from phrsync.did.report import build_report, to_csv, to_xlsx

    cfg = _cfg(ctx)
    store = DidStore(_state_url(cfg, state))
    try:
        if staging:
            ensure_lists(store, staging, KINDS)
        rep = build_report(store, Targets.from_settings(cfg.settings.did))
    finally:
        store.close()
    if xlsx:
        to_xlsx(rep, xlsx)
    if as_json:
        _emit(rep.to_dict())
    elif csv_out:
        click.echo(to_csv(rep), nl=False)
    elif not xlsx:
        print_report(rep)
    else:
        click.echo(str(Path(xlsx)))


def print_report(rep: Any) -> None:
    """The table as the Sa Kaeo report lays it out (used by ``did report`` and the demo)."""
    from rich.console import Console
    from rich.table import Table

    def p(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    def ok(v: bool | None) -> str:
        return "" if v is None else ("✔" if v else "✘")

    t = Table(title=f"KPI 54 ปีงบประมาณ / fiscal year {rep.fiscal_year_be} ไตรมาส / Q{rep.quarter} — "
                    f"{thai_date(rep.as_of)}")
    for h in ("อำเภอ / district", "ประชาชน", "มี DID", "%", "", "บุคลากร", "มี DID", "%", ""):
        t.add_column(h, justify="left" if h.startswith("อำเภอ") else "right")
    for r in rep.rows:
        style = "bold" if r.total else None
        t.add_row(r.name, f"{r.citizens:,}", f"{r.citizens_did:,}", p(r.citizens_pct), ok(r.citizens_pass),
                  f"{r.personnel:,}", f"{r.personnel_did:,}", p(r.personnel_pct), ok(r.personnel_pass), style=style)
    con = Console()
    con.print(t)
    con.print(f"เป้า / target ({rep.period}): 54.1 บุคลากร / personnel ≥ {rep.target_personnel:g} %, "
              f"54.2 ประชาชน / citizens ≥ {rep.target_citizens:g} %")
    con.print(f"ตัวหารประชาชน / citizens: {rep.citizens_source[0]} / {rep.citizens_source[1]}")
    con.print(f"ตัวหารบุคลากร / personnel: {rep.personnel_source[0]} / {rep.personnel_source[1]}")
    con.print(f"ตัวตั้ง / numerators: {rep.numerator_source[0]} / {rep.numerator_source[1]}")
    tot = rep.total
    for th, en, did, chk, ek in (("ประชาชน", "citizens", tot.citizens_did, tot.citizens_did_check,
                                  tot.citizens_did_ekyc),
                                 ("บุคลากร", "personnel", tot.personnel_did, tot.personnel_did_check,
                                  tot.personnel_did_ekyc)):
        con.print(f"  {th} / {en}: check_ekyc {chk:,}, IdP admin {ek:,}, "
                  f"รวมไม่ซ้ำ / either (each once) {did:,}")
    for th, en in rep.notes:
        con.print(f"หมายเหตุ / note: {th} / {en}")


@did_cmd.command("followup")
@click.argument("hospcode")
@click.option("--personnel", is_flag=True, help="บุคลากรแทนประชาชน / personnel instead of citizens")
@click.option("--limit", type=int, default=None, help="แสดงไม่เกิน / at most this many")
@_STATE
@_JSON
@click.pass_context
def followup_cmd(ctx: click.Context, hospcode: str, personnel: bool, limit: int | None, state: str | None,
                 as_json: bool) -> None:
    """รายชื่อที่ยังไม่มี Digital ID ของหน่วยบริการ (เลขบัตรปิดบัง) / a facility's people without one (masked)."""
    from phrsync.did.report import followup

    cfg = _cfg(ctx)
    store = DidStore(_state_url(cfg, state))
    try:
        rows = followup(store, hospcode, kind=PERSONNEL if personnel else CITIZEN, limit=limit)
    finally:
        store.close()
    if as_json:
        _emit({"hospcode": hospcode, "people": [r.__dict__ for r in rows]})
        return
    for r in rows:
        when = thai_datetime(r.checked_at) if r.checked_at else bilingual("ยังไม่ได้ตรวจ", "not checked yet")
        click.echo(f"{r.cid_masked}  {r.name}  {when}")
    click.echo(f"{len(rows):,} {bilingual('คน', 'people')}")
