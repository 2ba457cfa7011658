"""The agent's state: one row per payload key, in SQLite (default, under the data dir) or PostgreSQL.

Row life: ``pending`` → ``sending`` (committed *before* the request, attempts + 1) → ``sent`` (PHR answered
200 for an encounter; becomes ``confirmed`` once OrganizationSummary lists it) or ``confirmed`` (other
endpoints: the 200 is the only confirmation PHR offers) / ``refused`` (4xx with the server's reasons, not
retried until the content changes or ``retry --refused``) / ``failed`` (gave up for this run; retried next
run). ``removed``: reconcile deleted it from PHR because the HIS no longer has it.

A row left ``sending`` by a crash is *in doubt*: the request may or may not have landed. It is simply sent
again: every PHR upload is keyed (encounter ref, chronic_ref_code, person list per facility, day summary),
so a second copy replaces the first instead of adding to it.

Two agents on one store: one at a time holds the store's lease (``delivery_lease``, taken with one conditional
statement, renewed by a heartbeat, expired or taken over when its holder died), and a row is claimed with a
compare-and-set on its status and claimant, so even two agents that both ran would never both send a row.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import secrets
import socket
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lz4.frame
import orjson
import xxhash
from sqlalchemy import (
    Column,
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
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine, make_url

from phrsync.phr import buildfile
from phrsync.phr.buildfile import Run as _Run
from phrsync.phr.buildfile import runs as _runs
from phrsync.phr.buildfile import split_lines as _split_lines
from phrsync.phr.buildfile import visit_day as encounter_day

PENDING, SENDING, SENT, CONFIRMED, REFUSED, FAILED, REMOVED = (
    "pending", "sending", "sent", "confirmed", "refused", "failed", "removed")
STATUSES = (PENDING, SENDING, SENT, CONFIRMED, REFUSED, FAILED, REMOVED)
TO_SEND = (PENDING, SENDING, FAILED)
ENCOUNTER_EP = "UpdatePHRv1"
AGENT_STATE_META = "agent_state:"  # + HCODE in delivery_meta: the facility's state after the last run
PHR_AGENT_META = "phr_agent:"  # + HCODE: what PHR said about the facility's agent, and what the agent told it
GUARDED_META = "reconcile_guarded"  # {HCODE: [days whose removals reconcile held back]}
SCHEDULE_META = "schedule"  # phrsync run's rounds: every_minutes, last round, next round due (or stopped)

metadata = MetaData()
outbox = Table(
    "delivery_outbox", metadata,
    Column("key", String(255), primary_key=True),
    Column("endpoint", String(64), nullable=False),
    Column("hospcode", String(5), nullable=False),
    Column("ref", String(255), nullable=False),  # encounter ref (HCODE:VN) or the key's person/month part
    Column("day", String(10)),  # encounter day (Asia/Bangkok) for reconcile; NULL for registers
    Column("content_hash", String(64), nullable=False),
    Column("status", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("http_status", Integer),
    Column("reason", String(120)),  # short reason (first rule / message) for "top reasons"
    Column("last_error", Text),  # server reasons for a refusal, or the last transient error
    Column("load_id", Integer, nullable=False),  # the build that last brought new or changed content for this key
    # the build (load id) that first lacked this encounter although it covered its day: the HIS deleted it.
    # NULL = present. Present rows are never rewritten by a load.
    Column("missing_load", Integer),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("sent_at", Float),
    Column("claimed_by", String(64)),  # the Outbox (agent run) that last claimed the row: claims compare it
    Index("ix_delivery_outbox_hday", "hospcode", "day"),
    # to_send walks one facility in key order filtering on status: an index scan, never a sort of the outbox.
    # The only index holding the status (counts scan it too): each status change moves one index entry.
    Index("ix_delivery_outbox_hkey", "hospcode", "key", "status"),
    # the few rows a build no longer holds, for reconcile's "which days have stale rows" (day_flags)
    Index("ix_delivery_outbox_missing", "hospcode", "day", sqlite_where=text("missing_load IS NOT NULL"),
          postgresql_where=text("missing_load IS NOT NULL")),
)
# The payloads live apart from the rows' state: every send updates its row twice (claim, answer) and reconcile
# once more, and a row that carried its payload was rewritten whole each time (kilobytes instead of bytes).
payloads = Table(
    "delivery_payloads", metadata,
    Column("key", String(255), primary_key=True),
    Column("payload", LargeBinary, nullable=False),  # canonical JSON, LZ4 frame (zlib in older stores)
)
# Each chunk of encounter lines (facility, visit day, first key) of the last build file, by the hash of its
# bytes: a chunk that comes back byte for byte is unchanged as a whole and is not read line by line (load_file).
runs_table = Table(
    "delivery_runs_seen", metadata,
    Column("hospcode", String(16), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("first_key", String(255), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("lines", Integer, nullable=False),
)
loads = Table(
    "delivery_loads", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("path", Text, nullable=False),
    Column("at", Float, nullable=False),
    Column("scope", Text, nullable=False),  # JSON {hospcode: [first day, last day]} the build covered
)
meta = Table(
    "delivery_meta", metadata,  # small facts about the state itself (e.g. when PHR was last fully checked)
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
lease = Table(
    "delivery_lease", metadata,  # the one agent that may send from this store now (see Outbox.take_lease)
    Column("name", String(32), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("computer", String(255), nullable=False),
    Column("acquired_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)
days_checked = Table(
    "delivery_days_checked", metadata,  # when PHR was last asked about a facility's day, successfully
    Column("hospcode", String(16), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("checked_at", Float, nullable=False),
    Column("held", Integer),  # how many encounter refs PHR said it holds for the day then (NULL: older stores)
    Index("ix_delivery_days_checked_day", "day", "hospcode", "held", "checked_at"),  # a range of days, covered
)
# The monitoring web's figures, per facility: counted from the outbox with one GROUP BY per facility whenever a
# load, a facility's sending, a reconcile or a requeue changed its rows (refresh_aggregates), never per payload.
# A page reads these few thousand rows instead of counting millions.
agg_days = Table(
    "delivery_agg_days", metadata,  # encounters (UpdatePHRv1) per facility, visit day and status
    Column("hospcode", String(16), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("status", String(12), primary_key=True),
    Column("n", Integer, nullable=False),
    Column("last_sent", Float),  # newest sent_at and updated_at of these rows
    Column("last_change", Float),
    Index("ix_delivery_agg_days_day", "day", "hospcode", "status", "n"),  # a range of days, covered
)
agg_totals = Table(
    "delivery_agg_totals", metadata,  # rows per facility, endpoint and status (every day, every endpoint)
    Column("hospcode", String(16), primary_key=True),
    Column("endpoint", String(64), primary_key=True),
    Column("status", String(12), primary_key=True),
    Column("n", Integer, nullable=False),
)
agg_reasons = Table(
    "delivery_agg_reasons", metadata,  # refused rows per facility, endpoint and short reason
    Column("hospcode", String(16), primary_key=True),
    Column("endpoint", String(64), primary_key=True),
    Column("reason", String(120), primary_key=True),  # '' when PHR gave none
    Column("http_status", Integer),
    Column("n", Integer, nullable=False),
    Column("example", Text),  # one refusal's full (masked) reasons
    Column("last_at", Float),
)
agg_facilities = Table(
    "delivery_agg_facilities", metadata,  # when each facility's figures were counted, and its times
    Column("hospcode", String(16), primary_key=True),
    Column("refreshed_at", Float, nullable=False),
    Column("last_sent", Float),  # newest sent_at: when PHR last accepted something of the facility
    Column("last_change", Float),
    Column("last_error", Text),  # the most recently failed row's error (masked when shown)
    Column("last_error_at", Float),
    Column("last_refused_at", Float),
    # what PHR said (delivery_days_checked) over the days the agent asked about: refs held, days asked, when last
    Column("phr_held", Integer),  # NULL: never asked (with a count)
    Column("phr_days", Integer),
    Column("phr_checked_at", Float),
    # PHR's holdings as best known: per visit day, what PHR said when asked, else the rows it confirmed
    Column("phr_best", Integer),
)
run_facilities = Table(
    "delivery_run_facilities", metadata,  # the facilities each run touched (the web lists a facility's runs)
    Column("run_id", Integer, primary_key=True),
    Column("hospcode", String(16), primary_key=True),
    Index("ix_delivery_run_facilities_h", "hospcode", "run_id"),
)
AGGREGATES_META = "aggregates_version"  # set once a store's aggregates were counted (older stores: at upgrade)
AGGREGATES_VERSION = "1"
AGGREGATES_AT_META = "aggregates_at"  # when any facility's aggregates last changed (a reader's cache key)
runs = Table(
    "delivery_runs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("target", String(64), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("exit_code", Integer),
    Column("summary", Text),  # JSON counts
)


def canonical(payload: Any) -> bytes:
    """The bytes that are hashed, stored and sent: equal payloads give equal bytes."""
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)


def content_hash(body: bytes | memoryview) -> str:
    """XXH3-128 of the bytes (32 hex digits): what tells new or changed content from what was loaded before. Not a
    cryptographic hash, and none is needed here — it only compares the province's own builds with each other
    (rsync checks its transfers with the same one); SHA-256, used before, cost 20 times more (2.8 against 0.13 µs
    per payload), twice per new payload (line and chunk), on a path every payload of a province takes."""
    return xxhash.xxh3_128_hexdigest(body)


_SHA256_HEX = 64  # the length of a content hash stored by earlier versions (SHA-256)


def same_content(stored: str, new: str, body: bytes | memoryview) -> bool:
    """Is ``body`` (whose :func:`content_hash` is ``new``) what a row's ``stored`` hash was taken of? A hash from
    an earlier version (SHA-256) is compared as such, so upgrading sends nothing again."""
    return stored == new or (len(stored) == _SHA256_HEX and stored == hashlib.sha256(body).hexdigest())


def pack(body: bytes) -> bytes:
    """Stored form of a payload. LZ4: ~20x less CPU than zlib level 1 for ~1.6:1 instead of ~2:1 on PHR
    JSON; on a 2-core server that CPU is better spent sending."""
    return lz4.frame.compress(body)


def unpack(stored: bytes) -> bytes:
    """Either stored form: LZ4 frames, or zlib streams written by earlier versions."""
    if stored[:4] == b"\x04\x22\x4d\x18":
        return lz4.frame.decompress(stored)
    return zlib.decompress(stored)


def _ref(endpoint: str, key: str, payload: dict[str, Any]) -> str:
    if endpoint == ENCOUNTER_EP:
        try:
            return str(payload["Encounter"][0]["identifier"][0]["value"])
        except (KeyError, IndexError, TypeError):
            pass
    return key.split("|", 1)[-1]


@dataclass
class LoadResult:
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    total: int = 0
    missing: int = 0  # encounters on days the build covered that it no longer contains (HIS deleted them)
    load_id: int = 0
    changed_keys: list[str] = field(default_factory=list)
    facilities: list[str] = field(default_factory=list)  # whose rows the load added or changed, or marked missing

    def as_dict(self) -> dict[str, Any]:
        return {"new": self.new, "changed": self.changed, "unchanged": self.unchanged, "total": self.total,
                "missing": self.missing}


@dataclass
class Row:
    key: str
    endpoint: str
    hospcode: str
    ref: str
    day: str | None
    body: bytes
    attempts: int
    status: str = PENDING  # as read, before the sender claimed it (to put it back if it is not sent after all)
    claimed_by: str | None = None  # as read: the claim succeeds only while both are still what was read


LEASE_NAME = "agent"
INSTALLATION_META = "installation_id"


@dataclass
class Lease:
    """Who holds a store's lease (:meth:`Outbox.lease`)."""

    owner: str
    host: str
    pid: int
    computer: str
    acquired_at: float
    heartbeat_at: float
    expires_at: float

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "computer": self.computer, "acquired_at": self.acquired_at,
                "heartbeat_at": self.heartbeat_at, "expires_at": self.expires_at}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


