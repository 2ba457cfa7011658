"""Agents that must not block each other, must finish, and must notice each other: the state store's lease and
atomic row claims (SQLite and PostgreSQL), one computer name per installation, an idle agent that does not
count as sending, and a check with PHR that resumes where it failed instead of starting over."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from dbfixtures import (
    postgres_server,  # noqa: F401  (fixture)
    unique_name,
)
from sqlalchemy import select
from test_delivery import another_computer_reports, held, item, sandbox_with, write
from test_sandbox_support import PASSWORD_KEY

from phrsync.config import load_config
from phrsync.delivery import agent as agent_mod
from phrsync.delivery import outbox as ob
from phrsync.delivery import status as st_mod
from phrsync.delivery.agent import AgentBusy, StoreLease, installation_name, sync, sync_payloads
from phrsync.delivery.config import Credentials, load_delivery
from phrsync.errors import Exit
from phrsync.sandbox import store

H = "10699"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh state store on SQLite, and on PostgreSQL (its own database, dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 's.sqlite'}"
        return
    import psycopg
    from sqlalchemy.engine import make_url

    server = request.getfixturevalue("postgres_server")
    name = unique_name()
    yield str(make_url(server).set(database=name).render_as_string(hide_password=False))
    u = make_url(server)
    with psycopg.connect(host=u.host, port=u.port or 5432, user=u.username, dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---- the lease and the claims, on the store alone -------------------------------------------------

def test_the_lease_is_taken_atomically_and_freed_by_release_expiry_or_death(store_url: str) -> None:
    a, b = ob.Outbox(store_url), ob.Outbox(store_url)
    try:
        assert a.take_lease("pc-a", 60) is None
        holder = b.take_lease("pc-b", 60)
        assert holder is not None and holder.computer == "pc-a" and holder.pid > 0
        assert a.take_lease("pc-a", 60) is None  # its own lease: taken again (renewed)
        assert a.renew_lease(60) and not b.renew_lease(60)
        a.release_lease()
        assert b.take_lease("pc-b", 60) is None and a.take_lease("pc-a", 60) is not None
        assert not a.renew_lease(60)
        # a holder that stopped renewing: free once expired
        with b.engine.begin() as c:
            c.execute(ob.lease.update().values(expires_at=b.store_time() - 1))
        assert a.take_lease("pc-a", 60) is None and not b.renew_lease(60)
        # a holder on this computer whose process is gone (kill -9): free at once, no wait for the expiry
        with a.engine.begin() as c:
            c.execute(ob.lease.update().values(pid=2 ** 22 + 12345, owner="dead"))
        assert b.take_lease("pc-b", 60) is None
    finally:
        a.close()
        b.close()


def test_of_two_agents_started_together_exactly_one_takes_the_lease(store_url: str) -> None:
    boxes = [ob.Outbox(store_url) for _ in range(6)]
    gate = threading.Barrier(len(boxes))
    won: list[bool] = []

    def take(box: ob.Outbox) -> None:
        gate.wait()
        won.append(box.take_lease("pc", 60) is None)

    try:
        threads = [threading.Thread(target=take, args=(b,)) for b in boxes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(won) == [False] * 5 + [True]
    finally:
        for b in boxes:
            b.close()


def test_a_row_is_claimed_by_one_store_handle_only(store_url: str) -> None:
    """Two agents that read the same rows: the claim is a compare-and-set on (status, claimant) as read, so one
    of them sends each row; the other's answers and put-backs do not touch rows it does not hold."""
    a, b = ob.Outbox(store_url), ob.Outbox(store_url)
    try:
        items = [item(9000 + i) for i in range(5)]
        a.load(items, "x")
        read_a, read_b = list(a.to_send()), list(b.to_send())
        assert not a.apply([(r.key, r.status, r.claimed_by) for r in read_a], [])
        lost = b.apply([(r.key, r.status, r.claimed_by) for r in read_b], [])
        assert lost == {r.key for r in read_b}
        k = read_a[0].key
        assert not b.mark_sending(k) and a.mark_sending(k)  # a retry: only the claimant
        b.apply([], [(k, ob.REFUSED, 400, "x", "x")], [(read_a[1].key, ob.PENDING)])
        assert (a.row(k)["status"], a.row(k)["attempts"]) == (ob.SENDING, 2)
        assert a.row(read_a[1].key)["status"] == ob.SENDING
        a.apply([], [(k, ob.FAILED, None, "transient", "x")])
        # b reads again: a failed row is b's to claim now (as after a's run ended)
        again = [r for r in b.to_send() if r.key == k]
        assert again[0].claimed_by == a.owner and not b.apply([(k, again[0].status, again[0].claimed_by)], [])
        assert a.row(k)["claimed_by"] == b.owner and a.row(k)["attempts"] == 3
    finally:
        a.close()
        b.close()


