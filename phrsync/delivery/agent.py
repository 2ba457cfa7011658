"""One sync run end to end: load a build file into the outbox, send, confirm against PHR, resend what PHR
lost, remove what the HIS deleted (guarded), and record the run. Used by ``phrsync sync``/``run`` and, through
:func:`sync_payloads`, by ``phrsync demo``.

Exit codes: 0 everything delivered; 1 some payloads refused (data to fix); 2 usage or configuration error;
3 some payloads not delivered yet (target down, retries exhausted: run again); 4 login refused for a
facility; 5 another phrsync agent holds the lock on this state.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from phrsync.delivery import outbox as ob
from phrsync.delivery.config import Credentials, DeliverySettings, Target
from phrsync.delivery.reconcile import ReconcileResult, reconcile
from phrsync.delivery.sender import ProgressFn, Sender

log = logging.getLogger("phrsync.delivery")
T = TypeVar("T")
EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNDELIVERED, EXIT_AUTH, EXIT_LOCKED = 0, 1, 2, 3, 4, 5


class AgentBusy(Exception):
    """Another agent process holds the lock of this state store."""


@dataclass
class SyncResult:
    target: str = ""
    dry_run: bool = False
    loaded: dict[str, int] = field(default_factory=dict)
    in_doubt: int = 0  # rows a crash left "sending"; sent again (safe: keyed uploads replace)
    attempted: int = 0
    sent: int = 0
    confirmed: int = 0
    refused: int = 0
    failed: int = 0
    requests: int = 0
    retries: int = 0
    status_codes: dict[str, int] = field(default_factory=dict)
    reconcile: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    skip_kind: dict[str, str] = field(default_factory=dict)
    down: str | None = None
    seconds: float = 0.0
    outbox: dict[str, dict[str, int]] = field(default_factory=dict)  # status counts per facility after the run
    exit_code: int = 0
    cpu: dict[str, float] = field(default_factory=dict)  # this process's CPU seconds per phase: load, send, verify

    @property
    def per_second(self) -> float:
        return (self.sent + self.confirmed) / self.seconds if self.seconds > 0 else 0.0

    def remaining(self) -> int:
        return sum(c.get(s, 0) for c in self.outbox.values() for s in ob.TO_SEND)

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "dry_run": self.dry_run, "loaded": self.loaded, "in_doubt": self.in_doubt,
                "attempted": self.attempted, "sent": self.sent, "confirmed": self.confirmed,
                "refused": self.refused, "failed": self.failed, "requests": self.requests, "retries": self.retries,
                "status_codes": self.status_codes, "reconcile": self.reconcile, "skipped": self.skipped, "skip_kind": self.skip_kind,
                "down": self.down, "seconds": round(self.seconds, 3), "payloads_per_second": round(self.per_second, 1),
                "remaining": self.remaining(), "outbox": self.outbox, "exit_code": self.exit_code,
                "cpu_seconds": {k: round(v, 3) for k, v in self.cpu.items()}}


@contextlib.contextmanager
def agent_lock(path: Path | None) -> Iterator[None]:
    """One agent per state store on this machine (``flock``; released by the kernel even on kill -9)."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AgentBusy(f"มีโปรแกรมส่งอีกตัวทำงานอยู่ / another agent holds {path}") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)


FULL_CHECK_META = "last_full_check"


def _full_check_due(box: ob.Outbox, settings: DeliverySettings) -> bool:
    """A complete day-by-day comparison with PHR once every ``full_check_days`` (0 = every run)."""
    last = box.get_meta(FULL_CHECK_META)
    return last is None or time.time() - float(last) >= settings.full_check_days * 86400


def _counts(box: ob.Outbox, facility: str | None) -> dict[str, dict[str, int]]:
    """Status counts of what this run covers: with ``--facility H`` the result (its exit code and "not
    delivered") answers for H alone, not for the backlog of facilities the run never touched."""
    counts = box.counts()
    return {h: c for h, c in counts.items() if h == facility} if facility else counts


def _exit_code(res: SyncResult) -> int:
    if "auth" in res.skip_kind.values():
        return EXIT_AUTH
    if "other_agent" in res.skip_kind.values():
        return EXIT_LOCKED
    if res.down or res.remaining() or res.skipped or res.reconcile.get("errors"):
        return EXIT_UNDELIVERED  # (a day PHR could not be asked about is not known to be delivered)
    if any(c.get(ob.REFUSED, 0) for c in res.outbox.values()):
        return EXIT_REFUSED
    return EXIT_OK


