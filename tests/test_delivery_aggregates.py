"""The state store's small tables for the monitoring web: they hold exactly what counting the outbox gives, after
every kind of change (load, sending, reconcile, requeue), on SQLite and PostgreSQL; they are counted once per
facility per change, never per payload; a store made before them gets them on its first open; and a run records
what PHR said (held refs per day, its agent answers), the facilities it touched and the removals it held back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from dbfixtures import (
    postgres_server,  # noqa: F401  (fixture)
    unique_name,
)
from sqlalchemy import func, select, text
from test_sandbox_support import PASSWORD_KEY, make_cid, update_payload

from phrsync.delivery import outbox as ob
from phrsync.delivery.agent import sync_payloads
from phrsync.delivery.config import Credentials
from phrsync.phr.mapping import key_for
from phrsync.sandbox.server import SandboxThread, running
from phrsync.sandbox.settings import SandboxConfig

H, H2 = "10699", "10700"


def item(i: int, day: str = "2025-03-01", hcode: str = H, **kw: Any) -> dict[str, Any]:
    p = update_payload(hcode, make_cid(7000 + i), f"A{i:05d}", day=day, **kw)
    return {"key": key_for("UpdatePHRv1", p), "endpoint": "UpdatePHRv1", "hospcode": hcode, "payload": p}


def write(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(i) + b"\n" for i in items))
    return path


def counted(box: ob.Outbox) -> tuple[dict[str, dict[str, dict[str, int]]], dict[tuple[str, str], dict[str, int]]]:
    """What the aggregates must hold, counted from the outbox itself: per facility, endpoint and status, and
    per facility and encounter day."""
    tot: dict[str, dict[str, dict[str, int]]] = {}
    days: dict[tuple[str, str], dict[str, int]] = {}
    o = ob.outbox
    with box.engine.connect() as c:
        for h, ep, st, n in c.execute(select(o.c.hospcode, o.c.endpoint, o.c.status, func.count())
                                      .group_by(o.c.hospcode, o.c.endpoint, o.c.status)):
            tot.setdefault(h, {}).setdefault(ep, dict.fromkeys(ob.STATUSES, 0))[st] = int(n)
        for h, d, st, n in c.execute(select(o.c.hospcode, o.c.day, o.c.status, func.count())
                                     .where(o.c.endpoint == ob.ENCOUNTER_EP, o.c.day.is_not(None))
                                     .group_by(o.c.hospcode, o.c.day, o.c.status)):
            days.setdefault((h, d), dict.fromkeys(ob.STATUSES, 0))[st] = int(n)
    return tot, days


def assert_aggregates_hold_the_counts(box: ob.Outbox) -> None:
    tot, days = counted(box)
    assert box.aggregate_totals() == tot
    assert {(h, d): c for h, d, c in box.aggregate_days()} == days


@pytest.fixture(scope="module")
def sbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SandboxThread, dict[str, Credentials]]]:
    cfg = SandboxConfig(data_dir=tmp_path_factory.mktemp("sbx"), password_key=PASSWORD_KEY,
                        rate_limit_per_minute=0, agent_status_interval=0)
    with running(cfg) as st:
        yield st, {h: Credentials(f"u{h}", st.add_user(f"u{h}", h, f"pw-{h}")) for h in (H, H2)}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.sqlite'}"
        return
    import psycopg
    from sqlalchemy.engine import make_url

    server = request.getfixturevalue("postgres_server")
    name = unique_name()
    yield make_url(server).set(database=name).render_as_string(hide_password=False)
    u = make_url(server)
    with psycopg.connect(host=u.host, port=u.port or 5432, user=u.username, dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_aggregates_follow_load_sending_reconcile_and_requeue(sbx: tuple[SandboxThread, dict[str, Credentials]],
                                                             tmp_path: Path, state_url: str) -> None:
    st, creds = sbx
    good = [item(i, day="2025-03-0" + str(1 + i % 3)) for i in range(6)] + [item(50 + i, hcode=H2) for i in range(3)]
    bad = item(99, day="2025-03-02")
    del bad["payload"]["Patient"]["birthDate"]  # refused by PHR
    nd = write(tmp_path / "b.ndjson", [*good, bad])
    box = ob.Outbox(state_url)
    try:
        res = box.load_file(nd)
        assert res.facilities == [H, H2]
        assert_aggregates_hold_the_counts(box)
        assert box.aggregate_totals()[H][ob.ENCOUNTER_EP][ob.PENDING] == 7
        assert box.aggregate_facilities()[H]["phr_days"] == 0  # PHR never asked: no "held" figure
        assert box.aggregate_facilities()[H]["phr_held"] is None
        run = sync_payloads(nd, st.base_url, creds, state_url, backoff_base=0.01)
        assert run.refused == 1 and run.facilities == [H, H2]
        assert_aggregates_hold_the_counts(box)
        f = box.aggregate_facilities()[H]
        assert f["last_sent"] and f["last_refused_at"] and f["phr_days"] == 3
        assert f["phr_held"] == 6 and f["phr_best"] == 6  # what PHR said it holds: the 6 accepted encounters
        (reason,) = box.aggregate_reasons(H)
        assert reason["n"] == 1 and reason["http_status"] == 400 and "birthDate" in reason["example"]
        assert make_cid(7099) not in str(reason)
        held = {(h, d): n for h, d, n, _at in box.phr_days()}
        assert held == {(H, "2025-03-01"): 2, (H, "2025-03-02"): 2, (H, "2025-03-03"): 2, (H2, "2025-03-01"): 3}
        assert box.requeue_refused(H) == 1
        assert_aggregates_hold_the_counts(box)
        assert box.aggregate_totals()[H][ob.ENCOUNTER_EP][ob.REFUSED] == 0
        assert box.aggregate_reasons(H) == []
        (last,) = box.recent_runs(1, facility=H2)
        assert last["facilities"] == [H, H2] and last["summary"]["facilities"] == [H, H2]
        assert box.recent_runs(5, facility="99999") == []
        agents = box.phr_agents()
        assert agents[H]["agent_version"].startswith("phrsync ") and agents[H]["status_sent"].startswith("idle")
        assert agents[H]["computer_name"] and agents[H]["asked_at"] <= time.time()
    finally:
        box.close()


def test_counted_once_per_facility_and_change_never_per_payload(sbx: tuple[SandboxThread, dict[str, Credentials]],
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """60 payloads of two facilities: the load counts each facility once, the sending once more at the end of each
    facility's rows, the reconcile once after each facility's days; the run's end has nothing left to count."""
    st, creds = sbx
    items = [item(200 + i, day="2025-04-01", hcode=(H, H2)[i % 2]) for i in range(60)]
    calls: list[list[str]] = []
    days: list[set[str | None]] = []
    real = ob.Outbox.refresh_aggregates

    def spy(self: ob.Outbox, facilities: Any, only: Any = None) -> None:
        codes = sorted(set(facilities))
        if codes:  # (a new store's first open counts its no facilities)
            calls.append(codes)
            assert only is not None  # never a whole facility: the days that changed
            days.extend(set(only[h]) for h in codes)
        real(self, codes, only)

    monkeypatch.setattr(ob.Outbox, "refresh_aggregates", spy)
    res = sync_payloads(write(tmp_path / "b.ndjson", items), st.base_url, creds, tmp_path / "s.sqlite",
                        backoff_base=0.01)
    assert res.sent == 60 and res.exit_code == 0
    per = {h: sum(h in c for c in calls) for h in (H, H2)}
    assert per == {H: 3, H2: 3}, calls  # load, end of its sending, after its reconcile
    assert all(d <= {"2025-04-01", None} for d in days)  # the one visit day of the build
    box = ob.Outbox(f"sqlite:///{tmp_path / 's.sqlite'}")
    try:
        assert_aggregates_hold_the_counts(box)
        assert box.aggregate_totals()[H][ob.ENCOUNTER_EP][ob.CONFIRMED] == 30
    finally:
        box.close()


