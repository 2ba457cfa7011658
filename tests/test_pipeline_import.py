"""synth → import round trips (zips and MariaDB) and the dirty-mode defect cross-check.

The expected staging content is computed from the generator's own batches, independently of the
importer: per file and key, the row with the latest D_UPDATE (later export wins a tie).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from dbfixtures import hdc_url, mariadb_database, mariadb_server  # noqa: F401  (pytest fixtures)

from phrsync.f43 import schema
from phrsync.f43.importer import Importer
from phrsync.f43.staging import Staging, table_name
from phrsync.synth import SynthOptions, generate, write_zips

OPTS = SynthOptions(province="27", encounters=1500, seed=11, months=2)
TODAY = dt.date(2026, 11, 25)

# which quarantine rule(s) each injected defect kind must produce
DEFECT_RULES = {
    "bad_cid": {"cid_checksum"},
    "missing_time": {"missing_time"},
    "unknown_code": {"unknown_code"},
    "bad_date": {"bad_date", "be_year"},
    "future_date": {"future_date"},
    "missing_required": {"required"},
    "mixed_encoding": {"encoding_tis620"},
    "truncated_line": {"truncated_line"},
    "duplicate_key": {"duplicate_key"},
}


def expected_rows(opts: SynthOptions, via_zip: bool = True) -> dict[str, dict[tuple[str, ...], list[str]]]:
    out: dict[str, dict[tuple[str, ...], list[str]]] = {}
    for batch in generate(opts):
        for name, rows in batch.files.items():
            spec = schema.get(name)
            kidx = [spec.field_names.index(k) for k in spec.key]
            di = spec.field_names.index("D_UPDATE")
            table = out.setdefault(name, {})
            # a header-less exporter writes the 2016 layout: the appended fields never reach staging
            blank = [] if batch.header or not via_zip else [i for i, f in enumerate(spec.fields) if f.appended]
            for row in rows:
                if blank:
                    row = [("" if i in blank else v) for i, v in enumerate(row)]
                key = tuple(row[i] for i in kidx)
                old = table.get(key)
                if old is None or row[di] >= old[di]:
                    table[key] = row
    return out


def as_text(f: schema.Field, v: Any) -> str:
    if v is None:
        return ""
    if f.kind == "D":
        return v.strftime("%Y%m%d")
    if f.kind == "DT":
        return v.strftime("%Y%m%d%H%M%S")
    return str(v)


def same(f: schema.Field, want: str, got: Any) -> bool:
    if f.kind in ("N", "I"):
        return (want == "" and got is None) or (want != "" and got is not None and abs(float(want) - got) < 1e-9)
    return want == as_text(f, got)


def assert_staging_matches(st: Staging, expected: dict[str, dict[tuple[str, ...], list[str]]]) -> None:
    for name, rows in expected.items():
        spec = schema.get(name)
        cur = st.con.execute(f"SELECT {', '.join(chr(34) + n + chr(34) for n in spec.field_names)} "
                             f"FROM {table_name(spec)}")
        got = {tuple(as_text(spec.by_name[k], r[spec.field_names.index(k)]) for k in spec.key): r
               for r in cur.fetchall()}
        assert len(got) == len(rows), f"{name}: {len(got)} staged, {len(rows)} expected"
        for key, want in rows.items():
            have = got[key]
            for i, f in enumerate(spec.fields):
                assert same(f, want[i], have[i]), f"{name} {key} {f.name}: {want[i]!r} != {have[i]!r}"


@pytest.fixture(scope="module")
def clean_zips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    write_zips(generate(OPTS), out)
    return out


def test_zip_round_trip_counts_and_values(clean_zips: Path, tmp_path: Path) -> None:
    with Staging(tmp_path / "s.duckdb") as st:
        rep = Importer(st, today=TODAY).import_paths([clean_zips])
        assert rep.rows_quarantined == 0, st.query("SELECT file, line, field, value, rule FROM quarantine "
                                                   "WHERE severity = 'error' LIMIT 5")
        assert_staging_matches(st, expected_rows(OPTS))
        # importing the same exports again changes nothing
        def fingerprint() -> dict[str, list[tuple[int, int]]]:  # every column of every row, meta included
            return {n: st.query(f"SELECT count(*), sum(hash(t)) FROM {table_name(schema.get(n))} t")
                    for n in schema.FILES}

        before = fingerprint()
        rep2 = Importer(st, today=TODAY, force=True).import_paths([clean_zips])
        assert sum(s.inserted + s.replaced for s in rep2.files.values()) == 0
        assert before == fingerprint()


def test_hdc_round_trip_through_mariadb(hdc_url: str, tmp_path: Path) -> None:  # noqa: F811
    from phrsync.f43.hdc import load_batches, read_hdc

    load_batches(hdc_url, generate(OPTS))
    with Staging(tmp_path / "s.duckdb") as st:
        rep = Importer(st, today=TODAY).import_chunks(read_hdc(hdc_url, chunk_rows=2000), "hdc", "test")
        assert rep.rows_quarantined == 0, st.query("SELECT file, line, field, value, rule FROM quarantine "
                                                   "WHERE severity = 'error' LIMIT 5")
        assert_staging_matches(st, expected_rows(OPTS, via_zip=False))


def test_every_dirty_defect_lands_in_quarantine_with_its_reason(tmp_path: Path) -> None:
    opts = SynthOptions(province="27", encounters=1500, seed=5, months=2, dirty=0.03)
    out = tmp_path / "dirty"
    write_zips(generate(opts), out)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    defects = manifest["defects"]
    kinds = Counter(d["kind"] for d in defects)
    assert set(kinds) == set(DEFECT_RULES), f"generator did not inject every kind: {kinds}"
    with Staging(tmp_path / "s.duckdb") as st:
        Importer(st, today=TODAY).import_paths([out])
        entries: dict[tuple[str, int], set[str]] = {}
        for source, line, rule, reason_th, reason_en in st.query(
                "SELECT source, line, rule, reason_th, reason_en FROM quarantine"):
            assert reason_th and reason_en
            entries.setdefault((source, line), set()).add(rule)
    missing = []
    for d in defects:
        got = entries.get((f"{d['zip']}:{d['member']}", d["line"]), set())
        if not got & DEFECT_RULES[d["kind"]]:
            missing.append((d, got))
    assert not missing, f"{len(missing)} defects without their quarantine reason, e.g. {missing[:3]}"