async def run_sync(settings: DeliverySettings, ndjson: str | Path | None = None, *, facility: str | None = None,
                   since: str | None = None, dry_run: bool = False, verify: bool = True, remove: bool = True,
                   force: bool = False, retry_refused: bool = False, progress: ProgressFn | None = None,
                   box: ob.Outbox | None = None, full_check: bool | None = None) -> SyncResult:
    """The whole run; ``box`` may be passed to reuse an open state store. ``full_check``: ask PHR about
    every day of the build (None: when the last full check is older than ``settings.full_check_days``)."""
    t0 = time.perf_counter()
    own = box is None
    box = box or ob.Outbox(settings.state_url)
    res = SyncResult(target=settings.target.name, dry_run=dry_run)
    try:
        if dry_run:
            if ndjson:
                res.loaded = box.plan(ob.iter_ndjson(ndjson), facility, since).as_dict()
            res.attempted = box.count_to_send(facility) + res.loaded.get("new", 0) + res.loaded.get("changed", 0)
            res.outbox = _counts(box, facility)
            res.seconds = time.perf_counter() - t0
            return res
        run_id = box.start_run(settings.target.name)
        res.in_doubt = sum(c.get(ob.SENDING, 0) for h, c in box.counts().items() if not facility or h == facility)
        cpu = time.process_time()
        if ndjson:
            res.loaded = box.load_file(ndjson, facility, since).as_dict()
        res.cpu["load"] = time.process_time() - cpu
        if retry_refused:
            box.requeue_refused(facility)
        res.attempted = box.count_to_send(facility)
        log.info("เริ่มส่ง %d รายการไปยัง %s (ค้างจากครั้งก่อน %d) / sending %d payloads to %s (%d in doubt)",
                 res.attempted, settings.target.name, res.in_doubt, res.attempted, settings.target.name, res.in_doubt)
        async with Sender(settings, box, progress) as snd:
            cpu = time.process_time()
            await snd.send_outbox(facility)
            res.cpu["send"] = time.process_time() - cpu
            cpu = time.process_time()
            rec = ReconcileResult()
            if verify and snd.down is None:
                facilities = [facility] if facility else box.facilities()
                full = _full_check_due(box, settings) if full_check is None else full_check
                rec.full = full
                for rnd in range(3):
                    r = await reconcile(snd, facilities, since, remove=remove and rnd == 0, force=force,
                                        only_unconfirmed=rnd > 0, full=full and rnd == 0)
                    rec.days += r.days
                    rec.confirmed += r.confirmed
                    rec.resend += r.resend
                    rec.removed += r.removed
                    rec.guarded += r.guarded
                    rec.errors += r.errors
                    rec.notes += r.notes
                    if rnd == 0 and full and not r.errors and not snd.down and not facility and not since:
                        box.set_meta(FULL_CHECK_META, str(time.time()))
                    if not r.resend or snd.down:
                        break
                    await snd.send_outbox(facility)
            res.cpu["verify"] = time.process_time() - cpu  # OrganizationSummary rounds and their resends
            c = snd.counters
            res.sent, res.confirmed, res.refused, res.failed = c.sent, c.confirmed, c.refused, c.failed
            res.requests, res.retries, res.status_codes = c.requests, c.retries, dict(c.status_codes)
            res.reconcile = rec.as_dict()
            res.skipped, res.skip_kind = dict(snd.skipped), dict(snd.skip_kind)
            res.down = snd.down
            async def report(h: str) -> None:  # each facility's own outcome: a failure elsewhere is not its error
                failed = c.failed_by.get(h, 0)
                if snd.down or failed:
                    await snd.agent_status(h, f"error: {snd.down or f'{failed} payloads failed'}", error=True,
                                           final=True)
                else:
                    await snd.agent_status(h, f"idle / เสร็จ: sent {c.sent + c.confirmed}, refused {c.refused}",
                                           final=True)

            await asyncio.gather(*(report(h) for h in snd.checked_facilities()))
        res.outbox = _counts(box, facility)
        res.exit_code = _exit_code(res)
        res.seconds = time.perf_counter() - t0
        box.finish_run(run_id, res.exit_code, res.as_dict())
        log.info("จบการส่ง: สำเร็จ %d ปฏิเสธ %d ค้าง %d รหัสออก %d / run done: delivered %d, refused %d, left %d, "
                 "exit %d", res.sent + res.confirmed, res.refused, res.remaining(), res.exit_code,
                 res.sent + res.confirmed, res.refused, res.remaining(), res.exit_code)
        return res
    finally:
        if own:
            box.close()


def sync_payloads(ndjson_path: str | Path, target_url: str, credentials: Credentials | dict[str, Credentials],
                  state_path: str | Path, *, concurrency: int = 8, rate_per_minute: int = 0, timeout: float = 30.0,
                  facility: str | None = None, verify: bool = True, remove: bool = False,
                  progress: ProgressFn | None = None, full_check: bool | None = None,
                  **target_options: Any) -> SyncResult:
    """Send a ``phrsync build`` file to ``target_url`` (e.g. a sandbox from ``running(...)``) with the state in
    ``state_path`` (SQLite file, or a database URL). ``credentials``: one account for every facility, or a
    ``{hcode: Credentials}`` map. Blocking; returns the :class:`SyncResult` (``as_dict()`` for JSON)."""
    state = str(state_path)
    if "://" not in state:
        state = f"sqlite:///{Path(state).resolve()}"
    per = credentials if isinstance(credentials, dict) else {}
    default = credentials if isinstance(credentials, Credentials) else Credentials()
    tgt = Target(name="custom", base_url=target_url, timeout=timeout, concurrency=concurrency,
                 rate_per_minute=rate_per_minute, **target_options)
    from phrsync import __version__

    settings = DeliverySettings(target=tgt, state_url=state, default_credentials=default, facility_credentials=per,
                                agent_version=f"phrsync {__version__}")
    return run_blocking(run_sync(settings, ndjson_path, facility=facility, verify=verify, remove=remove,
                                 progress=progress, full_check=full_check))


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop when installed (about half the event-loop CPU), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)
