"""One sync run end to end: load a build file into the outbox, send, confirm against PHR, resend what PHR
lost, remove what the HIS deleted (guarded), and record the run. Used by ``phrsync sync``/``run`` and, through
:func:`sync_payloads`, by ``phrsync demo``.

The blocking functions :func:`sync`, :func:`retry` and :func:`run_agent` are what ``phrsync sync``/``retry``/
``run`` call: each takes the state store's lease (:class:`StoreLease`), runs, and returns a result
(``to_dict()`` for ``--json``), or raises a
:class:`phrsync.errors.PhrsyncError` (a broken state store is :class:`StoreError`, another agent on the same
store :class:`LockedError`, Ctrl+C :class:`Interrupted`).

Exit codes (:class:`phrsync.errors.Exit`): 0 everything delivered; 1 some payloads refused (data to fix);
3 some payloads not delivered yet (target down, retries exhausted: run again); 4 login refused for a
facility, or another computer sends for it (GetAgentComputerName); 5 another agent holds this state store's lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
from sqlalchemy.exc import SQLAlchemyError

from phrsync.delivery import outbox as ob
from phrsync.delivery import status as st
from phrsync.delivery.config import Credentials, DeliverySettings, Target
from phrsync.delivery.reconcile import ReconcileResult, reconcile
from phrsync.delivery.sender import IDLE_STATUS, ProgressFn, Sender
from phrsync.errors import Exit, Interrupted, LockedError, NotFoundError, UsageError
from phrsync.pdpa import mask_text

log = logging.getLogger("phrsync.delivery")
T = TypeVar("T")
EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNDELIVERED, EXIT_AUTH, EXIT_LOCKED = (
    Exit.OK, Exit.REFUSED, Exit.USAGE, Exit.UNDELIVERED, Exit.AUTH, Exit.LOCKED)


class AgentBusy(LockedError):
    """Another agent holds the lease of this state store (exit 5)."""


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
    facilities: list[str] = field(default_factory=list)  # the facilities the run loaded, contacted or sent for
    wall: dict[str, float] = field(default_factory=dict)  # elapsed seconds per phase (CPU share = cpu / wall)

    def to_dict(self) -> dict[str, Any]:
        return self.as_dict()

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
                "facilities": self.facilities,
                "cpu_seconds": {k: round(v, 3) for k, v in self.cpu.items()},
                "phase_seconds": {k: round(v, 3) for k, v in self.wall.items()}}


LEASE_SECONDS = 60.0  # a lease not renewed for this long is free (its holder hung or its computer died)


class StoreLease:
    """The state store's lease for one run (:meth:`Outbox.take_lease`): one agent per store, whatever data folder
    or computer it runs from. A thread renews it every quarter of its life; ``on_lost`` is called (once) when
    that fails because the lease expired and another agent took it — the claims of rows stay atomic anyway."""

    def __init__(self, box: ob.Outbox, computer: str, seconds: float = LEASE_SECONDS,
                 on_lost: Callable[[str], None] | None = None) -> None:
        self.box, self.computer, self.seconds, self.on_lost = box, computer, seconds, on_lost
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> StoreLease:
        """Take the lease or raise :class:`AgentBusy` naming its holder."""
        holder = self.box.take_lease(self.computer, self.seconds)
        if holder is not None:
            ago = max(0.0, self.box.store_time() - holder.heartbeat_at)
            raise AgentBusy(f"มีโปรแกรมส่งอีกตัวใช้ฐานข้อมูลสถานะนี้อยู่: {holder.computer} (เครื่อง {holder.host} pid "
                            f"{holder.pid}) ตอบล่าสุด {ago:.0f} วินาทีก่อน",
                            f"another agent holds this state store: {holder.computer} (host {holder.host}, pid "
                            f"{holder.pid}), last heartbeat {ago:.0f} s ago")
        self._thread = threading.Thread(target=self._beat, name="outbox-lease", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        until = time.monotonic() + self.seconds
        while not self._stop.wait(self.seconds / 4):
            try:
                held = self.box.renew_lease(self.seconds)
            except Exception as e:  # the store unreachable for a moment: the lease holds until it expires
                log.warning("ต่ออายุสิทธิ์ส่งไม่ได้ / cannot renew the store lease: %s", mask_text(str(e))[:200])
                held = time.monotonic() < until
                if held:
                    continue
            if not held:
                self.lost = ("สิทธิ์ส่งของฐานข้อมูลสถานะหมดอายุ (ต่ออายุไม่ทันหรือโปรแกรมอื่นรับไปแล้ว) / the state "
                             "store's lease expired (not renewed in time, or another agent took it)")
                log.error("%s", self.lost)
                if self.on_lost is not None:
                    self.on_lost(self.lost)
                return
            until = time.monotonic() + self.seconds

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.lost is None:
            with contextlib.suppress(SQLAlchemyError):
                self.box.release_lease()


def installation_name(box: ob.Outbox, base: str) -> str:
    """The computer name told to PHR: ``base`` (the host name, or ``[delivery].computer_name``) and the state
    store's installation id, so PHR's one-computer-per-facility guard tells two installations on one host
    apart."""
    iid = box.installation_id()
    return base if base.endswith(f"-{iid}") else f"{base}-{iid}"


FULL_CHECK_META = "last_full_check"


def _full_check_due(box: ob.Outbox, settings: DeliverySettings) -> bool:
    """A complete day-by-day comparison with PHR once every ``full_check_days`` (0 = every run)."""
    last = box.get_meta(FULL_CHECK_META)
    return last is None or time.time() - float(last) >= settings.full_check_days * 86400


FULL_SINCE_META = "full_check_since"  # when the full check under way began (its days checked since then are done)


def _full_check_plan(box: ob.Outbox, settings: DeliverySettings, full_check: bool | None,
                     scoped: bool) -> tuple[bool, float | None]:
    """(full check this run?, since when its days count as checked). A full check that did not finish (a day's
    question failed, a facility was skipped) is resumed by the next run for the days it has not done; a
    ``--full-check`` starts a new one. A run limited by ``--facility``/``--since`` resumes one under way for
    its days, but neither starts nor completes one for the whole store."""
    if full_check is False:
        return False, None
    now = time.time()
    under_way = box.get_meta(FULL_SINCE_META)
    if full_check is None and under_way is not None:
        return True, float(under_way)
    if full_check or _full_check_due(box, settings):
        if not scoped:
            box.set_meta(FULL_SINCE_META, str(now))
        return True, now
    return False, None


def _counts(box: ob.Outbox, facility: str | None) -> dict[str, dict[str, int]]:
    """Status counts of what this run covers: with ``--facility H`` the result (its exit code and "not
    delivered") answers for H alone, not for the backlog of facilities the run never touched."""
    counts = box.counts()
    return {h: c for h, c in counts.items() if h == facility} if facility else counts


def _exit_code(res: SyncResult) -> int:
    if {"auth", "other_agent"} & set(res.skip_kind.values()):  # PHR's side refuses this agent the facility
        return Exit.AUTH
    if res.down or res.remaining() or res.skipped or res.reconcile.get("errors"):
        return Exit.UNDELIVERED  # (a day PHR could not be asked about is not known to be delivered)
    if any(c.get(ob.REFUSED, 0) for c in res.outbox.values()):
        return Exit.REFUSED
    return Exit.OK


def _agent_states(res: SyncResult, checked: list[str]) -> dict[str, dict[str, Any]]:
    """What this run learned per facility, kept for ``status``: why it was skipped, or ok (or the target's
    failure for a facility whose rows are still waiting)."""
    now = time.time()
    out: dict[str, dict[str, Any]] = {}
    for h in checked:
        waiting = sum(res.outbox.get(h, {}).get(s, 0) for s in ob.TO_SEND)
        out[h] = ({"state": st.ERROR, "why": mask_text(res.down)[:300], "at": now} if res.down and waiting
                  else {"state": st.OK, "why": None, "at": now})
    for h, kind in res.skip_kind.items():
        why = res.skipped.get(h, "").removeprefix(f"{h}: ")  # the facility is named beside it already
        out[h] = {"state": st.STATE_OF_SKIP.get(kind, st.ERROR), "why": mask_text(why)[:300], "at": now}
    if not res.down:  # a facility the run had nothing to do for was not contacted: nothing holds it up either
        for h, c in res.outbox.items():
            if h not in out and not any(c.get(s, 0) for s in (*ob.TO_SEND, ob.SENT)):
                out[h] = {"state": st.OK, "why": st.NOTHING_TO_DO, "at": now}
    return out


def require_facility(box: ob.Outbox, ndjson: str | Path | None, facility: str | None) -> None:
    """``--facility H`` must name a facility the outbox or the build file holds: a well-formed but unknown code
    would send nothing and report an empty success."""
    if not facility or facility in box.facilities():
        return
    if ndjson:
        from phrsync.phr import buildfile

        summary = buildfile.read_summary(ndjson)
        known = set(summary.facilities) if summary is not None else set(buildfile.facilities(ndjson))
        if facility in known:
            return
    raise NotFoundError(f"ไม่มีหน่วยบริการ {facility} ในคิวส่งหรือในไฟล์ build",
                        f"no facility {facility} in the outbox or the build file",
                        hint="phrsync build --facility " + facility)


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
    lease: StoreLease | None = None
    try:
        require_facility(box, ndjson, facility)
        if dry_run:
            if ndjson:
                res.loaded = box.plan(ob.iter_ndjson(ndjson), facility, since).as_dict()
            res.attempted = box.count_to_send(facility) + res.loaded.get("new", 0) + res.loaded.get("changed", 0)
            res.outbox = _counts(box, facility)
            res.seconds = time.perf_counter() - t0
            return res
        settings = dataclasses.replace(settings, computer_name=installation_name(box, settings.computer_name))
        lease = StoreLease(box, settings.computer_name).acquire()
        run_id = box.start_run(settings.target.name)
        res.in_doubt = sum(c.get(ob.SENDING, 0) for h, c in box.counts().items() if not facility or h == facility)
        cpu, wall = time.process_time(), time.perf_counter()
        loaded: list[str] = []
        if ndjson:
            got = box.load_file(ndjson, facility, since)
            res.loaded, loaded = got.as_dict(), got.facilities
        res.cpu["load"], res.wall["load"] = time.process_time() - cpu, time.perf_counter() - wall
        if retry_refused:
            box.requeue_refused(facility)  # (counts the facilities' aggregates anew)
        res.attempted = box.count_to_send(facility)
        log.info("เริ่มส่ง %d รายการไปยัง %s (ค้างจากครั้งก่อน %d) / sending %d payloads to %s (%d in doubt)",
                 res.attempted, settings.target.name, res.in_doubt, res.attempted, settings.target.name, res.in_doubt)
        async with Sender(settings, box, progress) as snd:
            def lost(why: str) -> None:  # from the lease's thread: the run stops sending, its rows stay
                snd.down = snd.down or why

            lease.on_lost = lost
            cpu, wall = time.process_time(), time.perf_counter()
            await snd.send_outbox(facility)
            res.cpu["send"], res.wall["send"] = time.process_time() - cpu, time.perf_counter() - wall
            cpu, wall = time.process_time(), time.perf_counter()
            rec = ReconcileResult()
            facilities: list[str] = []
            if verify and snd.down is None:
                facilities = [facility] if facility else box.facilities()
                full, full_since = _full_check_plan(box, settings, full_check, scoped=bool(facility or since))
                rec.full = full
                failed: dict[tuple[str, str], tuple[str, bool]] = {}  # days whose last question failed
                for rnd in range(3):
                    r = await reconcile(snd, facilities, since, remove=remove, force=force, only_unconfirmed=rnd > 0,
                                        full=full and rnd == 0, full_since=full_since, retry_days=set(failed))
                    rec.days += r.days
                    rec.confirmed += r.confirmed
                    rec.resend += r.resend
                    rec.removed += r.removed
                    rec.guarded += r.guarded
                    rec.errors += r.errors
                    rec.notes += r.notes
                    for day, outcome in r.outcome.items():  # a day answered in a later round is no failure
                        if outcome is None:
                            failed.pop(day, None)
                        else:
                            failed[day] = outcome
                    if (not r.resend and not failed) or snd.down:
                        break
                    if r.resend:
                        await snd.send_outbox(facility)
                rec.errors += [why for why, audit in failed.values() if not audit]
                rec.deferred = [why for why, audit in failed.values() if audit]
                if full and not facility and not since and not snd.down and not snd.skipped and not failed \
                        and not rec.errors:
                    box.set_meta(FULL_CHECK_META, str(time.time()))  # complete: the next one is due in full_check_days
                    box.delete_meta(FULL_SINCE_META)
            # OrganizationSummary rounds and their resends
            res.cpu["verify"], res.wall["verify"] = time.process_time() - cpu, time.perf_counter() - wall
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
                    await snd.agent_status(h, f"{IDLE_STATUS} / เสร็จ: sent {c.sent + c.confirmed}, refused {c.refused}",
                                           final=True)

            checked = snd.checked_facilities()
            await asyncio.gather(*(report(h) for h in checked))
            await snd.refresh_aggregates(snd.dirty)  # what changed since each facility was last counted
            contacted = snd.contacted_facilities()
            reconciled = [h for h in facilities if h in contacted and h not in snd.skipped]
            phr_agent = snd.phr_agent
        res.outbox = _counts(box, facility)
        res.exit_code = int(_exit_code(res))
        res.seconds = time.perf_counter() - t0
        res.facilities = sorted({*loaded, *contacted})
        box.set_agent_states(_agent_states(res, checked))
        box.record_phr_agents(phr_agent, agent_version=settings.agent_version, computer_name=settings.computer_name)
        box.record_guarded(reconciled, rec.guarded)
        box.finish_run(run_id, res.exit_code, res.as_dict(), res.facilities)
        log.info("จบการส่ง: สำเร็จ %d ปฏิเสธ %d ค้าง %d รหัสออก %d / run done: delivered %d, refused %d, left %d, "
                 "exit %d", res.sent + res.confirmed, res.refused, res.remaining(), res.exit_code,
                 res.sent + res.confirmed, res.refused, res.remaining(), res.exit_code)
        return res
    finally:
        if lease is not None:
            lease.release()
        if own:
            box.close()


def sync_payloads(ndjson_path: str | Path, target_url: str, credentials: Credentials | dict[str, Credentials],
                  state_path: str | Path, *, concurrency: int = 8, rate_per_minute: int = 0, timeout: float = 30.0,
                  facility: str | None = None, verify: bool = True, remove: bool = False,
                  progress: ProgressFn | None = None, full_check: bool | None = None,
                  computer_name: str | None = None, **target_options: Any) -> SyncResult:
    """Send a ``phrsync build`` file to ``target_url`` (e.g. a sandbox from ``running(...)``) with the state in
    ``state_path`` (SQLite file, or a database URL). ``credentials``: one account for every facility, or a
    ``{hcode: Credentials}`` map; ``computer_name``: told to PHR (default the host name; the store's
    installation id is appended). Blocking; returns the :class:`SyncResult` (``as_dict()`` for JSON)."""
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
    if computer_name:
        settings.computer_name = computer_name
    return run_blocking(run_sync(settings, ndjson_path, facility=facility, verify=verify, remove=remove,
                                 progress=progress, full_check=full_check))


def sync(settings: DeliverySettings, ndjson: str | Path | None = None, *, progress: ProgressFn | None = None,
         **options: Any) -> SyncResult:
    """``phrsync sync``: one run under the state store's lease (``options`` as :func:`run_sync`). Raises
    :class:`AgentBusy` (exit 5), :class:`StoreError` (the state store, exit 7), :class:`UsageError` (an
    unreadable build file, exit 2) or :class:`Interrupted` (Ctrl+C; what was committed stays, exit 130)."""
    try:
        return run_blocking(run_sync(settings, ndjson, progress=progress, **options))
    except KeyboardInterrupt:
        raise Interrupted("หยุดโดยผู้ใช้ สั่งใหม่เพื่อทำต่อ", "interrupted: run again to resume") from None
    except SQLAlchemyError as e:  # the state store is unreachable or broken: nothing was sent
        raise st.store_error(e) from None
    except (ValueError, OSError) as e:  # a build file that cannot be read (its messages are bilingual already)
        raise UsageError(mask_text(str(e))) from None


def retry(settings: DeliverySettings, *, refused: bool = False, ndjson: str | Path | None = None,
          facility: str | None = None, progress: ProgressFn | None = None) -> SyncResult:
    """``phrsync retry``: resend what the outbox holds, no removal. ``refused``: refused rows too, after loading
    ``ndjson`` (the rebuilt file with the fixed data) when given."""
    return sync(settings, ndjson if refused else None, facility=facility, retry_refused=refused, remove=False,
                progress=progress)


@dataclass
class AgentRunResult:
    """The rounds of :func:`run_agent` and its exit code (the last round's with ``once``, else 0)."""

    rounds: list[SyncResult] = field(default_factory=list)
    exit_code: int = Exit.OK

    def to_dict(self) -> dict[str, Any]:
        return {"rounds": [r.to_dict() for r in self.rounds], "exit_code": self.exit_code}


def run_agent(settings: DeliverySettings, ndjson: Path | None, *, every_minutes: float = 60.0, once: bool = False,
              facility: str | None = None, stop: threading.Event | None = None,
              on_round: Callable[[SyncResult], None] | None = None,
              progress: ProgressFn | None = None) -> AgentRunResult:
    """``phrsync run``: a round every ``every_minutes`` until ``stop`` is set (the CLI sets it on SIGTERM; the
    round under way finishes). Each round loads ``ndjson`` only when its modification time changed since the
    last round that read it. Another agent on the store skips a round (exit 5 for it); any other
    :class:`PhrsyncError` ends the loop."""
    stop = stop or threading.Event()
    out = AgentRunResult()
    last_mtime = 0.0
    while True:
        mtime = ndjson.stat().st_mtime if ndjson is not None and ndjson.is_file() else 0.0
        path = ndjson if mtime and mtime != last_mtime else None
        try:
            res = sync(settings, path, facility=facility, progress=progress)
        except AgentBusy as e:
            log.warning("%s", e)
            code = int(Exit.LOCKED)
        else:
            if path is not None:
                last_mtime = mtime
            out.rounds.append(res)
            code = res.exit_code
            if on_round is not None:
                on_round(res)
        log.info("รอบเสร็จ รหัสออก %d / round done, exit code %d", code, code)
        if once:
            out.exit_code = code
            return out
        record_schedule(settings.state_url, every_minutes, next_at=time.time() + every_minutes * 60)
        try:
            stopped = stop.wait(every_minutes * 60)
        except KeyboardInterrupt:
            record_schedule(settings.state_url, every_minutes, next_at=None)
            raise Interrupted("หยุดโดยผู้ใช้", "interrupted") from None
        if stopped:
            record_schedule(settings.state_url, every_minutes, next_at=None)
            out.exit_code = Exit.OK
            return out


def record_schedule(state_url: str, every_minutes: float, next_at: float | None) -> None:
    """``phrsync run``'s rhythm in the state store (``delivery_meta`` ``schedule``): every how many minutes, when
    the next round is due (None: stopped on purpose), which process. The monitoring web tells from it whether the
    scheduler is alive: a next round long overdue means ``run`` died. A store that cannot be written just now
    only costs the web that figure."""
    value = orjson.dumps({"every_minutes": every_minutes, "next_at": next_at, "at": time.time(),
                          "host": socket.gethostname(), "pid": os.getpid()}).decode()
    try:
        box = ob.Outbox(state_url)
        try:
            box.set_meta(ob.SCHEDULE_META, value)
        finally:
            box.close()
    except SQLAlchemyError as e:
        log.warning("บันทึกรอบการส่งไม่ได้ / cannot record the schedule: %s", mask_text(str(e))[:200])


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop when installed (about half the event-loop CPU), else on asyncio's loop. Called
    from a thread that already runs an event loop (a notebook, a browser driver, an async caller of the blocking
    API), the run gets a thread of its own instead of failing."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_here(coro)
    box: dict[str, Any] = {}

    def own_thread() -> None:
        try:
            box["value"] = _run_here(coro)
        except BaseException as e:  # re-raised in the caller's thread, as if run there
            box["error"] = e

    t = threading.Thread(target=own_thread, name="phrsync-run")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def _run_here(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)
