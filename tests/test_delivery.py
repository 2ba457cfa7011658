"""Delivery agent: configuration, tokens, outbox (SQLite and PostgreSQL), refusals in ``phrsync status``,
``retry --refused``, reconcile (confirm, resend what PHR lost, guarded removal) against the local server."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner
from dbfixtures import (
    postgres_server,  # noqa: F401  (fixture)
    unique_name,
)
from sqlalchemy import event, select
from test_sandbox_support import PASSWORD_KEY, make_cid, update_payload

from phrsync.cli import cli
from phrsync.config import Config, load_config
from phrsync.delivery import outbox as ob
from phrsync.delivery.agent import EXIT_LOCKED, EXIT_REFUSED, EXIT_UNDELIVERED, sync_payloads
from phrsync.delivery.auth import AuthError, TokenProvider, jwt_exp
from phrsync.delivery.config import ConfigError, Credentials, load_delivery, password_hash
from phrsync.errors import Exit
from phrsync.phr.mapping import key_for
from phrsync.sandbox import store
from phrsync.sandbox.server import SandboxThread, running
from phrsync.sandbox.settings import SandboxConfig
from phrsync.thai import thai_datetime

H = "10699"


def item(i: int, day: str = "2025-03-01", weight: float = 60, hcode: str = H) -> dict[str, Any]:
    p = update_payload(hcode, make_cid(5000 + i), f"R{i:05d}", day=day, weight=weight)
    return {"key": key_for("UpdatePHRv1", p), "endpoint": "UpdatePHRv1", "hospcode": hcode, "payload": p}


def write(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(i) + b"\n" for i in items))
    return path


def fake_jwt(exp: float) -> str:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{enc({'alg': 'HS256'})}.{enc({'exp': exp})}.sig"


# ---- configuration --------------------------------------------------------------------------

def test_config_targets_credentials_and_tls(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    (tmp_path / "phrsync.toml").write_text(
        '[delivery]\ntarget = "uat"\nuser = "province"\n[delivery.facilities.10699]\nuser = "pcu"\n'
        '[targets.uat]\nca_bundle = "ca.pem"\n', encoding="utf-8")
    cfg = load_config(tmp_path / "phrsync.toml")
    env = {"PHRSYNC_PHR_PASSWORD_KEY": "k", "PHRSYNC_PHR_PASSWORD": "pw-one-secret", "PHRSYNC_PHR_PASSWORD_10699": "p2"}
    s = load_delivery(cfg, env=env)
    assert s.target.base_url == "https://203.150.143.180" and s.target.verify == str(tmp_path / "ca.pem")
    assert s.credentials("10699").user == "pcu" and s.credentials("10699").password_hash == password_hash("p2", "k")
    assert s.credentials("12345").user == "province" and s.credentials("12345").password_hash == password_hash("pw-one-secret", "k")
    assert "pw-one-secret" not in repr(s) and password_hash("pw-one-secret", "k") not in repr(s)
    assert load_delivery(cfg, "production", env=env).target.verify is True
    (tmp_path / "bad.toml").write_text('[targets.uat]\nverify = false\n', encoding="utf-8")
    with pytest.raises(ConfigError):
        load_delivery(load_config(tmp_path / "bad.toml"), "uat", env=env)
    with pytest.raises(ConfigError):  # a password without the hash key cannot be turned into password_hash
        load_delivery(cfg, env={"PHRSYNC_PHR_PASSWORD": "pw-one-secret"})


def test_secret_file_must_be_private(tmp_path: Path) -> None:
    f = tmp_path / "pw"
    f.write_text("s3cret\n")
    os.chmod(f, 0o644)
    cfg = Config(data_dir=tmp_path, raw={"delivery": {"user": "u", "password_file": str(f)}})
    with pytest.raises(ConfigError):
        load_delivery(cfg, "sandbox", env={"PHRSYNC_PHR_PASSWORD_KEY": "k"})
    os.chmod(f, 0o600)
    s = load_delivery(cfg, "sandbox", env={"PHRSYNC_PHR_PASSWORD_KEY": "k"})
    assert s.default_credentials.password_hash == password_hash("s3cret", "k")


def test_missing_password_names_what_to_set() -> None:
    """A facility whose user had no password was told only "no account configured"."""
    async def go(creds: Credentials) -> str:
        async with httpx.AsyncClient() as client:
            with pytest.raises(AuthError) as e:
                await TokenProvider(client, "http://127.0.0.1:9/token", lambda h: creds).bearer(H, "UpdatePHRv1")
        return str(e.value)

    msg = asyncio.run(go(Credentials(user="pcu")))
    assert "pcu" in msg and f"PHRSYNC_PHR_PASSWORD_{H}" in msg
    assert f"[delivery.facilities.{H}]" in asyncio.run(go(Credentials()))


def test_broken_config_file_is_a_clear_usage_error(tmp_path: Path) -> None:
    """A TOML mistake or a missing --config file used to end in a traceback (exit 1)."""
    bad = tmp_path / "phrsync.toml"
    bad.write_text('[delivery\ntarget = "uat"\n', encoding="utf-8")
    run = CliRunner()
    r = run.invoke(cli, ["--config", str(bad), "status"])
    assert r.exit_code == 2, r.output
    assert str(bad) in r.output and "line 1" in r.output and "Traceback" not in r.output
    r = run.invoke(cli, ["--config", str(tmp_path / "nowhere.toml"), "sync"])
    assert r.exit_code == 2 and "nowhere.toml" in r.output
    assert run.invoke(cli, ["--config", str(bad), "sync", "--help"]).exit_code == 0


@pytest.mark.parametrize(("toml", "named"), [
    ('[targets.t]\nbase_url = "http://x"\nconcurrency = "4"\n', "concurrency"),
    ('[targets.t]\nbase_url = 5\n', "base_url"),
    ('[targets.t]\nbase_url = "http://x"\ntimeout = true\n', "timeout"),
    ('[targets]\nt = "http://x"\n', "[targets.t]"),
    ('[targets.t]\nbase_url = "https://x"\nca_bundle = "no-such-ca.pem"\n', "no-such-ca.pem"),
    ('[delivery]\nremove_max_fraction = "x"\n[targets.t]\nbase_url = "http://x"\n', "remove_max_fraction"),
    ('[delivery]\nfacilities = "10699"\n[targets.t]\nbase_url = "http://x"\n', "[delivery.facilities]"),
])
def test_wrongly_typed_settings_are_named(tmp_path: Path, toml: str, named: str) -> None:
    """A value of the wrong type (or a ca_bundle that is not there) used to crash mid-run with a traceback."""
    (tmp_path / "phrsync.toml").write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(named)):
        load_delivery(load_config(tmp_path / "phrsync.toml"), "t", env={})
    r = CliRunner().invoke(cli, ["--config", str(tmp_path / "phrsync.toml"), "sync", "--target", "t", "--dry-run"])
    assert r.exit_code == 2 and named in r.output, r.output


def test_run_every_minutes_must_be_a_number(tmp_path: Path) -> None:
    (tmp_path / "phrsync.toml").write_text('[delivery]\nevery_minutes = "hourly"\n', encoding="utf-8")
    r = CliRunner().invoke(cli, ["--config", str(tmp_path / "phrsync.toml"), "run", "--once"])
    assert r.exit_code == 2 and "every_minutes" in r.output, r.output


# ---- tokens ---------------------------------------------------------------------------------

def test_token_renewed_15_minutes_before_exp_and_once_on_401() -> None:
    now = [1_000_000.0]
    issued: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        body = json.loads(req.content)
        if body["password_hash"] != "H":
            return httpx.Response(401, text="no")
        tok = fake_jwt(now[0] + 3600)[:-3] + f"s{len(issued)}A"  # a signature is base64url
        issued.append(tok)
        return httpx.Response(200, text=tok + "\n")

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as c:
            tp = TokenProvider(c, "http://x/token", lambda h: Credentials("u", "H"), clock=lambda: now[0])
            b1 = await tp.bearer(H, "UpdatePHRv1")
            assert b1 == f"Bearer {issued[0]}"
            now[0] += 3600 - 15 * 60 - 1  # still > 15 min left
            assert await tp.bearer(H, "UpdatePHRv1") == b1 and len(issued) == 1
            now[0] += 2  # now within 15 minutes of exp
            b2 = await tp.bearer(H, "UpdatePHRv1")
            assert b2 != b1 and len(issued) == 2
            tp.invalidate(H, b2)  # PHR said 401
            assert await tp.bearer(H, "UpdatePHRv1") == f"Bearer {issued[2]}"
            bad = TokenProvider(c, "http://x/token", lambda h: Credentials("u", "WRONG"), clock=lambda: now[0])
            with pytest.raises(AuthError):
                await bad.bearer(H, "UpdatePHRv1")
            with pytest.raises(AuthError):  # a refused login is not tried again (account lockout)
                await bad.bearer(H, "UpdatePHRv1")
            assert bad.logins == 1
            ft = TokenProvider(c, "http://x/token", lambda h: Credentials(facility_token="10699:{AB}"))
            assert await ft.bearer(H, "UpdatePHRv1") == "Bearer 10699:{AB}"
            with pytest.raises(AuthError):  # the 1-year token is for UpdatePHRv1 only
                await ft.bearer(H, "OrganizationSummary")

    asyncio.run(go())
    assert jwt_exp(fake_jwt(123)) == 123 and jwt_exp("not-a-jwt") is None


def test_jwt_claims_read_without_the_issuer_key() -> None:
    """The agent cannot verify PHR's token (only the issuer holds the key): exp and iat are read from any
    well-formed JWT, also one signed with a key it never saw or already expired; anything else reads as None."""
    import jwt

    from phrsync.delivery.auth import jwt_claims, jwt_time

    tok = jwt.encode({"exp": 2_000_000_000, "iat": 1_999_990_000, "sub": "u"}, "the issuer-only key, never on this computer", algorithm="HS256")
    assert (jwt_exp(tok), jwt_time(tok, "iat")) == (2_000_000_000, 1_999_990_000)
    old = jwt.encode({"exp": 10, "iat": True}, "k" * 32, algorithm="HS256")
    assert jwt_exp(old) == 10 and jwt_time(old, "iat") is None  # expired still read; a bool is not a time
    assert jwt_claims("a.b.c") is None and jwt_claims("") is None and jwt_time("x.y", "exp") is None


def test_token_issuer_429_passes_its_retry_after_on() -> None:
    async def go() -> float:
        def handler(req: httpx.Request) -> httpx.Response:
            return httpx.Response(429, headers={"Retry-After": "7"})

        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as c:
            tp = TokenProvider(c, "http://x/token", lambda h: Credentials("u", "H"))
            with pytest.raises(AuthError) as e:
                await tp.bearer(H, "UpdatePHRv1")
        assert e.value.transient
        return e.value.wait

    assert asyncio.run(go()) == 7


# ---- outbox ---------------------------------------------------------------------------------

def outbox_roundtrip(url: str) -> None:
    box = ob.Outbox(url)
    try:
        items = [item(i) for i in range(5)]
        r = box.load(items, "a")
        assert (r.new, r.changed, r.unchanged) == (5, 0, 0)
        rows = list(box.to_send())
        assert len(rows) == 5 and orjson.loads(rows[0].body) == items[0]["payload"]
        assert rows[0].day == "2025-03-01" and rows[0].ref == f"{H}:R00000"
        box.mark_sending(rows[0].key)
        assert box.row(rows[0].key)["status"] == ob.SENDING and box.row(rows[0].key)["attempts"] == 1
        for row in rows:
            box.mark_result(row.key, ob.CONFIRMED, 200)
        items[2] = item(2, weight=61)
        r = box.load(items, "b")
        assert (r.new, r.changed, r.unchanged) == (0, 1, 4) and r.changed_keys == [items[2]["key"]]
        assert [x.key for x in box.to_send()] == [items[2]["key"]]
        box.mark_result(items[2]["key"], ob.REFUSED, 400, "rule_x", "HTTP 400: bad")
        assert box.counts()[H][ob.REFUSED] == 1 and box.top_reasons(H)[0]["reason"] == "rule_x"
        assert box.requeue_refused() == 1 and box.count_to_send() == 1
        assert box.plan(items).unchanged == 5
        # the HIS deleted item 4: it is marked missing; the unchanged rows are not rewritten at all
        before = {i["key"]: box.row(i["key"]) for i in items}
        r = box.load(items[:4], "c")
        assert (r.unchanged, r.missing) == (4, 1) and box.row(items[4]["key"])["missing_load"] == r.load_id
        assert all(box.row(i["key"]) == before[i["key"]] for i in items[:4])
        assert box.day_flags(H) == {"2025-03-01": (False, True)}
        r = box.load(items, "d")  # back in the HIS, unchanged
        assert (r.unchanged, r.missing) == (5, 0) and box.row(items[4]["key"])["missing_load"] is None
        assert box.day_flags(H) == {"2025-03-01": (False, False)}
        # the same through a build file, twice: the second time the day is recorded and taken whole
        with tempfile.TemporaryDirectory() as d:
            f = Path(d) / "build.ndjson"
            f.write_bytes(built_lines(items))
            assert box.load_file(f).as_dict() == {"new": 0, "changed": 0, "unchanged": 5, "total": 5, "missing": 0}
            f.write_bytes(built_lines(items[:4]))
            assert (box.load_file(f).missing, box.load_file(f).missing) == (1, 0)
    finally:
        box.close()


def test_build_file_lines_are_compared_without_parsing_the_payload(tmp_path: Path) -> None:
    """Lines as ``phrsync build`` writes them (sorted keys) are split, not parsed; a payload whose bytes are
    not canonical is parsed and still recognised as unchanged; other lines are parsed whole."""
    items = [item(i) for i in range(4)]
    sort = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE
    built = tmp_path / "built.ndjson"
    built.write_bytes(b"".join(orjson.dumps(i, option=sort) for i in items))
    got = list(ob.iter_build_file(built))
    assert all(g["payload"] is None and orjson.loads(g["payload_bytes"]) == i["payload"]
               for g, i in zip(got, items, strict=True))
    assert got[0]["key"] == items[0]["key"] and got[0]["hospcode"] == H
    box = ob.Outbox(f"sqlite:///{tmp_path / 's.sqlite'}")
    try:
        assert box.load(ob.iter_build_file(built), str(built)).new == 4
        r = box.load(ob.iter_build_file(built), str(built))
        assert (r.unchanged, r.changed, r.total) == (4, 0, 4)
        # the same content written differently (a header-sorted line, payload keys in another order)
        other = tmp_path / "other.ndjson"
        head = orjson.dumps({k: v for k, v in sorted(items[0].items()) if k != "payload"})[:-1]
        reordered = orjson.dumps(dict(reversed(list(items[0]["payload"].items()))))
        changed = dict(items[1], payload=item(1, weight=77)["payload"])
        other.write_bytes(head + b',"payload":' + reordered + b"}\n" + orjson.dumps(changed) + b"\n"
                          + b"".join(orjson.dumps(i, option=sort) for i in items[2:]))
        r = box.load(ob.iter_build_file(other), str(other))
        assert (r.unchanged, r.changed, r.new) == (3, 1, 0) and r.changed_keys == [items[1]["key"]]
        bad = tmp_path / "bad.ndjson"
        bad.write_bytes(head + b',"payload":{"broken"}\n')
        with pytest.raises(ValueError, match="line 1"):
            box.load(ob.iter_build_file(bad), str(bad))
    finally:
        box.close()
    # with the visit day beside each encounter (as ``phrsync build`` writes it) nothing is parsed: the rows are
    # the same as when the day is worked out of the payload, and a later line without the day finds them
    with_day = tmp_path / "with-day.ndjson"
    with_day.write_bytes(b"".join(orjson.dumps(dict(i, day=ob.encounter_day(i["payload"])), option=sort)
                                  for i in items))
    got = list(ob.iter_build_file(with_day))
    assert [g["day"] for g in got] == [ob.encounter_day(i["payload"]) for i in items]
    boxes = [ob.Outbox(f"sqlite:///{tmp_path / name}") for name in ("a.sqlite", "b.sqlite")]
    try:
        assert boxes[0].load(ob.iter_build_file(with_day), str(with_day)).new == 4
        assert boxes[1].load(ob.iter_build_file(built), str(built)).new == 4
        for i in items:
            a, b = (bx.row(i["key"]) for bx in boxes)
            assert {k: a[k] for k in ("ref", "day", "content_hash")} == {k: b[k] for k in ("ref", "day", "content_hash")}
        assert [r.body for r in boxes[0].to_send()] == [r.body for r in boxes[1].to_send()]
        assert boxes[0].load(ob.iter_build_file(built), str(built)).unchanged == 4
    finally:
        for bx in boxes:
            bx.close()


def test_outbox_sqlite(tmp_path: Path) -> None:
    outbox_roundtrip(f"sqlite:///{tmp_path / 'o.sqlite'}")
    # a state store made before the missing_load column existed is upgraded in place
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    box = ob.Outbox(url)
    box.load([item(1)], "a")
    with box.engine.begin() as c:
        c.exec_driver_sql("DROP INDEX ix_delivery_outbox_missing")
        c.exec_driver_sql("ALTER TABLE delivery_outbox DROP COLUMN missing_load")
    box.close()
    box = ob.Outbox(url)
    try:
        assert box.row(item(1)["key"])["missing_load"] is None and box.load([item(1)], "b").unchanged == 1
    finally:
        box.close()
    # ... and one from before the payloads had their own table (a zlib stream in the row) is moved over
    box = ob.Outbox(url)
    body = next(box.to_send()).body
    with box.engine.begin() as c:
        c.exec_driver_sql("ALTER TABLE delivery_outbox ADD COLUMN payload BLOB")
        c.exec_driver_sql("UPDATE delivery_outbox SET payload = ?", (zlib.compress(body, 1),))
        c.exec_driver_sql("DROP TABLE delivery_payloads")
    box.close()
    box = ob.Outbox(url)
    try:
        rows = list(box.to_send())
        assert [r.body for r in rows] == [body] and "payload" not in box.row(rows[0].key)
        assert box.load([item(1)], "c").unchanged == 1
    finally:
        box.close()
    nd = write(tmp_path / "b.ndjson", [item(1), item(2, hcode="10700")])
    assert ob.ndjson_facilities(nd) == [H, "10700"]
    (tmp_path / "bad.ndjson").write_bytes(b'{"key": "x"}\n')
    with pytest.raises(ValueError):
        list(ob.iter_ndjson(tmp_path / "bad.ndjson"))


def test_outbox_postgres(postgres_server: str) -> None:  # noqa: F811
    import psycopg
    from sqlalchemy.engine import make_url

    name = unique_name()
    url = str(make_url(postgres_server).set(database=name).render_as_string(hide_password=False))
    try:
        outbox_roundtrip(url)
    finally:
        u = make_url(postgres_server)
        with psycopg.connect(host=u.host, port=u.port or 5432, user=u.username, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---- against the local server ---------------------------------------------------------------

@pytest.fixture(scope="module")
def sbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SandboxThread, str]]:
    cfg = SandboxConfig(data_dir=tmp_path_factory.mktemp("sbx"), password_key=PASSWORD_KEY,
                        rate_limit_per_minute=0, agent_status_interval=0)
    with running(cfg) as st:
        yield st, st.add_user("u10699", H, "pw-10699")


def held(st: SandboxThread, hcode: str = H) -> set[str]:
    return set(st.sandbox.store.read(lambda c: c.execute(
        select(store.encounters.c.ref).where(store.encounters.c.hospital_code == hcode)).scalars().all()))


def test_refused_reasons_in_status_and_retry(sbx: tuple[SandboxThread, str], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    st, pw_hash = sbx
    good = [item(100 + i, day="2025-04-02") for i in range(3)]
    bad = item(199, day="2025-04-02")
    del bad["payload"]["Patient"]["birthDate"]
    nd = write(tmp_path / "b.ndjson", [*good, bad])
    (tmp_path / "phrsync.toml").write_text(
        f'data_dir = "data"\n[delivery]\ntarget = "t"\nuser = "u10699"\n'
        f'[targets.t]\nbase_url = "{st.base_url}"\nrate_per_minute = 0\nbackoff_base = 0.01\n', encoding="utf-8")
    monkeypatch.setenv("PHRSYNC_PHR_PASSWORD", "pw-10699")
    monkeypatch.setenv("PHRSYNC_PHR_PASSWORD_KEY", PASSWORD_KEY)
    run = CliRunner()
    conf = ["--config", str(tmp_path / "phrsync.toml")]
    r = run.invoke(cli, [*conf, "sync", "-i", str(nd), "--json"])
    assert r.exit_code == EXIT_REFUSED, r.output
    res = json.loads(r.stdout)
    assert res["refused"] == 1 and res["sent"] == 3
    r = run.invoke(cli, [*conf, "status", "--json"])
    assert r.exit_code == 0, r.output
    fac = json.loads(r.stdout)["facilities"][H]
    assert fac["confirmed"] == 3 and fac["refused"] == 1
    assert time.time() - 600 < fac["last_delivery"] <= fac["last_change"] <= time.time()  # this facility's own times
    top = fac["top_refusals"][0]
    assert top["count"] == 1 and "birthDate" in top["example"]
    assert make_cid(5199) not in r.output
    r = run.invoke(cli, [*conf, "status"])
    assert "birthDate" in r.output and "ถูกปฏิเสธ" in r.output
    assert f"ส่งสำเร็จล่าสุด last delivery {thai_datetime(fac['last_delivery'])}" in r.output
    assert "(UTC+7)" in r.output  # every time says its zone
    # retry without --refused leaves it alone; with --refused it is sent again (and refused again)
    r = run.invoke(cli, [*conf, "retry", "--json"])
    assert json.loads(r.stdout)["attempted"] == 0
    r = run.invoke(cli, [*conf, "retry", "--refused", "--json"])
    assert json.loads(r.stdout)["attempted"] == 1 and json.loads(r.stdout)["refused"] == 1
    r = run.invoke(cli, [*conf, "sync", "-i", str(nd), "--dry-run", "--json"])
    assert json.loads(r.stdout)["loaded"]["unchanged"] == 4
    for cmd in ("sync", "status", "retry", "run"):
        assert run.invoke(cli, [cmd, "--help"]).exit_code == 0


def test_retry_refused_sends_the_fixed_data(sbx: tuple[SandboxThread, str], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """``retry --refused`` after the data is fixed (and rebuilt) resent the refused copy from the outbox, which
    was refused again; it now reads the build file first, so the fixed payload goes."""
    st, _ = sbx
    nd = tmp_path / "payloads.ndjson"
    bad = item(1300, day="2025-04-09")
    del bad["payload"]["Patient"]["birthDate"]
    write(nd, [item(1301, day="2025-04-09"), bad])
    (tmp_path / "phrsync.toml").write_text(
        f'data_dir = "data"\n[delivery]\ntarget = "t"\nuser = "u10699"\ninput = "{nd}"\n'
        f'[targets.t]\nbase_url = "{st.base_url}"\nrate_per_minute = 0\n', encoding="utf-8")
    monkeypatch.setenv("PHRSYNC_PHR_PASSWORD", "pw-10699")
    monkeypatch.setenv("PHRSYNC_PHR_PASSWORD_KEY", PASSWORD_KEY)
    conf = ["--config", str(tmp_path / "phrsync.toml")]
    run = CliRunner()
    assert run.invoke(cli, [*conf, "sync"]).exit_code == EXIT_REFUSED
    write(nd, [item(1301, day="2025-04-09"), item(1300, day="2025-04-09")])  # fixed in the HIS, rebuilt
    r = run.invoke(cli, [*conf, "retry", "--refused", "--json"])
    res = json.loads(r.stdout)
    assert (r.exit_code, res["refused"], res["outbox"][H][ob.REFUSED]) == (0, 0, 0), r.output
    assert f"{H}:R01300" in held(st)


def test_reconcile_resends_lost_and_guards_removal(sbx: tuple[SandboxThread, str], tmp_path: Path) -> None:
    st, pw_hash = sbx
    day = "2025-05-03"
    items = [item(300 + i, day=day) for i in range(20)]
    state = tmp_path / "state.sqlite"
    creds = Credentials("u10699", pw_hash)
    run: Callable[..., Any] = lambda its, **kw: sync_payloads(  # noqa: E731
        write(tmp_path / "b.ndjson", its), st.base_url, creds, state, backoff_base=0.01, **kw)
    res = run(items)
    assert res.exit_code == 0 and res.reconcile["confirmed"] == 20 and res.reconcile["full"]
    refs = {i["payload"]["Encounter"][0]["identifier"][0]["value"] for i in items}
    assert refs <= held(st)
    # PHR lost one. A run with nothing new asks PHR about no day at all (incremental runs stay cheap)...
    lost = sorted(refs)[0]
    st.sandbox.store.write(lambda c: store.remove_encounter(c, H, lost))
    res = run(items)
    assert res.reconcile["days"] == 0 and not res.reconcile["full"] and res.sent == 0
    # ...the full check (every full_check_days, or asked for) notices and sends it again
    res = run(items, full_check=True)
    assert res.reconcile["full"] and res.reconcile["resend"] == 1 and res.sent == 1 and lost in held(st)
    # the HIS deleted 2 of 20 (10% ≤ 20%): removed from PHR
    res = run(items[2:], remove=True)
    assert res.reconcile["removed"] == 2 and res.exit_code == 0
    kept = {i["payload"]["Encounter"][0]["identifier"][0]["value"] for i in items[2:]}
    assert {r for r in held(st) if r.startswith(f"{H}:R003")} == kept
    # the HIS "lost" 10 of 18 (> 20%): held back, nothing removed
    res = run(items[12:], remove=True)
    assert res.reconcile["removed"] == 0 and res.reconcile["guarded"][0]["would_remove"] == 10
    assert {r for r in held(st) if r.startswith(f"{H}:R003")} == kept
    # back in the HIS: a removed row is sent again
    res = run(items, remove=True)
    assert res.sent == 2 and {r for r in held(st) if r.startswith(f"{H}:R003")} == refs
    # a removal cut short by a crash (gone from PHR, outbox still "confirmed"): not sent again
    ref0 = items[0]["payload"]["Encounter"][0]["identifier"][0]["value"]
    st.sandbox.store.write(lambda c: store.remove_encounter(c, H, ref0))
    res = run(items[1:], remove=True)
    assert res.sent == 0 and res.reconcile["resend"] == 0 and ref0 not in held(st)
    box = ob.Outbox(f"sqlite:///{state}")
    assert box.row(items[0]["key"])["status"] == ob.REMOVED
    box.close()


def test_kill_in_doubt_row_is_resent_without_duplicate(sbx: tuple[SandboxThread, str], tmp_path: Path) -> None:
    """A row left ``sending`` (the request landed, the answer was lost) is sent again and stays single."""
    st, pw_hash = sbx
    items = [item(400 + i, day="2025-06-01") for i in range(4)]
    state = tmp_path / "s.sqlite"
    creds = Credentials("u10699", pw_hash)
    res = sync_payloads(write(tmp_path / "b.ndjson", items), st.base_url, creds, state)
    assert res.exit_code == 0
    cpu = res.as_dict()["cpu_seconds"]  # the run's own CPU by phase, for sizing a server
    assert set(cpu) == {"load", "send", "verify"} and all(v >= 0 for v in cpu.values()) and cpu["send"] > 0
    box = ob.Outbox(f"sqlite:///{state}")
    r = box.row(items[1]["key"])  # as if killed after sending, before recording the answer:
    assert not box.apply([(r["key"], r["status"], r["claimed_by"])], [])  # claimed as the sender claims
    box.close()
    t0 = time.time()
    res = sync_payloads(tmp_path / "b.ndjson", st.base_url, creds, state)
    assert res.in_doubt == 1 and res.sent == 1 and res.exit_code == 0
    refs = st.sandbox.store.read(lambda c: c.execute(
        select(store.encounters.c.ref, store.encounters.c.received_at).where(store.encounters.c.day == "2025-06-01")
    ).all())
    assert len(refs) == 4 and sum(1 for _, t in refs if t >= t0) == 1


def test_target_down_leaves_everything_for_next_run(tmp_path: Path) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there: every connection is refused
    items = [item(500 + i) for i in range(3)]
    res = sync_payloads(write(tmp_path / "b.ndjson", items), f"http://127.0.0.1:{port}", Credentials("u", "H"),
                        tmp_path / "s.sqlite", backoff_base=0.01, backoff_max=0.05, breaker_failures=3,
                        breaker_cooldown=0.05, give_up_seconds=0.5)
    assert res.exit_code == EXIT_UNDELIVERED and res.sent == 0
    assert res.remaining() == 3 and H in res.skipped
    assert untouched(tmp_path / "s.sqlite", items)  # never claimed: still pending, no attempt counted


def untouched(state: Path, items: list[dict[str, Any]]) -> bool:
    box = ob.Outbox(f"sqlite:///{state}")
    try:
        return all((box.row(i["key"]) or {}).get("status") == ob.PENDING and box.row(i["key"])["attempts"] == 0
                   for i in items)
    finally:
        box.close()


def another_computer_reports(st: SandboxThread, user: str, pw_hash: str, hcode: str) -> None:
    """Computer "other-pc" tells PHR it is sending for ``hcode`` (UpdateAgentStatus), as a second agent would."""
    c = httpx.Client(base_url=st.base_url)
    tok = c.post("/token", params={"Action": "get_moph_access_token"},
                 content=json.dumps({"user": user, "password_hash": pw_hash, "hospital_code": hcode})).text.strip()
    r = c.post("/api/UpdateAgentStatus", headers={"Authorization": f"Bearer {tok}"},
               json={"hospital_code": hcode, "agent_status": "processing", "agent_computer_name": "other-pc"})
    assert r.status_code == 200, r.text


def test_another_computer_sending_for_the_facility(sbx: tuple[SandboxThread, str], tmp_path: Path) -> None:
    st, _ = sbx
    h = "10701"
    pw = st.add_user("u10701", h, "pw-10701")
    another_computer_reports(st, "u10701", pw, h)
    res = sync_payloads(write(tmp_path / "b.ndjson", [item(600, hcode=h)]), st.base_url,
                        Credentials("u10701", pw), tmp_path / "s.sqlite")
    assert res.exit_code == Exit.AUTH and res.skip_kind == {h: "other_agent"} and res.sent == 0
    assert not held(st, h)
    assert untouched(tmp_path / "s.sqlite", [item(600, hcode=h)])


def test_run_once_and_local_lock(sbx: tuple[SandboxThread, str], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    st, _ = sbx
    write(tmp_path / "payloads.ndjson", [item(700 + i, day="2025-07-01") for i in range(2)])
    (tmp_path / "phrsync.toml").write_text(  # a relative input is found beside the configuration, from any folder
        f'data_dir = "data"\n[delivery]\ntarget = "t"\nuser = "u10699"\ninput = "payloads.ndjson"\n'
        f'[targets.t]\nbase_url = "{st.base_url}"\nrate_per_minute = 0\n', encoding="utf-8")
    monkeypatch.setenv("PHRSYNC_PHR_PASSWORD", "pw-10699")
    monkeypatch.setenv("PHRSYNC_PHR_PASSWORD_KEY", PASSWORD_KEY)
    conf = ["--config", str(tmp_path / "phrsync.toml")]
    r = CliRunner().invoke(cli, [*conf, "run", "--once", "--json"])
    assert r.exit_code == 0, r.output
    assert len(r.stdout.strip().splitlines()) == 1  # one JSON object per round, on one line
    assert json.loads(r.stdout)["sent"] == 2
    from phrsync.delivery.agent import AgentBusy, StoreLease

    box = ob.Outbox(f"sqlite:///{tmp_path / 'data' / 'delivery' / 'outbox.sqlite'}")
    lease = StoreLease(box, "other-pc").acquire()  # another agent holds the store's lease
    try:
        with pytest.raises(AgentBusy):
            StoreLease(ob.Outbox(box.url), "third-pc").acquire()
        r = CliRunner().invoke(cli, [*conf, "sync", "--json"])
        assert r.exit_code == EXIT_LOCKED and "other-pc" in r.output
    finally:
        lease.release()
        box.close()

    def interrupted(coro: Any) -> Any:
        coro.close()
        raise KeyboardInterrupt

    from phrsync.delivery import agent as agent_mod

    monkeypatch.setattr(agent_mod, "run_blocking", interrupted)
    for cmd in (["sync"], ["run", "--once"], ["run"]):  # Ctrl+C is not exit 1 ("refused")
        r = CliRunner().invoke(cli, [*conf, *cmd])
        assert r.exit_code == 130 and "interrupted" in r.output


def test_expired_token_answered_501_relogs_once(tmp_path: Path) -> None:
    from test_sandbox_support import FakeClock

    clock = FakeClock()
    cfg = SandboxConfig(data_dir=tmp_path / "sbx", password_key=PASSWORD_KEY, rate_limit_per_minute=0,
                        expired_status=501, clock=clock, agent_status_interval=0)
    with running(cfg) as st:
        creds = Credentials("u10699", st.add_user("u10699", H, "pw"))
        nd = write(tmp_path / "a.ndjson", [item(800, day="2025-08-01")])
        assert sync_payloads(nd, st.base_url, creds, tmp_path / "s.sqlite").exit_code == 0
        # a long-running agent holds a token the server later calls expired (501): one re-login, then success
        from phrsync.delivery.agent import run_blocking
        from phrsync.delivery.config import DeliverySettings, Target
        from phrsync.delivery.sender import Sender

        settings = DeliverySettings(Target("t", st.base_url, rate_per_minute=0), f"sqlite:///{tmp_path / 't.sqlite'}",
                                    default_credentials=creds)

        async def two_runs() -> tuple[int, int]:
            box = ob.Outbox(settings.state_url)
            async with Sender(settings, box) as snd:
                assert snd.tokens is not None
                box.load([item(801, day="2025-08-01")])
                await snd.send_outbox()
                first = snd.tokens.logins
                clock.advance(9 * 3600)  # server time passes the 8-hour JWT
                box.load([item(802, day="2025-08-01")])
                await snd.send_outbox()
                res = (first, snd.tokens.logins)
            box.close()
            return res

        first, after = run_blocking(two_runs())
        assert (first, after) == (1, 2)
        assert {f"{H}:R00801", f"{H}:R00802"} <= held(st)


def self_signed(tmp_path: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 signed by itself, as UAT's is."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return str(cert), str(key)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_sync_over_https_verifies_with_the_targets_ca_bundle(tmp_path: Path) -> None:
    """The sandbox serves HTTPS with a self-signed certificate (as UAT does): without the target's ca_bundle the
    agent refuses the server — nothing sent, every row kept to send — and with it everything is delivered."""
    cert, key = self_signed(tmp_path)
    cfg = SandboxConfig(data_dir=tmp_path / "sbx", password_key=PASSWORD_KEY, rate_limit_per_minute=0,
                        agent_status_interval=0)
    with running(cfg, tls=(cert, key)) as st:
        assert st.base_url.startswith("https://127.0.0.1:")
        creds = Credentials("u10699", st.add_user("u10699", H, "pw"))
        items = [item(850 + i, day="2025-08-03") for i in range(4)]
        nd = write(tmp_path / "b.ndjson", items)
        state = tmp_path / "s.sqlite"
        res = sync_payloads(nd, st.base_url, creds, state)
        assert (res.exit_code, res.sent + res.confirmed, held(st)) == (EXIT_UNDELIVERED, 0, set())
        assert "self-signed certificate" in res.skipped[H] and "ca_bundle" in res.skipped[H]
        assert res.retries == 0  # a certificate is not retried into success
        box = ob.Outbox(f"sqlite:///{state}")
        try:
            assert box.counts()[H][ob.PENDING] == len(items)
        finally:
            box.close()
        res = sync_payloads(nd, st.base_url, creds, state, ca_bundle=cert)
        assert (res.exit_code, res.sent + res.confirmed) == (0, len(items))
        assert held(st) == {f"{H}:R{850 + i:05d}" for i in range(4)}
    r = CliRunner().invoke(cli, ["sandbox", "--data-dir", str(tmp_path / "sbx2"), "serve", "--tls-cert", cert])
    assert r.exit_code == 2 and "--tls-key" in r.output


def test_a_facility_with_only_the_one_year_token_sends_its_encounters(tmp_path: Path) -> None:
    """PHR takes the 1-year HCODE:TOKEN on UpdatePHRv1 alone: the encounters go (no GetAgentComputerName, no
    heartbeat, no reconcile — they need a JWT, and the run says so); a register waits as failed with its reason."""
    cfg = SandboxConfig(data_dir=tmp_path / "sbx", password_key=PASSWORD_KEY, rate_limit_per_minute=0,
                        agent_status_interval=0)
    with running(cfg) as st:
        token = st.issue_facility_token(H)
        register = {"key": "PatientChronicRegisterv1|10699|z", "endpoint": "PatientChronicRegisterv1", "hospcode": H,
                    "payload": {"z": 1}}
        nd = write(tmp_path / "b.ndjson", [*(item(870 + i, day="2025-08-04") for i in range(3)), register])
        res = sync_payloads(nd, st.base_url, Credentials(facility_token=token), tmp_path / "s.sqlite")
        assert held(st) == {f"{H}:R{870 + i:05d}" for i in range(3)}
        assert (res.sent, res.failed, res.skipped, res.exit_code) == (3, 1, {}, EXIT_UNDELIVERED)
        assert any("1-year token" in e for e in res.reconcile["notes"]) and not res.reconcile["errors"]
        box = ob.Outbox(f"sqlite:///{tmp_path / 's.sqlite'}")
        try:
            row = box.row(register["key"])
            assert (row["status"], row["reason"]) == (ob.FAILED, "needs JWT")
            assert box.counts()[H][ob.SENT] == 3
        finally:
            box.close()


def test_sync_with_postgres_state(sbx: tuple[SandboxThread, str], tmp_path: Path,
                                  postgres_server: str) -> None:  # noqa: F811
    import psycopg
    from sqlalchemy.engine import make_url

    st, pw_hash = sbx
    name = unique_name()
    url = make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    items = [item(900 + i, day="2025-09-01") for i in range(6)]
    try:
        res = sync_payloads(write(tmp_path / "b.ndjson", items), st.base_url, Credentials("u10699", pw_hash), url)
        assert res.exit_code == 0 and res.sent == 6 and res.outbox[H]["confirmed"] >= 6
        res = sync_payloads(tmp_path / "b.ndjson", st.base_url, Credentials("u10699", pw_hash), url)
        assert res.attempted == 0 and res.sent == 0
    finally:
        u = make_url(postgres_server)
        with psycopg.connect(host=u.host, port=u.port or 5432, user=u.username, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_breaker_backoff_and_refusal_reasons() -> None:
    from phrsync.delivery.policy import CircuitBreaker, TargetDown, backoff
    from phrsync.delivery.sender import refusal_reasons

    now = [0.0]
    br = CircuitBreaker(failures=3, cooldown=10, give_up=100, clock=lambda: now[0])
    for _ in range(5):  # three in a row, but the window holds too few outcomes to call the target down
        br.failure()
    assert br.open_until == 0
    br.failure()
    assert br.open_until == 10 and br.openings == 1
    br.success()
    assert br.consecutive == 0
    now[0] = 200.0  # nothing succeeded for 200 s > give_up

    async def waiting() -> None:
        await br.wait()

    with pytest.raises(TargetDown):
        asyncio.run(waiting())
    for attempt in range(12):
        assert 0 <= backoff(attempt, 0.5, 60) <= min(60, 0.5 * 2 ** attempt)
    cid = make_cid(42)
    r = httpx.Response(400, json={"result": None, "MessageCode": 400, "Message": "invalid payload",
                                  "issues": [{"path": "Patient.identifier", "rule": "cid_checksum",
                                              "message_th": f"เลข {cid} ผิด", "message_en": f"bad {cid}"}]})
    short, full = refusal_reasons(r)
    assert short == "Patient.identifier: cid_checksum" and cid not in full and "xxxxx" in full
    assert refusal_reasons(httpx.Response(413, text="too big"))[0] == "HTTP 413"


def test_since_and_facility_filters(tmp_path: Path) -> None:
    box = ob.Outbox(f"sqlite:///{tmp_path / 'o.sqlite'}")
    items = [item(1000, day="2025-01-01"), item(1001, day="2025-03-01"), item(1002, day="2025-03-01", hcode="10700")]
    r = box.load(items, since="2025-02-01", facility=H)
    assert r.total == 1 and [x.ref for x in box.to_send()] == [f"{H}:R01001"]
    # facilities interleave, so workers do not all wait behind one facility's rate limit
    box.load([item(1100 + i, hcode=h) for h in (H, "10700") for i in range(3)])
    assert [x.hospcode for x in box.to_send()][:6] == ["10699", "10700"] * 3
    box.close()


def test_sync_of_one_facility_answers_for_that_facility(sbx: tuple[SandboxThread, str], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """``sync --facility H`` exited 3 ("not delivered") for another facility's backlog after H was all
    delivered; a --facility that is not an HCODE went as far as a login and exited 4."""
    st, _ = sbx
    nd = write(tmp_path / "b.ndjson", [item(1200, day="2025-05-02"), item(1201, day="2025-05-02", hcode="10700")])
    (tmp_path / "phrsync.toml").write_text(
        f'data_dir = "data"\n[delivery]\ntarget = "t"\n[delivery.facilities.{H}]\nuser = "u10699"\n'
        f'[targets.t]\nbase_url = "{st.base_url}"\nrate_per_minute = 0\n', encoding="utf-8")
    monkeypatch.setenv(f"PHRSYNC_PHR_PASSWORD_{H}", "pw-10699")
    monkeypatch.setenv("PHRSYNC_PHR_PASSWORD_KEY", PASSWORD_KEY)
    conf = ["--config", str(tmp_path / "phrsync.toml")]
    run = CliRunner()
    r = run.invoke(cli, [*conf, "sync", "-i", str(nd), "--json"])  # 10700 has no account: it stays pending
    assert r.exit_code != 0 and json.loads(r.stdout)["remaining"] == 1
    r = run.invoke(cli, [*conf, "sync", "-i", str(nd), "--facility", H, "--json"])
    res = json.loads(r.stdout)
    assert (r.exit_code, res["remaining"], list(res["outbox"])) == (0, 0, [H]), r.output
    r = run.invoke(cli, [*conf, "sync", "--facility", "abc"])
    assert r.exit_code == 2 and "5" in r.output


def test_full_check_is_due_every_full_check_days(tmp_path: Path) -> None:
    from phrsync.delivery.agent import FULL_CHECK_META, _full_check_due
    from phrsync.delivery.config import DeliverySettings, Target

    box = ob.Outbox(f"sqlite:///{tmp_path / 'state.sqlite'}")
    settings = DeliverySettings(target=Target(name="t", base_url="http://127.0.0.1:1"), state_url=box.url,
                                full_check_days=7)
    try:
        assert _full_check_due(box, settings)  # never checked
        box.set_meta(FULL_CHECK_META, str(time.time() - 6 * 86400))
        assert not _full_check_due(box, settings)
        box.set_meta(FULL_CHECK_META, str(time.time() - 7.5 * 86400))
        assert _full_check_due(box, settings)
        settings.full_check_days = 0  # every run
        box.set_meta(FULL_CHECK_META, str(time.time()))
        assert _full_check_due(box, settings)
    finally:
        box.close()
    cfg = tmp_path / "phrsync.toml"
    cfg.write_text('[delivery]\nfull_check_days = 2\n', encoding="utf-8")
    assert load_delivery(load_config(cfg)).full_check_days == 2


def test_run_sigterm_finishes_the_round_and_exits(sbx: tuple[SandboxThread, str], tmp_path: Path) -> None:
    """``phrsync run`` under systemd: SIGTERM between rounds ends it promptly with exit 0, state intact."""
    import signal
    import subprocess
    import sys

    st, _ = sbx
    items = [item(800 + i, day="2025-08-01") for i in range(3)]
    nd = write(tmp_path / "payloads.ndjson", items)
    (tmp_path / "phrsync.toml").write_text(
        f'data_dir = "data"\n[delivery]\ntarget = "t"\nuser = "u10699"\ninput = "{nd}"\n'
        f'[targets.t]\nbase_url = "{st.base_url}"\nrate_per_minute = 0\n', encoding="utf-8")
    env = {**os.environ, "PHRSYNC_PHR_PASSWORD": "pw-10699", "PHRSYNC_PHR_PASSWORD_KEY": PASSWORD_KEY}
    env.pop("PHRSYNC_CONFIG", None)
    log = tmp_path / "run.log"
    p = subprocess.Popen([sys.executable, "-m", "phrsync", "--config", str(tmp_path / "phrsync.toml"), "run",
                          "--every", "60", "--log-json"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                         stderr=log.open("wb"))
    try:
        deadline = time.monotonic() + 60
        while "round done" not in log.read_text(encoding="utf-8"):  # first round finished, now waiting
            assert p.poll() is None, log.read_text(encoding="utf-8")
            assert time.monotonic() < deadline
            time.sleep(0.1)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=15) == 0
        assert time.monotonic() - t0 < 5  # not the 60-minute wait
    finally:
        if p.poll() is None:
            p.kill()
    assert {i["payload"]["Encounter"][0]["identifier"][0]["value"] for i in items} <= held(st)
    box = ob.Outbox(f"sqlite:///{tmp_path / 'data' / 'delivery' / 'outbox.sqlite'}")
    try:
        assert box.counts()[H]["confirmed"] == 3
    finally:
        box.close()
    assert "pw-10699" not in log.read_text(encoding="utf-8")



def built_lines(items: list[dict[str, Any]]) -> bytes:
    """Lines as ``phrsync build`` writes them: sorted keys, the visit day beside each encounter."""
    opt = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE
    return b"".join(orjson.dumps(dict(i, day=ob.encounter_day(i["payload"])), option=opt) for i in items)


def test_load_file_takes_unchanged_facility_days_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A (facility, day) run of lines that comes back byte for byte is not read line by line; anything else
    is, and the rows end as :meth:`Outbox.load` would leave them (checked against it on a second store)."""
    days = ["2025-03-01", "2025-03-02", "2025-03-03"]
    enc = {d: [item(10 * k + j, day=d) for j in range(4)] for k, d in enumerate(days)}
    register = {"key": "PatientChronicRegisterv1|10699|x", "endpoint": "PatientChronicRegisterv1", "hospcode": H,
                "payload": {"x": 1}}
    parsed: list[int] = []
    real = ob._build_item

    def counting(line: bytes, n: int, path: Any) -> Iterator[dict[str, Any]]:
        parsed.append(n)
        return real(line, n, path)

    monkeypatch.setattr(ob, "_build_item", counting)
    f = tmp_path / "build.ndjson"
    fast, slow = ob.Outbox(f"sqlite:///{tmp_path / 'fast.sqlite'}"), ob.Outbox(f"sqlite:///{tmp_path / 'slow.sqlite'}")

    def load(items: list[dict[str, Any]]) -> tuple[ob.LoadResult, list[int]]:
        f.write_bytes(built_lines(items) + orjson.dumps(register, option=orjson.OPT_SORT_KEYS) + b"\n")
        parsed.clear()
        r = fast.load_file(f)
        lines = list(parsed)
        r2 = slow.load(ob.iter_build_file(f), str(f))
        assert r.as_dict() == r2.as_dict()
        keys = [i["key"] for d in days for i in enc[d]]
        cols = ("status", "content_hash", "day", "ref")

        def state(box: ob.Outbox, k: str) -> dict[str, Any]:
            row = box.row(k) or {}
            return {**{c: row.get(c) for c in cols}, "missing": row.get("missing_load") is not None}

        assert [state(fast, k) for k in keys] == [state(slow, k) for k in keys]
        return r, lines

    try:
        everything = [i for d in days for i in enc[d]]
        r, lines = load(everything)
        assert (r.new, len(lines)) == (13, 13)  # 12 visits and a register
        r, lines = load(everything)  # nothing changed: only the register line is read
        assert (r.unchanged, r.total, r.missing, lines) == (13, 13, 0, [13])
        changed = [*enc[days[0]], enc[days[1]][0], item(11, day=days[1], weight=80), *enc[days[1]][2:], *enc[days[2]]]
        r, lines = load(changed)  # one visit of day 2 changed: day 2's four lines are read
        assert (r.changed, r.unchanged, lines) == (1, 12, [5, 6, 7, 8, 13])
        less = [x for x in changed if x["key"] != enc[days[1]][3]["key"]]
        r, lines = load(less)  # one visit deleted in the HIS: found although days 1 and 3 were not read
        assert (r.missing, r.unchanged, lines[:4]) == (1, 12, [5, 6, 7, 12])
        assert sorted(lines[4:]) == [1, 2, 3, 4, 8, 9, 10, 11]  # the unchanged days' keys, read only now
        assert fast.row(enc[days[1]][3]["key"])["missing_load"] == r.load_id
        without_day2 = [*enc[days[0]], *enc[days[2]]]
        r, _ = load(without_day2)
        assert r.missing == 3
        r, lines = load(less)  # day 2 back as it was two builds ago: read again (its record went with it)
        assert (r.unchanged, r.missing, lines) == (12, 0, [5, 6, 7, 12])
        assert fast.row(enc[days[1]][0]["key"])["missing_load"] is None
        r, lines = load(less)
        assert lines == [12]
        # a facility filter and a since date skip runs without reading them
        parsed.clear()
        r = fast.load_file(f, since=days[2])
        assert (r.total, r.unchanged, parsed) == (5, 5, [12])
        # a day in several runs (OPD and IPD visits are written apart): each run is a chunk of its own
        mixed = [x for pair in zip(enc[days[0]], enc[days[2]], strict=True) for x in pair]
        load(mixed)
        r, lines = load(mixed)
        assert (r.unchanged, lines) == (9, [9])
        r, lines = load(mixed[1:] + mixed[:1])  # the same chunks in another order: still nothing to read
        assert (r.unchanged, r.changed, lines) == (9, 0, [9])
        # a long day is cut into chunks where a key says so: one changed visit costs its chunk, not its day
        long_day = [item(100 + j, day=days[1]) for j in range(300)]
        load(long_day)
        bumped = list(long_day)
        bumped[150] = item(250, day=days[1], weight=99)
        r, lines = load(bumped)
        assert r.changed == 1 and 1 < len(lines) < 100
    finally:
        fast.close()
        slow.close()


