"""Sandbox storage on SQLAlchemy Core (SQLite file by default, PostgreSQL by URL).

All writes go through one writer thread that groups concurrent requests into one transaction
("group commit"): a request is acknowledged only after the transaction holding it has committed,
so batching raises throughput without ever acknowledging a write that could still be lost.
Payload JSON is stored compressed (see :mod:`codec`); the keys the API searches on are columns.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection

from phrsync.sandbox import codec

metadata = MetaData()

users = Table(
    "sbx_users", metadata,
    Column("username", String(64), primary_key=True),
    Column("hospital_code", String(5), nullable=False),
    Column("pw_digest", String(64), nullable=False),  # SHA-256 of the expected password_hash
    Column("permissions", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("failed", Integer, nullable=False, default=0),
    Column("locked_until", Float, nullable=False, default=0.0),
)

facility_tokens = Table(
    "sbx_facility_tokens", metadata,
    Column("hospital_code", String(5), primary_key=True),
    Column("token_digest", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

facilities = Table(
    "sbx_facilities", metadata,
    Column("hospital_code", String(5), primary_key=True),
    Column("name", Text, nullable=False, default=""),
    Column("agent", Text, nullable=False, default=""),
    Column("last_received_at", Float, nullable=False),
)

persons = Table(
    "sbx_persons", metadata,
    Column("cid", String(13), primary_key=True),
    Column("hospital_code", String(5), nullable=False),  # last facility that sent demographics
    Column("data", LargeBinary, nullable=False),
    Column("updated_at", Float, nullable=False),
)

idp_register = Table(  # the IdP's people: where each lives and their eKYC count (phrsync.sandbox.ekyc)
    "sbx_idp_register", metadata,
    Column("cid", String(13), primary_key=True),
    Column("kind", String(10), primary_key=True),  # citizen | personnel
    Column("district", String(4), nullable=False),  # DOPA ampur code
    Column("result", Integer, nullable=False),  # check_ekyc's answer, dealt when the register was seeded
    Column("seeded_at", Float, nullable=False),
)

encounters = Table(
    "sbx_encounters", metadata,
    Column("ref", Text, primary_key=True),  # stored encounter_ref_code, "HCODE:VN"
    Column("hospital_code", String(5), nullable=False),
    Column("cid", String(13), nullable=False),
    Column("day", String(10), nullable=False),  # visit date in Asia/Bangkok, yyyy-mm-dd
    Column("start_utc", String(32), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("received_at", Float, nullable=False),
    Index("ix_sbx_enc_hday", "hospital_code", "day"),
    Index("ix_sbx_enc_cid", "cid"),
)

immunizations = Table(
    "sbx_immunizations", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("hospital_code", String(5), nullable=False),
    Column("cid", String(13), nullable=False),
    Column("encounter_ref_code", Text, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("received_at", Float, nullable=False),
    Index("ix_sbx_imm_hcid", "hospital_code", "cid"),
)

allergies = Table(
    "sbx_allergies", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("hospital_code", String(5), nullable=False),
    Column("cid", String(13), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("received_at", Float, nullable=False),
    Index("ix_sbx_alg_hcid", "hospital_code", "cid"),
)

chronic = Table(
    "sbx_chronic", metadata,
    Column("hospital_code", String(5), primary_key=True),
    Column("chronic_ref_code", Text, primary_key=True),
    Column("cid", String(13), nullable=False),
    Column("cd_code", Text, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("received_at", Float, nullable=False),
    Index("ix_sbx_chr_cd", "hospital_code", "cd_code"),
)

documents = Table(  # ReferralRequest, MedicationRequest, DrugRelatedProblem, CareGiver, SelfObservation
    "sbx_documents", metadata,
    Column("endpoint", String(40), primary_key=True),
    Column("hospital_code", String(5), primary_key=True),
    Column("ref", Text, primary_key=True),
    Column("cid", String(13), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("received_at", Float, nullable=False),
    Index("ix_sbx_doc_cid", "cid"),
)

org_summary = Table(
    "sbx_org_summary", metadata,
    Column("hospital_code", String(5), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("opd", Integer, nullable=False),
    Column("ipd", Integer, nullable=False),
    Column("ipd_discharge", Integer, nullable=False),
    Column("received_at", Float, nullable=False),
)

agent_status = Table(
    "sbx_agent_status", metadata,
    Column("hospital_code", String(5), primary_key=True),
    Column("computer_name", Text, nullable=False, default=""),
    Column("status", Text, nullable=False, default=""),
    Column("most_client_version", Text, nullable=False, default=""),
    Column("agent_version", Text, nullable=False, default=""),
    Column("last_update", Float, nullable=False, default=0.0),
    Column("last_error", Text, nullable=False, default=""),
    Column("last_error_at", Float, nullable=False, default=0.0),
    Column("last_call", Float, nullable=False, default=0.0),
)


class TooSoon(Exception):
    """UpdateAgentStatus called again within the minimum interval for that facility."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"retry after {wait:.1f} s")
        self.wait = wait


