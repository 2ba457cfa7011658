"""The sandbox's IdP register (where people live, as PHR knows it): seeding deals each district's share exactly,
check_ekyc answers a registered CID from it whatever its digits say, and a demo-like province — people who moved
in with CIDs issued elsewhere, checked over HTTP by ``did check`` — comes out within a point of Sa Kaeo's
shares."""

from __future__ import annotations

import json
import random
from pathlib import Path

import httpx
from click.testing import CliRunner

from phrsync.cli import cli
from phrsync.delivery.config import Credentials
from phrsync.did.check import CheckOptions, run_check
from phrsync.did.kpi import Targets
from phrsync.did.report import build_report
from phrsync.did.store import CITIZEN, PERSONNEL, SOURCE_F43, DidStore, Person
from phrsync.pdpa import cid_check_digit
from phrsync.sandbox import auth, ekyc, jwt
from phrsync.sandbox.server import running
from phrsync.sandbox.settings import SandboxConfig

H, PW = "00017", "a-long-test-password"
SHARES = {"2705": 13.04, "2708": 23.33, "2707": 1.22}  # วัฒนานคร, โคกสูง, เขาฉกรรจ์ (Sa Kaeo's report)


def _cid(prefix5: str, serial: int) -> str:
    first12 = f"{prefix5}{serial:07d}"
    return first12 + cid_check_digit(first12)


def _province(rng: random.Random, sizes: dict[str, int]) -> list[Person]:
    """Residents per district; one in seven moved in, their CID issued in another province (as the demo's)."""
    out, seen = [], set()
    for district, n in sizes.items():
        while sum(1 for p in out if p.district == district) < n:
            prefix = rng.choice(["32501", "11001", "33016"]) if rng.random() < 1 / 7 else "1" + district
            c = _cid(prefix, rng.randrange(10_000_000))
            if c not in seen:
                seen.add(c)
                out.append(Person(c, None, district, "x"))
    return out


def _login(client: httpx.Client, srv) -> None:
    tok = client.post("/token", params={"Action": "get_moph_access_token"}, json={
        "user": "did", "password_hash": jwt.password_hash(PW, srv.sandbox.cfg.hash_key()), "hospital_code": H})
    client.headers["Authorization"] = f"Bearer {tok.text.strip()}"


def test_deal_gives_each_group_its_share_exactly() -> None:
    rng = random.Random(1)
    for n in (1, 7, 50, 137, 1000):
        people = [(_cid("12708", rng.randrange(10_000_000)), "g") for _ in range(n)]
        got = ekyc.deal(people, {"g": 0.2333})
        assert sum(1 for v in got.values() if v >= 1) == int(0.2333 * len(got) + 0.5)
        assert all(v in (0, 1, 2, 3) for v in got.values())
        assert ekyc.deal(list(reversed(people)), {"g": 0.2333}) == got  # the order given does not matter


def test_a_registered_cid_is_answered_by_its_district_whatever_its_digits(tmp_path: Path) -> None:
    cfg = SandboxConfig(data_dir=tmp_path / "sbx", rate_limit_per_minute=0, ekyc_rate_limit_per_minute=0)
    movers = [_cid("32501", i) for i in range(1, 201)]  # issued in Prachinburi, living in โคกสูง
    with running(cfg) as srv:
        auth.add_user(srv.sandbox.store, cfg, "did", H, PW)
        s = srv.seed_register(CITIZEN, [(c, "2708") for c in movers] + [("123", "2708"), (movers[0], "2705"),
                                                                        (_cid("12701", 9), None)])
        assert (s.people, s.skipped, s.duplicates) == (200, 2, 1) and s.districts == {"2708": [200, 47]}
        nurse = movers[5]
        p = srv.seed_register(PERSONNEL, [(nurse, "2708")] + [(_cid("12701", i), "2701") for i in range(1, 101)])
        assert p.with_did == 1 + 88  # the nurse (one of one) and 88 of 100 staff: did_personnel_share 87.72 %
        with httpx.Client(base_url=srv.base_url) as c:
            _login(c, srv)
            res = {x: c.post("/idp/api/check_ekyc", json={"cid": x}).json()["result"] for x in movers}
            dealt = ekyc.deal([(x, "2708") for x in movers], {"2708": 0.2333})  # round(0.2333 × 200) = 47 of them
            assert {x: v for x, v in res.items() if x != nurse} == {x: v for x, v in dealt.items() if x != nurse}
            assert sum(1 for v in dealt.values() if v >= 1) == 47  # โคกสูง's share, not Prachinburi's 5 %
            assert res[nurse] >= 1  # registered as both: answered as personnel
            stranger = _cid("12708", 4242)  # not registered: by its digits, as before
            assert c.post("/idp/api/check_ekyc", json={"cid": stranger}).json()["result"] == ekyc.answer(
                stranger, cfg.did_shares, cfg.did_default_share, cfg.did_seed)
            # seeding again replaces the kind's register: the movers are no longer registered (the nurse still is)
            srv.seed_register(CITIZEN, [])
            after = {x: c.post("/idp/api/check_ekyc", json={"cid": x}).json()["result"] for x in movers[6:60]}
            assert after == {x: ekyc.answer(x, cfg.did_shares, cfg.did_default_share) for x in movers[6:60]}
            assert c.post("/idp/api/check_ekyc", json={"cid": nurse}).json()["result"] == res[nurse]


