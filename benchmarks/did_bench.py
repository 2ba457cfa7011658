"""Digital ID checks per second against the sandbox on loopback, and the time to compute the KPI 54 report for a
province of 600,000 people.

    python benchmarks/did_bench.py [--people 3000] [--province 600000] [--concurrency 32]

The sandbox runs in a separate process (``phrsync sandbox serve``), so client and server do not share a GIL; its
rate limit is off, and so is the client's: the figure is what the two cost in CPU on this machine. People per
second depend on what else the machine runs, so the load average is printed with it, and the CPU each side spent
per person (from ``/proc``), which the other load changes much less.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from phrsync.delivery.config import Credentials  # noqa: E402
from phrsync.did.check import CheckOptions, run_check  # noqa: E402
from phrsync.did.kpi import Targets  # noqa: E402
from phrsync.did.report import build_report  # noqa: E402
from phrsync.did.store import CITIZEN, PERSONNEL, SOURCE_IMPORT, DidStore, Person  # noqa: E402
from phrsync.pdpa import cid_check_digit  # noqa: E402

DISTRICTS = ["2701", "2702", "2703", "2704", "2705", "2706", "2707", "2708", "2709"]


def _cid(n: int) -> str:
    first12 = f"1{2700 + n % 9 + 1:04d}{n:07d}"[:12]
    return first12 + cid_check_digit(first12)


def _people(n: int) -> list[Person]:
    return [Person(_cid(i), f"{10000 + i % 140:05d}", DISTRICTS[i % 9], "x") for i in range(n)]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (Linux /proc): the figure the machine's other load does not change."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_check(people: int, concurrency: int, tmp: Path) -> None:
    from phrsync.sandbox import jwt
    from phrsync.sandbox.settings import SandboxConfig

    exe = Path(sys.executable).parent / "phrsync"
    sbx = tmp / "sbx"
    cfg = SandboxConfig(data_dir=sbx)
    toml = tmp / "phrsync.toml"
    toml.write_text("[sandbox]\nekyc_rate_limit_per_minute = 0\n", encoding="utf-8")
    sb = [str(exe), "--config", str(toml), "sandbox", "--data-dir", str(sbx)]
    subprocess.run([*sb, "add-user", "bench", "--hospcode", "00017", "--password-stdin"],
                   input="bench-password-123\n", text=True, check=True, capture_output=True)
    port = _free_port()
    proc = subprocess.Popen([*sb, "serve", "--port", str(port), "--rate-limit", "0"], env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 20
        import httpx

        while time.time() < deadline:
            try:
                httpx.get(base + "/openapi.json", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        store = DidStore(f"sqlite:///{tmp / 'check.sqlite'}")
        store.replace_people(CITIZEN, SOURCE_IMPORT, _people(people), file="bench")
        opts = CheckOptions(target="sandbox", base_url=base, token_url=base + "/token?Action=get_moph_access_token",
                            account_hospcode="00017",
                            credentials=Credentials("bench", jwt.password_hash("bench-password-123", cfg.hash_key())),
                            concurrency=concurrency, rate_per_minute=0, timeout=30)
        cpu, server_cpu = time.process_time(), _cpu_seconds(proc.pid)
        res = run_check(store, opts)
        cpu, server_cpu = time.process_time() - cpu, _cpu_seconds(proc.pid) - server_cpu
        n = max(res.answered, 1)
        print(f"check_ekyc: {res.answered:,} answered of {res.due:,} in {res.seconds:.2f} s = "
              f"{res.per_second:,.0f} people/s (concurrency {concurrency}, no rate limit; "
              f"status codes {res.status_codes}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
        print(f"  CPU per person: checker {cpu / n * 1e6:,.0f} µs, sandbox {server_cpu / n * 1e6:,.0f} µs "
              f"(a core each would allow {n / max(cpu, server_cpu):,.0f} people/s, one core for both "
              f"{n / (cpu + server_cpu):,.0f})")
        store.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def bench_report(n: int, tmp: Path) -> None:
    store = DidStore(f"sqlite:///{tmp / 'report.sqlite'}")
    rows = _people(n)
    t0 = time.perf_counter()
    store.replace_people(CITIZEN, SOURCE_IMPORT, rows, file="bench")
    store.replace_people(PERSONNEL, SOURCE_IMPORT, rows[: n // 150], file="bench")
    answers = [(p.cid, 1 if i % 20 == 0 else 0, 1, time.time()) for i, p in enumerate(rows)]
    for i in range(0, len(answers), 20_000):
        store.record_answers(answers[i:i + 20_000], "sandbox")
    load = time.perf_counter() - t0
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        rep = build_report(store, Targets())
        times.append(time.perf_counter() - t0)
    print(f"report: {n:,} citizens + {n // 150:,} personnel: best {min(times):.2f} s of 3 "
          f"(loading the lists and answers took {load:.1f} s); province {rep.total.citizens_pct} %")
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=3000)
    ap.add_argument("--province", type=int, default=600_000)
    ap.add_argument("--concurrency", type=int, default=32)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        bench_report(a.province, Path(d))
        bench_check(a.people, a.concurrency, Path(d))


if __name__ == "__main__":
    main()