@dataclass
class EncounterWrite:
    """The hot path (one UpdatePHRv1 payload) as data, so the writer can store many of them with one
    executemany per table instead of several statements per request. The documents are compressed in
    the writer thread, off the event loop."""

    hcode: str
    name: str
    agent: str
    cid: str
    patient: Any
    encounters: list[tuple[str, str, str, Any]]  # (ref, day, start_utc, Encounter item)
    now: float

    def __call__(self, conn: Connection) -> int:
        _bulk_encounters(conn, [self])
        return len(self.encounters)


def _bulk_encounters(conn: Connection, jobs: list[EncounterWrite]) -> None:
    """Later jobs win on the same key, exactly as if they had run one after another."""
    fac: dict[str, dict[str, Any]] = {}
    per: dict[str, tuple[str, float, Any]] = {}
    enc: dict[str, tuple[str, str, str, Any, str, str, float]] = {}
    for j in jobs:
        prev = fac.get(j.hcode)
        fac[j.hcode] = {"hospital_code": j.hcode, "name": j.name or (prev or {}).get("name", ""),
                        "agent": j.agent or (prev or {}).get("agent", ""), "last_received_at": j.now}
        per[j.cid] = (j.hcode, j.now, j.patient)
        for ref, day, start_utc, item in j.encounters:
            enc[ref] = (ref, day, start_utc, item, j.hcode, j.cid, j.now)
    persons_rows = [{"cid": cid, "hospital_code": h, "data": codec.pack(p), "updated_at": t}
                    for cid, (h, t, p) in per.items()]
    enc_rows = [{"ref": ref, "hospital_code": h, "cid": cid, "day": day, "start_utc": su, "data": codec.pack(item),
                 "received_at": t} for ref, day, su, item, h, cid, t in enc.values()]
    # empty name/agent must not wipe what an earlier payload said (CASE in _SQL_FACILITY)
    batches = ((_SQL_FACILITY, list(fac.values())), (_SQL_PERSON, persons_rows), (_SQL_ENCOUNTER, enc_rows))
    style = _RAW_STYLE.get(conn.dialect.name)
    if style is None:
        for sql, rows in batches:
            conn.execute(sql, rows)
        return
    # Straight to the driver, inside the same transaction: SQLAlchemy's per-statement bookkeeping costs more
    # than the statements themselves on this path.
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        for sql, rows in batches:
            cur.executemany(style(sql.text), rows)
    finally:
        cur.close()


# Plain SQL (same text on SQLite and PostgreSQL): compiled once, run with executemany.
_SQL_FACILITY = text(
    "INSERT INTO sbx_facilities (hospital_code, name, agent, last_received_at) "
    "VALUES (:hospital_code, :name, :agent, :last_received_at) ON CONFLICT (hospital_code) DO UPDATE SET "
    "name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE sbx_facilities.name END, "
    "agent = CASE WHEN excluded.agent <> '' THEN excluded.agent ELSE sbx_facilities.agent END, "
    "last_received_at = excluded.last_received_at")
