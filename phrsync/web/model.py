"""What the monitoring pages show, as typed values: the one read model of the web (and of anything else that
wants the same figures, e.g. a test comparing the overview with ``phrsync status --json``).

Every figure that phrsync cannot know yet is ``None`` (shown as "ยังไม่ทราบ / not known yet"), never 0: a
facility whose agent never reconciled has no "PHR holds" figure, a province without a staging store has no
HIS figure. Counts come from the small per-facility-per-day aggregates that import, build and sync keep up to
date (:func:`phrsync.f43.read.encounter_day_totals`, the state store's day counts), never from a scan of the
visits, so each function answers in milliseconds on a province of millions of encounters.

Times are epoch seconds (shown with :func:`phrsync.thai.thai_datetime`), days are ``datetime.date``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson

from phrsync.delivery import outbox as ob
from phrsync.delivery import status
from phrsync.errors import NotFoundError
from phrsync.pdpa import mask_text
from phrsync.phr import buildfile
from phrsync.phr.report import CATEGORIES, fix_for, quarantine_example
from phrsync.phr.rules import RULES
from phrsync.terminology import places
from phrsync.thai import BANGKOK, local_time, thai_datetime
from phrsync.web import readers

T = TypeVar("T")

# problems a facility can have (the facilities table filters on these; the overview's attention list names them)
SILENT, REFUSED, FAILED, STUCK, QUARANTINE, GUARDED, NOT_SENT, WAITING_CODE = (
    "silent", "refused", "failed", "stuck", "quarantine", "guarded", "not_sent", "waiting_code")
PROBLEMS = (SILENT, REFUSED, FAILED, STUCK, QUARANTINE, GUARDED, NOT_SENT, WAITING_CODE)
PROBLEM_TEXT = {
    SILENT: ("ไม่ได้ส่งนาน", "silent"),
    REFUSED: ("มีรายการถูกปฏิเสธ", "refused payloads"),
    FAILED: ("ส่งไม่สำเร็จ", "failed deliveries"),
    STUCK: ("ตัวส่งติดขัด", "agent stuck"),
    QUARANTINE: ("มีแถวถูกกัก", "quarantined rows"),
    GUARDED: ("งดการลบจาก PHR", "removals held back"),
    NOT_SENT: ("ยังไม่เคยส่ง", "never sent"),
    WAITING_CODE: ("รอรหัสยา", "waiting for a drug code"),
}
# who must act on a refusal
OWNER_FACILITY, OWNER_CODES, OWNER_CONFIG = "facility", "province_codes", "configuration"
OWNER_TEXT = {
    OWNER_FACILITY: ("หน่วยบริการแก้ข้อมูลใน HIS", "the facility fixes its HIS data"),
    OWNER_CODES: ("จังหวัดเพิ่มรหัสในตารางรหัส", "the province adds the code to its code table"),
    OWNER_CONFIG: ("ผู้ดูแลระบบแก้การตั้งค่า", "the administrator fixes the configuration"),
}


@dataclass(frozen=True)
class Sources:
    """Where the web reads: the staging store (DuckDB, opened read-only and briefly), the state store, the last
    build file (and its ``.summary.json``), the target the agent sends to, and a sandbox folder for the PHR
    centre view when testing."""

    state_url: str
    staging: Path | None = None
    build_file: Path | None = None
    target: str = ""
    computer_name: str | None = None
    sandbox_data_dir: Path | None = None
    silent_days: int = 7
    facility_names: Mapping[str, str] = field(default_factory=dict, hash=False)  # ``[facilities]``: over the tables
    code_store: Path | None = None  # the imported codes (phrsync codes import-*): the unmapped codes' review page

    @classmethod
    def from_config(cls, cfg: Any) -> Sources:
        """From a :class:`phrsync.config.Config` (its ``[web]``, ``[delivery]`` and ``data_dir``): the state store
        and target as a run resolves them (``PHRSYNC_STATE_URL``, ``PHRSYNC_TARGET`` included), the build file of
        ``[web] build_file`` else the one the agent loads; relative paths from the configuration file's folder."""
        from phrsync.delivery.config import base_computer_name, default_input, resolve_state_url, target_name
        from phrsync.terminology.codestore import config_store_path

        web = cfg.settings.web
        base = cfg.source.parent if cfg.source else Path.cwd()

        def path(value: str | None) -> Path | None:
            if not value:
                return None
            p = Path(value).expanduser()
            return p if p.is_absolute() else base / p

        return cls(state_url=resolve_state_url(cfg), staging=Path(cfg.staging),
                   build_file=path(web.build_file) or default_input(cfg), target=target_name(cfg),
                   computer_name=base_computer_name(cfg), sandbox_data_dir=path(web.sandbox_data_dir),
                   silent_days=web.silent_days or 7, facility_names=dict(cfg.settings.facilities),
                   code_store=config_store_path(cfg))


