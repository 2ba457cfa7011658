"""The Digital ID state in the state store (SQLite or PostgreSQL, the agent's ``[delivery]`` store).

* ``did_people``: whom KPI 54 counts, per kind (``citizen`` = B2, ``personnel`` = B1) and CID, with the source
  of the list (an imported extract or the 43-file fallback), facility, district and what the follow-up list
  shows. The CID is kept whole because ``check_ekyc`` needs it; it is never logged or shown (masked
  everywhere), and a SQLite store is made readable by its owner only (mode 600).
* ``did_checks``: one row per CID: the last answer (``result``, has a Digital ID = ``result >= 1``), when it
  came, attempts, the target asked. One row per CID, not per kind: a nurse is also a citizen and one answer
  serves both lists.
* ``did_ekyc``: the other numerator source, an IdP-admin export of eKYC results imported per CID
  (``did import-ekyc``), kept apart from ``did_checks``: a figure says which source it comes from. A person has a
  Digital ID when either source says so (:meth:`DidStore.group_counts` counts each source and the union).
* ``did_imports``: each import, with what was accepted, excluded (personnel not counted by the KPI) and refused.
* ``did_runs`` and ``did_snapshots``: each check run and the district figures it left, so the trend shows.

Every write is one short transaction: a check result is committed as soon as it arrives, so a run killed at any
moment loses at most the answers in flight, and the next run asks only about people still without one.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from phrsync.errors import StoreError
from phrsync.pdpa import mask_text, mask_url

CITIZEN, PERSONNEL = "citizen", "personnel"
KINDS = (CITIZEN, PERSONNEL)
SOURCE_IMPORT, SOURCE_F43 = "import", "f43"
EKYC = "ekyc"  # did_imports.kind of an IdP-admin eKYC export
SOURCE_IDPADMIN = "idpadmin"

metadata = MetaData()
people = Table(
    "did_people", metadata,
    Column("kind", String(10), primary_key=True),
    Column("cid", String(13), primary_key=True),
    Column("source", String(10), nullable=False),  # SOURCE_IMPORT | SOURCE_F43
    Column("hospcode", String(5)),
    Column("district", String(4)),  # DOPA ampur code; NULL: not known
    Column("name", String(200), nullable=False, default=""),  # for the facility's follow-up list only
    Column("rights", String(80)),  # citizens: the NHSO right as the extract names it
    Column("position", String(120)),  # personnel
    Column("employment", String(120)),  # personnel
    Column("import_id", Integer),
    Index("ix_did_people_kd", "kind", "district"),
    Index("ix_did_people_kh", "kind", "hospcode"),
)
checks = Table(
    "did_checks", metadata,
    Column("cid", String(13), primary_key=True),
    Column("result", Integer),  # check_ekyc's count; NULL: never answered
    Column("has_did", Boolean),  # result >= 1; NULL: never answered
    Column("checked_at", Float),  # when the last answer came
    Column("attempts", Integer, nullable=False, default=0),
    Column("target", String(64)),  # production | uat | sandbox | a [targets] name
    Column("http_status", Integer),
    Column("last_error", String(200)),  # masked
    Column("updated_at", Float, nullable=False),
)
ekyc = Table(
    "did_ekyc", metadata,
    Column("cid", String(13), primary_key=True),
    Column("result", Integer),  # the export's count of eKYC + PIN confirmations; NULL: it gave a status only
    Column("has_did", Boolean, nullable=False),  # count >= 1, or a status meaning "verified"
    Column("day", String(10)),  # ISO date the export gives for the eKYC (NULL: none given)
    Column("import_id", Integer, nullable=False),
)
imports = Table(
    "did_imports", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(10), nullable=False),
    Column("source", String(10), nullable=False),
    Column("file", Text, nullable=False),  # the file's name (or "43 แฟ้ม PERSON" for the fallback)
    Column("at", Float, nullable=False),
    Column("accepted", Integer, nullable=False),
    Column("excluded", Integer, nullable=False, default=0),
    Column("rejected", Integer, nullable=False, default=0),
    Column("summary", Text, nullable=False, default="{}"),  # JSON: exclusions by reason, errors (masked)
)
runs = Table(
    "did_runs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("target", String(64), nullable=False),
    Column("scope", Text, nullable=False, default="{}"),  # JSON: kind, district, facility
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("exit_code", Integer),
    Column("summary", Text),  # JSON counts
)
snapshots = Table(
    "did_snapshots", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer),
    Column("taken_at", Float, nullable=False),
    Column("kind", String(10), nullable=False),
    Column("district", String(4)),  # NULL: people of no known district
    Column("source", String(10), nullable=False),
    Column("denominator", Integer, nullable=False),
    Column("numerator", Integer, nullable=False),
    Column("checked", Integer, nullable=False),
    Index("ix_did_snapshots_at", "kind", "taken_at"),
)


@dataclass(frozen=True)
class Person:
    """One person to count, as an import or the 43-file fallback gives it."""

    cid: str
    hospcode: str | None
    district: str | None
    name: str = ""
    rights: str | None = None
    position: str | None = None
    employment: str | None = None


@dataclass(frozen=True)
class GroupCount:
    """People of one kind at one facility (and district): how many, how many answered, how many have a DID."""

    kind: str
    district: str | None
    hospcode: str | None
    people: int
    checked: int  # answered by check_ekyc or listed in the IdP-admin export
    with_did: int  # either source says so (the KPI's numerator)
    with_did_check: int = 0  # check_ekyc answered result >= 1
    with_did_ekyc: int = 0  # the IdP-admin export says so


@dataclass(frozen=True)
class EkycRow:
    """One person of an IdP-admin eKYC export."""

    cid: str
    result: int | None
    has_did: bool
    day: str | None  # ISO date


@dataclass(frozen=True)
class ImportRecord:
    id: int
    kind: str
    source: str
    file: str
    at: float
    accepted: int
    excluded: int
    rejected: int
    summary: dict[str, Any]


@dataclass(frozen=True)
class FollowUp:
    """A person without a Digital ID (or not yet answered) on a facility's follow-up list; the CID masked."""

    cid_masked: str
    name: str
    hospcode: str | None
    district: str | None
    checked_at: float | None  # None: not asked yet
    attempts: int


