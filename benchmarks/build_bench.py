"""Benchmark of ``phrsync build``: encounters/s from staging to validated NDJSON, peak memory, and the
straightforward approach (one query per table per visit, as hand-written agents do) on a sample.

    .venv/bin/python benchmarks/build_bench.py                      # 1,000,000 synthetic encounters
    .venv/bin/python benchmarks/build_bench.py --encounters 50000
    .venv/bin/python benchmarks/build_bench.py --staging data/staging.duckdb --sample 300

Prints figures only (no pass/fail): machine info, the columnar build's rate and peak RSS on a quarter of
the date range and on all of it (memory should stay flat), and the per-visit approach's rate and the ratio.
Generating and importing the synthetic province is timed separately and is not part of the build figure.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from phrsync import _native  # noqa: E402
from phrsync.f43 import extract as E  # noqa: E402
from phrsync.f43.read import Selection  # noqa: E402
from phrsync.f43.staging import Staging  # noqa: E402
from phrsync.phr import build as B  # noqa: E402
from phrsync.phr import mapping as M  # noqa: E402
from phrsync.phr.validate import validate  # noqa: E402


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"platform": platform.platform(), "cpu": model or platform.processor(), "cores": os.cpu_count(),
            "ram_gb": round(psutil.virtual_memory().total / 2**30, 1), "load_avg": os.getloadavg(),
            "python": platform.python_version(), "duckdb": duckdb.__version__,
            "compiled": _native.describe()}  # mypyc extensions in use, or why not (phrsync/_native.py)


class PeakRSS:
    """Samples the resident memory of this process and its worker processes every 50 ms; ``peak`` is the
    highest total seen."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self.stretch = 0  # the highest total since the last mark()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        total = self.proc.memory_info().rss
        for c in self.proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += c.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            now = self.rss()
            self.peak = max(self.peak, now)
            self.stretch = max(self.stretch, now)

    def mark(self) -> int:
        """The highest total since the previous mark (a stretch of the run), and start a new stretch."""
        top, self.stretch = max(self.stretch, self.rss()), 0
        return top

    def __enter__(self) -> PeakRSS:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.rss())


def make_staging(n: int, seed: int, work: Path) -> Path:
    from phrsync.f43.importer import Importer
    from phrsync.synth import SynthOptions, generate, write_zips

    zips = work / "zips"
    t = time.perf_counter()
    write_zips(generate(SynthOptions(encounters=n, seed=seed)), zips)
    print(f"synth: {n:,} encounters in {time.perf_counter() - t:.1f} s", flush=True)
    path = work / "staging.duckdb"
    t = time.perf_counter()
    with Staging(path) as st:
        Importer(st).import_paths(sorted(zips.glob("*.zip")))
    print(f"import: {time.perf_counter() - t:.1f} s", flush=True)
    return path


def run_build(path: Path, sel: Selection, out: Path, workers: int) -> dict[str, Any]:
    ctx = M.MapContext(now=dt.datetime.now(dt.UTC))
    stretches: list[tuple[int, float]] = []  # (encounters done, peak growth in MB since the previous part)
    with PeakRSS() as mem:
        base = mem.rss()

        def progress(stage: str, done: int, total: int) -> None:  # once per finished part of the build
            stretches.append((done, (mem.mark() - base) / 2**20))

        t = time.perf_counter()
        res = B.build(path, out, sel, ctx, stages=("encounters",), workers=workers, with_quarantine=False,
                      progress=progress)
        secs = time.perf_counter() - t
    n = sum(res.counts.get("UpdatePHRv1", {}).values())
    return {"encounters": n, "seconds": secs, "per_s": n / secs if secs else 0.0,
            "peak_rss_mb": mem.peak / 2**20, "peak_growth_mb": (mem.peak - base) / 2**20, "stretches": stretches}


# --- the straightforward approach: one query per table per visit ------------------------------------