@dataclass(frozen=True)
class FacilityInfo:
    """A facility as the code tables (and ``[facilities]`` in phrsync.toml) name it; unknown parts are None."""

    hospcode: str
    name: str | None = None
    kind: str | None = None  # รพ.สต., รพช., ...
    district_code: str | None = None  # DOPA ampur code, 4 digits
    district: str | None = None  # Thai name
    district_en: str | None = None
    province_code: str | None = None
    region: str | None = None  # health region (เขตสุขภาพ) number


@dataclass
class DayPoint:
    """One facility's (or the province's) day."""

    day: dt.date
    his: int | None = None  # encounters in the staging store
    built: int | None = None  # encounter payloads the outbox holds for the day (loaded from the build)
    confirmed: int | None = None  # confirmed by PHR (OrganizationSummary listed them)
    phr: int | None = None  # refs PHR said it holds when the agent last asked about the day (None: never asked)


@dataclass
class FacilityRow:
    """One line of the facilities table (and the header of a facility's page)."""

    info: FacilityInfo
    his: int | None = None  # encounters in the staging store (all days)
    last_his_day: dt.date | None = None
    built: int | None = None  # encounter payloads in the outbox
    confirmed: int | None = None  # encounter payloads PHR confirmed
    phr_holds: int | None = None  # what PHR said it holds over the days the agent asked about
    pct_in_phr: float | None = None  # phr_holds (or confirmed when never asked) / his × 100
    pending: int | None = None  # every endpoint: waiting for a first attempt or in doubt
    refused: int | None = None  # every endpoint, by PHR
    build_refused: int | None = None  # refused by the validator at build time (never in the outbox)
    build_waiting: int | None = None  # held at build time for a drug code (built once the code is mapped)
    failed: int | None = None
    quarantined: int | None = None  # staging rows held back by the row checks
    last_received: float | None = None  # when PHR last accepted a payload of this facility
    agent_version: str | None = None
    agent_state: str = "unknown"  # phrsync.delivery.status states
    agent_state_text: str = ""
    computer: str | None = None  # the agent's computer name told to PHR
    last_error: str | None = None  # masked
    last_error_at: float | None = None
    problems: list[str] = field(default_factory=list)  # PROBLEMS

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["last_his_day"] = self.last_his_day.isoformat() if self.last_his_day else None
        return d


@dataclass
class DistrictRow:
    code: str | None  # None: facilities of no known district
    name: str
    name_en: str
    facilities: int
    his_month: int | None = None
    phr_month: int | None = None
    pct_month: float | None = None
    pending: int | None = None
    refused: int | None = None
    failed: int | None = None


@dataclass
class Attention:
    """One line of "needs attention"."""

    kind: str  # PROBLEMS, or "scheduler" / "agent"
    text_th: str
    text_en: str
    hospcode: str | None = None
    since: float | None = None


@dataclass
class Overview:
    as_of: float  # when these figures were read
    facilities: int  # facilities known to any store
    sending_today: int | None  # facilities PHR accepted something from today (Asia/Bangkok)
    sending_7d: int | None
    silent: int | None  # nothing accepted for more than silent_days (or never, with data to send)
    silent_days: int
    month: str  # "2026-12"
    his_month: int | None
    phr_month: int | None
    pct_month: float | None
    pending: int | None
    refused: int | None
    failed: int | None
    daily: list[DayPoint] = field(default_factory=list)  # the province, last 90 days
    districts: list[DistrictRow] = field(default_factory=list)
    attention: list[Attention] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (th, en): what is not known yet, and why


@dataclass
class RefusalGroup:
    reason: str
    count: int
    owner: str  # OWNER_*
    examples: list[str] = field(default_factory=list)  # masked (no full CID)
    endpoint: str | None = None
    at_build: bool = False  # refused by the validator at build time, not by PHR


@dataclass
class QuarantineGroup:
    rule: str
    file: str
    count: int
    reason_th: str
    reason_en: str
    examples: list[str] = field(default_factory=list)  # masked


@dataclass
class RunRow:
    id: int
    target: str
    started_at: float
    finished_at: float | None
    exit_code: int | None
    sent: int | None = None
    confirmed: int | None = None
    refused: int | None = None
    retries: int | None = None
    errors: list[str] = field(default_factory=list)  # masked
    facilities: list[str] = field(default_factory=list)  # the facilities the run touched (when recorded)


@dataclass
class Scheduler:
    """Whether ``phrsync run`` is alive: its lease, the last round and when the next is due."""

    running: bool = False  # an agent holds the state store's lease now
    holder: str | None = None
    last_run_at: float | None = None
    next_run_at: float | None = None  # None: not scheduled (``run`` not running, or ``sync`` by hand)
    every_minutes: float | None = None
    late: bool = False  # the next round is overdue


@dataclass
class FacilityDetail:
    row: FacilityRow
    days: list[DayPoint] = field(default_factory=list)  # every day with HIS or outbox data, in order
    refusals: list[RefusalGroup] = field(default_factory=list)
    quarantine: list[QuarantineGroup] = field(default_factory=list)
    quality_notes: list[tuple[str, str]] = field(default_factory=list)  # (th, en) from the build's summary
    runs: list[RunRow] = field(default_factory=list)  # the runs that touched it, newest first
    notes: list[tuple[str, str]] = field(default_factory=list)  # (th, en): what is not known yet, and why


