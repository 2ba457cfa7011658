"""``phrsync sandbox``: run the local MOPH-PHR-compatible server and manage its accounts and tokens.

Each command parses its options, calls one function of :mod:`phrsync.sandbox.server` or
:mod:`phrsync.sandbox.admin` and prints its result (``--json``: the result's ``to_dict()``)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from phrsync.config import config_from_context
from phrsync.sandbox import admin, server
from phrsync.sandbox.settings import FaultConfig, SandboxConfig, from_config


def _settings(ctx: click.Context, **overrides: Any) -> SandboxConfig:
    cfg = config_from_context(ctx)
    opts = ctx.find_object(dict) or {}
    return from_config(cfg, db_url=opts.get("db"), data_dir=opts.get("data_dir"), **overrides)


def _out(as_json: bool, result: Any) -> None:
    click.echo(json.dumps(result.to_dict(), ensure_ascii=False) if as_json else result.text())


@click.group("sandbox")
@click.option("--db", "db", metavar="URL", envvar="PHRSYNC_SANDBOX_DB",
              help="ฐานข้อมูล (ค่าตั้งต้น SQLite ใน data dir) / storage URL, e.g. "
                   "postgresql+psycopg://postgres@127.0.0.1:5432/db")
@click.option("--data-dir", "data_dir", type=click.Path(file_okay=False),
              help="โฟลเดอร์ข้อมูลของเซิร์ฟเวอร์ทดสอบ / sandbox data directory (default <data_dir>/sandbox)")
@click.pass_context
def sandbox_cmd(ctx: click.Context, db: str | None, data_dir: str | None) -> None:
    """เซิร์ฟเวอร์ทดสอบที่ทำงานเหมือน MOPH-PHR / local MOPH-PHR-compatible test server."""
    if not isinstance(ctx.obj, dict):
        ctx.obj = {}
    ctx.obj.update(db=db, data_dir=data_dir)


@sandbox_cmd.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="ที่อยู่ที่รับการเชื่อมต่อ / bind address")
@click.option("--port", default=8787, show_default=True, type=int, help="พอร์ต / port")
@click.option("--fault-500", type=float, default=0.0, help="สัดส่วนคำขอ /api/* ที่ตอบ 500 / share answered 500")
@click.option("--fault-502", type=float, default=0.0, help="สัดส่วนที่ตอบ 502 / share answered 502")
@click.option("--fault-503", type=float, default=0.0, help="สัดส่วนที่ตอบ 503 / share answered 503")
@click.option("--fault-429", type=float, default=0.0, help="สัดส่วนที่ตอบ 429 / share answered 429")
@click.option("--retry-after", type=int, default=1, show_default=True, help="Retry-After (วินาที / s) ของ 429")
@click.option("--fault-timeout", type=float, default=0.0,
              help="สัดส่วนที่หน่วงเกินเวลารอของไคลเอนต์ / share that sleeps past the client's timeout")
@click.option("--timeout-seconds", type=float, default=30.0, show_default=True,
              help="เวลาที่หน่วงเมื่อเกิด timeout / how long a timeout fault sleeps")
@click.option("--fault-drop", type=float, default=0.0,
              help="สัดส่วนที่ตัดการเชื่อมต่อโดยไม่ตอบ / share whose connection is closed with no answer")
@click.option("--latency-ms", type=float, default=0.0, help="หน่วงทุกคำขอ /api/* (มิลลิวินาที) / added latency")
@click.option("--seed", type=int, default=None, help="ค่าเริ่มสุ่ม ให้ผลซ้ำได้ / RNG seed for reproducible faults")
@click.option("--rate-limit", type=int, default=None,
              help="จำนวนอัปโหลดต่อนาทีต่อหน่วยบริการ (0 = ไม่จำกัด; ค่าตั้งต้น 120) / uploads per minute per facility")
@click.option("--expired-status", type=click.Choice(["401", "501"]), default=None,
              help="สถานะเมื่อโทเค็นหมดอายุ / HTTP status for an expired token")
@click.option("--commit-delay-ms", type=float, default=None,
              help="รอรวมการเขียนเป็นธุรกรรมเดียว (ค่าตั้งต้น 1) / group-commit wait in ms (default 1)")
@click.option("--access-log", is_flag=True,
              help="บันทึกทุกคำขอ (ปิดบังเลขบัตรประชาชน) / log every request, citizen IDs masked")
@click.option("--workers", type=int, default=1, show_default=True,
              help="จำนวนโปรเซส (ความผิดพลาดจำลองซ้ำได้เมื่อ = 1) / worker processes (faults reproducible with 1)")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None,
              help="ใบรับรอง (PEM) ให้บริการแบบ HTTPS เหมือน PHR/UAT / certificate chain (PEM): serve HTTPS")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None,
              help="กุญแจส่วนตัวของใบรับรอง (PEM) / the certificate's private key (PEM)")
@click.option("--json", "as_json", is_flag=True, help="พิมพ์ข้อมูลเริ่มต้นเป็น JSON / print start-up info as JSON")
@click.pass_context
def serve_cmd(ctx: click.Context, host: str, port: int, fault_500: float, fault_502: float, fault_503: float,
              fault_429: float, retry_after: int, fault_timeout: float, timeout_seconds: float, fault_drop: float,
              latency_ms: float, seed: int | None, rate_limit: int | None, expired_status: str | None,
              commit_delay_ms: float | None, access_log: bool, workers: int, tls_cert: str | None,
              tls_key: str | None, as_json: bool) -> None:
    """เริ่มเซิร์ฟเวอร์ทดสอบ / run the sandbox server in the foreground.

    HTTPS: ``--tls-cert`` and ``--tls-key`` (e.g. a self-signed certificate, as UAT has); the agent then needs the
    certificate in its target's ``ca_bundle`` — TLS is always verified."""
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("ต้องระบุ --tls-cert และ --tls-key คู่กัน / --tls-cert and --tls-key go together")
    faults = FaultConfig(p500=fault_500, p502=fault_502, p503=fault_503, p429=fault_429, retry_after=retry_after,
                         p_timeout=fault_timeout, timeout_seconds=timeout_seconds, p_drop=fault_drop,
                         latency_ms=latency_ms, seed=seed)
    sc = _settings(ctx, faults=faults, rate_limit_per_minute=rate_limit, access_log=access_log or None,
                   commit_delay_ms=commit_delay_ms,
                   expired_status=int(expired_status) if expired_status else None)
    server.serve(sc, host=host, port=port, workers=workers,
                 tls=(tls_cert, tls_key) if tls_cert and tls_key else None,
                 on_start=lambda info: _out(as_json, info))


