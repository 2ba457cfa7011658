"""The sandbox's answer to ``idp/api/check_ekyc``: for any valid CID, deterministic, from a share per district.

The check request carries only the CID. Where the person lives, the sandbox knows as PHR does, in this order:

1. **Its IdP register** (table ``sbx_idp_register``), seeded by an administrator with the population, as PHR
   knows each citizen's registered address from DOPA (``phrsync sandbox seed-register FILE``, which reads the
   files ``did import-population``/``import-personnel`` read, or :func:`seed_register`; the demo seeds it with the
   people it checks). Seeding *deals* the answers: in each district exactly ⌊share × N + ½⌋ of its N people have
   a Digital ID — those with the smallest :func:`unit` — and among health personnel the ``personnel_share``
   (Sa Kaeo: 2,935 of 3,346 = 87.72 %). So a district's figure is its share to within 0.5/N, as a province whose
   true shares are these would show them. Seeding a kind again replaces that kind's register and deals again
   (the same people get the same answers). A CID registered as personnel is answered as personnel.
2. Otherwise the district of the facility that last sent the person's demographics (an upload),
3. otherwise digits 2–5 of the CID (the DOPA province and district where the number was issued). The person
   then has a Digital ID when :func:`unit` falls under the district's share: the same CID always gets the same
   answer, but a district's figure only approaches its share as a random sample would (±1 point at ~1,000
   people), and people who moved are counted where their number was issued.

``result`` is then 1–3 (how many times the person confirmed with the PIN), or 0.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from phrsync.errors import UsageError

if TYPE_CHECKING:
    from phrsync.sandbox.settings import SandboxConfig
    from phrsync.sandbox.store import Store

# Sa Kaeo's report (issue 13): วัฒนานคร 13.04 %, โคกสูง 23.33 %, เขาฉกรรจ์ 1.22 % of citizens; the province 5.01 %
# (26,932 / 537,792) is the share of every district the issue does not give; personnel 2,935 / 3,346 = 87.72 %.
SAKAEO_SHARES: dict[str, float] = {"2705": 0.1304, "2708": 0.2333, "2707": 0.0122}
SAKAEO_DEFAULT = 0.0501
SAKAEO_PERSONNEL = 0.8772
CITIZEN, PERSONNEL = "citizen", "personnel"
_FIB = 2654435769  # ⌊2³² / φ⌋
_M = 1 << 32
_CID = re.compile(r"^\d{13}$")
_DISTRICT = re.compile(r"^\d{4}$")


def district_of_facility(hospcode: str | None) -> str | None:
    """The DOPA district of a facility by the shipped code table (None when unknown)."""
    if not hospcode:
        return None
    from phrsync.terminology.tables import lookup

    code = (lookup("sakaeo_facilities", hospcode) or {}).get("ampur_code") or ""
    return code if len(code) == 4 else None


def unit(cid: str, seed: int = 0) -> float:
    """A CID's position in [0, 1): the Fibonacci hash of its serial digits 6–12, shifted by the seed."""
    n = int(cid[5:12])
    return ((n * _FIB + seed * 40503) % _M) / _M


def _count(u: float) -> int:
    return 1 + int(u * 1_000_003) % 3


def answer(cid: str, shares: dict[str, float], default: float, seed: int = 0, district: str | None = None) -> int:
    """check_ekyc's ``result`` for a CID not in the register (living in ``district`` when known, else where the
    number was issued): 0 (no Digital ID) or 1–3."""
    share = shares.get(district or cid[1:5], default)
    u = unit(cid, seed)
    return 0 if u >= share else _count(u)


def deal(people: Iterable[tuple[str, str]], share_of: dict[str, float], seed: int = 0) -> dict[str, int]:
    """CID → ``result`` for people given as (CID, group): in each group of N people, the ⌊share × N + ½⌋ with the
    smallest :func:`unit` (ties by CID) get 1–3, the others 0."""
    groups: dict[str, list[tuple[float, str]]] = {}
    for cid, g in people:
        groups.setdefault(g, []).append((unit(cid, seed), cid))
    out: dict[str, int] = {}
    for g, members in groups.items():
        members.sort()
        k = int(share_of[g] * len(members) + 0.5)
        for i, (u, cid) in enumerate(members):
            out[cid] = _count(u) if i < k else 0
    return out


@dataclass
class Seeded:
    """What a seeding put in the register for one kind: people and those with a Digital ID, per district."""

    kind: str
    people: int = 0
    with_did: int = 0
    skipped: int = 0  # no valid CID or district: not registered (answered by the fallback)
    duplicates: int = 0
    districts: dict[str, list[int]] = field(default_factory=dict)  # district -> [people, with a Digital ID]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        what = "ประชาชน / citizens" if self.kind == CITIZEN else "บุคลากร / personnel"
        pct = f"{100 * self.with_did / self.people:.2f}" if self.people else "-"
        lines = [f"ทะเบียน IdP ของเซิร์ฟเวอร์ทดสอบ {what}: {self.people:,} คน, มี Digital ID {self.with_did:,} ({pct} %) "
                 f"/ sandbox IdP register, {self.kind}: {self.people:,} people, {self.with_did:,} with a Digital ID"]
        if self.skipped or self.duplicates:
            lines.append(f"ข้าม (ไม่มีเลขบัตรหรืออำเภอที่ใช้ได้) / skipped (no usable CID or district): {self.skipped:,}; "
                         f"ซ้ำ / duplicates: {self.duplicates:,}")
        return "\n".join(lines)


