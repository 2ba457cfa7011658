"""``status`` as a query: the delivery state of each facility, for the CLI to print and a web page to call.

One function, :func:`delivery_status`, reads the state store and returns a :class:`StatusReport`: per facility
what waits, what went, what PHR confirmed or refused (with the top reasons), what failed and why, the last
delivery, and the agent's state as the last run left it (login refused, another computer sending, ok); plus
the last run. ``build_refused`` adds what the validator refused at build time (those payloads never reach the
outbox). Times are epoch seconds; :func:`phrsync.thai.thai_datetime` shows them with their zone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from phrsync.delivery import outbox as ob
from phrsync.errors import StoreError
from phrsync.pdpa import mask_text

# the agent states a run leaves per facility (SyncResult.skip_kind → state)
OK, LOGIN_REFUSED, OTHER_AGENT, ERROR, UNKNOWN = "ok", "login_refused", "other_agent", "error", "unknown"
STATE_OF_SKIP = {"auth": LOGIN_REFUSED, "other_agent": OTHER_AGENT, "error": ERROR}
STATE_TEXT = {OK: "ปกติ / ok", LOGIN_REFUSED: "เข้าระบบไม่ได้ / login refused",
              OTHER_AGENT: "เครื่องอื่นกำลังส่ง / another computer is sending", ERROR: "ขัดข้อง / error",
              UNKNOWN: "ยังไม่เคยส่ง / not run yet"}
NOTHING_TO_DO = "ไม่มีงานค้าง / nothing to send or confirm"


@dataclass
class AgentLease:
    """The agent of this state store: its computer name told to PHR, and who holds the store's lease now."""

    computer_name: str | None = None  # this installation's name (host name + installation id), once it ran
    running: bool = False  # an agent holds the lease (renewed, not expired)
    holder: str | None = None  # its computer name
    host: str | None = None
    pid: int | None = None
    since: float | None = None
    heartbeat_at: float | None = None


@dataclass
class Reason:
    reason: str
    count: int
    example: str


@dataclass
class FacilityStatus:
    hospcode: str
    pending: int = 0  # waiting for a first attempt, or in doubt after a crash ("sending")
    sent: int = 0  # accepted, waiting for OrganizationSummary to confirm
    confirmed: int = 0
    refused: int = 0
    failed: int = 0  # given up on for a run (network, PHR down, auth): sent again next run
    removed: int = 0
    build_refused: int = 0  # refused by the validator at build time: never in the outbox
    build_waiting: int = 0  # held at build time for a drug code (an allergy without a TMT substance): not yet built
    top_refusals: list[Reason] = field(default_factory=list)
    last_delivery: float | None = None
    last_change: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    agent_state: str = UNKNOWN
    agent_state_why: str | None = None
    agent_state_at: float | None = None

    @property
    def waiting(self) -> int:
        """Rows the next run sends (pending and failed)."""
        return self.pending + self.failed

    def stuck_because(self) -> str | None:
        """Why this facility does not move, when it does not: the agent's state, else the last error."""
        if self.agent_state not in (OK, UNKNOWN):
            return f"{STATE_TEXT[self.agent_state]}: {self.agent_state_why or '-'}"
        if self.failed and self.last_error:
            return self.last_error
        return None


@dataclass
class StatusReport:
    target: str
    facilities: dict[str, FacilityStatus] = field(default_factory=dict)
    last_run: dict[str, Any] | None = None
    agent: AgentLease = field(default_factory=AgentLease)

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "facilities": {h: asdict(f) for h, f in self.facilities.items()},
                "last_run": self.last_run, "agent": asdict(self.agent)}


