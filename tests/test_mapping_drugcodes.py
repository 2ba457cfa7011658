"""Drug codes at build time (#14): DIDSTD → TMT GP for Medication, DRUGALLERGY → TMT SUBS for allergies, the
``unmapped_drug`` policy, and allergies held as "waiting for a drug code" (never refused) until the code is mapped.
The codes come as a DrugCodes made here (the code store's loader is tested with the store)."""

from __future__ import annotations

import copy
import datetime as dt
import io
import pickle
from pathlib import Path
from typing import Any

import orjson
import pytest
from fixtures.golden import dataset as D

from phrsync.delivery import outbox as ob
from phrsync.f43 import extract as E
from phrsync.f43.read import Selection
from phrsync.f43.staging import Staging
from phrsync.phr import build as B
from phrsync.phr import buildfile as bf
from phrsync.phr import mapping as M
from phrsync.phr.policies import Policies
from phrsync.phr.report import Quality
from phrsync.phr.validate import validate
from phrsync.terminology import configure, reset
from phrsync.terminology.drugcodes import DrugCodes, DrugConcept

NOW = dt.datetime(2025, 2, 1, 3, 0, tzinfo=dt.UTC)
H = "10699"
METFORMIN = "100000000000000000000001"
AMOXY = "200000000000000000000002"
CEFTRIAXONE = "300000000000000000000003"


def concept(tmtid: str, gp: tuple[str, str] | None = None, subs: tuple[tuple[str, str], ...] = (),
            source: str = "test") -> DrugConcept:
    return DrugConcept(tmtid=tmtid, level="TPU", gp=gp, substances=subs, name=None, source=source)


CODES = DrugCodes(
    by_facility={(H, METFORMIN): concept("111", ("222", "METFORMIN HYDROCHLORIDE 500 MG TABLET")),
                 (H, AMOXY): concept("333", ("444", "AMOXICILLIN 250 MG CAPSULE"), (("1234567", "AMOXICILLIN"),))},
    by_code={METFORMIN: concept("999", ("998", "PROVINCE-WIDE ROW")),
             CEFTRIAXONE: concept("555", ("666", "CEFTRIAXONE 1 G POWDER FOR SOLUTION FOR INJECTION"))})


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return D.make_staging(tmp_path_factory.mktemp("golden_codes"))


def _bundles(staging: Path) -> dict[str, dict[str, Any]]:
    with Staging(staging, read_only=True) as st:
        return {f"{b['hospcode']}:{b['ref']}": b for b in E.iter_bundles(st.con, Selection())}


def _allergy(staging: Path) -> dict[str, Any]:
    with Staging(staging, read_only=True) as st:
        return next(r for r in E.iter_allergy_registers(st.con) if r["pid"] == "2")


def _meds(staging: Path, ref: str, ctx: M.MapContext) -> tuple[list[dict[str, Any]], list[M.Note]]:
    payload, notes = M.map_encounter(_bundles(staging)[ref], ctx)
    assert payload is not None
    return payload["Encounter"][0]["Medication"], notes


def test_medication_gets_the_gp_of_the_facilitys_own_drug_master(staging: Path) -> None:
    meds, notes = _meds(staging, f"{H}:V001", M.MapContext(now=NOW, drug_codes=CODES))
    assert meds[0]["code"]["coding"] == [
        {"system": "https://www.this.or.th/tmt/gp", "code": "222", "display": "METFORMIN HYDROCHLORIDE 500 MG TABLET"},
        {"system": "urn:phrsync:f43:DIDSTD", "code": METFORMIN, "display": "Metformin 500 mg tab"}]
    assert "drug_unmapped" not in {n.code for n in notes}
    # the province-wide row serves a code the facility's master does not have (the IPD drug)
    meds, notes = _meds(staging, f"{H}:680000001", M.MapContext(now=NOW, drug_codes=CODES))
    assert meds[0]["code"]["coding"][0]["code"] == "666"
    assert notes == []


