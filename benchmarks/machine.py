"""Machine facts printed beside every benchmark figure, so numbers can be compared honestly."""

from __future__ import annotations

import os
import platform
import resource


def describe() -> str:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            mem_kb = int(fh.readline().split()[1])
        mem = f"{mem_kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        mem = "?"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), {mem} RAM, "
            f"Python {platform.python_version()}, load average {load:.2f}")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
