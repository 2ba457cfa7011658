"""``phrsync import``, ``phrsync quarantine`` and ``phrsync staging``."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from phrsync.config import config_from_context
from phrsync.f43 import api
from phrsync.f43.importer import ImportReport
from phrsync.thai import bilingual

err = Console(stderr=True)
HDC_ENV = "PHRSYNC_HDC_URL"
_HDC_FROM_ENV = "\x00env"  # the value of a bare --hdc: take the URL from HDC_ENV


def _staging_path(ctx: click.Context, staging: str | None) -> Path:
    return Path(staging) if staging else config_from_context(ctx).staging


def _parse_since(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y%m%d", "%Y%m%d%H%M%S"):
        try:
            return dt.datetime.strptime(value, fmt)
        except ValueError:
            continue
    raise click.BadParameter(f"วันที่ไม่ถูกต้อง / not a date: {value} (YYYY-MM-DD)")


def _parse_date(value: str | None) -> dt.date | None:
    d = _parse_since(value)
    return d.date() if d else None


@click.command("import")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--hdc", "hdc_url", metavar="[URL]", envvar=HDC_ENV, is_flag=False, flag_value=_HDC_FROM_ENV,
              help="นำเข้าจากฐานข้อมูล HDC; --hdc เฉยๆ ใช้ URL จาก PHRSYNC_HDC_URL (URL ที่มีรหัสผ่านใส่ในบรรทัดคำสั่งไม่ได้) "
                   "/ read the HDC MySQL/MariaDB database; --hdc alone takes the URL from PHRSYNC_HDC_URL (a URL with a "
                   "password is refused on the command line: other users see it in ps)")
@click.option("--since", help="(HDC) เฉพาะแถวที่ D_UPDATE ตั้งแต่วันนี้ / (HDC) only rows changed since (YYYY-MM-DD)")
@click.option("--from", "date_from", help="(HDC) วันที่รับบริการเริ่ม / (HDC) first service date (YYYY-MM-DD)")
@click.option("--to", "date_to", help="(HDC) วันที่รับบริการสุดท้าย / (HDC) last service date (YYYY-MM-DD)")
@click.option("--facility", "facilities", multiple=True,
              help="(HDC) รหัสหน่วยบริการ / (HDC) facility code(s) to read")
@click.option("--staging", type=click.Path(), help="ไฟล์ staging (ค่าตั้งต้น data/staging.duckdb) / staging store file")
@click.option("--force", is_flag=True, help="นำเข้าซ้ำแม้เคยนำเข้าแล้ว / re-read exports already imported")
@click.option("--json", "as_json", is_flag=True, help="ผลลัพธ์เป็น JSON / machine-readable summary")
@click.pass_context
def import_cmd(ctx: click.Context, paths: tuple[str, ...], hdc_url: str | None, since: str | None,
               date_from: str | None, date_to: str | None, facilities: tuple[str, ...], staging: str | None,
               force: bool, as_json: bool) -> None:
    """นำเข้า 43 แฟ้ม (zip/โฟลเดอร์/HDC) เข้าที่พักข้อมูล / import 43-file exports into staging.

    \b
    PATHS: ไฟล์ zip ต่อหน่วยบริการ, ไฟล์ .txt ของแฟ้มหนึ่ง, โฟลเดอร์ของไฟล์ .txt หรือโฟลเดอร์ของ zip
           zips (one per facility), one 43-file .txt, folders of .txt files, or folders of zips.
    แถวที่ผิดจะถูกกักไว้ (quarantine) พร้อมเหตุผล แถวที่ถูกต้องนำเข้าตามปกติ
    Bad rows are quarantined with their reason; every good row still loads.
    แฟ้มที่นำเข้าไม่ได้ (zip เสีย เกินเพดาน [import] ผิดทั้งแฟ้ม) ถูกรายงาน แฟ้มอื่นนำเข้าตามปกติ และรหัสออกเป็น 1
    A file that did not load (a broken zip, over an [import] limit, all garbage) is reported, the others load,
    and the exit code is 1.

    \b
    ตัวอย่าง / examples:
      phrsync import exports/
      export PHRSYNC_HDC_URL='mysql+pymysql://hdc:***@10.0.0.5/hdc'
      phrsync import --hdc --since 2025-10-01
    """
    hdc_url = _hdc_url(ctx, hdc_url, paths)
    with _progress(as_json) as progress:
        task = progress.add_task("นำเข้า / importing", total=None)

        def tick(label: str, done: int, total: int) -> None:
            progress.update(task, completed=done, total=total or None, description=f"นำเข้า / importing {label}")

        report = api.import_sources(_staging_path(ctx, staging), paths, hdc_url=hdc_url, since=_parse_since(since),
                                    date_from=_parse_date(date_from), date_to=_parse_date(date_to),
                                    facilities=facilities, force=force, progress=tick,
                                    limits=config_from_context(ctx).settings.import_)
    _print_report(report, as_json)
    ctx.exit(int(report.exit_code))


def _hdc_url(ctx: click.Context, value: str | None, paths: tuple[str, ...]) -> str | None:
    """The HDC URL to read, if any. A password typed on the command line is refused: any local user reads it in
    ``ps`` (``--hdc "$PHRSYNC_HDC_URL"`` expands it there too), so ``--hdc`` alone takes the URL from the
    environment. An exported PHRSYNC_HDC_URL does not override PATHS given to the same command."""
    source = ctx.get_parameter_source("hdc_url")
    if value == _HDC_FROM_ENV:
        url = config_from_context(ctx).env.HDC_URL
        value = url.get_secret_value() if url else None
        if not value:
            raise click.UsageError(bilingual(f"--hdc ไม่มี URL: ตั้ง {HDC_ENV}", f"--hdc without a URL: set {HDC_ENV}"))
    elif value and source == ParameterSource.COMMANDLINE and _has_password(value):
        raise click.UsageError(bilingual(
            f"ห้ามใส่รหัสผ่านในบรรทัดคำสั่ง (ผู้ใช้อื่นเห็นใน ps): ตั้ง {HDC_ENV} แล้วใช้ --hdc เฉยๆ",
            f"no password on the command line (other users see it in ps): set {HDC_ENV} and give --hdc alone"))
    elif value and source == ParameterSource.ENVIRONMENT and paths:
        return None
    return value


def _has_password(url: str) -> bool:
    """True when ``url`` carries a password (``user:secret@host``), parsed or not."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).password is not None
    except ArgumentError:
        return re.search(r"//[^:/@]*:[^@]*@", url) is not None


