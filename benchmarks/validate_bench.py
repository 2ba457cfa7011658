"""Validator throughput: payloads/s on one core for the spec's one-encounter UpdatePHRv1 payload.

Run: ``.venv/bin/python benchmarks/validate_bench.py [--seconds 3]``. Prints figures only (no pass/fail):
speed depends on the machine and on what else runs on it, so the CPU time of this process is reported
beside wall time, together with the machine's description and load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from phrsync import _native  # noqa: E402
from phrsync.phr.validate import parse_and_validate, validate  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "payloads" / "valid"


def machine_info() -> dict[str, Any]:
    """What the figures were measured on, so numbers from different machines are not compared blindly."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"python": platform.python_version(), "implementation": platform.python_implementation(),
            "platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "compiled": _native.describe()}  # mypyc extensions in use, or why not (phrsync/_native.py)


def measure(fn: Any, seconds: float) -> dict[str, float]:
    """Calls/s by CPU time (best of several rounds) and by wall time (all rounds)."""
    n = 200
    best_cpu = float("inf")
    total_calls = 0
    wall0 = time.perf_counter()
    while time.perf_counter() - wall0 < seconds:
        c0 = time.process_time()
        for _ in range(n):
            fn()
        best_cpu = min(best_cpu, (time.process_time() - c0) / n)
        total_calls += n
    wall = time.perf_counter() - wall0
    return {"per_s_cpu": 1.0 / best_cpu if best_cpu > 0 else float("inf"),
            "per_s_wall": total_calls / wall, "us_per_payload_cpu": best_cpu * 1e6, "calls": total_calls}


def _calibration() -> None:
    """A fixed pure-Python workload (200 small function calls with dict look-ups): figures from two
    machines compare fairly only after dividing by this time."""
    d = {"a": 1, "b": "x"}

    def g(o: dict[str, Any], k: str) -> Any:
        return o.get(k)

    for _ in range(100):
        g(d, "a")
        g(d, "b")


def _walk(node: Any) -> None:
    """Reference floor: visit every node of a payload once, doing nothing but a type test (and one
    string method call per string). No validator written in Python can be much cheaper than this."""
    t = type(node)
    if t is dict:
        for v in node.values():
            _walk(v)
    elif t is list:
        for v in node:
            _walk(v)
    elif t is str:
        node.isspace()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=3.0, help="time per case")
    args = ap.parse_args()
    typical = json.loads((FIXTURES / "UpdatePHRv1.json").read_text(encoding="utf-8"))
    full = json.loads((FIXTURES / "UpdatePHRv1.full_forms.json").read_text(encoding="utf-8"))
    body = (FIXTURES / "UpdatePHRv1.json").read_bytes()
    assert not [i for i in validate("UpdatePHRv1", typical) if i.severity == "error"]
    cases = {
        "validate: typical one-encounter UpdatePHRv1 (spec §3.4)": lambda: validate("UpdatePHRv1", typical),
        "validate: one encounter, every optional block (full_forms)": lambda: validate("UpdatePHRv1", full),
        "parse_and_validate: typical, from bytes (orjson + validate)": lambda: parse_and_validate("UpdatePHRv1", body),
        "reference floor: bare walk over the typical payload's nodes": lambda: _walk(typical),
    }
    print("machine:", json.dumps(machine_info(), ensure_ascii=False))
    cal = measure(_calibration, min(1.0, args.seconds))
    print(f"calibration: {cal['us_per_payload_cpu']:.1f} µs per 200 Python calls (CPU time; lower = faster machine)")
    for name, fn in cases.items():
        r = measure(fn, args.seconds)
        print(f"{name}\n    {r['per_s_cpu']:>10,.0f} payloads/s (CPU time, best round)   "
              f"{r['per_s_wall']:>10,.0f} payloads/s (wall)   {r['us_per_payload_cpu']:.1f} µs/payload")


if __name__ == "__main__":
    main()
