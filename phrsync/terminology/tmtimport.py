"""``phrsync codes import-tmt``: load a TMT release zip (``TMTRFyyyymmdd.zip`` from THIS) into the code store.

The layout read (as public importers of the release read it; see docs/codes.md for what is not confirmed):

- ``TMTRFyyyymmdd/TMTRFyyyymmdd_BONUS/Concept/<LEVEL>yyyymmdd.xls``: one file per level SUBS, VTM, GP, GPU, TP,
  TPU, GPP, TPP with columns ``TMTID(<LEVEL>)``, ``FSN``, ``CHANGEDATE`` (TP/TPU also ``MANUFACTURER``);
- ``.../Relationship/<A>to<B>yyyymmdd.xls``: two ID columns (``<A>ID``, ``<B>ID``), A the parent, e.g.
  ``GPtoGPU``, ``GPUtoTPU``, ``TPtoTPU``, ``VTMtoGP``, ``SUBStoVTM``;
- SNAPSHOT and DELTA files (active TPUs, changes): not needed, since the concept files are the full release;
  they are listed as skipped.

Files are matched by name wherever they sit in the zip, in any of .xls, .xlsx, .txt/.tsv/.csv. The release
date comes from the zip's name (or a folder in it); it is every concept's source. A release replaces all
concepts and relationships in one transaction; an older release than the one imported is refused unless asked.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from phrsync.errors import UsageError
from phrsync.terminology.codestore import LEVELS, CodeStore, normalise_name, now_local
from phrsync.terminology.sheets import TABLE_EXT, Issues, RowIssue, SheetNotes, header_index, iter_rows

ProgressFn = Callable[[str, int], None]  # (file inside the zip, rows read so far in the whole import)

_LEVEL_ALT = "|".join(sorted(LEVELS, key=len, reverse=True))
_CONCEPT_RE = re.compile(rf"^({_LEVEL_ALT})(\d{{8}})?\.(\w+)$", re.I)
_REL_RE = re.compile(rf"^({_LEVEL_ALT})to({_LEVEL_ALT})(\d{{8}})?\.(\w+)$", re.I)
_RELEASE_RE = re.compile(r"TMTRF(\d{8})", re.I)
_ID_RE = re.compile(r"^\d{1,18}$")
BATCH = 5000


@dataclass
class TmtImportResult:
    release: str
    release_date: str
    file: str
    concepts: dict[str, int] = field(default_factory=dict)
    relationships: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    skipped_files: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    issues: Issues = field(default_factory=Issues)
    replaced: str | None = None  # the release this one replaced
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"release": self.release, "release_date": self.release_date, "file": self.file,
                "concepts": self.concepts, "concepts_total": sum(self.concepts.values()),
                "relationships": self.relationships, "relationships_total": sum(self.relationships.values()),
                "files": self.files, "skipped_files": self.skipped_files, "warnings": self.warnings,
                "bad_rows": self.issues.count, "bad_row_examples": [i.to_dict() for i in self.issues.rows],
                "replaced": self.replaced, "seconds": round(self.seconds, 2)}


def release_of(zip_path: Path, names: list[str]) -> tuple[str, dt.date]:
    """``TMTRFyyyymmdd`` and its date, from the zip's name or else the first folder in it that has one."""
    for text in [zip_path.name, *names]:
        m = _RELEASE_RE.search(text)
        if m:
            try:
                return f"TMTRF{m.group(1)}", dt.datetime.strptime(m.group(1), "%Y%m%d").date()
            except ValueError:
                continue
    raise UsageError(f"{zip_path.name}: ไม่พบวันที่ของรุ่น TMT (ชื่อไฟล์ต้องเป็น TMTRFyyyymmdd.zip)",
                     f"{zip_path.name}: no TMT release date (the file must be named TMTRFyyyymmdd.zip)")


