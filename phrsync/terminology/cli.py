"""``phrsync codes``: see which code tables exist, what is in them and where every code comes from."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from phrsync.terminology import tables as T


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


def _fail(msg: str, code: int) -> NoReturn:
    click.echo(msg, err=True)
    raise click.exceptions.Exit(code)


def _table_or_exit(name: str) -> T.CodeTable:
    """Load a table, turning unknown names and bad user files into a clear message and exit code 2."""
    try:
        return T.get_table(name)
    except KeyError as e:
        _fail(str(e.args[0]), 2)
    except T.CodeTableError as e:
        _fail(str(e), 2)


def source_summary(table: T.CodeTable, top: int = 5) -> list[tuple[str, int]]:
    """The most common row sources and how many rows each gives, so a reader sees the provenance mix."""
    return Counter(r.get("source", "") for r in table.rows).most_common(top)


def blank_counts(table: T.CodeTable) -> dict[str, int]:
    """Columns with empty cells and how many: where a partial table is partial."""
    out = {c: sum(1 for r in table.rows if not r.get(c)) for c in table.columns}
    return {c: n for c, n in out.items() if n}


@click.group("codes", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--dir", "codes_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="โฟลเดอร์ไฟล์รหัสของจังหวัด (แทน $PHRSYNC_CODES_DIR / [terminology] dir) / "
                   "override directory for code tables")
@click.pass_context
def codes_cmd(ctx: click.Context, codes_dir: Path | None) -> None:
    """ตารางรหัสและแหล่งที่มา / code tables and where each code comes from.

    \b
    แทนที่ตาราง: <dir>/<table>.csv    เพิ่มแถว: <dir>/<table>.extend.csv
    replace a table: <dir>/<table>.csv   add or override rows: <dir>/<table>.extend.csv
    """
    if codes_dir is not None:
        T.configure(codes_dir)
        return
    root = ctx.find_root().obj
    if isinstance(root, dict) and root.get("config") is not None:
        T.configure_from_config(root["config"])


@codes_cmd.command("list")
@click.option("--json", "as_json", is_flag=True, help="ผลลัพธ์แบบ JSON / machine-readable output")
def list_cmd(as_json: bool) -> None:
    """รายการตารางรหัสทั้งหมด / list every code table with its completeness and origin."""
    try:
        tables = T.list_tables()
    except T.CodeTableError as e:
        _fail(str(e), 2)
    d = T.override_dir()
    if as_json:
        _echo_json({"override_dir": str(d) if d else None, "tables": [t.to_dict() for t in tables]})
        return
    con = Console()
    grid = Table(title="ตารางรหัส / code tables", show_lines=False)
    for col in ("ตาราง / table", "ชื่อ / title", "แถว / rows", "ความครบ / completeness", "แหล่งที่มา / origin"):
        grid.add_column(col, overflow="fold")
    for t in tables:
        mark = f" ({t.override})" if t.override else ""
        grid.add_row(escape(t.name + mark), escape(f"{t.title_th}\n{t.title_en}"), str(len(t)),
                     f"{t.completeness_th}\n{t.completeness_en}", escape(t.origin))
    con.print(grid)
    con.print(f"โฟลเดอร์ไฟล์ของจังหวัด / override dir: {escape(str(d)) if d else '-'}")


@codes_cmd.command("show")
@click.argument("table")
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True,
              help="จำนวนแถวสูงสุด (0 = ทั้งหมด) / max rows (0 = all)")
@click.option("--json", "as_json", is_flag=True, help="ผลลัพธ์แบบ JSON / machine-readable output")
def show_cmd(table: str, limit: int, as_json: bool) -> None:
    """แสดงแถวของตาราง พร้อมแหล่งที่มา / show a table's rows with their sources."""
    t = _table_or_exit(table)
    rows = list(t.rows if limit == 0 else t.rows[:limit])
    if as_json:
        _echo_json({**t.to_dict(), "rows": rows, "shown": len(rows)})
        return
    con = Console()
    grid = Table(title=escape(f"{t.name}: {t.title_th} / {t.title_en}"))
    for c in t.columns:
        grid.add_column(escape(c), overflow="fold")
    for r in rows:
        grid.add_row(*(escape(r.get(c, "")) for c in t.columns))
    con.print(grid)
    con.print(f"แสดง {len(rows)} จาก {len(t)} แถว / showing {len(rows)} of {len(t)} rows")


