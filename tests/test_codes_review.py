"""Unmapped codes from a build summary, their suggestions, and accepting one (library and CLI)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from codes_fixtures import tmt_zip

from phrsync.cli import cli
from phrsync.errors import UsageError
from phrsync.phr.buildfile import BuildSummary, write_summary
from phrsync.terminology.codestore import CodeStore, load_drug_codes, load_lab_codes
from phrsync.terminology.review import accept, score, unmapped
from phrsync.terminology.tmtimport import import_tmt

ROWS = [
    {"kind": "drug", "hcode": "10700", "code": "L-AMX", "name": "Amoxicillin 500 mg cap", "payloads": 30,
     "waiting": 0},
    {"kind": "allergy", "hcode": "10700", "code": "L-PARA", "name": "Paracetamol 500mg tab", "payloads": 4,
     "waiting": 4},
    {"kind": "lab", "hcode": "03001", "code": "FBS", "name": "Glucose, serum/plasma", "payloads": 9, "waiting": 0},
    {"kind": "drug", "hcode": "03001", "code": "X", "name": None, "payloads": 1, "waiting": 0},
]


@pytest.fixture
def store(tmp_path: Path) -> CodeStore:
    s = CodeStore(tmp_path / "codes.sqlite")
    import_tmt(s, tmt_zip(tmp_path))
    yield s
    s.close()


def test_ranked_with_suggestions(store: CodeStore) -> None:
    summary = BuildSummary(built_at=dt.datetime(2025, 1, 1), unmapped=ROWS)
    rows = unmapped(summary, store)
    assert [(r.kind, r.code) for r in rows] == [("allergy", "L-PARA"), ("drug", "L-AMX"), ("lab", "FBS"),
                                                ("drug", "X")]
    amx = rows[1]
    assert amx.suggestions and amx.suggestions[0].code == "920001" and amx.suggestions[0].level == "GP"
    assert 0.3 <= amx.suggestions[0].score <= 1.0
    para = rows[0]
    assert {s.level for s in para.suggestions} <= {"SUBS", "GP", "TPU"}
    assert para.suggestions[0].code in ("920003", "900003")
    assert rows[2].suggestions[0].code == "0531002" and rows[2].suggestions[0].loinc == "1558-6"
    assert rows[3].suggestions == []  # no name, nothing to match
    assert [r.code for r in unmapped(summary, store, kind="lab")] == ["FBS"]
    assert [r.code for r in unmapped(summary, store, hcode="03001")] == ["FBS", "X"]
    assert len(unmapped(summary, store, limit=1)) == 1


def test_score_means_shared_words() -> None:
    assert score("Paracetamol 500 mg tab", "paracetamol 500MG tab") == 1.0
    assert score("paracetamol 500 mg", "paracetamol 325 mg") < score("paracetamol 500 mg", "paracetamol 500 mg x")
    assert score("", "x") == 0.0


def test_accept_writes_reviewed_rows(store: CodeStore) -> None:
    summary = BuildSummary(built_at=dt.datetime(2025, 1, 1), unmapped=ROWS)
    row = accept(store, "allergy", "10700", "L-PARA", "920003", "ภญ.สมศรี")
    assert re.fullmatch(r"reviewed by ภญ\.สมศรี at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+07:00", row["source"])
    assert row["substances"] == [["900003", "paracetamol"]]
    c = load_drug_codes(store.path).lookup("10700", "L-PARA")
    assert c is not None and c.source == row["source"] and c.gp is not None
    accept(store, "lab", "03001", "FBS", "01", "lab lead")  # the old 2-digit code resolves too
    assert load_lab_codes(store.path) == {("03001", "FBS"): "0531002"}
    assert [r.code for r in unmapped(summary, store)] == ["L-AMX", "X"]  # accepted ones leave the list
    with pytest.raises(UsageError, match="not in TMTRF20250101"):
        accept(store, "drug", "10700", "L-AMX", "123456", "x")
    with pytest.raises(UsageError, match="no substance"):
        accept(store, "allergy", "10700", "L-AMX", "940009", "x")
    with pytest.raises(UsageError, match="reviewer"):
        accept(store, "drug", "10700", "L-AMX", "920001", " ")
    with pytest.raises(UsageError, match="lab_loinc"):
        accept(store, "lab", "10700", "L", "nope", "x")
    # a reviewed row survives a re-import of the facility's master that lacks the code
    f = store.path.parent / "m.csv"
    f.write_text("code,tmtid,name\nOTHER,920001,a\n", encoding="utf-8")
    from phrsync.terminology.drugimport import import_drugs

    res = import_drugs(store, f, "csv", "10700")
    assert res.kept_reviewed == {"10700": 1}
    assert load_drug_codes(store.path).lookup("10700", "L-PARA") is not None


def test_cli_round_trip(tmp_path: Path) -> None:
    run = CliRunner().invoke
    db = str(tmp_path / "c.sqlite")
    z = tmt_zip(tmp_path)
    r = run(cli, ["codes", "import-tmt", str(z), "--store", db, "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["concepts_total"] == 16
    r = run(cli, ["codes", "import-tmt", str(z), "--store", db])
    assert r.exit_code == 0 and "TMTRF20250101" in r.stdout and "2568" in r.stdout  # Buddhist-era date
    f = tmp_path / "cdrug.csv"
    f.write_text("drugcode,drugname,drugcode24,tmtcode\nA1,amoxy,,950001\nA2,bad,12,x\n", encoding="utf-8")
    r = run(cli, ["codes", "import-drugs", str(f), "--format", "jhcis-cdrug", "--facility", "03001", "--store", db])
    assert r.exit_code == 1 and "cdrug.csv line 3 field drugcode24" in r.stdout
    r = run(cli, ["codes", "import-drugs", str(f), "--format", "jhcis-cdrug", "--store", db])
    assert r.exit_code == 2 and "--facility" in r.output
    build = tmp_path / "payloads.ndjson"
    build.write_bytes(b"")
    write_summary(build, BuildSummary(built_at=dt.datetime(2025, 1, 1), unmapped=ROWS))
    r = run(cli, ["codes", "unmapped", "--build", str(build), "--store", db, "--json", "--kind", "drug"])
    assert r.exit_code == 0, r.output
    assert [x["code"] for x in json.loads(r.stdout)["rows"]] == ["L-AMX", "X"]
    r = run(cli, ["codes", "unmapped", "--build", str(build), "--store", db])
    assert r.exit_code == 0 and "L-PARA" in r.stdout
    r = run(cli, ["codes", "accept", "drug", "10700", "L-AMX", "920001", "--reviewer", "nurse A", "--store", db,
                  "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["source"].startswith("reviewed by nurse A at ")
    r = run(cli, ["codes", "accept", "drug", "10700", "L-AMX", "999", "--reviewer", "n", "--store", db])
    assert r.exit_code == 2 and "999" in r.output
    r = run(cli, ["codes", "store", "--store", db, "--json"])
    assert json.loads(r.stdout)["drug_master"] == {"03001": 2, "10700": 1}  # A2 kept without its bad codes
    r = run(cli, ["codes", "unmapped", "--build", str(tmp_path / "none.ndjson"), "--store", db])
    assert r.exit_code == 2
    for cmd in ("import-tmt", "import-drugs", "store", "unmapped", "accept"):
        assert run(cli, ["codes", cmd, "--help"]).exit_code == 0


def test_cli_store_from_config(tmp_path: Path) -> None:
    """Without --store the commands use [terminology] store, relative to phrsync.toml's folder."""
    cfg = tmp_path / "phrsync.toml"
    cfg.write_text('[terminology]\nstore = "codes/mine.sqlite"\n', encoding="utf-8")
    z = tmt_zip(tmp_path)
    r = CliRunner().invoke(cli, ["--config", str(cfg), "codes", "import-tmt", str(z), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["store"] == str(tmp_path / "codes" / "mine.sqlite")
    assert (tmp_path / "codes" / "mine.sqlite").is_file()
    r = CliRunner().invoke(cli, ["--config", str(cfg), "codes", "store", "--json"])
    assert json.loads(r.stdout)["release"] == "TMTRF20250101"
    cfg.write_text(f'data_dir = "{tmp_path / "d"}"\n', encoding="utf-8")
    r = CliRunner().invoke(cli, ["--config", str(cfg), "codes", "store"])
    assert r.exit_code == 7 and "codes.sqlite" in r.output  # no store yet: a StoreError naming it


def test_a_mapping_the_release_lacks_stays_unmapped(store: CodeStore) -> None:
    """A drug-master row whose TMT ID is not in the imported release does not take the code off the list."""
    store.replace_drug_master("10700", [("L-AMX", "", "777777", "amoxy", "")], "m.csv")
    summary = BuildSummary(built_at=dt.datetime(2025, 1, 1), unmapped=ROWS[:1])
    assert [r.code for r in unmapped(summary, store)] == ["L-AMX"]
    store.replace_drug_master("10700", [("L-AMX", "", "950001", "amoxy", "")], "m.csv")
    assert unmapped(summary, store) == []
