"""Drug masters in each format a province has (NHSO catalogue, JHCIS cdrug, HOSxP drugitems, phrsync csv)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from codes_fixtures import tmt_zip

from phrsync.errors import UsageError
from phrsync.terminology.codestore import CodeStore, load_drug_codes
from phrsync.terminology.drugimport import import_drugs
from phrsync.terminology.tmtimport import import_tmt

D1 = "1" + "0" * 22 + "1"
D2 = "1" + "0" * 22 + "2"
DAY = dt.date(2025, 2, 3)


@pytest.fixture
def store(tmp_path: Path) -> CodeStore:
    s = CodeStore(tmp_path / "codes.sqlite")
    import_tmt(s, tmt_zip(tmp_path))
    yield s
    s.close()


def _xlsx(path: Path, rows: list[list[str]]) -> Path:
    from openpyxl import Workbook

    wb = Workbook()
    for r in rows:
        wb.active.append(r)
    wb.save(path)
    return path


NHSO_HEAD = ["HospDrugCode", "ProductCat", "TMTID", "SpecPrep", "GenericName", "TradeName", "DFSCode", "DosageForm",
             "Strength", "Content", "UnitPrice", "Distributor", "Manufacturer", "ISED", "NDC24", "PackSize",
             "PackPrice", "UpdateFlag", "DateChange", "DateUpdate", "DateEffective"]


def _nhso(code: str, tmtid: str, ndc24: str, name: str, flag: str = "A") -> list[str]:
    return [code, "1", tmtid, "", name, name.upper(), "", "capsule", "500 mg", "", "2.00", "", "SYNTH", "E", ndc24,
            "", "", flag, "01/01/2025", "", "01/01/2025"]


def test_nhso_catalogue_xlsx(tmp_path: Path, store: CodeStore) -> None:
    f = _xlsx(tmp_path / "drugcat_10700.xlsx", [
        NHSO_HEAD, _nhso("AMX", "950001", D1, "amoxicillin"), _nhso("PAR", "940003", D2, "paracetamol"),
        _nhso("OLD", "950001", "", "gone"), _nhso("OLD", "950001", "", "gone", flag="D"),
        _nhso("BAD", "95A", "123", "bad codes"), _nhso("", "950001", "", "no code")])
    res = import_drugs(store, f, "nhso-catalogue", "10700", today=DAY)
    assert res.rows == {"10700": 3} and res.deleted == 1 and res.with_did24 == 2
    assert res.source == "nhso-catalogue: drugcat_10700.xlsx (นำเข้า / imported 2025-02-03)"
    texts = [i.text for i in res.issues.rows]
    assert res.issues.count == 3
    assert any("line 6" in t and "NDC24" in t and "24-digit" in t for t in texts)
    assert any("line 6" in t and "TMTID" in t for t in texts)
    assert any("line 7" in t and "HospDrugCode" in t for t in texts)
    codes = load_drug_codes(store.path)
    assert codes.lookup("10700", D1).gp[0] == "920001"  # type: ignore[union-attr]
    assert codes.lookup("10700", "PAR").gp[0] == "920003"  # type: ignore[union-attr]
    assert codes.lookup("10700", "OLD") is None
    bad = codes.lookup("10700", "BAD")
    assert bad is None  # kept, but without a TMT ID it maps nothing
    assert any(r["code"] == "BAD" and r["tmtid"] == "" for r in store.drug_rows("10700"))


def test_jhcis_cdrug_csv_tis620(tmp_path: Path, store: CodeStore) -> None:
    f = tmp_path / "cdrug.csv"
    f.write_bytes(("drugcode,drugname,drugcode24,tmtcode\r\n"
                   f"0001,พาราเซตามอล 500,{D2},950003\r\n0002,ยาไม่มีรหัส,,\r\n").encode("cp874"))
    with pytest.raises(UsageError, match="--facility"):
        import_drugs(store, f, "jhcis-cdrug")
    res = import_drugs(store, f, "jhcis-cdrug", "03001")
    assert res.rows == {"03001": 2} and res.with_tmt == 1 and any("TIS-620" in w for w in res.warnings)
    c = load_drug_codes(store.path).lookup("03001", D2)
    assert c is not None and c.name == "พาราเซตามอล 500" and c.substances == (("900003", "paracetamol"),)


def test_hosxp_drugitems_tab(tmp_path: Path, store: CodeStore) -> None:
    f = tmp_path / "drugitems.txt"
    f.write_text("icode\tname\tstrength\tunits\tdid\ttmt_tp_code\ttmt_gp_code\n"
                 f"1500001\tAmoxy\t500 mg\tcap\t{D1}\t940001\t\n"
                 "1500002\tPara\t500 mg\ttab\t\t\t920003\n", encoding="utf-8")
    res = import_drugs(store, f, "hosxp-drugitems", "10700")
    assert res.rows == {"10700": 2} and res.with_tmt == 2
    codes = load_drug_codes(store.path)
    assert codes.lookup("10700", "1500001").name == "Amoxy 500 mg cap"  # type: ignore[union-attr]
    assert codes.lookup("10700", "1500002").gp == ("920003", "paracetamol 500 mg oral tablet")  # type: ignore[union-attr]


def test_csv_many_facilities_and_replace(tmp_path: Path, store: CodeStore) -> None:
    f = tmp_path / "drugs.csv"
    f.write_text(f"hcode,code,did24,tmtid,name,source\n,{D1},{D1},950001,Amoxy,\n10700,X1,,920003,Para,my list\n"
                 "1070,X2,,920003,bad hcode,\n", encoding="utf-8")
    res = import_drugs(store, f, "csv")
    assert res.rows == {"": 1, "10700": 1} and res.issues.count == 1
    codes = load_drug_codes(store.path)
    assert codes.lookup("11111", D1) is not None  # province-wide
    assert codes.lookup("10700", "X1").source == "my list"  # type: ignore[union-attr]
    # a later import for 10700 replaces 10700's rows, not the province-wide ones
    f2 = tmp_path / "drugs2.csv"
    f2.write_text("code,tmtid,name\nX9,950003,Para-X\n", encoding="utf-8")
    import_drugs(store, f2, "csv", "10700")
    codes = load_drug_codes(store.path)
    assert codes.lookup("10700", "X1") is None and codes.lookup("10700", "X9") is not None
    assert codes.lookup("10700", D1) is not None


def test_whole_file_problems_change_nothing(tmp_path: Path, store: CodeStore) -> None:
    f = tmp_path / "x.csv"
    f.write_text("foo,bar\n1,2\n", encoding="utf-8")
    with pytest.raises(UsageError, match="no CODE column"):
        import_drugs(store, f, "csv", "10700")
    f.write_text("code,tmtid\n,1\n", encoding="utf-8")
    with pytest.raises(UsageError, match="no usable drug rows"):
        import_drugs(store, f, "csv", "10700")
    with pytest.raises(UsageError, match="5 characters"):
        import_drugs(store, f, "csv", "107")
    with pytest.raises(UsageError, match="no such file"):
        import_drugs(store, tmp_path / "none.csv", "csv")
    assert store.drug_rows() == []


def test_csv_reads_a_drug_tmt_table(tmp_path: Path, store: CodeStore) -> None:
    """A province's drug_tmt.csv (the codes-directory layout) imports as province-wide rows."""
    f = tmp_path / "drug_tmt.csv"
    f.write_text(f"didstd,tmt_code,tmt_level,name,source\n{D1},920001,GP,Amoxy,ห้องยา สสจ.\n", encoding="utf-8")
    res = import_drugs(store, f, "csv")
    assert res.rows == {"": 1}
    c = load_drug_codes(store.path).lookup("10700", D1)
    assert c is not None and c.gp is not None and c.gp[0] == "920001" and c.source == "ห้องยา สสจ."
