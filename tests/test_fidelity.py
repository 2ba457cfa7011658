"""The data-fidelity defects of issue #14, each with a test that failed before its fix: what a province's exports
really hold (re-exports, dotted ICD-10 codes, Buddhist-era dates, long passports, ...) reaches PHR as meant."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from f43files import cid, person, service, text, write_zip

from phrsync.cli import cli
from phrsync.f43.importer import Importer, staged_rows
from phrsync.f43.staging import Staging

TODAY = dt.date(2026, 11, 25)


@pytest.fixture
def store(tmp_path: Path):
    with Staging(tmp_path / "staging.duckdb") as s:
        yield s


def run(store: Staging, *paths: Path, **kw):
    return Importer(store, today=TODAY, **kw).import_paths(paths)


def quarantine(store: Staging) -> list[dict]:
    cur = store.con.execute("SELECT * FROM quarantine ORDER BY id")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


# -- 9. file-level warnings count in the per-file totals ------------------------------------------------------

def test_a_tis620_file_counts_its_warning_in_the_file_totals(tmp_path: Path) -> None:
    body = text("PERSON", [person("1", 1)]).encode("cp874")
    z = write_zip(tmp_path / "F43_10699_202501.zip", {"person.txt": body})
    res = CliRunner().invoke(cli, ["import", str(z), "--staging", str(tmp_path / "s.duckdb"), "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["quarantine_by_reason"]["encoding_tis620"]["by_file"] == {"PERSON": 1}
    assert d["files"]["PERSON"]["warnings"] == 1 and d["files"]["PERSON"]["accepted"] == 1


# -- the pipeline: import, then the payload of each visit -------------------------------------------------------

NOW = dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.UTC)


def encounters(store: Staging) -> dict[str, tuple[dict | None, list]]:
    """Each visit's (payload or None, notes), by ``HOSPCODE:SEQ``."""
    from phrsync.f43 import extract as E
    from phrsync.phr import mapping as M

    ctx = M.MapContext(now=NOW)
    store.con.execute("CHECKPOINT")  # (the import's deletes, written: the build reads a settled store)
    return {f"{b['hospcode']}:{b['ref']}": M.map_encounter(b, ctx) for b in E.iter_bundles(store.con)}


def codes(notes: list) -> list[str]:
    return [n.code for n in notes]


def appointment(seq: str, pid: str, apdate: str, aptype: str = "001") -> dict[str, str]:
    return {"HOSPCODE": "10699", "PID": pid, "SEQ": seq, "DATE_SERV": "20250105", "CLINIC": "00100",
            "APDATE": apdate, "APTYPE": aptype, "D_UPDATE": "20250105103000"}


def diagnosis(seq: str, pid: str, code: str, diagtype: str = "1", d_update: str = "20250105103000",
              date_serv: str = "20250105") -> dict[str, str]:
    return {"HOSPCODE": "10699", "PID": pid, "SEQ": seq, "DATE_SERV": date_serv, "DIAGTYPE": diagtype,
            "DIAGCODE": code, "CLINIC": "00100", "D_UPDATE": d_update}


# -- 10. a Thai prefix before a Latin name ----------------------------------------------------------------------

def test_a_thai_prefix_before_a_latin_name_gets_its_space(store: Staging, tmp_path: Path) -> None:
    z = write_zip(tmp_path / "F43_10699_202501.zip", {
        "person.txt": text("PERSON", [person("1", 1, NAME="AUNG", LNAME="KYAW"), person("2", 2)]),
        "service.txt": text("SERVICE", [service("S1", "1", 1), service("S2", "2", 2)]),
    })
    run(store, z)
    enc = encounters(store)
    assert enc["10699:S1"][0]["Patient"]["name"][0]["text"] == "นาย AUNG KYAW"
    assert enc["10699:S2"][0]["Patient"]["name"][0]["text"] == "นายสมชาย ใจดี"  # Thai against Thai, as before


# -- 6. appointments before the visit or years ahead ------------------------------------------------------------