def classify(name: str) -> tuple[str, str, str] | None:
    """('concept', LEVEL, '') / ('rel', PARENT, CHILD) / ('skip', reason, '') for a member of the zip."""
    p = PurePosixPath(name)
    if name.endswith("/") or p.suffix.lower() not in TABLE_EXT:
        return None
    upper = name.upper()
    if "SNAPSHOT" in upper or "DELTA" in upper:
        return ("skip", "snapshot/delta", "")
    m = _REL_RE.match(p.name)
    if m:
        return ("rel", m.group(1).upper(), m.group(2).upper())
    m = _CONCEPT_RE.match(p.name)
    if m:
        return ("concept", m.group(1).upper(), "")
    return ("skip", "unknown", "")


def _level_of_header(h: str) -> str:
    s = re.sub(r"[^A-Z]", "", h.upper())
    if s.startswith("TMTID"):
        s = s[5:]
    if s.endswith("ID"):
        s = s[:-2]
    return s


def _concept_rows(rows: Iterator[tuple[int, list[str]]], fname: str, level: str, release: str,
                  issues: Issues) -> Iterator[tuple[str, str, str, str | None, str | None, str, str]]:
    try:
        _, header = next(rows)
    except StopIteration:
        return
    idx = header_index(header)
    id_col = next((i for h, i in idx.items() if h.startswith("TMTID")), None)
    if id_col is None:
        raise UsageError(f"{fname}: ไม่มีคอลัมน์ TMTID ในแถวหัวตาราง", f"{fname}: no TMTID column in the header row",
                         hint=f"header: {', '.join(header[:6])}")
    fsn_col = idx.get("FSN")
    if fsn_col is None:
        raise UsageError(f"{fname}: ไม่มีคอลัมน์ FSN", f"{fname}: no FSN column", hint=f"header: {', '.join(header[:6])}")
    chg_col, mfg_col = idx.get("CHANGEDATE"), idx.get("MANUFACTURER")
    for line, r in rows:
        if not any(r):
            continue
        tmtid = r[id_col] if id_col < len(r) else ""
        fsn = r[fsn_col] if fsn_col < len(r) else ""
        if not _ID_RE.match(tmtid):
            issues.add(RowIssue(fname, line, header[id_col], "รหัส TMT ต้องเป็นตัวเลข" if tmtid else "ไม่มีรหัส TMT",
                                f"a TMT ID must be digits, got {tmtid!r}" if tmtid else "no TMT ID"))
            continue
        if not fsn:
            issues.add(RowIssue(fname, line, "FSN", "ไม่มีชื่อ FSN", "no FSN"))
            continue
        chg = r[chg_col] if chg_col is not None and chg_col < len(r) else None
        mfg = r[mfg_col] if mfg_col is not None and mfg_col < len(r) else None
        yield tmtid, level, fsn, chg or None, mfg or None, release, normalise_name(fsn)


def _rel_rows(rows: Iterator[tuple[int, list[str]]], fname: str, kind: str, parent: str, child: str,
              release: str, issues: Issues) -> Iterator[tuple[str, str, str, str]]:
    try:
        _, header = next(rows)
    except StopIteration:
        return
    if len(header) < 2:
        raise UsageError(f"{fname}: ต้องมีคอลัมน์รหัส 2 คอลัมน์", f"{fname}: needs two ID columns",
                         hint=f"header: {', '.join(header)}")
    a, b = 0, 1
    la, lb = _level_of_header(header[0]), _level_of_header(header[1])
    if la == child and lb == parent:  # a file whose columns are written child first
        a, b = 1, 0
    for line, r in rows:
        if not any(r):
            continue
        pa = r[a] if a < len(r) else ""
        ch = r[b] if b < len(r) else ""
        bad = next(((col, v) for col, v in ((a, pa), (b, ch)) if not _ID_RE.match(v)), None)
        if bad:
            col, v = bad
            issues.add(RowIssue(fname, line, header[col], "รหัส TMT ต้องเป็นตัวเลข" if v else "ไม่มีรหัส TMT",
                                f"a TMT ID must be digits, got {v!r}" if v else "no TMT ID"))
            continue
        yield kind, pa, ch, release


def _batched(it: Iterator[Any], n: int = BATCH) -> Iterator[list[Any]]:
    buf: list[Any] = []
    for x in it:
        buf.append(x)
        if len(buf) >= n:
            yield buf
            buf = []
    if buf:
        yield buf


