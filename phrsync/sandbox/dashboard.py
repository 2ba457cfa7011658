"""``/dashboard``: the PHR-centre view, server-rendered Thai HTML (no JavaScript build).

Facility → province comes from the Sa Kaeo facility list (province 27); other facilities have no known
province in the shipped tables and are shown under "ไม่ทราบ" (unknown)."""

from __future__ import annotations

import csv
import datetime as dt
import functools
import html
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from phrsync.sandbox import store
from phrsync.sandbox.payloads import BKK
from phrsync.thai import thai_date

UNKNOWN = "ไม่ทราบ"
DATA = Path(__file__).resolve().parent.parent / "terminology" / "data"


def _read_csv(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@functools.cache
def provinces() -> dict[str, tuple[str, str]]:
    """province code → (health region number, Thai province name)."""
    return {r["province_code"]: (r["region"], r["province_name_th"]) for r in _read_csv("health_regions.csv")}


@functools.cache
def province_en() -> dict[str, str]:
    """Thai province name → English name, for the bilingual headings."""
    return {r["province_name_th"]: r["province_name_en"] for r in _read_csv("health_regions.csv")}


@functools.cache
def known_facilities() -> dict[str, dict[str, str]]:
    """hospcode → {name, district, province}; the Sa Kaeo list gives the province from the ampur code."""
    out = {}
    for r in _read_csv("sakaeo_facilities.csv"):
        out[r["hospcode"]] = {"name": r["name_th"], "district": r["ampur_name_th"],
                              "province": (r["ampur_code"] or "")[:2]}
    return out


def facility_place(hcode: str) -> tuple[str, str, str]:
    """(region, province name, district) with "ไม่ทราบ" where unknown."""
    f = known_facilities().get(hcode)
    if not f:
        return UNKNOWN, UNKNOWN, UNKNOWN
    region, pname = provinces().get(f["province"], (UNKNOWN, UNKNOWN))
    return region, pname, f["district"] or UNKNOWN


def collect(conn: Connection, db_file: Path | None) -> dict[str, Any]:
    """Every figure the page shows, as plain data (also served as JSON by ``?format=json``)."""
    enc = store.encounters
    per_fac = dict(conn.execute(select(enc.c.hospital_code, func.count()).group_by(enc.c.hospital_code)).all())
    facs = conn.execute(select(store.facilities)).mappings().all()
    agents = {r["hospital_code"]: r for r in conn.execute(select(store.agent_status)).mappings()}
    stored = 0
    for t in (store.encounters, store.persons, store.immunizations, store.allergies, store.chronic,
              store.documents):
        stored += int(conn.execute(select(func.coalesce(func.sum(func.length(t.c.data)), 0))).scalar_one())
    n_persons = int(conn.execute(select(func.count()).select_from(store.persons)).scalar_one())
    n_enc = sum(int(v) for v in per_fac.values())
    regions: dict[str, int] = {str(i): 0 for i in range(1, 14)}
    regions[UNKNOWN] = 0
    by_province: dict[str, list[dict[str, Any]]] = {}
    for f in facs:
        h = f["hospital_code"]
        region, pname, district = facility_place(h)
        n = int(per_fac.get(h, 0))
        regions[region] = regions.get(region, 0) + n
        known = known_facilities().get(h, {})
        a = agents.get(h)
        last = dt.datetime.fromtimestamp(f["last_received_at"], BKK).replace(tzinfo=None)
        by_province.setdefault(pname, []).append({
            "hospital_code": h, "name": known.get("name") or f["name"], "district": district,
            "encounters": n, "last_received": last.isoformat(timespec="seconds"),
            "last_received_th": thai_date(last),
            "agent_version": (a["agent_version"] if a and a["agent_version"] else f["agent"]) or "-",
        })
    for rows in by_province.values():
        rows.sort(key=lambda r: r["hospital_code"])
    return {
        "persons": n_persons, "encounters": n_enc, "facilities": len(facs), "stored_bytes": stored,
        "db_file_bytes": db_file.stat().st_size if db_file and db_file.is_file() else None,
        "by_region": regions, "by_province": dict(sorted(by_province.items(), key=lambda kv: (kv[0] == UNKNOWN, kv[0]))),
    }


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def render(data: dict[str, Any], now: float) -> str:
    e = html.escape
    now_th = thai_date(dt.datetime.fromtimestamp(now, BKK).replace(tzinfo=None))
    region_rows = "".join(
        f"<tr><td>{'เขตสุขภาพที่ ' + e(r) if r != UNKNOWN else UNKNOWN}</td><td class=n>{n:,}</td></tr>"
        for r, n in data["by_region"].items())
    prov_html = []
    for pname, rows in data["by_province"].items():
        body = "".join(
            f"<tr><td>{e(r['hospital_code'])}</td><td>{e(r['name'])}</td><td>{e(r['district'])}</td>"
            f"<td class=n>{r['encounters']:,}</td><td>{e(r['last_received_th'])}</td><td>{e(r['agent_version'])}</td></tr>"
            for r in rows)
        heading = (f"จังหวัด{e(pname)} / {e(province_en().get(pname, ''))} Province" if pname != UNKNOWN
                   else "ไม่ทราบจังหวัด / Unknown province")
        prov_html.append(
            f"<h3>{heading}</h3>"
            "<table><tr><th>รหัส / Code</th><th>ชื่อหน่วยบริการ / Facility</th><th>อำเภอ / District</th>"
            "<th>Encounter</th><th>รับข้อมูลล่าสุด / Last received</th><th>เวอร์ชันโปรแกรมส่ง / Agent</th></tr>"
            f"{body}</table>")
    return f"""<!doctype html>
<html lang="th"><head><meta charset="utf-8"><title>MOPH-PHR sandbox — แดชบอร์ด</title>
<style>body{{font-family:"Noto Sans Thai",Tahoma,sans-serif;margin:1.5em;color:#222}}
table{{border-collapse:collapse;margin:.5em 0 1.5em}}td,th{{border:1px solid #bbb;padding:.3em .7em}}
th{{background:#e8f1ec}}.n{{text-align:right}}.cards div{{display:inline-block;margin-right:2em;padding:.6em 1em;
background:#f3f7f5;border-radius:6px}}.cards b{{display:block;font-size:1.4em}}</style></head><body>
<h1>ศูนย์ข้อมูล PHR (จำลอง) / MOPH-PHR sandbox</h1>
<p>ข้อมูล ณ {e(now_th)} — เซิร์ฟเวอร์ทดสอบ ไม่ใช่ระบบจริง / test server, not production</p>
<div class=cards>
<div>บุคคล / persons<b>{data['persons']:,}</b></div>
<div>การรับบริการ / encounters<b>{data['encounters']:,}</b></div>
<div>หน่วยบริการ / facilities<b>{data['facilities']:,}</b></div>
<div>พื้นที่ที่ใช้ / storage<b>{e(_size(data['stored_bytes']))}</b>ไฟล์ฐานข้อมูล / DB file: {e(_size(data['db_file_bytes']))}</div>
</div>
<h2>การรับบริการรายเขตสุขภาพ / Encounters by health region</h2>
<table><tr><th>เขตสุขภาพ / Region</th><th>Encounter</th></tr>{region_rows}</table>
<h2>หน่วยบริการรายจังหวัด / Facilities by province</h2>
{''.join(prov_html) or '<p>ยังไม่มีข้อมูล / no data yet</p>'}
</body></html>"""