_SQL_PERSON = text(
    "INSERT INTO sbx_persons (cid, hospital_code, data, updated_at) VALUES (:cid, :hospital_code, :data, "
    ":updated_at) ON CONFLICT (cid) DO UPDATE SET hospital_code = excluded.hospital_code, data = excluded.data, "
    "updated_at = excluded.updated_at")
_SQL_ENCOUNTER = text(
    "INSERT INTO sbx_encounters (ref, hospital_code, cid, day, start_utc, data, received_at) VALUES (:ref, "
    ":hospital_code, :cid, :day, :start_utc, :data, :received_at) ON CONFLICT (ref) DO UPDATE SET "
    "hospital_code = excluded.hospital_code, cid = excluded.cid, day = excluded.day, "
    "start_utc = excluded.start_utc, data = excluded.data, received_at = excluded.received_at")


_NAMED = re.compile(r"(?<!:):([a-z_]+)")
_RAW_STYLE: dict[str, Callable[[str], str]] = {
    "sqlite": lambda sql: sql,  # sqlite3 takes :name with dict rows
    "postgresql": functools.cache(lambda sql: _NAMED.sub(r"%(\1)s", sql)),  # psycopg: %(name)s
}


def _upsert(conn: Connection, table: Table, rows: list[dict[str, Any]], keys: list[str]) -> None:
    """INSERT … ON CONFLICT DO UPDATE on SQLite and PostgreSQL; delete-then-insert elsewhere."""
    if not rows:
        return
    name = conn.dialect.name
    if name in ("sqlite", "postgresql"):
        if name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as d_insert
        else:
            from sqlalchemy.dialects.postgresql import insert as d_insert
        stmt = d_insert(table)
        cols = [c for c in rows[0] if c not in keys]
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in cols})
        conn.execute(stmt, rows)
        return
    for r in rows:
        conn.execute(delete(table).where(and_(*[table.c[k] == r[k] for k in keys])))
    conn.execute(insert(table), rows)


_STOP = object()


def _settle(outcomes: list[tuple[Any, Any, BaseException | None]]) -> None:
    """Resolve waiters: thread futures directly, event-loop futures with one call per loop."""
    per_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}
    for w, r, e in outcomes:
        if isinstance(w, Future):
            if e is None:
                w.set_result(r)
            else:
                w.set_exception(e)
        else:
            loop, fut = w
            per_loop.setdefault(loop, []).append((fut, r, e))
    for loop, items in per_loop.items():
        with contextlib.suppress(RuntimeError):  # loop closed: nobody is waiting any more
            loop.call_soon_threadsafe(_apply, items)