def test_chunk_records_of_other_days_are_kept_and_not_needed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build of later days leaves the records of earlier days alone (a rebuild of those is still taken whole),
    and a load reads only the records of its own days."""
    early, late = tmp_path / "early.ndjson", tmp_path / "late.ndjson"
    early.write_bytes(built_lines([item(950 + i, day="2025-05-01") for i in range(5)]))
    late.write_bytes(built_lines([item(960 + i, day="2025-06-01") for i in range(5)]))
    box = ob.Outbox(f"sqlite:///{tmp_path / 's.sqlite'}")
    read: list[int] = []
    real = ob._build_item
    monkeypatch.setattr(ob, "_build_item", lambda line, n, path: (read.append(n), real(line, n, path))[1])
    try:
        box.load_file(early)
        box.load_file(late)
        read.clear()
        assert (box.load_file(early).unchanged, read) == (5, [])
        with box.engine.connect() as c:
            assert c.exec_driver_sql("SELECT count(DISTINCT day) FROM delivery_runs_seen").scalar() == 2
        seen_sql: list[str] = []
        event.listen(box.engine, "before_cursor_execute", lambda *a: seen_sql.append(str(a[2])))
        box.load_file(late)
        assert any("delivery_runs_seen" in q and "BETWEEN" in q for q in seen_sql)
    finally:
        box.close()


def test_hashes_of_an_earlier_version_count_as_unchanged(tmp_path: Path) -> None:
    """Stores written before the switch to XXH3 hold SHA-256 content hashes: after the upgrade a load (build file,
    parsed items, dry run) finds the same content unchanged — nothing is sent again — and rewrites those hashes
    once; different content is still a change."""
    import hashlib

    f = tmp_path / "build.ndjson"
    items = [item(900 + i, day="2025-03-02") for i in range(3)]
    register = {"key": "PatientChronicRegisterv1|10699|y", "endpoint": "PatientChronicRegisterv1", "hospcode": H,
                "payload": {"y": 2}}
    f.write_bytes(built_lines(items) + orjson.dumps(register, option=orjson.OPT_SORT_KEYS) + b"\n")
    box = ob.Outbox(f"sqlite:///{tmp_path / 's.sqlite'}")
    try:
        assert box.load_file(f).new == 4
        keys = [*(i["key"] for i in items), register["key"]]
        bodies = {i["key"]: ob.canonical(i["payload"]) for i in [*items, register]}
        assert all(box.row(k)["content_hash"] == ob.content_hash(bodies[k]) for k in keys)
        box.apply(keys, [(k, ob.CONFIRMED, 200, None, None) for k in keys])
        with box.engine.begin() as c:  # as an earlier version left them; and no chunk records (read line by line)
            c.exec_driver_sql("DELETE FROM delivery_runs_seen")
            c.exec_driver_sql("UPDATE delivery_outbox SET content_hash = ? WHERE key = ?",
                              [(hashlib.sha256(bodies[k]).hexdigest(), k) for k in keys])
        assert box.plan(ob.iter_ndjson(f)).as_dict() == {"new": 0, "changed": 0, "unchanged": 4, "total": 4,
                                                         "missing": 0}
        r = box.load_file(f)
        assert (r.unchanged, r.changed, r.new) == (4, 0, 0)
        assert [(box.row(k)["status"], box.row(k)["content_hash"]) for k in keys] == [
            (ob.CONFIRMED, ob.content_hash(bodies[k])) for k in keys]
        assert box.load(ob.iter_ndjson(f), str(f)).unchanged == 4  # items parsed whole compare the same way
        with box.engine.begin() as c:  # an old hash of other content (and the file read line by line again)
            c.exec_driver_sql("DELETE FROM delivery_runs_seen")
            c.exec_driver_sql("UPDATE delivery_outbox SET content_hash = ? WHERE key = ?",
                              (hashlib.sha256(b"other").hexdigest(), keys[0]))
        r = box.load_file(f)
        assert (r.changed, r.changed_keys, box.row(keys[0])["status"]) == (1, [keys[0]], ob.PENDING)
    finally:
        box.close()


def test_group_commit_apply_claims_answers_and_puts_back(tmp_path: Path) -> None:
    box = ob.Outbox(f"sqlite:///{tmp_path / 's.sqlite'}")
    try:
        items = [item(700 + i) for i in range(3)]
        box.load(items, "a")
        keys = [i["key"] for i in items]
        box.apply(keys, [])  # a page claimed before its requests
        assert [(box.row(k)["status"], box.row(k)["attempts"]) for k in keys] == [(ob.SENDING, 1)] * 3
        box.apply([], [(keys[0], ob.SENT, 200, None, None), (keys[1], ob.REFUSED, 400, "rule", "HTTP 400")],
                  [(keys[2], ob.PENDING)])  # two answered, one never sent (facility skipped): put back
        r0, r1, r2 = (box.row(k) for k in keys)
        assert (r0["status"], r0["http_status"], r0["sent_at"] is not None) == (ob.SENT, 200, True)
        assert (r1["status"], r1["reason"], r1["sent_at"]) == (ob.REFUSED, "rule", None)
        assert (r2["status"], r2["attempts"]) == (ob.PENDING, 0)
        box.apply([], [], [(keys[0], ob.PENDING)])  # a put-back only applies to a row still being sent
        assert box.row(keys[0])["status"] == ob.SENT
    finally:
        box.close()


def test_group_commit_apply_in_key_lists_and_repeated_keys(tmp_path: Path) -> None:
    apply_in_key_lists(f"sqlite:///{tmp_path / 's.sqlite'}")


def test_group_commit_apply_in_key_lists_postgres(postgres_server: str) -> None:  # noqa: F811
    import psycopg
    from sqlalchemy.engine import make_url

    name = unique_name()
    try:
        apply_in_key_lists(str(make_url(postgres_server).set(database=name).render_as_string(hide_password=False)))
    finally:
        u = make_url(postgres_server)
        with psycopg.connect(host=u.host, port=u.port or 5432, user=u.username, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def apply_in_key_lists(url: str) -> None:
    """apply() claims and answers whole groups of keys per statement (more than one statement's share of
    keys too); a key that occurs twice in one group commit still gets every change, in order."""
    box = ob.Outbox(url)
    try:
        items = [item(2000 + i) for i in range(1203)]
        box.load(items, "a")
        keys = [i["key"] for i in items]
        box.apply(keys, [])
        assert {(box.row(k)["status"], box.row(k)["attempts"]) for k in keys} == {(ob.SENDING, 1)}
        outcomes = [(k, ob.REFUSED, 400, f"rule {i % 3}", f"HTTP 400 {i % 3}") if i % 100 == 7
                    else (k, ob.SENT, 200, None, None) for i, k in enumerate(keys)]
        box.apply([], outcomes)
        for k, st, code, reason, err in outcomes:
            r = box.row(k)
            assert (r["status"], r["http_status"], r["reason"], r["last_error"], r["sent_at"] is not None) == (
                st, code, reason, err, st == ob.SENT)
        box.apply([keys[0], keys[1], keys[0]], [])  # claimed twice in one commit: two attempts
        assert [box.row(k)["attempts"] for k in keys[:2]] == [3, 2]
        box.apply([], [(keys[0], ob.FAILED, None, "transient", "x"), (keys[0], ob.SENT, 200, None, None)])
        assert (box.row(keys[0])["status"], box.row(keys[0])["reason"]) == (ob.SENT, None)  # the later answer
        assert box.counts()[items[0]["hospcode"]][ob.SENT] == 1203 - 12 - 1  # 12 refused, keys[1] claimed again
    finally:
        box.close()


# ---- edge cases: answers PHR might give that the sandbox does not by itself ---------------------

Asgi = Callable[[dict[str, Any], Any, Any], Any]


@contextlib.contextmanager
def sandbox_with(tmp_path: Path, answer: Callable[[dict[str, Any]], tuple[int, bytes, list[tuple[bytes, bytes]]] | None],
                 **cfg_kw: Any) -> Iterator[tuple[SandboxThread, str]]:
    """A sandbox whose requests go through ``answer(scope)`` first: (status, body, headers) replaces the
    sandbox's own answer, None lets it answer. Yields the server and the password hash of user u10699."""
    cfg = SandboxConfig(data_dir=tmp_path / "sbx", password_key=PASSWORD_KEY, rate_limit_per_minute=0,
                        **{"agent_status_interval": 0, **cfg_kw})
    st = SandboxThread(cfg)
    inner: Asgi = st.server.config.app

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        got = answer(scope) if scope["type"] == "http" else None
        if got is None:
            await inner(scope, receive, send)
            return
        code, body, headers = got
        await send({"type": "http.response.start", "status": code,
                    "headers": [(b"content-length", str(len(body)).encode()), *headers]})
        await send({"type": "http.response.body", "body": body})

    st.server.config.app = app
    st.start()
    try:
        yield st, st.add_user("u10699", H, "pw-10699")
    finally:
        st.stop()