Claim = str | tuple[str, str, str | None]  # a bare key, or (key, status, claimed_by) as read (Outbox.apply)


# the build file's readers (phrsync.phr.buildfile owns its format) under the names the agent and the demo use
iter_ndjson = buildfile.iter_lines
ndjson_facilities = buildfile.facilities


def iter_build_file(path: str | Path) -> Iterator[dict[str, Any]]:
    """The items of a build file for :meth:`Outbox.load` (:func:`phrsync.phr.buildfile.iter_items`): a line as
    ``phrsync build`` writes it is split without parsing its payload (``payload`` None, ``payload_bytes`` and
    their :func:`content_hash` as ``payload_hash``); with the visit ``day`` beside an encounter the load never
    parses it, without it only when its hash is not the stored one. Any other line is parsed whole."""
    return buildfile.iter_items(path, content_hash)


def _build_item(line: bytes, n: int, path: str | Path) -> Iterator[dict[str, Any]]:
    """One line of a build file as :func:`iter_build_file` gives it."""
    return buildfile.read_line(line, n, path, content_hash)


class Outbox:
    """State store on SQLAlchemy Core; every method is one short transaction (crash-safe at any point)."""

    def __init__(self, url: str) -> None:
        self.url = url
        # this store handle's claimant id: rows it claims carry it, and its lease is held under it
        self.owner = secrets.token_hex(16)
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        # SQLite: reuse one connection (LIFO, one kept): in WAL mode a connection throws its whole page cache
        # away whenever another connection has written since, so rotating through a pool re-read every index
        # page on every commit of the sender's hot path.
        opts: dict[str, Any] = {"pool_use_lifo": True, "pool_size": 1, "max_overflow": 8} if self.is_sqlite else {}
        self.engine: Engine = state_engine(url, **opts)
        self._ph = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"  # for apply()'s driver SQL
        self._create()

    def _create(self, tries: int = 5) -> None:
        """Tables, indexes and upgrades. Two agents opening a new store at once raced here ("table already
        exists"): whoever loses sees the winner's tables on its next try."""
        from sqlalchemy.exc import DBAPIError

        for attempt in range(tries):
            try:
                metadata.create_all(self.engine)
                self._upgrade()
                return
            except DBAPIError:
                if attempt == tries - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def _upgrade(self) -> None:
        """Columns added after a state store was created (create_all only adds missing tables)."""
        from sqlalchemy import inspect

        insp = inspect(self.engine)
        have = {c["name"] for c in insp.get_columns("delivery_outbox")}
        if "missing_load" not in have:
            with self.engine.begin() as c:
                c.execute(text("ALTER TABLE delivery_outbox ADD COLUMN missing_load INTEGER"))
        if "claimed_by" not in have:
            with self.engine.begin() as c:
                c.execute(text("ALTER TABLE delivery_outbox ADD COLUMN claimed_by VARCHAR(64)"))
        if "payload" in have:  # earlier versions kept the payload in the row: move it to delivery_payloads
            with self.engine.begin() as c:
                c.execute(text("INSERT INTO delivery_payloads (key, payload) SELECT key, payload FROM delivery_outbox"))
                c.execute(text("ALTER TABLE delivery_outbox DROP COLUMN payload"))
        indexes = {i["name"] for i in insp.get_indexes("delivery_outbox")}
        if "ix_delivery_outbox_status" in indexes:  # superseded by ix_delivery_outbox_hkey
            with self.engine.begin() as c:
                c.execute(text("DROP INDEX ix_delivery_outbox_status"))
        for ix in outbox.indexes:
            if ix.name not in indexes:
                ix.create(self.engine)
        if "held" not in {c["name"] for c in insp.get_columns("delivery_days_checked")}:
            with self.engine.begin() as c:
                c.execute(text("ALTER TABLE delivery_days_checked ADD COLUMN held INTEGER"))
        if "ix_delivery_days_checked_day" not in {i["name"] for i in insp.get_indexes("delivery_days_checked")}:
            next(iter(days_checked.indexes)).create(self.engine)
        if self.get_meta(AGGREGATES_META) != AGGREGATES_VERSION:  # a store made before the aggregates: count once
            self.refresh_aggregates(self.facilities())
            self.set_meta(AGGREGATES_META, AGGREGATES_VERSION)

    def close(self) -> None:
        self.engine.dispose()

    # ---- loading a build -------------------------------------------------------------------
    def load_file(self, path: str | Path, facility: str | None = None, since: str | None = None) -> LoadResult:
        """:meth:`load` for a ``phrsync build`` file, which writes a facility's encounters of a day together.
        Those lines are taken in content-defined chunks (see :func:`_runs`); a chunk whose bytes hash to what
        the previous load of this store recorded for it is unchanged as a whole and is not read line by line
        (a nightly re-read of a province's build file is mostly such chunks). Every other chunk and line goes
        through :meth:`load` as before."""
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size == 0:
                return self.load([], str(path), facility, since)
            buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            runs = _runs(buf)

            def taken(r: _Run) -> bool:  # encounter chunks the load covers (--facility, --since leave some out)
                return r.hospcode is not None and r.day is not None and not (
                    (facility and r.hospcode != facility) or (since and r.day < since))

            with memoryview(buf) as view:
                chunks = [(r.hospcode or "", r.day or "", r.first_key or "", content_hash(view[r.start:r.end]),
                           r.lines) for r in runs if taken(r)]
            stored: dict[tuple[str, str, str], tuple[str, int]] = {}
            if chunks:  # only the records of the file's days: the table keeps every day ever loaded
                with self.engine.connect() as c:
                    stored = {(h, d, k): (dg, n) for h, d, k, dg, n in c.execute(select(
                        runs_table.c.hospcode, runs_table.c.day, runs_table.c.first_key, runs_table.c.digest,
                        runs_table.c.lines).where(runs_table.c.day.between(min(ch[1] for ch in chunks),
                                                                           max(ch[1] for ch in chunks))))}
            same = {(h, d, k) for h, d, k, dg, n in chunks if stored.get((h, d, k)) == (dg, n)}

            def is_same(r: _Run) -> bool:
                return (r.hospcode, r.day, r.first_key) in same

            def items() -> Iterator[dict[str, Any]]:
                for r in runs:
                    if r.hospcode is not None and (not taken(r) or is_same(r)):
                        continue
                    for i, line in enumerate(_split_lines(buf[r.start:r.end])):
                        yield from _build_item(line, r.first_line + i, path)

            def keys_of_same() -> set[str]:  # only when the store holds rows this build may lack
                return {str(it["key"]) for r in runs if is_same(r)
                        for i, line in enumerate(_split_lines(buf[r.start:r.end]))
                        for it in _build_item(line, r.first_line + i, path)}

            res = self.load(items(), str(path), facility, since,
                            _unchanged_runs=[(h, d, n) for h, d, k, _dg, n in chunks if (h, d, k) in same],
                            _more_seen=keys_of_same)
            self._record_runs(chunks)
            return res
        finally:
            buf.close()

    def _record_runs(self, chunks: list[tuple[str, str, str, str, int]]) -> None:
        """The chunks of the build just loaded replace those recorded for the same facilities and days in its
        window: a day or visit the build no longer has loses its record, so its return is read line by line."""
        window: dict[str, list[str]] = {}
        for h, d, _k, _dg, _n in chunks:
            w = window.setdefault(h, [d, d])
            w[0], w[1] = min(w[0], d), max(w[1], d)
        p = self._ph
        with self.engine.begin() as c:
            for h, (first, last) in window.items():
                c.exec_driver_sql(f"DELETE FROM delivery_runs_seen WHERE hospcode = {p} AND day >= {p} AND day <= {p}",
                                  (h, first, last))
            if chunks:
                c.exec_driver_sql("INSERT INTO delivery_runs_seen (hospcode, day, first_key, digest, lines) "
                                  f"VALUES ({p}, {p}, {p}, {p}, {p})", chunks)

    def load(self, items: Iterable[dict[str, Any]], path: str = "", facility: str | None = None,
             since: str | None = None, chunk: int = 5000,
             _unchanged_runs: Iterable[tuple[str, str, int]] = (),
             _more_seen: Callable[[], set[str]] | None = None) -> LoadResult:
        """New or changed content (by hash) becomes pending; unchanged rows keep their status.
        (``_unchanged_runs`` / ``_more_seen``: from :meth:`load_file`, the runs it found unchanged as a whole
        — (facility, day, encounters) — and, should they be needed, their keys.)"""
        res = LoadResult()
        now = time.time()
        scope: dict[str, list[str]] = {}
        present: dict[str, int] = {}  # encounters with a day per facility in this build (all inside its window)
        with self.engine.begin() as c:
            res.load_id = int(c.execute(insert(loads).values(path=str(path), at=now, scope="{}")).inserted_primary_key[0])
        batch: list[dict[str, Any]] = []
        p = self._ph

        def count_in(hcode: str, endpoint: str, day: str | None, n: int = 1) -> None:
            """The build's window per facility (first to last visit day) and its encounters inside it."""
            if not day:
                return
            rng = scope.get(hcode)
            if rng is None:
                scope[hcode] = [day, day]
            elif day < rng[0]:
                rng[0] = day
            elif day > rng[1]:
                rng[1] = day
            if endpoint == ENCOUNTER_EP:
                present[hcode] = present.get(hcode, 0) + n

        def flush() -> None:
            if not batch:
                return
            with self.engine.begin() as c:
                # driver SQL here and below: through SQLAlchemy's statements each row cost more than SQLite's work
                have = {r[0]: r[1:] for r in c.exec_driver_sql(
                    "SELECT key, content_hash, status, missing_load, day FROM delivery_outbox WHERE key IN "
                    f"({', '.join([p] * len(batch))})", tuple(b["key"] for b in batch)).fetchall()}
                new_rows, changed, same, back = [], [], 0, []
                rehash: list[tuple[str, str]] = []  # unchanged rows whose stored hash is an earlier version's
                total = 0
                got = have.get
                for b in batch:
                    old = got(b["key"])
                    raw = b["payload_bytes"]
                    h = (b.get("payload_hash") or content_hash(raw)) if raw is not None else None
                    fresh = True  # content to compare with the stored row (False: the very bytes stored before)
                    if old is not None and h is not None and old[1] != REMOVED and same_content(old[0], h, raw):
                        day, fresh = old[3], False  # unchanged, and no need to parse it
                        if h != old[0]:
                            rehash.append((h, b["key"]))
                    elif raw is not None and b["day"] is not None:  # as phrsync build wrote it: canonical bytes
                        day = b["day"]
                        b.update(ref=b["key"].split("|", 1)[-1], content_hash=h, body=bytes(raw))
                    else:
                        payload = b["payload"]
                        if payload is None:
                            try:
                                payload = orjson.loads(raw)
                            except orjson.JSONDecodeError as e:
                                raise ValueError(f"บรรทัด {b['line']} ของ {path} ไม่ถูกต้อง / line {b['line']} of "
                                                 f"{path} is invalid: {e}") from None
                        day = encounter_day(payload) if b["endpoint"] == ENCOUNTER_EP else None
                        body = canonical(payload)
                        b.update(ref=_ref(b["endpoint"], b["key"], payload), day=day, content_hash=content_hash(body),
                                 body=body)
                    if since and day and day < since:
                        continue
                    total += 1
                    count_in(b["hospcode"], b["endpoint"], day)
                    if old is None:
                        new_rows.append(b)
                    elif fresh and (old[1] == REMOVED or not same_content(old[0], b["content_hash"], b["body"])):
                        changed.append(b)  # changed, or back
                    else:
                        same += 1
                        if fresh and old[0] != b["content_hash"]:
                            rehash.append((b["content_hash"], b["key"]))
                        if old[2] is not None:  # missing from an earlier build, back unchanged
                            back.append(b["key"])
                # compressed only when stored: most rows of a re-run are unchanged
                stored = [(b["key"], pack(b["body"])) for b in (*new_rows, *changed)]
                if new_rows:
                    c.exec_driver_sql(
                        f"INSERT INTO delivery_outbox (key, endpoint, hospcode, ref, day, content_hash, status, "
                        f"attempts, load_id, created_at, updated_at) VALUES ({', '.join([p] * 11)})",
                        [(b["key"], b["endpoint"], b["hospcode"], b["ref"], b["day"], b["content_hash"], PENDING, 0,
                          res.load_id, now, now) for b in new_rows])
                    c.exec_driver_sql(f"INSERT INTO delivery_payloads (key, payload) VALUES ({p}, {p})",
                                      stored[:len(new_rows)])
                for b in changed:
                    c.execute(update(outbox).where(outbox.c.key == b["key"]).values(
                        content_hash=b["content_hash"], status=PENDING, attempts=0,
                        http_status=None, reason=None, last_error=None, load_id=res.load_id, updated_at=now,
                        day=b["day"], ref=b["ref"], missing_load=None))
                if changed:
                    c.exec_driver_sql(f"UPDATE delivery_payloads SET payload = {p} WHERE key = {p}",
                                      [(v, k) for k, v in stored[len(new_rows):]])
                if back:
                    c.execute(update(outbox).where(outbox.c.key.in_(back)).values(missing_load=None))
                if rehash:  # once per row after an upgrade: later loads compare the new hash directly
                    c.exec_driver_sql(f"UPDATE delivery_outbox SET content_hash = {p} WHERE key = {p}", rehash)
                res.total += total
                res.new += len(new_rows)
                res.changed += len(changed)
                res.unchanged += same
                res.changed_keys.extend(b["key"] for b in changed)
                for b in new_rows:
                    changed_days.setdefault(b["hospcode"], set()).add(b["day"])
                for b in changed:  # (its visit may have moved: the day it had is recounted too)
                    changed_days.setdefault(b["hospcode"], set()).update((b["day"], have[b["key"]][3]))
            batch.clear()

        seen: set[str] = set()
        changed_days: dict[str, set[str | None]] = {}  # per facility, the visit days whose rows changed
        touched: set[str] = set()  # facilities with rows marked missing
        for item in items:
            if "payload_hash" not in item:  # not from iter_build_file (whose items are its own): a normalised copy
                item = {**item, "hospcode": str(item["hospcode"]), "key": str(item["key"]),
                        "endpoint": str(item["endpoint"]), "payload_bytes": item.get("payload_bytes"),
                        "line": item.get("line", 0), "day": item.get("day")}
            if item["endpoint"] != ENCOUNTER_EP:
                item["day"] = None
            if facility and item["hospcode"] != facility:
                continue
            key = item["key"]
            if key in seen:  # named with its file and line, like a malformed line (the key alone left one to grep)
                where = f"บรรทัด {item['line']} ของ {path} / line {item['line']} of {path}: " if item.get("line") else ""
                raise ValueError(f"{where}คีย์ซ้ำในไฟล์ / duplicate key in build file: {key}")
            seen.add(key)
            batch.append(item)
            if len(batch) >= chunk:
                flush()
        flush()
        for h, d, n in _unchanged_runs:
            count_in(h, ENCOUNTER_EP, d, n)
            res.total += n
            res.unchanged += n
        res.missing = self._mark_missing(res.load_id, scope, seen, present, _more_seen, touched)
        with self.engine.begin() as c:
            c.execute(update(loads).where(loads.c.id == res.load_id).values(scope=orjson.dumps(scope).decode()))
        res.facilities = sorted(touched | set(changed_days))
        self.refresh_aggregates(changed_days, changed_days)  # once per facility whose rows changed, its days only
        return res

    def _mark_missing(self, load_id: int, scope: dict[str, list[str]], seen: set[str],
                      present: dict[str, int], more_seen: Callable[[], set[str]] | None = None,
                      touched: set[str] | None = None) -> int:
        """Encounters on days this build covered (per facility, first to last visit day) that it lacks.
        ``present``: how many encounters of each facility the build brought inside that window; where the
        store holds no more than that, nothing is missing and no key is read (the usual nightly case)."""
        gone: list[str] = []
        with self.engine.connect() as c:
            for hcode, (first, last) in scope.items():
                cond = and_(outbox.c.hospcode == hcode, outbox.c.endpoint == ENCOUNTER_EP, outbox.c.day >= first,
                            outbox.c.day <= last, outbox.c.status != REMOVED, outbox.c.missing_load.is_(None))
                if c.execute(
                        select(func.count()).select_from(outbox).where(cond)).scalar_one() <= present.get(hcode, 0):
                    continue
                if more_seen is not None:  # the keys of runs taken unchanged as a whole: read them once now
                    seen |= more_seen()
                    more_seen = None
                before = len(gone)
                gone.extend(k for k in c.execute(select(outbox.c.key).where(cond)).scalars().all() if k not in seen)
                if touched is not None and len(gone) > before:
                    touched.add(hcode)
        with self.engine.begin() as c:
            for part in _parts(gone):
                c.execute(update(outbox).where(outbox.c.key.in_(part)).values(missing_load=load_id))
        return len(gone)

    def plan(self, items: Iterable[dict[str, Any]], facility: str | None = None,
             since: str | None = None) -> LoadResult:
        """What :meth:`load` would do, without writing (``--dry-run``)."""
        res = LoadResult()
        batch: dict[str, bytes] = {}

        def flush() -> None:
            with self.engine.connect() as c:
                have = {k: (h, st) for k, h, st in c.execute(
                    select(outbox.c.key, outbox.c.content_hash, outbox.c.status).where(outbox.c.key.in_(list(batch))))}
            for k, body in batch.items():
                old = have.get(k)
                if old is None:
                    res.new += 1
                elif old[1] == REMOVED or not same_content(old[0], content_hash(body), body):
                    res.changed += 1
                else:
                    res.unchanged += 1
            batch.clear()

        for item in items:
            hcode = str(item["hospcode"])
            if facility and hcode != facility:
                continue
            day = encounter_day(item["payload"]) if item["endpoint"] == ENCOUNTER_EP else None
            if since and day and day < since:
                continue
            res.total += 1
            batch[str(item["key"])] = canonical(item["payload"])
            if len(batch) >= 500:
                flush()
        if batch:
            flush()
        return res

    # ---- sending ---------------------------------------------------------------------------
    def to_send(self, facility: str | None = None, statuses: tuple[str, ...] = TO_SEND,
                page: int = 500) -> Iterator[Row]:
        """Rows to send, facilities interleaved round-robin (PHR limits each facility's rate, so a province run
        must not queue every worker behind one facility), each facility in key order, paged."""
        if facility:
            yield from self._to_send_one(facility, statuses, page)
            return
        with self.engine.connect() as c:
            codes = [r[0] for r in c.execute(select(outbox.c.hospcode).where(outbox.c.status.in_(statuses))
                                             .distinct().order_by(outbox.c.hospcode))]
        gens = [self._to_send_one(h, statuses, max(20, page // max(1, len(codes)))) for h in codes]
        while gens:
            alive = []
            for g in gens:
                row = next(g, None)
                if row is not None:
                    yield row
                    alive.append(g)
            gens = alive

    def _to_send_one(self, facility: str, statuses: tuple[str, ...], page: int) -> Iterator[Row]:
        last = ""
        p = self._ph
        sql = ("SELECT o.key, o.endpoint, o.hospcode, o.ref, o.day, d.payload, o.attempts, o.status, o.claimed_by "
               "FROM delivery_outbox o JOIN delivery_payloads d ON d.key = o.key "
               f"WHERE o.hospcode = {p} AND o.key > {p} AND o.status IN ({', '.join([p] * len(statuses))}) "
               f"ORDER BY o.key LIMIT {int(page)}")
        while True:
            with self.engine.connect() as c:  # driver SQL: every payload to send passes here
                rows = c.exec_driver_sql(sql, (facility, last, *statuses)).fetchall()
            if not rows:
                return
            for key, ep, h, ref, day, payload, attempts, status, claimed_by in rows:
                yield Row(key, ep, h, ref, day, unpack(payload), attempts, status, claimed_by)
            last = rows[-1][0]

    def to_send_counts(self, statuses: tuple[str, ...] = TO_SEND) -> dict[str, int]:
        """{facility: rows in ``statuses``} as the aggregates last counted them (for a sending pass to tell when
        a facility's last row is done; an exact count is :meth:`count_to_send`)."""
        with self.engine.connect() as c:
            return {h: int(n) for h, n in c.execute(
                select(agg_totals.c.hospcode, func.sum(agg_totals.c.n)).where(agg_totals.c.status.in_(statuses))
                .group_by(agg_totals.c.hospcode))}

    def count_to_send(self, facility: str | None = None) -> int:
        cond = [outbox.c.status.in_(TO_SEND)]
        if facility:
            cond.append(outbox.c.hospcode == facility)
        with self.engine.connect() as c:
            return int(c.execute(select(func.count()).select_from(outbox).where(and_(*cond))).scalar() or 0)

    def mark_sending(self, key: str) -> bool:
        """Committed before the request: a crash after this leaves the row in doubt, never forgotten. False when
        another store handle holds the row's claim (see :meth:`apply`)."""
        return not self.apply([key], [])

    def mark_result(self, key: str, status: str, http_status: int | None = None, reason: str | None = None,
                    error: str | None = None) -> None:
        now = time.time()
        values: dict[str, Any] = {"status": status, "http_status": http_status, "reason": reason,
                                  "last_error": error, "updated_at": now}
        if status in (SENT, CONFIRMED):
            values["sent_at"] = now
        with self.engine.begin() as c:
            c.execute(update(outbox).where(outbox.c.key == key).values(**values))

    def apply(self, sending: list[Claim], results: list[tuple[str, str, int | None, str | None, str | None]],
              reverts: Iterable[tuple[str, str]] = ()) -> set[str]:
        """Many claims and answers in one transaction (the sender's group commit); ``reverts`` (key, earlier
        status) undo a claim whose request never went out. Returns the keys whose claim did not take.

        A claim is a compare-and-set: a :class:`Row`'s ``(key, status, claimed_by)`` as read takes only while
        the row still has that status and claimant (two agents that read the same row: one sends it); a bare
        key (a retry) only a row this handle claimed before or nobody ever did. Answers and put-backs apply to
        rows this handle holds (or nobody does), never to a row another agent took since.

        Plain driver SQL: through SQLAlchemy's compiled statements each row cost more than the database's
        own work, on the path every payload takes twice."""
        now = time.time()
        p = self._ph
        me = self.owner
        reverts = list(reverts)
        lost: set[str] = set()
        claim = (f"UPDATE delivery_outbox SET status = '{SENDING}', attempts = attempts + 1, updated_at = {p}, "
                 f"claimed_by = {p} WHERE")
        mine = f"COALESCE(claimed_by, {p}) = {p}"
        answer = (f"UPDATE delivery_outbox SET status = {p}, http_status = {p}, reason = {p}, last_error = {p}, "
                  f"updated_at = {p}, sent_at = COALESCE({p}, sent_at) WHERE {mine} AND key")
        # claims grouped by what they compare with: (None, None) = a bare key
        groups_c: dict[tuple[str | None, str | None], list[str]] = {}
        for cl in sending:
            k, st, by = (cl, None, None) if isinstance(cl, str) else cl
            groups_c.setdefault((st, by), []).append(k)
        with self.engine.begin() as c:
            # Keys that occur once: one statement per slice of keys (``key IN (...)``) instead of one per key, and
            # answers grouped by outcome (nearly all alike) — measured on their own, claim 2.7 → 1.9 and answer
            # 3.8 → 2.6 µs per payload; in the sender the database thread also takes the GIL back from the busy
            # event loop once per statement. A key twice in one group commit keeps the per-key statements, so
            # its changes apply in order. RETURNING tells which claims took (SQLite 3.35+, PostgreSQL).
            for (st, by), keys in groups_c.items():
                if st is None:
                    cond, cargs = mine, (me, me)
                else:
                    cond, cargs = f"status = {p} AND COALESCE(claimed_by, '') = {p}", (st, by or "")
                if len(set(keys)) == len(keys):
                    for part in _parts(keys):
                        got = {r[0] for r in c.exec_driver_sql(
                            f"{claim} {cond} AND key IN ({', '.join([p] * len(part))}) RETURNING key",
                            (now, me, *cargs, *part))}
                        lost.update(k for k in part if k not in got)
                else:
                    for k in keys:
                        if not c.exec_driver_sql(f"{claim} {cond} AND key = {p} RETURNING key",
                                                 (now, me, *cargs, k)).fetchall():
                            lost.add(k)
            if len({r[0] for r in results}) == len(results):
                groups: dict[tuple[str, int | None, str | None, str | None], list[str]] = {}
                for k, st, code, reason, err in results:
                    groups.setdefault((st, code, reason, err), []).append(k)
                for (st, code, reason, err), keys in groups.items():
                    sent_at = now if st in (SENT, CONFIRMED) else None
                    for part in _parts(keys):
                        c.exec_driver_sql(f"{answer} IN ({', '.join([p] * len(part))})",
                                          (st, code, reason, err, now, sent_at, me, me, *part))
            else:
                c.exec_driver_sql(f"{answer} = {p}", [(st, code, reason, err, now, now if st in (SENT, CONFIRMED)
                                                        else None, me, me, k) for k, st, code, reason, err in results])
            if reverts:
                c.exec_driver_sql(
                    f"UPDATE delivery_outbox SET status = {p}, attempts = attempts - 1, updated_at = {p} "
                    f"WHERE key = {p} AND status = '{SENDING}' AND {mine}", [(st, now, k, me, me) for k, st in reverts])
        return lost

    def set_status(self, keys: list[str], status: str, reset_attempts: bool = False) -> int:
        if not keys:
            return 0
        # driver SQL with key lists, as apply(): through SQLAlchemy an IN list of 500 bound keys cost more to expand
        # and compile than SQLite spent on the updates (reconcile confirms every encounter this way)
        p = self._ph
        reset = ", attempts = 0, http_status = NULL, reason = NULL, last_error = NULL" if reset_attempts else ""
        now = time.time()
        n = 0
        with self.engine.begin() as c:
            for part in _parts(keys):
                n += c.exec_driver_sql(f"UPDATE delivery_outbox SET status = {p}, updated_at = {p}{reset} "
                                       f"WHERE key IN ({', '.join([p] * len(part))})", (status, now, *part)).rowcount
        return n

    def requeue_refused(self, facility: str | None = None) -> int:
        """Refused rows (of ``facility``, or all) pending again; their facilities' aggregates are counted anew."""
        cond = [outbox.c.status == REFUSED]
        if facility:
            cond.append(outbox.c.hospcode == facility)
        with self.engine.begin() as c:
            days: dict[str, set[str | None]] = {}
            for h, d in c.execute(select(outbox.c.hospcode, outbox.c.day).where(and_(*cond)).distinct()):
                days.setdefault(h, set()).add(d)
            n = int(c.execute(update(outbox).where(and_(*cond)).values(
                status=PENDING, attempts=0, updated_at=time.time())).rowcount)
        if n:
            self.refresh_aggregates(days, days)
        return n

    # ---- reading ---------------------------------------------------------------------------
    def counts(self) -> dict[str, dict[str, int]]:
        """{hospcode: {status: n}}."""
        out: dict[str, dict[str, int]] = {}
        with self.engine.connect() as c:
            for h, s, n in c.execute(select(outbox.c.hospcode, outbox.c.status, func.count())
                                     .group_by(outbox.c.hospcode, outbox.c.status)):
                out.setdefault(h, dict.fromkeys(STATUSES, 0))[s] = int(n)
        return out

    def facility_times(self) -> dict[str, dict[str, float | None]]:
        """{hospcode: {"last_sent": newest sent_at, "last_change": newest updated_at}}: when a run last delivered
        something of the facility, and when one last touched its rows (``phrsync status``)."""
        with self.engine.connect() as c:
            return {h: {"last_sent": sent, "last_change": changed} for h, sent, changed in c.execute(
                select(outbox.c.hospcode, func.max(outbox.c.sent_at), func.max(outbox.c.updated_at))
                .group_by(outbox.c.hospcode))}

    def top_reasons(self, hospcode: str, limit: int = 5) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            rows = c.execute(select(outbox.c.reason, func.count().label("n"), func.min(outbox.c.last_error))
                             .where(and_(outbox.c.hospcode == hospcode, outbox.c.status == REFUSED))
                             .group_by(outbox.c.reason).order_by(func.count().desc()).limit(limit)).all()
        return [{"reason": r[0] or "", "count": int(r[1]), "example": r[2] or ""} for r in rows]

    def row(self, key: str) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            r = c.execute(select(outbox).where(outbox.c.key == key)).mappings().first()
        return dict(r) if r else None

    def day_rows(self, hospcode: str, day: str) -> list[tuple[str, str, str, int | None]]:
        """(key, ref, status, missing_load) of one facility's encounters of one day."""
        p = self._ph
        with self.engine.connect() as c:
            return [tuple(r) for r in c.exec_driver_sql(  # type: ignore[misc]
                "SELECT key, ref, status, missing_load FROM delivery_outbox "
                f"WHERE hospcode = {p} AND day = {p} AND endpoint = {p}", (hospcode, day, ENCOUNTER_EP)).fetchall()]

    def day_flags(self, hospcode: str, since: str | None = None) -> dict[str, tuple[bool, bool]]:
        """{day: (holds rows PHR has not confirmed yet, holds rows the latest build no longer has)} for every
        encounter day of one facility: reconcile asks PHR only about the days where either is true (or every
        day, on a full check). Three index scans, not a pass over the facility's rows: the days (hday index),
        the days with ``sent`` rows (hkey index, which holds the status) and the stale days (a partial index)."""
        p = self._ph
        after = f" AND day >= {p}" if since else ""
        args: tuple[str, ...] = (hospcode, since) if since else (hospcode,)
        with self.engine.connect() as c:
            days = [r[0] for r in c.exec_driver_sql(
                f"SELECT DISTINCT day FROM delivery_outbox WHERE hospcode = {p} AND day IS NOT NULL{after} "
                "ORDER BY day", args)]
            # SQLite without statistics would rather walk the facility's rows by day than its status entries
            hkey = " INDEXED BY ix_delivery_outbox_hkey" if self.is_sqlite else ""
            sent = {r[0] for r in c.exec_driver_sql(
                f"SELECT DISTINCT day FROM delivery_outbox{hkey} WHERE hospcode = {p} AND status = '{SENT}'",
                (hospcode,))}
            stale = {r[0] for r in c.exec_driver_sql(
                f"SELECT DISTINCT day FROM delivery_outbox WHERE hospcode = {p} AND missing_load IS NOT NULL "
                f"AND status != '{REMOVED}'", (hospcode,))}
        return {d: (d in sent, d in stale) for d in days}

    def last_errors(self) -> dict[str, tuple[float, str]]:
        """{hospcode: (when, masked error)} of each facility's most recently failed row: what the last run
        could not get through (``phrsync status`` shows why a facility is stuck)."""
        with self.engine.connect() as c:
            newest = (select(outbox.c.hospcode, func.max(outbox.c.updated_at).label("at"))
                      .where(outbox.c.status == FAILED).group_by(outbox.c.hospcode).subquery())
            rows = c.execute(select(outbox.c.hospcode, outbox.c.updated_at, outbox.c.reason, outbox.c.last_error)
                             .join(newest, and_(outbox.c.hospcode == newest.c.hospcode,
                                                outbox.c.updated_at == newest.c.at))
                             .where(outbox.c.status == FAILED)).all()
        out: dict[str, tuple[float, str]] = {}
        for h, at, reason, error in rows:
            out.setdefault(h, (float(at), str(error or reason or "")))
        return out

    def set_agent_states(self, states: dict[str, dict[str, Any]]) -> None:
        """What the last run learned about each facility it tried (``ok``, ``login_refused``, ``other_agent``,
        ``error``; why; when), kept for ``status`` between runs."""
        if not states:
            return
        with self.engine.begin() as c:
            for h, st in states.items():
                name, value = f"{AGENT_STATE_META}{h}", orjson.dumps(st).decode()
                if c.execute(update(meta).where(meta.c.name == name).values(value=value)).rowcount == 0:
                    c.execute(insert(meta).values(name=name, value=value))

    def agent_states(self) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as c:
            rows = c.execute(select(meta.c.name, meta.c.value).where(meta.c.name.startswith(AGENT_STATE_META))).all()
        return {n.removeprefix(AGENT_STATE_META): orjson.loads(v) for n, v in rows}

    def record_phr_agents(self, answers: dict[str, dict[str, Any]], *, agent_version: str = "",
                          computer_name: str = "") -> None:
        """What a run learned from PHR about each facility's agent (GetAgentComputerName's answer: the computer
        PHR knows and its status text) and what it told PHR (the last UpdateAgentStatus text; this phrsync's
        version and computer name), merged into what earlier runs recorded: the monitoring web shows it."""
        if not answers:
            return
        old = self.phr_agents()
        rows = {}
        for h, a in answers.items():
            rows[h] = {**old.get(h, {}), **a, "agent_version": agent_version or None,
                       "computer_name": computer_name or None}
        with self.engine.begin() as c:
            for h, v in rows.items():
                name, value = f"{PHR_AGENT_META}{h}", orjson.dumps(v).decode()
                if c.execute(update(meta).where(meta.c.name == name).values(value=value)).rowcount == 0:
                    c.execute(insert(meta).values(name=name, value=value))

    def phr_agents(self) -> dict[str, dict[str, Any]]:
        """{facility: what :meth:`record_phr_agents` kept}."""
        with self.engine.connect() as c:
            rows = c.execute(select(meta.c.name, meta.c.value).where(meta.c.name.startswith(PHR_AGENT_META))).all()
        return {n.removeprefix(PHR_AGENT_META): orjson.loads(v) for n, v in rows}

    def record_guarded(self, reconciled: Iterable[str], guarded: list[dict[str, Any]]) -> None:
        """The days whose removals reconcile held back (``ReconcileResult.guarded``), for the facilities this run
        reconciled: theirs replace what an earlier run recorded (a facility reconciled without a guard has none
        left); other facilities keep theirs."""
        done = set(reconciled)
        if not done:
            return
        kept = {h: v for h, v in self.guarded().items() if h not in done}
        for g in guarded:
            kept.setdefault(str(g.get("hospcode")), []).append({**g, "at": time.time()})
        self.set_meta(GUARDED_META, orjson.dumps(kept).decode())

    def guarded(self) -> dict[str, list[dict[str, Any]]]:
        """{facility: [{hospcode, day, would_remove, held, at}]} of removals held back and not resolved since."""
        v = self.get_meta(GUARDED_META)
        return orjson.loads(v) if v else {}

    def get_meta(self, name: str) -> str | None:
        with self.engine.connect() as c:
            return c.execute(select(meta.c.value).where(meta.c.name == name)).scalar()

    def set_meta(self, name: str, value: str) -> None:
        with self.engine.begin() as c:
            if c.execute(update(meta).where(meta.c.name == name).values(value=value)).rowcount == 0:
                c.execute(insert(meta).values(name=name, value=value))

    def delete_meta(self, name: str) -> None:
        with self.engine.begin() as c:
            c.execute(meta.delete().where(meta.c.name == name))

    def facilities(self) -> list[str]:
        with self.engine.connect() as c:
            return [r[0] for r in c.execute(select(outbox.c.hospcode).distinct().order_by(outbox.c.hospcode))]

    def last_load(self) -> tuple[int, dict[str, list[str]]] | None:
        with self.engine.connect() as c:
            r = c.execute(select(loads.c.id, loads.c.scope).order_by(loads.c.id.desc()).limit(1)).first()
        return (int(r[0]), orjson.loads(r[1])) if r else None

    # ---- the lease: one agent per store, whatever its data folder or computer -----------------
    def _now(self, c: Any) -> float:
        """The store's clock: agents on several computers share one PostgreSQL store, and its clock, not each
        computer's, decides when a lease expired. (A SQLite store is on this computer.)"""
        if self.is_sqlite:
            return time.time()
        return float(c.exec_driver_sql("SELECT extract(epoch from clock_timestamp())").scalar_one())

    def take_lease(self, computer: str, seconds: float) -> Lease | None:
        """Take the store's lease for ``seconds`` (renewed by :meth:`renew_lease`): None when taken, else the
        holder. One conditional statement decides, so two agents started together cannot both win. A lease is
        free when nobody holds it, when it expired (its holder stopped renewing), or when its holder was a
        process of this computer that no longer runs (killed: no wait for the expiry)."""
        host, pid = socket.gethostname(), os.getpid()
        p = self._ph
        with self.engine.begin() as c:
            now = self._now(c)
            row = (self.owner, host, pid, computer, now, now, now + seconds)
            if c.exec_driver_sql(
                    "INSERT INTO delivery_lease (name, owner, host, pid, computer, acquired_at, heartbeat_at, "
                    f"expires_at) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}) ON CONFLICT (name) DO NOTHING",
                    (LEASE_NAME, *row)).rowcount == 1:
                return None
        held = self.lease()
        if held is None:  # released meanwhile: try once more
            return self.take_lease(computer, seconds)
        with self.engine.begin() as c:
            now = self._now(c)
            dead = held.host == host and held.pid != pid and not _pid_alive(held.pid)
            free = held.owner == self.owner or held.expires_at < now or dead
            # compare-and-set on the holder read: of two agents taking over the same lease, one wins
            if free and c.exec_driver_sql(
                    f"UPDATE delivery_lease SET owner = {p}, host = {p}, pid = {p}, computer = {p}, "
                    f"acquired_at = {p}, heartbeat_at = {p}, expires_at = {p} WHERE name = {p} AND owner = {p}",
                    (self.owner, host, pid, computer, now, now, now + seconds, LEASE_NAME, held.owner)).rowcount == 1:
                return None
        return self.lease() or held

    def renew_lease(self, seconds: float) -> bool:
        """The heartbeat: False when this handle no longer holds the lease (it expired and another took it)."""
        p = self._ph
        with self.engine.begin() as c:
            now = self._now(c)
            return c.exec_driver_sql(
                f"UPDATE delivery_lease SET heartbeat_at = {p}, expires_at = {p} WHERE name = {p} AND owner = {p}",
                (now, now + seconds, LEASE_NAME, self.owner)).rowcount == 1

    def release_lease(self) -> None:
        p = self._ph
        with self.engine.begin() as c:
            c.exec_driver_sql(f"DELETE FROM delivery_lease WHERE name = {p} AND owner = {p}", (LEASE_NAME, self.owner))

    def lease(self) -> Lease | None:
        """The lease as stored (it may have expired: compare ``expires_at`` with :meth:`store_time`)."""
        with self.engine.connect() as c:
            r = c.execute(select(lease.c.owner, lease.c.host, lease.c.pid, lease.c.computer, lease.c.acquired_at,
                                 lease.c.heartbeat_at, lease.c.expires_at).where(lease.c.name == LEASE_NAME)).first()
        return Lease(*r) if r else None

    def store_time(self) -> float:
        with self.engine.connect() as c:
            return self._now(c)

    def installation_id(self) -> str:
        """A random id made once per state store and kept in it: what tells this agent installation from any
        other on PHR's side (two stores on one computer share its host name)."""
        p = self._ph
        with self.engine.begin() as c:
            c.exec_driver_sql(f"INSERT INTO delivery_meta (name, value) VALUES ({p}, {p}) ON CONFLICT (name) "
                              "DO NOTHING", (INSTALLATION_META, secrets.token_hex(4)))
            return str(c.execute(select(meta.c.value).where(meta.c.name == INSTALLATION_META)).scalar_one())

    # ---- days compared with PHR (a full check resumes where it stopped) ------------------------
    def mark_days_checked(self, days: Iterable[tuple[str, str] | tuple[str, str, int | None]],
                          at: float | None = None) -> None:
        """Record that PHR was asked about these (facility, day) successfully at ``at`` (now), and, given as a
        third item, how many encounter refs it said it holds for the day (what the web shows as "PHR holds")."""
        now = time.time() if at is None else at
        rows = [(d[0], d[1], now, d[2] if len(d) > 2 else None) for d in days]  # type: ignore[misc]
        if not rows:
            return
        p = self._ph
        with self.engine.begin() as c:
            c.exec_driver_sql(f"INSERT INTO delivery_days_checked (hospcode, day, checked_at, held) VALUES ({p}, {p}, "
                              f"{p}, {p}) ON CONFLICT (hospcode, day) DO UPDATE SET checked_at = excluded.checked_at, "
                              "held = excluded.held", rows)
            self._touch_aggregates(c)

    def days_checked_since(self, hospcode: str, since: float) -> set[str]:
        """The days of one facility PHR was asked about at or after ``since``."""
        p = self._ph
        with self.engine.connect() as c:
            return {r[0] for r in c.exec_driver_sql(
                f"SELECT day FROM delivery_days_checked WHERE hospcode = {p} AND checked_at >= {p}", (hospcode, since))}

    def phr_days(self, hospcode: str | None = None, since: str | None = None,
                 until: str | None = None) -> list[tuple[str, str, int | None, float]]:
        """(facility, day, refs PHR said it holds, when it was asked) of the days PHR was asked about: one
        facility's in day order, or every facility's by day; ``held`` is None for days asked by a version that did
        not keep the count."""
        cond = []
        if hospcode:
            cond.append(days_checked.c.hospcode == hospcode)
        if since:
            cond.append(days_checked.c.day >= since)
        if until:
            cond.append(days_checked.c.day <= until)
        q = select(days_checked.c.hospcode, days_checked.c.day, days_checked.c.held, days_checked.c.checked_at)
        if cond:
            q = q.where(and_(*cond))
        # one facility: its key's order; a range of every facility's days: the day index's
        order = (days_checked.c.hospcode, days_checked.c.day) if hospcode else (days_checked.c.day, days_checked.c.hospcode)
        with self.engine.connect() as c:
            return [(h, d, None if n is None else int(n), float(at)) for h, d, n, at in c.execute(q.order_by(*order))]

    def phr_best(self, since: str, until: str) -> dict[str, int]:
        """{facility: what PHR holds of its encounters from ``since`` to ``until``, as best known}: per visit day,
        what PHR said when last asked about it, else the rows it confirmed. Two grouped reads of the small tables
        (the day-range indexes cover them), one row per facility back."""
        p = self._ph
        out: dict[str, int] = {}
        with self.engine.connect() as c:
            for h, n in c.exec_driver_sql(
                    f"SELECT hospcode, sum(held) FROM delivery_days_checked WHERE day >= {p} AND day <= {p} "
                    "AND held IS NOT NULL GROUP BY hospcode", (since, until)):
                out[h] = int(n)
            # (the range inside too: PostgreSQL would hash every day ever asked about otherwise)
            for h, n in c.exec_driver_sql(
                    f"SELECT a.hospcode, sum(a.n) FROM delivery_agg_days a WHERE a.day >= {p} AND a.day <= {p} AND "
                    f"a.status = '{CONFIRMED}' AND NOT EXISTS (SELECT 1 FROM delivery_days_checked k WHERE "
                    f"k.hospcode = a.hospcode AND k.day = a.day AND k.held IS NOT NULL AND k.day >= {p} AND "
                    f"k.day <= {p}) GROUP BY a.hospcode", (since, until, since, until)):
                out[h] = out.get(h, 0) + int(n)
        return out

    def phr_day_sums(self, since: str, until: str | None = None) -> dict[str, int]:
        """{day: refs PHR said it holds, over every facility asked about the day} from ``since``."""
        cond = [days_checked.c.day >= since] + ([days_checked.c.day <= until] if until else [])
        with self.engine.connect() as c:
            return {d: int(n) for d, n in c.execute(
                select(days_checked.c.day, func.sum(days_checked.c.held)).where(
                    and_(*cond, days_checked.c.held.is_not(None))).group_by(days_checked.c.day))}

    def phr_totals(self) -> dict[str, tuple[int, int, int, float]]:
        """{facility: (refs PHR holds summed over the days asked, days asked, days asked without a count, when
        last asked)}: one GROUP BY over the small table of days."""
        with self.engine.connect() as c:
            rows = c.execute(select(days_checked.c.hospcode, func.coalesce(func.sum(days_checked.c.held), 0),
                                    func.count(), func.count() - func.count(days_checked.c.held),
                                    func.max(days_checked.c.checked_at)).group_by(days_checked.c.hospcode)).all()
        return {h: (int(n), int(d), int(u), float(at)) for h, n, d, u, at in rows}

    # ---- aggregates: the monitoring web's figures ---------------------------------------------
    def refresh_aggregates(self, facilities: Iterable[str], days: Mapping[str, Iterable[str | None]] | None = None
                           ) -> None:
        """Count the rows of these facilities again into the aggregate tables. Called when something changed them:
        a load, the end of a facility's sending, its reconcile, a requeue — never per payload. ``days``: for a
        facility it names, only the rows of those visit days (and its rows without one: registers) are counted
        again — what a load, a sending pass or a reconcile changed, a few index ranges instead of every row of the
        facility (a tenth of the time on a facility of 36,000 encounters). Either way two index scans read its
        refused and failed rows."""
        p = self._ph
        # SQLite without statistics would rather walk the facility's rows by day than its status entries
        hkey = " INDEXED BY ix_delivery_outbox_hkey" if self.is_sqlite else ""
        group = ("SELECT day, status, count(*), max(sent_at), max(updated_at) FROM delivery_outbox "
                 f"WHERE hospcode = {p} AND day")
        for h in sorted(set(facilities)):
            only = None if days is None or h not in days else sorted({d for d in days[h] if d})
            with self.engine.begin() as c:
                fresh: list[Any] = []
                if only is None:
                    fresh = list(c.exec_driver_sql(f"{group} IS NOT NULL GROUP BY day, status", (h,)).fetchall())
                    c.execute(agg_days.delete().where(agg_days.c.hospcode == h))
                else:
                    for part in _parts(only):
                        fresh += c.exec_driver_sql(f"{group} IN ({', '.join([p] * len(part))}) GROUP BY day, status",
                                                   (h, *part)).fetchall()
                        c.execute(agg_days.delete().where(and_(agg_days.c.hospcode == h, agg_days.c.day.in_(part))))
                if fresh:
                    c.execute(insert(agg_days), [{"hospcode": h, "day": d, "status": st, "n": int(n), "last_sent": sent,
                                                  "last_change": changed} for d, st, n, sent, changed in fresh])
                # the rows without a visit day (registers, an encounter without one), and the encounters by status
                groups = [(ep, st, int(n), sent, changed) for ep, st, n, sent, changed in c.exec_driver_sql(
                    "SELECT endpoint, status, count(*), max(sent_at), max(updated_at) FROM delivery_outbox "
                    f"WHERE hospcode = {p} AND day IS NULL GROUP BY endpoint, status", (h,))]
                groups += [(ENCOUNTER_EP, st, int(n), sent, changed) for st, n, sent, changed in c.execute(
                    select(agg_days.c.status, func.sum(agg_days.c.n), func.max(agg_days.c.last_sent),
                           func.max(agg_days.c.last_change)).where(agg_days.c.hospcode == h)
                    .group_by(agg_days.c.status))]
                confirmed_days = {d: int(n) for d, n in c.execute(select(agg_days.c.day, agg_days.c.n).where(
                    and_(agg_days.c.hospcode == h, agg_days.c.status == CONFIRMED)))}
                totals: dict[tuple[str, str], int] = {}
                for ep, st, n, _sent, _changed in groups:
                    totals[(ep, st)] = totals.get((ep, st), 0) + n
                # a facility with no refused (failed) row, most of them, has none to read
                reasons = c.exec_driver_sql(
                    "SELECT endpoint, coalesce(reason, ''), max(http_status), count(*), min(last_error), "
                    f"max(updated_at) FROM delivery_outbox{hkey} WHERE hospcode = {p} AND status = '{REFUSED}' "
                    "GROUP BY endpoint, coalesce(reason, '')", (h,)).fetchall() if any(
                    n for (_ep, st), n in totals.items() if st == REFUSED) else []
                failed = c.exec_driver_sql(
                    f"SELECT updated_at, reason, last_error FROM delivery_outbox{hkey} WHERE hospcode = {p} AND "
                    f"status = '{FAILED}' ORDER BY updated_at DESC LIMIT 1", (h,)).first() if any(
                    n for (_ep, st), n in totals.items() if st == FAILED) else None
                asked = {d: (n, at) for d, n, at in c.exec_driver_sql(
                    f"SELECT day, held, checked_at FROM delivery_days_checked WHERE hospcode = {p}", (h,))
                    if n is not None}
                phr_held = sum(int(n) for n, _at in asked.values()) if asked else None
                phr_best = (phr_held or 0) + sum(n for d, n in confirmed_days.items() if d not in asked)
                for t in (agg_totals, agg_reasons, agg_facilities):
                    c.execute(t.delete().where(t.c.hospcode == h))
                if totals:
                    c.execute(insert(agg_totals), [{"hospcode": h, "endpoint": ep, "status": st, "n": n}
                                                   for (ep, st), n in totals.items() if n])
                if reasons:
                    c.execute(insert(agg_reasons), [
                        {"hospcode": h, "endpoint": ep, "reason": (r or "")[:120], "http_status": code, "n": int(n),
                         "example": ex, "last_at": at} for ep, r, code, n, ex, at in reasons])
                c.execute(insert(agg_facilities).values(
                    hospcode=h, refreshed_at=time.time(),
                    last_sent=max((float(g[3]) for g in groups if g[3] is not None), default=None),
                    last_change=max((float(g[4]) for g in groups if g[4] is not None), default=None),
                    last_error=str(failed[2] or failed[1] or "") if failed else None,
                    last_error_at=float(failed[0]) if failed else None,
                    last_refused_at=max((float(r[5]) for r in reasons if r[5] is not None), default=None),
                    phr_held=phr_held, phr_days=len(asked),
                    phr_checked_at=max((float(at) for _n, at in asked.values()), default=None),
                    phr_best=phr_best if asked or confirmed_days else None))
                self._touch_aggregates(c)

    def _touch_aggregates(self, c: Any) -> None:
        """A reader caches what it read until this changes."""
        value = repr(time.time())
        if c.execute(update(meta).where(meta.c.name == AGGREGATES_AT_META).values(value=value)).rowcount == 0:
            c.execute(insert(meta).values(name=AGGREGATES_AT_META, value=value))

    def aggregates_version(self) -> tuple[Any, ...]:
        """Changes whenever anything the web shows from this store may have: the aggregates (counted again, or a
        day PHR was asked about) or a run (begun or finished, with the states and answers it records). A reader
        keeps what it read until this changes."""
        with self.engine.connect() as c:
            at = c.execute(select(meta.c.value).where(meta.c.name == AGGREGATES_AT_META)).scalar()
            run = c.execute(select(runs.c.id, runs.c.finished_at).order_by(runs.c.id.desc()).limit(1)).first()
        return at, tuple(run) if run else None

    def aggregate_totals(self) -> dict[str, dict[str, dict[str, int]]]:
        """{facility: {endpoint: {status: rows}}} as last counted."""
        out: dict[str, dict[str, dict[str, int]]] = {}
        with self.engine.connect() as c:
            for h, ep, st, n in c.execute(select(agg_totals.c.hospcode, agg_totals.c.endpoint, agg_totals.c.status,
                                                 agg_totals.c.n)):
                out.setdefault(h, {}).setdefault(ep, dict.fromkeys(STATUSES, 0))[st] = int(n)
        return out

    def aggregate_facilities(self) -> dict[str, dict[str, Any]]:
        """{facility: {refreshed_at, last_sent, last_change, last_error, last_error_at, last_refused_at}}."""
        with self.engine.connect() as c:
            return {r["hospcode"]: dict(r) for r in c.execute(select(agg_facilities)).mappings()}

    def aggregate_days(self, hospcode: str | None = None, since: str | None = None,
                       until: str | None = None) -> list[tuple[str, str, dict[str, int]]]:
        """[(facility, day, {status: encounters})]: one facility's in day order, or (``hospcode`` None) every
        facility's by day."""
        cond = []
        if hospcode:
            cond.append(agg_days.c.hospcode == hospcode)
        if since:
            cond.append(agg_days.c.day >= since)
        if until:
            cond.append(agg_days.c.day <= until)
        q = select(agg_days.c.hospcode, agg_days.c.day, agg_days.c.status, agg_days.c.n)
        if cond:
            q = q.where(and_(*cond))
        order = (agg_days.c.hospcode, agg_days.c.day) if hospcode else (agg_days.c.day, agg_days.c.hospcode)
        out: list[tuple[str, str, dict[str, int]]] = []
        with self.engine.connect() as c:
            for h, d, st, n in c.execute(q.order_by(*order)):
                if not out or out[-1][0] != h or out[-1][1] != d:
                    out.append((h, d, dict.fromkeys(STATUSES, 0)))
                out[-1][2][st] = int(n)
        return out

    def aggregate_day_sums(self, since: str, until: str | None = None) -> dict[str, dict[str, int]]:
        """{day: {status: encounters}} over every facility (the province's chart), from ``since``."""
        cond = [agg_days.c.day >= since] + ([agg_days.c.day <= until] if until else [])
        out: dict[str, dict[str, int]] = {}
        with self.engine.connect() as c:
            for d, st, n in c.execute(select(agg_days.c.day, agg_days.c.status, func.sum(agg_days.c.n))
                                      .where(and_(*cond)).group_by(agg_days.c.day, agg_days.c.status)):
                out.setdefault(d, dict.fromkeys(STATUSES, 0))[st] = int(n)
        return out

    def aggregate_reasons(self, hospcode: str | None = None) -> list[dict[str, Any]]:
        """Refused rows grouped by facility, endpoint and short reason, the largest first."""
        q = select(agg_reasons)
        if hospcode:
            q = q.where(agg_reasons.c.hospcode == hospcode)
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(q.order_by(agg_reasons.c.n.desc(), agg_reasons.c.reason)).mappings()]

    # ---- runs ------------------------------------------------------------------------------
    def start_run(self, target: str) -> int:
        with self.engine.begin() as c:
            return int(c.execute(insert(runs).values(target=target, started_at=time.time())).inserted_primary_key[0])

    def finish_run(self, run_id: int, exit_code: int, summary: dict[str, Any],
                   facilities: Iterable[str] = ()) -> None:
        """The run's outcome, and the facilities it touched (loaded, sent, checked or reconciled)."""
        codes = sorted(set(facilities))
        with self.engine.begin() as c:
            c.execute(update(runs).where(runs.c.id == run_id).values(
                finished_at=time.time(), exit_code=exit_code, summary=orjson.dumps(summary).decode()))
            c.execute(run_facilities.delete().where(run_facilities.c.run_id == run_id))
            if codes:
                c.execute(insert(run_facilities), [{"run_id": run_id, "hospcode": h} for h in codes])

    def recent_runs(self, limit: int = 100, facility: str | None = None) -> list[dict[str, Any]]:
        """Runs newest first (only those that touched ``facility`` when given), summaries parsed, each with the
        facilities it touched."""
        q = select(runs).order_by(runs.c.id.desc()).limit(max(0, limit))
        if facility:
            q = q.where(runs.c.id.in_(select(run_facilities.c.run_id).where(run_facilities.c.hospcode == facility)))
        with self.engine.connect() as c:
            rows = [dict(r) for r in c.execute(q).mappings()]
            ids = [r["id"] for r in rows]
            touched: dict[int, list[str]] = {}
            for part in _parts([str(i) for i in ids]):
                for rid, h in c.execute(select(run_facilities.c.run_id, run_facilities.c.hospcode)
                                        .where(run_facilities.c.run_id.in_([int(i) for i in part]))
                                        .order_by(run_facilities.c.hospcode)):
                    touched.setdefault(int(rid), []).append(h)
        for r in rows:
            r["summary"] = orjson.loads(r["summary"]) if r.get("summary") else None
            r["facilities"] = touched.get(int(r["id"]), [])
        return rows

    def last_run(self) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            r = c.execute(select(runs).order_by(runs.c.id.desc()).limit(1)).mappings().first()
        if not r:
            return None
        d = dict(r)
        d["summary"] = orjson.loads(d["summary"]) if d.get("summary") else None
        return d


def _parts(keys: list[str], size: int = 500) -> Iterator[list[str]]:
    """``keys`` in slices of at most ``size`` (bound parameters per statement stay far below SQLite's limit)."""
    for i in range(0, len(keys), size):
        yield keys[i:i + size]


def state_engine(url: str, *, dir_mode: int = 0o777, **options: Any) -> Engine:
    """An engine on the state store as every user of it needs one (the outbox, the web's accounts, the Digital
    ID tables): a SQLite file's folder made (``dir_mode``), WAL and a busy timeout on each SQLite connection, a
    PostgreSQL database created on first use, pre-ping on servers. ``options`` go to ``create_engine``."""
    u = make_url(url)
    backend = u.get_backend_name()
    if backend == "sqlite" and u.database and u.database != ":memory:":
        Path(u.database).parent.mkdir(parents=True, exist_ok=True, mode=dir_mode)
    engine = create_engine(url, future=True, pool_pre_ping=backend != "sqlite", **options)
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    elif backend == "postgresql":
        _ensure_pg_database(u)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL + NORMAL: a committed transaction survives a killed process (kill -9); only an OS crash or power
    # loss can drop the last few commits, which then are simply sent again (keyed uploads, see module doc).
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _ensure_pg_database(u: Any) -> None:
    """Create the PostgreSQL database on first use (the service account may own its own database)."""
    import psycopg

    name = u.database
    if not name:
        return
    try:
        with psycopg.connect(host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username or "postgres",
                             password=u.password or None, dbname="postgres", autocommit=True,
                             connect_timeout=10) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{name}"')
    except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
        pass  # (UniqueViolation: another agent created it in the same instant)
    except psycopg.OperationalError:
        pass  # no right to list/create: assume the database exists; create_all reports the real error