@dataclass(frozen=True)
class Snapshot:
    run_id: int | None
    taken_at: float
    kind: str
    district: str | None
    source: str
    denominator: int
    numerator: int
    checked: int


def _private(url: str) -> None:
    """A SQLite state file (and its WAL and shared-memory files) readable by its owner only: it holds CIDs."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return
    for suffix in ("", "-wal", "-shm"):
        p = Path(u.database + suffix)
        if p.exists():
            os.chmod(p, 0o600)


class DidStore:
    """The Digital ID tables on the state store; every method is one short transaction."""

    def __init__(self, state_url: str, clock: Any = time.time) -> None:
        from phrsync.delivery.outbox import state_engine

        self.url = state_url
        self.clock = clock
        try:
            self.is_sqlite = make_url(state_url).get_backend_name() == "sqlite"
            self.engine: Engine = state_engine(state_url, dir_mode=0o700)
            metadata.create_all(self.engine)
            _private(state_url)
        except (SQLAlchemyError, OSError, ValueError) as e:
            raise StoreError(f"เปิดที่เก็บสถานะสำหรับข้อมูล Digital ID ไม่ได้: {mask_url(state_url)}",
                             f"cannot open the state store for the Digital ID data: {mask_url(state_url)}",
                             hint=mask_text(type(e).__name__ + ": " + str(e).splitlines()[0][:200])) from e

    def close(self) -> None:
        self.engine.dispose()

    # ---- the lists of people --------------------------------------------------------------------------
    def replace_people(self, kind: str, source: str, rows: Sequence[Person], *, file: str, excluded: int = 0,
                       rejected: int = 0, summary: dict[str, Any] | None = None) -> int:
        """Replace the list of ``kind`` with ``rows`` in one transaction (an import of the NHSO or HROPS extract
        replaces the fallback too: one kind is counted from one source at a time). Check answers are kept:
        they belong to the CID, not to the list. Returns the import's id."""
        now = self.clock()
        with self.engine.begin() as c:
            import_id = c.execute(insert(imports).values(
                kind=kind, source=source, file=file, at=now, accepted=len(rows), excluded=excluded,
                rejected=rejected, summary=json.dumps(summary or {}, ensure_ascii=False))).inserted_primary_key[0]
            c.execute(delete(people).where(people.c.kind == kind))
            batch: list[dict[str, Any]] = []
            for p in rows:
                batch.append({"kind": kind, "cid": p.cid, "source": source, "hospcode": p.hospcode,
                              "district": p.district, "name": (p.name or "")[:200], "rights": p.rights,
                              "position": p.position, "employment": p.employment, "import_id": import_id})
                if len(batch) >= 5000:
                    c.execute(insert(people), batch)
                    batch = []
            if batch:
                c.execute(insert(people), batch)
        _private(self.url)
        return int(import_id)

    def source_of(self, kind: str) -> str | None:
        """Where the list of ``kind`` came from (SOURCE_IMPORT, SOURCE_F43), None when there is none."""
        with self.engine.connect() as c:
            return c.execute(select(people.c.source).where(people.c.kind == kind).limit(1)).scalar()

    def last_import(self, kind: str) -> ImportRecord | None:
        """The import that made the current list of ``kind`` (None: no list)."""
        with self.engine.connect() as c:
            iid = c.execute(select(people.c.import_id).where(people.c.kind == kind).limit(1)).scalar()
            if iid is None:
                return None
            r = c.execute(select(imports).where(imports.c.id == iid)).first()
        if r is None:
            return None
        return ImportRecord(r.id, r.kind, r.source, r.file, r.at, r.accepted, r.excluded, r.rejected,
                            json.loads(r.summary or "{}"))

    def count_people(self, kind: str | None = None) -> int:
        q = select(func.count()).select_from(people)
        if kind:
            q = q.where(people.c.kind == kind)
        with self.engine.connect() as c:
            return int(c.execute(q).scalar() or 0)

    # ---- whom to check ---------------------------------------------------------------------------------
    def to_check(self, *, kinds: Iterable[str] = KINDS, district: str | None = None, facility: str | None = None,
                 recheck_days: float = 30.0, now: float | None = None) -> list[str]:
        """The CIDs a run asks about: never answered, or answered "no Digital ID" more than ``recheck_days``
        ago. Someone with a Digital ID is never asked again (it is not taken back)."""
        now = self.clock() if now is None else now
        cutoff = now - recheck_days * 86400
        cond = [people.c.kind.in_(list(kinds))]
        if district:
            cond.append(people.c.district == district)
        if facility:
            cond.append(people.c.hospcode == facility)
        due = or_(checks.c.cid.is_(None), checks.c.has_did.is_(None),
                  and_(checks.c.has_did.is_(False), checks.c.checked_at < cutoff))
        q = (select(people.c.cid).distinct().select_from(people.outerjoin(checks, checks.c.cid == people.c.cid))
             .where(and_(*cond), due).order_by(people.c.cid))
        with self.engine.connect() as c:
            return [r[0] for r in c.execute(q)]

    # ---- answers ---------------------------------------------------------------------------------------
    def _upsert_check(self, c: Any, cid: str, values: dict[str, Any], attempts_add: int) -> None:
        done = c.execute(update(checks).where(checks.c.cid == cid).values(
            attempts=checks.c.attempts + attempts_add, **values)).rowcount
        if not done:
            c.execute(insert(checks).values(cid=cid, attempts=attempts_add, **values))

    def record_answer(self, cid: str, result: int, target: str, attempts: int, at: float | None = None) -> None:
        """check_ekyc answered: committed at once (what a killed run leaves is never asked again)."""
        at = self.clock() if at is None else at
        with self.engine.begin() as c:
            self._upsert_check(c, cid, {"result": int(result), "has_did": int(result) >= 1, "checked_at": at,
                                        "target": target, "http_status": 200, "last_error": None,
                                        "updated_at": at}, attempts)
        return None

    def record_answers(self, answers: Sequence[tuple[str, int, int, float]], target: str) -> None:
        """Several answers (cid, result, attempts, at) in one transaction: a run commits what arrived every few
        milliseconds (a commit per answer held the checks to under 100 a second on a busy 2-core server)."""
        if not answers:
            return
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as upsert
        else:
            from sqlalchemy.dialects.sqlite import insert as upsert
        stmt = upsert(checks)
        stmt = stmt.on_conflict_do_update(index_elements=[checks.c.cid], set_={
            "result": stmt.excluded.result, "has_did": stmt.excluded.has_did, "checked_at": stmt.excluded.checked_at,
            "target": stmt.excluded.target, "http_status": 200, "last_error": None,
            "updated_at": stmt.excluded.updated_at, "attempts": checks.c.attempts + stmt.excluded.attempts})
        rows = [{"cid": c, "result": int(r), "has_did": int(r) >= 1, "checked_at": at, "attempts": n,
                 "target": target, "http_status": 200, "last_error": None, "updated_at": at}
                for c, r, n, at in answers]
        with self.engine.begin() as c:
            c.execute(stmt, rows)

    def record_failure(self, cid: str, target: str, attempts: int, http_status: int | None, error: str) -> None:
        """No answer this run (attempts used up, or refused): the attempts are counted, the person stays due."""
        now = self.clock()
        with self.engine.begin() as c:
            self._upsert_check(c, cid, {"target": target, "http_status": http_status,
                                        "last_error": mask_text(error)[:200], "updated_at": now}, attempts)

    def check_of(self, cid: str) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            r = c.execute(select(checks).where(checks.c.cid == cid)).mappings().first()
        return dict(r) if r else None

    # ---- figures ---------------------------------------------------------------------------------------
    def group_counts(self, kind: str | None = None) -> list[GroupCount]:
        """People, answered and with a Digital ID per kind, district and facility, by each numerator source and
        their union: one GROUP BY over the joins (the report of a province of 600,000 people is this one query)."""
        by_check = checks.c.has_did.is_(True)
        by_ekyc = ekyc.c.has_did.is_(True)
        has = func.sum(case((or_(by_check, by_ekyc), 1), else_=0))
        answered = func.sum(case((or_(checks.c.has_did.is_not(None), ekyc.c.cid.is_not(None)), 1), else_=0))
        q = (select(people.c.kind, people.c.district, people.c.hospcode, func.count(), answered, has,
                    func.sum(case((by_check, 1), else_=0)), func.sum(case((by_ekyc, 1), else_=0)))
             .select_from(people.outerjoin(checks, checks.c.cid == people.c.cid)
                          .outerjoin(ekyc, ekyc.c.cid == people.c.cid))
             .group_by(people.c.kind, people.c.district, people.c.hospcode))
        if kind:
            q = q.where(people.c.kind == kind)
        with self.engine.connect() as c:
            return [GroupCount(k, d, h, int(n), int(a or 0), int(w or 0), int(wc or 0), int(we or 0))
                    for k, d, h, n, a, w, wc, we in c.execute(q)]

    def followup(self, hospcode: str, kind: str = CITIZEN, limit: int | None = None) -> list[FollowUp]:
        """People of one facility without a Digital ID by either source (check_ekyc answered 0 or not yet, and
        the IdP-admin export does not say they have one), CIDs masked."""
        from phrsync.pdpa import mask_cid

        q = (select(people.c.cid, people.c.name, people.c.hospcode, people.c.district, checks.c.checked_at,
                    func.coalesce(checks.c.attempts, 0))
             .select_from(people.outerjoin(checks, checks.c.cid == people.c.cid)
                          .outerjoin(ekyc, ekyc.c.cid == people.c.cid))
             .where(people.c.kind == kind, people.c.hospcode == hospcode,
                    or_(checks.c.has_did.is_(None), checks.c.has_did.is_(False)),
                    or_(ekyc.c.has_did.is_(None), ekyc.c.has_did.is_(False)))
             .order_by(people.c.name, people.c.cid))
        if limit:
            q = q.limit(limit)
        with self.engine.connect() as c:
            return [FollowUp(mask_cid(cid), name or "", h, d, at, int(n or 0)) for cid, name, h, d, at, n in c.execute(q)]

    def districts_of_people(self, kind: str) -> list[tuple[str, str | None]]:
        """(CID, district) of everyone in the list of ``kind`` (the demo seeds its sandbox's register with it)."""
        with self.engine.connect() as c:
            return [(cid, d) for cid, d in c.execute(select(people.c.cid, people.c.district)
                                                     .where(people.c.kind == kind))]

    def district_of(self, hospcode: str) -> str | None:
        with self.engine.connect() as c:
            return c.execute(select(people.c.district).where(people.c.hospcode == hospcode,
                                                             people.c.district.is_not(None)).limit(1)).scalar()

    # ---- the IdP-admin eKYC export (the other numerator source) ----------------------------------------
    def replace_ekyc(self, rows: Sequence[EkycRow], *, file: str, rejected: int = 0,
                     summary: dict[str, Any] | None = None) -> int:
        """Make ``rows`` the eKYC export in one transaction (an export is the IdP's whole list as of its day, so
        a newer one replaces the older); check_ekyc answers are not touched. Returns the import's id."""
        now = self.clock()
        with self.engine.begin() as c:
            import_id = c.execute(insert(imports).values(
                kind=EKYC, source=SOURCE_IDPADMIN, file=file, at=now, accepted=len(rows), excluded=0,
                rejected=rejected, summary=json.dumps(summary or {}, ensure_ascii=False))).inserted_primary_key[0]
            c.execute(delete(ekyc))
            batch: list[dict[str, Any]] = []
            for r in rows:
                batch.append({"cid": r.cid, "result": r.result, "has_did": r.has_did, "day": r.day,
                              "import_id": import_id})
                if len(batch) >= 5000:
                    c.execute(insert(ekyc), batch)
                    batch = []
            if batch:
                c.execute(insert(ekyc), batch)
        _private(self.url)
        return int(import_id)

    def ekyc_import(self) -> ImportRecord | None:
        """The import that made the current eKYC export (None: none imported)."""
        with self.engine.connect() as c:
            iid = c.execute(select(ekyc.c.import_id).limit(1)).scalar()
            r = c.execute(select(imports).where(imports.c.id == iid)).first() if iid is not None else None
        if r is None:
            return None
        return ImportRecord(r.id, r.kind, r.source, r.file, r.at, r.accepted, r.excluded, r.rejected,
                            json.loads(r.summary or "{}"))

    def ekyc_of(self, cid: str) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            r = c.execute(select(ekyc).where(ekyc.c.cid == cid)).mappings().first()
        return dict(r) if r else None

    def has_check_answers(self) -> bool:
        """Has check_ekyc answered anyone (the report says which numerator sources it uses)?"""
        with self.engine.connect() as c:
            return c.execute(select(checks.c.cid).where(checks.c.has_did.is_not(None)).limit(1)).first() is not None

    # ---- runs and snapshots ----------------------------------------------------------------------------
    def start_run(self, target: str, scope: dict[str, Any]) -> int:
        with self.engine.begin() as c:
            return int(c.execute(insert(runs).values(target=target, scope=json.dumps(scope), started_at=self.clock())
                                 ).inserted_primary_key[0])

    def finish_run(self, run_id: int, exit_code: int, summary: dict[str, Any]) -> None:
        with self.engine.begin() as c:
            c.execute(update(runs).where(runs.c.id == run_id).values(
                finished_at=self.clock(), exit_code=exit_code, summary=json.dumps(summary, ensure_ascii=False)))

    def take_snapshot(self, run_id: int | None = None) -> int:
        """Keep the district figures of every kind as they stand now (the trend chart's points)."""
        now = self.clock()
        per: dict[tuple[str, str | None], list[int]] = {}
        for g in self.group_counts():
            acc = per.setdefault((g.kind, g.district), [0, 0, 0])
            acc[0] += g.people
            acc[1] += g.with_did
            acc[2] += g.checked
        rows = [{"run_id": run_id, "taken_at": now, "kind": k, "district": d, "source": self.source_of(k) or "",
                 "denominator": v[0], "numerator": v[1], "checked": v[2]} for (k, d), v in per.items()]
        if rows:
            with self.engine.begin() as c:
                c.execute(insert(snapshots), rows)
        return len(rows)

    def snapshots(self, kind: str | None = None) -> list[Snapshot]:
        q = select(snapshots).order_by(snapshots.c.taken_at, snapshots.c.id)
        if kind:
            q = q.where(snapshots.c.kind == kind)
        with self.engine.connect() as c:
            return [Snapshot(r.run_id, r.taken_at, r.kind, r.district, r.source, r.denominator, r.numerator,
                             r.checked) for r in c.execute(q)]
