"""``import-drugs --format hospitalos``: HospitalOS's b_nhso_map_drug (24-digit code per b_item) joined to b_item and
b_map_drug_tmt, as a pgAdmin/psql CSV export of the query in docs/codes.md. The fixture is made up in that shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from codes_fixtures import tmt_zip

from phrsync.cli import cli
from phrsync.errors import UsageError
from phrsync.terminology.codestore import CodeStore, load_drug_codes
from phrsync.terminology.drugimport import import_drugs
from phrsync.terminology.tmtimport import import_tmt

H = "10700"
AMOXY24 = "100176302004290620381080"
PARA24 = "100752000004490520381053"

EXPORT = (
    "item_number,item_common_name,b_item_id,f_nhso_drug_id,b_drug_tmt_tpucode\n"
    f"D001,AMOXY 500 mg cap,2040000000001,{AMOXY24},950001\n"
    f"D002,PARA-X 500 mg tab,2040000000002,{PARA24}99,950003\n"  # f_nhso_drug_id longer than 24: first 24 used
    "D003,local syrup,2040000000003,,\n"
    "D004,bad code,2040000000004,1234,\n"
)


@pytest.fixture
def store(tmp_path: Path) -> CodeStore:
    s = CodeStore(tmp_path / "codes.sqlite")
    import_tmt(s, tmt_zip(tmp_path))
    yield s
    s.close()


def test_hospitalos_export_maps_item_number_and_24_digit_code(tmp_path: Path, store: CodeStore) -> None:
    f = tmp_path / "b_nhso_map_drug.csv"
    f.write_text(EXPORT, encoding="utf-8")
    res = import_drugs(store, f, "hospitalos", H)
    assert res.rows == {H: 4} and res.with_tmt == 2 and res.with_did24 == 2
    assert res.issues.count == 1 and "b_nhso_map_drug.csv line 5 field f_nhso_drug_id" in res.issues.rows[0].text
    codes = load_drug_codes(store.path)
    by_local, by_24 = codes.lookup(H, "D001"), codes.lookup(H, AMOXY24)
    assert by_local is not None and by_local.gp is not None and by_local.gp[0] == "920001"
    assert by_24 == by_local  # DIDSTD (the 24-digit code) and DID (item_number) both find it
    para = codes.lookup(H, PARA24)
    assert para is not None and para.gp is not None and para.gp[0] == "920003"
    assert [s for s, _ in para.substances] == ["900003"]
    assert codes.lookup(H, "D003") is None  # no TMT: listed, maps nothing
    rows = {r["code"]: r for r in store.drug_rows(H)}
    assert rows["D002"]["did24"] == PARA24 and rows["D003"]["name"] == "local syrup"
    assert rows["D001"]["source"].startswith("hospitalos: b_nhso_map_drug.csv")


def test_hospitalos_needs_a_facility_and_b_item_id_fallback(tmp_path: Path, store: CodeStore) -> None:
    f = tmp_path / "raw.csv"
    f.write_text(f"b_nhso_map_drug_id,f_nhso_drug_id,b_item_id\n1,{AMOXY24},2040000000001\n", encoding="utf-8")
    with pytest.raises(UsageError, match="--facility"):
        import_drugs(store, f, "hospitalos")
    res = import_drugs(store, f, "hospitalos", H)  # the bare table: its b_item_id stands in for the code
    assert res.rows == {H: 1} and any("b_item_id" in w for w in res.warnings)
    assert load_drug_codes(store.path).lookup(H, AMOXY24) is None  # no TMT column: nothing to walk
    assert store.drug_rows(H)[0]["did24"] == AMOXY24


def test_hospitalos_cli(tmp_path: Path) -> None:
    f = tmp_path / "export.csv"
    f.write_text(EXPORT, encoding="utf-8")
    db = str(tmp_path / "c.sqlite")
    r = CliRunner().invoke(cli, ["codes", "import-drugs", str(f), "--format", "hospitalos", "--facility", H,
                                 "--store", db, "--json"])
    assert r.exit_code == 1, r.output  # one bad row (D004's code)
    assert json.loads(r.stdout)["rows"] == {H: 4}
    r = CliRunner().invoke(cli, ["codes", "import-drugs", "--help"])
    assert "hospitalos" in r.output
