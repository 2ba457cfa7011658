"""Why the staging store is DuckDB: the same rows loaded into DuckDB and into SQLite, then the query the
build stage runs most (one facility-month of visits with their diagnoses and drugs, grouped per visit).

    python benchmarks/staging_bench.py --visits 300000
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402


def make(visits: int) -> tuple[pa.Table, pa.Table]:
    rng = random.Random(1)
    hosp = [f"{10000 + i:05d}" for i in range(100)]
    start = dt.date(2025, 10, 1)
    svc = {"HOSPCODE": [], "PID": [], "SEQ": [], "DATE_SERV": [], "INSTYPE": [], "SBP": [], "BTEMP": []}
    dx = {"HOSPCODE": [], "SEQ": [], "DIAGCODE": [], "DIAGTYPE": []}
    for i in range(visits):
        h = hosp[i % 100]
        seq = f"S{i}"
        svc["HOSPCODE"].append(h)
        svc["PID"].append(str(rng.randrange(5000)))
        svc["SEQ"].append(seq)
        svc["DATE_SERV"].append(start + dt.timedelta(days=rng.randrange(120)))
        svc["INSTYPE"].append("0100")
        svc["SBP"].append(rng.randrange(90, 180))
        svc["BTEMP"].append(36 + rng.random() * 2)
        for k in range(rng.choice((1, 1, 2, 3))):
            dx["HOSPCODE"].append(h)
            dx["SEQ"].append(seq)
            dx["DIAGCODE"].append(rng.choice(["J069", "I10", "E119", "K30", "M545"]))
            dx["DIAGTYPE"].append("1" if k == 0 else "2")
    return pa.table(svc), pa.table(dx)


QUERY = """SELECT s.SEQ, s.PID, s.DATE_SERV, count(d.DIAGCODE) AS n, min(d.DIAGCODE) AS first_dx
FROM service s LEFT JOIN diagnosis d ON d.HOSPCODE = s.HOSPCODE AND d.SEQ = s.SEQ
WHERE s.HOSPCODE = '10042' AND s.DATE_SERV BETWEEN '2025-11-01' AND '2025-11-30'
GROUP BY s.SEQ, s.PID, s.DATE_SERV"""
# the nightly build reads a whole province-month at once: every facility's visits with their diagnoses
QUERY_ALL = QUERY.replace("s.HOSPCODE = '10042' AND ", "").replace("GROUP BY s.SEQ", "GROUP BY s.HOSPCODE, s.SEQ")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--visits", type=int, default=300_000)
    args = ap.parse_args()
    svc, dx = make(args.visits)
    rows = svc.num_rows + dx.num_rows
    work = Path(tempfile.mkdtemp())
    print(f"machine: {describe()}")
    print(f"data: {svc.num_rows:,} visits + {dx.num_rows:,} diagnoses = {rows:,} rows")

    con = duckdb.connect(str(work / "s.duckdb"))
    t0 = time.perf_counter()
    con.execute("CREATE TABLE service AS SELECT * FROM svc")
    con.execute("CREATE TABLE diagnosis AS SELECT * FROM dx")
    con.execute("CHECKPOINT")
    load_duck = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(20):
        con.execute(QUERY).fetchall()
    q_duck = (time.perf_counter() - t0) / 20
    t0 = time.perf_counter()
    con.execute(QUERY_ALL).fetchall()
    qa_duck = time.perf_counter() - t0
    con.close()

    db = sqlite3.connect(str(work / "s.sqlite"))
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE service (HOSPCODE TEXT, PID TEXT, SEQ TEXT, DATE_SERV TEXT, INSTYPE TEXT, SBP INT, BTEMP REAL)")
    db.execute("CREATE TABLE diagnosis (HOSPCODE TEXT, SEQ TEXT, DIAGCODE TEXT, DIAGTYPE TEXT)")
    t0 = time.perf_counter()
    srows = list(zip(*[c.to_pylist() for c in svc.columns], strict=True))
    srows = [(a, b, c, d.isoformat(), e, f, g) for a, b, c, d, e, f, g in srows]
    db.executemany("INSERT INTO service VALUES (?,?,?,?,?,?,?)", srows)
    db.executemany("INSERT INTO diagnosis VALUES (?,?,?,?)",
                   list(zip(*[c.to_pylist() for c in dx.columns], strict=True)))
    db.execute("CREATE INDEX sx ON service (HOSPCODE, DATE_SERV)")
    db.execute("CREATE INDEX dxx ON diagnosis (HOSPCODE, SEQ)")
    db.commit()
    load_sqlite = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(20):
        db.execute(QUERY).fetchall()
    q_sqlite = (time.perf_counter() - t0) / 20
    t0 = time.perf_counter()
    db.execute(QUERY_ALL).fetchall()
    qa_sqlite = time.perf_counter() - t0
    db.close()

    print(f"bulk load : DuckDB {rows / load_duck:,.0f} rows/s | SQLite (indexed) {rows / load_sqlite:,.0f} rows/s")
    print(f"facility-month query: DuckDB {q_duck * 1000:.1f} ms | SQLite {q_sqlite * 1000:.1f} ms")
    print(f"province-month query (all facilities): DuckDB {qa_duck * 1000:.0f} ms | SQLite {qa_sqlite * 1000:.0f} ms")
    print(f"file size : DuckDB {(work / 's.duckdb').stat().st_size / 1e6:.1f} MB | "
          f"SQLite {(work / 's.sqlite').stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