def test_the_installation_id_is_made_once_per_store(tmp_path: Path) -> None:
    a = ob.Outbox(f"sqlite:///{tmp_path / 'a.sqlite'}")
    b = ob.Outbox(f"sqlite:///{tmp_path / 'b.sqlite'}")
    try:
        name = installation_name(a, "host")
        assert name.startswith("host-") and name == installation_name(ob.Outbox(a.url), "host")
        assert installation_name(a, name) == name  # not appended twice
        assert installation_name(b, "host") != name  # two stores on one host: two names
    finally:
        a.close()
        b.close()


def test_a_lease_taken_over_stops_the_run_that_lost_it(tmp_path: Path) -> None:
    box = ob.Outbox(f"sqlite:///{tmp_path / 's.sqlite'}")
    lost = threading.Event()
    lease = StoreLease(box, "pc-a", seconds=0.4, on_lost=lambda why: lost.set()).acquire()
    try:
        with box.engine.begin() as c:  # it stalled past its expiry and another agent took the store
            c.execute(ob.lease.update().values(owner="other"))
        assert lost.wait(3) and lease.lost
    finally:
        lease.release()
    assert box.lease() is not None and box.lease().owner == "other"  # not released: it is not ours
    box.close()


# ---- agents against the local server ----------------------------------------------------------------

def counting(paths: dict[str, int]) -> Any:
    """An answer hook for :func:`sandbox_with` that counts the requests per path and lets the sandbox answer."""
    lock = threading.Lock()

    def answer(scope: dict[str, Any]) -> None:
        with lock:
            paths[scope["path"]] = paths.get(scope["path"], 0) + 1

    return answer


def test_two_agents_with_different_data_dirs_on_one_store_deliver_each_payload_once(tmp_path: Path,
                                                                                     store_url: str) -> None:
    """The one-agent lock was a file in data_dir: two configurations with different data_dir and the same state
    store, started together, both sent everything (every row attempts = 2)."""
    paths: dict[str, int] = {}
    items = [item(9100 + i, day=f"2025-04-{1 + i % 20:02d}") for i in range(300)]
    nd = write(tmp_path / "b.ndjson", items)
    with sandbox_with(tmp_path, counting(paths)) as (st, _pw):
        env = {"PHRSYNC_PHR_PASSWORD": "pw-10699", "PHRSYNC_PHR_PASSWORD_KEY": PASSWORD_KEY}
        settings = []
        for name in ("a", "b"):
            toml = tmp_path / f"{name}.toml"
            toml.write_text(f'data_dir = "data-{name}"\n[delivery]\ntarget = "t"\nuser = "u10699"\n'
                            f'state_url = "{store_url}"\n'
                            f'[targets.t]\nbase_url = "{st.base_url}"\nrate_per_minute = 0\n', encoding="utf-8")
            settings.append(load_delivery(load_config(toml, env=env), env=env))
        pre = ob.Outbox(store_url)  # the build is in the store already (two agents creating it: the test below)
        pre.load_file(nd)
        pre.close()
        gate = threading.Barrier(2)
        outcomes: list[Any] = []

        def run(s: Any) -> None:
            gate.wait()
            try:
                outcomes.append(sync(s, nd))
            except AgentBusy as e:
                outcomes.append(e)

        threads = [threading.Thread(target=run, args=(s,)) for s in settings]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert paths.get("/api/UpdatePHRv1") == len(items)  # each payload once
        assert len(held(st)) == len(items)
        box = ob.Outbox(settings[0].state_url)
        try:
            assert {box.row(i["key"])["attempts"] for i in items} == {1}
            assert box.counts()[H][ob.CONFIRMED] == len(items)
        finally:
            box.close()
        busy = [o for o in outcomes if isinstance(o, AgentBusy)]
        ran = [o for o in outcomes if not isinstance(o, AgentBusy)]
        assert all(r.exit_code == 0 for r in ran) and (busy or min(r.sent for r in ran) == 0)
        assert all(int(e.exit_code) == Exit.LOCKED for e in busy)


