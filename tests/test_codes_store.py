"""The code store: a TMT release walked to GP and substances, drug masters looked up as the build does."""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import pytest
from codes_fixtures import tmt_zip

from phrsync.errors import UsageError
from phrsync.settings import Settings
from phrsync.terminology.codestore import (
    CodeStore,
    load_drug_codes,
    load_lab_codes,
    normalise_name,
    store_path,
)
from phrsync.terminology.drugcodes import DrugCodes
from phrsync.terminology.tmtimport import import_tmt


@pytest.fixture
def store(tmp_path: Path) -> CodeStore:
    s = CodeStore(tmp_path / "codes.sqlite")
    yield s
    s.close()


def test_store_path_default_and_setting(tmp_path: Path) -> None:
    assert store_path(Settings(), tmp_path) == tmp_path / "data" / "codes.sqlite"
    s = Settings.model_validate({"data_dir": "/srv/phr", "terminology": {"store": "codes/x.sqlite"}})
    assert store_path(s, tmp_path) == tmp_path / "codes" / "x.sqlite"
    s = Settings.model_validate({"data_dir": "/srv/phr"})
    assert store_path(s, tmp_path) == Path("/srv/phr/codes.sqlite")


def test_store_file_is_private(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "codes.sqlite"
    CodeStore(p).close()
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600


def test_missing_store_gives_empty_codes(tmp_path: Path) -> None:
    codes = load_drug_codes(tmp_path / "none.sqlite")
    assert isinstance(codes, DrugCodes) and not codes
    assert load_lab_codes(tmp_path / "none.sqlite") == {}
    assert not (tmp_path / "none.sqlite").exists()


@pytest.mark.parametrize("fmt", ["xls", "xlsx", "txt"])
def test_import_tmt_and_walk(tmp_path: Path, store: CodeStore, fmt: str) -> None:
    res = import_tmt(store, tmt_zip(tmp_path, fmt=fmt))
    assert res.release == "TMTRF20250101" and res.release_date == "2025-01-01"
    assert res.concepts == {"SUBS": 3, "VTM": 3, "GP": 3, "GPU": 2, "TP": 3, "TPU": 2}
    assert res.relationships["SUBStoVTM"] == 4 and res.issues.count == 0
    assert any("SNAPSHOT" in s["file"] for s in res.skipped_files)
    # TPU -> GPU -> GP; GPU -> GP; TP -> GP; TP without a GP parent -> TPU -> GPU -> GP; GP itself
    assert store.gp_of("950001") == "920001"
    assert store.gp_of("930003") == "920003"
    assert store.gp_of("940001") == "920001"
    assert store.gp_of("940003") == "920003"
    assert store.gp_of("920002") == "920002"
    assert store.gp_of("940009") is None  # a TP with no relationships
    assert store.gp_of("123456") is None
    # substances: GP <- VTM <- SUBS, two for a combination
    assert store.substances_of_gp("920002") == ["900001", "900002"]
    c = store.concept("950001")
    assert c is not None and c.manufacturer == "SYNTH PHARMA" and c.release == "TMTRF20250101"


def test_load_drug_codes_resolves_rows(tmp_path: Path) -> None:
    p = tmp_path / "codes.sqlite"
    with CodeStore(p) as s:
        import_tmt(s, tmt_zip(tmp_path))
        s.replace_drug_master("10700", [("AMX500", "1" + "0" * 23, "950001", "Amoxy 500", ""),
                                        ("PARA", "", "940003", "Para-X", ""),
                                        ("GHOST", "", "999999", "not in TMT", "")], "cat.xlsx 2025-01-02")
        s.replace_drug_master("", [("2" + "0" * 23, "2" + "0" * 23, "920002", "Amox+Clav", "")], "prov.csv")
    codes = load_drug_codes(p)
    amx = codes.lookup("10700", "AMX500")
    assert amx is not None and amx.gp == ("920001", "amoxicillin 500 mg oral capsule")
    assert amx.substances == (("900001", "amoxicillin"),) and amx.level == "TPU"
    assert amx.source == "cat.xlsx 2025-01-02"
    assert codes.lookup("10700", "1" + "0" * 23) == amx  # the 24-digit code finds the same drug
    assert codes.lookup("10701", "AMX500") is None  # another facility's local code means nothing
    para = codes.lookup("10700", "PARA")
    assert para is not None and para.gp is not None and para.gp[0] == "920003"
    ghost = codes.lookup("10700", "GHOST")
    assert ghost is not None and ghost.gp is None and ghost.substances == () and ghost.level is None
    combo = codes.lookup("99999", "2" + "0" * 23)  # province-wide
    assert combo is not None and [s for s, _ in combo.substances] == ["900001", "900002"]
    import pickle

    assert pickle.loads(pickle.dumps(codes)).lookup("10700", "AMX500") == amx


def test_reimport_replaces_release_and_refuses_older(tmp_path: Path, store: CodeStore) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    import_tmt(store, tmt_zip(tmp_path / "a", date="20250101"))
    res = import_tmt(store, tmt_zip(tmp_path / "b", date="20250601", fsn_suffix=" (new)"))
    assert res.replaced == "TMTRF20250101"
    assert store.concept("920001").fsn.endswith("(new)")  # type: ignore[union-attr]
    assert store.current_release() == "TMTRF20250601"
    assert store.db.execute("SELECT count(DISTINCT release) FROM tmt_concept").fetchone()[0] == 1
    with pytest.raises(UsageError, match="older"):
        import_tmt(store, tmp_path / "a" / "TMTRF20250101.zip")
    assert store.current_release() == "TMTRF20250601"  # nothing changed
    import_tmt(store, tmp_path / "a" / "TMTRF20250101.zip", allow_older=True)
    assert not store.concept("920001").fsn.endswith("(new)")  # type: ignore[union-attr]


def test_bad_rows_are_named_and_bad_zip_changes_nothing(tmp_path: Path, store: CodeStore) -> None:
    z = tmt_zip(tmp_path, fmt="txt", extra_rows={"GP": [["12A4", "bad id", "20250101"], ["920777", "", ""]],
                                                "GPtoGPU": [["920001", ""]]})
    res = import_tmt(store, z)
    texts = [i.text for i in res.issues.rows]
    assert res.issues.count == 3
    assert any("GP20250101.txt" in t and "line 5" in t and "TMTID(GP)" in t and "digits" in t for t in texts)
    assert any("line 6" in t and "FSN" in t for t in texts)
    assert any("GPtoGPU" in t and "GPUID" in t and "บรรทัด" in t for t in texts)
    before = store.counts()
    broken = tmp_path / "TMTRF20260101.zip"
    with zipfile.ZipFile(broken, "w") as zf:
        zf.writestr("TMTRF20260101/readme.txt", "nothing here")
    with pytest.raises(UsageError, match="no TMT concept files"):
        import_tmt(store, broken)
    noname = tmp_path / "release.zip"
    noname.write_bytes(z.read_bytes())
    (tmp_path / "x").mkdir()
    with zipfile.ZipFile(tmp_path / "x" / "weird.zip", "w") as zf:
        zf.writestr("Concept/GP.txt", "TMTID(GP)\tFSN\n1\ta\n")
    with pytest.raises(UsageError, match="TMTRFyyyymmdd"):
        import_tmt(store, tmp_path / "x" / "weird.zip")
    assert store.counts() == before


def test_tis620_text_is_read_with_a_warning(tmp_path: Path, store: CodeStore) -> None:
    z = tmp_path / "TMTRF20250301.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("TMTRF20250301/Concept/GP20250301.txt",
                    "TMTID(GP)\tFSN\tCHANGEDATE\r\n920001\tยาทดสอบ 500 mg\t20250301\r\n".encode("cp874"))
    res = import_tmt(store, z)
    assert store.concept("920001").fsn == "ยาทดสอบ 500 mg"  # type: ignore[union-attr]
    assert any("TIS-620" in w for w in res.warnings)


def test_normalise_name() -> None:
    assert normalise_name("Paracetamol 500MG. Tab") == "paracetamol 500 mg tab"
    assert normalise_name("Chloramphenicol eye drop 0.5%") == "chloramphenicol eye drop 0.5 %"