def test_unmapped_drug_policy_local_and_skip(staging: Path) -> None:
    local, notes = _meds(staging, f"{H}:V001", M.MapContext(now=NOW))
    assert local[0]["code"] == {"coding": [{"system": "urn:phrsync:f43:DIDSTD", "code": METFORMIN,
                                            "display": "Metformin 500 mg tab"}], "text": "Metformin 500 mg tab"}
    note = next(n for n in notes if n.code == "drug_unmapped")
    assert note.kind == "unknown_code" and note.subject == ("drug", METFORMIN, "Metformin 500 mg tab")
    assert METFORMIN not in note.message_en  # one report row for every code; the code goes to the unmapped list
    skipped, notes = _meds(staging, f"{H}:V001", M.MapContext(now=NOW, policies=Policies(unmapped_drug="skip")))
    assert skipped == []
    note = next(n for n in notes if n.code == "drug_unmapped_skipped")
    assert note.kind == "skipped" and note.subject == ("drug", METFORMIN, "Metformin 500 mg tab")


def test_gp_without_a_walk_to_gp_is_unmapped(staging: Path) -> None:
    """A drug master row whose TMT ID the release does not know (gp None) is treated as unmapped."""
    codes = DrugCodes(by_facility={(H, METFORMIN): concept("111")})
    meds, notes = _meds(staging, f"{H}:V001", M.MapContext(now=NOW, drug_codes=codes))
    assert meds[0]["code"]["coding"][0]["system"] == "urn:phrsync:f43:DIDSTD"
    assert "drug_unmapped" in {n.code for n in notes}


def test_drug_tmt_table_is_the_manual_route_by_level(staging: Path, tmp_path: Path) -> None:
    """drug_tmt.csv still works: a GP row serves Medication only, a SUBS row allergies only, and the table wins
    over a province-wide store row (a facility's own master still wins over the table)."""
    (tmp_path / "drug_tmt.csv").write_text(
        "didstd,tmt_code,tmt_level,name,source\n"
        f"{CEFTRIAXONE},777,GP,CEFTRIAXONE FROM TABLE,province\n{AMOXY},1234567,SUBS,AMOXICILLIN,province\n"
        f"{METFORMIN},888,GP,METFORMIN FROM TABLE,province\n", encoding="utf-8")
    configure(tmp_path)
    M.reset_code_cache()
    try:
        ctx = M.MapContext(now=NOW, drug_codes=CODES)
        meds, _ = _meds(staging, f"{H}:680000001", ctx)
        assert meds[0]["code"]["coding"][0] == {"system": M.SYS_TMT, "code": "777",
                                                "display": "CEFTRIAXONE FROM TABLE"}
        meds, _ = _meds(staging, f"{H}:V001", ctx)
        assert meds[0]["code"]["coding"][0]["code"] == "222"  # the facility's master over the table
        payload, notes = M.map_allergy(_allergy(staging), M.MapContext(now=NOW))
        assert payload is not None and notes == []
        assert D.diff(D.expected("allergy_p2_tmt.json"), payload) == []
        codes = DrugCodes(by_facility={(H, AMOXY): concept("1")})  # a SUBS row is no GP for a medication
        bundle = copy.deepcopy(_bundles(staging)[f"{H}:V001"])
        bundle["drugs"][0]["DIDSTD"] = AMOXY
        p, notes = M.map_encounter(bundle, M.MapContext(now=NOW, drug_codes=codes))
        assert p is not None and "drug_unmapped" in {n.code for n in notes}
    finally:
        reset()
        M.reset_code_cache()


def test_allergy_gets_its_substances_from_the_drug_codes(staging: Path) -> None:
    payload, notes = M.map_allergy(_allergy(staging), M.MapContext(now=NOW, drug_codes=CODES))
    assert payload is not None and notes == []
    assert D.diff(D.expected("allergy_p2_tmt.json"), payload) == []
    assert [i for i in validate("AllergyIntolerancev1", payload) if i.severity == "error"] == []


def test_one_unmapped_item_holds_the_whole_allergy_list(staging: Path) -> None:
    reg = copy.deepcopy(_allergy(staging))
    reg["rows"].append({**reg["rows"][0], "DRUGALLERGY": "900000000000000000000009", "DNAME": "Unknown drug"})
    payload, notes = M.map_allergy(reg, M.MapContext(now=NOW, drug_codes=CODES))
    assert payload is None
    assert [(n.kind, n.subject) for n in notes] == [("waiting", ("allergy", "900000000000000000000009",
                                                                 "Unknown drug"))]


