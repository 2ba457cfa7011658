"""The store of imported codes: TMT releases, facility drug masters and local lab codes, in one SQLite file.

Why a store and not CSV tables: a TMT release is ~110,000 concepts and ~170,000 relationships, and may not be
shipped (its licence), so each province imports its own copy (``phrsync codes import-tmt``), beside the drug
masters its facilities export (``phrsync codes import-drugs``) and the mappings reviewers accept
(``phrsync codes accept``). The build reads it once through :func:`load_drug_codes` / :func:`load_lab_codes`.

Every row says where it came from (``source``): a release file and date, a drug-master file and the day it was
imported, or "reviewed by X at T". The file holds no personal data but is kept private (mode 600) like the
rest of phrsync's state.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sqlite3
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phrsync.errors import StoreError
from phrsync.terminology.drugcodes import DrugCodes, DrugConcept
from phrsync.thai import BANGKOK

SCHEMA_VERSION = 1
LEVELS = ("SUBS", "VTM", "GP", "GPU", "TP", "TPU", "GPP", "TPP")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tmt_release (
    release TEXT PRIMARY KEY,          -- TMTRFyyyymmdd
    file TEXT NOT NULL,                -- the zip's name as imported
    release_date TEXT NOT NULL,        -- yyyy-mm-dd, from the zip's name
    imported_at TEXT NOT NULL,         -- ISO time, UTC+7
    concepts INTEGER NOT NULL,
    relationships INTEGER NOT NULL,
    counts TEXT NOT NULL               -- JSON: rows per level and per relationship kind, files skipped
);
CREATE TABLE IF NOT EXISTS tmt_concept (
    tmtid TEXT PRIMARY KEY,
    level TEXT NOT NULL,
    fsn TEXT NOT NULL,
    changedate TEXT,
    manufacturer TEXT,
    release TEXT NOT NULL,
    fsn_norm TEXT NOT NULL             -- normalised FSN (normalise_name) for name-based suggestions
);
CREATE INDEX IF NOT EXISTS tmt_concept_level ON tmt_concept(level);
CREATE TABLE IF NOT EXISTS tmt_rel (
    kind TEXT NOT NULL,                -- the release's file name without its date: GPtoGPU, SUBStoVTM, ...
    parent TEXT NOT NULL,
    child TEXT NOT NULL,
    release TEXT NOT NULL,
    PRIMARY KEY (kind, parent, child)
);
CREATE INDEX IF NOT EXISTS tmt_rel_child ON tmt_rel(child);
CREATE INDEX IF NOT EXISTS tmt_rel_parent ON tmt_rel(parent);
CREATE TABLE IF NOT EXISTS drug_master (
    hcode TEXT NOT NULL,               -- '' = province-wide
    code TEXT NOT NULL,                -- the facility's own code (HospDrugCode, cdrug.drugcode, drugitems.icode)
    did24 TEXT NOT NULL DEFAULT '',    -- the 24-digit code, '' when the master has none
    tmtid TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL,
    reviewed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hcode, code)
);
CREATE INDEX IF NOT EXISTS drug_master_did ON drug_master(did24);
CREATE TABLE IF NOT EXISTS lab_map (
    hcode TEXT NOT NULL,               -- '' = province-wide
    code TEXT NOT NULL,                -- the facility's lab code as LABFU.LABTEST carries it
    labcode TEXT NOT NULL,             -- the standard code it means (the 7-digit ICD-10-TM lab code of lab_loinc);
                                       -- '' = the HIS's name only (import-labs), kept for suggestions
    loinc TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL,
    reviewed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hcode, code)
);
"""


def now_local() -> dt.datetime:
    """Now in Thailand (UTC+7): the time a reviewer reads beside their name."""
    return dt.datetime.now(BANGKOK).replace(microsecond=0)


