"""Writing batches as real exporters do: ``F43_<HOSPCODE>_<YYYYMM>.zip`` with a folder of the same
name holding one pipe-delimited ``<file>.txt`` per 43-file (CRLF, UTF-8; a header line of upper-case
field names unless the facility runs an old header-less exporter), plus ``manifest.json``.

Zip entries carry a fixed timestamp derived from the month, so the same options give the same bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from phrsync.f43.schema import FILES, ORDER
from phrsync.synth.clock import month_end, parse_month
from phrsync.synth.dirty import KINDS, member_name, written_fields, zip_name
from phrsync.synth.generator import Batch, SynthOptions, facility_batches, generate, plan


def member_bytes(name: str, rows: list[list[str]], header: bool, encoding: str = "utf-8") -> bytes:
    """One member file's bytes: rows cut to the written layout, CRLF after every line."""
    cols = written_fields(FILES[name], header)
    n = len(cols)
    lines = ["|".join(cols)] if header else []
    lines.extend("|".join(r[:n]) for r in rows)
    text = "".join(line + "\r\n" for line in lines)
    return text.encode(encoding)


class ZipWriter:
    """Collects batches into zips and the manifest; usable as a pass-through tap (see :meth:`tap`)."""

    def __init__(self, out_dir: str | Path, compresslevel: int = 6, spool: bool = True):
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.level = compresslevel
        self.rows: Counter[str] = Counter()
        self.written: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        # defects go to a spool file as they come, so a big dirty run does not pile them up in memory
        # (a worker process's writer keeps its own defects for state() instead)
        self._spool_path = self.out / ".manifest-defects.jsonl"
        self._spool = self._spool_path.open("w", encoding="utf-8") if spool else None
        self._batch_defects: list[dict[str, Any]] = []
        self.zips: list[str] = []
        self.facilities: set[str] = set()
        self.bytes = 0
        self.service_dups = 0

    def add(self, batch: Batch) -> Path:
        name = zip_name(batch.hospcode, batch.month)
        folder = name[:-4]
        y, m = parse_month(batch.month)
        last = month_end(dt.date(y, m, 1))
        stamp = (last.year, last.month, last.day, 18, 0, 0)
        cp874 = {d["file"] for d in batch.defects if d["kind"] == "mixed_encoding"}
        bad_lines: Counter[str] = Counter(d["file"] for d in batch.defects if d["line"] > 0)
        path = self.out / name
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=self.level) as zf:
            for fname in ORDER:
                rows = batch.files.get(fname, [])
                data = member_bytes(fname, rows, batch.header, "cp874" if fname in cp874 else "utf-8")
                info = zipfile.ZipInfo(f"{folder}/{member_name(fname)}", date_time=stamp)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, data, compresslevel=self.level)
                self.written[fname] += len(rows)
                self.rows[fname] += len(rows) - bad_lines[fname]
        for d in batch.defects:
            self.kinds[d["kind"]] += 1
            if d["kind"] == "duplicate_key" and d["file"] == "SERVICE":
                self.service_dups += 1
        if self._spool:
            self._write_defects(batch.defects)
        else:
            self._batch_defects.extend(batch.defects)
        self.zips.append(name)
        self.facilities.add(batch.hospcode)
        self.bytes += path.stat().st_size
        return path

    def state(self) -> dict[str, Any]:
        """Counts and defects so far, to merge writers that worked in other processes."""
        return {"rows": dict(self.rows), "written": dict(self.written), "kinds": dict(self.kinds),
                "defects": self._batch_defects, "zips": self.zips, "facilities": sorted(self.facilities),
                "bytes": self.bytes, "service_dups": self.service_dups}

    def merge(self, state: dict[str, Any]) -> None:
        self.rows.update(state["rows"])
        self.written.update(state["written"])
        self.kinds.update(state["kinds"])
        self._write_defects(state["defects"])
        self.zips.extend(state["zips"])
        self.facilities.update(state["facilities"])
        self.bytes += state["bytes"]
        self.service_dups += state["service_dups"]

    def _write_defects(self, defects: list[dict[str, Any]]) -> None:
        assert self._spool is not None, "a worker writer keeps no manifest"
        for d in defects:
            self._spool.write(json.dumps(d, ensure_ascii=False) + "\n")

    def tap(self, batches: Iterable[Batch]) -> Iterator[Batch]:
        """Write each batch and pass it on (to feed an HDC loader from the same stream)."""
        for b in batches:
            self.add(b)
            yield b

    def summary(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out),
            "zips": len(self.zips),
            "facilities": len(self.facilities),
            "bytes": self.bytes,
            "rows": {f: self.rows[f] for f in ORDER},
            "rows_written": {f: self.written[f] for f in ORDER},
            "encounters": self.written["SERVICE"] - self.service_dups,
            "defect_counts": {k: self.kinds[k] for k in KINDS},
        }

    def finish(self, options: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write ``manifest.json`` (streaming the defect list from the spool) and return the counts."""
        summary = self.summary()
        head = {k: v for k, v in summary.items() if k != "out_dir"}
        head["options"] = options or {}
        head["zip_files"] = self.zips
        assert self._spool is not None, "a worker writer keeps no manifest"
        self._spool.close()
        text = json.dumps(head, ensure_ascii=False, indent=1)
        with (self.out / "manifest.json").open("w", encoding="utf-8") as fh, \
                self._spool_path.open(encoding="utf-8") as spool:
            fh.write(text[:-2] + ',\n "defects": [')
            sep = "\n  "
            for line in spool:
                fh.write(sep + line.rstrip("\n"))
                sep = ",\n  "
            fh.write("\n ]\n}\n")
        self._spool_path.unlink()
        return summary

def write_zips(batches: Iterable[Batch], out_dir: str | Path, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write every batch as a zip and ``manifest.json`` in ``out_dir``; return the counts.

    ``rows`` counts clean rows per 43-file (rows written minus rows carrying a line defect; rows of a
    member written in cp874 count as clean), ``rows_written`` every data line, ``defect_counts`` per kind.
    """
    w = ZipWriter(out_dir)
    for b in batches:
        w.add(b)
    return w.finish(options)


def _facility_job(job: tuple[SynthOptions, str, str]) -> tuple[int, dict[str, Any]]:
    opts, hospcode, out_dir = job
    pl = plan(opts)
    fac = pl.province.by_code(hospcode)
    assert fac is not None
    w = ZipWriter(out_dir, spool=False)
    for b in facility_batches(opts, pl, fac):
        w.add(b)
    return fac.ordinal, w.state()


def by_facility(batches: Iterable[Batch], total: int, progress: Callable[[int, int], None] | None
                ) -> Iterator[Batch]:
    """``batches`` unchanged; ``progress(facilities done, total)`` each time a facility's last batch has gone
    (a province of a million visits takes most of a minute)."""
    done, current = 0, None
    for b in batches:
        if b.hospcode != current:
            if current is not None and progress:
                done += 1
                progress(done, total)
            current = b.hospcode
        yield b
    if current is not None and progress:
        progress(done + 1, total)


def write_province(opts: SynthOptions, out_dir: str | Path, workers: int = 1,
                   progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Generate and write the whole province, facilities spread over ``workers`` processes;
    ``progress(facilities done, total)`` as each facility is written.

    Each facility's output depends only on the options and the facility, so the zips and the
    manifest (merged in facility order) are the same bytes whatever the number of workers.
    """
    pl = plan(opts)
    total = len(pl.province.facilities)
    if workers <= 1:
        return write_zips(by_facility(generate(opts), total, progress), out_dir, opts.to_dict())
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    # largest facilities first so the pool finishes together
    facs = sorted(pl.province.facilities, key=lambda f: (-sum(pl.quotas[f.hospcode]), f.ordinal))
    jobs = [(opts, f.hospcode, str(out_dir)) for f in facs]
    # spawn, not fork: the caller may hold threads (DuckDB, a server, a test runner) whose locks a
    # forked child would inherit locked, and then wait on forever.
    done: list[tuple[int, dict[str, Any]]] = []
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for result in pool.imap_unordered(_facility_job, jobs):
            done.append(result)
            if progress:
                progress(len(done), total)
    states = sorted(done, key=lambda x: x[0])
    w = ZipWriter(out_dir)
    for _, st in states:
        w.merge(st)
    return w.finish(opts.to_dict())