@pytest.mark.parametrize("body", [b"<html>proxy error</html>", b"[1, 2]",
                                  b'{"result": null, "MessageCode": 500, "Message": "db down"}',
                                  b'{"result": {"x": 1}, "MessageCode": 200, "Message": "OK"}'])
def test_reconcile_takes_a_malformed_organization_summary_as_an_error(tmp_path: Path, body: bytes) -> None:
    """OrganizationSummary answering 200 with something that is not a list of refs: the run does not crash (it
    did, with an ExceptionGroup, on non-JSON or a JSON array) and does not take it for "PHR holds nothing" (it
    sent the whole day again, three rounds, and marked rows the build dropped as removed without removing them):
    the day is an error and nothing about it changes."""
    def answer(scope: dict[str, Any]) -> tuple[int, bytes, list[tuple[bytes, bytes]]] | None:
        if scope["path"] == "/api/OrganizationSummary":
            return 200, body, [(b"content-type", b"application/json")]
        return None

    items = [item(3000 + i, day="2025-10-01") for i in range(3)]
    with sandbox_with(tmp_path, answer) as (st, pw):
        creds = Credentials("u10699", pw)
        res = sync_payloads(write(tmp_path / "b.ndjson", items), st.base_url, creds, tmp_path / "s.sqlite")
        assert res.sent == 3 and res.reconcile["resend"] == 0 and res.reconcile["days"] == 0
        assert any("unexpected answer" in e for e in res.reconcile["errors"])
        assert res.exit_code == EXIT_UNDELIVERED  # not known to be delivered: run again
        res = sync_payloads(write(tmp_path / "b.ndjson", items[1:]), st.base_url, creds, tmp_path / "s.sqlite",
                            remove=True, full_check=True)
        assert res.sent == 0 and res.reconcile["removed"] == 0
        assert res.outbox[H][ob.SENT] == 3 and res.outbox[H][ob.REMOVED] == 0
        assert len(held(st)) == 3