def normalise_name(name: str) -> str:
    """A drug name reduced for matching: NFKC, lower case, punctuation to spaces, ``mg.``/``mg`` alike, numbers
    split from units (``500mg`` → ``500 mg``), one space. Thai letters are kept."""
    s = unicodedata.normalize("NFKC", name or "").lower()
    s = re.sub(r"(\d)([a-z\u0e00-\u0e7f%])", r"\1 \2", s)
    s = re.sub(r"([a-z\u0e00-\u0e7f%])(\d)", r"\1 \2", s)
    s = re.sub(r"(\d)[.,](?=\d)", r"\1_", s)  # keep 0.5 and 1,000 as one token
    s = re.sub(r"[^\w%]+", " ", s).replace("_", ".")
    return " ".join(s.split())


def store_path(settings: Any, base: Path) -> Path:
    """Where the code store is: ``[terminology] store`` (relative to ``base``, the config file's folder), else
    ``<data_dir>/codes.sqlite`` (data_dir itself relative to ``base``)."""
    raw = settings.terminology.store
    if raw:
        p = Path(str(raw)).expanduser()
        return p if p.is_absolute() else base / p
    data = Path(str(settings.data_dir)).expanduser()
    return (data if data.is_absolute() else base / data) / "codes.sqlite"


def config_store_path(cfg: Any) -> Path:
    """The store of a loaded :class:`phrsync.config.Config`: ``[terminology] store`` (relative to the config
    file's folder), else ``<data_dir>/codes.sqlite`` with the data_dir the config resolved (``$PHRSYNC_DATA``
    included). Commands use this; :func:`store_path` is for callers holding only the settings."""
    raw = cfg.section("terminology").get("store")
    if raw:
        p = Path(str(raw)).expanduser()
        return p if p.is_absolute() or cfg.source is None else Path(cfg.source).parent / p
    return Path(cfg.data_dir) / "codes.sqlite"