@dataclass
class PhrFacility:
    """A row as the national PHR Dashboard shows it (its 28-column export, §2.1 of monitoring-did.md)."""

    info: FacilityInfo
    patients: int | None = None
    encounters: int | None = None
    conditions: int | None = None
    medications: int | None = None
    observations: int | None = None
    appointments: int | None = None
    allergies: int | None = None
    immunizations: int | None = None
    his_3y: int | None = None  # the HIS's encounters of the last 3 years (OrgEncounterSummary)
    pct_in_phr: float | None = None
    last_received: float | None = None
    agent_version: str | None = None
    agent_status: str | None = None
    agent_error: str | None = None
    computer: str | None = None


@dataclass
class PhrRegion:
    region: str
    province: str
    facilities: int
    patients: int | None
    encounters: int | None
    storage_bytes: int | None  # None: PHR publishes no definition of "storage" (see the page's note)


@dataclass
class PhrCentre:
    source: str  # "sandbox" (read from the local server's store) | "agent" (what the agent learned from PHR)
    as_of: float | None
    regions: list[PhrRegion] = field(default_factory=list)
    facilities: list[PhrFacility] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)


# -- the functions the pages call ----------------------------------------------------------------------------

_SEND_STATES = (ob.PENDING, ob.SENDING)  # "pending": waiting for a first attempt, or in doubt after a crash
_HELD = tuple(s for s in ob.STATUSES if s != ob.REMOVED)  # rows the outbox holds for PHR (removed: gone)
SCHEDULE_GRACE = 300.0  # seconds a round may start late before the scheduler counts as late


def _today(today: dt.date | None) -> dt.date:
    return today or dt.datetime.now(BANGKOK).date()


def _day(epoch: float | None) -> dt.date | None:
    return local_time(epoch).date() if epoch else None


def _pct(part: int | None, whole: int | None) -> float | None:
    return round(100.0 * part / whole, 1) if part is not None and whole else None


def _sum(values: list[int | None]) -> int | None:
    """A total that is None when every part is unknown (and counts only the known parts otherwise)."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _info(p: places.Place | None, hospcode: str, names: Mapping[str, str]) -> FacilityInfo:
    d = p.district if p else None
    prov = p.province if p else None
    return FacilityInfo(hospcode=hospcode, name=names.get(hospcode) or (p.name if p else None),
                        kind=p.kind if p else None, district_code=d.code if d else None,
                        district=(d.name or None) if d else None, district_en=(d.name_en or None) if d else None,
                        province_code=prov.code if prov else (d.code[:2] if d else None),
                        region=(prov.region or None) if prov else None)


@dataclass
class _Read:
    """Everything the pages' figures come from, read once per call: each part None when its store is unknown."""

    src: Sources
    now: float
    staging: readers.StagingFigures | None
    totals: dict[str, dict[str, dict[str, int]]] | None  # state store aggregates: {h: {endpoint: {status: n}}}
    facilities: dict[str, dict[str, Any]] | None  # {h: agg_facilities row}
    agent_states: dict[str, dict[str, Any]]
    phr_agents: dict[str, dict[str, Any]]
    guarded: dict[str, list[dict[str, Any]]]
    summary: buildfile.BuildSummary | None
    notes: list[tuple[str, str]]
    names: dict[str, FacilityInfo] = field(default_factory=dict)
    version: tuple[Any, ...] | None = None  # the state store's, read once for all of a page's reads

    def cached(self, what: str, fn: Callable[[ob.Outbox], T]) -> T | None:
        """A read of the state store, kept until it changes (None when there is no store)."""
        if self.totals is None:
            return None
        return readers.state_cached(self.src.state_url, what, fn, self.version)[0]

    def codes(self) -> list[str]:
        """Every facility any store knows."""
        out: set[str] = set()
        if self.staging is not None:
            out |= set(self.staging.totals) | set(self.staging.quarantined)
        out |= set(self.totals or {}) | set(self.phr_agents)
        if self.summary is not None:
            out |= set(self.summary.facilities)
        return sorted(h for h in out if h)


def _read(src: Sources) -> _Read:
    now = time.time()
    stg, notes = readers.staging(src.staging)

    def from_state(box: ob.Outbox) -> tuple[Any, ...] | None:
        if box.last_load() is None and box.last_run() is None:
            return None  # (a PostgreSQL store exists before its first load: it knows nothing yet either)
        return (box.aggregate_totals(), box.aggregate_facilities(), box.agent_states(), box.phr_agents(),
                box.guarded())

    version, _n = readers.state(src.state_url, lambda box: box.aggregates_version())
    got, more = readers.state_cached(src.state_url, "facilities", from_state, version)
    if got is None and not more:
        more = [readers.NO_STATE]
    notes += more
    totals, facs, states, agents, guarded = got if got is not None else (None, None, {}, {}, {})
    if facs is not None and not any(f.get("phr_days") for f in facs.values()):
        notes.append(("ยังไม่เคยตรวจกับ PHR (OrganizationSummary): ยังไม่ทราบว่า PHR มีเท่าไร ใช้จำนวนที่ PHR ยืนยันแทน",
                      "the agent has not asked PHR what it holds yet (OrganizationSummary): the confirmed "
                      "counts stand in"))
    r = _Read(src, now, stg, totals, facs, states, agents, guarded, readers.build_summary(src.build_file), notes,
              version=version)
    r.names = directory(src, known=r.codes())
    return r


