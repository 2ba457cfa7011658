"""``phrsync codes`` through click's CliRunner, both human and ``--json`` output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from phrsync.cli import cli
from phrsync.terminology import configure, reset
from phrsync.terminology.cli import codes_cmd


@pytest.fixture(autouse=True)
def shipped_only() -> Iterator[None]:
    configure(None)
    yield
    reset()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_registered_as_codes_verb(runner: CliRunner) -> None:
    r = runner.invoke(cli, ["codes", "--help"])
    assert r.exit_code == 0, r.output
    for sub in ("list", "show", "lookup", "explain"):
        assert sub in r.output


def test_list_human(runner: CliRunner) -> None:
    r = runner.invoke(codes_cmd, ["list"], terminal_width=200)
    assert r.exit_code == 0, r.output
    assert "vaccines" in r.output and "drug_tmt" in r.output and "ตารางรหัส" in r.output


def test_list_json(runner: CliRunner) -> None:
    r = runner.invoke(codes_cmd, ["list", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    by = {t["name"]: t for t in data["tables"]}
    assert by["vaccines"]["row_count"] == 131 and by["vaccines"]["completeness"] == "complete"
    assert by["drug_tmt"]["row_count"] == 0 and by["drug_tmt"]["completeness"] == "empty"
    assert by["lab_loinc"]["alt_key"] == "labtest_2digit"
    assert data["override_dir"] is None


def test_show_limit_and_json(runner: CliRunner) -> None:
    r = runner.invoke(codes_cmd, ["show", "mstatus", "--limit", "2", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["shown"] == 2 and [x["mstatus"] for x in data["rows"]] == ["1", "2"]
    assert all(x["source"] for x in data["rows"])
    r = runner.invoke(codes_cmd, ["show", "mstatus", "--limit", "0", "--json"])
    assert json.loads(r.output)["shown"] == 7


def test_show_human(runner: CliRunner) -> None:
    r = runner.invoke(codes_cmd, ["show", "sex"], terminal_width=200)
    assert r.exit_code == 0, r.output
    assert "ชาย" in r.output and "แสดง 2 จาก 2 แถว" in r.output


def test_lookup_found(runner: CliRunner) -> None:
    r = runner.invoke(codes_cmd, ["lookup", "instype", "0100", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["found"] and data["row"]["main_group"] == "UCS" and data["row"]["source"]
    r = runner.invoke(codes_cmd, ["lookup", "lab_loinc", "05"], terminal_width=200)
    assert r.exit_code == 0 and "0531601" in r.output and "4548-4" in r.output


def test_lookup_composite(runner: CliRunner) -> None:
    r = runner.invoke(codes_cmd, ["lookup", "ncd_screen", "SMOKE:1", "--json"])
    assert json.loads(r.output)["row"]["name_th"] == "ไม่สูบ"


def test_lookup_not_found_exit_1(runner: CliRunner) -> None:
    r = runner.invoke(codes_cmd, ["lookup", "vaccines", "ZZZ"])
    assert r.exit_code == 1
    assert "ไม่พบรหัส" in r.output and "not found" in r.output


def test_lookup_not_found_json(runner: CliRunner) -> None:
    r = runner.invoke(codes_cmd, ["lookup", "vaccines", "ZZZ", "--json"])
    assert r.exit_code == 1
    first = r.output[: r.output.index("}") + 1]
    assert json.loads(first) == {"table": "vaccines", "code": "ZZZ", "found": False}


def test_unknown_table_exit_2(runner: CliRunner) -> None:
    r = runner.invoke(codes_cmd, ["show", "nope"])
    assert r.exit_code == 2 and "unknown code table" in r.output and "ไม่รู้จักตารางรหัส" in r.output


def test_explain(runner: CliRunner) -> None:
    r = runner.invoke(codes_cmd, ["explain", "typein_encounter"], terminal_width=200)
    assert r.exit_code == 0, r.output
    for needle in ("ไม่ครบ / partial", "phr_encounter_type 4", "typein_encounter.extend.csv", "encounter_type list"):
        assert needle in r.output


def test_explain_json(runner: CliRunner) -> None:
    r = runner.invoke(codes_cmd, ["explain", "sakaeo_facilities", "--json"])
    data = json.loads(r.output)
    assert data["completeness"] == "partial" and "registry" in data["production"]
    assert data["top_sources"][0]["rows"] == 139
    assert data["blank_cells"]["tambon_code"] == 139 - 88


def test_dir_option_and_bad_file(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "sex.extend.csv").write_text("sex,name_th\n3,x\n3,y\n", encoding="utf-8")
    r = runner.invoke(codes_cmd, ["--dir", str(tmp_path), "lookup", "sex", "1"])
    assert r.exit_code == 2
    assert "line 3" in r.output and "บรรทัด 3" in r.output and "sex.extend.csv" in r.output
    r = runner.invoke(codes_cmd, ["--dir", str(tmp_path), "list"])
    assert r.exit_code == 2


def test_config_terminology_dir(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PHRSYNC_CODES_DIR", raising=False)
    reset()
    (tmp_path / "codes").mkdir()
    (tmp_path / "codes" / "sex.extend.csv").write_text("sex,name_th\n3,ทดสอบ\n", encoding="utf-8")
    toml = tmp_path / "phrsync.toml"
    toml.write_text('[terminology]\ndir = "codes"\n', encoding="utf-8")
    r = runner.invoke(cli, ["--config", str(toml), "codes", "lookup", "sex", "3", "--json"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.output)["row"]
    assert row["name_th"] == "ทดสอบ" and row["source"] == str(tmp_path / "codes" / "sex.extend.csv")
