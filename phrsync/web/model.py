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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# problems a facility can have (the facilities table filters on these; the overview's attention list names them)
SILENT, REFUSED, FAILED, STUCK, QUARANTINE, GUARDED, NOT_SENT = (
    "silent", "refused", "failed", "stuck", "quarantine", "guarded", "not_sent")
PROBLEMS = (SILENT, REFUSED, FAILED, STUCK, QUARANTINE, GUARDED, NOT_SENT)
PROBLEM_TEXT = {
    SILENT: ("ไม่ได้ส่งนาน", "silent"),
    REFUSED: ("มีรายการถูกปฏิเสธ", "refused payloads"),
    FAILED: ("ส่งไม่สำเร็จ", "failed deliveries"),
    STUCK: ("ตัวส่งติดขัด", "agent stuck"),
    QUARANTINE: ("มีแถวถูกกัก", "quarantined rows"),
    GUARDED: ("งดการลบจาก PHR", "removals held back"),
    NOT_SENT: ("ยังไม่เคยส่ง", "never sent"),
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

    @classmethod
    def from_config(cls, cfg: Any) -> Sources:
        """From a :class:`phrsync.config.Config` (its ``[web]``, ``[delivery]`` and ``data_dir``)."""
        raise NotImplementedError


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

def directory(src: Sources) -> dict[str, FacilityInfo]:
    """Every facility of the code tables plus those only the stores know, by code."""
    raise NotImplementedError


def facility_rows(src: Sources) -> list[FacilityRow]:
    """The facilities table: one row per facility any store knows, sorted by code."""
    raise NotImplementedError


def overview(src: Sources, *, today: dt.date | None = None) -> Overview:
    """The morning page: tiles, the province's last 90 days, districts, and what needs attention."""
    raise NotImplementedError


def facility_detail(src: Sources, hospcode: str) -> FacilityDetail:
    """One facility's page; :class:`phrsync.errors.NotFoundError` when no store and no code table knows it."""
    raise NotImplementedError


def runs(src: Sources, *, limit: int = 100, facility: str | None = None) -> tuple[list[RunRow], Scheduler]:
    """Agent runs, newest first (only those that touched ``facility`` when given), and the scheduler's state."""
    raise NotImplementedError


def phr_centre(src: Sources) -> PhrCentre:
    """The PHR centre's view of the province: from the sandbox's store when ``src.sandbox_data_dir`` is set,
    else from what the agent learned from PHR (OrganizationSummary answers, agent status)."""
    raise NotImplementedError