def directory(src: Sources, known: list[str] | None = None) -> dict[str, FacilityInfo]:
    """Every facility of the code tables plus those only the stores know, by code (``[facilities]`` names in
    phrsync.toml win over the tables'). ``known``: the stores' codes when the caller read them already."""
    table = places.facilities()
    codes = set(table) | set(src.facility_names)
    codes |= set(known if known is not None else _read(src).codes())
    return {h: _info(table.get(h), h, src.facility_names) for h in sorted(codes)}


def _row(r: _Read, h: str) -> FacilityRow:
    info = r.names.get(h) or FacilityInfo(h)
    row = FacilityRow(info=info)
    if r.staging is not None:
        his, last = r.staging.totals.get(h, (0, None))
        row.his, row.last_his_day, row.quarantined = his, last, r.staging.quarantined.get(h, 0)
    if r.totals is not None:
        eps = r.totals.get(h, {})
        enc = eps.get(ob.ENCOUNTER_EP, {})
        row.built = sum(enc.get(s, 0) for s in _HELD)
        row.confirmed = enc.get(ob.CONFIRMED, 0)
        row.pending = sum(c.get(s, 0) for c in eps.values() for s in _SEND_STATES)
        row.refused = sum(c.get(ob.REFUSED, 0) for c in eps.values())
        row.failed = sum(c.get(ob.FAILED, 0) for c in eps.values())
        f = (r.facilities or {}).get(h, {})
        row.last_received = f.get("last_sent")
        if f.get("phr_days"):
            row.phr_holds = f.get("phr_held")
        best = f.get("phr_best")
        row.pct_in_phr = _pct(best if best is not None else row.confirmed, row.his)
        if f.get("last_error"):
            row.last_error, row.last_error_at = mask_text(str(f["last_error"]))[:300], f.get("last_error_at")
    if r.summary is not None:
        row.build_refused = r.summary.count(h, "refused")
        row.build_waiting = r.summary.count(h, "waiting")
    st = r.agent_states.get(h)
    if st:
        row.agent_state = str(st.get("state") or status.UNKNOWN)
    row.agent_state_text = status.STATE_TEXT.get(row.agent_state, row.agent_state)
    a = r.phr_agents.get(h, {})
    row.agent_version = a.get("agent_version")
    row.computer = a.get("computer_name")
    row.problems = _problems(r, h, row, st)
    return row


def _stuck(row: FacilityRow, st: dict[str, Any] | None) -> str | None:
    """:meth:`phrsync.delivery.status.FacilityStatus.stuck_because` for a row of the aggregates."""
    fs = status.FacilityStatus(row.info.hospcode, failed=row.failed or 0, last_error=row.last_error)
    if st:
        fs.agent_state, fs.agent_state_why = str(st.get("state") or status.UNKNOWN), st.get("why")
    why = fs.stuck_because()
    return mask_text(why)[:300] if why else None


def _silent(r: _Read, row: FacilityRow) -> bool:
    has_data = bool(row.his) or bool(row.built)
    cutoff = r.now - r.src.silent_days * 86400
    return has_data and (row.last_received is None or row.last_received < cutoff)


def _problems(r: _Read, h: str, row: FacilityRow, st: dict[str, Any] | None) -> list[str]:
    out = []
    if r.totals is not None:
        if row.last_received is None and (row.his or row.built):
            out.append(NOT_SENT)
        elif _silent(r, row):
            out.append(SILENT)
    if row.refused or row.build_refused:
        out.append(REFUSED)
    if row.build_waiting:
        out.append(WAITING_CODE)
    if row.failed:
        out.append(FAILED)
    if _stuck(row, st):
        out.append(STUCK)
    if row.quarantined:
        out.append(QUARANTINE)
    if r.guarded.get(h):
        out.append(GUARDED)
    return out


def facility_rows(src: Sources) -> list[FacilityRow]:
    """The facilities table: one row per facility any store knows, sorted by code."""
    r = _read(src)
    return [_row(r, h) for h in r.codes()]


def _month_figures(src: Sources, r: _Read, first: dt.date, last: dt.date
                   ) -> tuple[dict[str, int] | None, dict[str, int] | None]:
    """Per facility, the month's HIS encounters and what PHR holds of them (per day: what PHR said when asked,
    else the rows it confirmed); None for a figure whose store is unknown."""
    month = f"{first:%Y-%m}"  # (first and last are one calendar month's)
    his = {h: r.staging.month(h, month) for h in r.staging.totals} if r.staging is not None else None
    return his, r.cached(f"month:{first}:{last}", lambda box: box.phr_best(first.isoformat(), last.isoformat()))