def _private(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        p = Path(str(path) + suffix)
        if p.exists():
            os.chmod(p, 0o600)


@dataclass(frozen=True)
class Concept:
    tmtid: str
    level: str
    fsn: str
    changedate: str | None = None
    manufacturer: str | None = None
    release: str = ""


class CodeStore:
    """One SQLite file of imported codes. Open with ``CodeStore(path)`` (created, mode 600, on first use) or
    ``CodeStore.open_existing(path)`` for readers that must not create it."""

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path)
        self._memo: dict[tuple[str, str], Any] | None = None
        if not create and not self.path.exists():
            raise StoreError(f"ไม่พบฐานรหัส {self.path}", f"no code store at {self.path}",
                             hint="phrsync codes import-tmt / import-drugs")
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if not self.path.exists():
                    fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
                    os.close(fd)
            self.db = sqlite3.connect(self.path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        except sqlite3.DatabaseError as e:
            raise StoreError(f"เปิดฐานรหัส {self.path} ไม่ได้", f"cannot open the code store {self.path}",
                             hint=str(e)) from e
        _private(self.path)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> CodeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- TMT ---------------------------------------------------------------------------------------------
    def releases(self) -> list[dict[str, Any]]:
        import json

        cur = self.db.execute("SELECT release, file, release_date, imported_at, concepts, relationships, counts "
                              "FROM tmt_release ORDER BY release_date DESC")
        return [{"release": r[0], "file": r[1], "release_date": r[2], "imported_at": r[3], "concepts": r[4],
                 "relationships": r[5], "counts": json.loads(r[6])} for r in cur]

    def current_release(self) -> str | None:
        """The release the concepts are from (the newest imported; an import replaces all concepts)."""
        row = self.db.execute("SELECT release FROM tmt_release ORDER BY release_date DESC LIMIT 1").fetchone()
        return row[0] if row else None

    def concept(self, tmtid: str) -> Concept | None:
        r = self.db.execute("SELECT tmtid, level, fsn, changedate, manufacturer, release FROM tmt_concept "
                            "WHERE tmtid = ?", (tmtid,)).fetchone()
        return Concept(*r) if r else None

    def parents(self, tmtid: str) -> list[tuple[str, str]]:
        """(parent ID, relationship kind) of a concept: the first column of every relationship file it is the
        second column of."""
        memo = self._memo.get(("p", tmtid)) if self._memo is not None else None
        if memo is not None:
            return memo  # type: ignore[no-any-return]
        out = [(p, k) for p, k in self.db.execute("SELECT parent, kind FROM tmt_rel WHERE child = ? "
                                                  "ORDER BY kind, parent", (tmtid,))]
        if self._memo is not None:
            self._memo[("p", tmtid)] = out
        return out

    def children(self, tmtid: str) -> list[tuple[str, str]]:
        return [(c, k) for c, k in self.db.execute("SELECT child, kind FROM tmt_rel WHERE parent = ? "
                                                   "ORDER BY kind, child", (tmtid,))]

    def _level(self, tmtid: str) -> str | None:
        if self._memo is not None and ("l", tmtid) in self._memo:
            return self._memo[("l", tmtid)]  # type: ignore[no-any-return]
        r = self.db.execute("SELECT level FROM tmt_concept WHERE tmtid = ?", (tmtid,)).fetchone()
        if self._memo is not None:
            self._memo[("l", tmtid)] = r[0] if r else None
        return r[0] if r else None

    def remember(self, on: bool = True) -> None:
        """Memoise levels and parents while many codes are resolved at once (load_drug_codes); only for a
        reader: an import after this would not be seen."""
        self._memo = {} if on else None

    def gp_of(self, tmtid: str) -> str | None:
        """The GP a concept belongs to: itself for a GP; up the parents for GPU/TPU/TP/GPP/TPP (TPU → GPU → GP,
        GPU → GP, TP → GP); a TP with no GP parent is walked down to its TPUs and up again (TP → TPU → GPU → GP).
        None when the walk never meets a GP (or the ID is not in the imported TMT)."""
        level = self._level(tmtid)
        if level is None:
            return None
        if level == "GP":
            return tmtid
        if level in ("SUBS", "VTM"):
            return None
        seen: set[str] = {tmtid}
        frontier = [tmtid]
        for _ in range(8):  # the hierarchy is at most 4 steps deep; 8 bounds a malformed release
            nxt: list[str] = []
            for node in frontier:
                for p, _k in self.parents(node):
                    if p in seen:
                        continue
                    seen.add(p)
                    lv = self._level(p)
                    if lv == "GP":
                        return p
                    if lv not in ("SUBS", "VTM"):
                        nxt.append(p)
            if not nxt:
                break
            frontier = nxt
        if level in ("TP", "TPP"):
            for c, _k in self.children(tmtid):
                if self._level(c) in ("TPU", "TPP") and c not in seen:
                    seen.add(c)
                    gp = self.gp_of(c) if self._level(c) == "TPU" else None
                    if gp:
                        return gp
        return None

    def substances_of_gp(self, gp: str) -> list[str]:
        """The SUBS of a GP: GP ← VTM (VTMtoGP) ← SUBS (SUBStoVTM); a release that links SUBS to GP directly is
        read too. Sorted, without repeats."""
        out: set[str] = set()
        for p, _k in self.parents(gp):
            lv = self._level(p)
            if lv == "SUBS":
                out.add(p)
            elif lv == "VTM":
                out.update(q for q, _ in self.parents(p) if self._level(q) == "SUBS")
        return sorted(out)

    def resolve(self, tmtid: str) -> tuple[str | None, tuple[str, str] | None, tuple[tuple[str, str], ...]]:
        """(level, (GP, FSN) or None, ((SUBS, FSN), ...)) of a TMT ID as the drug master gave it. A SUBS ID
        resolves to itself as the substance (an allergy list may carry one)."""
        c = self.concept(tmtid)
        if c is None:
            return None, None, ()
        if c.level == "SUBS":
            return c.level, None, ((c.tmtid, c.fsn),)
        gp_id = self.gp_of(tmtid)
        if gp_id is None:
            return c.level, None, ()
        gp = self.concept(gp_id)
        subs = tuple((s, self.concept(s).fsn) for s in self.substances_of_gp(gp_id))  # type: ignore[union-attr]
        return c.level, (gp_id, gp.fsn if gp else ""), subs

    def concepts_like(self, levels: Iterable[str]) -> Iterator[tuple[str, str, str, str]]:
        """(tmtid, level, fsn, fsn_norm) of every concept of these levels, for name matching."""
        lv = list(levels)
        q = f"SELECT tmtid, level, fsn, fsn_norm FROM tmt_concept WHERE level IN ({','.join('?' * len(lv))})"
        yield from self.db.execute(q, lv)

    def counts(self) -> dict[str, Any]:
        """How much the store holds, for ``phrsync codes store`` and the tests."""
        one = self.db.execute
        return {
            "path": str(self.path),
            "release": self.current_release(),
            "concepts": dict(one("SELECT level, count(*) FROM tmt_concept GROUP BY level").fetchall()),
            "relationships": dict(one("SELECT kind, count(*) FROM tmt_rel GROUP BY kind").fetchall()),
            "drug_master": dict(one("SELECT hcode, count(*) FROM drug_master GROUP BY hcode").fetchall()),
            "lab_map": dict(one("SELECT hcode, count(*) FROM lab_map GROUP BY hcode").fetchall()),
        }

    # ---- drug masters and lab maps -------------------------------------------------------------------------
    def replace_drug_master(self, hcode: str, rows: Iterable[tuple[str, str, str, str, str]],
                            source: str) -> tuple[int, int]:
        """Replace the imported rows of one facility ('' = province-wide) with ``rows`` of (code, did24, tmtid,
        name, row source or ''). Reviewed rows stay unless the new file has that code (the facility's own
        master wins). One transaction: a failed import leaves the previous rows. Returns (rows, kept reviewed)."""
        db = self.db
        n = 0
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM drug_master WHERE hcode = ? AND reviewed = 0", (hcode,))
            for code, did24, tmtid, name, rsource in rows:
                db.execute("INSERT OR REPLACE INTO drug_master (hcode, code, did24, tmtid, name, source, reviewed) "
                           "VALUES (?, ?, ?, ?, ?, ?, 0)", (hcode, code, did24, tmtid, name, rsource or source))
                n += 1
            kept = db.execute("SELECT count(*) FROM drug_master WHERE hcode = ? AND reviewed = 1",
                              (hcode,)).fetchone()[0]
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return n, int(kept)

    def add_drug_mapping(self, hcode: str, code: str, tmtid: str, name: str, source: str,
                         did24: str = "") -> None:
        """A reviewed mapping (``phrsync codes accept``): one row, replacing whatever that code had."""
        self.db.execute("INSERT OR REPLACE INTO drug_master (hcode, code, did24, tmtid, name, source, reviewed) "
                        "VALUES (?, ?, ?, ?, ?, ?, 1)", (hcode, code, did24, tmtid, name, source))

    def drug_rows(self, hcode: str | None = None) -> list[dict[str, Any]]:
        q = "SELECT hcode, code, did24, tmtid, name, source, reviewed FROM drug_master"
        args: tuple[str, ...] = ()
        if hcode is not None:
            q += " WHERE hcode = ?"
            args = (hcode,)
        cols = ("hcode", "code", "did24", "tmtid", "name", "source", "reviewed")
        return [dict(zip(cols, r, strict=True)) for r in self.db.execute(q + " ORDER BY hcode, code", args)]

    def add_lab_mapping(self, hcode: str, code: str, labcode: str, loinc: str, name: str, source: str,
                        reviewed: bool = True) -> None:
        self.db.execute("INSERT OR REPLACE INTO lab_map (hcode, code, labcode, loinc, name, source, reviewed) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)", (hcode, code, labcode, loinc, name, source, int(reviewed)))

    def replace_lab_map(self, hcode: str, rows: Iterable[tuple[str, str, str, str, str]],
                        source: str) -> tuple[int, int]:
        """Replace the imported lab rows of one facility ('' = province-wide) with ``rows`` of (code, labcode,
        loinc, name, row source or ''); labcode '' = the name only (for suggestions, maps nothing). Reviewed rows
        stay unless the new file maps that code; a name-only row never replaces one. One transaction.
        Returns (rows written, reviewed rows kept)."""
        db = self.db
        n = 0
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM lab_map WHERE hcode = ? AND reviewed = 0", (hcode,))
            for code, labcode, loinc, name, rsource in rows:
                verb = "INSERT OR REPLACE" if labcode else "INSERT OR IGNORE"
                cur = db.execute(f"{verb} INTO lab_map (hcode, code, labcode, loinc, name, source, reviewed) "
                                 "VALUES (?, ?, ?, ?, ?, ?, 0)", (hcode, code, labcode, loinc, name, rsource or source))
                n += cur.rowcount
            kept = db.execute("SELECT count(*) FROM lab_map WHERE hcode = ? AND reviewed = 1",
                              (hcode,)).fetchone()[0]
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return n, int(kept)

    def lab_rows(self) -> list[dict[str, Any]]:
        cols = ("hcode", "code", "labcode", "loinc", "name", "source", "reviewed")
        return [dict(zip(cols, r, strict=True)) for r in
                self.db.execute(f"SELECT {', '.join(cols)} FROM lab_map ORDER BY hcode, code")]


def load_drug_codes(path: Path) -> DrugCodes:
    """Every drug-master row resolved through the imported TMT, as the build looks codes up (empty when the
    store does not exist). A row is keyed by its own code and, when it has one, its 24-digit code (the 43
    files' DIDSTD may carry either); a facility's rows go to ``by_facility``, province-wide ones to
    ``by_code``. A TMT ID the release does not have keeps ``gp=None`` and no substances."""
    path = Path(path)
    if not path.exists():
        return DrugCodes()
    store = CodeStore(path, create=False)
    store.remember()
    try:
        cache: dict[str, tuple[str | None, tuple[str, str] | None, tuple[tuple[str, str], ...]]] = {}
        by_facility: dict[tuple[str, str], DrugConcept] = {}
        by_code: dict[str, DrugConcept] = {}
        rows = store.db.execute("SELECT hcode, code, did24, tmtid, name, source, reviewed FROM drug_master "
                                "ORDER BY reviewed, hcode, code").fetchall()
        for hcode, code, did24, tmtid, name, source, _reviewed in rows:
            if not tmtid:
                continue
            if tmtid not in cache:
                cache[tmtid] = store.resolve(tmtid)
            level, gp, subs = cache[tmtid]
            concept = DrugConcept(tmtid=tmtid, level=level, gp=gp, substances=subs, name=name or None,
                                  source=source)
            keys = [code] + ([did24] if did24 and did24 != code else [])
            for k in keys:
                if hcode:
                    # the row's own code wins over another row's 24-digit code
                    if k == code or (hcode, k) not in by_facility:
                        by_facility[(hcode, k)] = concept
                elif k == code or k not in by_code:
                    by_code[k] = concept
        return DrugCodes(by_facility=by_facility, by_code=by_code)
    finally:
        store.close()


def load_lab_codes(path: Path) -> dict[tuple[str, str], str]:
    """(hcode, local lab code) → the standard lab code (hcode '' = province-wide); empty without a store. A
    name-only row (labcode '', from ``import-labs``) maps nothing and is left out."""
    path = Path(path)
    if not path.exists():
        return {}
    store = CodeStore(path, create=False)
    try:
        return {(h, c): lab for h, c, lab in store.db.execute("SELECT hcode, code, labcode FROM lab_map "
                                                              "WHERE labcode != ''")}
    finally:
        store.close()