def import_tmt(store: CodeStore, zip_path: str | Path, *, allow_older: bool = False,
               progress: ProgressFn | None = None) -> TmtImportResult:
    """Load one release into ``store``, replacing the concepts and relationships it had (see the module)."""
    import time

    t0 = time.perf_counter()
    zp = Path(zip_path)
    try:
        zf = zipfile.ZipFile(zp)
    except (OSError, zipfile.BadZipFile) as e:
        raise UsageError(f"เปิดไฟล์ zip {zp} ไม่ได้", f"cannot open the zip {zp}", hint=str(e)) from e
    with zf:
        names = [i.filename for i in zf.infolist()]
        release, rdate = release_of(zp, names)
        res = TmtImportResult(release=release, release_date=rdate.isoformat(), file=zp.name)
        plan: list[tuple[str, tuple[str, str, str]]] = []
        for n in names:
            c = classify(n)
            if c is None:
                continue
            if c[0] == "skip":
                why = ("SNAPSHOT/DELTA: ไม่ต้องใช้ (แนวคิดทั้งหมดอยู่ในแฟ้ม Concept) / not needed (the Concept files "
                       "are the full release)" if c[1] == "snapshot/delta" else
                       "ไม่ใช่แฟ้มแนวคิดหรือความสัมพันธ์ที่รู้จัก / not a known concept or relationship file")
                res.skipped_files.append({"file": n, "reason": why})
            else:
                plan.append((n, c))
        if not any(c[0] == "concept" for _, c in plan):
            raise UsageError(f"{zp.name}: ไม่พบแฟ้มแนวคิด TMT (SUBS, VTM, GP, GPU, TP, TPU ...)",
                             f"{zp.name}: no TMT concept files (SUBS, VTM, GP, GPU, TP, TPU ...) found",
                             hint="expected e.g. TMTRFyyyymmdd_BONUS/Concept/GPyyyymmdd.xls")
        prev = store.db.execute("SELECT release, release_date FROM tmt_release ORDER BY release_date DESC "
                                "LIMIT 1").fetchone()
        if prev and prev[1] > res.release_date and not allow_older:
            raise UsageError(f"รุ่น {release} เก่ากว่ารุ่นที่นำเข้าไว้ ({prev[0]})",
                             f"{release} is older than the imported {prev[0]}",
                             hint="--allow-older to import it anyway")
        res.replaced = prev[0] if prev else None
        plan.sort(key=lambda x: (x[1][0] != "concept", x[0]))  # concepts first: only to read in a stable order
        total = 0
        db = store.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM tmt_concept")
            db.execute("DELETE FROM tmt_rel")
            for name, (what, a, b) in plan:
                notes = SheetNotes()
                with zf.open(name) as raw:
                    rows = iter_rows(raw, name, notes)
                    if what == "concept":
                        for chunk in _batched(_concept_rows(rows, name, a, release, res.issues)):
                            db.executemany("INSERT OR REPLACE INTO tmt_concept VALUES (?, ?, ?, ?, ?, ?, ?)", chunk)
                            res.concepts[a] = res.concepts.get(a, 0) + len(chunk)
                            total += len(chunk)
                            if progress:
                                progress(name, total)
                    else:
                        kind = f"{a}to{b}"
                        for chunk in _batched(_rel_rows(rows, name, kind, a, b, release, res.issues)):
                            db.executemany("INSERT OR IGNORE INTO tmt_rel VALUES (?, ?, ?, ?)", chunk)
                            res.relationships[kind] = res.relationships.get(kind, 0) + len(chunk)
                            total += len(chunk)
                            if progress:
                                progress(name, total)
                res.files.append(name)
                res.warnings.extend(notes.warnings)
                if progress:
                    progress(name, total)
            counts = {"concepts": res.concepts, "relationships": res.relationships,
                      "skipped_files": [s["file"] for s in res.skipped_files], "bad_rows": res.issues.count}
            db.execute("INSERT OR REPLACE INTO tmt_release VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (release, zp.name, res.release_date, now_local().isoformat(),
                        sum(res.concepts.values()), sum(res.relationships.values()),
                        json.dumps(counts, ensure_ascii=False)))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    res.seconds = time.perf_counter() - t0
    return res