def _daily(src: Sources, r: _Read, first: dt.date, last: dt.date) -> list[DayPoint]:
    """The province's days from ``first`` to ``last``: HIS, built, confirmed and what PHR said."""
    sums: dict[str, dict[str, int]] | None = None
    phr: dict[str, int] = {}
    if r.totals is not None:
        def read(box: ob.Outbox) -> tuple[Any, Any]:
            return (box.aggregate_day_sums(first.isoformat(), last.isoformat()),
                    box.phr_day_sums(first.isoformat(), last.isoformat()))

        got = r.cached(f"daily:{first}:{last}", read)
        if got is not None:
            sums, phr = got
    out = []
    day = first
    while day <= last:
        k = day.isoformat()
        c = sums.get(k, {}) if sums is not None else None
        out.append(DayPoint(day=day, his=r.staging.province.get(day, 0) if r.staging is not None else None,
                            built=sum(c.get(s, 0) for s in _HELD) if c is not None else None,
                            confirmed=c.get(ob.CONFIRMED, 0) if c is not None else None, phr=phr.get(k)))
        day += dt.timedelta(days=1)
    return out


def overview(src: Sources, *, today: dt.date | None = None) -> Overview:
    """The morning page: tiles, the province's last 90 days, districts, and what needs attention."""
    r = _read(src)
    day = _today(today)
    rows = [_row(r, h) for h in r.codes()]
    first = day.replace(day=1)
    last = (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
    his_m, phr_m = _month_figures(src, r, first, last)
    known_state = r.totals is not None
    ov = Overview(as_of=r.now, facilities=len(rows), sending_today=None, sending_7d=None, silent=None,
                  silent_days=src.silent_days, month=f"{day:%Y-%m}",
                  his_month=sum(his_m.values()) if his_m is not None else None,
                  phr_month=sum(phr_m.values()) if phr_m is not None else None, pct_month=None,
                  pending=_sum([x.pending for x in rows]) if known_state else None,
                  refused=_sum([x.refused for x in rows]) if known_state else None,
                  failed=_sum([x.failed for x in rows]) if known_state else None)
    if known_state:
        ov.pending, ov.refused, ov.failed = ov.pending or 0, ov.refused or 0, ov.failed or 0
        got = [_day(x.last_received) for x in rows]
        ov.sending_today = sum(1 for d in got if d == day)
        ov.sending_7d = sum(1 for d in got if d is not None and (day - d).days < 7)
        ov.silent = sum(1 for x in rows if SILENT in x.problems or NOT_SENT in x.problems)
    ov.pct_month = _pct(ov.phr_month, ov.his_month)
    ov.daily = _daily(src, r, day - dt.timedelta(days=89), day)
    ov.districts = _districts(rows, his_m, phr_m, known_state)
    ov.attention = _attention(r, rows)
    ov.notes = list(r.notes)
    return ov


def _districts(rows: list[FacilityRow], his_m: dict[str, int] | None, phr_m: dict[str, int] | None,
               known_state: bool) -> list[DistrictRow]:
    groups: dict[str | None, list[FacilityRow]] = {}
    for x in rows:
        groups.setdefault(x.info.district_code, []).append(x)
    out = []
    for code, members in sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0] or "")):
        info = members[0].info
        d = DistrictRow(code=code, name=info.district or (code or "ไม่ทราบอำเภอ"),
                        name_en=info.district_en or (code or "district not known"), facilities=len(members))
        if his_m is not None:
            d.his_month = sum(his_m.get(x.info.hospcode, 0) for x in members)
        if phr_m is not None:
            d.phr_month = sum(phr_m.get(x.info.hospcode, 0) for x in members)
        d.pct_month = _pct(d.phr_month, d.his_month)
        if known_state:
            d.pending = sum(x.pending or 0 for x in members)
            d.refused = sum(x.refused or 0 for x in members)
            d.failed = sum(x.failed or 0 for x in members)
        out.append(d)
    return out


def _label(row: FacilityRow) -> str:
    return f"{row.info.hospcode} {row.info.name}" if row.info.name else row.info.hospcode