def test_plain_http_beyond_this_computer_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A target on plain HTTP that is not loopback sends health data and the password hash readable on the way:
    the run says so (the local sandbox on 127.0.0.1 is fine)."""
    from phrsync.delivery.agent import run_blocking
    from phrsync.delivery.config import DeliverySettings, Target
    from phrsync.delivery.connect import private_link as _private_link
    from phrsync.delivery.sender import Sender

    assert all(_private_link(u) for u in ("https://phr1.moph.go.th", "http://127.0.0.1:8787", "http://localhost:1",
                                          "http://[::1]:8787"))
    assert not any(_private_link(u) for u in ("http://10.0.0.5:8787", "http://phr.province.local"))

    async def enter(url: str) -> None:
        box = ob.Outbox(f"sqlite:///{tmp_path / 's.sqlite'}")
        try:
            async with Sender(DeliverySettings(Target("t", url), box.url), box):
                pass
        finally:
            box.close()

    with caplog.at_level("WARNING", logger="phrsync.delivery"):
        run_blocking(enter("http://127.0.0.1:8787"))
        assert "plain http" not in caplog.text
        run_blocking(enter("http://10.0.0.5:8787"))
    assert "10.0.0.5" in caplog.text and "plain http" in caplog.text


def test_sync_without_a_build_file_says_so(tmp_path: Path) -> None:
    """A first ``sync`` before any ``build`` printed only "delivered 0"; it now says there is no build file."""
    (tmp_path / "phrsync.toml").write_text('data_dir = "data"\n', encoding="utf-8")
    r = CliRunner().invoke(cli, ["--config", str(tmp_path / "phrsync.toml"), "sync"])
    assert r.exit_code == 0 and "no build file at" in r.output and "phrsync build" in r.output, r.output


def test_remove_encounter_refused_in_its_envelope_is_an_error(tmp_path: Path) -> None:
    """RemoveEncounter answering 200 with an error envelope did not remove anything, but the row was marked removed
    and counted; it is now a reconcile error (exit 3) and the row stays as it was, to be removed next time."""
    def answer(scope: dict[str, Any]) -> tuple[int, bytes, list[tuple[bytes, bytes]]] | None:
        if scope["path"] == "/api/RemoveEncounter":
            return 200, b'{"result": null, "MessageCode": 500, "Message": "busy"}', [(b"content-type", b"application/json")]
        return None

    items = [item(3400 + i, day="2025-10-02") for i in range(10)]
    with sandbox_with(tmp_path, answer) as (st, pw):
        creds = Credentials("u10699", pw)
        assert sync_payloads(write(tmp_path / "b.ndjson", items), st.base_url, creds, tmp_path / "s.sqlite").exit_code == 0
        res = sync_payloads(write(tmp_path / "b.ndjson", items[1:]), st.base_url, creds, tmp_path / "s.sqlite",
                            remove=True)
        assert (res.reconcile["removed"], res.exit_code) == (0, EXIT_UNDELIVERED)
        assert any("RemoveEncounter" in e and "busy" in e for e in res.reconcile["errors"])
        assert res.outbox[H][ob.REMOVED] == 0 and len(held(st)) == 10


def test_each_facility_reports_its_own_outcome(tmp_path: Path) -> None:
    """A payload that failed for one facility made every facility of the run report mode=Error to PHR; each now
    reports its own outcome."""
    other = "10700"

    def answer(scope: dict[str, Any]) -> tuple[int, bytes, list[tuple[bytes, bytes]]] | None:
        if scope["path"] != "/api/UpdatePHRv1":
            return None
        bearer = dict(scope["headers"]).get(b"authorization", b"").decode().removeprefix("Bearer ")
        claims = bearer.split(".")[1] if bearer.count(".") == 2 else ""
        facility = base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)).decode() if claims else ""
        return (503, b"busy", []) if other in facility else None  # the other facility's uploads all fail

    with sandbox_with(tmp_path, answer) as (st, pw):
        creds = {H: Credentials("u10699", pw), other: Credentials("u10700", st.add_user("u10700", other, "pw-10700"))}
        items = [item(3500, day="2025-10-03"), item(3501, day="2025-10-03", hcode=other)]
        res = sync_payloads(write(tmp_path / "b.ndjson", items), st.base_url, creds, tmp_path / "s.sqlite",
                            max_attempts=2, backoff_base=0.01)
        assert res.failed == 1 and res.sent == 1
        rows = {r["hospital_code"]: dict(r) for r in st.sandbox.store.read(
            lambda c: c.execute(select(store.agent_status)).mappings().all())}
        assert rows[other]["last_error"] == "error: 1 payloads failed"
        assert not rows[H]["last_error"] and rows[H]["status"].startswith("idle")


def test_token_renewal_reads_the_life_left_on_the_issuers_clock() -> None:
    """This computer's clock 2 h ahead of the issuer's (e.g. a hardware clock in local time read as UTC): a 1-hour
    token looked expired on arrival and every request logged in again. Its life is now exp - iat, renewed 15
    minutes before that ends by this computer's clock."""
    issuer = [1_000_000.0]
    agent_clock = [issuer[0] + 7200]
    logins: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
        tok = f"{enc({'alg': 'HS256'})}.{enc({'iat': issuer[0], 'exp': issuer[0] + 3600})}.s{len(logins)}A"
        logins.append(tok)
        return httpx.Response(200, text=tok)

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as c:
            tp = TokenProvider(c, "http://x/token", lambda h: Credentials("u", "H"), clock=lambda: agent_clock[0])
            for _ in range(5):
                await tp.bearer(H, "UpdatePHRv1")
            assert len(logins) == 1
            issuer[0] += 3600 - 15 * 60 - 1
            agent_clock[0] += 3600 - 15 * 60 - 1  # still more than 15 minutes left
            await tp.bearer(H, "UpdatePHRv1")
            assert len(logins) == 1
            issuer[0] += 2
            agent_clock[0] += 2
            assert await tp.bearer(H, "UpdatePHRv1") == f"Bearer {logins[1]}"

    asyncio.run(go())


