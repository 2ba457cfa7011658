"""The agent against the local PHR server over real HTTP with injected faults (≥ 10%: 5xx, 429, timeouts,
dropped connections) and a ``kill -9`` of the agent mid-run: the server must end holding exactly the
expected encounters, every outbox row confirmed; an unchanged second run sends nothing; a run after changing
one payload sends exactly that one; no password, token or full CID in any log."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select
from test_sandbox_support import PASSWORD_KEY, make_cid, update_payload

from phrsync.phr.mapping import key_for
from phrsync.sandbox import codec, store
from phrsync.sandbox.server import SandboxThread, running
from phrsync.sandbox.settings import FaultConfig, SandboxConfig

HCODES = ("10699", "10700")
N = 240
PASSWORDS = {"10699": "pw-alpha-10699-secret", "10700": "pw-beta-10700-secret"}


def payloads(n: int, weight_of: dict[int, float] | None = None) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        h = HCODES[i % 2]
        w = (weight_of or {}).get(i, 50 + i % 40)
        p = update_payload(h, make_cid(1000 + i), f"VN{i:06d}", day=f"2025-02-{1 + i % 12:02d}", weight=w)
        out.append({"key": key_for("UpdatePHRv1", p), "endpoint": "UpdatePHRv1", "hospcode": h, "payload": p})
    return out


def write_ndjson(path: Path, items: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(i) + b"\n" for i in items))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SandboxThread, Path, dict[str, str]]]:
    d = tmp_path_factory.mktemp("deliv")
    faults = FaultConfig(p500=0.03, p502=0.02, p503=0.02, p429=0.02, retry_after=1, p_timeout=0.02,
                         timeout_seconds=1.5, p_drop=0.02, latency_ms=15, seed=11)
    cfg = SandboxConfig(data_dir=d / "sbx", password_key=PASSWORD_KEY, rate_limit_per_minute=0, faults=faults)
    with running(cfg) as st:
        for h in HCODES:
            st.add_user(f"user{h}", h, PASSWORDS[h])
        (d / "phrsync.toml").write_text(
            f'data_dir = "data"\n[delivery]\ntarget = "local"\n'
            f'[delivery.facilities.10699]\nuser = "user10699"\n[delivery.facilities.10700]\nuser = "user10700"\n'
            f'[targets.local]\nbase_url = "{st.base_url}"\ntimeout = 1.0\nconcurrency = 3\nrate_per_minute = 0\n'
            f'backoff_base = 0.05\nbackoff_max = 0.5\nbreaker_cooldown = 0.5\nstatus_interval = 5\n',
            encoding="utf-8")
        e = {**os.environ, "PHRSYNC_PHR_PASSWORD_KEY": PASSWORD_KEY,
             "PHRSYNC_PHR_PASSWORD_10699": PASSWORDS["10699"], "PHRSYNC_PHR_PASSWORD_10700": PASSWORDS["10700"]}
        e.pop("PHRSYNC_CONFIG", None)
        yield st, d, e


def agent(d: Path, e: dict[str, str], ndjson: Path, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "phrsync", "--config", str(d / "phrsync.toml"), "sync", "-i", str(ndjson),
           "--json", "--log-json", "-v"]
    return subprocess.Popen(cmd, cwd=d, env=e, stdout=subprocess.PIPE, stderr=log.open("ab"))


def finish(p: subprocess.Popen[bytes]) -> tuple[int, dict[str, Any]]:
    out, _ = p.communicate(timeout=240)
    return p.returncode, json.loads(out)


def state_counts(d: Path) -> dict[str, int]:
    db = d / "data" / "delivery" / "outbox.sqlite"
    if not db.exists():
        return {}
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return dict(con.execute("SELECT status, count(*) FROM delivery_outbox GROUP BY status").fetchall())
        finally:
            con.close()
    except sqlite3.OperationalError:
        return {}


def server_encounters(st: SandboxThread) -> dict[str, dict[str, Any]]:
    rows = st.sandbox.store.read(lambda c: c.execute(select(store.encounters.c.ref, store.encounters.c.data)).all())
    return {r[0]: codec.unpack(r[1]) for r in rows}


def expect_server(st: SandboxThread, items: list[dict[str, Any]]) -> None:
    held = server_encounters(st)
    want = {i["payload"]["Encounter"][0]["identifier"][0]["value"]: i["payload"] for i in items}
    assert sorted(held) == sorted(want)  # the primary key is the ref: equal key sets = none lost, none extra
    for ref, enc in held.items():
        assert enc["vital_signs"]["body_weight_kg"] == want[ref]["Encounter"][0]["vital_signs"]["body_weight_kg"]
        assert enc["period"] == want[ref]["Encounter"][0]["period"]


def test_faults_kill9_then_unchanged_then_one_change(env: tuple[SandboxThread, Path, dict[str, str]]) -> None:
    st, d, e = env
    items = payloads(N)
    nd = d / "payloads.ndjson"
    write_ndjson(nd, items)
    log = d / "agent.log"

    # 1. first agent, killed with SIGKILL once a part of the outbox is through
    p = agent(d, e, nd, log)
    deadline = time.monotonic() + 120
    while True:
        c = state_counts(d)
        done = c.get("sent", 0) + c.get("confirmed", 0)
        if done >= N // 5:
            break
        assert p.poll() is None, "the agent ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert p.poll() is None
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    assert p.returncode == -signal.SIGKILL
    killed_at = state_counts(d)
    assert killed_at.get("pending", 0) + killed_at.get("sending", 0) > 0  # really mid-run

    # 2. restart: finishes everything
    code, res = finish(agent(d, e, nd, log))
    assert code == 0, res
    assert res["loaded"] == {"new": 0, "changed": 0, "unchanged": N, "total": N, "missing": 0}
    assert res["in_doubt"] == killed_at.get("sending", 0)
    assert state_counts(d) == {"confirmed": N}
    codes = res["status_codes"]
    assert sum(v for k, v in codes.items() if k != "200") > 0  # faults were really injected and survived
    expect_server(st, items)
    history = st.sandbox.plan.history if hasattr(st.sandbox, "plan") else None
    assert history is None or len(history) > 0

    # 3. nothing changed: nothing sent
    code, res = finish(agent(d, e, nd, log))
    assert code == 0, res
    assert res["attempted"] == 0 and res["sent"] == 0 and res["confirmed"] == 0
    assert res["loaded"]["unchanged"] == N
    # the restart above did the full day-by-day check; this run has no news, so PHR is asked nothing
    assert res["reconcile"]["days"] == 0 and not res["reconcile"]["full"]

    # 4. one payload of N changed (≈ 0.1–0.5%): exactly that one is sent
    changed = payloads(N, weight_of={7: 99.5})
    write_ndjson(nd, changed)
    code, res = finish(agent(d, e, nd, log))
    assert code == 0, res
    assert res["loaded"]["changed"] == 1 and res["attempted"] == 1 and res["sent"] == 1
    assert res["reconcile"]["days"] == 1 and res["reconcile"]["confirmed"] == 1  # only the changed day
    expect_server(st, changed)
    assert state_counts(d) == {"confirmed": N}

    # 5. no password, password hash, token or full CID in any log line
    text = log.read_text(encoding="utf-8")
    assert text.strip(), "the agent logged nothing at all"
    for line in text.splitlines():
        json.loads(line)  # --log-json: one JSON object per line
    from phrsync.delivery.config import password_hash

    for pw in PASSWORDS.values():
        assert pw not in text
        assert password_hash(pw, PASSWORD_KEY) not in text
    assert PASSWORD_KEY not in text
    assert not re.search(r"eyJ[A-Za-z0-9_-]{10,}\.", text)  # no JWT
    assert not re.search(r"(?<!\d)\d{13}(?!\d)", text)  # no full CID
