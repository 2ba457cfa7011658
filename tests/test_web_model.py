"""The monitoring web's read model (phrsync.web.model) on a real small province — synthesized, imported, built,
sent to the local PHR server and reconciled — and on hand-made stores: its figures are the ones ``status``, the
staging store and the PHR server give; what no store knows is None, never 0; its figures follow a re-import, a
new build, a sync and a retry; a staging store held by an import gives a note, not an error."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from dbfixtures import (
    postgres_server,  # noqa: F401  (fixture)
    unique_name,
)
from f43files import person, service, text, write_zip
from sqlalchemy import func, select
from test_sandbox_support import PASSWORD_KEY, make_cid, update_payload

from phrsync.config import Config, load_config
from phrsync.delivery import agent
from phrsync.delivery import outbox as ob
from phrsync.delivery.agent import sync_payloads
from phrsync.delivery.config import Credentials, DeliverySettings, Target
from phrsync.delivery.status import build_refusals, delivery_status
from phrsync.errors import NotFoundError
from phrsync.f43 import read as f43read
from phrsync.f43.api import import_sources
from phrsync.f43.staging import Staging
from phrsync.phr.api import build_payloads
from phrsync.phr.mapping import key_for
from phrsync.sandbox import store as sbx
from phrsync.sandbox.server import SandboxThread, running
from phrsync.sandbox.settings import SandboxConfig
from phrsync.synth import SynthOptions
from phrsync.synth.api import synthesize
from phrsync.web import model, readers
from phrsync.web.model import Sources

H = "10699"
CID13 = re.compile(r"(?<![0-9])[0-9]{13}(?![0-9])")


@pytest.fixture(autouse=True)
def fresh_readers() -> Iterator[None]:
    """Each test reads its stores anew (the readers keep handles and figures between calls)."""
    readers.close_all()
    yield
    readers.close_all()


@dataclass
class Province:
    root: Path
    src: Sources
    srv: SandboxThread


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Province]:
    """Sa Kaeo, 300 synthetic encounters with defects: synth → import → build → local PHR server → sync."""
    root = tmp_path_factory.mktemp("province")
    synthesize(SynthOptions(province="27", encounters=300, seed=1, dirty=0.01), root / "exports", workers=1)
    import_sources(root / "staging.duckdb", [root / "exports"])
    build_payloads(Config(data_dir=root), root / "payloads.ndjson", staging=root / "staging.duckdb")
    cfg = SandboxConfig(data_dir=root / "sandbox", password_key=PASSWORD_KEY, rate_limit_per_minute=0,
                        agent_status_interval=0)
    with running(cfg) as srv:
        creds = {h: Credentials(f"u{h}", srv.add_user(f"u{h}", h, "pw"))
                 for h in ob.ndjson_facilities(root / "payloads.ndjson")}
        res = sync_payloads(root / "payloads.ndjson", srv.base_url, creds, root / "outbox.sqlite", timeout=10,
                            backoff_base=0.05)
        assert res.exit_code in (0, 1) and res.sent > 200
        yield Province(root, Sources(state_url=f"sqlite:///{root / 'outbox.sqlite'}", staging=root / "staging.duckdb",
                                     build_file=root / "payloads.ndjson", sandbox_data_dir=root / "sandbox"), srv)


def phr_refs(srv: SandboxThread) -> dict[tuple[str, str], int]:
    """What OrganizationSummary would answer: encounter refs per facility and day in the PHR server's store."""
    e = sbx.encounters
    return {(h, d): int(n) for h, d, n in srv.sandbox.store.read(lambda c: c.execute(
        select(e.c.hospital_code, e.c.day, func.count()).group_by(e.c.hospital_code, e.c.day)).all())}


def confirmed_encounters(url: str) -> dict[str, int]:
    box = ob.Outbox(url)
    try:
        o = ob.outbox
        with box.engine.connect() as c:
            return {h: int(n) for h, n in c.execute(select(o.c.hospcode, func.count()).where(
                o.c.endpoint == ob.ENCOUNTER_EP, o.c.status == ob.CONFIRMED).group_by(o.c.hospcode))}
    finally:
        box.close()


