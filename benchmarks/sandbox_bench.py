"""Sandbox throughput: accepted UpdatePHRv1 payloads per second over loopback (with validation and durable
storage), and bytes stored per encounter. Prints figures; asserts nothing about speed.

    .venv/bin/python benchmarks/sandbox_bench.py [--n 6000] [--clients 3] [--threads 8] [--db URL]

The server runs as its own process (``phrsync sandbox serve``) so client and server do not share a GIL.
"""

from __future__ import annotations

import argparse
import copy
import http.client
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "payloads" / "valid" / "UpdatePHRv1.json"
sys.path.insert(0, str(ROOT))

from phrsync.pdpa import cid_check_digit  # noqa: E402
from phrsync.sandbox import jwt  # noqa: E402


def make_payload(base: dict, i: int) -> bytes:
    p = copy.deepcopy(base)
    first12 = f"1{i // 3:011d}"
    p["Patient"]["identifier"][0]["value"] = first12 + cid_check_digit(first12)
    enc = p["Encounter"][0]
    enc["identifier"][0]["value"] = f"99999:B{i:09d}"
    day = 1 + i % 28
    enc["period"] = {"start": f"2025-02-{day:02d}T09:{i % 60:02d}:00+07:00",
                     "end": f"2025-02-{day:02d}T11:{i % 60:02d}:00+07:00"}
    return orjson.dumps(p)


class RawConn:
    """Keep-alive HTTP/1.1 over a plain socket with pre-built request bytes: the client must cost far less
    than the server, or the benchmark measures the client (http.client parses headers in Python)."""

    def __init__(self, port: int) -> None:
        import socket

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = b""

    def roundtrip(self, request: bytes) -> int:
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        while len(rest) < length:
            self._fill()
            rest = self.buf.partition(b"\r\n\r\n")[2]
        self.buf = rest[length:]
        return status

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk


def client_proc(port: int, token: str, start: int, count: int, threads: int, out: mp.Queue) -> None:
    base = json.loads(FIXTURE.read_text(encoding="utf-8"))
    reqs = []
    for k in range(count):
        body = make_payload(base, start + k)
        reqs.append(b"POST /api/UpdatePHRv1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
                    + token.encode() + b"\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(body)).encode() + b"\r\n\r\n" + body)
    ok = [0] * threads
    codes: dict[int, int] = {}
    lock = threading.Lock()

    def run(t: int) -> None:
        conn = RawConn(port)
        for k in range(t, count, threads):
            status = conn.roundtrip(reqs[k])
            if status == 200:
                ok[t] += 1
            else:
                with lock:
                    codes[status] = codes.get(status, 0) + 1
        conn.sock.close()

    ths = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    out.put(("ready", 0, {}))
    t0 = time.perf_counter()
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    out.put(("done", sum(ok), codes, t0, time.perf_counter()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=6000)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--db", default=None)
    ap.add_argument("--workers", type=int, default=2, help="server worker processes")
    ap.add_argument("--commit-delay-ms", type=float, default=None, help="server group-commit wait")
    a = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="sbx-bench-"))
    env = {**os.environ, "PHRSYNC_SANDBOX_PASSWORD_KEY": "bench-key", "PHRSYNC_SANDBOX_SECRET": "bench-secret"}
    if a.db:
        env["PHRSYNC_SANDBOX_DB"] = a.db
    py = sys.executable
    base = [py, "-m", "phrsync", "sandbox", "--data-dir", str(tmp)]
    subprocess.run([*base, "add-user", "bench", "--hospcode", "99999", "--password-stdin"], input="pw\n",
                   text=True, check=True, env=env, cwd=ROOT, capture_output=True)
    port = a.port or _free_port()
    srv = subprocess.Popen([*base, "serve", "--port", str(port), "--rate-limit", "0",
                            "--workers", str(a.workers),
                            *(["--commit-delay-ms", str(a.commit_delay_ms)] if a.commit_delay_ms is not None else [])], env=env, cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait(port)
        conn = http.client.HTTPConnection("127.0.0.1", port)
        body = json.dumps({"user": "bench", "password_hash": jwt.password_hash("pw", "bench-key"),
                           "hospital_code": "99999"})
        conn.request("POST", "/token?Action=get_moph_access_token", body=body)
        token = conn.getresponse().read().decode().strip()
        import psutil

        sp = psutil.Process(srv.pid)

        def tree_cpu() -> float:
            procs = [sp, *sp.children(recursive=True)]
            return sum(p.cpu_times().user + p.cpu_times().system for p in procs)

        cpu0 = tree_cpu()
        per = a.n // a.clients
        q: mp.Queue = mp.Queue()
        procs = [mp.Process(target=client_proc, args=(port, token, c * per, per, a.threads, q))
                 for c in range(a.clients)]
        for p in procs:
            p.start()
        for _ in procs:
            q.get()  # payloads prepared
        results = [q.get() for _ in procs]
        for p in procs:
            p.join()
        accepted = sum(r[1] for r in results)
        codes: dict[int, int] = {}
        for r in results:
            for k, v in r[2].items():
                codes[k] = codes.get(k, 0) + v
        elapsed = max(r[4] for r in results) - min(r[3] for r in results)
        srv_cpu = tree_cpu() - cpu0
        conn = http.client.HTTPConnection("127.0.0.1", port)
        conn.request("GET", "/dashboard?format=json")
        stats = json.loads(conn.getresponse().read())
        enc_bytes = _encounter_bytes(tmp, a.db)
        try:
            sys.path.insert(0, str(ROOT / "benchmarks"))
            from machine import describe  # shared machine-facts helper of the benchmarks folder

            print(f"machine: {describe()}")
        except ImportError:
            pass
        print(f"accepted UpdatePHRv1: {accepted} in {elapsed:.2f} s = {accepted / elapsed:,.0f} payloads/s "
              f"({a.workers} server workers, {a.clients} client processes × {a.threads} connections; non-200: {codes or 'none'})")
        print(f"server CPU: {srv_cpu:.2f} s = {srv_cpu / max(1, accepted) * 1e6:,.0f} µs per payload "
              f"(≈ {accepted / max(srv_cpu, 1e-9):,.0f} payloads/s per fully used core); "
              f"load average now {os.getloadavg()[0]:.2f}")
        print(f"stored encounters: {stats['encounters']}, persons: {stats['persons']}")
        print(f"bytes per encounter: encounter blob {enc_bytes:,.0f} B; all stored blobs "
              f"{stats['stored_bytes'] / max(1, stats['encounters']):,.0f} B; DB file "
              f"{(stats['db_file_bytes'] or 0) / max(1, stats['encounters']):,.0f} B "
              f"(production average ~7,300 B)")
        print(f"payload size sent: {len(make_payload(json.loads(FIXTURE.read_text()), 1)):,} B JSON")
    finally:
        srv.terminate()
        srv.wait(timeout=30)


def _encounter_bytes(tmp: Path, db: str | None) -> float:
    from sqlalchemy import create_engine, func, select

    from phrsync.sandbox import store

    url = db or f"sqlite:///{tmp / 'sandbox.sqlite'}"
    eng = create_engine(url)
    with eng.connect() as c:
        n, s = c.execute(select(func.count(), func.sum(func.length(store.encounters.c.data)))).one()
    eng.dispose()
    return (s or 0) / max(1, n)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/openapi.json")
            c.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


if __name__ == "__main__":
    main()
