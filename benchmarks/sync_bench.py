"""End-to-end sending speed: a build file → the agent (outbox, HTTP, reconcile) → the local PHR server on
loopback. Prints encounters/s and CPU time per encounter of the agent beside the server's; asserts nothing.

    .venv/bin/python benchmarks/sync_bench.py [--n 3000] [--concurrency 16] [--no-verify] [--state URL] [--tls]

The server runs as its own process (``phrsync sandbox serve``, rate limit off) so the two do not share a GIL;
the agent runs in this process (``sync_payloads``), so its CPU is this process's CPU. ``--tls``: the server speaks
HTTPS with a self-signed certificate (made with the ``openssl`` command) that the agent trusts through the target's
``ca_bundle`` — as against PHR or UAT, where every request is encrypted on both sides.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import psutil

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "payloads" / "valid" / "UpdatePHRv1.json"
sys.path.insert(0, str(ROOT))

from phrsync.delivery.agent import sync_payloads  # noqa: E402
from phrsync.delivery.config import Credentials, password_hash  # noqa: E402
from phrsync.pdpa import cid_check_digit  # noqa: E402

HCODE = "99999"


def build_file(path: Path, n: int, changed: frozenset[int] = frozenset()) -> None:
    """``n`` encounters written as ``phrsync build`` writes them (sorted keys, the visit day beside each, in
    visit-day order over 28 days); those in ``changed`` carry a different visit end time (a changed payload)."""
    base = json.loads(FIXTURE.read_text(encoding="utf-8"))
    with path.open("wb") as fh:
        for i in range(n):
            p = copy.deepcopy(base)
            first12 = f"1{i // 3:011d}"
            p["Patient"]["identifier"][0]["value"] = first12 + cid_check_digit(first12)
            enc = p["Encounter"][0]
            ref = f"{HCODE}:S{i:09d}"
            enc["identifier"][0]["value"] = ref
            day = 1 + i * 28 // n
            enc["period"] = {"start": f"2025-02-{day:02d}T09:{i % 60:02d}:00+07:00",
                             "end": f"2025-02-{day:02d}T{12 if i in changed else 11}:{i % 60:02d}:00+07:00"}
            fh.write(orjson.dumps({"key": f"UpdatePHRv1|{ref}", "endpoint": "UpdatePHRv1", "hospcode": HCODE,
                                   "day": f"2025-02-{day:02d}", "payload": p},
                                  option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--no-verify", action="store_true", help="skip the OrganizationSummary pass")
    ap.add_argument("--state", default=None, help="outbox URL (default: SQLite in a temp dir)")
    ap.add_argument("--tls", action="store_true", help="HTTPS with a self-signed certificate (the openssl command)")
    a = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="sync-bench-"))
    env = {**os.environ, "PHRSYNC_SANDBOX_PASSWORD_KEY": "bench-key", "PHRSYNC_SANDBOX_SECRET": "bench-secret"}
    base = [sys.executable, "-m", "phrsync", "sandbox", "--data-dir", str(tmp / "sbx")]
    subprocess.run([*base, "add-user", "bench", "--hospcode", HCODE, "--password-stdin"], input="pw\n", text=True,
                   check=True, env=env, cwd=ROOT, capture_output=True)
    port = free_port()
    tls: list[str] = []
    opts: dict[str, str] = {}
    if a.tls:
        cert, key = tmp / "cert.pem", tmp / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                        "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                        str(cert)], check=True, capture_output=True)
        tls, opts = ["--tls-cert", str(cert), "--tls-key", str(key)], {"ca_bundle": str(cert)}
    url = f"{'https' if a.tls else 'http'}://127.0.0.1:{port}"
    srv = subprocess.Popen([*base, "serve", "--port", str(port), "--rate-limit", "0", *tls], env=env, cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait(port)
        nd = tmp / "payloads.ndjson"
        build_file(nd, a.n)
        sp = psutil.Process(srv.pid)
        creds = Credentials("bench", password_hash("pw", "bench-key"))
        state = a.state or str(tmp / "outbox.sqlite")
        c0, s0, t0 = time.process_time(), sum(sp.cpu_times()[:2]), time.perf_counter()
        res = sync_payloads(nd, url, creds, state, concurrency=a.concurrency,
                            verify=not a.no_verify, **opts)
        wall = time.perf_counter() - t0
        agent_cpu, server_cpu = time.process_time() - c0, sum(sp.cpu_times()[:2]) - s0
        done = res.sent + res.confirmed
        print(f"payloads          {a.n} (delivered {done}, exit {res.exit_code}, requests {res.requests})")
        print(f"wall              {wall:.2f} s  → {done / wall:.0f} encounters/s end to end (load + send + verify)")
        print(f"agent CPU         {agent_cpu:.2f} s  → {1000 * agent_cpu / max(done, 1):.2f} ms/encounter")
        print(f"server CPU        {server_cpu:.2f} s  → {1000 * server_cpu / max(done, 1):.2f} ms/encounter"
              f"  (agent/server = {agent_cpu / max(server_cpu, 1e-9):.2f})")
        print("agent CPU by phase " + ", ".join(f"{k} {1e6 * v / max(done, 1):.0f} µs" for k, v in res.cpu.items())
              + f", start-up and the rest {1e6 * (agent_cpu - sum(res.cpu.values())) / max(done, 1):.0f} µs")
        c0, t0 = time.process_time(), time.perf_counter()
        res2 = sync_payloads(nd, url, creds, state, concurrency=a.concurrency,
                             verify=not a.no_verify, **opts)
        print(f"unchanged re-run  {time.perf_counter() - t0:.2f} s, sent {res2.sent + res2.confirmed}, "
              f"agent CPU {time.process_time() - c0:.2f} s")
        # 0.1% of the encounters change (spread over the file): only those are sent
        step = 1000
        changed = frozenset(range(step // 2, a.n, step)) or frozenset({0})
        nd2 = tmp / "payloads-changed.ndjson"
        build_file(nd2, a.n, changed)
        c0, t0 = time.process_time(), time.perf_counter()
        res3 = sync_payloads(nd2, url, creds, state, concurrency=a.concurrency,
                             verify=not a.no_verify, **opts)
        inc = time.perf_counter() - t0
        print(f"0.1% changed      {len(changed)} payloads changed → sent {res3.sent + res3.confirmed} in {inc:.2f} s "
              f"= {100 * inc / wall:.1f}% of the full run (agent CPU {time.process_time() - c0:.2f} s, "
              f"{res3.requests} requests, {res3.reconcile['days']} days checked)")
        print(f"machine           {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
              f"{', HTTPS (self-signed, ca_bundle)' if a.tls else ', plain HTTP'} on loopback")
    finally:
        srv.terminate()
        srv.wait(timeout=30)


if __name__ == "__main__":
    main()
