"""Memory regressions found at 5M encounters: the import's duplicate check and the build's register queries
must work under a DuckDB memory limit far below what the data needs in memory at once.

The stores are made with SQL (millions of rows in seconds) rather than imported. Both tests fail on the code
before the fixes: the duplicate check ran out of 64 MB behind the rejected rows' uncheckpointed deletes, the
immunization registers (one query for all persons) ran out of 128 MB (and of 256 MB)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from phrsync.f43 import extract as E
from phrsync.f43 import schema
from phrsync.f43.read import Selection
from phrsync.f43.staging import Staging

DRUG_ROWS = 4_000_000


def _drug_store(path: Path, n: int) -> None:
    """One import of ``n`` DRUG_OPD rows over 7 files: every 97th row rejected (``_errs``), every 1000th
    (i % 1000 == 1) repeats the key of the row before it in the same file."""
    with Staging(path, memory_limit="1GB") as st:
        st.con.execute(f"""INSERT INTO f43_drug_opd ("HOSPCODE", "PID", "SEQ", "DATE_SERV", "DIDSTD", "DNAME",
            "AMOUNT", "D_UPDATE", "CID", _import, _seq, _line, _errs)
          SELECT lpad(((i // 5) % 7)::VARCHAR, 5, '1'), (i // 5)::VARCHAR, 'S' || (i // 5)::VARCHAR,
                 DATE '2025-10-01' + (i % 28)::INT, CASE WHEN i % 1000 = 1 THEN '0' ELSE (i % 5)::VARCHAR END,
                 'ยา ' || (i % 300)::VARCHAR, i % 30, TIMESTAMP '2025-10-01', lpad((i // 5)::VARCHAR, 13, '3'),
                 1, 1 + (i // 5) % 7, i, CASE WHEN i % 97 = 0 THEN 'x' END
          FROM range({n}) t(i)""")


def test_duplicate_check_after_rejected_rows_fits_64mb(tmp_path: Path) -> None:
    """drop_rejected's deletes pinned every touched block until a checkpoint (a year's import: 348 MB of a
    256 MB limit); Staging.settle writes them, so the duplicate check that follows has memory to work in."""
    path = tmp_path / "staging.duckdb"
    _drug_store(path, DRUG_ROWS)
    spec = schema.get("DRUG_OPD")
    with Staging(path, memory_limit="64MB") as st:
        st.drop_rejected(spec, 1)
        n = st.quarantine_duplicates(spec, 1, {s: f"sha{s}" for s in range(1, 8)}, "ซ้ำ", "duplicate", 10)
        left = st.row("SELECT count(*) FROM f43_drug_opd")[0]
        lines = [r[0] for r in st.query("SELECT line FROM quarantine WHERE rule = 'duplicate_key'")]
    repeats = [i for i in range(1, DRUG_ROWS, 1000) if i % 97 and (i - 1) % 97]  # both rows of the pair kept
    rejected = len(range(0, DRUG_ROWS, 97))
    assert n == len(repeats)
    assert left == DRUG_ROWS - rejected - n
    assert len(lines) == 7 * 10  # at most max_entries entries per file
    # an equal D_UPDATE: the later line of each pair wins, the earlier one goes
    assert set(lines) <= {i - 1 for i in repeats}


def _epi_store(path: Path, persons: int) -> None:
    """``persons`` PIDs at each of 7 facilities' EPI rows (3 each, SEQ missing: matched to a visit that day),
    with PERSON and ADDRESS rows for one facility of each PID."""
    n = persons
    with Staging(path, memory_limit="1GB") as st:
        c = st.con
        c.execute(f"""INSERT INTO f43_person ("HOSPCODE", "PID", "CID", "NAME", "LNAME", "SEX", "BIRTH", "D_UPDATE",
                _import, _seq, _line)
            SELECT lpad((i % 7)::VARCHAR, 5, '1'), i::VARCHAR, lpad(i::VARCHAR, 13, '3'), 'ชื่อ' || i, 'สกุล' || i,
                   '1', DATE '2020-01-01' + (i % 1000)::INT, TIMESTAMP '2025-10-01', 1, 1, i FROM range({n}) t(i)""")
        c.execute(f"""INSERT INTO f43_address ("HOSPCODE", "PID", "ADDRESSTYPE", "HOUSENO", "VILLAGE", "TAMBON",
                "AMPUR", "CHANGWAT", "D_UPDATE", _import, _seq, _line)
            SELECT lpad((i % 7)::VARCHAR, 5, '1'), i::VARCHAR, '1', (i % 300)::VARCHAR || '/1', '01', '01', '01',
                   '27', TIMESTAMP '2025-10-01', 1, 2, i FROM range({n}) t(i)""")
        c.execute(f"""INSERT INTO f43_epi ("HOSPCODE", "PID", "SEQ", "DATE_SERV", "VACCINETYPE", "VACCINEPLACE",
                "PROVIDER", "D_UPDATE", "CID", _import, _seq, _line)
            SELECT lpad((i % 7)::VARCHAR, 5, '1'), (i // 3)::VARCHAR, NULL, DATE '2025-10-01' + (i % 28)::INT,
                   '0' || (10 + i % 3)::VARCHAR, '10699', 'P' || (i % 50)::VARCHAR, TIMESTAMP '2025-10-01',
                   lpad((i // 3)::VARCHAR, 13, '3'), 1, 3, i FROM range({3 * n}) t(i)""")
        c.execute(f"""INSERT INTO f43_service ("HOSPCODE", "PID", "SEQ", "DATE_SERV", "D_UPDATE", _import, _seq, _line)
            SELECT lpad((i % 7)::VARCHAR, 5, '1'), (i // 3)::VARCHAR, 'S' || i::VARCHAR,
                   DATE '2025-10-01' + (i % 28)::INT, TIMESTAMP '2025-10-01', 1, 4, i FROM range({3 * n}) t(i)""")


def test_immunization_registers_fit_128mb(tmp_path: Path) -> None:
    """180,000 (facility, person) registers: one query for all of them needed more than 256 MB; in batches of
    PERSONS_PER_QUERY persons 128 MB is enough, and every person comes once, in (HOSPCODE, PID) order."""
    path = tmp_path / "staging.duckdb"
    _epi_store(path, 60_000)
    with Staging(path, read_only=True, memory_limit="128MB") as st:
        keys = [(r["hospcode"], r["pid"]) for r in E.iter_immunization_registers(st.con)]
    assert len(keys) == 180_000
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize("sel", [Selection(),
                                 Selection(facilities=("11112", "11114"), date_from=dt.date(2025, 10, 3),
                                           date_to=dt.date(2025, 10, 9))], ids=["all", "facilities_dates"])
def test_registers_in_batches_equal_one_query(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              sel: Selection) -> None:
    """Batch edges (a facility's persons split over queries, a batch spanning facilities) change nothing."""
    path = tmp_path / "staging.duckdb"
    _epi_store(path, 120)
    with Staging(path, read_only=True) as st:
        def regs() -> list[dict[str, Any]]:
            return list(E.iter_immunization_registers(st.con, sel))

        one = regs()
        monkeypatch.setattr(E, "PERSONS_PER_QUERY", 7)
        many = regs()
        monkeypatch.setattr(E, "PERSONS_PER_QUERY", 1)
        single = regs()
    assert len(one) > 7 * 3  # several batches, edges inside a facility
    assert all(r["rows"] and r["rows"][0]["SEQ"] for r in one)  # EPI rows matched to their visit's SEQ
    assert many == one
    assert single == one


def test_visit_set_replacement_fits_64mb(tmp_path: Path) -> None:
    """A second import re-sends every 10th visit of 4M DRUG_OPD rows without its drug '4': the newer export of a
    visit replaces its set (Staging.replace_visit_sets), under the same 64 MB as the duplicate check."""
    path = tmp_path / "staging.duckdb"
    _drug_store(path, DRUG_ROWS)
    spec = schema.get("DRUG_OPD")
    with Staging(path, memory_limit="1GB") as st:
        st.drop_rejected(spec, 1)
        st.con.execute("""INSERT INTO f43_drug_opd SELECT * REPLACE (2 AS _import, 1 AS _seq,
            TIMESTAMP '2025-11-01' AS "D_UPDATE") FROM f43_drug_opd
            WHERE CAST(substr("SEQ", 2) AS BIGINT) % 10 = 0 AND "DIDSTD" <> '4'""")
    with Staging(path, memory_limit="64MB") as st:
        got = st.replace_visit_sets(spec, 2)
        left = st.row("SELECT count(*) FROM f43_drug_opd WHERE _import = 1 AND \"DIDSTD\" = '4' "
                      "AND CAST(substr(\"SEQ\", 2) AS BIGINT) % 10 = 0")[0]
    # the drug '4' rows of re-sent visits (those with a row left to re-send), counted from the generator's rule
    resent = {i // 5 for i in range(DRUG_ROWS) if i % 97 and (i // 5) % 10 == 0 and (i % 5 != 4 or i % 1000 == 1)}
    gone = sum(1 for i in range(DRUG_ROWS) if i % 97 and i % 5 == 4 and i % 1000 != 1 and i // 5 in resent)
    assert got == {"superseded": 0, "superseded_old": gone} and left == 0
