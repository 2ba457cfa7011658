"""``phrsync build``: staging store → validated MOPH-PHR payloads in an NDJSON file, sending nothing.

One line per payload that passed the shared validator, in the layout :mod:`phrsync.phr.buildfile` defines.
Refused payloads are not written; they are counted and explained in the data-quality report together
with every mapping note (estimates, unknown codes, skipped records) and the import's quarantine.
The file is written to a temporary name and renamed at the end, so a crashed build never leaves a
half file that a later ``sync`` could mistake for a complete one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import gc
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import duckdb

from phrsync.f43 import extract
from phrsync.f43.read import Selection, encounters_per_day
from phrsync.phr import buildfile, mapping
from phrsync.phr.buildfile import BuildSummary, encode_line
from phrsync.phr.mapping import MapContext, Note
from phrsync.phr.report import Quality, example_label
from phrsync.phr.validate import validate

ProgressFn = Callable[[str, int, int], None]  # (stage, done, total or 0)
Validator = Callable[[str, Any], list[Any]]

STAGES = ("encounters", "immunization", "chronic", "allergy", "summary")


@dataclass
class BuildResult:
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # endpoint -> built/refused/skipped/waiting
    seconds: float = 0.0
    encounters_per_second: float = 0.0
    out: str = ""
    quality: Quality | None = None
    summary: str = ""  # the summary file beside ``out`` (phrsync.phr.buildfile.write_summary)

    def bump(self, endpoint: str, what: str) -> None:
        c = self.counts.get(endpoint)
        if c is None:
            c = self.counts[endpoint] = {"built": 0, "refused": 0, "skipped": 0, "waiting": 0}
        c[what] += 1

    def total(self, what: str) -> int:
        return sum(c[what] for c in self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {"out": self.out, "summary": self.summary, "seconds": round(self.seconds, 3),
                "encounters_per_second": round(self.encounters_per_second, 1),
                "built": self.total("built"), "refused": self.total("refused"), "skipped": self.total("skipped"),
                "waiting": self.total("waiting"), "by_endpoint": self.counts,
                "facilities": self.quality.summary() if self.quality is not None else {}}


Mapper = Callable[[Any, MapContext], tuple[dict[str, Any] | None, list[Note]]]


def _encounter_example(b: dict[str, Any]) -> str:
    return example_label(f"{b['hospcode']}:{b['ref']}", mapping.patient_cid(b.get("person"), b["service"].get("CID")))


def _register_example(reg: dict[str, Any]) -> str:
    cid = mapping.patient_cid(reg.get("person"), *(r.get("CID") for r in reg["rows"]))
    return example_label(f"{reg['hospcode']}:PID {reg['pid']}", cid)


def _summary_example(month: dict[str, Any]) -> str:
    return f"{month['hospcode']} {month['month']}"


def _sources(con: duckdb.DuckDBPyConnection, sel: Selection, stages: tuple[str, ...], window_days: int
             ) -> Iterator[tuple[str, str, Mapper, dict[str, Any], str, Callable[[dict[str, Any]], str]]]:
    """(stage, endpoint, mapper, item, hospcode, example label of an item) for everything the build covers.
    The label (which masks a CID) is only worked out for the few payloads the report shows as examples."""
    if "encounters" in stages:
        for b in extract.iter_bundles(con, sel, window_days=window_days):
            yield "encounters", mapping.EP_ENCOUNTER, mapping.map_encounter, b, b["hospcode"], _encounter_example
    registers = (("immunization", mapping.EP_IMMUNIZATION, mapping.map_immunization_register,
                  extract.iter_immunization_registers),
                 ("chronic", mapping.EP_CHRONIC, mapping.map_chronic_register, extract.iter_chronic_registers),
                 ("allergy", mapping.EP_ALLERGY, mapping.map_allergy, extract.iter_allergy_registers))
    for stage, ep, fn, it in registers:
        if stage not in stages:
            continue
        for reg in it(con, sel):
            yield stage, ep, fn, reg, reg["hospcode"], _register_example
    if "summary" in stages:
        for month in extract.iter_daily_counts(con, sel):
            yield "summary", mapping.EP_SUMMARY, mapping.map_org_summary, month, month["hospcode"], _summary_example


# Every payload is a tree of fresh dicts and lists that reference counting frees; the cyclic collector,
# left on, keeps walking the batch of bundles in hand and every long-lived object (~8% of a build's CPU).
# It is off while a build maps, and the young generations are collected every GC_EVERY items, so a
# reference cycle made by some library does not pile up.
GC_EVERY = 5_000


@contextlib.contextmanager
def _acyclic_build() -> Iterator[None]:
    """Cyclic garbage collection off for the block (restored as it was), see GC_EVERY."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def build_to(fh: BinaryIO, con: duckdb.DuckDBPyConnection, sel: Selection, ctx: MapContext, *,
             stages: tuple[str, ...] = STAGES, validator: Validator = validate, quality: Quality | None = None,
             progress: ProgressFn | None = None, window_days: int = 7) -> BuildResult:
    """Map, validate and write every payload of the selection to ``fh`` (NDJSON, one payload per line)."""
    q = quality if quality is not None else Quality(dict(ctx.facility_names))
    res = BuildResult(quality=q)
    total = extract.count_encounters(con, sel) if "encounters" in stages else 0
    t0 = time.perf_counter()
    enc_done = 0
    enc_seconds = 0.0
    stage_now = ""
    done = 0
    write = fh.write
    with _acyclic_build():
        for stage, ep, fn, item, hcode, label in _sources(con, sel, stages, window_days):
            if stage != stage_now:
                if stage_now == "encounters":
                    enc_seconds = time.perf_counter() - t0
                stage_now, done = stage, 0
            done += 1
            if progress is not None and (done % 500 == 0 or done == 1):
                progress(stage, done, total if stage == "encounters" else 0)
            if stage == "encounters":
                enc_done += 1
            if done % GC_EVERY == 0:
                gc.collect(1)
            if hcode not in q.facility_names:
                name = mapping.facility_name(hcode, ctx)
                if name:
                    q.facility_names[hcode] = name
            payload, notes = fn(item, ctx)
            issues: list[Any] = []
            if payload is None:
                # held for a code (an allergy whose drug has no TMT substance yet): not data to fix, not sent yet
                outcome = "waiting" if any(n.kind == "waiting" for n in notes) else "skipped"
            else:
                issues = validator(ep, payload)
                if issues and any(i.severity == "error" for i in issues):
                    outcome = "refused"
                else:
                    outcome = "built"
                    write(encode_line(mapping.key_for(ep, payload), ep, hcode, payload))
            res.bump(ep, outcome)
            q.payload(hcode, ep, outcome, functools.partial(label, item), issues, notes)
    if stage_now == "encounters":
        enc_seconds = time.perf_counter() - t0
    if progress is not None and stage_now:
        progress(stage_now, done, total if stage_now == "encounters" else 0)
    res.seconds = time.perf_counter() - t0
    res.encounters_per_second = enc_done / enc_seconds if enc_seconds > 0 else 0.0
    return res