def test_rows_and_overview_are_what_status_staging_and_phr_say(province: Province) -> None:
    src = province.src
    status = delivery_status(src.state_url, build_refused=build_refusals(src.build_file))
    with Staging(src.staging, read_only=True) as st:  # type: ignore[arg-type]
        counts = f43read.encounter_counts(st)
        staged = set(f43read.facilities(st))
    his: dict[str, int] = {}
    for c in counts:
        his[c.hospcode] = his.get(c.hospcode, 0) + c.total
    held = phr_refs(province.srv)
    confirmed = confirmed_encounters(src.state_url)
    box = ob.Outbox(src.state_url)
    asked = {h for h, _d, _n, _at in box.phr_days()}
    box.close()
    assert asked >= {h for h, _d in held}
    rows = model.facility_rows(src)
    assert [r.info.hospcode for r in rows] == sorted(staged | set(status.facilities))
    # the defects show (no drug codes imported: the allergies wait for a code)
    assert sum(r.refused or 0 for r in rows) + sum(r.build_refused or 0 for r in rows) > 0 or \
        sum(r.build_waiting or 0 for r in rows) > 0
    for r in rows:
        h = r.info.hospcode
        fs = status.facilities.get(h)
        assert r.his == his.get(h, 0)
        assert r.confirmed == confirmed.get(h, 0)
        # what PHR said over the days it was asked about; a facility never asked (all refused) has no figure
        assert r.phr_holds == (sum(n for (fh, _d), n in held.items() if fh == h) if h in asked else None)
        if fs is not None:
            assert (r.pending, r.refused, r.failed, r.build_refused) == (fs.pending, fs.refused, fs.failed,
                                                                        fs.build_refused)
            assert r.last_received == fs.last_delivery
            assert r.agent_state == fs.agent_state == "ok"
        best = r.phr_holds if r.phr_holds is not None else r.confirmed
        assert r.pct_in_phr == (round(100 * best / r.his, 1) if r.his else None)
        assert r.info.name and r.info.district and r.info.region == "6"  # Sa Kaeo: health region 6
    last_day = max(c.day for c in counts)
    ov = model.overview(src, today=last_day)
    month = [c for c in counts if (c.day.year, c.day.month) == (last_day.year, last_day.month)]
    assert ov.month == f"{last_day:%Y-%m}" and ov.his_month == sum(c.total for c in month) > 0
    assert ov.phr_month == sum(n for (_h, d), n in held.items() if d.startswith(ov.month))
    assert ov.pct_month == round(100 * ov.phr_month / ov.his_month, 1)
    assert ov.pending == sum(f.pending for f in status.facilities.values())
    assert ov.refused == sum(f.refused for f in status.facilities.values())
    assert ov.failed == sum(f.failed for f in status.facilities.values())
    assert ov.facilities == len(rows) and ov.silent == 0 and ov.sending_7d is not None
    by_day = {d.day: d for d in ov.daily}
    assert len(ov.daily) == 90 and ov.daily[-1].day == last_day
    per_day: dict[dt.date, int] = {}
    for c in counts:
        per_day[c.day] = per_day.get(c.day, 0) + c.total
    for d, p in by_day.items():
        assert p.his == per_day.get(d, 0)
        assert p.phr == (sum(n for (_h, k), n in held.items() if k == d.isoformat()) or None)
    assert sum(x.his_month or 0 for x in ov.districts) == ov.his_month
    assert sum(x.facilities for x in ov.districts) == ov.facilities
    assert all(x.code and x.name and x.name_en for x in ov.districts)
    assert ov.notes == []  # every store is there and was read


def test_phr_centre_from_the_sandbox_and_from_what_the_agent_learned(province: Province) -> None:
    held = phr_refs(province.srv)
    centre = model.phr_centre(province.src)
    assert centre.source == "sandbox"
    per = {f.info.hospcode: f for f in centre.facilities}
    for h in {h for h, _d in held}:
        assert per[h].encounters == sum(n for (fh, _d), n in held.items() if fh == h)
        assert per[h].patients and per[h].agent_version and per[h].last_received
    (region,) = centre.regions
    assert (region.region, region.province) == ("6", "สระแก้ว")
    assert region.encounters == sum(held.values()) and region.storage_bytes is None
    assert any("storage" in en for _th, en in centre.notes)
    agent_view = model.phr_centre(Sources(**{**province.src.__dict__, "sandbox_data_dir": None}))
    assert agent_view.source == "agent"
    by = {f.info.hospcode: f for f in agent_view.facilities}
    for h in {h for h, _d in held}:
        assert by[h].encounters == per[h].encounters  # OrganizationSummary's answers, as recorded
        assert by[h].patients is None  # PHR tells an agent no patient count: not known, not 0
        assert by[h].computer and by[h].agent_status and by[h].agent_status.startswith("idle")