def test_agents_opening_a_new_store_at_once_all_get_it(store_url: str) -> None:
    """Two agents creating the store's tables at once: the loser failed with "table already exists" (PostgreSQL:
    a unique violation creating the database)."""
    gate = threading.Barrier(4)
    errors: list[BaseException] = []

    def open_store() -> None:
        gate.wait()
        try:
            ob.Outbox(store_url).close()
        except BaseException as e:  # noqa: BLE001  (any failure is the finding)
            errors.append(e)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_two_installations_on_one_host_tell_each_other_apart(tmp_path: Path) -> None:
    """Two state stores on one host shared the computer name, so the GetAgentComputerName guard let the second
    send for a facility the first was sending for."""
    with sandbox_with(tmp_path, lambda scope: None) as (st, pw):
        creds = Credentials("u10699", pw)
        res = sync_payloads(write(tmp_path / "a.ndjson", [item(9200)]), st.base_url, creds, tmp_path / "a.sqlite")
        assert res.exit_code == 0
        box = ob.Outbox(f"sqlite:///{tmp_path / 'a.sqlite'}")
        import socket

        name_a = installation_name(box, socket.gethostname())
        box.close()
        c = httpx.Client(base_url=st.base_url)
        tok = c.post("/token", params={"Action": "get_moph_access_token"},
                     content=orjson.dumps({"user": "u10699", "password_hash": pw, "hospital_code": H})).text.strip()
        got = c.post("/api/GetAgentComputerName", headers={"Authorization": f"Bearer {tok}"},
                     json={"hospital_code": H}).json()["result"]
        assert got["agent_computer_name"] == name_a
        # installation a is sending (its heartbeat); installation b, same host, another store, must keep off
        r = c.post("/api/UpdateAgentStatus", headers={"Authorization": f"Bearer {tok}"},
                   json={"hospital_code": H, "agent_status": "processing", "agent_computer_name": name_a})
        assert r.status_code == 200
        its = [item(9201)]
        res = sync_payloads(write(tmp_path / "b.ndjson", its), st.base_url, creds, tmp_path / "b.sqlite")
        assert res.exit_code == Exit.AUTH and res.skip_kind == {H: "other_agent"} and name_a in res.skipped[H]
        assert f"{H}:R09201" not in held(st)


def test_a_finished_agent_does_not_block_another_computer(tmp_path: Path) -> None:
    """The final "idle" report of a run counted as "sending" for 15 minutes: every other computer was refused
    the facility ("is already sending") although nothing was being sent."""
    with sandbox_with(tmp_path, lambda scope: None) as (st, pw):
        creds = Credentials("u10699", pw)
        res = sync_payloads(write(tmp_path / "a.ndjson", [item(9300)]), st.base_url, creds, tmp_path / "a.sqlite",
                            computer_name="pc-a")
        assert res.exit_code == 0
        res = sync_payloads(write(tmp_path / "b.ndjson", [item(9301)]), st.base_url, creds, tmp_path / "b.sqlite",
                            computer_name="pc-b")
        assert res.exit_code == 0 and res.sent == 1 and not res.skipped
        # a computer still sending does block (its last word is progress, not its outcome)
        another_computer_reports(st, "u10699", pw, H)
        res = sync_payloads(write(tmp_path / "a.ndjson", [item(9302)]), st.base_url, creds, tmp_path / "a.sqlite",
                            computer_name="pc-a")
        assert res.exit_code == Exit.AUTH and res.skip_kind == {H: "other_agent"}


# ---- a check with PHR that resumes, and the exit code that says "all confirmed" --------------------

DAYS = [f"2025-05-{d:02d}" for d in range(1, 7)]


