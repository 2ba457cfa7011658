"""Memory under large uploads: ``--clients`` logged-in clients each send one ~19 MB UpdatePHRv1 at once to a
sandbox process; prints the answers, the time and the server's peak RSS for each ``max_large_bodies`` given.

    .venv/bin/python benchmarks/large_body_bench.py [--slots 0 4] [--clients 48] [--mb 19]

0 slots = no bound (as before the bound existed). Loopback only; the server is its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import describe  # noqa: E402
from sync_bench import FIXTURE, add_users, free_port, wait  # noqa: E402

from phrsync.delivery.config import password_hash  # noqa: E402

HCODE = "99999"


def big_body(mb: float) -> tuple[bytes, int]:
    """One valid UpdatePHRv1 of at least ``mb`` MB: the fixture's encounter repeated under distinct refs."""
    base = json.loads(FIXTURE.read_text(encoding="utf-8"))
    base["managingOrganization"]["identifier"]["value"] = HCODE
    e0 = base["Encounter"][0]
    encs: list[object] = []
    while True:
        for _ in range(500):
            e = copy.deepcopy(e0)
            e["identifier"][0]["value"] = f"{HCODE}:BIG{len(encs):07d}"
            encs.append(e)
        base["Encounter"] = encs
        body = json.dumps(base).encode()
        if len(body) > mb * 1e6:
            return body, len(encs)


def one(slots: int, body: bytes, clients: int) -> tuple[dict[int, int], float, int]:
    tmp = Path(tempfile.mkdtemp(prefix="large-body-"))
    data = tmp / "sbx"
    add_users(data, (HCODE,))
    (tmp / "phrsync.toml").write_text(f"[sandbox]\nmax_large_bodies = {slots}\n", encoding="utf-8")
    port = free_port()
    srv = subprocess.Popen([sys.executable, "-m", "phrsync", "--config", str(tmp / "phrsync.toml"), "sandbox",
                            "--data-dir", str(data), "serve", "--port", str(port), "--rate-limit", "0"],
                           cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait(port)
        proc = psutil.Process(srv.pid)
        peak, done = [proc.memory_info().rss], threading.Event()

        def watch() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], proc.memory_info().rss)
                time.sleep(0.02)

        threading.Thread(target=watch, daemon=True).start()

        async def send() -> tuple[dict[int, int], float]:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=600) as c:
                tok = (await c.post("/token", params={"Action": "get_moph_access_token", "user": f"u{HCODE}",
                                                      "password_hash": password_hash("pw", os.environ[
                                                          "PHRSYNC_SANDBOX_PASSWORD_KEY"]),
                                                      "hospital_code": HCODE})).text
                h = {"Authorization": f"Bearer {tok}", "Content-Type": "application/json"}
                t0 = time.monotonic()
                rs = await asyncio.gather(*[c.post("/api/UpdatePHRv1", content=body, headers=h)
                                            for _ in range(clients)])
                codes: dict[int, int] = {}
                for r in rs:
                    codes[r.status_code] = codes.get(r.status_code, 0) + 1
                return codes, time.monotonic() - t0

        codes, took = asyncio.run(send())
        done.set()
        return codes, took, peak[0]
    finally:
        srv.terminate()
        srv.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)  # the sandbox's database: nothing to keep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slots", type=int, nargs="+", default=[0, 4], help="max_large_bodies values to measure")
    ap.add_argument("--clients", type=int, default=48)
    ap.add_argument("--mb", type=float, default=19)
    a = ap.parse_args()
    os.environ.update(PHRSYNC_SANDBOX_PASSWORD_KEY="bench-key", PHRSYNC_SANDBOX_SECRET="bench-secret")
    body, n = big_body(a.mb)
    print(f"machine: {describe()}")
    for slots in a.slots:
        codes, took, peak = one(slots, body, a.clients)
        print(f"max_large_bodies={slots}: {a.clients} × {len(body) / 1e6:.1f} MB ({n} encounters) at once → "
              f"{codes} in {took:.1f} s; server peak RSS {peak / 1e6:,.0f} MB")


if __name__ == "__main__":
    main()