def test_appointments_before_the_visit_are_left_out_and_far_ones_warned(store: Staging, tmp_path: Path) -> None:
    z = write_zip(tmp_path / "F43_10699_202501.zip", {
        "person.txt": text("PERSON", [person("1", 1)]),
        "service.txt": text("SERVICE", [service("S1", "1", 1)]),
        "appointment.txt": text("APPOINTMENT", [appointment("S1", "1", "20241205", "001"),
                                                appointment("S1", "1", "20250201", "002"),
                                                appointment("S1", "1", "20350201", "003")]),
    })
    run(store, z)
    payload, notes = encounters(store)["10699:S1"]
    starts = [a["start"] for a in payload["Encounter"][0]["Appointment"]]
    assert starts == ["2025-02-01", "2035-02-01"]  # the one before the visit is not "booked"
    by_code = {n.code: n for n in notes}
    before, far = by_code["appointment_before_visit"], by_code["appointment_far_ahead"]
    assert "2024-12-05" in before.message_en and "5/12/2567" in before.message_th  # Buddhist era on screens
    assert before.kind == "missing" and far.kind == "warning" and "2035-02-01" in far.message_en


# -- 7. SERVICE.CID differing from PERSON.CID ------------------------------------------------------------------

def test_a_visit_cid_differing_from_person_cid_is_warned_masked(store: Staging, tmp_path: Path) -> None:
    z = write_zip(tmp_path / "F43_10699_202501.zip", {
        "person.txt": text("PERSON", [person("1", 1)]),
        "service.txt": text("SERVICE", [service("S1", "1", 7), service("S2", "1", 1)]),
    })
    run(store, z)
    enc = encounters(store)
    payload, notes = enc["10699:S1"]
    assert payload["Patient"]["identifier"][0]["value"] == cid(1)  # PERSON's is used
    (n,) = [n for n in notes if n.code == "cid_mismatch"]
    from phrsync.pdpa import mask_cid

    assert mask_cid(cid(7)) in n.message_en and mask_cid(cid(1)) in n.message_en and "SERVICE.CID" in n.message_en
    assert cid(7) not in n.message_en + n.message_th and cid(1) not in n.message_en + n.message_th
    assert "cid_mismatch" not in codes(enc["10699:S2"][1])


# -- 3. ICD-10 with a dot or in lower case ------------------------------------------------------------------

def test_dotted_and_lower_case_icd10_is_normalised_with_a_note(store: Staging, tmp_path: Path) -> None:
    z = write_zip(tmp_path / "F43_10699_202501.zip", {
        "diagnosis_opd.txt": text("DIAGNOSIS_OPD", [diagnosis("S1", "1", "E11.9"), diagnosis("S1", "1", "i10", "4"),
                                                    diagnosis("S2", "2", "J00")]),
    })
    rep = run(store, z)
    assert sorted(r["DIAGCODE"] for r in staged_rows(store, "DIAGNOSIS_OPD")) == ["E119", "I10", "J00"]
    assert rep.files["DIAGNOSIS_OPD"].quarantined == 0 and rep.files["DIAGNOSIS_OPD"].warnings == 2
    notes = [(e["line"], e["field"], e["value"], e["severity"]) for e in quarantine(store)]
    assert notes == [(2, "DIAGCODE", "E11.9", "warning"), (3, "DIAGCODE", "i10", "warning")]
    assert "E11.9 → E119" in quarantine(store)[0]["reason_en"]


def test_an_icd10_code_that_is_wrong_either_way_is_still_quarantined(store: Staging, tmp_path: Path) -> None:
    z = write_zip(tmp_path / "F43_10699_202501.zip", {
        "diagnosis_opd.txt": text("DIAGNOSIS_OPD", [diagnosis("S1", "1", "11.9E")]),
    })
    run(store, z)
    assert list(staged_rows(store, "DIAGNOSIS_OPD")) == []
    assert [(e["rule"], e["value"]) for e in quarantine(store)] == [("bad_format", "11.9E")]


