"""``phrsync sync``, ``status``, ``retry``, ``run``: the sending agent's commands (see docs/delivery.md)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from phrsync.config import Config, config_from_context
from phrsync.delivery import agent
from phrsync.delivery import outbox as ob
from phrsync.delivery.config import HCODE_RE, ConfigError, DeliverySettings, load_delivery, number_setting
from phrsync.pdpa import mask_text
from phrsync.thai import thai_date

log = logging.getLogger("phrsync.delivery")
EXIT_INTERRUPTED = 130  # Ctrl+C, as shells report SIGINT


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


def _settings(ctx: click.Context, target: str | None) -> DeliverySettings:
    try:
        return load_delivery(config_from_context(ctx), target)
    except ConfigError as e:
        raise click.UsageError(str(e)) from None


def _default_input(cfg: Config) -> Path:
    """``[delivery].input``; a relative path is taken from the configuration file's folder, as ``data_dir`` and
    ``ca_bundle`` are (not from wherever the command happens to run, e.g. systemd's ``/``)."""
    p = Path(cfg.section("delivery").get("input", cfg.data_dir / "payloads.ndjson"))
    return p if p.is_absolute() or cfg.source is None else cfg.source.parent / p


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


def _state_store_error(e: Exception) -> None:
    """One masked line on stderr, not the driver's traceback (which can run to a hundred lines)."""
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    click.echo(f"ฐานข้อมูลสถานะใช้ไม่ได้ / state store error: {mask_text(first)[:300]}", err=True)


def _run(settings: DeliverySettings, ndjson: Path | None, as_json: bool, lines: bool = False, **kw: Any) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    show = not as_json and sys.stderr.isatty()
    prog = Progress(TextColumn("ส่ง / sending"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    disable=not show, transient=True)
    task = prog.add_task("send", total=None)

    def progress(done: int, total: int) -> None:
        prog.update(task, completed=done, total=total)

    try:
        with agent.agent_lock(settings.lock_path), prog:
            res = agent.run_blocking(agent.run_sync(settings, ndjson, progress=progress, **kw))
    except agent.AgentBusy as e:
        click.echo(str(e), err=True)
        return agent.EXIT_LOCKED
    except KeyboardInterrupt:  # Ctrl+C: what was committed stays (the next run resumes); not "refused" (exit 1)
        click.echo("หยุดโดยผู้ใช้ สั่งใหม่เพื่อทำต่อ / interrupted: run again to resume", err=True)
        return EXIT_INTERRUPTED
    except (ValueError, OSError) as e:
        click.echo(f"ผิดพลาด / error: {mask_text(str(e))}", err=True)
        return agent.EXIT_USAGE
    except SQLAlchemyError as e:  # the state store is unreachable or broken: nothing was sent
        _state_store_error(e)
        return agent.EXIT_USAGE
    _print_result(res, as_json, lines)
    return res.exit_code


def _hcode(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """``--facility`` is a 5-digit HCODE; anything else used to reach a login attempt and exit 4."""
    if value is not None and not HCODE_RE.match(value):
        raise click.BadParameter(f"รหัสหน่วยบริการต้องเป็นตัวเลข 5 หลัก / must be a 5-digit facility code: {value}")
    return value


def _common(f: Any) -> Any:
    for opt in reversed([
        click.option("--target", help="ปลายทาง production / uat / sandbox หรือชื่อใน [targets] / target name"),
        click.option("--facility", callback=_hcode, help="ส่งเฉพาะหน่วยบริการนี้ (HCODE) / only this facility"),
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
             as_json: bool, log_json: bool, verbose: bool) -> None:
    """ส่งข้อมูลที่ build แล้วเข้า MOPH-PHR / send built payloads to MOPH-PHR.

    \b
    โหลดเฉพาะรายการใหม่หรือเปลี่ยน → ส่ง → ตรวจกับ PHR → ลบที่ HIS ลบแล้ว
    loads only new or changed payloads → sends → reconciles with PHR → removes what the HIS deleted.
    รหัสออก / exit codes: 0 ครบ ok, 1 มีรายการถูกปฏิเสธ refused, 2 ใช้งานผิด usage, 3 ยังส่งไม่ครบ
    not all delivered, 4 เข้าระบบไม่ได้ login refused, 5 มีโปรแกรมส่งอื่นทำงานอยู่ another agent running.
    """
    _setup_logging(log_json, verbose)
    settings = _settings(ctx, target)
    if since:
        try:
            dt.date.fromisoformat(since)
        except ValueError:
            raise click.BadParameter("ต้องเป็น YYYY-MM-DD / must be YYYY-MM-DD", param_hint="--since") from None
    path = Path(input_path) if input_path else _default_input(config_from_context(ctx))
    if not path.is_file():
        if input_path:
            raise click.BadParameter(f"ไม่พบไฟล์ / file not found: {path}", param_hint="--input")
        if not as_json:  # a new user's first sync before any build said only "delivered 0"
            click.echo(f"ไม่มีไฟล์ build ที่ {path}: ส่งเฉพาะที่ค้างในคิว (สร้างด้วย phrsync build) / no build file at "
                       f"{path}: sending only what the outbox holds (make one with phrsync build)", err=True)
        path = None  # no build file yet: send what the outbox holds
    ctx.exit(_run(settings, path, as_json, facility=facility, since=since, dry_run=dry_run, verify=not no_verify,
                  remove=not no_remove, force=force, full_check=True if full_check else None))


@click.command("retry")
@click.option("--refused", is_flag=True, help="ส่งรายการที่ถูกปฏิเสธใหม่ด้วย / also resend refused payloads")
@click.option("-i", "--input", "input_path", type=click.Path(exists=True, dir_okay=False),
              help="กับ --refused: ไฟล์ build ที่แก้ข้อมูลแล้ว (ค่าตั้งต้น [delivery].input ถ้ามี) / with --refused: "
                   "the rebuilt file holding the fixed data (default [delivery].input, if present)")
@_common
@click.pass_context
def retry_cmd(ctx: click.Context, refused: bool, input_path: str | None, target: str | None,
              facility: str | None, as_json: bool, log_json: bool, verbose: bool) -> None:
    """ส่งรายการที่ค้างอยู่ใหม่ / resend what the outbox still holds.

    ค่าตั้งต้นส่งเฉพาะที่ยังไม่สำเร็จ (ไม่อ่านไฟล์ build); --refused ส่งรายการที่ถูกปฏิเสธด้วย: อ่านไฟล์ build ก่อน
    เพื่อให้ข้อมูลที่แก้แล้วแทนที่ของเดิม (หรือส่งของเดิมซ้ำ เช่น หลัง PHR แก้ตารางรหัส)
    / by default only undelivered rows (no build file read); --refused also resends refused ones, reading the
    build file first so that fixed data replaces what was refused (or the same data again, e.g. after PHR fixed
    a code list).
    """
    _setup_logging(log_json, verbose)
    settings = _settings(ctx, target)
    path = None
    if refused:  # "after the data is fixed": the fixed data is in the rebuilt file, not in the outbox
        path = Path(input_path) if input_path else _default_input(config_from_context(ctx))
        path = path if path.is_file() else None
    ctx.exit(_run(settings, path, as_json, facility=facility, retry_refused=refused, remove=False))


def _when(ts: float | None) -> str:
    if not ts:
        return "-"
    return thai_date(dt.datetime.fromtimestamp(ts))


@click.command("status")
@click.option("--target", help="ปลายทาง (ใช้หาไฟล์สถานะ) / target (selects the state store)")
@click.option("--json", "as_json", is_flag=True, help="ผลลัพธ์แบบ JSON / machine-readable output")
@click.pass_context
def status_cmd(ctx: click.Context, target: str | None, as_json: bool) -> None:
    """สถานะการส่งรายหน่วยบริการ / delivery state per facility.

    รอส่ง, ยืนยันแล้ว, ถูกปฏิเสธพร้อมเหตุผลหลัก และการส่งครั้งล่าสุด
    / pending, confirmed, refused with the top reasons, and the last run.
    """
    settings = _settings(ctx, target)
    if settings.state_url.startswith("sqlite:///") and not Path(settings.state_url[len("sqlite:///"):]).exists():
        counts_only: dict[str, Any] = {"target": settings.target.name, "facilities": {}, "last_run": None}
        click.echo(json.dumps(counts_only) if as_json else "ยังไม่มีข้อมูลในคิวส่ง / the outbox is empty")
        return
    try:
        box = ob.Outbox(settings.state_url)
        try:
            counts = box.counts()
            times = box.facility_times()
            facilities = {h: {**c, **times.get(h, {}), "top_refusals": box.top_reasons(h) if c.get(ob.REFUSED) else []}
                          for h, c in counts.items()}
            last = box.last_run()
        finally:
            box.close()
    except (SQLAlchemyError, ValueError) as e:  # unreachable or broken store: a message (exit 2), as sync gives
        _state_store_error(e)
        ctx.exit(agent.EXIT_USAGE)
    if as_json:
        click.echo(json.dumps({"target": settings.target.name, "facilities": facilities, "last_run": last},
                              ensure_ascii=False, indent=1, default=str))
        return
    if not facilities:
        click.echo("ยังไม่มีข้อมูลในคิวส่ง / the outbox is empty")
    for h, c in facilities.items():
        waiting = sum(c[s] for s in ob.TO_SEND)
        click.echo(f"{h}: รอส่ง pending {waiting}  ส่งแล้ว sent {c[ob.SENT]}  ยืนยันแล้ว confirmed {c[ob.CONFIRMED]}  "
                   f"ถูกปฏิเสธ refused {c[ob.REFUSED]}  ลบแล้ว removed {c[ob.REMOVED]}  "
                   f"ส่งล่าสุด last sent {_when(c.get('last_sent'))}")
        for r in c["top_refusals"]:
            click.echo(f"    {r['count']} × {r['reason']}: {r['example'][:300]}")
    if last:
        s = last.get("summary") or {}
        click.echo(f"ส่งล่าสุด / last run: {_when(last['started_at'])} → {_when(last.get('finished_at'))} "
                   f"รหัสออก exit {last.get('exit_code')}, ส่ง delivered "
                   f"{s.get('sent', 0) + s.get('confirmed', 0)}, ปฏิเสธ refused {s.get('refused', 0)}")


@click.command("run")
@click.option("-i", "--input", "input_path", type=click.Path(dir_okay=False),
              help="ไฟล์จาก phrsync build ที่ถูกสร้างใหม่เป็นระยะ / build file refreshed by a scheduled build")
@click.option("--every", type=click.FloatRange(0.1), default=None,
              help="ส่งทุก ๆ กี่นาที (ค่าตั้งต้น [delivery].every_minutes หรือ 60) / minutes between runs")
@click.option("--once", is_flag=True, help="ทำรอบเดียวแล้วจบ (สำหรับ systemd timer/cron) / one round and exit")
@_common
@click.pass_context
def run_cmd(ctx: click.Context, input_path: str | None, every: float | None, once: bool, target: str | None,
            facility: str | None, as_json: bool, log_json: bool, verbose: bool) -> None:
    """ทำงานต่อเนื่องแบบไม่มีคนเฝ้า (เช่น ใต้ systemd) / unattended agent (e.g. under systemd).

    ทุกรอบ: อ่านไฟล์ build ถ้าเปลี่ยน ส่ง ตรวจกับ PHR; SIGTERM = จบรอบปัจจุบันแล้วออก
    / each round: load the build file if it changed, send, reconcile; SIGTERM finishes the round and exits.
    """
    _setup_logging(log_json, True)
    cfg = config_from_context(ctx)
    settings = _settings(ctx, target)
    try:
        minutes = every or number_setting(cfg.section("delivery"), "every_minutes", 60)
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    path = Path(input_path) if input_path else _default_input(cfg)
    stop = {"now": False}

    def _term(_sig: int, _frm: Any) -> None:
        stop["now"] = True
        log.info("ได้รับสัญญาณหยุด จะออกหลังจบรอบ / stop requested, exiting after this round")

    signal.signal(signal.SIGTERM, _term)
    last_mtime = 0.0
    code = 0
    while True:
        mtime = path.stat().st_mtime if path.is_file() else 0.0
        ndjson = path if mtime and mtime != last_mtime else None
        code = _run(settings, ndjson, as_json, lines=True, facility=facility)
        if code == EXIT_INTERRUPTED:
            ctx.exit(code)
        if ndjson is not None and code != agent.EXIT_USAGE:
            last_mtime = mtime
        log.info("รอบเสร็จ รหัสออก %d / round done, exit code %d", code, code)
        if once or code == agent.EXIT_USAGE:
            break
        deadline = time.monotonic() + minutes * 60
        try:
            while not stop["now"] and time.monotonic() < deadline:
                time.sleep(min(1.0, deadline - time.monotonic()))
        except KeyboardInterrupt:
            ctx.exit(EXIT_INTERRUPTED)
        if stop["now"]:
            break
    ctx.exit(code if once else 0)