def test_map_context_pickles_with_its_drug_codes() -> None:
    ctx = M.MapContext(now=NOW, policies=Policies(unmapped_drug="skip"), drug_codes=CODES)
    back = pickle.loads(pickle.dumps(ctx))
    assert back == ctx and back.drug_codes.lookup(H, METFORMIN) == CODES.lookup(H, METFORMIN)
    note = M._allergy_waiting_note(AMOXY, "x")
    assert pickle.loads(pickle.dumps(note)) == note


def _build(staging: Path, out: Path, codes: DrugCodes) -> B.BuildResult:
    return B.build(staging, out, Selection(), M.MapContext(now=NOW, drug_codes=codes), workers=1)


def test_build_holds_allergies_as_waiting_and_lists_the_codes(staging: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.ndjson"
    res = _build(staging, out, DrugCodes())
    assert res.counts["AllergyIntolerancev1"] == {"built": 0, "refused": 0, "skipped": 0, "waiting": 1}
    assert res.to_dict()["waiting"] == 1 and res.total("refused") == 0
    s = bf.read_summary(out)
    assert s is not None
    assert s.facilities[H]["AllergyIntolerancev1"]["waiting"] == 1 and s.count(H, "refused") == 0
    rows = {(r["kind"], r["code"]): r for r in s.unmapped}
    assert rows[("allergy", AMOXY)] == {"kind": "allergy", "hospcode": H, "code": AMOXY,
                                        "name": "Amoxicillin 250 mg cap", "payloads": 1, "waiting": 1}
    assert rows[("drug", METFORMIN)]["payloads"] >= 1 and rows[("drug", METFORMIN)]["waiting"] == 0
    assert s.unmapped[0]["kind"] == "allergy"  # what holds payloads is listed first
    assert not any(x["endpoint"] == "AllergyIntolerancev1" for x in bf.iter_lines(out))
    assert assert_report_row(res, "waiting", "allergy_waiting_code") == 1


def assert_report_row(res: B.BuildResult, category: str, code: str) -> int:
    assert res.quality is not None
    return sum(it.count for k, it in res.quality.items.items() if k[1] == category and k[3] == code)


def test_mapped_later_the_next_build_makes_it_and_the_outbox_sends_it(staging: Path, tmp_path: Path) -> None:
    out = tmp_path / "payloads.ndjson"
    box = ob.Outbox(f"sqlite:///{tmp_path / 'state.sqlite'}")
    try:
        _build(staging, out, DrugCodes())
        box.load_file(out)
        assert not [r for r in box.to_send() if r.key.startswith("AllergyIntolerancev1")]
        res = _build(staging, out, CODES)  # the code was mapped (imported or accepted in review)
        assert res.counts["AllergyIntolerancev1"] == {"built": 1, "refused": 0, "skipped": 0, "waiting": 0}
        s = bf.read_summary(out)
        assert s is not None and not [r for r in s.unmapped if r["kind"] == "allergy"]
        loaded = box.load_file(out)
        assert loaded.new == 1  # only the allergy payload is new; the encounters changed (GP coding)
        queued = [r for r in box.to_send() if r.key.startswith("AllergyIntolerancev1")]
        assert len(queued) == 1
        body = orjson.loads(queued[0].body)
        assert body["AllergyIntolerance"][0]["code"]["coding"][0]["code"] == "1234567"
    finally:
        box.close()


def test_parallel_build_merges_waiting_and_unmapped(staging: Path) -> None:
    """The worker processes' collectors carry waiting counts and unmapped codes into the main one."""
    a, b = Quality(), Quality()
    with Staging(staging, read_only=True) as st:
        B.build_to(io.BytesIO(), st.con, Selection(), M.MapContext(now=NOW), quality=a, stages=("encounters",))
        B.build_to(io.BytesIO(), st.con, Selection(), M.MapContext(now=NOW), quality=b, stages=("allergy",))
    a.merge(b)
    assert a.totals[H].waiting == 1 and a.totals[H].by_endpoint["AllergyIntolerancev1"]["waiting"] == 1
    kinds = {(r["kind"], r["code"]): r["waiting"] for r in a.unmapped_rows()}
    assert kinds[("allergy", AMOXY)] == 1 and kinds[("drug", METFORMIN)] == 0