@pytest.mark.parametrize("skew", [2 * 3600, -2 * 3600])
def test_another_computer_is_seen_whatever_this_computers_clock_says(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, skew: float) -> None:
    """GetAgentComputerName's last_update is on PHR's clock: its age is taken against the answer's RequestTime.
    Against this computer's clock, 2 h fast made a fresh heartbeat of another computer look stale (both sent for
    the facility); 2 h slow made one 20 minutes old look fresh (the facility blocked for hours)."""
    import phrsync.delivery.sender as sender_mod

    class Skewed:
        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        def time(self) -> float:
            return time.time() + skew

    with sandbox_with(tmp_path, lambda scope: None) as (st, pw):
        another_computer_reports(st, "u10699", pw, H)
        monkeypatch.setattr(sender_mod, "time", Skewed())
        its = [item(3100)]
        res = sync_payloads(write(tmp_path / "b.ndjson", its), st.base_url, Credentials("u10699", pw),
                            tmp_path / "s.sqlite")
        assert res.exit_code == Exit.AUTH and res.skip_kind == {H: "other_agent"} and not held(st)
        st.sandbox.store.write(lambda conn: conn.execute(  # the other computer's last word: 20 minutes ago
            store.agent_status.update().values(last_update=time.time() - 20 * 60)))
        res = sync_payloads(tmp_path / "b.ndjson", st.base_url, Credentials("u10699", pw), tmp_path / "s.sqlite")
        assert res.exit_code == 0 and res.sent == 1


