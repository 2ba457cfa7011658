"""phrsync.f43 as a library: import, the quarantine and the store's counts, one typed function each.

``phrsync import``, ``quarantine`` and ``staging`` are thin wrappers over these (they parse options and print the
result); the demo and a web page call them directly. Every failure a user must act on is a
:class:`~phrsync.errors.PhrsyncError`: a wrong path or facility is a usage error (exit 2) raised before anything
is created, an unreachable HDC a source error (exit 6), a store that cannot be opened a store error (exit 7).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phrsync.errors import NotFoundError, UsageError
from phrsync.f43 import read, schema
from phrsync.f43.checks import RULES
from phrsync.f43.importer import Importer, ImportReport, ProgressFn
from phrsync.f43.reader import check_paths
from phrsync.f43.staging import Staging
from phrsync.settings import ImportSection


def open_store(path: str | Path) -> Staging:
    """The staging store opened read-only. A missing one is a :class:`~phrsync.errors.NotFoundError` (and is not
    created); one that an import holds raises :class:`~phrsync.f43.staging.StagingError` (exit 7)."""
    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"ไม่พบไฟล์ staging {p}", f"staging store {p} not found",
                            hint="ใช้ phrsync import ก่อน / run phrsync import first")
    return Staging(p, read_only=True)


def import_sources(staging: str | Path, paths: Sequence[str | Path] = (), *, hdc_url: str | None = None,
                   since: dt.datetime | None = None, date_from: dt.date | None = None,
                   date_to: dt.date | None = None, facilities: Sequence[str] = (), force: bool = False,
                   progress: ProgressFn | None = None, today: dt.date | None = None,
                   limits: ImportSection | None = None) -> ImportReport:
    """Import 43-file exports (zips, .txt files, folders of them) or the HDC database into the staging store.

    ``since``/``date_from``/``date_to``/``facilities`` select what is read from HDC. The source is checked
    before the store is touched: a wrong path or an unreachable HDC leaves no store file and no quarantine
    entry behind. ``progress(label, done, total)`` is called as containers (or HDC rows) are read. ``limits`` are
    the ``[import]`` settings (``cfg.settings.import_``; default: their defaults). A file that did not load is in
    the report's ``not_imported`` and makes its ``exit_code`` :attr:`~phrsync.errors.Exit.REFUSED`; the rest of
    the batch loads."""
    paths = list(paths)
    if not paths and not hdc_url:
        raise UsageError("ระบุ PATHS หรือ --hdc URL", "give PATHS or --hdc URL")
    if paths and hdc_url:
        raise UsageError("นำเข้าจากไฟล์หรือจาก HDC อย่างใดอย่างหนึ่ง", "import either files or HDC, not both")
    if paths and (since or date_from or date_to or facilities):
        raise UsageError("--since/--from/--to/--facility ใช้กับ --hdc เท่านั้น (ไฟล์ส่งออกนำเข้าทั้งไฟล์)",
                         "--since/--from/--to/--facility apply to --hdc only (an export is imported whole)")
    if date_from and date_to and date_to < date_from:
        raise UsageError("--to ต้องไม่ก่อน --from", "--to must not be before --from")
    if hdc_url:
        from phrsync.f43.hdc import mask_url, read_hdc

        codes = read.facility_codes(facilities)  # their rows are in HDC, not yet in the store
        # connects (and fails) here, before the store exists
        chunks = read_hdc(hdc_url, since=since, date_from=date_from, date_to=date_to, hospcodes=codes or None)
        with Staging(staging) as st:
            return Importer(st, force=force, progress=progress, today=today, limits=limits).import_chunks(
                chunks, "hdc", mask_url(hdc_url))
    check_paths(paths)
    with Staging(staging) as st:
        return Importer(st, force=force, progress=progress, today=today, limits=limits).import_paths(paths)


def quarantine_list(staging: str | Path, *, facility: str | None = None, file: str | None = None,
                    rule: str | None = None, severity: str | None = None, limit: int = 50
                    ) -> list[read.QuarantineRow]:
    """Quarantine entries (values masked), filtered. A facility the store does not hold, a 43-file name or a rule
    code that does not exist is an error, not an empty list."""
    if file is not None and schema.lookup(file) is None:
        raise UsageError(f"ไม่รู้จักแฟ้ม {file}", f"unknown 43-file {file}",
                         hint=", ".join(schema.ORDER))
    with open_store(staging) as st:
        if facility is not None:
            read.require_facilities(st, [facility])
        if rule is not None and rule not in RULES and not read.quarantine_rows(st, rule=rule, limit=1):
            raise UsageError(f"ไม่รู้จักกฎ {rule}", f"unknown rule {rule}", hint=", ".join(sorted(RULES)))
        spec = schema.lookup(file) if file is not None else None
        return read.quarantine_rows(st, facility=facility, file=spec.name if spec else None, rule=rule,
                                    severity=severity, limit=limit)


def quarantine_summary(staging: str | Path, *, facility: str | None = None) -> list[read.QuarantineCount]:
    """Entry counts per facility, file and rule (one facility's when given; an unknown one is an error)."""
    with open_store(staging) as st:
        if facility is not None:
            read.require_facilities(st, [facility])
        return read.quarantine_summary(st, facility=facility)


@dataclass
class StagingSummary:
    """What the store holds: rows per 43-file and the latest imports."""

    path: str
    rows: dict[str, int] = field(default_factory=dict)
    imports: list[read.ImportRun] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "imports": [i.to_dict() for i in self.imports]}


def staging_summary(staging: str | Path, *, imports: int = 5) -> StagingSummary:
    """Rows per 43-file and the last ``imports`` imports of the store."""
    with open_store(staging) as st:
        return StagingSummary(str(st.path), read.row_counts(st), read.recent_imports(st, imports))
