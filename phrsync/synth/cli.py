"""``phrsync synth``: write a synthetic province as 43-file zips (and optionally into an HDC schema)."""

from __future__ import annotations

import json
import sys

import click

from phrsync.thai import bilingual, thai_date


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
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from phrsync.synth.api import synthesize
    from phrsync.synth.clock import month_end
    from phrsync.synth.generator import SynthOptions

    opts = SynthOptions(province=province, encounters=encounters, seed=seed, dirty=dirty, start=start, months=months)
    prog = Progress(TextColumn("สร้างข้อมูล / generating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=True, disable=as_json or not sys.stderr.isatty())
    task = prog.add_task("synth", total=None)

    def progress(done: int, total: int) -> None:  # facilities written
        prog.update(task, completed=done, total=total)

    with prog:
        res = synthesize(opts, out_dir, hdc_url, workers=workers, progress=progress)
    if as_json:
        click.echo(json.dumps(res.to_dict(), ensure_ascii=False, indent=1))
        return
    first, last = res.first_month, res.last_month
    click.echo(bilingual(f"สร้างข้อมูลจังหวัด {res.province_name} ({province})", f"synthetic province {province}"))
    click.echo(bilingual(f"ช่วงข้อมูล {thai_date(first)} ถึง {thai_date(month_end(last))} ({res.months} เดือน)",
                         f"period {first:%Y-%m} .. {last:%Y-%m}"))
    z = res.zips
    if z is not None:
        click.echo(bilingual(f"เขียน {z['zips']:,} ไฟล์ zip จาก {z['facilities']} หน่วยบริการ ที่ {out_dir}",
                             f"{z['zips']:,} zips from {z['facilities']} facilities"))
        click.echo(bilingual(f"ครั้งบริการ {z['encounters']:,} ครั้ง", f"{z['encounters']:,} encounters"))
        for name, n in z["rows"].items():
            if n:
                click.echo(f"  {name:<15} {n:>12,}")
        bad = {k: v for k, v in z["defect_counts"].items() if v}
        if bad:
            click.echo(bilingual("ข้อผิดพลาดที่ใส่ไว้", "injected defects") + ": "
                       + ", ".join(f"{k}={v:,}" for k, v in bad.items()))
        codes = z.get("codes")
        if codes:
            click.echo(bilingual(f"รหัสยาสังเคราะห์ ({codes['drugs']} รายการ) ที่ {codes['dir']}",
                                 f"synthetic drug codes ({codes['drugs']} drugs) in {codes['dir']}") + ": "
                       + f"{codes['tmt_zip']}, {codes['catalogue']}")
    if res.hdc is not None:
        n = sum(res.hdc["rows"].values())
        click.echo(bilingual(f"โหลดเข้าฐาน HDC แล้ว {n:,} แถว", f"loaded {n:,} rows into the HDC schema"))
    click.echo(bilingual(f"ใช้เวลา {round(res.seconds, 2)} วินาที", f"took {round(res.seconds, 2)} s"))
