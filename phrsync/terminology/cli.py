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
