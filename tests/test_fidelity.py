"""The data-fidelity defects of issue #14, each with a test that failed before its fix: what a province's exports
really hold (re-exports, dotted ICD-10 codes, Buddhist-era dates, long passports, ...) reaches PHR as meant."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from f43files import person, service, text, write_zip

from phrsync.cli import cli
from phrsync.f43.importer import Importer
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
    from f43files import cid

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
