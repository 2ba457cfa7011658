"""Sandbox on PostgreSQL (real server at 127.0.0.1:5432): upsert, removal and restart. In CI a missing
server fails the test (dbfixtures.unavailable); elsewhere it is skipped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dbfixtures import postgres_server, unique_name  # noqa: F401 - pytest fixture
from sqlalchemy.engine import make_url
from test_sandbox_support import (
    PASSWORD_KEY,
    login,
    make_cid,
    refs,
    update_payload,
    upsert_and_remove_scenario,
)

from phrsync.sandbox.server import run_in_thread, running
from phrsync.sandbox.settings import SandboxConfig

pytestmark = pytest.mark.postgres


def _admin(server_url: str):  # type: ignore[no-untyped-def]
    import psycopg

    u = make_url(server_url)
    return psycopg.connect(host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username or "postgres",
                           dbname=u.database or "postgres", autocommit=True, connect_timeout=5)


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:  # noqa: F811
    """A fresh, uniquely named database for this test; dropped afterwards."""
    name = unique_name("phrsync_sbx")
    with _admin(postgres_server) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    with _admin(postgres_server) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_upsert_and_remove_postgres(pg_url: str, tmp_path: Path) -> None:
    cfg = SandboxConfig(data_dir=tmp_path, db_url=pg_url, password_key=PASSWORD_KEY, rate_limit_per_minute=0)
    with running(cfg) as st:
        upsert_and_remove_scenario(st, "10702")
        # concurrent uploads of one ref from several connections still leave exactly one row
        import concurrent.futures as cf

        c = login(st, "10705")
        cid = make_cid(55)
        with cf.ThreadPoolExecutor(8) as ex:
            codes = list(ex.map(lambda w: c.post("/api/UpdatePHRv1", json=update_payload(
                "10705", cid, "SAME", weight=60 + w)).status_code, range(16)))
        assert codes == [200] * 16
        assert refs(c, "10705", "2025-01-15") == ["10705:SAME"]


def test_postgres_data_survives_restart(pg_url: str, tmp_path: Path) -> None:
    cfg = SandboxConfig(data_dir=tmp_path, db_url=pg_url, password_key=PASSWORD_KEY)
    with running(cfg) as st:
        c = login(st, "99999")
        assert c.post("/api/UpdatePHRv1", json=update_payload("99999", make_cid(56), "R1")).status_code == 200
        token = c.headers["Authorization"]
    with run_in_thread(SandboxConfig(data_dir=tmp_path, db_url=pg_url, password_key=PASSWORD_KEY)) as base:
        c2 = httpx.Client(base_url=base, headers={"Authorization": token})
        assert refs(c2, "99999", "2025-01-15") == ["99999:R1"]


def test_postgres_odd_strings_are_not_500(pg_url: str, tmp_path: Path) -> None:
    """NUL characters and very long keys are legal JSON but not legal PostgreSQL text/varchar values."""
    cfg = SandboxConfig(data_dir=tmp_path, db_url=pg_url, password_key=PASSWORD_KEY, rate_limit_per_minute=0)
    with running(cfg) as st:
        c = login(st, "99999")
        r = c.post("/api/UpdateAgentStatus", json={"hospital_code": "99999", "agent_status": "a\x00b",
                                                   "agent_computer_name": "PC\x00"})
        assert r.status_code == 200, r.text
        long_ref = "99999:" + "V" * 300
        p = update_payload("99999", make_cid(57), "X")
        p["Encounter"][0]["identifier"][0]["value"] = long_ref
        r = c.post("/api/UpdatePHRv1", json=p)
        assert r.status_code in (200, 400), r.text
        r = c.get("/api/RemoveEncounter", params={"hospital_code": "99999", "encounter_ref_code": "A\x00" + long_ref})
        assert r.status_code == 200, r.text
        r = c.post("/api/PatientChronicRegisterv1", params={"mode": "remove", "cd_code": "0\x0001"}, json=["x\x00"])
        assert r.status_code == 200, r.text
        r = c.get("/api/OrganizationSummary", params={"data": "patient_chronic_registry", "cd_code": "\x00"})
        assert r.status_code == 200, r.text


def test_check_ekyc_answers_from_the_register_on_postgres(pg_url: str, tmp_path: Path) -> None:
    """On a server database check_ekyc reads through SQLAlchemy in the thread pool (ekyc.Checker)."""
    from phrsync.pdpa import cid_check_digit
    from phrsync.sandbox import ekyc

    cfg = SandboxConfig(data_dir=tmp_path, db_url=pg_url, password_key=PASSWORD_KEY, rate_limit_per_minute=0,
                        ekyc_rate_limit_per_minute=0)
    people = [f"32501{i:07d}" + cid_check_digit(f"32501{i:07d}") for i in range(1, 61)]
    with running(cfg) as st:
        assert st.sandbox.ekyc.path is None
        st.seed_register("citizen", [(c, "2708") for c in people])
        c = login(st, "10705")
        got = {x: c.post("/idp/api/check_ekyc", json={"cid": x}).json()["result"] for x in people}
    assert got == ekyc.deal([(x, "2708") for x in people], {"2708": 0.2333})
    assert sum(1 for v in got.values() if v) == 14  # round(0.2333 x 60)