def test_a_full_check_that_failed_resumes_for_the_failed_days_and_all_confirmed_is_exit_0(tmp_path: Path) -> None:
    """At 40 % faults every run after all was confirmed redid the full check of every facility-day and exited 3
    because two or three of those questions failed."""
    paths: dict[str, int] = {}
    asked: list[str] = []
    failing = {DAYS[2]}
    count = counting(paths)

    def answer(scope: dict[str, Any]) -> tuple[int, bytes, list[tuple[bytes, bytes]]] | None:
        count(scope)
        if scope["path"] == "/api/OrganizationSummary":
            day = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&"))["date"]
            asked.append(day)
            if day in failing:
                return 503, b"busy", []
        return None

    with sandbox_with(tmp_path, answer) as (st, pw):
        creds = Credentials("u10699", pw)
        nd = write(tmp_path / "b.ndjson", [item(9400 + i, day=d) for i, d in enumerate(DAYS)])
        opts: dict[str, Any] = {"max_attempts": 2, "backoff_base": 0.01}
        failing.clear()
        assert sync_payloads(nd, st.base_url, creds, tmp_path / "s.sqlite", **opts).exit_code == 0
        failing.add(DAYS[2])
        asked.clear()
        res = sync_payloads(nd, st.base_url, creds, tmp_path / "s.sqlite", full_check=True, **opts)
        assert res.exit_code == 0, res.reconcile  # everything is confirmed: the audit of one day waits
        assert res.reconcile["full"] and not res.reconcile["errors"]
        assert len(res.reconcile["deferred"]) == 1 and DAYS[2] in res.reconcile["deferred"][0]
        assert sorted(set(asked)) == DAYS and asked.count(DAYS[2]) == 3 * 2  # 2 attempts in each of 3 rounds
        failing.clear()
        asked.clear()
        res = sync_payloads(nd, st.base_url, creds, tmp_path / "s.sqlite", **opts)
        assert res.exit_code == 0 and res.reconcile["full"] and asked == [DAYS[2]]  # resumed, not redone
        asked.clear()
        res = sync_payloads(nd, st.base_url, creds, tmp_path / "s.sqlite", **opts)
        assert res.exit_code == 0 and not res.reconcile["full"] and asked == []  # complete: next in 7 days
        box = ob.Outbox(f"sqlite:///{tmp_path / 's.sqlite'}")
        try:
            assert box.get_meta(agent_mod.FULL_SINCE_META) is None and box.get_meta(agent_mod.FULL_CHECK_META)
        finally:
            box.close()


def test_a_failed_question_about_a_day_with_unconfirmed_rows_is_still_not_delivered(tmp_path: Path) -> None:
    """Deferring is for the audit only: a day whose sent rows PHR could not confirm leaves the run exit 3, and
    its other days are still checked (a failure no longer cancelled the facility's other days)."""
    asked: list[str] = []

    def answer(scope: dict[str, Any]) -> tuple[int, bytes, list[tuple[bytes, bytes]]] | None:
        if scope["path"] == "/api/OrganizationSummary":
            day = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&"))["date"]
            asked.append(day)
            if day == DAYS[0]:
                return 503, b"busy", []
        return None

    with sandbox_with(tmp_path, answer) as (st, pw):
        nd = write(tmp_path / "b.ndjson", [item(9500 + i, day=d) for i, d in enumerate(DAYS[:3])])
        res = sync_payloads(nd, st.base_url, Credentials("u10699", pw), tmp_path / "s.sqlite", max_attempts=2,
                            backoff_base=0.01)
        assert res.exit_code == Exit.UNDELIVERED and any(DAYS[0] in e for e in res.reconcile["errors"])
        assert res.outbox[H][ob.CONFIRMED] == 2 and res.outbox[H][ob.SENT] == 1
        assert set(asked) == set(DAYS[:3])