def test_the_fast_lookup_sees_a_seeding_made_while_serving_and_errors_keep_the_envelope(tmp_path: Path) -> None:
    """check_ekyc reads SQLite on the event loop through a kept read-only connection (ekyc.Checker) and is served
    past FastAPI (hotpath): a register seeded meanwhile from another connection (``sandbox seed-register`` while
    the server runs) is seen by the next call, and refusals still come in the §5.2 envelope."""
    from phrsync.sandbox import admin

    cfg = SandboxConfig(data_dir=tmp_path / "sbx", rate_limit_per_minute=0, ekyc_rate_limit_per_minute=0)
    people = [_cid("32501", i) for i in range(1, 101)]
    csv = tmp_path / "pop.csv"
    csv.write_text("cid,district\n" + "".join(f"{c},2708\n" for c in people), encoding="utf-8")
    with running(cfg) as srv:
        auth.add_user(srv.sandbox.store, cfg, "did", H, PW)
        with httpx.Client(base_url=srv.base_url) as c:
            _login(c, srv)
            before = {x: c.post("/idp/api/check_ekyc", json={"cid": x}).json()["result"] for x in people}
            assert before == {x: ekyc.answer(x, cfg.did_shares, cfg.did_default_share) for x in people}
            assert admin.seed_register(cfg, str(csv)).people == 100  # its own Store, as the command would
            after = {x: c.post("/idp/api/check_ekyc", json={"cid": x}).json()["result"] for x in people}
            assert after == ekyc.deal([(x, "2708") for x in people], {"2708": 0.2333}) != before
            r = c.post("/idp/api/check_ekyc", json={"cid": "123"})
            assert r.status_code == 400 and r.json()["issues"][0]["path"] == "cid" and r.json()["MessageCode"] == 400
            c.headers.pop("Authorization")
            r = c.post("/idp/api/check_ekyc", json={"cid": people[0]})
            assert r.status_code == 401 and r.json()["MessageTH"]


def test_a_demo_like_province_comes_out_within_a_point_of_the_shares(tmp_path: Path) -> None:
    """As ``phrsync demo``: the fallback lists, the register seeded with where they live, ``did check`` over
    HTTP (the request carries only the CID), then the report."""
    people = _province(random.Random(13), {"2705": 130, "2708": 170, "2707": 140, "2701": 90})
    staff = [Person(_cid("12701", 9_000_000 + i), None, "2701") for i in range(60)]
    cfg = SandboxConfig(data_dir=tmp_path / "sbx", rate_limit_per_minute=0, ekyc_rate_limit_per_minute=0)
    store = DidStore(f"sqlite:///{tmp_path / 'state.sqlite'}")
    store.replace_people(CITIZEN, SOURCE_F43, people, file="43 แฟ้ม PERSON")
    store.replace_people(PERSONNEL, SOURCE_F43, staff, file="43 แฟ้ม PROVIDER")
    with running(cfg) as srv:
        for kind in (CITIZEN, PERSONNEL):
            srv.seed_register(kind, store.districts_of_people(kind))
        auth.add_user(srv.sandbox.store, cfg, "did", H, PW)
        opts = CheckOptions(target="sandbox", base_url=srv.base_url,
                            token_url=srv.base_url + "/token?Action=get_moph_access_token", account_hospcode=H,
                            credentials=Credentials("did", jwt.password_hash(PW, cfg.hash_key())), concurrency=8,
                            rate_per_minute=0, timeout=10)
        res = run_check(store, opts)
    assert res.answered == len(people) + len(staff) and res.failed == 0
    rows = {r.code: r for r in build_report(store, Targets()).rows}
    store.close()
    for district, share in SHARES.items():
        assert abs(rows[district].citizens_pct - share) <= 1, (district, rows[district].citizens_pct)
    assert abs(rows["2701"].citizens_pct - 5.01) <= 1 and abs(rows["2701"].personnel_pct - 87.72) <= 1


def test_cli_seed_register_reads_a_population_extract(tmp_path: Path) -> None:
    rows = ["cid,district"] + [f"{_cid('12705', i)},2705" for i in range(1, 101)] + ["1234,2705"]
    csv = tmp_path / "pop.csv"
    csv.write_text("\n".join(rows) + "\n", encoding="utf-8")
    r = CliRunner().invoke(cli, ["sandbox", "--data-dir", str(tmp_path / "sbx"), "seed-register", str(csv), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert (d["kind"], d["people"], d["with_did"], d["skipped"]) == ("citizen", 100, 13, 1)
    r = CliRunner().invoke(cli, ["sandbox", "--data-dir", str(tmp_path / "sbx"), "seed-register", str(csv)])
    assert r.exit_code == 0 and "13 with a Digital ID" in r.output and _cid("12705", 1) not in r.output
