"""The agent's CPU per upload in the HTTP layer alone, for each way of sending through httpx, measured in turns
(A B C D, A B C D, …) against one sandbox process so that every way sees the same machine load; asserts nothing.

    .venv/bin/python benchmarks/http_cpu.py [--n 2000] [--rounds 5] [--concurrency 16]

Ways: ``request`` (``client.request``: builds, merges and sends), ``send`` (a prepared ``httpx.Request``
through ``client.send``), ``nocookie`` (``send`` on a client without a cookie jar), ``transport`` (the prepared
request straight to the client's ``httpx.AsyncHTTPTransport``, the client's auth/redirect/cookie layers
skipped) on httpcore's default sockets (``anyio``) or on the agent's own asyncio sockets (``transport``:
``phrsync.delivery.netio``, what the agent does now). Each upload is the same valid UpdatePHRv1 payload; the server's answer is read whole.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import describe  # noqa: E402
from sync_bench import FIXTURE, HCODE, add_users, free_port, wait  # noqa: E402

from phrsync.delivery.auth import TokenProvider  # noqa: E402
from phrsync.delivery.config import Credentials, password_hash  # noqa: E402
from phrsync.delivery.connect import new_client, prepared, send_direct  # noqa: E402

WAYS = ("request", "send", "nocookie", "anyio", "transport")


async def run(way: str, url: str, bearer: str, body: bytes, n: int, conc: int) -> float:
    """CPU seconds per upload for ``n`` uploads over ``conc`` clients of one connection each."""
    import ssl

    import httpx

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if way in ("nocookie", "anyio", "transport"):  # the agent's own clients: no cookie jar, their transport at hand
        clients = [new_client(url, connections=1, timeout=30, verify=ctx, user_agent="bench",
                              asyncio_sockets=way == "transport") for _ in range(conc)]
    else:
        clients = [httpx.AsyncClient(base_url=url, timeout=30, verify=ctx, headers={"User-Agent": "bench"},
                                     limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))
                   for _ in range(conc)]
    target = httpx.URL(url + "/api/UpdatePHRv1")
    headers = {"Authorization": bearer, "Content-Type": "application/json"}
    left = [n]

    async def worker(c: httpx.AsyncClient) -> None:
        while left[0] > 0:
            left[0] -= 1
            if way == "request":
                r = await c.request("POST", target, content=body, headers=headers)
            elif way in ("anyio", "transport"):
                r = await send_direct(c, prepared(c, "POST", target, body, headers))
            else:
                r = await c.send(prepared(c, "POST", target, body, headers))
            assert r.status_code == 200, r.text[:200]

    try:
        await asyncio.gather(*(worker(c) for c in clients))  # warm: connections open
        left[0] = n
        c0 = time.process_time()
        await asyncio.gather(*(worker(c) for c in clients))
        return (time.process_time() - c0) / n
    finally:
        for c in clients:
            await c.aclose()


async def login(url: str) -> str:
    import httpx

    async with httpx.AsyncClient() as c:
        tp = TokenProvider(c, url + "/token?Action=get_moph_access_token",
                           lambda h: Credentials(f"u{HCODE}", password_hash("pw", "bench-key")))
        return await tp.bearer(HCODE, "UpdatePHRv1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=16)
    a = ap.parse_args()
    import subprocess

    import uvloop

    tmp = Path(tempfile.mkdtemp(prefix="http-cpu-"))
    env = {**os.environ, "PHRSYNC_SANDBOX_PASSWORD_KEY": "bench-key", "PHRSYNC_SANDBOX_SECRET": "bench-secret"}
    os.environ.update(PHRSYNC_SANDBOX_PASSWORD_KEY="bench-key", PHRSYNC_SANDBOX_SECRET="bench-secret")
    add_users(tmp / "sbx", (HCODE,))
    port = free_port()
    srv = subprocess.Popen([sys.executable, "-m", "phrsync", "sandbox", "--data-dir", str(tmp / "sbx"), "serve",
                            "--port", str(port), "--rate-limit", "0"], env=env, cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"machine: {describe()}")
    try:
        wait(port)
        url = f"http://127.0.0.1:{port}"
        p = orjson.loads(FIXTURE.read_bytes())
        p["managingOrganization"]["identifier"]["value"] = HCODE
        body = orjson.dumps(p)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            print(f"event loop: {type(runner.get_loop()).__module__}")
            bearer = runner.run(login(url))
            got: dict[str, list[float]] = {w: [] for w in WAYS}
            for _ in range(a.rounds):
                for w in WAYS:
                    got[w].append(runner.run(run(w, url, bearer, body, a.n, a.concurrency)))
        base = statistics.median(got["request"])
        for w in WAYS:
            med = statistics.median(got[w])
            print(f"http: {w:<9} {1e6 * med:5.0f} µs CPU per upload (median of {a.rounds} × {a.n}; min "
                  f"{1e6 * min(got[w]):.0f}) {100 * (med - base) / base:+.0f} % against client.request")
    finally:
        srv.terminate()
        srv.wait(timeout=30)


if __name__ == "__main__":
    main()
