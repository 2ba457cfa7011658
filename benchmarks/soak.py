"""Soak: the agent against a faulty sandbox, both killed with ``kill -9`` again and again, on loopback only, for a
bounded time. At the end it checks what must hold whatever happened:

- the server holds exactly the build: as many encounters, and the same content (a SHA-256 over every
  ``ref`` and its canonical encounter JSON, on both sides);
- every outbox row is confirmed;
- nothing was sent twice after its confirmation: the last write the server made of each encounter is no later
  than the moment the harness first saw its row ``sent`` or ``confirmed`` in the outbox (the outbox is polled
  about every 0.2 s; a resend of an acknowledged upload would write it again, later).

    .venv/bin/python benchmarks/soak.py [--seconds 180] [--facilities 3] [--n 1500] [--faults 0.2]
        [--kill-every 4-12] [--seed 1] [--keep]

The agent runs as a child process (the agent library, :func:`phrsync.delivery.agent.sync_payloads`, with
verification on), and so does the server (``phrsync sandbox serve`` with ``--fault-500/502/503/429/drop``).
Timeouts are not injected: the sandbox's timeout fault stores its request after the client gave up, which is a
second write of the same upload that no agent sent twice. Exit 0 when every check holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from sync_bench import add_users, build_file, free_port, wait  # noqa: E402

KEY, SECRET = "soak-key", "soak-secret"


def agent_child(nd: str, url: str, state: str, hcodes: str) -> None:
    """One agent run (a child process the harness may kill at any moment); exits with the run's exit code."""
    from phrsync.delivery.agent import sync_payloads
    from phrsync.delivery.config import Credentials, password_hash

    creds = {h: Credentials(f"u{h}", password_hash("pw", KEY)) for h in hcodes.split(",")}
    res = sync_payloads(nd, url, creds, state, concurrency=8, timeout=30, verify=True, status_interval=30)
    sys.exit(res.exit_code)


def build_digest(nd: Path) -> tuple[int, str, set[str]]:
    """(encounters, SHA-256 over sorted ref + canonical encounter JSON, outbox keys) of a build file."""
    from phrsync.sandbox import codec

    items: list[tuple[str, bytes]] = []
    keys: set[str] = set()
    with nd.open("rb") as fh:
        for line in fh:
            rec = orjson.loads(line)
            keys.add(rec["key"])
            for e in rec["payload"]["Encounter"]:
                items.append((e["identifier"][0]["value"], codec.dumps(e)))
    return len(items), _digest(items), keys


