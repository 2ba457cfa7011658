"""``phrsync build`` (staging → validated payloads + data-quality report) and ``phrsync validate``."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from phrsync.config import Config, config_from_context
from phrsync.thai import bilingual, thai_date

err = Console(stderr=True)

STAGE_TH = {"encounters": "การรับบริการ / encounters", "immunization": "ทะเบียนวัคซีน / immunization register",
            "chronic": "ทะเบียนโรคเรื้อรัง / chronic register", "allergy": "การแพ้ยา / allergies",
            "summary": "สรุปรายวัน / daily counts"}


def _facility_names(cfg: Config) -> dict[str, str]:
    """Optional ``[facilities]`` table in phrsync.toml: ``"12345" = "รพ.สต.ตัวอย่าง"`` overrides the code table."""
    return {str(k): str(v) for k, v in cfg.section("facilities").items() if isinstance(v, str)}


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
    from phrsync.f43.read import Selection
    from phrsync.phr.build import STAGES, build, parse_day
    from phrsync.phr.mapping import MapContext, reset_code_cache
    from phrsync.phr.policies import PolicyError, from_config
    from phrsync.phr.report import write_csv, write_html
    from phrsync.terminology import configure_from_config

    cfg = config_from_context(ctx)
    configure_from_config(cfg)  # the province's own code tables (drug_tmt, facility names ...)
    reset_code_cache()
    try:
        policies = from_config(cfg)
        d_from, d_to = parse_day(date_from), parse_day(date_to)
    except (PolicyError, ValueError) as e:
        raise click.UsageError(str(e)) from e
    if d_from and d_to and d_to < d_from:
        raise click.UsageError(bilingual("--to ต้องไม่ก่อน --from", "--to must not be before --from"))
    facs = tuple(sorted({f.strip() for v in facilities for f in v.split(",") if f.strip()}))
    bad = [f for f in facs if not (len(f) == 5 and f.isdigit())]
    if bad:  # a typo such as 1066 matched nothing and the build said only "0 encounters"
        raise click.UsageError(bilingual(f"--facility ต้องเป็นรหัสหน่วยบริการ 5 หลัก (HOSPCODE): {', '.join(bad)}",
                                         f"--facility must be a 5-digit facility code (HOSPCODE): {', '.join(bad)}"))
    sel = Selection(facs, d_from, d_to)
    path = Path(staging) if staging else cfg.staging
    if not path.exists():
        raise click.UsageError(bilingual(f"ไม่พบไฟล์ staging {path} (ใช้ phrsync import ก่อน)",
                                         f"staging store {path} not found (run phrsync import first)"))
    now = dt.datetime.now(dt.UTC)
    mctx = MapContext(now=now, policies=policies, facility_names=_facility_names(cfg))
    stages = tuple(s for s in STAGES if not only or s in only)

    show = not as_json and sys.stderr.isatty()
    prog = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=True, disable=not show)
    tasks: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = prog.add_task(STAGE_TH.get(stage, stage), total=total or None)
        prog.update(tasks[stage], completed=done)

    with prog:
        res = build(path, out, sel, mctx, stages=stages, progress=progress, workers=workers)
    q = res.quality
    assert q is not None
    written: dict[str, str] = {}
    if report:
        rpath = Path(report)
        rpath.parent.mkdir(parents=True, exist_ok=True)
        write_html(q, rpath, generated=now.astimezone(dt.timezone(dt.timedelta(hours=7))),
                   selection={"facilities": list(facs), "date_from": d_from, "date_to": d_to},
                   policies=policies.to_dict())
        csv_path = rpath.with_suffix(".csv")
        write_csv(q, csv_path)
        written = {"html": str(rpath), "csv": str(csv_path)}
    summary = res.to_dict()
    summary["report"] = written
    summary["policies"] = policies.to_dict()
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False, indent=1, default=str))
        return
    rng = f"{thai_date(d_from)} – {thai_date(d_to)}" if (d_from or d_to) else "ทุกวันที่ / all dates"
    click.echo(bilingual(f"สร้างข้อมูลส่ง PHR ({rng})", f"built PHR payloads ({date_from or '…'} – {date_to or '…'})"))
    for ep, c in sorted(res.counts.items()):
        click.echo(f"  {ep:<26} " + bilingual(f"สร้างได้ {c['built']:,} ปฏิเสธ {c['refused']:,} ข้าม {c['skipped']:,}",
                                              f"built {c['built']:,} refused {c['refused']:,} skipped {c['skipped']:,}"))
    click.echo(bilingual(f"เขียนที่ {res.out}", f"written to {res.out}"))
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
    from phrsync.phr.validate import ENDPOINTS, validate, validate_json_bytes

    if endpoint is not None and endpoint not in ENDPOINTS:
        raise click.UsageError(bilingual(f"ไม่รู้จัก endpoint {endpoint}", f"unknown endpoint {endpoint}") +
                               f" ({', '.join(ENDPOINTS)})")
    results: list[dict[str, Any]] = []
    any_error = False
    for f in files:
        data = Path(f).read_bytes()
        entries: list[tuple[str, str, list[Any]]] = []  # (label, endpoint, issues)
        if f.endswith(".ndjson") or f.endswith(".jsonl"):
            for n, line in enumerate(data.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    rec = orjson.loads(line)
                    ep = endpoint or rec.get("endpoint") or "UpdatePHRv1"
                    entries.append((f"{f}:{n} {rec.get('key', '')}", ep, validate(ep, rec.get("payload"))))
                except (orjson.JSONDecodeError, AttributeError):
                    entries.append((f"{f}:{n}", endpoint or "UpdatePHRv1",
                                    validate_json_bytes(endpoint or "UpdatePHRv1", line)))
        else:
            ep = endpoint or "UpdatePHRv1"
            entries.append((f, ep, validate_json_bytes(ep, data)))
        for label, ep, issues in entries:
            errs = [i for i in issues if i.severity == "error"]
            any_error = any_error or bool(errs)
            results.append({"item": label, "endpoint": ep, "ok": not errs, "errors": len(errs),
                            "warnings": len(issues) - len(errs), "issues": [i.to_dict() for i in issues[:limit]]})
    if as_json:
        click.echo(json.dumps({"ok": not any_error, "checked": len(results),
                               "failed": sum(1 for r in results if not r["ok"]), "results": results},
                              ensure_ascii=False, indent=1))
    else:
        few = len(results) <= 20
        for r in results:
            if r["ok"] and not few:  # thousands of lines: list only the failures
                continue
            status = "ผ่าน / OK" if r["ok"] else "ไม่ผ่าน / FAILED"
            click.echo(f"{r['item']} [{r['endpoint']}] {status} — "
                       + bilingual(f"ผิด {r['errors']} เตือน {r['warnings']}", f"{r['errors']} errors, {r['warnings']} warnings"))
            for i in r["issues"]:
                if not r["ok"] or len(results) == 1:
                    click.echo(f"   {i['severity']:<7} {i['path']}: {i['message_th']} / {i['message_en']}")
        click.echo(bilingual(f"ตรวจ {len(results):,} รายการ ไม่ผ่าน {sum(1 for r in results if not r['ok']):,}",
                             f"checked {len(results):,}, failed {sum(1 for r in results if not r['ok']):,}"))
    if any_error:
        sys.exit(1)
