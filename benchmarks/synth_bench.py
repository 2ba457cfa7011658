"""How fast the synthetic province generator is, and how much memory it holds.

    .venv/bin/python benchmarks/synth_bench.py [ENCOUNTERS] [--months M] [--write DIR] [--workers W]

Prints machine facts, then generation figures: SERVICE rows/s, all rows/s and the peak resident
memory. With ``--write`` the zips are written too (in ``--workers`` processes).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import threading
import time
from collections import Counter

import psutil

from phrsync.synth import SynthOptions, generate
from phrsync.synth.export import write_province


def _machine() -> str:
    mem = psutil.virtual_memory().total / 2**30
    return (f"{platform.platform()} | Python {sys.version.split()[0]} | {os.cpu_count()} CPU "
            f"({psutil.cpu_count(logical=False)} physical) | {mem:.1f} GiB RAM | load {os.getloadavg()[0]:.2f}")


class PeakRSS:
    """Samples this process's (and its children's) resident memory in the background."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            rss = me.memory_info().rss + sum(c.memory_info().rss for c in me.children(recursive=True))
            self.peak = max(self.peak, rss)
            self._stop.wait(0.2)

    def __enter__(self) -> PeakRSS:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("encounters", type=int, nargs="?", default=100_000)
    ap.add_argument("--months", type=int, default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--write", metavar="DIR", default=None)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    opts = SynthOptions(encounters=args.encounters, seed=args.seed, months=args.months)
    print("machine:", _machine())
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    with PeakRSS() as mem:
        if args.write:
            summary = write_province(opts, args.write, workers=args.workers)
            rows = Counter(summary["rows_written"])
        else:
            rows = Counter()
            for b in generate(opts):
                for name, r in b.files.items():
                    rows[name] += len(r)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    total = sum(rows.values())
    mode = f"generate+write, {args.workers} workers" if args.write else "generate only, 1 process"
    print(f"{mode}: {args.encounters:,} encounters, {total:,} rows in {wall:.1f} s wall ({cpu:.1f} s CPU here)")
    print(f"  SERVICE rows/s {rows['SERVICE'] / wall:,.0f}   all rows/s {total / wall:,.0f}   "
          f"peak RSS {mem.peak / 2**20:,.0f} MiB")
    for name, n in rows.most_common():
        print(f"  {name:<15}{n:>12,}")


if __name__ == "__main__":
    main()