class _NullProgress:
    def __enter__(self) -> _NullProgress:
        return self

    def __exit__(self, *a: object) -> None:
        pass

    def add_task(self, *a: Any, **k: Any) -> int:
        return 0

    def update(self, *a: Any, **k: Any) -> None:
        pass


def _progress(quiet: bool) -> Any:
    if quiet or not err.is_terminal:
        return _NullProgress()
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=True)


def _print_report(report: ImportReport, as_json: bool) -> None:
    d = report.to_dict()
    if as_json:
        click.echo(json.dumps(d, ensure_ascii=False, indent=2))
        return
    out = Console()
    rate = d["rows_read"] / d["seconds"] if d["seconds"] else 0
    out.print(f"[bold]นำเข้าเสร็จ / import {d['import_id']} done[/bold]: {d['sources']} แหล่ง/sources "
              f"(ข้าม/skipped {d['sources_skipped_already_imported']} ที่เคยนำเข้าแล้ว/already imported), "
              f"{d['rows_read']:,} แถว/rows in {d['seconds']:.1f} s ({rate:,.0f} rows/s)")
    t = Table(title="ต่อแฟ้ม / per file")
    for col in ("แฟ้ม/file", "อ่าน/read", "ผ่าน/loaded", "กักไว้/quarantined", "เตือน/warnings",
                "ใหม่/new", "แทนที่/replaced", "ไม่เปลี่ยน/unchanged"):
        t.add_column(col, justify="right" if col != "แฟ้ม/file" else "left")
    for name, s in d["files"].items():
        t.add_row(name, *(f"{s[k]:,}" for k in ("read", "accepted", "quarantined", "warnings", "inserted",
                                                 "replaced", "unchanged")))
    out.print(t)
    if d["quarantine_by_reason"]:
        r = Table(title="เหตุผล / reasons")
        for col in ("กฎ/rule", "ระดับ/severity", "จำนวน/count", "เหตุผล/reason"):
            r.add_column(col)
        for rule, v in sorted(d["quarantine_by_reason"].items(), key=lambda kv: -kv[1]["total"]):
            r.add_row(rule, v["severity"], f"{v['total']:,}", escape(f"{v['reason_th']} / {v['reason_en']}"))
        out.print(r)
        out.print("ดูรายละเอียด / details: [bold]phrsync quarantine list[/bold]")
    if d["not_imported"]:
        n = Table(title="ไม่ได้นำเข้า / not imported")
        for col in ("แหล่ง/source", "กฎ/rule", "เหตุผล/reason"):
            n.add_column(col)
        for e in d["not_imported"]:
            n.add_row(escape(e["source"]), e["rule"], escape(f"{e['reason_th']} / {e['reason_en']}"))
        out.print(n)
        out.print(f"[bold red]{len(d['not_imported']):,} แฟ้มไม่ได้นำเข้า รหัสออก {d['exit_code']} / "
                  f"{len(d['not_imported']):,} file(s) not imported: exit {d['exit_code']}[/bold red]")