def _digest(items: list[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    for ref, blob in sorted(items):
        h.update(ref.encode() + b"\0" + blob + b"\n")
    return h.hexdigest()


def server_state(db: Path) -> tuple[int, str, dict[str, float]]:
    """(encounters, the same SHA-256, last write time per ref) of what the sandbox stored."""
    from phrsync.sandbox import codec

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        rows = con.execute("SELECT ref, data, received_at FROM sbx_encounters").fetchall()
    finally:
        con.close()
    items = [(ref, codec.dumps(codec.unpack(data))) for ref, data, _ in rows]
    return len(items), _digest(items), {ref: t for ref, _, t in rows}


def outbox_rows(state: Path) -> dict[str, tuple[str, str]]:
    """key → (status, ref) in the agent's outbox; empty while it does not exist yet."""
    if not state.exists():
        return {}
    try:
        con = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=5)
        try:
            return {k: (s, r) for k, s, r in con.execute("SELECT key, status, ref FROM delivery_outbox")}
        finally:
            con.close()
    except sqlite3.Error:
        return {}  # created or locked right now: the next poll sees it


class Harness:
    def __init__(self, a: argparse.Namespace, tmp: Path) -> None:
        self.a = a
        self.tmp = tmp
        self.rng = random.Random(a.seed)
        self.hcodes = tuple(f"{10100 + 11 * i:05d}" for i in range(a.facilities))
        self.data = tmp / "sandbox"
        self.nd = tmp / "build.ndjson"
        self.state = tmp / "outbox.sqlite"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "PHRSYNC_SANDBOX_PASSWORD_KEY": KEY, "PHRSYNC_SANDBOX_SECRET": SECRET}
        self.server: subprocess.Popen[bytes] | None = None
        self.agent: subprocess.Popen[bytes] | None = None
        self.first_acked: dict[str, float] = {}  # ref → when its row was first seen sent/confirmed
        self.kills = {"agent": 0, "server": 0}
        self.agent_exits: list[int] = []
        self.server_starts = 0

    def start_server(self) -> None:
        p = self.a.faults / 5
        self.server = subprocess.Popen(
            [sys.executable, "-m", "phrsync", "sandbox", "--data-dir", str(self.data), "serve", "--port",
             str(self.port), "--rate-limit", "0", "--fault-500", f"{p}", "--fault-502", f"{p}", "--fault-503",
             f"{p}", "--fault-429", f"{p}", "--fault-drop", f"{p}", "--seed", str(self.rng.randrange(1 << 30))],
            env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait(self.port)
        self.server_starts += 1

    def start_agent(self) -> None:
        self.agent = subprocess.Popen(
            [sys.executable, __file__, "--agent-child", str(self.nd), self.url, str(self.state), ",".join(self.hcodes)],
            env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def poll_outbox(self) -> dict[str, tuple[str, str]]:
        rows = outbox_rows(self.state)
        now = time.time()
        for status, ref in rows.values():
            if status in ("sent", "confirmed") and ref not in self.first_acked:
                self.first_acked[ref] = now
        return rows

    def kill(self, which: str) -> None:
        proc = self.agent if which == "agent" else self.server
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            self.kills[which] += 1

    def soak(self) -> None:
        """Kill the agent or the server every few seconds until the time is up; restart whatever is down."""
        lo, hi = (float(x) for x in self.a.kill_every.split("-"))
        end = time.monotonic() + self.a.seconds
        next_kill = time.monotonic() + self.rng.uniform(lo, hi)
        while time.monotonic() < end:
            if self.server is None or self.server.poll() is not None:
                self.start_server()
            if self.agent is None or self.agent.poll() is not None:
                if self.agent is not None and self.agent.returncode >= 0:
                    self.agent_exits.append(self.agent.returncode)
                self.start_agent()
            self.poll_outbox()
            if time.monotonic() >= next_kill:
                self.kill(self.rng.choice(("agent", "agent", "server")))
                next_kill = time.monotonic() + self.rng.uniform(lo, hi)
            time.sleep(0.2)

    def finish(self) -> int:
        """No more kills: the agent runs (again) until one run confirms everything, within a bounded time."""
        deadline = time.monotonic() + self.a.finish_seconds
        while time.monotonic() < deadline:
            if self.server is None or self.server.poll() is not None:
                self.start_server()
            if self.agent is None or self.agent.poll() is not None:
                if self.agent is not None:
                    self.agent_exits.append(self.agent.returncode)
                    rows = self.poll_outbox()
                    if self.agent.returncode == 0 and rows and all(s == "confirmed" for s, _ in rows.values()):
                        return 0
                self.start_agent()
            self.poll_outbox()
            time.sleep(0.2)
        self.kill("agent")
        return 1

    def resend_one(self) -> None:
        """Send one acknowledged payload again, as a faulty agent would (``--inject-resend``: the last check
        must then fail, which shows it is not vacuous)."""
        import httpx

        from phrsync.delivery.config import password_hash

        if self.server is None or self.server.poll() is not None:
            self.start_server()
        rec = orjson.loads(self.nd.open("rb").readline())
        h = rec["hospcode"]
        with httpx.Client(base_url=self.url, timeout=30) as c:
            for _ in range(50):  # through the injected faults (dropped connections included)
                try:
                    tok = c.post("/token", params={"Action": "get_moph_access_token", "user": f"u{h}",
                                                   "password_hash": password_hash("pw", KEY), "hospital_code": h})
                    if tok.status_code != 200:
                        continue
                    r = c.post("/api/UpdatePHRv1", content=orjson.dumps(rec["payload"]),
                               headers={"Authorization": f"Bearer {tok.text}", "Content-Type": "application/json"})
                except httpx.TransportError:
                    continue
                if r.status_code == 200:
                    return
        raise RuntimeError("could not resend")

    def stop(self) -> None:
        for proc in (self.agent, self.server):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=180, help="how long kills go on")
    ap.add_argument("--finish-seconds", type=float, default=300, help="then at most this long to confirm all")
    ap.add_argument("--facilities", type=int, default=3)
    ap.add_argument("--n", type=int, default=1500, help="encounters per facility")
    ap.add_argument("--faults", type=float, default=0.2, help="share of /api requests that fail (500, 502, 503, "
                                                              "429, dropped connection, one fifth each)")
    ap.add_argument("--kill-every", default="4-12", help="seconds between kills, drawn uniformly from lo-hi")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--inject-resend", action="store_true",
                    help="send one acknowledged payload again at the end: the duplicate check must fail")
    ap.add_argument("--agent-child", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.agent_child:
        agent_child(*a.agent_child)
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="phrsync-soak-"))
    h = Harness(a, tmp)
    build_file(h.nd, a.n, hcodes=h.hcodes)
    n_enc, want_hash, keys = build_digest(h.nd)
    os.environ.update(PHRSYNC_SANDBOX_PASSWORD_KEY=KEY, PHRSYNC_SANDBOX_SECRET=SECRET)
    add_users(h.data, h.hcodes)
    print(f"soak: {n_enc} encounters of {a.facilities} facilities, faults {a.faults:.0%} (500/502/503/429/drop), "
          f"kill -9 every {a.kill_every} s for {a.seconds:.0f} s, loopback {h.url}, folder {tmp}")
    t0 = time.monotonic()
    try:
        h.soak()
        print(f"soak: killed the agent {h.kills['agent']} and the server {h.kills['server']} times in "
              f"{time.monotonic() - t0:.0f} s; agent runs that ended by themselves: {h.agent_exits or 'none'}")
        t1 = time.monotonic()
        finished = h.finish()
        print(f"soak: after the kills, {time.monotonic() - t1:.0f} s until a run confirmed everything"
              f"{'' if finished == 0 else ' — NOT reached within --finish-seconds'}; agent exits {h.agent_exits}")
        if a.inject_resend:
            time.sleep(0.05)
            h.resend_one()
    finally:
        h.stop()
    got_n, got_hash, written = server_state(h.data / "sandbox.sqlite")
    rows = outbox_rows(h.state)
    statuses: dict[str, int] = {}
    for s, _ in rows.values():
        statuses[s] = statuses.get(s, 0) + 1
    late = {ref: written[ref] - t for ref, t in h.first_acked.items() if ref in written and written[ref] > t}
    checks = [
        (f"server holds {got_n} encounters, the build {n_enc}", got_n == n_enc),
        (f"content hash: server {got_hash[:16]}…, build {want_hash[:16]}…", got_hash == want_hash),
        (f"outbox rows {len(rows)} for {len(keys)} build keys, statuses {statuses}",
         set(rows) == keys and statuses == {"confirmed": len(keys)}),
        (f"written again after its acknowledgement: {len(late)} of {len(h.first_acked)} acknowledged"
         + (f" (e.g. {next(iter(late))} +{max(late.values()):.2f} s)" if late else ""), not late),
    ]
    for text, ok in checks:
        print(f"soak: {'ok  ' if ok else 'FAIL'} {text}")
    ok = finished == 0 and all(c for _, c in checks)
    print(f"soak: {'PASS' if ok else 'FAIL'} in {time.monotonic() - t0:.0f} s")
    if not a.keep:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