@codes_cmd.command("lookup")
@click.argument("table")
@click.argument("code")
@click.option("--json", "as_json", is_flag=True, help="ผลลัพธ์แบบ JSON / machine-readable output")
def lookup_cmd(table: str, code: str, as_json: bool) -> None:
    """หารหัสหนึ่งรหัส พร้อมแหล่งที่มา / look up one code and show where it comes from.

    \b
    คีย์หลายคอลัมน์ใช้ ':' / composite keys use ':', e.g. ncd_screen SMOKE:1
    """
    t = _table_or_exit(table)
    row = t.get(code)
    if row is None:
        if as_json:
            _echo_json({"table": t.name, "code": code, "found": False})
        _fail(f"ไม่พบรหัส '{code}' ในตาราง {t.name} (คีย์: {t.key_label}) / code '{code}' not found in "
              f"{t.name} (key: {t.key_label})", 1)
    if as_json:
        _echo_json({"table": t.name, "code": code, "found": True, "row": row})
        return
    con = Console()
    grid = Table(title=escape(f"{t.name} {code}"), show_header=False)
    grid.add_column("field", style="bold")
    grid.add_column("value", overflow="fold")
    for c in t.columns:
        grid.add_row(escape(c), escape(row.get(c, "")))
    con.print(grid)


def explain_data(t: T.CodeTable) -> dict[str, Any]:
    """The facts ``codes explain`` prints, as data (also used by the JSON output)."""
    d = T.override_dir()
    where = str(d) if d else "<dir>"
    return {
        **t.to_dict(),
        "completeness_th": t.completeness_th,
        "completeness_en": t.completeness_en,
        "top_sources": [{"source": s, "rows": n} for s, n in source_summary(t)],
        "blank_cells": blank_counts(t),
        "override_how": {
            "replace": f"{where}/{t.name}.csv",
            "extend": f"{where}/{t.name}{T.EXTEND_SUFFIX}",
            "key_columns": list(t.key),
        },
    }


@codes_cmd.command("explain")
@click.argument("table")
@click.option("--json", "as_json", is_flag=True, help="ผลลัพธ์แบบ JSON / machine-readable output")
def explain_cmd(table: str, as_json: bool) -> None:
    """ตารางนี้มาจากไหน ครบแค่ไหน ต้องแทนด้วยอะไร / where a table comes from, how complete, what replaces it."""
    t = _table_or_exit(table)
    info = explain_data(t)
    if as_json:
        _echo_json(info)
        return
    con = Console()
    con.print(f"[bold]{escape(t.name)}[/bold]: {escape(t.title_th)} / {escape(t.title_en)}")
    lines = [
        ("คีย์ / key", t.key_label + (f" (หรือ / or {t.alt_key})" if t.alt_key else "")),
        ("จำนวนแถว / rows", str(len(t))),
        ("ความครบ / completeness", f"{t.completeness_th} / {t.completeness_en}"),
        ("สรุป / summary (th)", t.note_th or "-"),
        ("รายละเอียด / detail", t.completeness_note),
        ("แหล่งที่มา / origin", t.origin),
        ("ใช้งานจริงต้องใช้ / production must use", t.production),
        ("ไฟล์ที่อ่าน / files read", ", ".join(str(f) for f in t.files)),
        ("แก้ไขโดยจังหวัด / override", t.override or "-"),
    ]
    for label, value in lines:
        con.print(f"[bold]{label}:[/bold] {escape(value)}", soft_wrap=True)
    con.print("[bold]แหล่งที่มาของแถว / row sources:[/bold]")
    for s, n in source_summary(t):
        con.print(f"  {n:>4} × {escape(s)}", soft_wrap=True)
    blanks = blank_counts(t)
    if blanks:
        con.print("[bold]ช่องว่าง (ไม่ทราบค่า) / blank cells:[/bold] "
                  + escape(", ".join(f"{c} {n}" for c, n in blanks.items())), soft_wrap=True)
    how = info["override_how"]
    con.print(f"[bold]แทนที่ทั้งตาราง / replace:[/bold] {escape(how['replace'])}  "
              f"[bold]เพิ่ม/แก้แถว / extend:[/bold] {escape(how['extend'])} (คีย์ / key: {escape(t.key_label)})",
              soft_wrap=True)