def test_facility_detail_days_refusals_quarantine_and_runs(province: Province) -> None:
    src = province.src
    rows = {r.info.hospcode: r for r in model.facility_rows(src)}
    with_q = next(h for h, r in rows.items() if r.quarantined)
    d = model.facility_detail(src, with_q)
    assert d.row.info.hospcode == with_q and d.quarantine
    assert sum(g.count for g in d.quarantine if g.reason_th) >= 1 and all(g.examples for g in d.quarantine)
    assert [p.day for p in d.days] == sorted(p.day for p in d.days)
    assert sum(p.his or 0 for p in d.days) == d.row.his
    assert sum(p.confirmed or 0 for p in d.days) == d.row.confirmed
    runs, _sched = model.runs(src)
    assert d.runs and d.runs[0].id == runs[0].id and with_q in d.runs[0].facilities
    refused = next(h for h, r in rows.items() if r.build_refused or r.build_waiting)
    d = model.facility_detail(src, refused)
    at_build = [g for g in d.refusals if g.at_build]
    assert sum(g.count for g in at_build if g.endpoint) >= 1
    assert all(g.owner in model.OWNER_TEXT and g.reason for g in d.refusals)
    assert d.quality_notes and all(th and en for th, en in d.quality_notes)
    shown = repr([model.facility_detail(src, h) for h in rows])
    assert not CID13.search(shown)  # no full citizen ID anywhere on a facility's page
    with pytest.raises(NotFoundError, match="12345"):
        model.facility_detail(src, "12345")
    known_only_to_tables = "00017"  # the provincial office: in the code table, in no store
    assert model.facility_detail(src, known_only_to_tables).row.his == 0


def test_nothing_known_is_none_never_zero(tmp_path: Path) -> None:
    src = Sources(state_url=f"sqlite:///{tmp_path / 'none.sqlite'}", staging=tmp_path / "none.duckdb")
    ov = model.overview(src, today=dt.date(2025, 3, 1))
    for name in ("sending_today", "sending_7d", "silent", "his_month", "phr_month", "pct_month", "pending",
                 "refused", "failed"):
        assert getattr(ov, name) is None, name
    assert ov.facilities == 0 and ov.attention == [] and len(ov.daily) == 90
    assert all(p.his is None and p.built is None and p.confirmed is None and p.phr is None for p in ov.daily)
    notes = " ".join(en for _th, en in ov.notes)
    assert "staging" in notes and "state store" in notes
    assert not (tmp_path / "none.sqlite").exists()  # reading never creates a store
    assert model.facility_rows(src) == []
    assert model.runs(src) == ([], model.Scheduler())
    assert model.directory(src)[H].name  # the code tables still name the province's facilities
    # a store loaded but never sent and never reconciled: the figures it has, and None for what PHR holds
    box = ob.Outbox(src.state_url)
    p = update_payload(H, make_cid(1), "V1", day="2025-03-01")
    box.load([{"key": key_for("UpdatePHRv1", p), "endpoint": "UpdatePHRv1", "hospcode": H, "payload": p}])
    box.close()
    (row,) = model.facility_rows(src)
    assert (row.built, row.confirmed, row.pending, row.refused) == (1, 0, 1, 0)
    assert row.phr_holds is None and row.pct_in_phr is None and row.his is None and row.last_received is None
    assert model.NOT_SENT in row.problems
    ov = model.overview(src, today=dt.date(2025, 3, 1))
    assert ov.pending == 1 and ov.sending_today == 0 and ov.silent == 1 and ov.his_month is None
    assert ov.daily[-1].built == 1 and ov.daily[-1].phr is None
    assert any("has not asked PHR" in en for _th, en in ov.notes)


# -- the figures follow the stores ------------------------------------------------------------------------------

