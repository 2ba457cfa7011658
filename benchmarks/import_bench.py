"""Import speed: synthetic 43-file zips → staging, rows/s and peak memory.

    python benchmarks/import_bench.py                 # 1,000,000 encounters (the issue's size)
    python benchmarks/import_bench.py --encounters 100000

Generation time is not counted: the zips are written first (and reused from --cache if present).
Peak memory is measured in a child process that only imports, so generation does not inflate it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, peak_rss_mb  # noqa: E402


def _import(zips: list[str], staging: str, out: mp.Queue) -> None:  # type: ignore[type-arg]
    from phrsync.f43.importer import Importer
    from phrsync.f43.staging import Staging

    with Staging(staging) as st:
        t0 = time.perf_counter()
        rep = Importer(st).import_paths(zips)
        secs = time.perf_counter() - t0
    out.put({"rows": rep.rows_read, "quarantined": rep.rows_quarantined, "seconds": secs,
             "phases": {k: round(v, 1) for k, v in rep.phases.items()},
             "peak_rss_mb": peak_rss_mb(), "per_file": {k: v.read for k, v in rep.files.items()}})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encounters", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cache", type=Path, help="folder to keep the generated zips between runs")
    args = ap.parse_args()

    from phrsync.synth import SynthOptions
    from phrsync.synth.export import write_province

    work = Path(tempfile.mkdtemp(prefix="phrsync-bench-"))
    zips = args.cache or work / "zips"
    manifest = zips / "manifest.json"
    if not manifest.exists():
        t0 = time.perf_counter()
        write_province(SynthOptions(province="27", encounters=args.encounters, seed=args.seed), zips, 2)
        print(f"generated {args.encounters:,} encounters in {time.perf_counter() - t0:.1f} s → {zips}")
    size_mb = sum(p.stat().st_size for p in zips.glob("*.zip")) / 1e6
    spawn = mp.get_context("spawn")

    def run(paths: list[str], name: str) -> dict:  # type: ignore[type-arg]
        q = spawn.Queue()
        p = spawn.Process(target=_import, args=(paths, str(work / name), q))
        p.start()
        res = q.get()
        p.join()
        res["db_mb"] = (work / name).stat().st_size / 1e6
        (work / name).unlink(missing_ok=True)
        return res

    all_zips = sorted(str(z) for z in zips.glob("*.zip"))
    months = sorted({z.rsplit("_", 1)[-1][:6] for z in all_zips})
    def first(frac: float) -> list[str]:
        keep = set(months[: max(1, round(len(months) * frac))])
        return [z for z in all_zips if z.rsplit("_", 1)[-1][:6] in keep]

    # the same import on a quarter, a half and all of the months: peak memory must not follow the size
    parts = [(label, run(first(frac), f"{label}.duckdb")) for label, frac in (("¼", 0.25), ("½", 0.5))]
    res = run(all_zips, "staging.duckdb")
    print(f"machine: {describe()}")
    print(f"data: {args.encounters:,} encounters, {len(all_zips):,} zips, {size_mb:,.1f} MB zipped, "
          f"{res['rows']:,} rows in {len(res['per_file'])} files")
    print(f"import: {res['seconds']:.1f} s → {res['rows'] / res['seconds']:,.0f} rows/s into staging "
          f"({res['quarantined']:,} quarantined)")
    print(f"time by phase (s, summed over the checker threads): {res['phases']} "
          "(the rest is reading and splitting the zips)")
    sizes = ", ".join(f"{p['peak_rss_mb']:,.0f} MB for {label} of the months ({p['rows']:,} rows)"
                      for label, p in parts)
    print(f"peak memory (importing process): {sizes}, {res['peak_rss_mb']:,.0f} MB for all ({res['rows']:,} rows); "
          f"staging file {res['db_mb']:,.0f} MB")
    print(json.dumps({"encounters": args.encounters, **res}))
    if not args.cache:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
