"""How fast the monitoring web answers on a big province: p50 / p95 / max per page, measured with a real HTTP
client (httpx) against ``phrsync web`` running as its own process. Goal: every page p95 < 300 ms at 5 million
encounters. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/web_bench.py --workdir data/web_bench                  # make 5,000,000, measure
    .venv/bin/python benchmarks/web_bench.py --reuse data/web_bench [--requests 30]     # measure what is there
    .venv/bin/python benchmarks/web_bench.py --workdir /tmp/wb --encounters 20000       # a small run
    .venv/bin/python benchmarks/web_bench.py --workdir data/web_bench --make-only       # make now, measure later

The province is made by the real path, each step timed: ``synth`` (the Sa Kaeo synthesizer) → ``import`` into
the staging store (one import per month of exports, as a province receives them) → ``build`` (validated payloads) → the build loaded into the outbox (the state store) → a real
``sync`` of ``--sync-facilities`` facilities to the local PHR server (which answers the agent's
OrganizationSummary questions, so those facilities have confirmed rows and "PHR holds" figures, and the PHR
centre view reads that server's store). Sending every payload of 5 M encounters through the local server would
take hours on this machine, so the other facilities stay as a build leaves them: loaded, waiting to be sent.
``--reuse DIR`` measures a province made before (its ``web_bench.json`` says how it was made).

Then ``phrsync --config DIR/phrsync.toml web`` serves it; the client signs in as a province admin (and as a
district viewer, whose overview is computed from that district's facilities), and asks each page ``--requests``
times, one request at a time, after ``--warmup`` untimed ones: the overview, the facilities table, the largest
facility's page, the runs, the PHR centre view, both exports and the chart JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import describe  # noqa: E402

GOAL_MS = 300.0
PASSWORD = secrets.token_urlsafe(18)  # this run's accounts only; never printed
MANIFEST = "web_bench.json"


# ---- making the province ----------------------------------------------------------------------------------

def _timed(label: str, steps: dict[str, float], fn: Any, *args: Any, **kw: Any) -> Any:
    t = time.perf_counter()
    out = fn(*args, **kw)
    steps[label] = round(time.perf_counter() - t, 1)
    print(f"  {label}: {steps[label]:,.1f} s", flush=True)
    return out


def make_province(work: Path, encounters: int, seed: int, sync_facilities: int, workers: int,
                  from_staging: bool = False, all_stages: bool = False) -> dict[str, Any]:
    """synth → import → build → outbox → a real sync of some facilities; returns what was made and how long
    each step took (also written to ``web_bench.json`` for ``--reuse``)."""
    from phrsync.config import Config
    from phrsync.delivery import outbox as ob
    from phrsync.phr.api import build_payloads
    from phrsync.synth import SynthOptions
    from phrsync.synth.api import synthesize

    work.mkdir(parents=True, exist_ok=True)
    steps: dict[str, float] = {}
    print(f"making a province of {encounters:,} encounters in {work}", flush=True)
    exports = work / "exports"
    opts = SynthOptions(province="27", encounters=encounters, seed=seed, dirty=0.01)
    if _same_synth(exports, opts):
        print(f"  synth: reusing {exports} (same options)", flush=True)
    else:
        _timed("synth", steps, synthesize, opts, exports, workers=workers)
    staging = work / "staging.duckdb"
    # everything but the zips (and, with --from-staging, the staging store) is made again: a store left by an
    # earlier run (or an earlier phrsync) is not this one
    kept = ("staging.duckdb",) if from_staging else ()
    for name in ("staging.duckdb", "staging.duckdb.wal", "outbox.sqlite", "outbox.sqlite-wal", "outbox.sqlite-shm",
                 "payloads.ndjson", "payloads.ndjson.summary.json", MANIFEST):
        if name not in kept:
            (work / name).unlink(missing_ok=True)
    shutil.rmtree(work / "sandbox", ignore_errors=True)
    if from_staging and staging.exists():
        print(f"  import: reusing {staging}", flush=True)
        imp = {"rows_loaded": None, "reused": True}
    else:
        imp = _timed("import", steps, _import_by_month, staging, exports)
    payloads = work / "payloads.ndjson"
    # the encounters only, unless asked: at 5 M the registers' part of a build (immunization registers) ran out of
    # DuckDB's 1 GB on this machine; the web's figures are the encounters'
    stages = {} if all_stages else {"stages": ("encounters",)}
    built = _timed("build", steps, build_payloads, Config(data_dir=work), payloads, staging=staging,
                   workers=workers, **stages).result
    state_url = f"sqlite:///{(work / 'outbox.sqlite').resolve()}"
    box = ob.Outbox(state_url)
    try:
        loaded = _timed("load outbox", steps, box.load_file, payloads).as_dict()
        sizes = box.counts()
    finally:
        box.close()
    by_size = sorted(sizes, key=lambda h: (-sum(sizes[h].values()), h))
    # spread over the province: every n-th facility by size, so neither only the largest nor only the smallest
    step = max(1, len(by_size) // max(1, sync_facilities))
    chosen = sorted(by_size[::step][:sync_facilities])
    sent = _timed("sync", steps, _sync_some, work, payloads, state_url, chosen)
    made = {"encounters_asked": encounters, "seed": seed, "rows_loaded": imp["rows_loaded"],
            "built": built.total("built"), "build_refused": built.total("refused"), "outbox": loaded,
            "synced_facilities": chosen, "sync": sent, "seconds": steps, "state_url": state_url,
            "made_at": time.time()}
    write_config(work)
    (work / MANIFEST).write_text(json.dumps(made, indent=2), encoding="utf-8")
    return made


def _same_synth(exports: Path, opts: Any) -> bool:
    """Zips of a previous run with the same options (their manifest says so): synthesizing again would make the
    same bytes."""
    try:
        m = json.loads((exports / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(m.get("options") == opts.to_dict())


def _import_by_month(staging: Path, exports: Path) -> dict[str, Any]:
    """Each month's zips as one import, as a province imports the exports that come in each month. (One import
    of all twelve months of 5 M encounters — 36 M rows — ran out of DuckDB's 256 MB while looking for repeated
    keys; see the report of issue 12.)"""
    from phrsync.f43.api import import_sources

    months: dict[str, list[Path]] = {}
    for z in sorted(exports.glob("*.zip")):
        months.setdefault(z.stem.rsplit("_", 1)[-1], []).append(z)
    total = {"rows_loaded": 0, "rows_quarantined": 0, "imports": 0}
    for month, zips in sorted(months.items()):
        t = time.perf_counter()
        d = import_sources(staging, zips).to_dict()
        total["rows_loaded"] += d["rows_loaded"]
        total["rows_quarantined"] += d["rows_quarantined"]
        total["imports"] += 1
        print(f"    {month}: {len(zips)} zips, {d['rows_loaded']:,} rows in {time.perf_counter() - t:.1f} s", flush=True)
    return total


def _sync_some(work: Path, payloads: Path, state_url: str, facilities: list[str]) -> dict[str, Any]:
    """The agent's real run (send, then reconcile with OrganizationSummary) for ``facilities``, one after the
    other, against the local PHR server in a thread; what the outbox already holds is sent (the build file is not
    read again: it was just loaded)."""
    from phrsync.delivery.agent import sync
    from phrsync.delivery.config import Credentials, DeliverySettings, Target
    from phrsync.sandbox.server import running
    from phrsync.sandbox.settings import SandboxConfig

    out: dict[str, Any] = {"sent": 0, "confirmed": 0, "refused": 0, "facilities": len(facilities)}
    with running(SandboxConfig(data_dir=work / "sandbox", rate_limit_per_minute=0)) as srv:
        pw = secrets.token_urlsafe(12)
        creds = {h: Credentials(f"u{h}", srv.add_user(f"u{h}", h, pw)) for h in facilities}
        settings = DeliverySettings(target=Target(name="sandbox", base_url=srv.base_url, timeout=30,
                                                  rate_per_minute=0, concurrency=16),
                                    state_url=state_url, facility_credentials=creds, agent_version="phrsync bench")
        for h in facilities:
            r = sync(settings, None, facility=h).as_dict()
            for k in ("sent", "confirmed", "refused"):
                out[k] += int(r.get(k) or 0)
            print(f"    {h}: sent {r.get('sent', 0):,}, refused {r.get('refused', 0):,}", flush=True)
    return out


def write_config(work: Path) -> Path:
    """The phrsync.toml ``phrsync web`` reads: everything in ``work``."""
    cfg = work / "phrsync.toml"
    cfg.write_text('data_dir = "."\n[delivery]\nstate_path = "outbox.sqlite"\n'
                   '[web]\nbuild_file = "payloads.ndjson"\nsandbox_data_dir = "sandbox"\n', encoding="utf-8")
    return cfg


# ---- measuring -------------------------------------------------------------------------------------------

@dataclass
class Figures:
    page: str
    path: str
    bytes: int
    times_ms: list[float]
    first_ms: float

    def line(self) -> str:
        t = sorted(self.times_ms)
        p95 = t[min(len(t) - 1, max(0, int(round(0.95 * len(t))) - 1))]
        ok = "ok" if p95 < GOAL_MS else "SLOW"
        return (f"{self.page:<36} {statistics.median(t):>8.1f} {p95:>8.1f} {max(t):>8.1f} {self.first_ms:>8.1f} "
                f"{self.bytes:>10,}  {ok}  {self.path}")

    def p95(self) -> float:
        t = sorted(self.times_ms)
        return t[min(len(t) - 1, max(0, int(round(0.95 * len(t))) - 1))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_web(cfg: Path, port: int) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).parent / "phrsync"
    cmd = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "phrsync"]),
           "--config", str(cfg), "web", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"phrsync web ended at once: {err[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/login", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("phrsync web did not answer within 60 s")


def add_accounts(state_url: str, district: str) -> None:
    from phrsync.web.auth import AuthStore

    store = AuthStore(state_url)
    try:
        store.add_user("bench-admin", PASSWORD, "admin", client="bench")
        store.add_user("bench-district", PASSWORD, "district", district=district, client="bench")
    finally:
        store.close()


def signed_in(base: str, username: str) -> httpx.Client:
    """A client with a session, through the real login form (its CSRF token and cookie)."""
    import re

    c = httpx.Client(base_url=base, timeout=60, follow_redirects=False)
    form = c.get("/login")
    m = re.search(r'name="csrf" value="([^"]+)"', form.text)
    if not m:
        raise RuntimeError("the login page has no CSRF token")
    r = c.post("/login", data={"username": username, "password": PASSWORD, "csrf": m.group(1), "next": "/"})
    if r.status_code != 303 or "phrsync_session" not in c.cookies:
        raise RuntimeError(f"login as {username} failed: HTTP {r.status_code}")
    return c


def measure(c: httpx.Client, page: str, path: str, n: int, warmup: int) -> Figures:
    t = time.perf_counter()
    r = c.get(path)
    first = (time.perf_counter() - t) * 1000
    if r.status_code != 200:
        raise RuntimeError(f"{path}: HTTP {r.status_code}: {r.text[:300]}")
    for _ in range(max(0, warmup - 1)):
        c.get(path)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        r = c.get(path)
        times.append((time.perf_counter() - t) * 1000)
        if r.status_code != 200:
            raise RuntimeError(f"{path}: HTTP {r.status_code}")
    return Figures(page, path, len(r.content), times, first)


def store_sizes(work: Path) -> dict[str, Any]:
    """The data behind the figures: encounters in staging, rows in the outbox, facilities, file sizes."""
    import duckdb
    from sqlalchemy import create_engine, func, select

    from phrsync.delivery import outbox as ob

    con = duckdb.connect(str(work / "staging.duckdb"), read_only=True)
    try:
        encounters = con.execute("SELECT count(*) FROM f43_service").fetchone()[0]  # type: ignore[index]
        facilities = con.execute('SELECT count(DISTINCT "HOSPCODE") FROM f43_service').fetchone()[0]  # type: ignore[index]
    finally:
        con.close()
    eng = create_engine(f"sqlite:///{(work / 'outbox.sqlite').resolve()}")
    try:
        with eng.connect() as c:
            rows = dict(c.execute(select(ob.outbox.c.status, func.count()).group_by(ob.outbox.c.status)).all())
    finally:
        eng.dispose()
    mb = {p.name: round(p.stat().st_size / 2**20) for p in (work / "staging.duckdb", work / "outbox.sqlite",
                                                            work / "payloads.ndjson") if p.exists()}
    return {"encounters": encounters, "facilities": facilities, "outbox_rows": rows, "mb": mb}


def largest_facility(work: Path) -> tuple[str, str]:
    """(the facility with the most encounters, its district code): the heaviest facility page."""
    import duckdb

    con = duckdb.connect(str(work / "staging.duckdb"), read_only=True)
    try:
        h = con.execute('SELECT "HOSPCODE", count(*) n FROM f43_service GROUP BY 1 ORDER BY n DESC, 1 '
                        "LIMIT 1").fetchone()[0]  # type: ignore[index]
    finally:
        con.close()
    from phrsync.web import model

    info = model.directory(model.Sources(state_url=f"sqlite:///{(work / 'outbox.sqlite').resolve()}",
                                         staging=work / "staging.duckdb")).get(str(h))
    return str(h), str(info.district_code if info and info.district_code else "")


def run(work: Path, n: int, warmup: int) -> None:
    made = json.loads((work / MANIFEST).read_text(encoding="utf-8"))
    sizes = store_sizes(work)
    h, district = largest_facility(work)
    add_accounts(made["state_url"], district)
    cfg = write_config(work)
    port = free_port()
    print(f"data: {sizes['encounters']:,} encounters in staging, {sizes['facilities']} facilities, outbox rows "
          f"{json.dumps(sizes['outbox_rows'])}, files MB {json.dumps(sizes['mb'])}", flush=True)
    print(f"made in: {json.dumps(made['seconds'])} s; synced {len(made['synced_facilities'])} facilities "
          f"({made['sync']['sent']:,} payloads sent)", flush=True)
    proc = start_web(cfg, port)
    base = f"http://127.0.0.1:{port}"
    figs: list[Figures] = []
    try:
        admin = signed_in(base, "bench-admin")
        pages = [("overview", "/"), ("facilities", "/facilities"), ("facilities (filtered, sorted)",
                 f"/facilities?district={district}&sort=his&dir=desc"), (f"facility {h}", f"/facility/{h}"),
                 ("runs", "/runs"), ("PHR centre", "/phr"), ("export CSV", "/facilities.csv"),
                 ("export XLSX", "/facilities.xlsx"), ("chart overview", "/api/chart/overview"),
                 ("chart districts", "/api/chart/districts"), (f"chart facility {h}", f"/api/chart/facility/{h}")]
        for page, path in pages:
            figs.append(measure(admin, f"admin: {page}", path, n, warmup))
        district_user = signed_in(base, "bench-district")
        for page, path in (("overview", "/"), ("chart overview", "/api/chart/overview")):
            figs.append(measure(district_user, f"district {district}: {page}", path, n, warmup))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(f"\n{n} requests per page after {warmup} warm-up, one at a time (ms; 'first' = the first request after "
          f"start-up)")
    print(f"{'page':<36} {'p50':>8} {'p95':>8} {'max':>8} {'first':>8} {'bytes':>10}")
    for f in figs:
        print(f.line())
    slow = [f.page for f in figs if f.p95() >= GOAL_MS]
    print(f"\ngoal p95 < {GOAL_MS:.0f} ms on every page: " + ("met" if not slow else "NOT met: " + ", ".join(slow)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, help="where to make the province (default: data/web_bench)")
    ap.add_argument("--reuse", type=Path, metavar="DIR", help="measure the province made before in DIR")
    ap.add_argument("--encounters", type=int, default=5_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sync-facilities", type=int, default=3,
                    help="facilities really sent to the local PHR server (the others stay waiting to be sent)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="synth and build processes")
    ap.add_argument("--requests", type=int, default=30, help="timed requests per page")
    ap.add_argument("--warmup", type=int, default=2, help="untimed requests per page first")
    ap.add_argument("--make-only", action="store_true", help="make the province and stop (measure later with --reuse)")
    ap.add_argument("--from-staging", action="store_true",
                    help="keep the zips and the staging store of an earlier run; build, load and sync again")
    ap.add_argument("--all-stages", action="store_true", help="build the registers too, not only the encounters")
    args = ap.parse_args()
    print("machine:", describe(), flush=True)
    print(f"python {platform.python_version()} ({sys.executable})", flush=True)
    if args.reuse:
        work = args.reuse
        if not (work / MANIFEST).exists():
            raise SystemExit(f"{work / MANIFEST} not found: make the province first (--workdir)")
    else:
        work = args.workdir or ROOT / "data" / "web_bench"
        make_province(work, args.encounters, args.seed, args.sync_facilities, args.workers, args.from_staging,
                      args.all_stages)
        if args.make_only:
            return
    run(work, args.requests, args.warmup)


if __name__ == "__main__":
    main()