def _apply(items: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for fut, r, e in items:
        if fut.done():  # the request was cancelled (client went away); the write itself stands
            continue
        if e is None:
            fut.set_result(r)
        else:
            fut.set_exception(e)


class Store:
    """Engine, schema and the group-commit writer thread."""

    def __init__(self, url: str, batch_max: int = 256, sqlite_synchronous: str = "FULL",
                 commit_delay: float = 0.0) -> None:
        self.url = url
        self.batch_max = batch_max
        self.commit_delay = commit_delay
        self.engine: Engine = self._make_engine(url, sqlite_synchronous)
        metadata.create_all(self.engine)
        self._q: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._writer, name="sandbox-writer", daemon=True)
        self._thread.start()

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite database file (its size is on the dashboard); None for a server database."""
        return Path(self.url.removeprefix("sqlite:///")) if self.url.startswith("sqlite:///") else None

    @staticmethod
    def _make_engine(url: str, synchronous: str) -> Engine:
        if url.startswith("sqlite"):
            db_path = url.split("///", 1)[1] if "///" in url else ""
            if db_path and db_path != ":memory:":
                Path(db_path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            eng = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            sync = synchronous if synchronous in ("OFF", "NORMAL", "FULL", "EXTRA") else "FULL"

            @event.listens_for(eng, "connect")
            def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA synchronous={sync}")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()

            return eng
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)

    # ---- writer -------------------------------------------------------------------------------
    def submit(self, fn: Callable[[Connection], Any]) -> Future[Any]:
        """Queue a write; the future resolves after its transaction commits (or with its exception)."""
        fut: Future[Any] = Future()
        self._q.put((fn, fut))
        return fut

    def submit_async(self, fn: Callable[[Connection], Any]) -> asyncio.Future[Any]:
        """Like :meth:`submit` for the event loop: the writer wakes each loop once per batch, not once
        per request (one self-pipe write instead of hundreds)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._q.put((fn, (loop, fut)))
        return fut

    def write(self, fn: Callable[[Connection], Any]) -> Any:
        return self.submit(fn).result()

    def _writer(self) -> None:
        while True:
            first = self._q.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            waited = self.commit_delay <= 0
            while len(batch) < self.batch_max:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    if waited:
                        break
                    # group-commit delay: a commit (fsync) costs far more than a row, so give requests that
                    # are already being processed a moment to join this transaction
                    waited = True
                    time.sleep(self.commit_delay)
                    continue
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            self._run_batch(batch)
            if stop:
                return

    def _run_batch(self, batch: list[tuple[Callable[[Connection], Any], Any]]) -> None:
        results: list[Any] = []
        try:
            with self.engine.begin() as conn:
                pending: list[EncounterWrite] = []
                for fn, _f in batch:
                    if isinstance(fn, EncounterWrite):
                        pending.append(fn)
                        results.append(len(fn.encounters))
                        continue
                    if pending:  # keep order: earlier bulk writes land before this job runs
                        _bulk_encounters(conn, pending)
                        pending = []
                    results.append(fn(conn))
                if pending:
                    _bulk_encounters(conn, pending)
        except Exception:
            # one bad job must not sink its neighbours: replay each in its own transaction
            outcomes: list[tuple[Any, Any, BaseException | None]] = []
            for fn, w in batch:
                try:
                    with self.engine.begin() as conn:
                        r = fn(conn)
                except Exception as e:  # handed to the waiting request
                    outcomes.append((w, None, e))
                else:
                    outcomes.append((w, r, None))
            _settle(outcomes)
            return
        _settle([(w, r, None) for (_fn, w), r in zip(batch, results, strict=True)])

    def close(self) -> None:
        self._q.put(_STOP)
        self._thread.join(timeout=30)
        self.engine.dispose()

    # ---- reads --------------------------------------------------------------------------------
    def read(self, fn: Callable[[Connection], Any]) -> Any:
        with self.engine.connect() as conn:
            return fn(conn)


# ---- write operations (run inside the writer's transaction) ---------------------------------------

def touch_facility(conn: Connection, hcode: str, name: str, agent: str, now: float) -> None:
    row = conn.execute(select(facilities.c.name, facilities.c.agent).where(
        facilities.c.hospital_code == hcode)).first()
    if row is None:
        conn.execute(insert(facilities).values(hospital_code=hcode, name=name, agent=agent, last_received_at=now))
    else:
        conn.execute(update(facilities).where(facilities.c.hospital_code == hcode).values(
            name=name or row.name, agent=agent or row.agent, last_received_at=now))


def put_person(conn: Connection, cid: str, hcode: str, data: bytes, now: float) -> None:
    _upsert(conn, persons, [{"cid": cid, "hospital_code": hcode, "data": data, "updated_at": now}], ["cid"])


def drop_other_encounters(conn: Connection, hcode: str, cid: str, keep: set[str]) -> int:
    """scope=ALL: the payload is the person's whole history here, so every other encounter goes."""
    old = conn.execute(select(encounters.c.ref).where(
        encounters.c.hospital_code == hcode, encounters.c.cid == cid)).scalars().all()
    gone = [r for r in old if r not in keep]
    if gone:
        conn.execute(delete(encounters).where(encounters.c.ref.in_(gone)))
    return len(gone)


def replace_list(conn: Connection, table: Table, hcode: str, cid: str, rows: list[dict[str, Any]],
                 now: float) -> int:
    """Replace-all semantics (Immunization, Allergy): the new list is the person's whole list here."""
    conn.execute(delete(table).where(table.c.hospital_code == hcode, table.c.cid == cid))
    if rows:
        conn.execute(insert(table), [{**r, "hospital_code": hcode, "cid": cid, "received_at": now} for r in rows])
    return len(rows)