# -- 4. Buddhist-era dates --------------------------------------------------------------------------------

def test_buddhist_era_dates_are_quarantined_by_default_and_repaired_when_set(tmp_path: Path) -> None:
    from phrsync.settings import ImportSection

    rows = [service("S1", "1", 1, DATE_SERV="25680105", D_UPDATE="25680105103000"), service("S2", "2", 2)]
    z = write_zip(tmp_path / "F43_10699_202501.zip", {"service.txt": text("SERVICE", rows)})
    with Staging(tmp_path / "a.duckdb") as st:
        run(st, z)
        assert [r["SEQ"] for r in staged_rows(st, "SERVICE")] == ["S2"]
        assert {e["rule"] for e in quarantine(st)} == {"be_year"}
    with Staging(tmp_path / "b.duckdb") as st:
        rep = run(st, z, limits=ImportSection(buddhist_dates="repair"))
        svc = {r["SEQ"]: r for r in staged_rows(st, "SERVICE")}
        assert svc["S1"]["DATE_SERV"] == dt.date(2025, 1, 5)
        assert svc["S1"]["D_UPDATE"] == dt.datetime(2025, 1, 5, 10, 30)
        got = [(e["field"], e["rule"], e["severity"], e["value"]) for e in quarantine(st)]
        assert got == [("DATE_SERV", "be_year_repaired", "warning", "25680105"),
                       ("D_UPDATE", "be_year_repaired", "warning", "25680105103000")]
        assert rep.files["SERVICE"].quarantined == 0 and rep.files["SERVICE"].warnings == 2