PARALLEL_MIN = 20_000  # below this many encounters, starting worker processes costs more than it saves
# DuckDB's buffer pool per connection: a build reads each window once, so a bigger cache buys nothing and
# would only make memory grow with the size of the store
WORKER_MEMORY = "512MB"
MAIN_MEMORY = "1GB"


def split_by_days(con: duckdb.DuckDBPyConnection, sel: Selection, parts: int) -> list[Selection]:
    """Contiguous date ranges of the selection holding about equal numbers of encounters."""
    rows = encounters_per_day(con, sel)
    if not rows:
        return []
    total = sum(int(n) for _, n in rows)
    out: list[Selection] = []
    start = rows[0][0]
    acc = 0
    for i, (day, n) in enumerate(rows):
        acc += int(n)
        last = i == len(rows) - 1
        if last or acc >= total * (len(out) + 1) / parts:
            end = day if last else rows[i + 1][0] - dt.timedelta(days=1)
            out.append(Selection(sel.facilities, start, end))
            if not last:
                start = rows[i + 1][0]
    return out


def _worker(job: tuple[str, str, Selection, MapContext, str | None, int]
            ) -> tuple[dict[str, dict[str, int]], Quality, int]:
    """One process's share of the encounters: its own read-only connection, its own part file."""
    from phrsync.f43.staging import Staging
    from phrsync.terminology import configure

    staging_path, part, sel, ctx, codes_dir, threads = job
    if codes_dir is not None:
        configure(codes_dir)
    mapping.reset_code_cache()
    with Staging(staging_path, read_only=True, memory_limit=WORKER_MEMORY) as st, \
            open(part, "wb", buffering=1 << 20) as fh:
        st.con.execute(f"SET threads = {threads}")
        st.con.execute("SET enable_progress_bar = false")
        res = build_to(fh, st.con, sel, ctx, stages=("encounters",))
    assert res.quality is not None
    n = sum(res.counts.get(mapping.EP_ENCOUNTER, {}).values())
    return res.counts, res.quality, n