def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def naive_bundle(con: duckdb.DuckDBPyConnection, hosp: str, seq: str) -> dict[str, Any]:
    svc = _rows(con, 'SELECT * FROM f43_service WHERE "HOSPCODE" = ? AND "SEQ" = ?', [hosp, seq])[0]
    pid = svc["PID"]
    key = [hosp, pid]
    person = _rows(con, 'SELECT * FROM f43_person WHERE "HOSPCODE" = ? AND "PID" = ?', key)
    death = _rows(con, 'SELECT * FROM f43_death WHERE "HOSPCODE" = ? AND "PID" = ?', key)
    b: dict[str, Any] = {
        "kind": "OPD", "hospcode": hosp, "ref": seq, "service": svc, "person": person[0] if person else None,
        "addresses": _rows(con, 'SELECT * FROM f43_address WHERE "HOSPCODE" = ? AND "PID" = ? ORDER BY "ADDRESSTYPE"',
                           key),
        "cards": _rows(con, 'SELECT * FROM f43_card WHERE "HOSPCODE" = ? AND "PID" = ?', key),
        "death": death[0] if death else None,
    }
    last = svc.get("D_UPDATE")
    for file, (k, _cols) in E.OPD_CHILDREN.items():
        b[k] = _rows(con, f'SELECT * FROM f43_{file.lower()} WHERE "HOSPCODE" = ? AND "SEQ" = ?', [hosp, seq])
        last = max([last, *(r["D_UPDATE"] for r in b[k])], key=lambda u: (u is not None, u))
    b["last_update"] = last
    return b


def run_naive(con: duckdb.DuckDBPyConnection, sample: int) -> dict[str, Any]:
    visits = con.execute(f'SELECT "HOSPCODE", "SEQ" FROM f43_service USING SAMPLE reservoir({int(sample)} ROWS) '
                         'REPEATABLE (7)').fetchall()
    ctx = M.MapContext(now=dt.datetime.now(dt.UTC))
    t = time.perf_counter()
    n = 0
    for hosp, seq in visits:
        payload, _ = M.map_encounter(naive_bundle(con, hosp, seq), ctx)
        if payload is not None:
            validate("UpdatePHRv1", payload)
            orjson.dumps(payload)
        n += 1
    secs = time.perf_counter() - t
    return {"encounters": n, "seconds": secs, "per_s": n / secs if secs else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encounters", type=int, default=1_000_000, help="synthetic encounters (ignored with --staging)")
    ap.add_argument("--staging", type=Path, help="use this existing staging store instead of generating one")
    ap.add_argument("--workdir", type=Path, help="where to put the synthetic zips and store (default: a temp dir)")
    ap.add_argument("--sample", type=int, default=500, help="visits for the per-visit (straightforward) approach")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="build processes (default: one per core)")
    args = ap.parse_args()

    print("machine:", orjson.dumps(machine()).decode(), flush=True)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="build_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    path = args.staging or make_staging(args.encounters, args.seed, work)
    with Staging(path, read_only=True) as st:
        lo, hi = st.con.execute('SELECT min("DATE_SERV"), max("DATE_SERV") FROM f43_service').fetchall()[0]
        total = E.count_encounters(st.con)
    print(f"staging: {path} ({total:,} encounters, {lo} .. {hi}); workers: {args.workers}", flush=True)
    quarter = lo + (hi - lo) / 4
    small = run_build(path, Selection((), lo, quarter), work / "bench_quarter.ndjson", args.workers)
    full = run_build(path, Selection(), work / "bench_full.ndjson", args.workers)
    with Staging(path, read_only=True) as st:
        con = st.con
        for label, r in (("columnar build, first quarter of the dates", small), ("columnar build, all", full)):
            print(f"{label}: {r['encounters']:,} encounters in {r['seconds']:.1f} s = {r['per_s']:,.0f} encounters/s; "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB (+{r['peak_growth_mb']:.0f} MB during the run)", flush=True)
        naive = run_naive(con, args.sample)
        print(f"per-visit queries (straightforward), sample: {naive['encounters']:,} encounters in "
              f"{naive['seconds']:.1f} s = {naive['per_s']:,.1f} encounters/s", flush=True)
        print("note: the per-visit approach runs on the same DuckDB store, which has no secondary indexes; "
              "against an indexed MySQL it would be faster, but still pays ~13 round trips per visit.")
    ratio = full["per_s"] / naive["per_s"] if naive["per_s"] else float("inf")
    print(f"speed-up columnar / per-visit: {ratio:,.1f}x")
    print(f"memory: peak growth {small['peak_growth_mb']:.0f} MB on 1/4 of the range vs "
          f"{full['peak_growth_mb']:.0f} MB on all of it")
    # memory that grew with the input would rise from one part of the run to the next
    print("memory through the full run (peak growth while each part was built; encounters done when it ended): "
          + ", ".join(f"{mb:.0f} MB @ {done:,}" for done, mb in full["stretches"]))


if __name__ == "__main__":
    main()