def test_buddhist_dates_repair_is_read_from_the_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "phrsync.toml"
    cfg.write_text('[import]\nbuddhist_dates = "repair"\n', encoding="utf-8")
    z = write_zip(tmp_path / "F43_10699_202501.zip", {
        "service.txt": text("SERVICE", [service("S1", "1", 1, DATE_SERV="25680105")])})
    res = CliRunner().invoke(cli, ["--config", str(cfg), "import", str(z), "--staging", str(tmp_path / "s.duckdb"),
                                   "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["files"]["SERVICE"]["accepted"] == 1 and d["quarantine_by_reason"]["be_year_repaired"]["total"] == 1


# -- 5. an overlong PASSPORT ------------------------------------------------------------------------------

def test_an_overlong_passport_empties_the_field_and_keeps_the_person(store: Staging, tmp_path: Path) -> None:
    z = write_zip(tmp_path / "F43_10699_202501.zip", {
        "person.txt": text("PERSON", [person("1", 1, PASSPORT="AB1234567890"), person("2", 2, PASSPORT="AB123456")]),
        "service.txt": text("SERVICE", [service("S1", "1", 1)]),
    })
    rep = run(store, z)
    people = {r["PID"]: r for r in staged_rows(store, "PERSON")}
    assert people["1"]["PASSPORT"] is None and people["2"]["PASSPORT"] == "AB123456"
    (e,) = quarantine(store)
    assert (e["field"], e["rule"], e["severity"]) == ("PASSPORT", "too_long_emptied", "warning")
    assert e["value"] != "AB1234567890"  # a personal value: masked
    assert "emptied" in e["reason_en"] and rep.files["PERSON"].quarantined == 0
    assert encounters(store)["10699:S1"][0] is not None  # the person's visit goes out


# -- 2. a newer export of a visit replaces its child rows as a set ------------------------------------------

def _exports(tmp_path: Path) -> tuple[Path, Path]:
    jan = write_zip(tmp_path / "F43_10699_202501.zip", {
        "person.txt": text("PERSON", [person("1", 1), person("2", 2)]),
        "service.txt": text("SERVICE", [service("S1", "1", 1), service("S2", "2", 2)]),
        "diagnosis_opd.txt": text("DIAGNOSIS_OPD", [diagnosis("S1", "1", "E119"), diagnosis("S1", "1", "J00", "4"),
                                                    diagnosis("S2", "2", "K30")]),
    })
    feb = write_zip(tmp_path / "F43_10699_202502.zip", {
        "service.txt": text("SERVICE", [service("S1", "1", 1, D_UPDATE="20250201090000")]),
        "diagnosis_opd.txt": text("DIAGNOSIS_OPD", [diagnosis("S1", "1", "I10", d_update="20250201090000"),
                                                    diagnosis("S1", "1", "J00", "4", d_update="20250201090000")]),
    })
    return jan, feb


def _diags(store: Staging) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in staged_rows(store, "DIAGNOSIS_OPD"):
        out.setdefault(r["SEQ"], []).append(r["DIAGCODE"])
    return {k: sorted(v) for k, v in out.items()}


@pytest.mark.parametrize("order", ["in_order", "newer_first", "one_import"])
def test_a_newer_export_of_a_visit_replaces_its_diagnoses_as_a_set(store: Staging, tmp_path: Path,
                                                                   order: str) -> None:
    jan, feb = _exports(tmp_path)
    if order == "in_order":
        run(store, jan)
        rep = run(store, feb)
        assert rep.files["DIAGNOSIS_OPD"].superseded_old == 1  # the old E119
    elif order == "newer_first":
        run(store, feb)
        rep = run(store, jan)
        assert rep.files["DIAGNOSIS_OPD"].superseded == 1  # the stale E119 never lands
    else:
        run(store, feb, jan)
    assert _diags(store) == {"S1": ["I10", "J00"], "S2": ["K30"]}  # a visit only in the old export keeps its rows
    payload, _notes = encounters(store)["10699:S1"]
    got = [c["code"]["coding"][0]["code"] for c in payload["Encounter"][0]["Condition"]]
    assert sorted(got) == ["I10", "J00"]


def test_resending_the_same_export_or_a_subset_of_keys_behaves(store: Staging, tmp_path: Path) -> None:
    jan, _feb = _exports(tmp_path)
    run(store, jan)
    rep = run(store, jan, force=True)  # the same export again: nothing changes
    assert _diags(store) == {"S1": ["E119", "J00"], "S2": ["K30"]}
    assert rep.files["DIAGNOSIS_OPD"].unchanged == 3 and rep.files["DIAGNOSIS_OPD"].superseded_old == 0
    again = write_zip(tmp_path / "F43_10699_202501b.zip", {  # re-exported, E119 deleted in the HIS meanwhile
        "diagnosis_opd.txt": text("DIAGNOSIS_OPD", [diagnosis("S1", "1", "J00", "4")]),
    })
    run(store, again)
    assert _diags(store) == {"S1": ["J00"], "S2": ["K30"]}


# -- 3. a visit whose principal diagnosis was quarantined is held -----------------------------------------------

def test_a_visit_whose_principal_diagnosis_was_quarantined_is_held_until_corrected(store: Staging,
                                                                                   tmp_path: Path) -> None:
    z = write_zip(tmp_path / "F43_10699_202501.zip", {
        "person.txt": text("PERSON", [person("1", 1), person("2", 2)]),
        "service.txt": text("SERVICE", [service("S1", "1", 1), service("S2", "2", 2)]),
        "diagnosis_opd.txt": text("DIAGNOSIS_OPD", [diagnosis("S1", "1", "XX"), diagnosis("S1", "1", "J00", "4"),
                                                    diagnosis("S2", "2", "K30"), diagnosis("S2", "2", "YY", "4")]),
    })
    run(store, z)
    enc = encounters(store)
    payload, notes = enc["10699:S1"]
    assert payload is None  # never sent with J00 standing in as the reason for the visit
    (n,) = [n for n in notes if n.code == "principal_diagnosis_quarantined"]
    assert n.kind == "skipped" and "diagnosis_opd.txt line 2" in n.message_en and "DIAGCODE" in n.message_en
    assert "บรรทัด 2" in n.message_th
    assert enc["10699:S2"][0] is not None  # a quarantined secondary diagnosis does not hold the visit
    fixed = write_zip(tmp_path / "F43_10699_202501_fix.zip", {
        "diagnosis_opd.txt": text("DIAGNOSIS_OPD", [diagnosis("S1", "1", "J01", d_update="20250110090000"),
                                                    diagnosis("S1", "1", "J00", "4", d_update="20250110090000")]),
    })
    run(store, fixed)
    payload, notes = encounters(store)["10699:S1"]
    assert payload is not None and "principal_diagnosis_quarantined" not in codes(notes)


def test_a_held_visit_counts_as_skipped_in_the_build(store: Staging, tmp_path: Path) -> None:
    import io

    from phrsync.f43.read import Selection
    from phrsync.phr import build as B
    from phrsync.phr import mapping as M

    z = write_zip(tmp_path / "F43_10699_202501.zip", {
        "person.txt": text("PERSON", [person("1", 1)]),
        "service.txt": text("SERVICE", [service("S1", "1", 1)]),
        "diagnosis_opd.txt": text("DIAGNOSIS_OPD", [diagnosis("S1", "1", "E11:9")]),
    })
    run(store, z)
    store.con.execute("CHECKPOINT")
    res = B.build_to(io.BytesIO(), store.con, Selection(), M.MapContext(now=NOW))
    assert res.counts["UpdatePHRv1"]["skipped"] == 1 and res.counts["UpdatePHRv1"]["built"] == 0


# -- 8. a visit without its PERSON row because that row was quarantined ---------------------------------------

def test_a_visit_whose_person_row_was_quarantined_says_so(store: Staging, tmp_path: Path) -> None:
    z = write_zip(tmp_path / "F43_10699_202501.zip", {
        "person.txt": text("PERSON", [person("1", 1, CID="1270000000010")]),
        "service.txt": text("SERVICE", [service("S1", "1", 1), service("S2", "2", 2)]),
        "epi.txt": text("EPI", [{"HOSPCODE": "10699", "PID": "1", "SEQ": "S1", "DATE_SERV": "20250105",
                                 "VACCINETYPE": "010", "D_UPDATE": "20250105103000", "CID": cid(1)}]),
    })
    run(store, z)
    from phrsync.f43 import extract as E
    from phrsync.phr import mapping as M

    (reg,) = E.iter_immunization_registers(store.con)
    assert codes(M.map_immunization_register(reg, M.MapContext(now=NOW))[1]) == ["person_quarantined"]
    enc = encounters(store)
    payload, notes = enc["10699:S1"]
    assert payload is None and codes(notes) == ["person_quarantined"]
    assert "person.txt line 2" in notes[0].message_en and "CID" in notes[0].message_en
    assert "1270000000010" not in notes[0].message_en + notes[0].message_th
    assert codes(enc["10699:S2"][1]) == ["person_missing"]  # no PERSON row at all: as before
    run(store, write_zip(tmp_path / "F43_10699_202501_fix.zip", {"person.txt": text("PERSON", [person("1", 1)])}))
    assert store.row("SELECT count(*) FROM rejected_keys")[0] == 0  # the corrected row clears the entry
    assert encounters(store)["10699:S1"][0] is not None


def test_a_store_from_before_rejected_keys_still_builds_read_only(tmp_path: Path) -> None:
    from phrsync.f43 import extract as E

    z = write_zip(tmp_path / "F43_10699_202501.zip", {
        "person.txt": text("PERSON", [person("1", 1)]), "service.txt": text("SERVICE", [service("S1", "1", 1)])})
    with Staging(tmp_path / "s.duckdb") as st:
        run(st, z)
        st.con.execute("DROP TABLE rejected_keys")
    with Staging(tmp_path / "s.duckdb", read_only=True) as st:
        (b,) = E.iter_bundles(st.con)
        assert b["held"] == [] and b["person_quarantined"] is None
        assert list(E.iter_immunization_registers(st.con)) == []  # (the register query reads it too)