def upsert_chronic(conn: Connection, hcode: str, cid: str, rows: list[dict[str, Any]], now: float) -> int:
    _upsert(conn, chronic, [{**r, "hospital_code": hcode, "cid": cid, "received_at": now} for r in rows],
            ["hospital_code", "chronic_ref_code"])
    return len(rows)


def upsert_documents(conn: Connection, endpoint: str, hcode: str, cid: str, rows: list[dict[str, Any]],
                     now: float) -> int:
    """Upsert by the endpoint's own key (referralRefCode, prescription ID, drp_ref_code, caregiver CID, …)."""
    _upsert(conn, documents, [{**r, "endpoint": endpoint, "hospital_code": hcode, "cid": cid, "received_at": now}
                              for r in rows], ["endpoint", "hospital_code", "ref"])
    return len(rows)


def remove_chronic(conn: Connection, hcode: str, cd_code: str, refs: list[str]) -> int:
    cond = [chronic.c.hospital_code == hcode, chronic.c.cd_code == cd_code]
    if refs:  # an empty list means "every row of this cd_code" (spec)
        cond.append(chronic.c.chronic_ref_code.in_(refs))
    return int(conn.execute(delete(chronic).where(*cond)).rowcount or 0)


def remove_encounter(conn: Connection, hcode: str, ref: str) -> int:
    return int(conn.execute(delete(encounters).where(
        encounters.c.hospital_code == hcode, encounters.c.ref == ref)).rowcount or 0)


def put_org_summary(conn: Connection, hcode: str, rows: list[dict[str, Any]], now: float) -> int:
    _upsert(conn, org_summary, [{**r, "hospital_code": hcode, "received_at": now} for r in rows],
            ["hospital_code", "day"])
    return len(rows)


def record_agent_status(conn: Connection, hcode: str, fields: dict[str, str], error: bool, now: float,
                        interval: float) -> None:
    """Check the minimum interval and record, atomically (the writer runs jobs one at a time)."""
    row = conn.execute(select(agent_status.c.last_call).where(agent_status.c.hospital_code == hcode)).first()
    if row is not None and now - row.last_call < interval:
        raise TooSoon(interval - (now - row.last_call))
    values: dict[str, Any] = {"last_call": now}
    if error:
        values.update(last_error=fields.get("agent_status", ""), last_error_at=now)
    else:
        values.update(status=fields.get("agent_status", ""), last_update=now)
        for k_in, k_col in (("agent_computer_name", "computer_name"), ("most_client_version", "most_client_version"),
                            ("agent_version", "agent_version")):
            if fields.get(k_in):
                values[k_col] = fields[k_in]
    if row is None:
        conn.execute(insert(agent_status).values(hospital_code=hcode, **values))
    else:
        conn.execute(update(agent_status).where(agent_status.c.hospital_code == hcode).values(**values))


# ---- read helpers -----------------------------------------------------------------------------------

def refs_for_day(conn: Connection, hcode: str, day: str) -> list[str]:
    return list(conn.execute(select(encounters.c.ref).where(
        encounters.c.hospital_code == hcode, encounters.c.day == day).order_by(encounters.c.ref)).scalars())


def month_counts(conn: Connection, hcode: str, month: str) -> list[dict[str, Any]]:
    q = (select(encounters.c.day, func.count()).where(
        encounters.c.hospital_code == hcode, encounters.c.day.like(f"{month}-%"))
        .group_by(encounters.c.day).order_by(encounters.c.day))
    return [{"date": d, "encounter_count": int(n)} for d, n in conn.execute(q)]


def chronic_refs(conn: Connection, hcode: str, cd_code: str | None) -> list[str]:
    q = select(chronic.c.chronic_ref_code).where(chronic.c.hospital_code == hcode)
    if cd_code:
        q = q.where(chronic.c.cd_code == cd_code)
    return list(conn.execute(q.order_by(chronic.c.chronic_ref_code)).scalars())

