"""Review of the codes a build could not map: ranked by how many payloads wait on them, each with name-based
suggestions, and accepting one as a mapping row whose source says who reviewed it and when.

Why here and not in the build: the build only counts (``BuildSummary.unmapped``); a person decides. Accepting
writes a reviewed row into the code store (drugs and allergies: ``drug_master``; labs: ``lab_map``), which the
next build reads.

Suggestion score (0–1): the Dice coefficient of the two names' word sets after :func:`normalise_name`
(``2 × shared words / (words in one + words in the other)``), halved when both names carry numbers (strengths)
and share none of them. 1.0 = the same words; about 0.6 and up is usually the same drug in another wording;
below 0.3 is not shown. A score is a hint for the reviewer, never a mapping by itself.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from phrsync.errors import UsageError
from phrsync.terminology.codestore import CodeStore, normalise_name, now_local

if TYPE_CHECKING:
    from phrsync.phr.buildfile import BuildSummary

KINDS = ("drug", "allergy", "lab")
DRUG_LEVELS = ("GP", "GPU", "TP", "TPU")
ALLERGY_LEVELS = ("SUBS", "GP", "TPU")
MIN_SCORE = 0.3
_NUM = re.compile(r"^\d+(\.\d+)?$")


@dataclass(frozen=True)
class Suggestion:
    code: str  # a TMT ID, or the standard lab code
    level: str  # TMT level, or "lab"
    name: str
    score: float
    loinc: str = ""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"code": self.code, "level": self.level, "name": self.name, "score": self.score}
        if self.loinc:
            d["loinc"] = self.loinc
        return d


@dataclass
class UnmappedRow:
    kind: str
    hcode: str
    code: str
    name: str | None
    payloads: int
    waiting: int
    suggestions: list[Suggestion] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "hcode": self.hcode, "code": self.code, "name": self.name,
                "payloads": self.payloads, "waiting": self.waiting,
                "suggestions": [s.to_dict() for s in self.suggestions]}


def _tokens(norm: str) -> set[str]:
    return set(norm.split())


def score(a: str, b: str) -> float:
    """The suggestion score of two names (see the module), rounded to 2 places."""
    ta, tb = _tokens(normalise_name(a)), _tokens(normalise_name(b))
    return _score(ta, tb)


def _score(ta: set[str], tb: set[str]) -> float:
    if not ta or not tb:
        return 0.0
    s = 2 * len(ta & tb) / (len(ta) + len(tb))
    na, nb = {t for t in ta if _NUM.match(t)}, {t for t in tb if _NUM.match(t)}
    if na and nb and not na & nb:
        s /= 2
    return round(s, 2)


class _NameIndex:
    """Names by word, for suggestions without comparing against every concept: candidates share at least one
    word that is not a number and not among the most common (``mg``, ``oral``, ``tablet``)."""

    def __init__(self, items: list[tuple[str, str, str, str]]) -> None:  # (code, level, name, norm)
        self.items = items
        self.tokens = [_tokens(n) for *_, n in items]
        self.post: dict[str, list[int]] = defaultdict(list)
        for i, ts in enumerate(self.tokens):
            for t in ts:
                self.post[t].append(i)
        self.common = max(50, len(items) // 20)

    def best(self, name: str, n: int = 3, loinc: dict[str, str] | None = None) -> list[Suggestion]:
        q = _tokens(normalise_name(name))
        cand: set[int] = set()
        for t in q:
            p = self.post.get(t, [])
            if not _NUM.match(t) and len(p) <= self.common:
                cand.update(p)
        scored = sorted(((_score(q, self.tokens[i]), i) for i in cand), key=lambda x: (-x[0], self.items[x[1]][0]))
        out = []
        for s, i in scored:
            if s < MIN_SCORE or len(out) >= n:
                break
            code, level, nm, _ = self.items[i]
            out.append(Suggestion(code, level, nm, s, (loinc or {}).get(code, "")))
        return out


def _lab_index() -> tuple[_NameIndex, dict[str, str]]:
    from phrsync.terminology.tables import get_table

    items, loinc = [], {}
    for r in get_table("lab_loinc").rows:
        code = r.get("labtest", "")
        for nm in (r.get("name_en", ""), r.get("name_th", "")):
            if nm:
                items.append((code, "lab", nm, normalise_name(nm)))
        loinc[code] = r.get("loinc", "")
    return _NameIndex(items), loinc


def unmapped(summary: BuildSummary, store: CodeStore, kind: str | None = None, hcode: str | None = None,
             limit: int = 100) -> list[UnmappedRow]:
    """The build's unmapped codes, most waiting first (then most payloads), without those mapped since (a row
    accepted or imported after the build), each with up to three suggestions. ``kind``/``hcode`` filter."""
    if kind is not None and kind not in KINDS:
        raise UsageError(f"ไม่รู้จักชนิด {kind}", f"unknown kind {kind}", hint=", ".join(KINDS))
    rows = []
    for r in summary.unmapped or []:
        k, h, c = str(r.get("kind", "")), str(r.get("hospcode") or r.get("hcode") or ""), str(r.get("code", ""))
        if (kind and k != kind) or (hcode and h != hcode) or not c:
            continue
        rows.append(UnmappedRow(k, h, c, r.get("name") or None, int(r.get("payloads") or 0),
                                int(r.get("waiting") or 0)))
    tmt_of: dict[tuple[str, str], str] = {}
    for h, c, d, t in store.db.execute("SELECT hcode, code, did24, tmtid FROM drug_master ORDER BY reviewed"):
        if t:
            if d:
                tmt_of.setdefault((h, d), t)
            tmt_of[(h, c)] = t
    mapped_labs = {(h, c) for h, c in store.db.execute("SELECT hcode, code FROM lab_map WHERE labcode != ''")}

    def done(r: UnmappedRow) -> bool:
        """Mapped since the build in a way the next build can use: a GP for a drug, a substance for an allergy
        (a row whose TMT ID the imported release lacks is still unmapped)."""
        if r.kind == "lab":
            return bool({(r.hcode, r.code), ("", r.code)} & mapped_labs)
        t = tmt_of.get((r.hcode, r.code)) or tmt_of.get(("", r.code))
        if not t:
            return False
        _level, gp, subs = store.resolve(t)
        return bool(subs) if r.kind == "allergy" else gp is not None

    rows = [r for r in rows if not done(r)]
    rows.sort(key=lambda r: (-r.waiting, -r.payloads, r.kind, r.hcode, r.code))
    rows = rows[:limit] if limit else rows
    indexes: dict[str, _NameIndex] = {}
    lab_loinc: dict[str, str] = {}
    names = {(h, c): n for h, c, n in store.db.execute("SELECT hcode, code, name FROM drug_master") if n}
    # LABFU has no name column: the HIS's lab names come from import-labs (name-only rows included)
    lab_names = {(h, c): n for h, c, n in store.db.execute("SELECT hcode, code, name FROM lab_map") if n}
    for r in rows:
        known = lab_names if r.kind == "lab" else names
        name = r.name or known.get((r.hcode, r.code)) or known.get(("", r.code))
        if not name:
            continue
        if r.kind == "lab":
            if "lab" not in indexes:
                indexes["lab"], lab_loinc = _lab_index()
            r.suggestions = indexes["lab"].best(name, loinc=lab_loinc)
        else:
            levels = ALLERGY_LEVELS if r.kind == "allergy" else DRUG_LEVELS
            key = ",".join(levels)
            if key not in indexes:
                indexes[key] = _NameIndex(
                    [(t, lv, fsn, norm) for t, lv, fsn, norm in store.concepts_like(levels)])
            r.suggestions = indexes[key].best(name)
    return rows


def reviewed_source(reviewer: str) -> str:
    """``reviewed by NAME at 2026-12-08T00:10:00+07:00``: who accepted a mapping and when (UTC+7)."""
    return f"reviewed by {reviewer} at {now_local().isoformat()}"


def accept(store: CodeStore, kind: str, hcode: str, code: str, tmtid: str, reviewer: str) -> dict[str, Any]:
    """Write one reviewed mapping: for ``drug``/``allergy`` the facility's code → a TMT ID of the imported
    release (refused when the release does not have it); for ``lab`` the facility's lab code → a code of the
    shipped ``lab_loinc`` table. ``hcode`` '' or ``*`` = province-wide. Returns the row written."""
    reviewer = (reviewer or "").strip()
    if not reviewer:
        raise UsageError("ต้องระบุผู้ตรวจทาน (--reviewer)", "a reviewer is required (--reviewer)")
    if kind not in KINDS:
        raise UsageError(f"ไม่รู้จักชนิด {kind}", f"unknown kind {kind}", hint=", ".join(KINDS))
    hcode = "" if hcode in ("", "*") else hcode
    if hcode and not re.match(r"^[0-9A-Za-z]{5}$", hcode):
        raise UsageError(f"รหัสหน่วยบริการ {hcode!r} ไม่ถูกต้อง (5 หลัก หรือ * = ทั้งจังหวัด)",
                         f"facility code {hcode!r} is not 5 characters (or * = province-wide)")
    code = code.strip()
    if not code:
        raise UsageError("ต้องระบุรหัสของหน่วยบริการ", "the facility's code is required")
    source = reviewed_source(reviewer)
    if kind == "lab":
        from phrsync.terminology.tables import get_table

        row = get_table("lab_loinc").get(tmtid)
        if row is None:
            raise UsageError(f"ไม่พบรหัสแล็บ {tmtid} ในตาราง lab_loinc", f"lab code {tmtid} is not in lab_loinc",
                             hint="phrsync codes show lab_loinc --limit 0")
        labcode = row["labtest"]
        store.add_lab_mapping(hcode, code, labcode, row.get("loinc", ""), row.get("name_en", ""), source)
        return {"kind": kind, "hcode": hcode, "code": code, "labcode": labcode, "loinc": row.get("loinc", ""),
                "name": row.get("name_en", ""), "source": source}
    concept = store.concept(tmtid)
    if concept is None:
        rel = store.current_release()
        raise UsageError(f"ไม่พบรหัส TMT {tmtid} ใน{'รุ่น ' + rel if rel else 'ฐานรหัส (ยังไม่ได้นำเข้า TMT)'}",
                         f"TMT ID {tmtid} is not in {rel or 'the store (no TMT release imported)'}",
                         hint="phrsync codes import-tmt TMTRFyyyymmdd.zip")
    level, gp, subs = store.resolve(tmtid)
    if kind == "allergy" and not subs:
        raise UsageError(f"รหัส TMT {tmtid} ({level}) ไม่นำไปถึงสาร (SUBS) ใช้แพ้ยาไม่ได้",
                         f"TMT ID {tmtid} ({level}) leads to no substance (SUBS); it cannot code an allergy")
    did24 = code if re.match(r"^\d{24}$", code) else ""
    store.add_drug_mapping(hcode, code, tmtid, concept.fsn, source, did24=did24)
    return {"kind": kind, "hcode": hcode, "code": code, "tmtid": tmtid, "level": level, "name": concept.fsn,
            "gp": list(gp) if gp else None, "substances": [list(s) for s in subs], "source": source}
