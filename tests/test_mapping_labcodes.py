"""Local lab codes at build time (#14): a LABTEST the shipped ``lab_loinc`` lacks is looked up in the code store's
lab maps (the facility's own, then province-wide) → the standard code → LOINC; one still unmapped goes out under its
local code as before and is listed in ``BuildSummary.unmapped`` (kind "lab"), so ``codes unmapped --kind lab``
shows it. The golden set's V001 (facility 10699) carries 0531002 (shipped) and 9999999 (unknown)."""

from __future__ import annotations

import datetime as dt
import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fixtures.golden import dataset as D

from phrsync.cli import cli
from phrsync.config import Config
from phrsync.f43 import extract as E
from phrsync.f43.read import Selection
from phrsync.f43.staging import Staging
from phrsync.phr import build as B
from phrsync.phr import buildfile as bf
from phrsync.phr import mapping as M
from phrsync.phr.api import build_payloads
from phrsync.terminology.codestore import CodeStore

NOW = dt.datetime(2025, 2, 1, 3, 0, tzinfo=dt.UTC)
H = "10699"
LOCAL = "9999999"


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return D.make_staging(tmp_path_factory.mktemp("golden_labs"))


def _v001(staging: Path) -> dict[str, Any]:
    with Staging(staging, read_only=True) as st:
        return next(b for b in E.iter_bundles(st.con, Selection()) if b["ref"] == "V001")


def _obs(staging: Path, ctx: M.MapContext) -> tuple[list[dict[str, Any]], list[M.Note]]:
    payload, notes = M.map_encounter(_v001(staging), ctx)
    assert payload is not None
    return payload["Encounter"][0]["Observation"], notes


def test_unmapped_lab_goes_out_local_and_names_its_code(staging: Path) -> None:
    obs, notes = _obs(staging, M.MapContext(now=NOW))
    assert obs[1]["code"]["coding"] == [{"system": "urn:phrsync:f43:LABTEST", "code": LOCAL}]
    assert "unit" not in obs[1]["valueQuantity"]
    note = next(n for n in notes if n.code == "lab_unknown")
    assert note.subject == ("lab", LOCAL, "") and note.kind == "unknown_code"


def test_facility_lab_map_gives_loinc(staging: Path) -> None:
    obs, notes = _obs(staging, M.MapContext(now=NOW, lab_codes={(H, LOCAL): "0531601"}))
    coding = obs[1]["code"]["coding"]
    assert coding[0]["system"] == "http://loinc.org" and coding[0]["code"] == "4548-4"
    # the facility's own code stays beside the LOINC, named from the standard code's row
    assert coding[1]["system"] == "urn:phrsync:f43:LABTEST" and coding[1]["code"] == LOCAL and coding[1]["display"]
    assert obs[1]["valueQuantity"]["unit"] == "%"
    assert "lab_unknown" not in {n.code for n in notes}
    # the shipped lab (0531002) is untouched
    assert obs[0]["code"]["coding"][0]["code"] == "1558-6"


def test_province_wide_row_and_facility_first(staging: Path) -> None:
    obs, _ = _obs(staging, M.MapContext(now=NOW, lab_codes={("", LOCAL): "05"}))  # old 2-digit code resolves too
    assert obs[1]["code"]["coding"][0]["code"] == "4548-4"
    obs, _ = _obs(staging, M.MapContext(now=NOW, lab_codes={("", LOCAL): "0531601", (H, LOCAL): "0581902"}))
    assert obs[1]["code"]["coding"][0]["code"] == "2160-0"  # creatinine: the facility's own mapping wins
    obs, notes = _obs(staging, M.MapContext(now=NOW, lab_codes={("10700", LOCAL): "0531601"}))
    assert obs[1]["code"]["coding"][0]["system"] != "http://loinc.org"  # another facility's map is not ours
    assert "lab_unknown" in {n.code for n in notes}


def test_shipped_code_is_not_remapped_and_dangling_target_stays_unmapped(staging: Path) -> None:
    obs, _ = _obs(staging, M.MapContext(now=NOW, lab_codes={(H, "0531002"): "0531601"}))
    assert obs[0]["code"]["coding"][0]["code"] == "1558-6"  # the shipped table wins for its own codes
    obs, notes = _obs(staging, M.MapContext(now=NOW, lab_codes={(H, LOCAL): "0000000"}))
    assert "lab_unknown" in {n.code for n in notes}


def test_map_context_pickles_with_its_lab_codes() -> None:
    ctx = M.MapContext(now=NOW, lab_codes={(H, LOCAL): "0531601"})
    back = pickle.loads(pickle.dumps(ctx))
    assert back.lab_codes == {(H, LOCAL): "0531601"} and back == ctx


def test_build_lists_unmapped_lab_and_a_store_mapping_clears_it(staging: Path, tmp_path: Path) -> None:
    """Through build_payloads (the store loaded once), the build summary and ``codes unmapped --kind lab``."""
    cfg = Config(data_dir=tmp_path)
    db = tmp_path / "codes.sqlite"
    out = tmp_path / "p.ndjson"
    build_payloads(cfg, out, staging=staging, stages=("encounters",))
    s = bf.read_summary(out)
    assert s is not None
    labs = [r for r in s.unmapped if r["kind"] == "lab"]
    assert labs == [{"kind": "lab", "hospcode": H, "code": LOCAL, "name": None, "payloads": 1, "waiting": 0}]
    CodeStore(db).close()
    r = CliRunner().invoke(cli, ["codes", "unmapped", "--build", str(out), "--store", str(db), "--kind", "lab",
                                 "--json"])
    assert r.exit_code == 0, r.output
    assert [(x["hcode"], x["code"]) for x in json.loads(r.stdout)["rows"]] == [(H, LOCAL)]
    r = CliRunner().invoke(cli, ["codes", "accept", "lab", H, LOCAL, "0531601", "--reviewer", "lab lead",
                                 "--store", str(db)])
    assert r.exit_code == 0, r.output
    build_payloads(cfg, out, staging=staging, stages=("encounters",))  # store at <data_dir>/codes.sqlite
    s = bf.read_summary(out)
    assert s is not None and not [r for r in s.unmapped if r["kind"] == "lab"]
    lines = [x for x in bf.iter_lines(out) if x["key"].endswith(f"{H}:V001")]
    obs = lines[0]["payload"]["Encounter"][0]["Observation"]
    assert obs[1]["code"]["coding"][0]["code"] == "4548-4"


def test_parallel_workers_carry_the_lab_codes(staging: Path, tmp_path: Path) -> None:
    ctx = M.MapContext(now=NOW, lab_codes={(H, LOCAL): "0531601"})
    B.build(staging, tmp_path / "par.ndjson", Selection(), ctx, workers=2, stages=("encounters",))
    v = [x for x in bf.iter_lines(tmp_path / "par.ndjson") if x["key"].endswith(f"{H}:V001")]
    assert v[0]["payload"]["Encounter"][0]["Observation"][1]["code"]["coding"][0]["code"] == "4548-4"
