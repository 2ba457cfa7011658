"""Sending speed: a build file → the agent (outbox, HTTP, reconcile) → the local PHR server on loopback. Two
figures; asserts nothing.

- **paced** (the province's real load): the sandbox's per-facility limit on (120 uploads/min), ``--facilities``
  facilities (124) each sent at ``--per-minute`` (110) uploads a minute for at least ``--seconds`` (60): the rate
  the agent achieved and its CPU as a share of one core (goal ≤ 15 %).
- **open**: the limit off, ``--n`` encounters of one facility end to end (load + send + verify; goal ≥ 1,000/s),
  then an unchanged re-run and a 0.1 % change.

    .venv/bin/python benchmarks/sync_bench.py [--mode both|paced|open] [--n 20000] [--concurrency 16]
        [--facilities 124] [--per-minute 110] [--seconds 60] [--paced-concurrency N] [--no-verify] [--state URL]
        [--tls] [--latency-ms 200] [--faults 0.1] [--client-timeout 5] [--seed 1]

Conditions of a real network, from the sandbox's own options: ``--latency-ms`` delays every answer;
``--faults P`` makes a share P of the API requests fail as the fault tests of issue #15 did — half of them
500/502/503, a fifth 429 (Retry-After 1 s), 15 % hang past the client's ``--client-timeout`` and 15 % lose their
connection with no answer (``--fault-500`` … ``--fault-drop`` set one share alone).

The server runs as its own process (``phrsync sandbox serve``) so the two do not share a GIL; the agent runs in
this process (``sync_payloads``), so its CPU is this process's CPU. ``--tls``: the server speaks HTTPS with a
self-signed certificate (made with the ``openssl`` command) that the agent trusts through the target's
``ca_bundle`` — as against PHR or UAT, where every request is encrypted on both sides.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import psutil

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "payloads" / "valid" / "UpdatePHRv1.json"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import describe  # noqa: E402

from phrsync.delivery.agent import sync_payloads  # noqa: E402
from phrsync.delivery.config import Credentials, password_hash  # noqa: E402
from phrsync.pdpa import cid_check_digit  # noqa: E402

HCODE = "99999"


def build_file(path: Path, n: int, changed: frozenset[int] = frozenset(), hcodes: tuple[str, ...] = (HCODE,)) -> None:
    """``n`` encounters per facility of ``hcodes`` written as ``phrsync build`` writes them (sorted keys, the
    visit day beside each, in visit-day order over 28 days); those in ``changed`` carry a different visit end
    time (a changed payload)."""
    base = json.loads(FIXTURE.read_text(encoding="utf-8"))
    with path.open("wb") as fh:
        for hcode in hcodes:
            _facility_lines(fh, base, hcode, n, changed)


def _facility_lines(fh: Any, base: dict[str, Any], hcode: str, n: int, changed: frozenset[int]) -> None:
    for i in range(n):
        p = copy.deepcopy(base)
        p["managingOrganization"]["identifier"]["value"] = hcode
        first12 = f"1{i // 3:011d}"
        p["Patient"]["identifier"][0]["value"] = first12 + cid_check_digit(first12)
        enc = p["Encounter"][0]
        ref = f"{hcode}:S{i:09d}"
        enc["identifier"][0]["value"] = ref
        day = 1 + i * 28 // n
        enc["period"] = {"start": f"2025-02-{day:02d}T09:{i % 60:02d}:00+07:00",
                         "end": f"2025-02-{day:02d}T{12 if i in changed else 11}:{i % 60:02d}:00+07:00"}
        fh.write(orjson.dumps({"key": f"UpdatePHRv1|{ref}", "endpoint": "UpdatePHRv1", "hospcode": hcode,
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


def add_users(data_dir: Path, hcodes: tuple[str, ...]) -> None:
    """One Account Center user per facility (``u<HCODE>``, password ``pw``) in the sandbox's store."""
    from phrsync.sandbox import auth
    from phrsync.sandbox.settings import from_config
    from phrsync.sandbox.store import Store

    sc = from_config(None, data_dir=data_dir)
    st = Store(sc.url, sc.commit_batch_max, sc.sqlite_synchronous)
    try:
        for h in hcodes:
            auth.add_user(st, sc, f"u{h}", h, "pw")
    finally:
        st.close()