def _attention(r: _Read, rows: list[FacilityRow]) -> list[Attention]:
    """Stuck agents, new refusals (within ``silent_days``), silent facilities, held-back removals, a late
    scheduler: the first things to look at, the most urgent first."""
    out: list[Attention] = []
    recent = r.now - r.src.silent_days * 86400
    for x in rows:
        why = _stuck(x, r.agent_states.get(x.info.hospcode))
        if why:
            out.append(Attention(STUCK, f"{_label(x)}: ตัวส่งติดขัด — {why}", f"{_label(x)}: agent stuck — {why}",
                                 x.info.hospcode, x.last_error_at))
    for x in rows:
        at = (r.facilities or {}).get(x.info.hospcode, {}).get("last_refused_at")
        if x.refused and at and at >= recent:
            out.append(Attention(REFUSED, f"{_label(x)}: ถูกปฏิเสธ {x.refused:,} รายการ",
                                 f"{_label(x)}: {x.refused:,} payloads refused", x.info.hospcode, at))
    for x in rows:
        if SILENT in x.problems or NOT_SENT in x.problems:
            if x.last_received:
                th = f"{_label(x)}: ไม่ได้ส่งถึง PHR ตั้งแต่ {thai_datetime(x.last_received)}"
                en = f"{_label(x)}: nothing reached PHR since {thai_datetime(x.last_received)}"
            else:
                th, en = f"{_label(x)}: ยังไม่เคยส่งถึง PHR", f"{_label(x)}: nothing has reached PHR yet"
            out.append(Attention(SILENT, th, en, x.info.hospcode, x.last_received))
    for h, days in sorted(r.guarded.items()):
        if not days:
            continue
        n = sum(int(g.get("would_remove") or 0) for g in days)
        label = _label(next((x for x in rows if x.info.hospcode == h), FacilityRow(FacilityInfo(h))))
        out.append(Attention(GUARDED, f"{label}: งดการลบจาก PHR {n:,} รายการใน {len(days)} วัน (เกินสัดส่วนที่กำหนด)",
                             f"{label}: {n:,} removals from PHR held back on {len(days)} days (over the limit)",
                             h, max((g.get("at") or 0 for g in days), default=None) or None))
    sched = _scheduler(r.src)
    if sched.late and sched.next_run_at:
        when = thai_datetime(sched.next_run_at)
        out.append(Attention("scheduler", f"รอบส่งอัตโนมัติเลยกำหนด (ควรเริ่ม {when}): phrsync run อาจหยุดทำงาน",
                             f"the scheduled round is overdue (due {when}): phrsync run may have stopped",
                             None, sched.next_run_at))
    return out


# -- one facility -----------------------------------------------------------------------------------------------

def _owner(reason: str, http_status: int | None, example: str) -> str:
    """Who must act on a refusal PHR gave: the administrator for a login, account or target problem; the province
    for a code its code tables lack; else the facility, in its HIS."""
    text = f"{reason} {example}".lower()
    if http_status in (401, 403, 404, 405) or any(w in text for w in ("token", "jwt", "login", "permission",
                                                                      "unauthor", "forbidden")):
        return OWNER_CONFIG
    rule = reason.rsplit(": ", 1)[-1].strip()
    if fix_for("refused", rule)[0] == "province" or "codingsystem" in text.replace(" ", "").replace("_", ""):
        return OWNER_CODES
    return OWNER_FACILITY


def _reason_text(reason: str) -> str:
    """``Patient.birthDate: required`` → the rule's Thai and English title beside its path."""
    path, _, rule = reason.rpartition(": ")
    r = RULES.get(rule.strip())
    if r is None:
        return reason or "ไม่ทราบเหตุผล / no reason given"
    return f"{path + ': ' if path else ''}{r.title_th} / {r.title_en}"


def _refusals(src: Sources, r: _Read, h: str) -> list[RefusalGroup]:
    out: list[RefusalGroup] = []
    if r.totals is not None:
        for g in r.cached(f"reasons:{h}", lambda box: box.aggregate_reasons(h)) or []:
            example = mask_text(str(g.get("example") or ""))[:400]
            out.append(RefusalGroup(reason=_reason_text(str(g["reason"] or "")), count=int(g["n"]),
                                    owner=_owner(str(g["reason"] or ""), g.get("http_status"), example),
                                    examples=[example] if example else [], endpoint=g["endpoint"]))
    if r.summary is not None:
        for i in r.summary.issues.get(h, []):
            if i.get("category") not in ("refused", "skipped"):
                continue
            where = f"{i.get('path')}: " if i.get("path") else ""
            out.append(RefusalGroup(
                reason=f"{where}{i.get('message_th', '')} / {i.get('message_en', '')}", count=int(i.get("count", 0)),
                owner=OWNER_CODES if i.get("owner") == "province" else OWNER_FACILITY,
                examples=[mask_text(str(e)) for e in i.get("examples", [])][:3], endpoint=i.get("endpoint_or_file"),
                at_build=True))
    return out


def _quality(r: _Read, h: str) -> list[tuple[str, str]]:
    out = []
    for i in (r.summary.issues.get(h, []) if r.summary is not None else []):
        cat = str(i.get("category"))
        if cat in ("refused", "skipped") or cat not in CATEGORIES:
            continue
        th_cat, en_cat, _order = CATEGORIES[cat]
        where = f" ({i.get('path')})" if i.get("path") else ""
        n = int(i.get("count", 0))
        out.append((f"{th_cat}: {i.get('message_th', '')}{where} {n:,} รายการ — {i.get('fix_th', '')}",
                    f"{en_cat}: {i.get('message_en', '')}{where} {n:,} items — {i.get('fix_en', '')}"))
    return out


def _facility_days(src: Sources, r: _Read, h: str) -> list[DayPoint]:
    rows: dict[str, dict[str, int]] | None = None
    asked: dict[str, int] = {}
    if r.totals is not None:
        got = r.cached(f"days:{h}", lambda box: (box.aggregate_days(h), box.phr_days(h)))
        if got is not None:
            rows = {d: c for _h, d, c in got[0]}
            asked = {d: n for _h, d, n, _at in got[1] if n is not None}
    his: dict[dt.date, int] | None = None
    if r.staging is not None:
        got_days, notes = readers.staging_days(src.staging, h)
        r.notes.extend(n for n in notes if n not in r.notes)
        his = dict(got_days) if got_days is not None else None
    days = sorted({*(his or {}), *(dt.date.fromisoformat(d) for d in (rows or {}))})
    out = []
    for d in days:
        c = rows.get(d.isoformat(), {}) if rows is not None else None
        out.append(DayPoint(day=d, his=his.get(d, 0) if his is not None else None,
                            built=sum(c.get(s, 0) for s in _HELD) if c is not None else None,
                            confirmed=c.get(ob.CONFIRMED, 0) if c is not None else None,
                            phr=asked.get(d.isoformat())))
    return out


