"""The HDC database side: schema, loader and streaming reader against the real MariaDB server."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from types import SimpleNamespace
from urllib.parse import quote

import pymysql
import pytest
from dbfixtures import *  # noqa: F403  (the shared DB fixtures; conftest puts tests/ on sys.path)
from sqlalchemy.engine import make_url

from phrsync.f43 import hdc, schema
from phrsync.f43.schema import Field
from phrsync.f43.source import LINE_COL, RAW_COL, Chunk

pytestmark = pytest.mark.mariadb


# ---------------------------------------------------------------------------------------------
# Helpers


def batch(files: dict[str, list[list[str]]], hospcode: str = "10699", month: str = "202501") -> SimpleNamespace:
    return SimpleNamespace(hospcode=hospcode, month=month, files=files)


def row(file: str, **values: str) -> list[str]:
    """A 43-file row in field order; unnamed fields empty."""
    spec = schema.get(file)
    unknown = set(values) - set(spec.field_names)
    assert not unknown, unknown
    return [values.get(n, "") for n in spec.field_names]


def sample(f: Field, i: int) -> str:
    """A valid text value for any field, distinct per ``i`` (so key fields stay unique)."""
    if f.kind == "C":
        n = f.length or 255
        return str(i % 10) if n == 1 else f"{i}ข{f.name}"[:n]
    if f.kind == "T":
        return f"อาการ {i} ปวดหัว 🤒 | ไข้"
    if f.kind == "D":
        return (dt.date(2025, 1, 1) + dt.timedelta(days=i)).strftime("%Y%m%d")
    if f.kind == "DT":
        return (dt.datetime(2025, 1, 1, 8, 30, 15) + dt.timedelta(days=i, minutes=i)).strftime("%Y%m%d%H%M%S")
    if f.kind == "N":
        s = f.scale or 0
        return f"{i + 1}.{'5' * s}" if s else str(i + 1)
    return str((i + 1) % 10 ** (f.length or 18))


def full_row(file: str, i: int, **over: str) -> list[str]:
    spec = schema.get(file)
    vals = {f.name: sample(f, i) for f in spec.fields}
    vals.update(over)
    return [vals[n] for n in spec.field_names]


def read_all(url: str, **kw: object) -> list[Chunk]:
    return list(hdc.read_hdc(url, **kw))  # type: ignore[arg-type]


def rows_of(chunks: list[Chunk], file: str) -> list[list[str]]:
    """Rows read back, in text form with null → "" (the 43-file form of an empty field)."""
    spec = schema.get(file)
    out: list[list[str]] = []
    for c in chunks:
        if c.spec.name != spec.name:
            continue
        assert c.table.column_names == [*spec.field_names, LINE_COL, RAW_COL]
        for r in c.table.to_pylist():
            out.append(["" if r[n] is None else r[n] for n in spec.field_names])
    return out


def _conn(url: str) -> pymysql.connections.Connection:
    u = make_url(url)
    return pymysql.connect(host=u.host, port=u.port or 3306, user=u.username or "root", database=u.database)


def catalog(url: str) -> dict[str, tuple[dict[str, str], list[str]]]:
    """Table → (column name → upper-case column type, primary-key columns), as the server has them."""
    out: dict[str, tuple[dict[str, str], list[str]]] = {}
    conn = _conn(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, COLUMN_KEY FROM information_schema.COLUMNS"
                " WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION"
            )
            for t, c, typ, _ in cur.fetchall():
                out.setdefault(str(t), ({}, []))[0][str(c)] = str(typ).upper()
            cur.execute(
                "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA ="
                " DATABASE() AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY TABLE_NAME, ORDINAL_POSITION"
            )
            for t, c in cur.fetchall():
                out[str(t)][1].append(str(c))
    finally:
        conn.close()
    return out


def columns(url: str, table: str) -> dict[str, str]:
    return catalog(url).get(table, ({}, []))[0]


def execute(url: str, *sqls: str) -> None:
    """Run statements on one connection (so a SET SESSION applies to the ones after it)."""
    conn = _conn(url)
    try:
        with conn.cursor() as cur:
            for sql in sqls:
                cur.execute(sql)
        conn.commit()
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# Schema


@pytest.mark.parametrize("upper_case", [False, True])
def test_create_schema_names_types_keys_and_extras(hdc_url: str, upper_case: bool) -> None:
    hdc.create_schema(hdc_url, upper_case=upper_case)
    hdc.create_schema(hdc_url, upper_case=upper_case)  # idempotent: existing tables are kept
    cat = catalog(hdc_url)
    assert set(cat) == {spec.table for spec in schema.FILES.values()}
    for spec in schema.FILES.values():
        cols, pk = cat[spec.table]
        expected = [f.name if upper_case else f.sql_name for f in spec.fields]
        assert list(cols)[: len(expected)] == expected
        assert list(cols)[len(expected):] == ["cid_aes", "log_import_id"]
        assert pk == [f.name if upper_case else f.sql_name for f in (spec.by_name[k] for k in spec.key)]
    svc = cat["service"][0]
    name = (lambda n: n) if upper_case else str.lower
    assert svc[name("DATE_SERV")] == "DATE"
    assert svc[name("D_UPDATE")] == "DATETIME"
    assert svc[name("BTEMP")] == "DECIMAL(4,1)"
    assert svc[name("PRICE")] == "DECIMAL(11,2)"
    assert svc[name("HOSPCODE")] == "VARCHAR(5)"
    assert svc[name("CHIEFCOMP")] == "TEXT"


def test_create_schema_without_extras_and_untyped(hdc_url: str) -> None:
    hdc.create_schema(hdc_url, hdc_extras=False, typed=False, files=["service", "PERSON"])
    svc = columns(hdc_url, "service")
    assert "cid_aes" not in svc and "log_import_id" not in svc
    assert svc["date_serv"] == "VARCHAR(255)" and svc["chiefcomp"] == "TEXT"
    assert columns(hdc_url, "diagnosis_opd") == {}  # only the files asked for


def test_table_ddl_is_utf8mb4_and_indexes_the_date_field() -> None:
    ddl, params = hdc.table_ddl(schema.get("SERVICE"))
    spec = schema.get("SERVICE")
    assert "CHARSET=utf8mb4" in ddl and ddl.endswith("COMMENT=%s")  # the comment is a parameter too
    assert params == [f"{spec.title_th} / {spec.title_en}"]
    assert "KEY `ix_date_serv` (`date_serv`)" in ddl and "KEY `ix_d_update` (`d_update`)" in ddl
    assert "PRIMARY KEY (`hospcode`, `seq`)" in ddl


# ---------------------------------------------------------------------------------------------
# Load + read round trip


@pytest.mark.parametrize(("upper_case", "typed"), [(False, True), (True, True), (False, False)])
def test_round_trip_every_file(hdc_url: str, upper_case: bool, typed: bool) -> None:
    """Text form in == text form out, for every field of every 43-file the registry knows."""
    if not typed:
        hdc.create_schema(hdc_url, typed=False, upper_case=upper_case)
    files = {spec.name.lower(): [full_row(spec.name, i) for i in range(3)] for spec in schema.FILES.values()}
    # Empty fields come back empty; a Thai name and a 4-byte character survive utf8mb4.
    files["person"].append(full_row("PERSON", 5, NAME="สมชาย", LNAME="ใจดี", MSTATUS="", BIRTH="", HN=""))
    # Quotes, backslashes, percent signs and line breaks are data, not SQL.
    files["person"].append(full_row("PERSON", 6, NAME="O'Brien \\ 50%s", LNAME='"x"\n\r\0\x1a;--'))
    files["service"].append(full_row("SERVICE", 7, CHIEFCOMP="ไข้\nไอ 'มาก' \\ %(x)s"))
    result = hdc.load_batches(hdc_url, [batch(files)], upper_case=upper_case)
    assert dict(result) == {spec.name: len(files[spec.table]) for spec in schema.FILES.values()}
    assert result.bad_values == {} and result.skipped == {}

    chunks = read_all(hdc_url)
    for spec in schema.FILES.values():
        assert sorted(rows_of(chunks, spec.name)) == sorted(files[spec.table]), spec.name
    assert all(not c.problems for c in chunks)
    assert [c.spec.name for c in chunks] == list(schema.ORDER)  # registries first


def test_read_values_raw_line_and_source(hdc_url: str) -> None:
    svc = row("SERVICE", HOSPCODE="10699", PID="7", SEQ="S1", DATE_SERV="20250115", TIME_SERV="083000",
              INSTYPE="0100", TYPEIN="1", SERVPLACE="1", BTEMP="36.8", SBP="120", TYPEOUT="1",
              PRICE="120", PAYPRICE="0.5", ACTUALPAY="0.00", D_UPDATE="20250115103000",
              CHIEFCOMP="ไข้")
    hdc.load_batches(hdc_url, [batch({"SERVICE": [svc]})])
    [chunk] = read_all(hdc_url, files=["service"])
    assert chunk.source == "hdc:service" and chunk.hospcode == "" and chunk.spec is schema.get("SERVICE")
    [r] = chunk.table.to_pylist()
    # Decimals keep their column's scale, as the database stores them.
    assert (r["BTEMP"], r["PRICE"], r["PAYPRICE"], r["SBP"]) == ("36.8", "120.00", "0.50", "120")
    assert r["DATE_SERV"] == "20250115" and r["D_UPDATE"] == "20250115103000"
    assert r["HN"] is None and r["CID"] is None
    assert r[LINE_COL] == 1
    assert r[RAW_COL] == "|".join("" if r[n] is None else r[n] for n in schema.get("SERVICE").field_names)
    assert all(chunk.table.schema.field(n).type == "string" for n in schema.get("SERVICE").field_names)
    assert chunk.table.schema.field(LINE_COL).type == "int64"


def test_unconvertible_values_become_null_and_are_counted(hdc_url: str) -> None:
    rows = [
        full_row("SERVICE", 1, DATE_SERV="20251345", BTEMP="abc", SBP="12x", D_UPDATE="2025011510"),
        full_row("SERVICE", 2, BTEMP="1234.5", TIME_SERV="0830001", SBP="120.0"),  # too big; too long
        full_row("SERVICE", 3, SEQ=""),  # empty key: the row cannot be stored at all
        full_row("SERVICE", 4, HOSPCODE="1069999"),  # key too long for VARCHAR(5)
    ]
    result = hdc.load_batches(hdc_url, [batch({"SERVICE": rows})])
    assert result == {"SERVICE": 2}
    assert result.skipped == {"SERVICE": 2}
    assert result.bad_values == {
        "SERVICE.DATE_SERV": 1, "SERVICE.BTEMP": 2, "SERVICE.SBP": 1, "SERVICE.D_UPDATE": 1,
        "SERVICE.TIME_SERV": 1, "SERVICE.HOSPCODE": 1,
    }
    got = {r["SEQ"]: r for c in read_all(hdc_url, files=["SERVICE"]) for r in c.table.to_pylist()}
    assert set(got) == {rows[0][3], rows[1][3]}
    first, second = got[rows[0][3]], got[rows[1][3]]
    assert first["DATE_SERV"] is None and first["BTEMP"] is None and first["SBP"] is None
    assert first["D_UPDATE"] is None and first["PID"] == rows[0][1]
    assert second["BTEMP"] is None and second["TIME_SERV"] is None and second["SBP"] == "120"


def test_quoting_follows_the_servers_no_backslash_escapes_mode(hdc_url: str) -> None:
    """Some servers run with NO_BACKSLASH_ESCAPES: then a backslash is data, and only quotes double."""
    hdc.create_schema(hdc_url, files=["EPI"])
    mode = quote("SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES,STRICT_TRANS_TABLES'")
    tricky = ["a'b\\c", "x\\'); --", "ค\\n'"]
    rows = [full_row("EPI", i, PROVIDER=v) for i, v in enumerate(tricky)]
    assert hdc.load_batches(f"{hdc_url}?init_command={mode}", [batch({"EPI": rows})]) == {"EPI": 3}
    assert sorted(r[6] for r in rows_of(read_all(hdc_url, files=["EPI"]), "EPI")) == sorted(tricky)


def test_row_longer_than_the_file_is_an_error(hdc_url: str) -> None:
    with pytest.raises(ValueError, match="EPI"):
        hdc.load_batches(hdc_url, [batch({"EPI": [full_row("EPI", 1) + ["extra"]]})])
    with pytest.raises(ValueError, match="unknown 43-file"):
        hdc.load_batches(hdc_url, [batch({"NOSUCHFILE": [["x"]]})])


def test_short_rows_are_padded_with_empty_fields(hdc_url: str) -> None:
    """An older layout without the appended fields (CID) loads; the missing fields are empty."""
    spec = schema.get("DIAGNOSIS_OPD")
    short = full_row("DIAGNOSIS_OPD", 1)[: len(spec.base_fields)]
    assert hdc.load_batches(hdc_url, [batch({"diagnosis_opd": [short]})]) == {"DIAGNOSIS_OPD": 1}
    assert rows_of(read_all(hdc_url, files=["DIAGNOSIS_OPD"]), "DIAGNOSIS_OPD") == [short + [""]]


# ---------------------------------------------------------------------------------------------
# Upsert


def _person(name: str, d_update: str) -> list[str]:
    return full_row("PERSON", 1, NAME=name, D_UPDATE=d_update)


def _names(url: str) -> list[tuple[str, str]]:
    return [(r["NAME"], r["D_UPDATE"] or "") for c in read_all(url, files=["PERSON"]) for r in c.table.to_pylist()]


@pytest.mark.parametrize("upper_case", [True])  # lower case: the test below and the round trips
def test_upsert_is_idempotent_and_later_d_update_wins(hdc_url: str, upper_case: bool) -> None:
    files = {"PERSON": [_person("สมชาย", "20250101120000")], "SERVICE": [full_row("SERVICE", i) for i in range(5)]}
    first = hdc.load_batches(hdc_url, [batch(files)], upper_case=upper_case)
    before = {s: rows_of(read_all(hdc_url, files=[s]), s) for s in ("PERSON", "SERVICE")}
    second = hdc.load_batches(hdc_url, [batch(files)], upper_case=upper_case)
    assert first == second == {"PERSON": 1, "SERVICE": 5}
    assert {s: rows_of(read_all(hdc_url, files=[s]), s) for s in ("PERSON", "SERVICE")} == before

    hdc.load_batches(hdc_url, [batch({"PERSON": [_person("สมหญิง", "20250201080000")]})])
    assert _names(hdc_url) == [("สมหญิง", "20250201080000")]
    hdc.load_batches(hdc_url, [batch({"PERSON": [_person("เก่ากว่า", "20241231235959")]})])
    assert _names(hdc_url) == [("สมหญิง", "20250201080000")]
    hdc.load_batches(hdc_url, [batch({"PERSON": [_person("ไม่มีวันที่", "")]})])  # NULL never wins
    assert _names(hdc_url) == [("สมหญิง", "20250201080000")]
    # Two versions of a record in one batch: the later one stays, whatever the order.
    hdc.load_batches(hdc_url, [batch({"PERSON": [_person("ใหม่สุด", "20250301000000"),
                                                 _person("กลาง", "20250215000000")]})])
    assert _names(hdc_url) == [("ใหม่สุด", "20250301000000")]


def test_upsert_over_null_d_update_and_extra_columns_untouched(hdc_url: str) -> None:
    hdc.load_batches(hdc_url, [batch({"PERSON": [_person("ไม่มีวันที่", "")]})])
    execute(hdc_url, "UPDATE person SET cid_aes = 'enc', log_import_id = 42")
    hdc.load_batches(hdc_url, [batch({"PERSON": [_person("มีวันที่", "20250101000000")]})])
    assert _names(hdc_url) == [("มีวันที่", "20250101000000")]
    conn = _conn(hdc_url)
    with conn.cursor() as cur:
        cur.execute("SELECT cid_aes, log_import_id FROM person")
        assert cur.fetchall() == (("enc", 42),)
    conn.close()


# ---------------------------------------------------------------------------------------------
# Filters


def _filter_data() -> dict[str, list[list[str]]]:
    service = [
        row("SERVICE", HOSPCODE="10699" if i % 2 else "10700", PID=str(i), SEQ=f"S{i:02d}",
            DATE_SERV=f"202501{i:02d}", D_UPDATE=f"202502{i:02d}090000")
        for i in range(1, 11)
    ]
    admission = [
        row("ADMISSION", HOSPCODE="10699", PID="1", AN="A1", DATETIME_ADMIT="20250105235959",
            D_UPDATE="20250106000000"),
        row("ADMISSION", HOSPCODE="10699", PID="2", AN="A2", DATETIME_ADMIT="20250106000000",
            D_UPDATE="20250107000000"),
    ]
    person = [row("PERSON", HOSPCODE="10699", PID=str(i), BIRTH="19800101", D_UPDATE="20240101000000")
              for i in range(1, 4)]
    return {"SERVICE": service, "ADMISSION": admission, "PERSON": person}


def _keys(chunks: list[Chunk], file: str, field: str) -> list[str]:
    return sorted(r[field] for c in chunks if c.spec.name == file for r in c.table.to_pylist())


@pytest.mark.parametrize("typed", [True, False])
def test_date_since_and_hospcode_filters(hdc_url: str, typed: bool) -> None:
    if not typed:  # the newer all-VARCHAR HDC schema: filters compare YYYYMMDD text
        hdc.create_schema(hdc_url, typed=False)
    hdc.load_batches(hdc_url, [batch(_filter_data())])

    got = read_all(hdc_url, files=["SERVICE", "ADMISSION", "PERSON"],
                   date_from=dt.date(2025, 1, 3), date_to=dt.date(2025, 1, 5))
    assert _keys(got, "SERVICE", "SEQ") == ["S03", "S04", "S05"]
    assert _keys(got, "ADMISSION", "AN") == ["A1"]  # 23:59:59 on date_to is inside the range
    assert _keys(got, "PERSON", "PID") == ["1", "2", "3"]  # registry without a date field: not filtered

    got = read_all(hdc_url, files=["SERVICE"], date_from=dt.date(2025, 1, 9))
    assert _keys(got, "SERVICE", "SEQ") == ["S09", "S10"]
    got = read_all(hdc_url, files=["SERVICE"], date_to=dt.date(2025, 1, 2))
    assert _keys(got, "SERVICE", "SEQ") == ["S01", "S02"]

    got = read_all(hdc_url, files=["SERVICE", "PERSON"], since=dt.datetime(2025, 2, 8, 9, 0, 0))
    assert _keys(got, "SERVICE", "SEQ") == ["S08", "S09", "S10"]  # D_UPDATE >= since, inclusive
    assert _keys(got, "PERSON", "PID") == []  # since applies to registries too
    # An aware time is converted to Thai local time (UTC+7), the zone HDC times are written in.
    aware = dt.datetime(2025, 2, 8, 2, 0, 1, tzinfo=dt.UTC)
    assert _keys(read_all(hdc_url, files=["SERVICE"], since=aware), "SERVICE", "SEQ") == ["S09", "S10"]

    got = read_all(hdc_url, files=["SERVICE"], hospcodes=["10700"], date_to=dt.date(2025, 1, 6))
    assert _keys(got, "SERVICE", "SEQ") == ["S02", "S04", "S06"]
    assert read_all(hdc_url, files=["SERVICE"], hospcodes=[]) == []


# ---------------------------------------------------------------------------------------------
# Streaming


def test_chunking_numbers_lines_across_chunks(hdc_url: str) -> None:
    hdc.load_batches(hdc_url, [batch(_filter_data())])
    chunks = read_all(hdc_url, files=["SERVICE"], chunk_rows=3)
    assert [c.num_rows for c in chunks] == [3, 3, 3, 1]
    lines = [n for c in chunks for n in c.table.column(LINE_COL).to_pylist()]
    assert lines == list(range(1, 11))
    keys = [(r["HOSPCODE"], r["SEQ"]) for c in chunks for r in c.table.to_pylist()]
    assert keys == sorted(keys)  # primary-key order: stable line numbers between reads
    # An empty table yields nothing; nine rows make exactly three chunks.
    assert read_all(hdc_url, files=["EPI"], chunk_rows=3) == []
    assert [c.num_rows for c in read_all(hdc_url, files=["SERVICE"], chunk_rows=3,
                                         date_from=dt.date(2025, 1, 2))] == [3, 3, 3]
    with pytest.raises(ValueError):
        read_all(hdc_url, chunk_rows=0)


def test_stopping_early_releases_the_connection(hdc_url: str) -> None:
    hdc.load_batches(hdc_url, [batch({"SERVICE": [full_row("SERVICE", i) for i in range(200)]})])
    for _ in range(3):
        it = hdc.read_hdc(hdc_url, files=["SERVICE"], chunk_rows=2)
        first = next(it)
        assert first.num_rows == 2
        it.close()  # type: ignore[attr-defined]
    assert sum(c.num_rows for c in read_all(hdc_url, files=["SERVICE"])) == 200


def test_missing_table_gives_a_problem_chunk(hdc_url: str) -> None:
    hdc.load_batches(hdc_url, [batch({"SERVICE": [full_row("SERVICE", 1)]})])
    execute(hdc_url, "DROP TABLE epi")
    chunks = read_all(hdc_url, files=["EPI", "SERVICE"])
    assert [c.spec.name for c in chunks] == ["SERVICE", "EPI"]
    epi = chunks[1]
    assert epi.num_rows == 0 and epi.source == "hdc:epi"
    assert epi.table.column_names == [*schema.get("EPI").field_names, LINE_COL, RAW_COL]
    [p] = epi.problems
    assert p.rule == "hdc_table_missing" and p.file == "EPI" and p.line == 0
    assert "epi" in p.reason_th and "epi" in p.reason_en
    assert not chunks[0].problems


def test_columns_matched_case_insensitively_missing_null_extra_ignored(hdc_url: str) -> None:
    """A hand-made HDC table: mixed-case names, no CID, no CLINIC, an internal column."""
    hdc.create_schema(hdc_url, files=["SERVICE"])
    execute(hdc_url, """
        CREATE TABLE diagnosis_opd (
          HospCode VARCHAR(5) NOT NULL, pid VARCHAR(15), SEQ VARCHAR(16) NOT NULL, Date_Serv DATE,
          DIAGTYPE CHAR(1), diagcode VARCHAR(6) NOT NULL, provider VARCHAR(15), log_import_id INT,
          D_Update TIMESTAMP NULL, cid_aes VARBINARY(64),
          PRIMARY KEY (HospCode, SEQ, diagcode)
        ) DEFAULT CHARSET=utf8mb4""")
    execute(hdc_url, "INSERT INTO diagnosis_opd VALUES ('10699','5','S1','2025-01-02','1','E119','P1',9,"
                     "'2025-01-02 10:11:12', x'00ff')")
    [chunk] = read_all(hdc_url, files=["DIAGNOSIS_OPD"], date_from=dt.date(2025, 1, 1))
    [r] = chunk.table.to_pylist()
    assert r["HOSPCODE"] == "10699" and r["DATE_SERV"] == "20250102" and r["DIAGCODE"] == "E119"
    assert r["D_UPDATE"] == "20250102101112" and r["CID"] is None and r["CLINIC"] is None
    assert set(chunk.table.column_names) == {*schema.get("DIAGNOSIS_OPD").field_names, LINE_COL, RAW_COL}
    # CLINIC is a base field: its absence is worth a warning; CID is appended and often absent.
    assert [(p.rule, p.field, p.severity) for p in chunk.problems] == [("hdc_column_missing", "CLINIC", "warning")]
    # Loading into that table uses the columns it has and leaves the rest out.
    res = hdc.load_batches(hdc_url, [batch({"DIAGNOSIS_OPD": [full_row("DIAGNOSIS_OPD", 2)]})])
    assert res == {"DIAGNOSIS_OPD": 1}
    assert len(rows_of(read_all(hdc_url, files=["DIAGNOSIS_OPD"]), "DIAGNOSIS_OPD")) == 2


def test_zero_dates_left_by_a_lax_import_read_as_text(hdc_url: str) -> None:
    """Old HDC imports ran without strict mode and left 0000-00-00; the checks must see them."""
    hdc.create_schema(hdc_url, files=["SERVICE"])
    execute(hdc_url, "SET SESSION sql_mode = ''",
            "INSERT INTO service (hospcode, seq, pid, date_serv, d_update) VALUES"
            " ('10699', 'Z1', '1', '0000-00-00', '0000-00-00 00:00:00'),"
            " ('10699', 'Z2', '2', '2025-02-00', '2025-02-00 10:00:00')")
    got = {r["SEQ"]: r for c in read_all(hdc_url, files=["SERVICE"]) for r in c.table.to_pylist()}
    assert (got["Z1"]["DATE_SERV"], got["Z1"]["D_UPDATE"]) == ("00000000", "00000000000000")
    assert (got["Z2"]["DATE_SERV"], got["Z2"]["D_UPDATE"]) == ("20250200", "20250200100000")


def test_unknown_file_name_is_an_error(hdc_url: str) -> None:
    hdc.create_schema(hdc_url, files=["PERSON"])
    with pytest.raises(ValueError, match="unknown 43-file"):
        hdc.read_hdc(hdc_url, files=["PERSON", "NOPE"])


# ---------------------------------------------------------------------------------------------
# Errors and URL masking


def test_bad_password_raises_hdc_error_without_the_password(mariadb_database: Callable[[], str]) -> None:
    url = mariadb_database()
    u = make_url(url).set(username="root", password="S3cret-pw!")
    with pytest.raises(hdc.HDCError) as e:
        hdc.read_hdc(u.render_as_string(hide_password=False))
    msg = str(e.value)
    assert "S3cret-pw!" not in msg
    assert "127.0.0.1" in msg and u.database in msg
    assert "เชื่อมต่อ" in msg and "cannot connect" in msg


def test_unreachable_host_and_unknown_database_raise_hdc_error(mariadb_database: Callable[[], str]) -> None:
    with pytest.raises(hdc.HDCError, match="127.0.0.1:1/hdc") as e:
        hdc.load_batches("mysql+pymysql://user:Pw-xyz@127.0.0.1:1/hdc", [])
    assert "Pw-xyz" not in str(e.value)
    missing = mariadb_database()  # never created
    with pytest.raises(hdc.HDCError, match=missing.rsplit("/", 1)[1]):
        list(hdc.read_hdc(missing))


def test_engines_and_plain_mysql_urls_are_accepted(hdc_url: str) -> None:
    from sqlalchemy import create_engine

    plain = hdc_url.replace("mysql+pymysql://", "mysql://")
    hdc.create_schema(plain, files=["EPI"])
    engine = create_engine(hdc_url)
    try:
        assert hdc.load_batches(engine, [batch({"EPI": [full_row("EPI", 1)]})]) == {"EPI": 1}
        assert sum(c.num_rows for c in hdc.read_hdc(engine, files=["EPI"])) == 1
    finally:
        engine.dispose()
    with pytest.raises(hdc.HDCError, match="MySQL"):
        hdc.read_hdc("postgresql://u:pw@h/db")


def test_mask_url_hides_the_password() -> None:
    assert hdc.mask_url("mysql+pymysql://hdc:pa55@10.0.0.5:3306/hdc") == "mysql+pymysql://hdc:***@10.0.0.5:3306/hdc"
    assert hdc.mask_url("mysql+pymysql://root@127.0.0.1/hdc") == "mysql+pymysql://root@127.0.0.1/hdc"
    assert "pa55" not in hdc.mask_url(make_url("mysql://u:pa55@h/d"))
    assert "p@ss" not in hdc.mask_url("mysql://u:p%40ss@h/d")


def test_values_round_half_up_and_reject_what_does_not_fit() -> None:
    """Values with more decimals than the column are rounded once, in Python, the usual way; what is bound is
    the value, never SQL text (the driver quotes it)."""
    conv = hdc._decimal_value(4, 1)
    assert conv("36.8") == "36.8" and conv(" 36.85") == "36.9" and conv("36.849") == "36.8"
    assert conv("999.94") == "999.9" and conv("1e2") == "100.0"
    assert conv("1000") is hdc._BAD and conv("nan") is hdc._BAD and conv("3,5") is hdc._BAD
    assert hdc._date_value("20240229") == "2024-02-29" and hdc._date_value("20230229") is hdc._BAD
    assert hdc._datetime_value("20250115") == "2025-01-15 00:00:00"
    assert hdc._datetime_value("20250115246000") is hdc._BAD
    assert hdc._datetime_value("19600101000000", True) is hdc._BAD  # outside TIMESTAMP's range
    assert hdc._time_value("235959") == "23:59:59" and hdc._time_value("240000") is hdc._BAD
    assert hdc._int_value(2**7)("127") == 127 and hdc._int_value(2**7)("128") is hdc._BAD
    assert hdc._int_value(2**7)("120.0") == 120 and hdc._int_value(2**7)("120.5") is hdc._BAD


def test_upsert_sql_has_placeholders_only() -> None:
    """No value is ever spelled into the SQL: one %s per column, for PyMySQL's executemany."""
    spec = schema.get("EPI")
    cols = [hdc._Column(f.sql_name, "varchar", 20, 80, None, None) for f in spec.fields]
    table = hdc._Table("epi", {c.name.upper(): c for c in cols}, [spec.by_name[k].sql_name for k in spec.key])
    sql = hdc._upsert_sql(table, cols, set(spec.key))
    assert sql.count("%s") == len(cols) and "'" not in sql
    assert pymysql.cursors.RE_INSERT_VALUES.match(sql)  # sent as multi-row statements, not row by row