def paced(a: argparse.Namespace, tmp: Path, url: str, opts: dict[str, str]) -> None:
    """Every facility at ``per_minute`` under the sandbox's 120/min: the rate achieved and the agent's CPU share."""
    hcodes = tuple(f"{10000 + 7 * i:05d}" for i in range(a.facilities))
    per = math.ceil(a.per_minute * a.seconds / 60) + 1  # the first upload of each goes at once: +1 for a full span
    nd = tmp / "paced.ndjson"
    build_file(nd, per, hcodes=hcodes)
    creds = {h: Credentials(f"u{h}", password_hash("pw", "bench-key")) for h in hcodes}
    marks: dict[int, tuple[float, float]] = {}  # uploads done → (wall, CPU) when passed: the sustained window
    total = len(hcodes) * per
    cuts = (total // 10, total - total // 10)

    def progress(done: int, _total: int) -> None:
        for cut in cuts:
            if done >= cut and cut not in marks:
                marks[cut] = (time.perf_counter(), time.process_time())

    c0, t0 = time.process_time(), time.perf_counter()
    res = sync_payloads(nd, url, creds, tmp / "paced.sqlite", verify=False, rate_per_minute=a.per_minute,
                        status_interval=30, progress=progress, **opts, **agent_options(a, a.paced_concurrency))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    done = res.sent + res.confirmed
    send_s, send_cpu = res.wall.get("send", wall), res.cpu.get("send", cpu)
    print(f"paced: data       {a.facilities} facilities × {per} encounters = {len(hcodes) * per} "
          f"({nd.stat().st_size / 1e6:.1f} MB build file), sandbox limit 120/min per facility, agent "
          f"{a.per_minute}/min per facility, concurrency {a.paced_concurrency or 'adaptive'}; {conditions(a)}")
    print(f"paced: delivered  {done} (exit {res.exit_code}, requests {res.requests}, 429s "
          f"{res.status_codes.get('429', 0)}, retries {res.retries}, statuses {codes(res.status_codes)})")
    print(f"paced: rate       {done / send_s:.1f} uploads/s over {send_s:.1f} s of sending "
          f"(goal {a.facilities * a.per_minute / 60:.1f}/s = {a.facilities} × {a.per_minute}/min)")
    if len(marks) == 2:
        (w1, p1), (w2, p2) = marks[cuts[0]], marks[cuts[1]]
        goal = a.facilities * a.per_minute / 60
        rate = (cuts[1] - cuts[0]) / (w2 - w1)
        print(f"paced: sustained  {rate:.1f} uploads/s = {100 * rate / goal:.1f} % of the cap sum, and agent CPU "
              f"{100 * (p2 - p1) / (w2 - w1):.1f} % of one core from the 10th to the 90th percentile of the uploads "
              f"({w2 - w1:.1f} s, past the logins and facility checks at the start)")
    print(f"paced: agent CPU  {100 * send_cpu / send_s:.1f} % of one core while sending "
          f"({send_cpu:.2f} s CPU in {send_s:.1f} s; whole run incl. load {100 * cpu / wall:.1f} % over {wall:.1f} s)"
          " — goal ≤ 15 %")


def open_loop(a: argparse.Namespace, tmp: Path, url: str, opts: dict[str, str], srv_pid: int) -> None:
    """The limit off: how fast the agent and the server go end to end."""
    nd = tmp / "payloads.ndjson"
    build_file(nd, a.n)
    sp = psutil.Process(srv_pid)
    creds = Credentials(f"u{HCODE}", password_hash("pw", "bench-key"))
    state = a.state or str(tmp / "outbox.sqlite")
    marks: dict[int, float] = {}  # uploads done → when passed: the sustained window, past the start and the tail
    cuts = (a.n // 10, a.n - a.n // 10)

    def progress(done: int, _total: int) -> None:
        for cut in cuts:
            if done >= cut and cut not in marks:
                marks[cut] = time.perf_counter()

    c0, s0, t0 = time.process_time(), sum(sp.cpu_times()[:2]), time.perf_counter()
    res = sync_payloads(nd, url, creds, state, verify=not a.no_verify, progress=progress, **opts,
                        **agent_options(a, a.concurrency))
    wall = time.perf_counter() - t0
    agent_cpu, server_cpu = time.process_time() - c0, sum(sp.cpu_times()[:2]) - s0
    done = res.sent + res.confirmed
    print(f"open: payloads    {a.n} ({nd.stat().st_size / 1e6:.1f} MB build file; delivered {done}, exit "
          f"{res.exit_code}, requests {res.requests}, retries {res.retries}, statuses {codes(res.status_codes)}); "
          f"{conditions(a)}")
    send = res.wall.get("send", 0.0)
    if send:
        print(f"open: sending     {res.sent + res.confirmed} in {send:.2f} s → {(res.sent + res.confirmed) / send:.0f} "
              "uploads/s (the send phase alone)")
    if len(marks) == 2 and marks[cuts[1]] > marks[cuts[0]]:
        print(f"open: sustained   {(cuts[1] - cuts[0]) / (marks[cuts[1]] - marks[cuts[0]]):.0f} uploads/s from the 10th "
              "to the 90th percentile of the uploads (without the tail of the last retries' backoff)")
    print(f"open: wall        {wall:.2f} s  → {done / wall:.0f} encounters/s end to end (load + send + verify)")
    print(f"open: agent CPU   {agent_cpu:.2f} s  → {1000 * agent_cpu / max(done, 1):.2f} ms/encounter")
    print(f"open: server CPU  {server_cpu:.2f} s  → {1000 * server_cpu / max(done, 1):.2f} ms/encounter"
          f"  (agent/server = {agent_cpu / max(server_cpu, 1e-9):.2f})")
    print("open: agent CPU by phase " + ", ".join(f"{k} {1e6 * v / max(done, 1):.0f} µs" for k, v in res.cpu.items())
          + f", start-up and the rest {1e6 * (agent_cpu - sum(res.cpu.values())) / max(done, 1):.0f} µs")
    c0, t0 = time.process_time(), time.perf_counter()
    res2 = sync_payloads(nd, url, creds, state, verify=not a.no_verify, **opts, **agent_options(a, a.concurrency))
    print(f"open: unchanged re-run  {time.perf_counter() - t0:.2f} s, sent {res2.sent + res2.confirmed}, "
          f"agent CPU {time.process_time() - c0:.2f} s")
    # 0.1% of the encounters change (spread over the file): only those are sent
    step = 1000
    changed = frozenset(range(step // 2, a.n, step)) or frozenset({0})
    nd2 = tmp / "payloads-changed.ndjson"
    build_file(nd2, a.n, changed)
    c0, t0 = time.process_time(), time.perf_counter()
    res3 = sync_payloads(nd2, url, creds, state, verify=not a.no_verify, **opts, **agent_options(a, a.concurrency))
    inc = time.perf_counter() - t0
    print(f"open: 0.1% changed  {len(changed)} payloads changed → sent {res3.sent + res3.confirmed} in {inc:.2f} s "
          f"= {100 * inc / wall:.1f}% of the full run (agent CPU {time.process_time() - c0:.2f} s, "
          f"{res3.requests} requests, {res3.reconcile['days']} days checked)")


FAULT_SPLIT = (("500", 0.5 / 3), ("502", 0.5 / 3), ("503", 0.5 / 3), ("429", 0.2), ("timeout", 0.15), ("drop", 0.15))


def fault_shares(a: argparse.Namespace) -> dict[str, float]:
    """Each fault's share of the API requests: ``--faults`` split as :data:`FAULT_SPLIT`, or the ones given."""
    shares = {k: a.faults * w for k, w in FAULT_SPLIT}
    for k, _ in FAULT_SPLIT:
        v = getattr(a, f"fault_{k}")
        if v is not None:
            shares[k] = v
    return {k: v for k, v in shares.items() if v > 0}


def conditions(a: argparse.Namespace) -> str:
    f = fault_shares(a)
    faults = (f"faults {100 * sum(f.values()):.0f} % (" + ", ".join(f"{k} {100 * v:.1f} %" for k, v in f.items())
              + f"), client timeout {a.client_timeout:g} s") if f else "no faults"
    return f"latency {a.latency_ms:g} ms, {faults}"


def codes(status_codes: dict[str, int]) -> str:
    return " ".join(f"{k}×{v}" for k, v in sorted(status_codes.items())) or "-"


def agent_options(a: argparse.Namespace, concurrency: int | None) -> dict[str, Any]:
    """The agent's target settings for a run: the client timeout, and the concurrency when one is forced."""
    out: dict[str, Any] = {"timeout": a.client_timeout}
    if concurrency:
        out["concurrency"] = concurrency
    if a.max_concurrency:
        out["max_concurrency"] = a.max_concurrency
    return out


def serve(tmp: Path, name: str, rate_limit: int, a: argparse.Namespace, hcodes: tuple[str, ...],
          env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, dict[str, str]]:
    """A sandbox of its own (data dir ``tmp/name``) with a user per facility, listening on a free port."""
    data = tmp / name
    add_users(data, hcodes)
    port = free_port()
    tls: list[str] = []
    opts: dict[str, str] = {}
    if a.tls:
        cert, key = tmp / "cert.pem", tmp / "key.pem"
        if not cert.exists():
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                            "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                            str(cert)], check=True, capture_output=True)
        tls, opts = ["--tls-cert", str(cert), "--tls-key", str(key)], {"ca_bundle": str(cert)}
    url = f"{'https' if a.tls else 'http'}://127.0.0.1:{port}"
    faults = [x for k, v in fault_shares(a).items() for x in (f"--fault-{k}", f"{v:.4f}")]
    if faults:  # a hung request sleeps well past the client's timeout; the same draws for the same seed
        faults += ["--timeout-seconds", str(max(30.0, 3 * a.client_timeout)), "--seed", str(a.seed)]
    if a.latency_ms:
        faults += ["--latency-ms", str(a.latency_ms)]
    srv = subprocess.Popen([sys.executable, "-m", "phrsync", "sandbox", "--data-dir", str(data), "serve", "--port",
                            str(port), "--rate-limit", str(rate_limit), *tls, *faults], env=env, cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait(port)
    return srv, url, opts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["both", "paced", "open"], default="both")
    ap.add_argument("--n", type=int, default=20000, help="open: encounters")
    ap.add_argument("--concurrency", type=int, default=16, help="open: upload workers")
    ap.add_argument("--paced-concurrency", type=int, default=None,
                    help="paced: requests at once to start with (default the target's; the agent sizes it from "
                         "rate × round trip as it goes)")
    ap.add_argument("--max-concurrency", type=int, default=None, help="the most requests at once (target default)")
    ap.add_argument("--latency-ms", type=float, default=0.0, help="the sandbox delays every API answer this long")
    ap.add_argument("--faults", type=float, default=0.0, help="share of API requests that fail (split as the issue's)")
    for k, _ in FAULT_SPLIT:
        ap.add_argument(f"--fault-{k}", type=float, default=None, help=f"share answered {k} (overrides --faults)")
    ap.add_argument("--client-timeout", type=float, default=5.0, help="the agent's timeout per request, seconds")
    ap.add_argument("--seed", type=int, default=1, help="the sandbox's fault RNG seed")
    ap.add_argument("--facilities", type=int, default=124, help="paced: facilities")
    ap.add_argument("--per-minute", type=int, default=110, help="paced: the agent's uploads per facility a minute")
    ap.add_argument("--seconds", type=float, default=60, help="paced: how long the paced load lasts at least")
    ap.add_argument("--no-verify", action="store_true", help="open: skip the OrganizationSummary pass")
    ap.add_argument("--state", default=None, help="open: outbox URL (default: SQLite in a temp dir)")
    ap.add_argument("--tls", action="store_true", help="HTTPS with a self-signed certificate (the openssl command)")
    a = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="sync-bench-"))
    env = {**os.environ, "PHRSYNC_SANDBOX_PASSWORD_KEY": "bench-key", "PHRSYNC_SANDBOX_SECRET": "bench-secret"}
    os.environ.update(PHRSYNC_SANDBOX_PASSWORD_KEY="bench-key", PHRSYNC_SANDBOX_SECRET="bench-secret")
    print(f"machine: {describe()}{', HTTPS (self-signed, ca_bundle)' if a.tls else ', plain HTTP'} on loopback")
    if a.mode in ("both", "paced"):
        hcodes = tuple(f"{10000 + 7 * i:05d}" for i in range(a.facilities))
        srv, url, opts = serve(tmp, "sbx-paced", 120, a, hcodes, env)
        try:
            paced(a, tmp, url, opts)
        finally:
            srv.terminate()
            srv.wait(timeout=30)
    if a.mode in ("both", "open"):
        srv, url, opts = serve(tmp, "sbx-open", 0, a, (HCODE,), env)
        try:
            open_loop(a, tmp, url, opts, srv.pid)
        finally:
            srv.terminate()
            srv.wait(timeout=30)
    print(f"machine after: load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