def facility_detail(src: Sources, hospcode: str) -> FacilityDetail:
    """One facility's page; :class:`phrsync.errors.NotFoundError` when no store and no code table knows it."""
    r = _read(src)
    if hospcode not in r.names:
        raise NotFoundError(f"ไม่รู้จักหน่วยบริการ {hospcode}", f"no facility {hospcode}",
                            hint="ไม่มีในตารางรหัสและในที่เก็บข้อมูลใด / in no code table and no store")
    out = FacilityDetail(row=_row(r, hospcode))
    out.days = _facility_days(src, r, hospcode)
    out.refusals = _refusals(src, r, hospcode)
    if r.staging is not None:
        out.quarantine = [QuarantineGroup(rule=g.rule, file=g.file, count=g.count, reason_th=g.reason_th,
                                          reason_en=g.reason_en,
                                          examples=[quarantine_example(g.file, e) for e in g.examples])
                          for g in r.staging.quarantine.get(hospcode, [])]
    out.quality_notes = _quality(r, hospcode)
    out.runs = [_run_row(d) for d in r.cached(f"runs:50:{hospcode}", lambda box: box.recent_runs(50, hospcode)) or []]
    out.notes = list(r.notes)
    return out


def notes(src: Sources) -> list[tuple[str, str]]:
    """What the pages cannot know now, and why (no staging store, an import running, no state store, PHR never
    asked): what :attr:`Overview.notes` says, for the pages that show no overview (the facilities table)."""
    return list(_read(src).notes)


# -- runs and the scheduler ------------------------------------------------------------------------------------

def _run_row(d: dict[str, Any]) -> RunRow:
    s = d.get("summary") or {}
    errors = [*(s.get("reconcile") or {}).get("errors", []), *(s.get("skipped") or {}).values()]
    if s.get("down"):
        errors.insert(0, s["down"])
    return RunRow(id=int(d["id"]), target=str(d["target"]), started_at=float(d["started_at"]),
                  finished_at=d.get("finished_at"), exit_code=d.get("exit_code"), sent=s.get("sent"),
                  confirmed=s.get("confirmed"), refused=s.get("refused"), retries=s.get("retries"),
                  errors=[mask_text(str(e))[:300] for e in errors],
                  facilities=list(d.get("facilities") or s.get("facilities") or []))


def _scheduler(src: Sources) -> Scheduler:
    def read(box: ob.Outbox) -> tuple[Any, ...]:
        held = box.lease()
        return held, box.store_time(), box.get_meta(ob.SCHEDULE_META), box.last_run()

    got, _notes = readers.state(src.state_url, read)
    out = Scheduler()
    if got is None:
        return out
    held, now, sched, last = got
    if held is not None and held.expires_at > now:
        out.running, out.holder = True, held.computer
    if last is not None:
        out.last_run_at = last.get("finished_at") or last.get("started_at")
    if sched:
        v = orjson.loads(sched)
        out.every_minutes, out.next_run_at = v.get("every_minutes"), v.get("next_at")
        out.late = bool(out.next_run_at and not out.running and time.time() > out.next_run_at + max(
            SCHEDULE_GRACE, 0.1 * 60 * (out.every_minutes or 0)))
    return out


def runs(src: Sources, *, limit: int = 100, facility: str | None = None) -> tuple[list[RunRow], Scheduler]:
    """Agent runs, newest first (only those that touched ``facility`` when given), and the scheduler's state."""
    got, _notes = readers.state_cached(src.state_url, f"runs:{limit}:{facility}",
                                       lambda box: box.recent_runs(limit, facility))
    return [_run_row(d) for d in got or []], _scheduler(src)


# -- the PHR centre's view ---------------------------------------------------------------------------------------

_STORAGE_NOTE = ("PHR ไม่ได้ประกาศนิยามของ \"พื้นที่จัดเก็บ\" จึงไม่แสดง",
                 "PHR publishes no definition of \"storage\": not shown")


def _regions(facilities: list[PhrFacility]) -> list[PhrRegion]:
    provs = places.provinces()
    groups: dict[tuple[str, str], list[PhrFacility]] = {}
    for f in facilities:
        p = provs.get(f.info.province_code or "")
        key = (f.info.region or "ไม่ทราบ", p.name if p else "ไม่ทราบ")
        groups.setdefault(key, []).append(f)
    return [PhrRegion(region=reg, province=prov, facilities=len(fs), patients=_sum([f.patients for f in fs]),
                      encounters=_sum([f.encounters for f in fs]), storage_bytes=None)
            for (reg, prov), fs in sorted(groups.items(), key=lambda kv: (kv[0][0] == "ไม่ทราบ", kv[0]))]


