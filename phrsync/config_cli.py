"""``phrsync config``: the effective configuration, secrets masked, and where each value came from."""

from __future__ import annotations

import json

import click

from phrsync.config import config_from_context, effective


@click.command("config")
@click.option("--json", "as_json", is_flag=True, help="ผลลัพธ์แบบ JSON / machine-readable output")
@click.option("--all", "show_all", is_flag=True, help="แสดงค่าตั้งต้นทั้งหมดด้วย / also list settings left at "
                                                    "their default")
@click.pass_context
def config_cmd(ctx: click.Context, as_json: bool, show_all: bool) -> None:
    """ค่าตั้งที่ใช้จริง (ปิดบังความลับ) และที่มาของแต่ละค่า / the effective settings and where each came from.

    \b
    ค่าทั้งหมดและความหมาย: docs/settings.md / every setting and its meaning: docs/settings.md
    """
    cfg = config_from_context(ctx)
    entries = effective(cfg)
    if as_json:
        click.echo(json.dumps({"file": str(cfg.source) if cfg.source else None,
                               "settings": [e.to_dict() for e in entries]}, ensure_ascii=False, indent=1,
                              default=str))
        return
    click.echo(f"ไฟล์ตั้งค่า / configuration file: {cfg.source or '(ไม่มี ใช้ค่าตั้งต้น / none: defaults)'}")
    default = "ค่าตั้งต้น / default"
    shown = [e for e in entries if show_all or e.source != default]
    width = max((len(e.key) for e in shown), default=10)
    for e in shown:
        value = "-" if e.value is None else e.value
        click.echo(f"  {e.key:<{width}}  {value}    ← {e.source}")
    hidden = len(entries) - len(shown)
    if hidden:
        click.echo(f"(อีก {hidden} ค่าเป็นค่าตั้งต้น ดูด้วย --all / {hidden} more at their defaults: --all)")