def test_the_runs_outcome_reaches_update_agent_status_under_the_5_second_rule(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """PHR refuses status calls closer than 5 s. The outcome of a run shorter than that ("idle" or, after a
    failure, mode=Error) was dropped, so PHR showed "starting" for good and never saw the error. A run now reports
    progress only ``status_interval`` after it began, so a short run reports once, at its end, without waiting;
    an error refused (429) because an earlier run reported less than 5 s before waits once and goes."""
    import phrsync.delivery.sender as sender_mod

    monkeypatch.setattr(sender_mod, "STATUS_MIN_GAP", 5.0)
    down = [False]

    def answer(scope: dict[str, Any]) -> tuple[int, bytes, list[tuple[bytes, bytes]]] | None:
        return (503, b"<html>busy</html>", []) if down[0] and scope["path"] == "/api/UpdatePHRv1" else None

    with sandbox_with(tmp_path, answer, agent_status_interval=5) as (st, pw):
        def agent_row() -> dict[str, Any]:
            return dict(st.sandbox.store.read(lambda c: c.execute(select(store.agent_status)).mappings().one()))

        creds = Credentials("u10699", pw)
        res = sync_payloads(write(tmp_path / "b.ndjson", [item(3200 + i) for i in range(3)]), st.base_url, creds,
                            tmp_path / "s.sqlite")
        assert res.exit_code == 0 and "429" not in res.status_codes and res.seconds < 4  # no 5 s wait
        assert agent_row()["status"].startswith("idle") and not agent_row()["last_error"]
        down[0] = True
        res = sync_payloads(write(tmp_path / "b.ndjson", [item(3210)]), st.base_url, creds, tmp_path / "s.sqlite",
                            max_attempts=2, backoff_base=0.01)
        assert res.exit_code == EXIT_UNDELIVERED and res.failed == 1
        assert agent_row()["last_error"] == "error: 1 payloads failed"


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    """429 Retry-After as an HTTP-date (RFC 9110 allows either form) was read as unreadable: 1 s."""
    import email.utils

    from phrsync.delivery.policy import retry_after

    def _retry_after(r: httpx.Response) -> float:
        return retry_after(r.headers)

    def ra(value: str) -> float:
        return _retry_after(httpx.Response(429, headers={"Retry-After": value}))

    assert ra("7") == 7 and ra("86400") == 300 and ra("-3") == 0 and ra("soon") == 1 and ra("nan") == 1
    assert 115 <= ra(email.utils.formatdate(time.time() + 120, usegmt=True)) <= 120
    assert ra(email.utils.formatdate(time.time() - 60, usegmt=True)) == 0
    assert _retry_after(httpx.Response(429)) == 1


def test_a_duplicate_key_is_named_with_its_file_and_line(tmp_path: Path) -> None:
    """A build file with one key twice: the error names the file and the line of the second one (it gave the
    key alone), whether the lines are as ``phrsync build`` writes them or not; nothing is sent."""
    items = [item(3300 + i, day=f"2025-11-0{1 + i % 3}") for i in range(8)]
    for name, data in (("plain", b"".join(orjson.dumps(i) + b"\n" for i in [*items[:5], items[1], *items[5:]])),
                       ("built", built_lines([*items[:5], items[1], *items[5:]]))):
        nd = tmp_path / f"{name}.ndjson"
        nd.write_bytes(data)
        box = ob.Outbox(f"sqlite:///{tmp_path / f'{name}.sqlite'}")
        try:
            with pytest.raises(ValueError, match=rf"line 6 of {nd}: .*duplicate key in build file: {items[1]['key']}"):
                box.load_file(nd)
        finally:
            box.close()
    r = CliRunner().invoke(cli, ["sync", "-i", str(tmp_path / "plain.ndjson"), "--target", "sandbox"],
                           env={"PHRSYNC_STATE_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}"})
    assert r.exit_code == 2 and "line 6 of" in r.output, r.output


def test_removal_guard_allows_exactly_the_fraction(sbx: tuple[SandboxThread, str], tmp_path: Path) -> None:
    """remove_max_fraction = 0.29 and the HIS deleted 29 of a day's 100: allowed ("never more than"), but
    0.29 * 100 is 28.999999999999996 in floating point and the guard held them back."""
    from phrsync.delivery.agent import run_blocking, run_sync
    from phrsync.delivery.config import DeliverySettings, Target

    st, pw_hash = sbx
    items = [item(3400 + i, day="2025-11-20") for i in range(100)]
    settings = DeliverySettings(target=Target("t", st.base_url, rate_per_minute=0, backoff_base=0.01),
                                state_url=f"sqlite:///{tmp_path / 's.sqlite'}",
                                default_credentials=Credentials("u10699", pw_hash), remove_max_fraction=0.29)
    assert run_blocking(run_sync(settings, write(tmp_path / "b.ndjson", items))).sent == 100
    res = run_blocking(run_sync(settings, write(tmp_path / "b.ndjson", items[29:])))
    assert res.reconcile["guarded"] == [] and res.reconcile["removed"] == 29
    assert len([r for r in held(st) if r.startswith(f"{H}:R034")]) == 71


def test_facilities_skipped_for_the_same_reason_share_one_line(tmp_path: Path) -> None:
    """A province with no account configured yet printed one near-identical line per facility (124 for Sa Kaeo,
    each naming its own [delivery.facilities.H]); facilities skipped for the same reason now share one line
    that counts and names them, and a different reason keeps its own line."""
    from phrsync.delivery.cli import _skipped_lines

    codes = [f"0{2435 + i}" for i in range(7)]
    skipped = {h: f"{h}: ไม่มีบัญชี [delivery.facilities.{h}] / no account [delivery.facilities.{h}]" for h in codes}
    skipped["10699"] = "10699: login refused (403)"
    out = _skipped_lines(skipped)
    assert len(out) == 2, out
    assert "skipped 7 facilities (02435, 02436, 02437, 02438, 02439 … (+2))" in out[0]
    assert out[0].endswith("no account [delivery.facilities.H]") and "ข้าม 7 หน่วยบริการ" in out[0]
    assert out[1] == "  ข้าม / skipped 10699: login refused (403)"

    hcodes = ["02435", "02436", "02437"]
    nd = write(tmp_path / "b.ndjson", [item(i, hcode=h) for i, h in enumerate(hcodes)])
    conf = tmp_path / "phrsync.toml"
    conf.write_text('[targets.t]\nbase_url = "http://127.0.0.1:9"\n', encoding="utf-8")  # nothing listens
    r = CliRunner().invoke(cli, ["--config", str(conf), "sync", "-i", str(nd), "--target", "t", "--no-verify"],
                           env={"PHRSYNC_STATE_URL": f"sqlite:///{tmp_path / 's.sqlite'}", "PHRSYNC_PHR_USER": "",
                                "PHRSYNC_PHR_PASSWORD": "", "PHRSYNC_PHR_FACILITY_TOKEN": ""})
    assert r.exit_code == 4, r.output
    lines = [ln for ln in r.stdout.splitlines() if "skipped" in ln]
    assert len(lines) == 1 and "skipped 3 facilities (02435, 02436, 02437)" in lines[0], r.stdout


def test_status_on_an_unreachable_state_store_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    """``status`` printed a 140-line SQLAlchemy traceback when the state store could not be opened (``sync`` said
    so in one line); now it gives the same one-line message and exit 7 (a broken store), with no URL password in it."""
    (tmp_path / "phrsync.toml").write_text(
        '[delivery]\nstate_url = "postgresql+psycopg://phr:DbSecret1@127.0.0.1:notaport/x"\n', encoding="utf-8")
    r = CliRunner().invoke(cli, ["--config", str(tmp_path / "phrsync.toml"), "status"])
    assert r.exit_code == Exit.STORE and "state store error" in r.output and r.exception is not None
    assert isinstance(r.exception, SystemExit) and "DbSecret1" not in r.output
    (tmp_path / "phrsync.toml").write_text(f'[delivery]\nstate_path = "{tmp_path}"\n', encoding="utf-8")
    r = CliRunner().invoke(cli, ["--config", str(tmp_path / "phrsync.toml"), "status", "--json"])
    assert r.exit_code == Exit.STORE and "state store error" in r.output, r.output


def test_sync_to_a_sandbox_nobody_serves_names_the_url_and_the_setting(tmp_path: Path) -> None:
    """A sandbox started on another port: the run stops at once (no ten minutes of retries) and says which URL it
    tried and which setting moves it."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{s.getsockname()[1]}"
    s.close()
    conf = tmp_path / "phrsync.toml"
    conf.write_text(f'[delivery]\nuser = "u"\n[targets.sandbox]\nbase_url = "{url}"\n', encoding="utf-8")
    nd = write(tmp_path / "b.ndjson", [item(1)])
    t0 = time.monotonic()
    r = CliRunner().invoke(cli, ["--config", str(conf), "sync", "-i", str(nd), "--target", "sandbox",
                                 "--state", str(tmp_path / "s.sqlite")],
                           env={"PHRSYNC_PHR_PASSWORD_HASH": "H"})
    assert r.exit_code == Exit.UNDELIVERED, r.output
    assert time.monotonic() - t0 < 20
    assert f"nothing listens at {url}" in r.output and "[targets.sandbox] base_url" in r.output, r.output
    assert "ไม่มีเซิร์ฟเวอร์รับที่" in r.output  # Thai first
    assert (tmp_path / "s.sqlite").exists()  # --state was the store used


def test_status_is_a_query_saying_why_a_facility_is_stuck(sbx: tuple[SandboxThread, str], tmp_path: Path) -> None:
    """Per facility: counts, failed, the agent's state the last run left (login refused here), the validator's
    refusals at build time; the CLI's text says why a facility is stuck, and ``--state`` picks the store."""
    from phrsync.delivery.status import LOGIN_REFUSED, OK, delivery_status

    st, pw_hash = sbx
    state = tmp_path / "s.sqlite"
    good = sync_payloads(write(tmp_path / "a.ndjson", [item(4000), item(4001)]), st.base_url,
                         Credentials("u10699", pw_hash), state, backoff_base=0.01)
    assert good.exit_code == 0
    other = "10702"
    res = sync_payloads(write(tmp_path / "b.ndjson", [item(4002, hcode=other)]), st.base_url,
                        {H: Credentials("u10699", pw_hash), other: Credentials("nobody", "WRONG")}, state,
                        backoff_base=0.01)
    assert res.exit_code == Exit.AUTH
    rep = delivery_status(f"sqlite:///{state}", target="t", build_refused={H: 3, "10703": 2})
    f, g, b = rep.facilities[H], rep.facilities[other], rep.facilities["10703"]
    assert (f.confirmed + f.sent, f.agent_state, f.build_refused, f.stuck_because()) == (2, OK, 3, None)
    assert (g.pending, g.agent_state, g.build_refused) == (1, LOGIN_REFUSED, 0)
    assert "login refused" in (g.stuck_because() or "") and g.agent_state_at
    assert (b.build_refused, b.pending) == (2, 0)  # every payload refused at build: in the report all the same
    assert rep.last_run and rep.last_run["exit_code"] == Exit.AUTH
    d = rep.to_dict()
    assert d["facilities"][other]["agent_state"] == LOGIN_REFUSED and json.dumps(d)
    assert list(delivery_status(f"sqlite:///{state}", facility=other).facilities) == [other]
    conf = tmp_path / "phrsync.toml"
    conf.write_text("", encoding="utf-8")
    r = CliRunner().invoke(cli, ["--config", str(conf), "status", "--state", str(state)])
    assert r.exit_code == 0, r.output
    line = next(ln for ln in r.output.splitlines() if "stuck" in ln)
    assert "เข้าระบบไม่ได้ / login refused" in line and "(UTC+7)" in line, r.output
    assert f"{other}: รอส่ง pending 1" in r.output
    empty = delivery_status(f"sqlite:///{tmp_path / 'none.sqlite'}")
    assert empty.facilities == {} and not (tmp_path / "none.sqlite").exists()


def test_a_broken_state_store_is_exit_7_for_sync(tmp_path: Path) -> None:
    conf = tmp_path / "phrsync.toml"
    conf.write_text("", encoding="utf-8")
    nd = write(tmp_path / "b.ndjson", [item(1)])
    (tmp_path / "dir.sqlite").mkdir()
    r = CliRunner().invoke(cli, ["--config", str(conf), "sync", "-i", str(nd), "--state", str(tmp_path / "dir.sqlite")])
    assert r.exit_code == Exit.STORE and "state store error" in r.output, r.output


def test_run_agent_reads_the_build_file_only_when_it_changed_and_stops_on_request(
        sbx: tuple[SandboxThread, str], tmp_path: Path) -> None:
    import threading

    from phrsync.delivery.agent import run_agent
    from phrsync.delivery.config import DeliverySettings, Target

    st, pw_hash = sbx
    nd = write(tmp_path / "b.ndjson", [item(4100)])
    settings = DeliverySettings(Target("t", st.base_url, rate_per_minute=0, backoff_base=0.01),
                                f"sqlite:///{tmp_path / 's.sqlite'}", Credentials("u10699", pw_hash))
    stop = threading.Event()
    rounds: list[dict[str, Any]] = []

    def on_round(res: Any) -> None:
        rounds.append(res.to_dict())
        if len(rounds) == 2:
            write(nd, [item(4100), item(4101)])
            os.utime(nd, (time.time() + 5, time.time() + 5))  # a new modification time, whatever the clock
        if len(rounds) == 3:
            stop.set()

    out = run_agent(settings, nd, every_minutes=0.001, stop=stop, on_round=on_round)
    assert [r["loaded"].get("new") for r in rounds] == [1, None, 1]  # round 2: unchanged file, not read
    assert out.exit_code == 0 and len(out.rounds) == 3 and held(st) >= {f"{H}:R04100", f"{H}:R04101"}


def test_pacing_is_the_shared_limiter_evenly_spaced_per_facility(tmp_path: Path) -> None:
    from phrsync.delivery.config import DeliverySettings, Target
    from phrsync.delivery.sender import Sender
    from phrsync.ratelimit import RateLimiter

    box = ob.Outbox(f"sqlite:///{tmp_path / 's.sqlite'}")
    try:
        snd = Sender(DeliverySettings(Target("t", "http://127.0.0.1:9", rate_per_minute=120), box.url), box)
        lim = snd.limiter
        assert isinstance(lim, RateLimiter)
        lim.clock = lambda: 100.0
        waits = [lim.reserve(H) for _ in range(3)]
        assert waits == [0.0, 0.5, 1.0] and lim.reserve("10700") == 0.0  # each facility its own pace
        snd._pool.shutdown()
    finally:
        box.close()


def test_retry_policy_limits_attempts_and_honours_what_the_server_asked() -> None:
    from phrsync.delivery.policy import RetryPolicy, retryable

    p = RetryPolicy(max_attempts=3, base=0.5, cap=60)
    assert p.next_wait(3) is None and p.next_wait(5) is None  # attempts used up: give up
    w = p.next_wait(1, asked=0)
    assert w is not None and 0 <= w <= 1.0
    assert p.next_wait(2, asked=30) == 30  # Retry-After is longer than any backoff here
    assert [retryable(c) for c in (500, 503, 408, 429, 400, 401, 404, 422)] == [True] * 4 + [False] * 4


def test_state_option_takes_a_url_or_a_sqlite_path(tmp_path: Path) -> None:
    from phrsync.delivery.config import DeliverySettings, Target, with_state

    base = DeliverySettings(Target("t", "http://127.0.0.1:1"), "sqlite:////x.sqlite")
    assert with_state(base, None) is base
    s = with_state(base, tmp_path / "other.sqlite")
    assert s.state_url == f"sqlite:///{tmp_path / 'other.sqlite'}"
    pg = with_state(base, "postgresql+psycopg://u@db/phr")
    assert pg.state_url == "postgresql+psycopg://u@db/phr"