def phr_centre(src: Sources) -> PhrCentre:
    """The PHR centre's view of the province: from the sandbox's store when ``src.sandbox_data_dir`` is set,
    else from what the agent learned from PHR (OrganizationSummary answers, agent status)."""
    if src.sandbox_data_dir is not None:
        return _phr_sandbox(src)
    r = _read(src)
    out = PhrCentre(source="agent", as_of=r.now, notes=[*r.notes, _STORAGE_NOTE, (
        "จากสิ่งที่ตัวส่งได้รับจาก PHR: จำนวน encounter ที่ PHR แจ้ง (OrganizationSummary) และสถานะตัวส่ง; "
        "จำนวนผู้ป่วยและทรัพยากรอื่น PHR ไม่ได้แจ้งให้ตัวส่ง",
        "from what the agent learned from PHR: the encounters PHR reported (OrganizationSummary) and the agent "
        "status; PHR tells an agent no patient or other resource counts")])
    for h in r.codes():
        f = (r.facilities or {}).get(h, {})
        a = r.phr_agents.get(h, {})
        his = r.staging.his_3y.get(h, 0) if r.staging is not None else None
        enc = f.get("phr_held") if f.get("phr_days") else None
        out.facilities.append(PhrFacility(
            info=r.names.get(h) or FacilityInfo(h), encounters=enc, his_3y=his, pct_in_phr=_pct(enc, his),
            last_received=f.get("last_sent"), agent_version=a.get("agent_version"),
            agent_status=a.get("status_sent") or a.get("phr_status"),
            agent_error=a.get("status_sent") if a.get("status_error") else None,
            computer=a.get("phr_computer") or a.get("computer_name")))
    out.regions = _regions(out.facilities)
    return out


def _phr_sandbox(src: Sources) -> PhrCentre:
    from sqlalchemy import select

    from phrsync.sandbox import dashboard
    from phrsync.sandbox import store as sbx

    assert src.sandbox_data_dir is not None
    since = (_today(None) - dt.timedelta(days=3 * 365)).isoformat()

    def read(conn: Any) -> tuple[Any, ...]:
        facs = {r["hospital_code"]: dict(r) for r in conn.execute(select(sbx.facilities)).mappings()}
        agents = {r["hospital_code"]: dict(r) for r in conn.execute(select(sbx.agent_status)).mappings()}
        return facs, agents, dashboard.holdings(conn, since)

    got, notes = readers.sandbox(src.sandbox_data_dir, read, key=f"phr_centre:{since}")
    out = PhrCentre(source="sandbox", as_of=time.time(), notes=[*notes, _STORAGE_NOTE, (
        "จากฐานข้อมูลของเซิร์ฟเวอร์ทดสอบ (sandbox): ไม่ได้นับ conditions, medications, observations, appointments",
        "from the sandbox's store (testing): conditions, medications, observations and appointments are not "
        "counted")])
    if got is None:
        return out
    facs, agents, held = got
    names = directory(src, known=sorted(set(facs) | set(held)))
    for h in sorted(set(facs) | set(held)):
        c = held.get(h, {})
        f, a = facs.get(h, {}), agents.get(h, {})
        info = names.get(h) or FacilityInfo(h)
        if info.name is None and f.get("name"):
            info = FacilityInfo(**{**asdict(info), "name": f["name"]})
        out.facilities.append(PhrFacility(
            info=info, patients=c.get("patients", 0), encounters=c.get("encounters", 0),
            allergies=c.get("allergies", 0), immunizations=c.get("immunizations", 0), his_3y=c.get("his_3y"),
            pct_in_phr=_pct(c.get("encounters", 0), c.get("his_3y")), last_received=f.get("last_received_at"),
            agent_version=(a.get("agent_version") or f.get("agent") or None), agent_status=a.get("status") or None,
            agent_error=a.get("last_error") or None, computer=a.get("computer_name") or None))
    out.regions = _regions(out.facilities)
    return out


def facilities_days(src: Sources, hospcodes: list[str], first: dt.date, last: dt.date) -> list[DayPoint]:
    """The days ``first``..``last`` of some facilities together (a district viewer's overview chart), as
    :func:`overview`'s ``daily`` is for the province: 0 where a store answered and had nothing that day, None
    where no store can say (what PHR holds: only the days the agent asked). One read of the stores."""
    r = _read(src)
    his0 = 0 if r.staging is not None else None
    ob0 = 0 if r.totals is not None else None
    out: dict[dt.date, DayPoint] = {}
    day = first
    while day <= last:
        out[day] = DayPoint(day, his=his0, built=ob0, confirmed=ob0)
        day += dt.timedelta(days=1)
    for h in hospcodes:
        for p in _facility_days(src, r, h):
            a = out.get(p.day)
            if a is None:
                continue
            for k in ("his", "built", "confirmed", "phr"):
                v = getattr(p, k)
                if v is not None:
                    setattr(a, k, (getattr(a, k) or 0) + v)
    return list(out.values())
