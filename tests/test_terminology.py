"""Code tables: shipped data integrity, lookups the mapping relies on, and province override files."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from phrsync.config import Config
from phrsync.terminology import (
    CodeTableError,
    chronic_group_for_icd10,
    code_set,
    configure,
    configure_from_config,
    get_table,
    list_tables,
    lookup,
    override_dir,
    reset,
    table_names,
)
from phrsync.terminology import docs as codes_docs
from phrsync.terminology.registry import COMPLETENESS_LABELS, SPECS
from phrsync.terminology.tables import DATA_DIR, ENV_DIR

REQUIRED = [
    "prename", "nation", "instype", "vaccines", "lab_loinc", "mstatus", "sex", "chronic_groups",
    "chronic_typedisch", "coverage_main_group", "encounter_type", "health_regions", "sakaeo_districts",
    "sakaeo_tambons", "sakaeo_facilities", "ncd_screen", "phr_codingsystems",
    "typein_encounter", "diagtype", "typeout", "dischstatus", "dischtype", "drugallergy_codes", "providertype",
    "clinic", "religion", "education", "typearea", "labtest_units", "drug_tmt", "person_codes", "council",
    "service_codes",
]


@pytest.fixture(autouse=True)
def shipped_only() -> Iterator[None]:
    """Each test starts from the shipped tables, whatever $PHRSYNC_CODES_DIR the developer has set."""
    configure(None)
    yield
    reset()


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- shipped data -----------------------------------------------------------------------------


def test_every_required_table_is_registered() -> None:
    assert set(REQUIRED) <= set(table_names())


def test_every_shipped_csv_is_registered_and_loads() -> None:
    shipped = {p.stem for p in DATA_DIR.glob("*.csv")}
    assert shipped == {n for n, s in SPECS.items() if not s.derived_from}
    for t in list_tables():
        assert t.columns and "source" in t.columns, t.name
        assert t.completeness in COMPLETENESS_LABELS
        assert t.origin and t.production and t.completeness_note and t.note_th


def test_every_shipped_row_has_a_source_and_a_key() -> None:
    for t in list_tables():
        for row in t.rows:
            assert row["source"].strip(), (t.name, row)
            assert all(row[k] for k in t.key), (t.name, row)


def test_github_sources_are_pinned_to_a_commit() -> None:
    """A ``github:`` source must name owner/repo@commit so anyone can open the exact file."""
    for t in list_tables():
        for row in t.rows:
            for m in re.finditer(r"github:(\S+)", row["source"]):
                assert re.match(r"[\w.-]+/[\w.-]+@[0-9a-f]{7,40}:", m.group(1)), (t.name, row["source"])


def test_shipped_files_are_read_raw_not_rewritten() -> None:
    """The loader must give exactly what the CSV says (no silent padding or recoding of codes)."""
    with (DATA_DIR / "prename.csv").open(encoding="utf-8") as fh:
        raw = list(csv.DictReader(fh))
    t = get_table("prename")
    assert len(t) == len(raw) == 504
    assert [r["prename_code"] for r in t.rows] == [r["prename_code"] for r in raw]


def test_drug_tmt_is_empty_but_valid() -> None:
    t = get_table("drug_tmt")
    assert len(t) == 0 and t.completeness == "empty"
    assert t.key == ("didstd",) and "tmt_code" in t.columns
    assert code_set("drug_tmt") == frozenset()


def test_partial_tables_leave_unknown_values_blank() -> None:
    t = get_table("typein_encounter")
    assert code_set("typein_encounter") == {"1", "2", "3", "4", "5"}
    assert lookup("typein_encounter", "1")["phr_encounter_type"] == "1"
    assert all(not lookup("typein_encounter", c)["phr_encounter_type"] for c in "2345")
    assert t.completeness == "partial"


# --- lookups the mapping relies on ------------------------------------------------------------


def test_instype_0100_is_ucs() -> None:
    row = lookup("instype", "0100")
    assert row is not None and row["main_group"] == "UCS" and "sil-th" in row["source"]


def test_vaccine_010_is_bcg() -> None:
    assert lookup("vaccines", "010")["name_en"] == "BCG"
    assert "010" in code_set("vaccines")


def test_lab_fbs_loinc_and_old_two_digit_code() -> None:
    assert lookup("lab_loinc", "0531002")["loinc"] == "1558-6"
    assert lookup("lab_loinc", "05")["labtest"] == "0531601"
    assert "05" not in code_set("lab_loinc")
    assert {"05", "0531601"} <= code_set("lab_loinc", alternate=True)


def test_labtest_units_derive_from_lab_loinc() -> None:
    row = lookup("labtest_units", "0531601")
    assert row["unit_ucum"] == "%" and row["source"].startswith("derived: lab_loinc")
    assert lookup("labtest_units", "01")["labtest"] == "0531002"


@pytest.mark.parametrize(("icd", "group"), [("E119", "DM"), ("E11.9", "DM"), ("e10", "DM"), ("E149", "DM"),
                                            ("I10", "HT"), ("I152", "HT"), ("N185", "CKD"), ("J45", "ASTHMA"),
                                            ("C50", "CANCER"), ("I64", "STROKE")])
def test_chronic_group_for_icd10(icd: str, group: str) -> None:
    row = chronic_group_for_icd10(icd)
    assert row is not None and row["group"] == group


@pytest.mark.parametrize("icd", ["E15", "E09", "I16", "Z000", "", "E1"])
def test_chronic_group_outside_ranges(icd: str) -> None:
    assert chronic_group_for_icd10(icd) is None


def test_dm_is_the_only_group_with_a_phr_code() -> None:
    assert chronic_group_for_icd10("E119")["phr_chronic_disease_code"] == "001"
    assert chronic_group_for_icd10("I10")["phr_chronic_disease_code"] == ""


def test_composite_keys() -> None:
    assert lookup("ncd_screen", "SMOKE:1")["name_th"] == "ไม่สูบ"
    assert lookup("ncd_screen", ("ALCOHOL", "9"))["name_th"] == "ไม่ทราบ"
    assert lookup("phr_codingsystems", "encounter_type:1")["display"] == "มาเอง (ห้องบัตร)"
    assert lookup("encounter_type", "43-file SERVICE.TYPEIN:5") is not None
    assert lookup("drugallergy_codes", "ALEVEL:1")["phr_code"] == "1"


def test_other_keyed_tables() -> None:
    assert lookup("prename", "003")["full_th"] == "นาย"
    assert lookup("nation", "099")["name_th"] == "ไทย"
    assert lookup("health_regions", "27")["region"] == "6"
    assert lookup("sakaeo_facilities", "10699")["type"] == "รพท."
    assert lookup("diagtype", "1")["name_en"] == "Principal diagnosis"
    assert lookup("clinic", "00100")["department"] == "01"
    assert lookup("typearea", "3")["hdc_catchment"] == "Y"
    assert lookup("person_codes", "ABOGROUP:4")["name_th"] == "O"
    assert lookup("providertype", "011") is not None and lookup("dischtype", "6") is None
    assert lookup("instype", "0000") is None


def test_duplicate_key_in_shipped_table_first_row_wins() -> None:
    t = get_table("coverage_main_group")
    assert lookup("coverage_main_group", "UCS")["name_th"] == "สิทธิ UC"
    assert len(t.get_all("UCS")) == 2


def test_unknown_table_message_is_bilingual_and_lists_tables() -> None:
    with pytest.raises(KeyError) as ei:
        get_table("no_such_table")
    msg = str(ei.value)
    assert "ไม่รู้จักตารางรหัส" in msg and "unknown code table" in msg and "vaccines" in msg


def test_tables_are_cached() -> None:
    assert get_table("vaccines") is get_table("vaccines")
    assert code_set("vaccines") is code_set("vaccines")


# --- overrides --------------------------------------------------------------------------------


def test_replace_table(tmp_path: Path) -> None:
    write(tmp_path / "vaccines.csv", "vaccinetype,name_en,source\n010,BCG (province),\nZZ1,Local vaccine,my list\n")
    configure(tmp_path)
    t = get_table("vaccines")
    assert code_set("vaccines") == {"010", "ZZ1"}
    assert t.override == "replaced" and t.files == (tmp_path / "vaccines.csv",)
    assert lookup("vaccines", "010")["source"] == str(tmp_path / "vaccines.csv")
    assert lookup("vaccines", "ZZ1")["source"] == "my list"


def test_extend_adds_and_overrides_by_key(tmp_path: Path) -> None:
    write(tmp_path / "typein_encounter.extend.csv",
          "typein,phr_encounter_type,phr_encounter_display,source\n2,X2,from PHR list,\n9,,new row,ours\n")
    configure(tmp_path)
    t = get_table("typein_encounter")
    row = lookup("typein_encounter", "2")
    assert row["phr_encounter_type"] == "X2"
    assert row["name_th"] == "มารับบริการตามนัดหมาย"  # columns not in the extend file are kept
    assert row["source"] == str(tmp_path / "typein_encounter.extend.csv")
    assert lookup("typein_encounter", "9")["source"] == "ours"
    assert lookup("typein_encounter", "1")["phr_encounter_type"] == "1"  # untouched
    assert len(t) == 6 and t.override == "extended"


def test_extend_adds_new_column_and_composite_key(tmp_path: Path) -> None:
    write(tmp_path / "ncd_screen.extend.csv", "field,code,name_th,local_code\nSMOKE,1,ไม่สูบ,N\n")
    configure(tmp_path)
    t = get_table("ncd_screen")
    assert "local_code" in t.columns
    assert lookup("ncd_screen", "SMOKE:1")["local_code"] == "N"
    assert lookup("ncd_screen", "SMOKE:2")["local_code"] == ""


def test_replace_and_extend_together(tmp_path: Path) -> None:
    write(tmp_path / "sex.csv", "sex,name_th,source\n1,ชาย,a\n2,หญิง,b\n")
    write(tmp_path / "sex.extend.csv", "sex,name_th,source\n3,อื่น,c\n")
    configure(tmp_path)
    assert code_set("sex") == {"1", "2", "3"}
    assert get_table("sex").override == "replaced+extended"


def test_new_user_table_is_picked_up(tmp_path: Path) -> None:
    write(tmp_path / "hospitals.csv", "\ufeffhcode,name\r\n10699,รพ.สมเด็จพระยุพราชสระแก้ว\r\n")  # Excel: BOM, CRLF
    configure(tmp_path)
    assert "hospitals" in table_names()
    t = get_table("hospitals")
    assert t.key == ("hcode",) and t.completeness == "user" and t.columns == ("hcode", "name", "source")
    assert lookup("hospitals", "10699")["source"] == str(tmp_path / "hospitals.csv")
    assert lookup("hospitals", "10699")["name"] == "รพ.สมเด็จพระยุพราชสระแก้ว"
    assert "hospitals" in [x.name for x in list_tables()]


def test_lab_override_flows_into_units(tmp_path: Path) -> None:
    write(tmp_path / "lab_loinc.extend.csv", "labtest,unit_ucum\n0531601,mmol/mol\n")
    configure(tmp_path)
    assert lookup("labtest_units", "0531601")["unit_ucum"] == "mmol/mol"


def test_env_var_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "drug_tmt.csv", "didstd,tmt_code,source\n" + "1" * 24 + ",123456,\n")
    monkeypatch.setenv(ENV_DIR, str(tmp_path))
    reset()
    assert override_dir() == tmp_path
    assert code_set("drug_tmt") == {"1" * 24}


def test_config_section_relative_to_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_DIR, raising=False)
    (tmp_path / "codes").mkdir()
    write(tmp_path / "codes" / "sex.extend.csv", "sex,name_th\n3,ทดสอบ\n")
    cfg = Config(raw={"terminology": {"dir": "codes"}}, source=tmp_path / "phrsync.toml")
    configure_from_config(cfg)
    assert override_dir() == tmp_path / "codes"
    assert "3" in code_set("sex")


def test_env_var_beats_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_DIR, str(tmp_path))
    reset()
    configure_from_config(Config(raw={"terminology": {"dir": "/elsewhere"}}, source=tmp_path / "x.toml"))
    assert override_dir() == tmp_path


# --- bad user files ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "line", "needle"),
    [
        ("drug_tmt.csv", "tmt_code,source\n1,x\n", 1, "missing key column didstd"),
        ("drug_tmt.csv", "didstd,tmt_code\nA,1\nB,2\nA,3\n", 4, "duplicate key A (first on line 2)"),
        ("drug_tmt.csv", "didstd,tmt_code\nA,1\n,2\n", 3, "empty key"),
        ("drug_tmt.csv", "didstd,tmt_code\nA,1,extra\n", 2, "3 fields but the header has 2 columns"),
        ("drug_tmt.csv", "", 1, "empty file"),
        ("drug_tmt.csv", "didstd,didstd\n", 1, "duplicate column name"),
        ("ncd_screen.extend.csv", "field,name_th\nSMOKE,x\n", 1, "missing key column code"),
        ("vaccines.extend.csv", 'vaccinetype,name_en\n010,"multi\nline"\n999,a\n999,"b\nc"\n', 5, "duplicate key 999"),
    ],
)
def test_bad_override_file_names_file_and_line(tmp_path: Path, name: str, text: str, line: int,
                                                needle: str) -> None:
    path = write(tmp_path / name, text)
    configure(tmp_path)
    table = name.split(".")[0]
    with pytest.raises(CodeTableError) as ei:
        get_table(table)
    err = ei.value
    assert err.path == path and err.line == line
    msg = str(err)
    assert str(path) in msg and f"line {line}" in msg and f"บรรทัด {line}" in msg and needle in msg


def test_non_utf8_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "hospitals.csv"
    path.write_bytes(b"hcode,name\n10699," + "โรงพยาบาล".encode("cp874") + b"\n")
    configure(tmp_path)
    with pytest.raises(CodeTableError) as ei:
        get_table("hospitals")
    assert ei.value.line == 2 and "UTF-8" in str(ei.value)


def test_extend_for_unknown_table_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "nosuch.extend.csv", "a,b\n1,2\n")
    configure(tmp_path)
    with pytest.raises(CodeTableError, match="no table nosuch to extend"):
        table_names()


def test_missing_override_dir_is_an_error(tmp_path: Path) -> None:
    configure(tmp_path / "absent")
    with pytest.raises(CodeTableError, match="directory not found"):
        get_table("vaccines")


# --- docs -------------------------------------------------------------------------------------


def test_docs_codes_md_is_current() -> None:
    """docs/codes.md must carry the registry's generated block verbatim (run python -m phrsync.terminology.docs)."""
    text = codes_docs.DOC.read_text(encoding="utf-8")
    assert codes_docs.render_tables() in text
    for name in table_names():
        assert f"`{name}`" in text


def test_docs_render_ignores_user_overrides(tmp_path: Path) -> None:
    write(tmp_path / "hospitals.csv", "hcode,name\n1,x\n")
    configure(tmp_path)
    assert "`hospitals`" not in codes_docs.render_tables()
    assert override_dir() == tmp_path  # the caller's setting survives