def _zip(d: Path, name: str, visits: list[dict[str, str]]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    return write_zip(d / name, {"person.txt": text("PERSON", [person("1", 1), person("2", 2)]),
                                "service.txt": text("SERVICE", visits)})


def _item(i: int, day: str, **kw: Any) -> dict[str, Any]:
    p = update_payload(H, make_cid(6000 + i), f"W{i:05d}", day=day, **kw)
    return {"key": key_for("UpdatePHRv1", p), "endpoint": "UpdatePHRv1", "hospcode": H, "payload": p}


def _write(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(i) + b"\n" for i in items))
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SandboxThread, str]]:
    cfg = SandboxConfig(data_dir=tmp_path_factory.mktemp("sbx"), password_key=PASSWORD_KEY, rate_limit_per_minute=0,
                        agent_status_interval=0)
    with running(cfg) as st:
        yield st, st.add_user("u10699", H, "pw-10699")


def _settings(st: SandboxThread, pw_hash: str, url: str) -> DeliverySettings:
    return DeliverySettings(target=Target(name="t", base_url=st.base_url, rate_per_minute=0, backoff_base=0.01),
                            state_url=url, default_credentials=Credentials("u10699", pw_hash),
                            agent_version="phrsync test")


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
    readers.close_all()
    u = make_url(server)
    with psycopg.connect(host=u.host, port=u.port or 5432, user=u.username, dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[tuple[SandboxThread, str]]:
    """A PHR server of the test's own: what it holds is this test's alone."""
    cfg = SandboxConfig(data_dir=tmp_path / "sbx", password_key=PASSWORD_KEY, rate_limit_per_minute=0,
                        agent_status_interval=0)
    with running(cfg) as st:
        yield st, st.add_user("u10699", H, "pw-10699")


def test_the_figures_follow_reimport_new_build_sync_and_retry(own_server: tuple[SandboxThread, str], tmp_path: Path,
                                                              state_url: str) -> None:
    st, pw_hash = own_server
    staging = tmp_path / "staging.duckdb"
    src = Sources(state_url=state_url, staging=staging, build_file=tmp_path / "b.ndjson")
    import_sources(staging, [_zip(tmp_path / "e1", "F43_10699_202503.zip", [
        service("S1", "1", 1, DATE_SERV="20250301"), service("S2", "2", 2, DATE_SERV="20250302")])],
        today=dt.date(2025, 4, 1))
    row = model.facility_rows(src)[0]
    assert (row.his, row.last_his_day, row.built) == (2, dt.date(2025, 3, 2), None)  # no state store yet
    # a re-import with one more visit: the HIS figure follows (the cached figures are dropped with the old file)
    import_sources(staging, [_zip(tmp_path / "e2", "F43_10699_202503b.zip", [
        service("S3", "1", 1, DATE_SERV="20250303")])], today=dt.date(2025, 4, 1))
    row = model.facility_rows(src)[0]
    assert (row.his, row.last_his_day) == (3, dt.date(2025, 3, 3))
    # a build with three good payloads and one PHR refuses; sent and reconciled
    good = [_item(i, day=f"2025-03-0{1 + i}") for i in range(3)]
    bad = _item(9, day="2025-03-03")
    del bad["payload"]["Patient"]["birthDate"]
    nd = _write(tmp_path / "b.ndjson", [*good, bad])
    res = agent.sync(_settings(st, pw_hash, state_url), nd)
    assert res.refused == 1
    (row,) = model.facility_rows(src)
    assert (row.built, row.confirmed, row.refused, row.pending, row.phr_holds) == (4, 3, 1, 0, 3)
    assert model.REFUSED in row.problems and row.pct_in_phr == 100.0
    (refusal,) = [g for g in model.facility_detail(src, H).refusals if not g.at_build]
    assert refusal.owner == model.OWNER_FACILITY and "birthDate" in refusal.reason and refusal.count == 1
    assert "required field missing" in refusal.reason and refusal.examples
    assert not CID13.search(repr(refusal))
    ov = model.overview(src, today=dt.date(2025, 3, 31))
    assert (ov.his_month, ov.phr_month, ov.refused, ov.pending) == (3, 3, 1, 0)
    assert any(a.kind == model.REFUSED and a.hospcode == H for a in ov.attention)
    # a new build: one more encounter on a new day, loaded (not sent yet) — pending shows at once
    box = ob.Outbox(state_url)
    box.load_file(_write(tmp_path / "b.ndjson", [*good, bad, _item(4, day="2025-03-05")]))
    box.close()
    (row,) = model.facility_rows(src)
    assert (row.built, row.pending, row.confirmed) == (5, 1, 3)
    days = {p.day: p for p in model.facility_detail(src, H).days}
    assert days[dt.date(2025, 3, 5)].built == 1 and days[dt.date(2025, 3, 5)].phr is None
    assert days[dt.date(2025, 3, 5)].his == 0 and days[dt.date(2025, 3, 1)].his == 1
    # the facility fixes its data; "send again" (retry --refused with the rebuilt file) confirms everything
    fixed = _item(9, day="2025-03-03")
    nd = _write(tmp_path / "b.ndjson", [*good, fixed, _item(4, day="2025-03-05")])
    res = agent.retry(_settings(st, pw_hash, state_url), refused=True, ndjson=nd, facility=H)
    assert res.refused == 0
    (row,) = model.facility_rows(src)
    assert (row.built, row.confirmed, row.refused, row.pending, row.phr_holds) == (5, 5, 0, 0, 5)
    assert model.REFUSED not in row.problems
    assert [g for g in model.facility_detail(src, H).refusals if not g.at_build] == []
    runs, _sched = model.runs(src, facility=H)
    assert [r.refused for r in runs] == [0, 1] and runs[0].facilities == [H]


def test_a_staging_store_an_import_holds_gives_a_note_not_an_error(tmp_path: Path) -> None:
    staging = tmp_path / "staging.duckdb"
    import_sources(staging, [_zip(tmp_path / "e", "F43_10699_202503.zip", [service("S1", "1", 1)])],
                   today=dt.date(2025, 4, 1))
    src = Sources(state_url=f"sqlite:///{tmp_path / 'none.sqlite'}", staging=staging)
    assert model.facility_rows(src)[0].his == 1  # read once: kept
    code = ("import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); c.execute('CREATE TABLE t (a INT)'); "
            "print('held', flush=True); time.sleep(30)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(staging)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        ov = model.overview(src, today=dt.date(2025, 1, 31))
        assert time.monotonic() - t0 < 2  # never waits for the import
        assert ov.his_month == 1  # the figures last read
        assert any("an import is running: the HIS figures are as of" in en for _th, en in ov.notes)
        assert any("กำลังนำเข้า" in th for th, _en in ov.notes)
        readers.close_all()  # nothing read before: not known, and said why
        ov = model.overview(src, today=dt.date(2025, 1, 31))
        assert ov.his_month is None and any("an import is running" in en for _th, en in ov.notes)
        assert model.facility_rows(src) == []
    finally:
        holder.kill()
        holder.wait()
    assert model.facility_rows(src)[0].his == 1  # the import let go: read again


def test_a_held_back_removal_and_a_late_scheduler_need_attention(server: tuple[SandboxThread, str],
                                                                 tmp_path: Path) -> None:
    st, pw_hash = server
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    settings = _settings(st, pw_hash, url)
    items = [_item(100 + i, day="2025-06-01") for i in range(10)]
    agent.sync(settings, _write(tmp_path / "b.ndjson", items))
    res = agent.sync(settings, _write(tmp_path / "b.ndjson", items[6:]))  # the HIS "lost" 6 of 10: guarded
    assert res.reconcile["guarded"] and res.reconcile["removed"] == 0
    src = Sources(state_url=url)
    (row,) = model.facility_rows(src)
    assert model.GUARDED in row.problems
    ov = model.overview(src, today=dt.date(2025, 6, 1))
    (guard,) = [a for a in ov.attention if a.kind == model.GUARDED]
    assert guard.hospcode == H and "6" in guard.text_en and "held back" in guard.text_en
    # phrsync run records its rhythm: a round that is long overdue means the scheduler died
    stop = threading.Event()
    out = agent.run_agent(settings, None, every_minutes=60, stop=stop, on_round=lambda _r: stop.set())
    assert len(out.rounds) == 1
    _runs, sched = model.runs(src)
    assert sched.every_minutes == 60 and sched.next_run_at is None and not sched.late  # stopped on purpose
    assert sched.last_run_at and not sched.running
    agent.record_schedule(url, 60, next_at=time.time() + 3600)
    assert not model.runs(src)[1].late
    agent.record_schedule(url, 60, next_at=time.time() - 3 * 3600)
    _runs, sched = model.runs(src)
    assert sched.late and sched.next_run_at
    assert any(a.kind == "scheduler" for a in model.overview(src).attention)


def test_sources_from_the_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PHRSYNC_STATE_URL", raising=False)
    monkeypatch.delenv("PHRSYNC_TARGET", raising=False)
    (tmp_path / "phrsync.toml").write_text(
        'data_dir = "d"\n[facilities]\n"10699" = "รพ.ทดสอบ"\n[delivery]\ntarget = "uat"\ncomputer_name = "pc1"\n'
        'state_path = "st/outbox.sqlite"\n[web]\nbuild_file = "out/p.ndjson"\nsandbox_data_dir = "sbx"\n'
        "silent_days = 3\n", encoding="utf-8")
    cfg = load_config(tmp_path / "phrsync.toml")
    src = Sources.from_config(cfg)
    assert src.state_url == f"sqlite:///{(tmp_path / 'st' / 'outbox.sqlite').resolve()}"
    assert src.staging == tmp_path / "d" / "staging.duckdb"
    assert src.build_file == tmp_path / "out" / "p.ndjson" and src.sandbox_data_dir == tmp_path / "sbx"
    assert (src.target, src.computer_name, src.silent_days) == ("uat", "pc1", 3)
    assert model.directory(src)[H].name == "รพ.ทดสอบ"  # [facilities] wins over the code table
    monkeypatch.setenv("PHRSYNC_STATE_URL", "postgresql+psycopg://agent@db/phrsync")
    (tmp_path / "phrsync.toml").write_text('data_dir = "d"\n', encoding="utf-8")
    src = Sources.from_config(load_config(tmp_path / "phrsync.toml"))
    assert src.state_url == "postgresql+psycopg://agent@db/phrsync"  # as a run resolves it
    assert src.build_file == tmp_path / "d" / "payloads.ndjson" and src.silent_days == 7
    assert src.target == "sandbox" and src.sandbox_data_dir is None


def test_directory_names_what_only_the_stores_know(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    box = ob.Outbox(url)
    p = update_payload("99999", make_cid(3), "V1", day="2025-03-01")
    box.load([{"key": key_for("UpdatePHRv1", p), "endpoint": "UpdatePHRv1", "hospcode": "99999", "payload": p}])
    box.close()
    d = model.directory(Sources(state_url=url))
    assert d["99999"] == model.FacilityInfo("99999")  # known to the outbox only: nothing else is guessed
    assert d[H].district == "เมืองสระแก้ว" and d[H].district_en == "Mueang Sa Kaeo" and d[H].kind == "รพท."
    assert len([h for h, f in d.items() if f.province_code == "27"]) >= 139


def test_a_state_store_made_anew_under_the_same_name_is_read_anew(tmp_path: Path) -> None:
    """A demo run again replaces its SQLite store: the web's handle on the old file must not keep showing it."""
    path = tmp_path / "s.sqlite"
    src = Sources(state_url=f"sqlite:///{path}")
    for hcode in (H, "10700"):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        box = ob.Outbox(src.state_url)
        p = update_payload(hcode, make_cid(4), "V1", day="2025-03-01")
        box.load([{"key": key_for("UpdatePHRv1", p), "endpoint": "UpdatePHRv1", "hospcode": hcode, "payload": p}])
        box.close()
        assert [r.info.hospcode for r in model.facility_rows(src)] == [hcode]


def test_the_sandbox_answer_is_kept_until_its_store_changes(tmp_path: Path) -> None:
    """The PHR centre view counts everything the sandbox holds: read once, kept until the store's files change."""
    import sqlite3

    from phrsync.web import readers

    db = tmp_path / "sandbox.sqlite"
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("CREATE TABLE t (x INTEGER)")
        c.execute("INSERT INTO t VALUES (1)")
    calls: list[int] = []

    def count(conn: Any) -> int:
        from sqlalchemy import text as sql

        calls.append(1)
        return int(conn.execute(sql("SELECT count(*) FROM t")).scalar_one())

    readers.close_all()
    assert readers.sandbox(tmp_path, count, key="k")[0] == 1
    assert readers.sandbox(tmp_path, count, key="k")[0] == 1
    assert len(calls) == 1  # the second answer was the kept one
    with sqlite3.connect(db) as c:
        c.execute("INSERT INTO t VALUES (2)")
    assert readers.sandbox(tmp_path, count, key="k")[0] == 2  # the store changed: read again
    assert len(calls) == 2
    assert readers.sandbox(tmp_path, count)[0] == 2 and len(calls) == 3  # no key: always read
