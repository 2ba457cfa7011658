"""``phrsync synth``: write a synthetic province as 43-file zips (and optionally into an HDC schema)."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import click

from phrsync.pdpa import mask_text
from phrsync.thai import bilingual, thai_date


def _password(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).password or ""
    except Exception:
        return ""


@click.command("synth")
@click.option("--province", default="27", show_default=True, help="รหัสจังหวัด / province code (27 = สระแก้ว)")
@click.option("--encounters", "-n", type=click.IntRange(min=0), default=10_000, show_default=True,
              help="จำนวนครั้งบริการ (แถว SERVICE) ทั้งจังหวัด / total SERVICE rows in the province")
@click.option("--seed", type=int, default=1, show_default=True, help="ค่าเริ่มสุ่ม / random seed (same seed → same bytes)")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="โฟลเดอร์ปลายทางของไฟล์ zip / output folder for the zips and manifest.json")
@click.option("--dirty", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True,
              help="สัดส่วนแถวที่ใส่ข้อผิดพลาด / fraction of rows given a defect (0..1)")
@click.option("--start", default="2025-10", show_default=True, help="เดือนแรก / first month, YYYY-MM")
@click.option("--months", type=click.IntRange(1, 13), default=None,
              help="จำนวนเดือน (ค่าตั้งต้นตามจำนวนบริการ) / number of months (default: from --encounters)")
@click.option("--hdc", "hdc_url", default=None,
              help="โหลดข้อมูลเดียวกันเข้าฐาน HDC (MySQL/MariaDB URL) / also load into an HDC schema")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="จำนวนโปรเซส (ค่าตั้งต้น 2 หรือเท่าจำนวน CPU) / worker processes (default: min(2, CPUs))")
@click.option("--json", "as_json", is_flag=True, help="ผลลัพธ์แบบ JSON / machine-readable output")
def synth_cmd(province: str, encounters: int, seed: int, out_dir: str | None, dirty: float, start: str,
              months: int | None, hdc_url: str | None, workers: int | None, as_json: bool) -> None:
    """สร้างข้อมูล 43 แฟ้มสังเคราะห์ทั้งจังหวัด / generate a synthetic province as 43-file exports.

    \b
    ตัวอย่าง / example:
      phrsync synth --encounters 100000 --seed 1 --out data/synth
      phrsync synth -n 5000 --dirty 0.02 --out data/dirty --json
    """
    from phrsync.synth.clock import month_end
    from phrsync.synth.export import ZipWriter, write_province
    from phrsync.synth.generator import SynthOptions, generate, plan

    if not out_dir and not hdc_url:
        raise click.UsageError(bilingual("ต้องระบุ --out หรือ --hdc", "give --out or --hdc (or both)"))
    opts = SynthOptions(province=province, encounters=encounters, seed=seed, dirty=dirty, start=start, months=months)
    try:
        pl = plan(opts)
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from phrsync.synth.export import by_facility

    prog = Progress(TextColumn("สร้างข้อมูล / generating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=True, disable=as_json or not sys.stderr.isatty())
    task = prog.add_task("synth", total=len(pl.province.facilities))

    def progress(done: int, total: int) -> None:  # facilities written
        prog.update(task, completed=done, total=total)

    t0 = time.perf_counter()
    summary: dict[str, Any] = {}
    writer = None
    if out_dir and not hdc_url:
        # zips only: facilities in parallel processes (same bytes as one process)
        with prog:
            summary.update(write_province(opts, out_dir, workers or min(2, os.cpu_count() or 1), progress))
    elif hdc_url:
        batches = by_facility(generate(opts), len(pl.province.facilities), progress)
        writer = ZipWriter(out_dir) if out_dir else None
        if writer:
            batches = writer.tap(batches)
        from phrsync.f43.hdc import load_batches  # written by the HDC part of the product

        try:
            with prog:
                loaded = load_batches(hdc_url, batches)
        except Exception as e:  # report without the password or any CID the message may carry
            msg = mask_text(str(e))
            secret = _password(hdc_url)
            if secret:
                msg = msg.replace(secret, "***")
            raise click.ClickException(bilingual("โหลดเข้าฐาน HDC ไม่สำเร็จ", "loading into HDC failed") + f": {msg}") from e
        summary["hdc"] = {"rows": {k: v for k, v in dict(loaded).items() if v},
                          "bad_values": dict(getattr(loaded, "bad_values", {})),
                          "skipped": dict(getattr(loaded, "skipped", {}))}
        if writer:
            summary.update(writer.finish(opts.to_dict()))
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    summary["period"] = {"first": f"{pl.months[0]:%Y-%m}", "last": f"{pl.months[-1]:%Y-%m}", "months": len(pl.months)}
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False, indent=1))
        return
    out = sys.stdout
    first, last = pl.months[0], pl.months[-1]
    click.echo(bilingual(f"สร้างข้อมูลจังหวัด {pl.province.name_th} ({province})", f"synthetic province {province}"), file=out)
    click.echo(bilingual(f"ช่วงข้อมูล {thai_date(first)} ถึง {thai_date(month_end(last))} ({len(pl.months)} เดือน)",
                         f"period {first:%Y-%m} .. {last:%Y-%m}"), file=out)
    if out_dir:
        click.echo(bilingual(f"เขียน {summary['zips']:,} ไฟล์ zip จาก {summary['facilities']} หน่วยบริการ ที่ {out_dir}",
                             f"{summary['zips']:,} zips from {summary['facilities']} facilities"), file=out)
        click.echo(bilingual(f"ครั้งบริการ {summary['encounters']:,} ครั้ง", f"{summary['encounters']:,} encounters"))
        for name, n in summary["rows"].items():
            if n:
                click.echo(f"  {name:<15} {n:>12,}")
        bad = {k: v for k, v in summary["defect_counts"].items() if v}
        if bad:
            click.echo(bilingual("ข้อผิดพลาดที่ใส่ไว้", "injected defects") + ": "
                       + ", ".join(f"{k}={v:,}" for k, v in bad.items()))
    if hdc_url:
        n = sum(summary["hdc"]["rows"].values())
        click.echo(bilingual(f"โหลดเข้าฐาน HDC แล้ว {n:,} แถว", f"loaded {n:,} rows into the HDC schema"))
    click.echo(bilingual(f"ใช้เวลา {summary['seconds']} วินาที", f"took {summary['seconds']} s"))