def delivery_status(state_url: str, *, target: str = "", build_refused: dict[str, int] | None = None,
                    facility: str | None = None, computer_name: str | None = None,
                    build_waiting: dict[str, int] | None = None) -> StatusReport:
    """The state of every facility in the store (or only ``facility``), and its agent (``computer_name``: the
    configured base name, shown with the store's installation id). A SQLite store that does not exist yet
    is an empty report (not created); one that cannot be opened or read raises :class:`StoreError`."""
    report = StatusReport(target=target)
    extra = dict(build_refused or {})
    waiting = dict(build_waiting or {})
    if state_url.startswith("sqlite:///") and not Path(state_url[len("sqlite:///"):]).exists():
        _add_build_refused(report, extra, facility, waiting)
        return report
    try:
        box = ob.Outbox(state_url)
        try:
            counts, times = box.counts(), box.facility_times()
            errors, states = box.last_errors(), box.agent_states()
            for h, c in sorted(counts.items()):
                if facility and h != facility:
                    continue
                f = FacilityStatus(h, pending=c[ob.PENDING] + c[ob.SENDING], sent=c[ob.SENT],
                                   confirmed=c[ob.CONFIRMED], refused=c[ob.REFUSED], failed=c[ob.FAILED],
                                   removed=c[ob.REMOVED], build_refused=extra.pop(h, 0),
                                   build_waiting=waiting.pop(h, 0))
                t = times.get(h, {})
                f.last_delivery, f.last_change = t.get("last_sent"), t.get("last_change")
                if f.refused:
                    f.top_refusals = [Reason(**r) for r in box.top_reasons(h)]
                if h in errors:
                    f.last_error_at, f.last_error = errors[h][0], mask_text(errors[h][1])[:300]
                st = states.get(h)
                if st:
                    f.agent_state = str(st.get("state") or UNKNOWN)
                    f.agent_state_why = st.get("why")
                    f.agent_state_at = st.get("at")
                report.facilities[h] = f
            report.last_run = box.last_run()
            report.agent = _agent_lease(box, computer_name)
        finally:
            box.close()
    except (SQLAlchemyError, ValueError) as e:
        raise store_error(e) from None
    _add_build_refused(report, extra, facility, waiting)
    return report


def build_refusals(build_file: str | Path | None) -> dict[str, int] | None:
    """Payloads the validator refused at build time, per facility, from the build's summary beside
    ``build_file`` (None when there is none, or it is older than the file)."""
    if build_file is None:
        return None
    from phrsync.phr.buildfile import read_summary

    summary = read_summary(build_file)
    if summary is None:
        return None
    return {h: summary.count(h, "refused") for h in summary.facilities}


def build_waiting(build_file: str | Path | None) -> dict[str, int] | None:
    """Payloads the build held for a drug code, per facility, from the summary beside ``build_file`` (None
    when there is none, or it is older than the file); the codes themselves: ``phrsync codes unmapped``."""
    if build_file is None:
        return None
    from phrsync.phr.buildfile import read_summary

    summary = read_summary(build_file)
    if summary is None:
        return None
    return {h: summary.count(h, "waiting") for h in summary.facilities}


def _agent_lease(box: ob.Outbox, base: str | None) -> AgentLease:
    """Read only: a store whose agent never ran has no installation id yet, and status does not make one."""
    iid = box.get_meta(ob.INSTALLATION_META)
    out = AgentLease(computer_name=f"{base}-{iid}" if base and iid else None)
    held = box.lease()
    if held is not None and held.expires_at > box.store_time():
        out.running, out.holder, out.host, out.pid = True, held.computer, held.host, held.pid
        out.since, out.heartbeat_at = held.acquired_at, held.heartbeat_at
    return out


def _add_build_refused(report: StatusReport, extra: dict[str, int], facility: str | None,
                       waiting: dict[str, int] | None = None) -> None:
    """A facility whose every payload the validator refused (or the build held for a code) has no outbox rows,
    only these counts."""
    waiting = waiting or {}
    for h in sorted(set(extra) | set(waiting)):
        n, w = extra.get(h, 0), waiting.get(h, 0)
        if (n or w) and (not facility or h == facility):
            report.facilities[h] = FacilityStatus(h, build_refused=n, build_waiting=w)


def store_error(e: Exception) -> StoreError:
    """One masked line, not the driver's traceback (a hundred lines, with the URL's password in it)."""
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    why = mask_text(first)[:300]
    return StoreError(f"ฐานข้อมูลสถานะใช้ไม่ได้: {why}", f"state store error: {why}")
