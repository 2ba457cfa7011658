"""``phrsync build`` (staging → validated payloads + data-quality report) and ``phrsync validate``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from phrsync.config import config_from_context
from phrsync.errors import Exit, UsageError
from phrsync.thai import bilingual, thai_date

err = Console(stderr=True)

STAGE_TH = {"encounters": "การรับบริการ / encounters", "immunization": "ทะเบียนวัคซีน / immunization register",
            "chronic": "ทะเบียนโรคเรื้อรัง / chronic register", "allergy": "การแพ้ยา / allergies",
            "summary": "สรุปรายวัน / daily counts"}


@click.command("build")
@click.option("--facility", "facilities", multiple=True,
              help="รหัสหน่วยบริการ (ใส่ได้หลายครั้ง หรือคั่นด้วย ,) / facility code(s); default all")
@click.option("--from", "date_from", help="วันที่รับบริการเริ่ม / first service date (YYYY-MM-DD)")
@click.option("--to", "date_to", help="วันที่รับบริการสุดท้าย / last service date (YYYY-MM-DD)")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="ไฟล์ผลลัพธ์ NDJSON / output payloads.ndjson")
@click.option("--report", "report", type=click.Path(dir_okay=False),
              help="รายงานคุณภาพข้อมูล HTML (และ .csv ข้างกัน) / data-quality report (HTML; a .csv is written beside it)")
@click.option("--staging", type=click.Path(), help="ไฟล์ staging (ค่าตั้งต้น data/staging.duckdb) / staging store file")
@click.option("--only", type=click.Choice(["encounters", "immunization", "chronic", "allergy", "summary"]),
              multiple=True, help="สร้างเฉพาะส่วนนี้ / build only these parts (repeatable)")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="จำนวนโปรเซสที่ใช้ (ค่าตั้งต้น: ตามจำนวนคอร์เมื่อข้อมูลมาก) / processes (default: one per core for "
                   "large builds)")
@click.option("--json", "as_json", is_flag=True, help="สรุปผลแบบ JSON / machine-readable summary")
@click.pass_context
def build_cmd(ctx: click.Context, facilities: tuple[str, ...], date_from: str | None, date_to: str | None, out: str,
              report: str | None, staging: str | None, only: tuple[str, ...], workers: int | None,
              as_json: bool) -> None:
    """สร้างข้อมูลส่ง MOPH-PHR จาก staging และตรวจสอบ (ยังไม่ส่ง) / build and validate PHR payloads (sends nothing).

    \b
    แต่ละบรรทัดของ NDJSON: {"key", "endpoint", "hospcode", "payload"}
    ข้อมูลที่ตัวตรวจสอบปฏิเสธจะไม่ถูกเขียน แต่นับและอธิบายในรายงาน
    Refused payloads are not written; they are counted and explained in the report.

    \b
    ตัวอย่าง / examples:
      phrsync build --out data/payloads.ndjson --report data/quality.html
      phrsync build --facility 10699 --from 2025-10-01 --to 2025-10-31 --out oct.ndjson --json
    """
    from phrsync.phr.api import build_payloads
    from phrsync.phr.build import STAGES, parse_day

    try:
        d_from, d_to = parse_day(date_from), parse_day(date_to)
    except ValueError as e:
        raise UsageError(str(e)) from e
    show = not as_json and sys.stderr.isatty()
    prog = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=True, disable=not show)
    tasks: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = prog.add_task(STAGE_TH.get(stage, stage), total=total or None)
        prog.update(tasks[stage], completed=done)

    with prog:
        done = build_payloads(config_from_context(ctx), out, staging=staging, facilities=facilities, date_from=d_from,
                              date_to=d_to, report=report, stages=only or STAGES, workers=workers,
                              progress=progress)
    res, written = done.result, done.report
    if as_json:
        click.echo(json.dumps(done.to_dict(), ensure_ascii=False, indent=1, default=str))
        return
    rng = f"{thai_date(d_from)} – {thai_date(d_to)}" if (d_from or d_to) else "ทุกวันที่ / all dates"
    click.echo(bilingual(f"สร้างข้อมูลส่ง PHR ({rng})", f"built PHR payloads ({date_from or '…'} – {date_to or '…'})"))
    for ep, c in sorted(res.counts.items()):
        w = c.get("waiting", 0)
        click.echo(f"  {ep:<26} " + bilingual(
            f"สร้างได้ {c['built']:,} ปฏิเสธ {c['refused']:,} ข้าม {c['skipped']:,}" + (f" รอรหัสยา {w:,}" if w else ""),
            f"built {c['built']:,} refused {c['refused']:,} skipped {c['skipped']:,}"
            + (f" waiting for a code {w:,}" if w else "")))
    if res.total("waiting"):
        click.echo(bilingual(f"รอรหัสยา {res.total('waiting'):,} รายการ: ดู phrsync codes unmapped",
                             f"{res.total('waiting'):,} waiting for a drug code: see phrsync codes unmapped"))
    click.echo(bilingual(f"เขียนที่ {res.out} (สรุป {res.summary})", f"written to {res.out} (summary {res.summary})"))
    if written:
        click.echo(bilingual(f"รายงานคุณภาพข้อมูล {written['html']} และ {written['csv']}",
                             f"data-quality report {written['html']} and {written['csv']}"))
    click.echo(bilingual(f"ใช้เวลา {res.seconds:.1f} วินาที ({res.encounters_per_second:,.0f} ครั้งบริการ/วินาที)",
                         f"took {res.seconds:.1f} s ({res.encounters_per_second:,.0f} encounters/s)"))


@click.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--endpoint", default=None,
              help="ชื่อ endpoint สำหรับไฟล์ .json เดี่ยว (ค่าตั้งต้น UpdatePHRv1) / endpoint of plain .json files")
@click.option("--limit", default=20, show_default=True, help="แสดงปัญหาสูงสุดต่อไฟล์ / issues shown per file")
@click.option("--json", "as_json", is_flag=True, help="ผลลัพธ์แบบ JSON / machine-readable output")
def validate_cmd(files: tuple[str, ...], endpoint: str | None, limit: int, as_json: bool) -> None:
    """ตรวจสอบข้อมูลส่ง PHR (.json หรือ NDJSON จาก build) / validate PHR payloads (.json or build NDJSON).

    \b
    ไฟล์ .ndjson: แต่ละบรรทัด {"endpoint", "payload"} (ผลจาก phrsync build)
    ไฟล์ .json: payload เดียว ใช้ --endpoint (ค่าตั้งต้น UpdatePHRv1)
    Exit status 1 when any payload has an error.
    """
    from phrsync.phr.api import validate_files

    rep = validate_files(files, endpoint, limit)
    if as_json:
        click.echo(json.dumps(rep.to_dict(), ensure_ascii=False, indent=1))
    else:
        few = len(rep.results) <= 20
        for r in rep.results:
            if r.ok and not few:  # thousands of lines: list only the failures
                continue
            status = "ผ่าน / OK" if r.ok else "ไม่ผ่าน / FAILED"
            click.echo(f"{r.item} [{r.endpoint}] {status} — " + bilingual(
                f"ผิด {r.errors} เตือน {len(r.issues) - r.errors}", f"{r.errors} errors, {len(r.issues) - r.errors} warnings"))
            if not r.ok or len(rep.results) == 1:
                for i in r.issues[:limit]:
                    click.echo(f"   {i.severity:<7} {i.path}: {i.message_th} / {i.message_en}")
        click.echo(bilingual(f"ตรวจ {len(rep.results):,} รายการ ไม่ผ่าน {rep.failed:,}",
                             f"checked {len(rep.results):,}, failed {rep.failed:,}"))
    if not rep.ok:
        sys.exit(int(Exit.REFUSED))
