"""``phrsync demo``: the whole main job on the embedded default, on one machine, with no server to install.

Each step uses the same public functions as the real commands, so a demo that works is evidence that
the product works: synthesize a province → import into staging → build and validate payloads →
(when available) send to the local MOPH-PHR server and reconcile.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from phrsync.thai import bilingual


def _step(title_th: str, title_en: str, quiet: bool) -> None:
    if not quiet:
        click.secho(f"\n▶ {bilingual(title_th, title_en)}", bold=True)


@click.command("demo")
@click.option("--encounters", "-n", type=click.IntRange(min=100), default=5_000, show_default=True,
              help="จำนวนครั้งบริการที่สร้าง / synthetic encounters to generate")
@click.option("--seed", type=int, default=1, show_default=True, help="ค่าเริ่มสุ่ม / random seed")
@click.option("--dirty", type=click.FloatRange(0, 1), default=0.01, show_default=True,
              help="สัดส่วนข้อมูลผิดที่ใส่เพื่อสาธิตการกักแถว / share of defective rows, to show quarantine")
@click.option("--data-dir", type=click.Path(file_okay=False), default="data/demo", show_default=True,
              help="โฟลเดอร์ข้อมูลของการสาธิต / folder for everything the demo writes")
@click.option("--json", "as_json", is_flag=True, help="ผลลัพธ์แบบ JSON / machine-readable summary")
@click.pass_context
def demo_cmd(ctx: click.Context, encounters: int, seed: int, dirty: float, data_dir: str, as_json: bool) -> None:
    """สาธิตงานหลักทั้งหมดบนเครื่องนี้ / run the whole main job locally on synthetic data.

    \b
    ขั้นตอน / steps: synth → import → build (→ sandbox → sync)
    """
    from phrsync.f43.importer import Importer
    from phrsync.f43.staging import Staging
    from phrsync.synth import SynthOptions
    from phrsync.synth.export import write_province

    root = Path(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"data_dir": str(root)}
    quiet = as_json

    _step("สร้างข้อมูล 43 แฟ้มสังเคราะห์ จ.สระแก้ว", "synthesize Sa Kaeo 43-file exports", quiet)
    t0 = time.perf_counter()
    exports = root / "exports"
    opts = SynthOptions(province="27", encounters=encounters, seed=seed, dirty=dirty)
    synth = write_province(opts, exports, 2)
    summary["synth"] = {"out": str(exports), "seconds": round(time.perf_counter() - t0, 1),
                        "zips": synth.get("zips"), "rows": synth.get("rows_total", synth.get("rows"))}
    if not quiet:
        click.echo(f"  {exports} ({summary['synth']['zips']} zip)")

    _step("นำเข้าที่พักข้อมูล (staging) พร้อมตรวจแถว", "import into staging with row checks", quiet)
    staging_path = root / "staging.duckdb"
    with Staging(staging_path) as st:
        rep = Importer(st).import_paths([exports])
    d = rep.as_dict()
    summary["import"] = {k: d[k] for k in ("rows_read", "rows_loaded", "rows_quarantined", "seconds")}
    summary["import"]["staging"] = str(staging_path)
    if not quiet:
        click.echo(f"  อ่าน/read {d['rows_read']:,} แถว/rows, ผ่าน/loaded {d['rows_loaded']:,}, "
                   f"กักไว้/quarantined {d['rows_quarantined']:,} ({d['seconds']:.1f} s)")
        for rule, v in sorted(d["quarantine_by_reason"].items(), key=lambda kv: -kv[1]["total"])[:8]:
            click.echo(f"    {v['total']:>6,}  {rule}: {v['reason_th']} / {v['reason_en']}")

    _step("สร้างและตรวจ payload MOPH-PHR (ยังไม่ส่ง) พร้อมรายงานคุณภาพข้อมูล",
          "build and validate MOPH-PHR payloads (dry run) with the data-quality report", quiet)
    from phrsync.phr.cli import build_cmd

    payloads, report = root / "payloads.ndjson", root / "report.html"
    out = _invoke(ctx, build_cmd, out=str(payloads), report=str(report), staging=str(staging_path),
                  facilities=(), date_from=None, date_to=None, only=(), workers=None, as_json=True)
    built = json.loads(out)
    summary["build"] = {k: built[k] for k in ("built", "refused", "skipped", "seconds", "encounters_per_second")}
    summary["build"].update(payloads=str(payloads), report=str(report))
    if not quiet:
        click.echo(f"  สร้าง/built {built['built']:,}, ปฏิเสธ/refused {built['refused']:,}, "
                   f"ข้าม/skipped {built['skipped']:,} ({built['seconds']:.1f} s)")
        click.echo(f"  {payloads}\n  {report}")

    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False, indent=2, default=str))
    else:
        click.secho("\n✔ " + bilingual("เสร็จ", "done"), bold=True)
        click.echo(bilingual("ดูแถวที่ถูกกัก", "see quarantined rows") +
                   f": phrsync quarantine summary --staging {staging_path}")


def _invoke(ctx: click.Context, cmd: click.Command, **params: Any) -> str:
    """Run another phrsync command as the user would, capturing what it prints (its --json output)."""
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        ctx.invoke(cmd, **params)
    return buf.getvalue()
