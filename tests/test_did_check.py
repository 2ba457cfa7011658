"""``did check`` against the sandbox: answers kept per CID, nobody with a Digital ID asked again, re-checks after
recheck_days, 429 and 5xx retried, 403 stops with a clear message, a run killed with ``kill -9`` and started again
asks nobody already answered and misses no one, and no full CID in any output."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from f43files import cid

from phrsync.delivery.config import Credentials
from phrsync.did.check import CheckOptions, run_check
from phrsync.did.store import CITIZEN, PERSONNEL, SOURCE_IMPORT, DidStore, Person
from phrsync.errors import AuthError
from phrsync.sandbox import auth, ekyc, jwt
from phrsync.sandbox.server import running
from phrsync.sandbox.settings import FaultConfig, SandboxConfig

H = "00017"  # the provincial office's account
PW = "a-long-test-password"


def _people(n: int, start: int = 1) -> list[Person]:
    return [Person(cid(i), "10699", "2701", f"คน {i}") for i in range(start, start + n)]


def _opts(srv, cfg: SandboxConfig, user: str = "did", **kw) -> CheckOptions:
    pw_hash = jwt.password_hash(PW, cfg.hash_key())
    base = dict(target="sandbox", base_url=srv.base_url, token_url=srv.base_url + "/token?Action=get_moph_access_token",
                account_hospcode=H, credentials=Credentials(user, pw_hash), concurrency=4, rate_per_minute=0,
                max_attempts=8, backoff_base=0.01, backoff_max=0.05, timeout=10)
    base.update(kw)
    return CheckOptions(**base)


@pytest.fixture
def store(tmp_path: Path) -> DidStore:
    st = DidStore(f"sqlite:///{tmp_path / 'state.sqlite'}")
    yield st
    st.close()


def test_check_answers_and_rechecks(tmp_path: Path, store: DidStore) -> None:
    cfg = SandboxConfig(data_dir=tmp_path / "sbx", did_shares={"2700": 0.4}, rate_limit_per_minute=0)
    store.replace_people(CITIZEN, SOURCE_IMPORT, _people(60), file="x.csv")
    store.replace_people(PERSONNEL, SOURCE_IMPORT, _people(5), file="y.csv")  # the same CIDs: asked once
    with running(cfg) as srv:
        auth.add_user(srv.sandbox.store, cfg, "did", H, PW)
        res = run_check(store, _opts(srv, cfg))
        assert (res.due, res.answered, res.failed) == (60, 60, 0)
        expected = {cid(i): ekyc.answer(cid(i), cfg.did_shares, cfg.did_default_share) for i in range(1, 61)}
        got = {c: store.check_of(c)["result"] for c in expected}
        assert got == expected
        with_did = sum(1 for v in expected.values() if v >= 1)
        assert res.with_did == with_did and 0 < with_did < 60
        assert run_check(store, _opts(srv, cfg)).due == 0  # nobody is asked twice within recheck_days
        # 31 days later only those without one are asked again
        later = time.time() + 31 * 86400
        again = run_check(store, _opts(srv, cfg), now=later)
        assert again.due == 60 - with_did and again.with_did == 0
    snaps = store.snapshots(CITIZEN)
    assert len(snaps) == 3 and snaps[0].numerator == with_did and snaps[0].denominator == 60


def test_429_and_5xx_are_retried(tmp_path: Path, store: DidStore, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    faults = FaultConfig(p429=0.15, p500=0.1, p503=0.1, retry_after=0, seed=3)
    cfg = SandboxConfig(data_dir=tmp_path / "sbx", rate_limit_per_minute=0, faults=faults)
    store.replace_people(CITIZEN, SOURCE_IMPORT, _people(80), file="x.csv")
    with running(cfg) as srv:
        auth.add_user(srv.sandbox.store, cfg, "did", H, PW)
        res = run_check(store, _opts(srv, cfg, max_attempts=12))
        history = list(srv.sandbox.plan.history)
    assert res.answered == 80 and res.failed == 0
    assert res.retries > 0 and res.status_codes.get("429", 0) > 0 and res.status_codes.get("500", 0) > 0
    assert {"429", "500", "503"} <= set(history)
    assert caplog.text and not any(cid(i) in caplog.text for i in range(1, 81))  # no full CID in any log line


def test_the_sandbox_rate_limit_answers_429_and_the_run_paces_through_it(tmp_path: Path, store: DidStore) -> None:
    cfg = SandboxConfig(data_dir=tmp_path / "sbx", ekyc_rate_limit_per_minute=30)
    store.replace_people(CITIZEN, SOURCE_IMPORT, _people(34), file="x.csv")
    with running(cfg) as srv:
        auth.add_user(srv.sandbox.store, cfg, "did", H, PW)
        res = run_check(store, _opts(srv, cfg, max_attempts=1, timeout=60))
    assert res.answered == 30 and res.failed == 4 and res.status_codes["429"] == 4, res
    assert len(store.to_check()) == 4  # the four refused stay due for the next run


def test_403_without_moph_idp_api_stops_with_a_clear_message(tmp_path: Path, store: DidStore) -> None:
    cfg = SandboxConfig(data_dir=tmp_path / "sbx")
    store.replace_people(CITIZEN, SOURCE_IMPORT, _people(20), file="x.csv")
    with running(cfg) as srv:
        auth.add_user(srv.sandbox.store, cfg, "noidp", H, PW, permissions=(auth.PERM_UPLOAD,))
        with pytest.raises(AuthError) as e:
            run_check(store, _opts(srv, cfg, user="noidp"))
    assert "MOPH_IDP_API" in e.value.th and "MOPH_IDP_API" in e.value.en and "403" in str(e.value)
    assert e.value.exit_code == 4
    assert len(store.to_check()) == 20  # nobody was marked answered


def _config(tmp_path: Path, base_url: str, rate: int) -> Path:
    p = tmp_path / "phrsync.toml"
    p.write_text(f'[delivery]\ntarget = "sandbox"\nuser = "did"\n\n[targets.sandbox]\nbase_url = "{base_url}"\n\n'
                 f'[did]\naccount_hospcode = "{H}"\nrate_per_minute = {rate}\nconcurrency = 4\n', encoding="utf-8")
    return p


def _cli(tmp_path: Path, cfg: Path, state: Path, pw_hash: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PHRSYNC_PHR_PASSWORD_HASH": pw_hash, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "phrsync", "--config", str(cfg), "did", "check", "--citizens",
                             "--state", str(state), "--json"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_kill_9_mid_check_then_restart_asks_nobody_already_answered(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    st = DidStore(f"sqlite:///{state}")
    people = _people(150)
    st.replace_people(CITIZEN, SOURCE_IMPORT, people, file="x.csv")
    cfg = SandboxConfig(data_dir=tmp_path / "sbx", rate_limit_per_minute=0)
    with running(cfg) as srv:
        auth.add_user(srv.sandbox.store, cfg, "did", H, PW)
        pw_hash = jwt.password_hash(PW, cfg.hash_key())
        proc = _cli(tmp_path, _config(tmp_path, srv.base_url, rate=1200), state, pw_hash)  # 20/s: slow enough
        deadline = time.monotonic() + 60
        answered: dict[str, tuple[float, int]] = {}
        while time.monotonic() < deadline:
            answered = {p.cid: (c["checked_at"], c["attempts"]) for p in people
                        if (c := st.check_of(p.cid)) and c["result"] is not None}
            if len(answered) >= 30:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        out1, err1 = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        before = {p.cid: (c["checked_at"], c["attempts"]) for p in people
                  if (c := st.check_of(p.cid)) and c["result"] is not None}
        assert 30 <= len(before) < 150, len(before)
        proc = _cli(tmp_path, _config(tmp_path, srv.base_url, rate=0), state, pw_hash)
        out2, err2 = proc.communicate(timeout=120)
        assert proc.returncode == 0, err2
    import json

    res = json.loads(out2)
    assert res["due"] == 150 - len(before) and res["answered"] == res["due"]
    after = {p.cid: (c["checked_at"], c["attempts"]) for p in people if (c := st.check_of(p.cid))}
    assert len(after) == 150 and all(after[c][0] is not None for c in after)  # nobody missed
    assert all(after[c] == before[c] for c in before)  # nobody already answered was asked again
    for text in (out1, err1, out2, err2):
        assert not any(p.cid in text for p in people)
    st.close()
