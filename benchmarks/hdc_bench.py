"""HDC loader and reader throughput: load N SERVICE + N DIAGNOSIS_OPD rows, read them back.

Prints rows per second for the first load, the repeated (all-duplicate) load and the streaming
read. Uses a throw-away database on the server given by ``--server`` and drops it afterwards.

    .venv/bin/python benchmarks/hdc_bench.py --rows 100000
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import time
from types import SimpleNamespace

import pymysql
from sqlalchemy.engine import make_url

from phrsync.f43 import hdc, schema


def make_rows(n: int) -> dict[str, list[list[str]]]:
    """Realistic-looking visits: one SERVICE row and one DIAGNOSIS_OPD row per visit."""
    svc_spec, dx_spec = schema.get("SERVICE"), schema.get("DIAGNOSIS_OPD")
    base = dt.datetime(2025, 1, 1, 8, 0, 0)
    svc: list[list[str]] = []
    dx: list[list[str]] = []
    for i in range(n):
        when = base + dt.timedelta(minutes=7 * i)
        d, ts = when.strftime("%Y%m%d"), when.strftime("%Y%m%d%H%M%S")
        seq = f"{d}{i:08d}"
        v = dict.fromkeys(svc_spec.field_names, "")
        v.update(HOSPCODE="10699", PID=str(i % 5000 + 1), HN=str(i % 5000 + 1), SEQ=seq, DATE_SERV=d,
                 TIME_SERV=when.strftime("%H%M%S"), LOCATION="1", INTIME="1", INSTYPE="0100", TYPEIN="1",
                 CHIEFCOMP="ไข้ ไอ เจ็บคอ 2 วัน", SERVPLACE="1", BTEMP=f"{36 + i % 30 / 10:.1f}",
                 SBP=str(100 + i % 60), DBP=str(60 + i % 30), PR="80", RR="20", TYPEOUT="1",
                 PRICE=f"{100 + i % 900}.00", PAYPRICE="0.00", ACTUALPAY="0.00", D_UPDATE=ts,
                 CID="1100700000000")
        svc.append([v[f] for f in svc_spec.field_names])
        w = dict.fromkeys(dx_spec.field_names, "")
        w.update(HOSPCODE="10699", PID=v["PID"], SEQ=seq, DATE_SERV=d, DIAGTYPE="1", DIAGCODE="J029",
                 CLINIC="00100", PROVIDER="P001", D_UPDATE=ts)
        dx.append([w[f] for f in dx_spec.field_names])
    return {"SERVICE": svc, "DIAGNOSIS_OPD": dx}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000, help="visits (each makes 2 rows)")
    ap.add_argument("--server", default=os.environ.get("PHRSYNC_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306"))
    ap.add_argument("--chunk-rows", type=int, default=50_000)
    args = ap.parse_args()

    db = f"phrsync_bench_{os.getpid()}"
    url = f"{args.server}/{db}"
    files = make_rows(args.rows)
    total = sum(len(r) for r in files.values())
    batch = SimpleNamespace(hospcode="10699", month="202501", files=files)
    try:
        t = time.perf_counter()
        hdc.load_batches(url, [batch])
        t_load = time.perf_counter() - t
        t = time.perf_counter()
        hdc.load_batches(url, [batch])
        t_reload = time.perf_counter() - t
        t = time.perf_counter()
        read = 0
        for chunk in hdc.read_hdc(url, files=["SERVICE", "DIAGNOSIS_OPD"], chunk_rows=args.chunk_rows):
            read += chunk.num_rows
        t_read = time.perf_counter() - t
        assert read == total, (read, total)
    finally:
        u = make_url(args.server)
        conn = pymysql.connect(host=u.host, port=u.port or 3306, user=u.username or "root", password=u.password or "")
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
        conn.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"rows: {total:,} (SERVICE + DIAGNOSIS_OPD)")
    print(f"load (insert):        {t_load:7.2f} s  {total / t_load:10,.0f} rows/s")
    print(f"load again (upsert):  {t_reload:7.2f} s  {total / t_reload:10,.0f} rows/s")
    print(f"read (stream, chunk {args.chunk_rows:,}): {t_read:7.2f} s  {total / t_read:10,.0f} rows/s")
    print(f"peak RSS of this process: {peak_mb:,.0f} MB (includes the generated input rows)")


if __name__ == "__main__":
    main()