def seed_register(st: Store, cfg: SandboxConfig, kind: str, people: Iterable[tuple[str, str | None]]) -> Seeded:
    """Make ``people`` — (CID, DOPA district) — the register's ``kind`` (replacing it), their answers dealt from
    ``cfg``'s shares; one transaction. A CID listed twice counts once (the first district)."""
    if kind not in (CITIZEN, PERSONNEL):
        raise UsageError(f"ชนิดทะเบียนไม่ถูกต้อง {kind!r} (citizen หรือ personnel)",
                         f"unknown register kind {kind!r} (citizen or personnel)")
    res = Seeded(kind)
    where: dict[str, str] = {}
    for cid, district in people:
        if not (isinstance(cid, str) and _CID.match(cid) and isinstance(district, str) and _DISTRICT.match(district)):
            res.skipped += 1
        elif cid in where:
            res.duplicates += 1
        else:
            where[cid] = district
    if kind == PERSONNEL:
        shares = {d: cfg.did_personnel_share for d in set(where.values())}
    else:
        shares = {d: cfg.did_shares.get(d, cfg.did_default_share) for d in set(where.values())}
    dealt = deal(where.items(), shares, cfg.did_seed)
    now = cfg.clock()
    rows = [{"cid": c, "kind": kind, "district": d, "result": dealt[c], "seeded_at": now} for c, d in where.items()]
    for r in rows:
        a = res.districts.setdefault(r["district"], [0, 0])
        a[0] += 1
        a[1] += r["result"] >= 1
    res.people, res.with_did = len(rows), sum(a[1] for a in res.districts.values())
    res.districts = dict(sorted(res.districts.items()))

    def write(c: Connection) -> None:
        from phrsync.sandbox.store import idp_register

        c.execute(delete(idp_register).where(idp_register.c.kind == kind))
        for i in range(0, len(rows), 5000):
            c.execute(insert(idp_register), rows[i:i + 5000])

    st.write(write)
    return res


def _decide(cid: str, registered: int | None, hcode: str | None, cfg: SandboxConfig) -> int:
    if registered is not None:
        return int(registered)
    return answer(cid, cfg.did_shares, cfg.did_default_share, cfg.did_seed, district_of_facility(hcode))


def answer_for(conn: Connection, cid: str, cfg: SandboxConfig) -> int:
    """The answer to a check of ``cid``: the register's, else by the district the sandbox can tell (above)."""
    from phrsync.sandbox.store import idp_register, persons

    got = dict(conn.execute(select(idp_register.c.kind, idp_register.c.result)
                            .where(idp_register.c.cid == cid)).all())
    registered = got.get(PERSONNEL, got.get(CITIZEN)) if got else None
    hcode = None if got else conn.execute(select(persons.c.hospital_code).where(persons.c.cid == cid)).scalar()
    return _decide(cid, registered, hcode, cfg)


# the register's answer (personnel first) and the facility that sent the person, in one statement
_LOOKUP = ("SELECT (SELECT result FROM sbx_idp_register WHERE cid = ?1 ORDER BY kind = 'personnel' DESC LIMIT 1), "
           "(SELECT hospital_code FROM sbx_persons WHERE cid = ?1)")


class Checker:
    """The route's reads. On a SQLite file: one read-only ``sqlite3`` connection per thread, queried on the event
    loop itself (a primary-key lookup takes ~15 µs; going through the thread pool and SQLAlchemy's pool and
    statement layers cost ~180 µs and, at 32 requests at once, a new pooled connection and its PRAGMAs per
    overflow — py-spy on ``benchmarks/did_bench.py``). Autocommit: every lookup sees the last committed seeding
    and uploads. Any other database (PostgreSQL): SQLAlchemy in the thread pool, as every other read."""

    def __init__(self, st: Store, cfg: SandboxConfig) -> None:
        self.st, self.cfg = st, cfg
        f = st.sqlite_file
        self.path = f if f is not None and f.is_file() else None
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []

    def close(self) -> None:
        for conn in self._opened:
            conn.close()
        self._opened.clear()

    def _sqlite(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            assert self.path is not None
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                                   check_same_thread=False, timeout=30)
            self._local.conn = conn
            self._opened.append(conn)
        return conn

    async def answer(self, cid: str) -> int:
        if self.path is None:
            from starlette.concurrency import run_in_threadpool

            return int(await run_in_threadpool(self.st.read, lambda c: answer_for(c, cid, self.cfg)))
        registered, hcode = self._sqlite().execute(_LOOKUP, (cid,)).fetchone()
        return _decide(cid, registered, hcode, self.cfg)