@click.group("quarantine")
def quarantine_cmd() -> None:
    """แถวที่ถูกกักไว้และเหตุผล / quarantined rows and their reasons."""


@quarantine_cmd.command("list")
@click.option("--facility", help="รหัสหน่วยบริการ / facility code")
@click.option("--file", "file_", help="ชื่อแฟ้ม เช่น SERVICE / 43-file name")
@click.option("--rule", help="รหัสกฎ เช่น cid_checksum / rule code")
@click.option("--severity", type=click.Choice(["error", "warning"]), help="ระดับ / severity")
@click.option("--limit", default=50, show_default=True, help="จำนวนแถวสูงสุด / max rows")
@click.option("--staging", type=click.Path(), help="ไฟล์ staging / staging store file")
@click.option("--json", "as_json", is_flag=True, help="ผลลัพธ์เป็น JSON / machine-readable")
@click.pass_context
def quarantine_list(ctx: click.Context, facility: str | None, file_: str | None, rule: str | None,
                    severity: str | None, limit: int, staging: str | None, as_json: bool) -> None:
    """รายการที่ถูกกัก: แฟ้ม บรรทัด ช่อง ค่า (ปิดบังข้อมูลส่วนบุคคล) เหตุผล / entries with file, line, field, masked value, reason."""
    rows = api.quarantine_list(_staging_path(ctx, staging), facility=facility, file=file_, rule=rule,
                               severity=severity, limit=limit)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in rows], ensure_ascii=False, indent=2))
        return
    t = Table()
    for col in ("หน่วย/facility", "แหล่ง/source", "บรรทัด/line", "ช่อง/field", "ค่า/value", "เหตุผล/reason"):
        t.add_column(col)
    for r in rows:
        t.add_row(r.hospcode, escape(r.source), str(r.line), r.field, escape(r.value),
                  escape(f"{r.reason_th} / {r.reason_en}"))
    Console().print(t)


@quarantine_cmd.command("summary")
@click.option("--facility", help="รหัสหน่วยบริการ / facility code")
@click.option("--staging", type=click.Path(), help="ไฟล์ staging / staging store file")
@click.option("--json", "as_json", is_flag=True, help="ผลลัพธ์เป็น JSON / machine-readable")
@click.pass_context
def quarantine_summary(ctx: click.Context, facility: str | None, staging: str | None, as_json: bool) -> None:
    """จำนวนที่ถูกกักต่อหน่วยบริการ แฟ้ม และเหตุผล / counts per facility, file and rule."""
    rows = api.quarantine_summary(_staging_path(ctx, staging), facility=facility)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in rows], ensure_ascii=False, indent=2))
        return
    t = Table()
    for col in ("หน่วย/facility", "แฟ้ม/file", "กฎ/rule", "ระดับ/severity", "จำนวน/count"):
        t.add_column(col)
    for r in rows:
        t.add_row(r.hospcode, r.file, r.rule, r.severity, f"{r.count:,}")
    Console().print(t)


@click.command("staging")
@click.option("--staging", type=click.Path(), help="ไฟล์ staging / staging store file")
@click.option("--json", "as_json", is_flag=True, help="ผลลัพธ์เป็น JSON / machine-readable")
@click.pass_context
def staging_cmd(ctx: click.Context, staging: str | None, as_json: bool) -> None:
    """จำนวนแถวในที่พักข้อมูลต่อแฟ้ม / rows in the staging store per file."""
    summary = api.staging_summary(_staging_path(ctx, staging))
    if as_json:
        click.echo(json.dumps(summary.to_dict(), ensure_ascii=False, indent=2))
        return
    t = Table(title="ที่พักข้อมูล / staging")
    t.add_column("แฟ้ม/file")
    t.add_column("แถว/rows", justify="right")
    for k, v in summary.rows.items():
        t.add_row(k, f"{v:,}")
    Console().print(t)