# ---- the store of imported codes: TMT releases, drug masters, reviewed mappings --------------------------------

_STORE_HELP = "ฐานรหัสที่นำเข้า (แทน [terminology] store, ค่าตั้งต้น <data_dir>/codes.sqlite) / the code store file"
_JSON_HELP = "ผลลัพธ์แบบ JSON / machine-readable output"


def store_path_for(ctx: click.Context, given: Path | None) -> Path:
    """``--store``, else ``[terminology] store`` (relative to the config file's folder), else
    ``<data_dir>/codes.sqlite``."""
    if given is not None:
        return given
    from phrsync.config import config_from_context
    from phrsync.terminology.codestore import config_store_path

    return config_store_path(config_from_context(ctx))


def _print_issues(con: Console, issues: Any, shown: int = 20) -> None:
    if not issues.count:
        return
    con.print(f"[bold]แถวที่มีปัญหา / bad rows:[/bold] {issues.count:,}")
    for i in issues.rows[:shown]:
        con.print(f"  {escape(i.text)}", soft_wrap=True)
    if issues.count > shown:
        con.print(f"  … อีก {issues.count - shown:,} แถว (ดู --json) / {issues.count - shown:,} more (see --json)")


@codes_cmd.command("import-tmt")
@click.argument("zip_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--store", "store_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=_STORE_HELP)
@click.option("--allow-older", is_flag=True, help="ยอมให้นำเข้ารุ่นที่เก่ากว่ารุ่นปัจจุบัน / accept an older release")
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@click.pass_context
def import_tmt_cmd(ctx: click.Context, zip_file: Path, store_file: Path | None, allow_older: bool,
                   as_json: bool) -> None:
    """นำเข้า TMT รุ่น TMTRFyyyymmdd.zip ของ สมสส. (THIS) / import a TMT release zip.

    \b
    แทนที่แนวคิดและความสัมพันธ์ทั้งหมดด้วยรุ่นนี้ (ในธุรกรรมเดียว) / replaces every concept and relationship
    exit 1 = นำเข้าแล้วแต่มีแถวที่ใช้ไม่ได้ / imported, some rows left out
    """
    import time

    from phrsync.terminology.codestore import CodeStore
    from phrsync.terminology.tmtimport import import_tmt
    from phrsync.thai import be_date

    path = store_path_for(ctx, store_file)
    last = [0.0]

    def progress(name: str, rows: int) -> None:
        now = time.monotonic()
        if not as_json and now - last[0] > 1.0:
            last[0] = now
            click.echo(f"… {name}: {rows:,} แถว / rows", err=True)

    with CodeStore(path) as store:
        res = import_tmt(store, zip_file, allow_older=allow_older, progress=progress)
    if as_json:
        _echo_json({**res.to_dict(), "store": str(path)})
    else:
        import datetime as dt

        con = Console()
        d = dt.date.fromisoformat(res.release_date)
        con.print(f"[bold]{escape(res.release)}[/bold] ({be_date(d)}) → {escape(str(path))}")
        con.print("แนวคิด / concepts: " + ", ".join(f"{k} {v:,}" for k, v in res.concepts.items()))
        con.print("ความสัมพันธ์ / relationships: " + ", ".join(f"{k} {v:,}" for k, v in res.relationships.items()))
        if res.replaced:
            con.print(f"แทนที่รุ่น / replaced: {escape(res.replaced)}")
        for s in res.skipped_files:
            con.print(f"ข้าม / skipped: {escape(s['file'])} — {escape(s['reason'])}", soft_wrap=True)
        for w in res.warnings:
            con.print(f"[yellow]{escape(w)}[/yellow]", soft_wrap=True)
        _print_issues(con, res.issues)
    if res.issues.count:
        raise click.exceptions.Exit(1)


@codes_cmd.command("import-drugs")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", required=True,
              type=click.Choice(["nhso-catalogue", "jhcis-cdrug", "hosxp-drugitems", "hospitalos", "csv"]),
              help="รูปแบบไฟล์ / the file's layout (docs/codes.md)")