@sandbox_cmd.command("add-user")
@click.argument("user")
@click.option("--hospcode", required=True, help="รหัสหน่วยบริการ 5 หลัก / 5-digit facility code")
@click.option("--password-stdin", is_flag=True, help="อ่านรหัสผ่านจาก stdin / read the password from stdin")
@click.option("--permission", "permissions", multiple=True,
              help="สิทธิ์ (ค่าตั้งต้น MOPH_PHR_HIE และ MOPH_IDP_API) / permission, repeatable")
@click.option("--json", "as_json", is_flag=True, help="ผลลัพธ์เป็น JSON / machine output")
@click.pass_context
def add_user_cmd(ctx: click.Context, user: str, hospcode: str, password_stdin: bool,
                 permissions: tuple[str, ...], as_json: bool) -> None:
    """เพิ่มหรือตั้งรหัสผ่านผู้ใช้ / add a user (or reset its password)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("รหัสผ่าน / password", hide_input=True, confirmation_prompt=True)
    _out(as_json, admin.add_user(_settings(ctx), user, hospcode, password, permissions))


@sandbox_cmd.command("issue-token")
@click.argument("hospcode")
@click.option("--json", "as_json", is_flag=True, help="ผลลัพธ์เป็น JSON / machine output")
@click.pass_context
def issue_token_cmd(ctx: click.Context, hospcode: str, as_json: bool) -> None:
    """ออกโทเค็น 1 ปี HCODE:TOKEN (ยกเลิกอันเก่า; แสดงครั้งเดียว) / issue the 1-year upload token."""
    _out(as_json, admin.issue_token(_settings(ctx), hospcode))


@sandbox_cmd.command("seed-register")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--personnel", is_flag=True, help="รายชื่อบุคลากร / the file lists health personnel")
@click.option("--json", "as_json", is_flag=True, help="ผลลัพธ์เป็น JSON / machine output")
@click.pass_context
def seed_register_cmd(ctx: click.Context, path: str, personnel: bool, as_json: bool) -> None:
    """ใส่ทะเบียนประชากร (เลขบัตรและอำเภอ) ให้ check_ekyc / seed the IdP register check_ekyc answers from.

    \b
    The file: CSV or XLSX as `did import-population` (or, --personnel, `did import-personnel`) reads it: a CID
    and a facility or district per row. Each district's answers are then dealt from [sandbox] did_shares
    (personnel: did_personnel_share), so checking these people gives those shares; seeding again replaces
    the register of that kind."""
    _out(as_json, admin.seed_register(_settings(ctx), path, personnel))


@sandbox_cmd.command("stats")
@click.option("--json", "as_json", is_flag=True, help="ผลลัพธ์เป็น JSON / machine output")
@click.pass_context
def stats_cmd(ctx: click.Context, as_json: bool) -> None:
    """สรุปข้อมูลที่เก็บไว้ (เหมือนแดชบอร์ด) / stored totals, as on the dashboard."""
    _out(as_json, admin.stats(_settings(ctx)))
