"""``phrsync sync``, ``status``, ``retry``, ``run``: thin commands over :mod:`phrsync.delivery.agent` and
:mod:`phrsync.delivery.status` (see docs/delivery.md). Each parses its options, calls one library function and
prints the result it returns; failures are :class:`phrsync.errors.PhrsyncError` and leave through the
``phrsync`` group with their exit code."""

from __future__ import annotations

import datetime as dt
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from phrsync.config import config_from_context
from phrsync.delivery import agent
from phrsync.delivery.config import (
    HCODE_RE,
    ConfigError,
    DeliverySettings,
    default_input,
    load_delivery,
    with_state,
)
from phrsync.delivery.status import (
    OK,
    UNKNOWN,
    FacilityStatus,
    StatusReport,
    build_refusals,
    build_waiting,
    delivery_status,
)
from phrsync.pdpa import mask_text
from phrsync.thai import thai_datetime

log = logging.getLogger("phrsync.delivery")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
                           "level": record.levelname, "logger": record.name,
                           "message": mask_text(record.getMessage())}, ensure_ascii=False)


class _MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask_text(super().format(record))


def _setup_logging(log_json: bool, verbose: bool) -> None:
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(_JsonFormatter() if log_json else _MaskingFormatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("phrsync")
    root.handlers[:] = [h]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry full URLs (query strings)


def _settings(ctx: click.Context, target: str | None, state: str | None = None) -> DeliverySettings:
    try:
        return with_state(load_delivery(config_from_context(ctx), target), state)
    except ConfigError as e:
        raise click.UsageError(str(e)) from None


def _skipped_lines(skipped: dict[str, str], shown: int = 5) -> list[str]:
    """One line per reason, not per facility: a province with no account configured yet had 124 near-identical
    lines (the facility code inside each reason), and the one that differed was lost among them."""
    groups: dict[str, list[str]] = {}
    for h, why in skipped.items():
        groups.setdefault(why.removeprefix(f"{h}: ").replace(h, "H"), []).append(h)
    out = []
    for why, codes in groups.items():
        if len(codes) == 1:
            h = codes[0]
            out.append(f"  ข้าม / skipped {h}: {skipped[h].removeprefix(f'{h}: ')}")
            continue
        codes = sorted(codes)
        listed = ", ".join(codes[:shown]) + (f" … (+{len(codes) - shown})" if len(codes) > shown else "")
        out.append(f"  ข้าม {len(codes)} หน่วยบริการ / skipped {len(codes)} facilities ({listed}): {why}")
    return out


def _print_result(res: agent.SyncResult, as_json: bool, lines: bool = False) -> None:
    """``lines``: one compact JSON object per line (``run`` prints one per round, for a program to follow)."""
    if as_json:
        click.echo(json.dumps(res.as_dict(), ensure_ascii=False, indent=None if lines else 1))
        return
    d = res.as_dict()
    ld = d["loaded"]
    if ld:
        click.echo(f"อ่านไฟล์ / loaded: ใหม่ new {ld.get('new', 0)}, เปลี่ยน changed {ld.get('changed', 0)}, "
                   f"เหมือนเดิม unchanged {ld.get('unchanged', 0)}")
    if res.dry_run:
        click.echo(f"(ทดลอง ไม่ส่งจริง / dry run) จะส่ง / would send: {res.attempted}")
        return
    click.echo(f"ส่งสำเร็จ / delivered: {res.sent + res.confirmed}  ปฏิเสธ / refused: {res.refused}  "
               f"ยังไม่สำเร็จ / not delivered: {res.remaining()}  ส่งซ้ำ / retries: {res.retries}  "
               f"({res.seconds:.1f} s, {res.per_second:.1f}/s)")
    rc = d["reconcile"]
    if rc:
        click.echo(f"ตรวจกับ PHR / reconciled: {rc['days']} วัน days, ยืนยัน confirmed {rc['confirmed']}, "
                   f"ส่งใหม่ resent {rc['resend']}, ลบ removed {rc['removed']}")
        for g in rc["guarded"]:
            click.echo(f"  ไม่ลบ / held back: {g['hospcode']} {g['day']}: {g['would_remove']}/{g['held']} "
                       "(ใช้ --force ถ้าตั้งใจ / use --force if intended)")
    for line in _skipped_lines(res.skipped):
        click.echo(line)
    if res.down:
        click.echo(f"ปลายทางไม่พร้อม / target down: {res.down}")


class _Bar:
    """The progress bar on a terminal (nothing under --json or when stderr is not a terminal)."""

    def __init__(self, as_json: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.prog = Progress(TextColumn("ส่ง / sending"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                             disable=as_json or not sys.stderr.isatty(), transient=True)
        self.task = self.prog.add_task("send", total=None)

    def __call__(self, done: int, total: int) -> None:
        self.prog.update(self.task, completed=done, total=total)


def _hcode(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """``--facility`` is a 5-digit HCODE; anything else used to reach a login attempt and exit 4."""
    if value is not None and not HCODE_RE.match(value):
        raise click.BadParameter(f"รหัสหน่วยบริการต้องเป็นตัวเลข 5 หลัก / must be a 5-digit facility code: {value}")
    return value


_STATE_OPTION = click.option(
    "--state", help="ฐานข้อมูลสถานะ: URL หรือไฟล์ SQLite (ค่าตั้งต้น [delivery] state_url / PHRSYNC_STATE_URL) / "
                    "state store: a database URL or a SQLite file")


def _common(f: Any) -> Any:
    for opt in reversed([
        click.option("--target", help="ปลายทาง production / uat / sandbox หรือชื่อใน [targets] / target name"),
        click.option("--facility", callback=_hcode, help="ส่งเฉพาะหน่วยบริการนี้ (HCODE) / only this facility"),
        _STATE_OPTION,
        click.option("--json", "as_json", is_flag=True, help="ผลลัพธ์แบบ JSON / machine-readable output"),
        click.option("--log-json", is_flag=True, help="บันทึก (stderr) เป็น JSON ทีละบรรทัด / JSON log lines"),
        click.option("-v", "--verbose", is_flag=True, help="บันทึกละเอียด / more log output"),
    ]):
        f = opt(f)
    return f


@click.command("sync")
@click.option("-i", "--input", "input_path", type=click.Path(dir_okay=False),
              help="ไฟล์จาก phrsync build (ค่าตั้งต้น [delivery].input หรือ data/payloads.ndjson) / build file")
@click.option("--since", help="เฉพาะการรับบริการตั้งแต่วันที่ / only visits from this day (YYYY-MM-DD)")
@click.option("--dry-run", is_flag=True, help="แสดงสิ่งที่จะส่ง ไม่ส่งจริง / show what would be sent")
@click.option("--no-verify", is_flag=True, help="ไม่ตรวจกับ OrganizationSummary / skip reconciliation")
@click.option("--no-remove", is_flag=True, help="ไม่ลบรายการที่ HIS ลบไปแล้ว / never call RemoveEncounter")
@click.option("--force", is_flag=True, help="ยอมลบเกินสัดส่วนที่กำหนดต่อวัน / allow removals over the limit")
@click.option("--full-check", is_flag=True,
              help="ตรวจกับ PHR ทุกวันในช่วงของ build (ปกติทำทุก [delivery].full_check_days วัน) / compare every day of "
                   "the build with PHR (done every [delivery].full_check_days anyway)")
@_common
@click.pass_context
def sync_cmd(ctx: click.Context, input_path: str | None, since: str | None, dry_run: bool, no_verify: bool,
             no_remove: bool, force: bool, full_check: bool, target: str | None, facility: str | None,
             state: str | None, as_json: bool, log_json: bool, verbose: bool) -> None:
    """ส่งข้อมูลที่ build แล้วเข้า MOPH-PHR / send built payloads to MOPH-PHR.

    \b
    โหลดเฉพาะรายการใหม่หรือเปลี่ยน → ส่ง → ตรวจกับ PHR → ลบที่ HIS ลบแล้ว
    loads only new or changed payloads → sends → reconciles with PHR → removes what the HIS deleted.
    รหัสออก / exit codes: 0 ครบ ok, 1 มีรายการถูกปฏิเสธ refused, 2 ใช้งานผิด usage, 3 ยังส่งไม่ครบ
    not all delivered, 4 เข้าระบบไม่ได้ login refused, 5 มีโปรแกรมส่งอื่นทำงานอยู่ another agent running,
    7 ฐานข้อมูลสถานะใช้ไม่ได้ state store broken or unreachable.
    """
    _setup_logging(log_json, verbose)
    settings = _settings(ctx, target, state)
    if since:
        try:
            dt.date.fromisoformat(since)
        except ValueError:
            raise click.BadParameter("ต้องเป็น YYYY-MM-DD / must be YYYY-MM-DD", param_hint="--since") from None
    path = Path(input_path) if input_path else default_input(config_from_context(ctx))
    if not path.is_file():
        if input_path:
            raise click.BadParameter(f"ไม่พบไฟล์ / file not found: {path}", param_hint="--input")
        if not as_json:  # a new user's first sync before any build said only "delivered 0"
            click.echo(f"ไม่มีไฟล์ build ที่ {path}: ส่งเฉพาะที่ค้างในคิว (สร้างด้วย phrsync build) / no build file at "
                       f"{path}: sending only what the outbox holds (make one with phrsync build)", err=True)
        path = None  # no build file yet: send what the outbox holds
    bar = _Bar(as_json)
    with bar.prog:
        res = agent.sync(settings, path, progress=bar, facility=facility, since=since, dry_run=dry_run,
                         verify=not no_verify, remove=not no_remove, force=force,
                         full_check=True if full_check else None)
    _print_result(res, as_json)
    ctx.exit(res.exit_code)


@click.command("retry")
@click.option("--refused", is_flag=True, help="ส่งรายการที่ถูกปฏิเสธใหม่ด้วย / also resend refused payloads")
@click.option("-i", "--input", "input_path", type=click.Path(exists=True, dir_okay=False),
              help="กับ --refused: ไฟล์ build ที่แก้ข้อมูลแล้ว (ค่าตั้งต้น [delivery].input ถ้ามี) / with --refused: "
                   "the rebuilt file holding the fixed data (default [delivery].input, if present)")
@_common
@click.pass_context
def retry_cmd(ctx: click.Context, refused: bool, input_path: str | None, target: str | None,
              facility: str | None, state: str | None, as_json: bool, log_json: bool, verbose: bool) -> None:
    """ส่งรายการที่ค้างอยู่ใหม่ / resend what the outbox still holds.

    ค่าตั้งต้นส่งเฉพาะที่ยังไม่สำเร็จ (ไม่อ่านไฟล์ build); --refused ส่งรายการที่ถูกปฏิเสธด้วย: อ่านไฟล์ build ก่อน
    เพื่อให้ข้อมูลที่แก้แล้วแทนที่ของเดิม (หรือส่งของเดิมซ้ำ เช่น หลัง PHR แก้ตารางรหัส)
    / by default only undelivered rows (no build file read); --refused also resends refused ones, reading the
    build file first so that fixed data replaces what was refused (or the same data again, e.g. after PHR fixed
    a code list).
    """
    _setup_logging(log_json, verbose)
    settings = _settings(ctx, target, state)
    path = None
    if refused:  # "after the data is fixed": the fixed data is in the rebuilt file, not in the outbox
        path = Path(input_path) if input_path else default_input(config_from_context(ctx))
        path = path if path.is_file() else None
    bar = _Bar(as_json)
    with bar.prog:
        res = agent.retry(settings, refused=refused, ndjson=path, facility=facility, progress=bar)
    _print_result(res, as_json)
    ctx.exit(res.exit_code)


@click.command("status")
@click.option("--target", help="ปลายทาง (ใช้หาไฟล์สถานะ) / target (selects the state store)")
@click.option("-i", "--input", "input_path", type=click.Path(dir_okay=False),
              help="ไฟล์ build ที่ใช้นับรายการที่ตัวตรวจปฏิเสธตอน build (ค่าตั้งต้น [delivery].input) / the build file whose "
                   "summary counts what the validator refused at build time (default [delivery].input)")
@click.option("--facility", callback=_hcode, help="เฉพาะหน่วยบริการนี้ (HCODE) / only this facility")
@_STATE_OPTION
@click.option("--json", "as_json", is_flag=True, help="ผลลัพธ์แบบ JSON / machine-readable output")
@click.pass_context
def status_cmd(ctx: click.Context, target: str | None, input_path: str | None, facility: str | None,
               state: str | None, as_json: bool) -> None:
    """สถานะการส่งรายหน่วยบริการ / delivery state per facility.

    รอส่ง, ยืนยันแล้ว, ถูกปฏิเสธพร้อมเหตุผลหลัก, ล้มเหลว, สาเหตุที่ค้าง และการส่งครั้งล่าสุด
    / pending, confirmed, refused with the top reasons, failed, why a facility is stuck, and the last run.
    """
    settings = _settings(ctx, target, state)
    build_file = Path(input_path) if input_path else default_input(config_from_context(ctx))
    report = delivery_status(settings.state_url, target=settings.target.name, facility=facility,
                             build_refused=build_refusals(build_file), computer_name=settings.computer_name,
                             build_waiting=build_waiting(build_file))
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=1, default=str))
        return
    for line in status_lines(report):
        click.echo(line)


def status_lines(report: StatusReport) -> list[str]:
    """The text of ``phrsync status``: one block per facility, saying why one is stuck; every time with its
    zone (Asia/Bangkok)."""
    if not report.facilities:
        return ["ยังไม่มีข้อมูลในคิวส่ง / the outbox is empty"]
    out: list[str] = []
    for h, f in report.facilities.items():
        out.extend(_facility_lines(h, f))
    a = report.agent
    if a.running:
        out.append(f"โปรแกรมส่ง / agent: กำลังทำงาน running — {a.holder} (host {a.host}, pid {a.pid}) ตั้งแต่ since "
                   f"{thai_datetime(a.since)}, ตอบล่าสุด heartbeat {thai_datetime(a.heartbeat_at)}")
    else:
        out.append("โปรแกรมส่ง / agent: ไม่ได้ทำงานอยู่ not running"
                   + (f" (ชื่อเครื่องที่แจ้ง PHR / computer name told to PHR: {a.computer_name})" if a.computer_name else ""))
    last = report.last_run
    if last:
        s = last.get("summary") or {}
        out.append(f"ส่งล่าสุด / last run: {thai_datetime(last['started_at'])} → "
                   f"{thai_datetime(last.get('finished_at'))} รหัสออก exit {last.get('exit_code')}, ส่ง delivered "
                   f"{s.get('sent', 0) + s.get('confirmed', 0)}, ปฏิเสธ refused {s.get('refused', 0)}")
    return out


def _facility_lines(h: str, f: FacilityStatus) -> list[str]:
    built = f"  ถูกปฏิเสธตอน build refused at build {f.build_refused}" if f.build_refused else ""
    if f.build_waiting:
        built += f"  รอรหัสยา waiting for a code {f.build_waiting}"
    out = [f"{h}: รอส่ง pending {f.pending}  ส่งแล้ว sent {f.sent}  ยืนยันแล้ว confirmed {f.confirmed}  "
           f"ถูกปฏิเสธ refused {f.refused}  ล้มเหลว failed {f.failed}  ลบแล้ว removed {f.removed}{built}  "
           f"ส่งสำเร็จล่าสุด last delivery {thai_datetime(f.last_delivery)}"]
    stuck = f.stuck_because()
    if stuck:
        when = f.agent_state_at if f.agent_state not in (OK, UNKNOWN) else f.last_error_at
        out.append(f"    ค้างเพราะ / stuck: {stuck} ({thai_datetime(when)})")
    elif f.last_error and f.last_error_at:
        out.append(f"    ข้อผิดพลาดล่าสุด / last error ({thai_datetime(f.last_error_at)}): {f.last_error}")
    for r in f.top_refusals:
        out.append(f"    {r.count} × {r.reason}: {r.example[:300]}")
    return out


@click.command("run")
@click.option("-i", "--input", "input_path", type=click.Path(dir_okay=False),
              help="ไฟล์จาก phrsync build ที่ถูกสร้างใหม่เป็นระยะ / build file refreshed by a scheduled build")
@click.option("--every", type=click.FloatRange(0.1), default=None,
              help="ส่งทุก ๆ กี่นาที (ค่าตั้งต้น [delivery].every_minutes หรือ 60) / minutes between runs")
@click.option("--once", is_flag=True, help="ทำรอบเดียวแล้วจบ (สำหรับ systemd timer/cron) / one round and exit")
@_common
@click.pass_context
def run_cmd(ctx: click.Context, input_path: str | None, every: float | None, once: bool, target: str | None,
            facility: str | None, state: str | None, as_json: bool, log_json: bool, verbose: bool) -> None:
    """ทำงานต่อเนื่องแบบไม่มีคนเฝ้า (เช่น ใต้ systemd) / unattended agent (e.g. under systemd).

    ทุกรอบ: อ่านไฟล์ build ถ้าเปลี่ยน ส่ง ตรวจกับ PHR; SIGTERM = จบรอบปัจจุบันแล้วออก
    / each round: load the build file if it changed, send, reconcile; SIGTERM finishes the round and exits.
    """
    _setup_logging(log_json, True)
    cfg = config_from_context(ctx)
    settings = _settings(ctx, target, state)
    minutes = every or cfg.settings.delivery.every_minutes
    path = Path(input_path) if input_path else default_input(cfg)
    stop = threading.Event()

    def _term(_sig: int, _frm: Any) -> None:
        log.info("ได้รับสัญญาณหยุด จะออกหลังจบรอบ / stop requested, exiting after this round")
        stop.set()

    signal.signal(signal.SIGTERM, _term)
    res = agent.run_agent(settings, path, every_minutes=minutes, once=once, facility=facility, stop=stop,
                          on_round=lambda r: _print_result(r, as_json, lines=True))
    ctx.exit(res.exit_code)