@click.option("--facility", default=None, help="รหัสหน่วยบริการ 5 หลัก (ไม่ระบุ = ทั้งจังหวัด; jhcis/hosxp/hospitalos ต้องระบุ) / "
                                               "5-character facility code (none = province-wide)")
@click.option("--store", "store_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=_STORE_HELP)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@click.pass_context
def import_drugs_cmd(ctx: click.Context, file: Path, fmt: str, facility: str | None, store_file: Path | None,
                     as_json: bool) -> None:
    """นำเข้าบัญชียาของหน่วยบริการ (รหัสยา → TMT) / import a facility drug master (drug code → TMT).

    \b
    nhso-catalogue  บัญชียาโรงพยาบาลที่ส่ง สปสช. / the NHSO Drug Catalogue (HospDrugCode, TMTID, NDC24 ...)
    jhcis-cdrug     ตาราง cdrug ของ JHCIS (drugcode, drugcode24, tmtcode, drugname)
    hosxp-drugitems ตาราง drugitems ของ HOSxP (icode, did, tmt_tp_code, name)
    hospitalos      b_nhso_map_drug ของ HospitalOS + b_item, b_map_drug_tmt (item_number, f_nhso_drug_id,
                    b_drug_tmt_tpucode, item_common_name)
    csv             code, did24, tmtid, name [, hcode, source]
    แทนที่แถวเดิมของหน่วยบริการนั้น / replaces that facility's earlier rows; exit 1 = some rows left out
    """
    from phrsync.terminology.codestore import CodeStore
    from phrsync.terminology.drugimport import import_drugs

    path = store_path_for(ctx, store_file)
    with CodeStore(path) as store:
        res = import_drugs(store, file, fmt, facility)
    if as_json:
        _echo_json({**res.to_dict(), "store": str(path)})
    else:
        con = Console()
        for h, n in res.rows.items():
            con.print(f"{escape(h or 'ทั้งจังหวัด / province-wide')}: {n:,} รายการ / rows"
                      + (f" (คงรายการที่ตรวจทานแล้ว / kept reviewed {res.kept_reviewed[h]})"
                         if h in res.kept_reviewed else ""))
        con.print(f"มีรหัส TMT / with a TMT ID: {res.with_tmt:,}; มีรหัส 24 หลัก / with a 24-digit code: "
                  f"{res.with_did24:,}; ลบ (D) / deleted: {res.deleted:,}; ซ้ำ / repeated: {res.repeated:,}")
        con.print(f"แหล่งที่มา / source: {escape(res.source)}", soft_wrap=True)
        for w in res.warnings:
            con.print(f"[yellow]{escape(w)}[/yellow]", soft_wrap=True)
        _print_issues(con, res.issues)
    if res.issues.count:
        raise click.exceptions.Exit(1)


@codes_cmd.command("import-labs")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--facility", default=None, help="รหัสหน่วยบริการ 5 หลัก (ไม่ระบุ = คอลัมน์ hcode หรือทั้งจังหวัด) / "
                                               "5-character facility code (none = the hcode column, else province-wide)")