def test_a_facility_with_nothing_to_send_or_confirm_needs_no_guard(tmp_path: Path) -> None:
    """At 20 % faults an unchanged re-run exited 3: a facility with nothing to send failed its guard check."""
    paths: dict[str, int] = {}
    guard_down = [False]
    count = counting(paths)

    def answer(scope: dict[str, Any]) -> tuple[int, bytes, list[tuple[bytes, bytes]]] | None:
        count(scope)
        if guard_down[0] and scope["path"] == "/api/GetAgentComputerName":
            return 502, b"bad gateway", []
        return None

    with sandbox_with(tmp_path, answer) as (st, pw):
        nd = write(tmp_path / "b.ndjson", [item(9600 + i, day=d) for i, d in enumerate(DAYS[:2])])
        creds = Credentials("u10699", pw)
        assert sync_payloads(nd, st.base_url, creds, tmp_path / "s.sqlite").exit_code == 0
        box = ob.Outbox(f"sqlite:///{tmp_path / 's.sqlite'}")
        box.set_agent_states({H: {"state": st_mod.ERROR, "why": "HTTP 502", "at": time.time()}})  # an old failure
        box.close()
        guard_down[0] = True
        paths.clear()
        res = sync_payloads(nd, st.base_url, creds, tmp_path / "s.sqlite", max_attempts=2, backoff_base=0.01)
        assert res.exit_code == 0 and not res.skipped and "/api/GetAgentComputerName" not in paths
        report = st_mod.delivery_status(f"sqlite:///{tmp_path / 's.sqlite'}", computer_name="pc")
        f = report.facilities[H]
        assert (f.agent_state, f.agent_state_why, f.stuck_because()) == (st_mod.OK, st_mod.NOTHING_TO_DO, None)


def test_status_shows_the_agent_that_holds_the_store(tmp_path: Path) -> None:
    from phrsync.delivery.cli import status_lines

    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    box = ob.Outbox(url)
    box.load([item(9700)], "x")
    report = st_mod.delivery_status(url, computer_name="pc")
    assert not report.agent.running and report.agent.computer_name is None  # never ran: no id made by status
    name = installation_name(box, "pc")
    lease = StoreLease(box, name).acquire()
    try:
        report = st_mod.delivery_status(url, computer_name="pc")
        a = report.agent
        assert a.running and a.holder == name and a.computer_name == name and a.pid > 0
        assert report.to_dict()["agent"]["holder"] == name
        assert any("running" in line and name in line for line in status_lines(report))
    finally:
        lease.release()
        box.close()
    report = st_mod.delivery_status(url, computer_name="pc")
    assert not report.agent.running and any("not running" in line and name in line for line in status_lines(report))


def test_a_run_announces_itself_to_other_computers_after_phrs_5_seconds(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The first progress report came ``status_interval`` (30 s) after a facility's check: for that long another
    installation's guard saw nobody sending and started beside it. It now comes PHR's minimum gap (5 s) after."""
    import phrsync.delivery.sender as sender_mod
    from phrsync.sandbox.settings import FaultConfig

    monkeypatch.setattr(sender_mod, "STATUS_MIN_GAP", 0.3)
    statuses: list[str] = []

    def answer(scope: dict[str, Any]) -> None:
        if scope["path"] == "/api/UpdateAgentStatus":
            statuses.append(scope["query_string"].decode())

    with sandbox_with(tmp_path, answer, faults=FaultConfig(latency_ms=40)) as (st, pw):
        its = [item(9800 + i) for i in range(30)]
        res = sync_payloads(write(tmp_path / "b.ndjson", its), st.base_url, Credentials("u10699", pw),
                            tmp_path / "s.sqlite", concurrency=1)  # status_interval stays 30 s
        assert res.exit_code == 0 and res.seconds > 1
        assert len(statuses) >= 2  # progress during the run (with the old rule only the final report, at the end)
        row = st.sandbox.store.read(lambda c: c.execute(select(store.agent_status)).mappings().one())
        assert row["status"].startswith("idle")


def test_an_agent_killed_holding_the_lease_does_not_lock_the_next_one_out(tmp_path: Path) -> None:
    """kill -9 leaves the lease row behind: the next agent on this computer sees its holder's process gone and
    takes the lease at once instead of waiting out its expiry (a SQLite store is always on this computer)."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    code = (f"import os; from phrsync.delivery import outbox as ob; b = ob.Outbox({url!r}); "
            "assert b.take_lease('pc-killed', 600) is None; os._exit(9)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 9
    box = ob.Outbox(url)
    try:
        held = box.lease()
        assert held is not None and held.computer == "pc-killed" and held.expires_at > box.store_time()
        lease = StoreLease(box, "pc-next").acquire()  # no AgentBusy
        assert box.lease().computer == "pc-next"
        lease.release()
        assert box.lease() is None
    finally:
        box.close()