def test_a_store_made_before_the_aggregates_counts_them_on_its_first_open(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    box = ob.Outbox(url)
    box.load([item(i) for i in range(4)] + [item(10, hcode=H2)])
    with box.engine.begin() as c:  # as an earlier version left it: no aggregate tables, no held column
        for t in ("delivery_agg_days", "delivery_agg_totals", "delivery_agg_reasons", "delivery_agg_facilities",
                  "delivery_run_facilities"):
            c.execute(text(f"DROP TABLE {t}"))
        c.execute(text("DROP INDEX ix_delivery_days_checked_day"))
        c.execute(text("ALTER TABLE delivery_days_checked DROP COLUMN held"))
        c.execute(text(f"DELETE FROM delivery_meta WHERE name = '{ob.AGGREGATES_META}'"))
    box.close()
    box = ob.Outbox(url)
    try:
        assert_aggregates_hold_the_counts(box)
        assert box.aggregate_totals()[H2][ob.ENCOUNTER_EP][ob.PENDING] == 1
        box.mark_days_checked([(H, "2025-03-01", 4), (H2, "2025-03-01")])
        assert box.phr_days() == [(H, "2025-03-01", 4, pytest.approx(time.time(), abs=60)),
                                  (H2, "2025-03-01", None, pytest.approx(time.time(), abs=60))]
    finally:
        box.close()


def test_a_guard_is_recorded_for_the_facilities_reconciled_and_cleared_by_a_later_run(tmp_path: Path) -> None:
    box = ob.Outbox(f"sqlite:///{tmp_path / 's.sqlite'}")
    try:
        g = {"hospcode": H, "day": "2025-05-03", "would_remove": 10, "held": 18}
        box.record_guarded([H, H2], [g])
        assert box.guarded()[H][0]["would_remove"] == 10 and H2 not in box.guarded()
        box.record_guarded([H2], [])  # another facility's run leaves it alone
        assert box.guarded()[H][0]["day"] == "2025-05-03"
        box.record_guarded([H], [])  # reconciled without a guard: nothing held back any more
        assert box.guarded() == {}
    finally:
        box.close()