@click.option("--store", "store_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=_STORE_HELP)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@click.pass_context
def import_labs_cmd(ctx: click.Context, file: Path, facility: str | None, store_file: Path | None,
                    as_json: bool) -> None:
    """นำเข้ารหัสแล็บของหน่วยบริการ (รหัสแล็บ → รหัสมาตรฐาน/LOINC) / import a facility's lab codes (→ lab_loinc).

    \b
    คอลัมน์ / columns (CSV, tab, .xlsx, .xls; docs/codes.md):
    code     รหัสแล็บของหน่วยบริการ (LABFU.LABTEST) / the facility's lab code (required)
    labtest  รหัสแล็บมาตรฐาน 7 หลัก หรือ 2 หลัก ของ lab_loinc / the standard lab code
    loinc    หรือ LOINC (เมื่อ labtest ว่าง) / or its LOINC when labtest is blank
    name     ชื่อแล็บ (มีแต่ชื่อ = ใช้เป็นข้อเสนอใน codes unmapped) / the name (name only = for suggestions)
    hcode    หน่วยบริการ (ว่าง = --facility หรือทั้งจังหวัด) / facility (blank = --facility or province-wide)
    แทนที่แถวเดิมของหน่วยบริการนั้น / replaces that facility's earlier rows; exit 1 = some rows left out
    """
    from phrsync.terminology.codestore import CodeStore
    from phrsync.terminology.labimport import import_labs

    path = store_path_for(ctx, store_file)
    with CodeStore(path) as store:
        res = import_labs(store, file, facility)
    if as_json:
        _echo_json({**res.to_dict(), "store": str(path)})
    else:
        con = Console()
        for h, n in res.rows.items():
            con.print(f"{escape(h or 'ทั้งจังหวัด / province-wide')}: {n:,} รายการ / rows"
                      + (f" (คงรายการที่ตรวจทานแล้ว / kept reviewed {res.kept_reviewed[h]})"
                         if h in res.kept_reviewed else ""))
        con.print(f"มีแต่ชื่อ (ยังไม่จับคู่) / names only (not mapped): {res.names_only:,}; "
                  f"ซ้ำ / repeated: {res.repeated:,}")
        con.print(f"แหล่งที่มา / source: {escape(res.source)}", soft_wrap=True)
        for w in res.warnings:
            con.print(f"[yellow]{escape(w)}[/yellow]", soft_wrap=True)
        _print_issues(con, res.issues)
    if res.issues.count:
        raise click.exceptions.Exit(1)


@codes_cmd.command("store")
@click.option("--store", "store_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=_STORE_HELP)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@click.pass_context
def store_cmd(ctx: click.Context, store_file: Path | None, as_json: bool) -> None:
    """ฐานรหัสที่นำเข้ามีอะไรบ้าง / what the code store holds (TMT release, drug masters, lab maps)."""
    from phrsync.terminology.codestore import CodeStore

    path = store_path_for(ctx, store_file)
    with CodeStore(path, create=False) as store:
        info = {**store.counts(), "releases": store.releases()}
    if as_json:
        _echo_json(info)
        return
    import datetime as dt

    from phrsync.thai import be_date

    con = Console()
    con.print(f"[bold]ฐานรหัส / code store:[/bold] {escape(str(path))}")
    for r in info["releases"]:
        con.print(f"TMT {escape(r['release'])} ({be_date(dt.date.fromisoformat(r['release_date']))}): "
                  f"{r['concepts']:,} แนวคิด / concepts, {r['relationships']:,} ความสัมพันธ์ / relationships")
    if not info["releases"]:
        con.print("ยังไม่ได้นำเข้า TMT / no TMT release imported")
    for h, n in sorted(info["drug_master"].items()):
        con.print(f"บัญชียา / drug master {escape(h or 'ทั้งจังหวัด / province-wide')}: {n:,}")
    for h, n in sorted(info["lab_map"].items()):
        con.print(f"รหัสแล็บ / lab map {escape(h or 'ทั้งจังหวัด / province-wide')}: {n:,}")


@codes_cmd.command("unmapped")
@click.option("--build", "build_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="ไฟล์จาก phrsync build (ค่าตั้งต้น [delivery].input หรือ <data_dir>/payloads.ndjson) / the build file")
@click.option("--kind", type=click.Choice(["drug", "allergy", "lab"]), default=None, help="ชนิดรหัส / kind of code")
@click.option("--facility", default=None, help="รหัสหน่วยบริการ / facility code")
@click.option("--limit", type=click.IntRange(min=0), default=100, show_default=True, help="0 = ทั้งหมด / all")
@click.option("--store", "store_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=_STORE_HELP)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@click.pass_context
def unmapped_cmd(ctx: click.Context, build_file: Path | None, kind: str | None, facility: str | None, limit: int,
                 store_file: Path | None, as_json: bool) -> None:
    """รหัสที่ build จับคู่ไม่ได้ เรียงตามจำนวนที่รอ พร้อมข้อเสนอจากชื่อ / codes the build could not map.

    \b
    คะแนน / score 0–1: คำที่ตรงกันของชื่อ (Dice) 1 = คำเหมือนกัน, ≥ 0.6 มักเป็นยาเดียวกัน
    / shared words of the two names (Dice); 1 = the same words, ≥ 0.6 usually the same drug
    ยอมรับ / accept: phrsync codes accept KIND HCODE CODE TMTID --reviewer NAME
    """
    from phrsync.errors import NotFoundError
    from phrsync.phr.buildfile import read_summary
    from phrsync.terminology.codestore import CodeStore
    from phrsync.terminology.review import unmapped

    if build_file is None:
        from phrsync.config import config_from_context
        from phrsync.delivery.config import default_input

        build_file = default_input(config_from_context(ctx))
    summary = read_summary(build_file)
    if summary is None:
        raise NotFoundError(f"ไม่พบสรุปผลของ {build_file} (รัน phrsync build ใหม่)",
                            f"no current summary for {build_file} (run phrsync build again)")
    with CodeStore(store_file_path := store_path_for(ctx, store_file)) as store:
        rows = unmapped(summary, store, kind=kind, hcode=facility, limit=limit)
    if as_json:
        _echo_json({"build": str(build_file), "store": str(store_file_path), "rows": [r.to_dict() for r in rows]})
        return
    con = Console()
    if not rows:
        con.print("ไม่มีรหัสที่รอการจับคู่ / no unmapped codes")
        return
    grid = Table(title="รหัสที่ยังจับคู่ไม่ได้ / unmapped codes")
    for col in ("ชนิด / kind", "หน่วยบริการ / facility", "รหัส / code", "ชื่อ / name", "รอ / waiting",
                "payloads", "ข้อเสนอ / suggestions (score)"):
        grid.add_column(col, overflow="fold")
    for r in rows:
        sug = "\n".join(f"{s.code} {s.level} {s.name} ({s.score:.2f})" for s in r.suggestions) or "-"
        grid.add_row(r.kind, r.hcode, escape(r.code), escape(r.name or "-"), f"{r.waiting:,}", f"{r.payloads:,}",
                     escape(sug))
    con.print(grid)


@codes_cmd.command("accept")
@click.argument("kind", type=click.Choice(["drug", "allergy", "lab"]))
@click.argument("hcode")
@click.argument("code")
@click.argument("tmtid")
@click.option("--reviewer", required=True, help="ชื่อผู้ตรวจทาน (บันทึกในแหล่งที่มา) / who reviewed it (kept as the source)")
@click.option("--store", "store_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=_STORE_HELP)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@click.pass_context
def accept_cmd(ctx: click.Context, kind: str, hcode: str, code: str, tmtid: str, reviewer: str,
               store_file: Path | None, as_json: bool) -> None:
    """บันทึกการจับคู่ที่ตรวจทานแล้ว / record a reviewed mapping.

    \b
    drug/allergy: รหัสยาของหน่วยบริการ → รหัส TMT / a facility drug code → a TMT ID of the imported release
    lab:          รหัสแล็บของหน่วยบริการ → รหัสในตาราง lab_loinc / a facility lab code → a lab_loinc code
    HCODE * = ทั้งจังหวัด / province-wide
    """
    from phrsync.terminology.codestore import CodeStore
    from phrsync.terminology.review import accept

    with CodeStore(store_path_for(ctx, store_file)) as store:
        row = accept(store, kind, hcode, code, tmtid, reviewer)
    if as_json:
        _echo_json(row)
        return
    target = row.get("tmtid") or row.get("labcode")
    click.echo(f"บันทึกแล้ว / recorded: {kind} {row['hcode'] or '*'} {row['code']} → {target} {row.get('name', '')}"
               f" ({row['source']})")
