"""``phrsync web``: serve the province's monitoring site, and manage its accounts. Each command parses its
options, calls one function of :mod:`phrsync.web.server` or :class:`phrsync.web.auth.AuthStore` and prints the
result (``--json``: the result as JSON). Passwords are never arguments: a hidden prompt or ``--password-file``."""

from __future__ import annotations

import json
from typing import Any

import click

from phrsync.config import config_from_context


def _state_url(ctx: click.Context) -> str:
    from phrsync.web.model import Sources

    return Sources.from_config(config_from_context(ctx)).state_url


def _user_dict(u: Any) -> dict[str, Any]:
    d = {"username": u.username, "role": u.role, "district": u.district, "facility": u.facility}
    if hasattr(u, "updated"):
        d["updated"] = bool(u.updated)
    return d


@click.group("web", invoke_without_command=True)
@click.option("--host", help="ที่อยู่ที่รับการเชื่อมต่อ (ค่าตั้งต้น [web] host หรือ 127.0.0.1) / bind address "
                             "(default [web] host or 127.0.0.1)")
@click.option("--port", type=click.IntRange(1, 65535),
              help="พอร์ต (ค่าตั้งต้น [web] port หรือ 8080) / port (default [web] port or 8080)")
@click.option("--json", "as_json", is_flag=True, help="พิมพ์ที่อยู่เว็บเป็น JSON / print the address as JSON")
@click.pass_context
def web_cmd(ctx: click.Context, host: str | None, port: int | None, as_json: bool) -> None:
    """เว็บติดตามการส่งข้อมูลของจังหวัด / the province's monitoring web.

    \b
    ไม่มีคำสั่งย่อย: เปิดเว็บ (อ่าน staging, ฐานข้อมูลสถานะ และไฟล์ build; ไม่เรียก PHR)
    / with no subcommand: serve it (reads staging, the state store and the build; never calls PHR)
      phrsync web --port 8080
      phrsync web add-user somchai --role district --district 2701
      phrsync web users
    """
    if ctx.invoked_subcommand is not None:
        return
    from phrsync.web import server

    def started(info: server.ServeInfo) -> None:
        click.echo(json.dumps(info.to_dict(), ensure_ascii=False) if as_json else info.text())

    server.serve(config_from_context(ctx), host, port, on_start=started)


@web_cmd.command("add-user")
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "district", "facility"]), required=True,
              help="admin = ผู้ดูแลจังหวัด (ทุกอย่าง), district = ผู้ดูระดับอำเภอ, facility = เจ้าหน้าที่หน่วยบริการ "
                   "/ province admin (everything), district viewer, facility staff")
@click.option("--district", metavar="CODE", help="รหัสอำเภอ 4 หลัก (กับ --role district) / 4-digit district code")
@click.option("--facility", metavar="HCODE", help="รหัสหน่วยบริการ (กับ --role facility) / facility code")
@click.option("--password-file", type=click.Path(dir_okay=False, allow_dash=True),
              help="อ่านรหัสผ่านจากบรรทัดแรกของไฟล์ (- = stdin) ไม่เช่นนั้นถามแบบซ่อน / read the password from the "
                   "file's first line (- = stdin); otherwise asked for, hidden")
@click.option("--json", "as_json", is_flag=True, help="ผลลัพธ์แบบ JSON / machine-readable output")
@click.pass_context
def add_user_cmd(ctx: click.Context, username: str, role: str, district: str | None, facility: str | None,
                 password_file: str | None, as_json: bool) -> None:
    """เพิ่มผู้ใช้เว็บ หรือเปลี่ยนรหัสผ่าน/บทบาท / add a web account, or change its password and role.

    บัญชีเก็บในฐานข้อมูลสถานะ รหัสผ่านเก็บเป็น argon2 / accounts live in the state store, passwords as argon2
    hashes. A user that exists has its password and role replaced and its sessions ended.
    """
    from phrsync.web.auth import AuthStore, read_password

    password = read_password(password_file)
    store = AuthStore(_state_url(ctx))
    try:
        u = store.add_user(username, password, role, district=district, facility=facility, client="cli")
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(_user_dict(u), ensure_ascii=False))
        return
    what = ("ปรับปรุงผู้ใช้", "updated") if getattr(u, "updated", False) else ("เพิ่มผู้ใช้", "added")
    scope = f" {u.district}" if u.district else f" {u.facility}" if u.facility else ""
    click.echo(f"{what[0]} / {what[1]}: {u.username} ({u.role}{scope})")


@web_cmd.command("users")
@click.option("--json", "as_json", is_flag=True, help="ผลลัพธ์แบบ JSON / machine-readable output")
@click.pass_context
def users_cmd(ctx: click.Context, as_json: bool) -> None:
    """รายชื่อผู้ใช้เว็บ / the web's accounts (no password or hash is ever shown)."""
    from phrsync.web.auth import ROLE_TEXT, AuthStore

    store = AuthStore(_state_url(ctx))
    try:
        users = store.users()
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps([_user_dict(u) for u in users], ensure_ascii=False))
        return
    if not users:
        click.echo("ยังไม่มีผู้ใช้ (phrsync web add-user) / no account yet (phrsync web add-user)")
    for u in users:
        th, en = ROLE_TEXT.get(u.role, (u.role, u.role))
        scope = u.district or u.facility or "-"
        click.echo(f"{u.username:<24} {u.role:<9} {scope:<6} {th} / {en}")