def _parallel_encounters(staging_path: Path, tmp: Path, fh: BinaryIO, con: duckdb.DuckDBPyConnection,
                         sel: Selection, ctx: MapContext, workers: int, q: Quality, res: BuildResult,
                         progress: ProgressFn | None) -> None:
    import multiprocessing
    import shutil
    from concurrent.futures import ProcessPoolExecutor

    from phrsync.terminology import override_dir

    chunks = split_by_days(con, sel, workers * 4)
    total = extract.count_encounters(con, sel)
    codes_dir = override_dir()
    threads = max(1, (os.cpu_count() or 1) // workers)
    parts = [tmp.with_name(f"{tmp.name}.{i}") for i in range(len(chunks))]
    jobs = [(str(staging_path), str(p), c, ctx, str(codes_dir) if codes_dir else None, threads)
            for p, c in zip(parts, chunks, strict=True)]
    t0 = time.perf_counter()
    done = 0
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as ex:
            for part, (counts, wq, n) in zip(parts, ex.map(_worker, jobs), strict=True):
                for ep, c in counts.items():
                    for what, k in c.items():
                        res.counts.setdefault(ep, {"built": 0, "refused": 0, "skipped": 0, "waiting": 0})[what] += k
                q.merge(wq)
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, fh, 1 << 20)
                part.unlink()
                done += n
                if progress is not None:
                    progress("encounters", done, total)
    finally:
        for p in parts:
            p.unlink(missing_ok=True)
    secs = time.perf_counter() - t0
    res.encounters_per_second = done / secs if secs > 0 else 0.0


def build(staging_path: str | Path, out_path: str | Path, sel: Selection, ctx: MapContext, *,
          stages: tuple[str, ...] = STAGES, validator: Validator = validate, progress: ProgressFn | None = None,
          window_days: int = 7, with_quarantine: bool = True, workers: int | None = None) -> BuildResult:
    """Open the staging store read-only, build into ``out_path`` atomically, and collect the report.

    ``workers`` > 1 maps and validates the encounters in that many processes (each its own read-only
    connection and date range); ``None`` = one per core when there are at least PARALLEL_MIN encounters."""
    from phrsync.f43.staging import Staging

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    t0 = time.perf_counter()
    with Staging(staging_path, read_only=True, memory_limit=MAIN_MEMORY) as st:
        st.con.execute("SET enable_progress_bar = false")
        q = Quality(dict(ctx.facility_names))
        if workers is None:
            big = "encounters" in stages and extract.count_encounters(st.con, sel) >= PARALLEL_MIN
            workers = min(os.cpu_count() or 1, 4) if big else 1
        parallel = workers > 1 and "encounters" in stages and validator is validate
        try:
            with open(tmp, "wb", buffering=1 << 20) as fh:
                res = BuildResult(quality=q)
                if parallel:
                    _parallel_encounters(Path(staging_path), tmp, fh, st.con, sel, ctx, workers, q, res, progress)
                    rest = tuple(s for s in stages if s != "encounters")
                    more = build_to(fh, st.con, sel, ctx, stages=rest, validator=validator, quality=q,
                                    progress=progress, window_days=window_days)
                    for ep, c in more.counts.items():
                        res.counts[ep] = c
                else:
                    res = build_to(fh, st.con, sel, ctx, stages=stages, validator=validator, quality=q,
                                   progress=progress, window_days=window_days)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, out)
        if with_quarantine:
            q.add_quarantine(st.con, sel.facilities)
            for h in q.totals:
                name = mapping.facility_name(h, ctx)
                if name:
                    q.facility_names.setdefault(h, name)
    res.seconds = time.perf_counter() - t0
    res.out = str(out)
    res.summary = str(buildfile.write_summary(out, BuildSummary(
        built_at=dt.datetime.now(dt.UTC), seconds=res.seconds,
        facilities={h: {ep: dict(c) for ep, c in sorted(t.by_endpoint.items())} for h, t in sorted(q.totals.items())},
        issues=summary_issues(q), unmapped=q.unmapped_rows())))
    return res


SUMMARY_ISSUES = 100  # report rows per facility kept in the summary (the largest first)
_SUMMARY_FIELDS = ("category", "owner", "code", "endpoint_or_file", "path", "severity", "count", "message_th",
                   "message_en", "fix_th", "fix_en", "examples")


def summary_issues(q: Quality) -> dict[str, list[dict[str, Any]]]:
    """The report's rows per facility for the build's summary (what the monitoring web shows beside the outbox):
    refusals and notes, not the quarantine (the staging store holds that). Examples are masked already."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in q.rows():
        if r["category"] in ("quarantine", "import_warning"):
            continue
        out.setdefault(r["hospcode"], []).append({k: r[k] for k in _SUMMARY_FIELDS})
    return {h: sorted(rows, key=lambda r: -r["count"])[:SUMMARY_ISSUES] for h, rows in out.items()}


def parse_day(value: str | None) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as e:
        raise ValueError(f"วันที่ต้องเป็น YYYY-MM-DD (ค.ศ.) ได้ {value!r} / a date must be YYYY-MM-DD, got {value!r}") from e
