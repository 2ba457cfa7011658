"""``/dashboard``: the PHR-centre view, server-rendered Thai HTML (no JavaScript build) from the Jinja2 template
``templates/dashboard.html``, autoescaped: facility names and agent versions come from uploads.

Facility → province comes from the Sa Kaeo facility list (province 27); other facilities have no known
province in the shipped tables and are shown under "ไม่ทราบ" (unknown)."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path
from typing import Any

import jinja2
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from phrsync.sandbox import store
from phrsync.terminology import places
from phrsync.thai import BANGKOK, local_time, thai_datetime

UNKNOWN = "ไม่ทราบ"


@functools.cache
def provinces() -> dict[str, tuple[str, str]]:
    """province code → (health region number, Thai province name)."""
    return {c: (p.region, p.name) for c, p in places.provinces().items()}


@functools.cache
def province_en() -> dict[str, str]:
    """Thai province name → English name, for the bilingual headings."""
    return {p.name: p.name_en for p in places.provinces().values()}


@functools.cache
def known_facilities() -> dict[str, dict[str, str]]:
    """hospcode → {name, district, province}; the Sa Kaeo list gives the province from the ampur code."""
    return {h: {"name": p.name or "", "district": p.district.name if p.district else "",
                "province": p.district.code[:2] if p.district else ""} for h, p in places.facilities().items()}


def facility_place(hcode: str) -> tuple[str, str, str]:
    """(region, province name, district) with "ไม่ทราบ" where unknown."""
    f = known_facilities().get(hcode)
    if not f:
        return UNKNOWN, UNKNOWN, UNKNOWN
    region, pname = provinces().get(f["province"], (UNKNOWN, UNKNOWN))
    return region, pname, f["district"] or UNKNOWN


def collect(conn: Connection, db_file: Path | None, tz: dt.tzinfo = BANGKOK) -> dict[str, Any]:
    """Every figure the page shows, as plain data (also served as JSON by ``?format=json``); times in ``tz``,
    each saying its zone (``last_received`` with its UTC offset, ``last_received_th`` with ``(UTC+7)``)."""
    enc = store.encounters
    per_fac: dict[str, int] = {str(h): int(n) for h, n in conn.execute(
        select(enc.c.hospital_code, func.count()).group_by(enc.c.hospital_code)).all()}
    facs = conn.execute(select(store.facilities)).mappings().all()
    agents = {r["hospital_code"]: r for r in conn.execute(select(store.agent_status)).mappings()}
    stored = 0
    for t in (store.encounters, store.persons, store.immunizations, store.allergies, store.chronic,
              store.documents):
        stored += int(conn.execute(select(func.coalesce(func.sum(func.length(t.c.data)), 0))).scalar_one())
    n_persons = int(conn.execute(select(func.count()).select_from(store.persons)).scalar_one())
    n_enc = sum(per_fac.values())
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
        by_province.setdefault(pname, []).append({
            "hospital_code": h, "name": known.get("name") or f["name"], "district": district,
            "encounters": n, "last_received": local_time(f["last_received_at"], tz).isoformat(timespec="seconds"),
            "last_received_th": thai_datetime(f["last_received_at"], tz),
            "agent_version": (a["agent_version"] if a and a["agent_version"] else f["agent"]) or "-",
        })
    for rows in by_province.values():
        rows.sort(key=lambda r: r["hospital_code"])
    return {
        "persons": n_persons, "encounters": n_enc, "facilities": len(facs), "stored_bytes": stored,
        "db_file_bytes": db_file.stat().st_size if db_file and db_file.is_file() else None,
        "by_region": regions, "by_province": dict(sorted(by_province.items(), key=lambda kv: (kv[0] == UNKNOWN, kv[0]))),
    }


def holdings(conn: Connection, since_day: str | None = None) -> dict[str, dict[str, int]]:
    """Per facility what the store holds as the national PHR Dashboard counts it: patients (distinct persons in
    any of its records), encounters, allergies, immunizations, chronic registrations, and ``his_3y``, the
    encounters its OrgEncounterSummary reported for days from ``since_day``. Every facility that sent anything."""
    out: dict[str, dict[str, int]] = {}

    def put(what: str, rows: Any) -> None:
        for h, n in rows:
            out.setdefault(str(h), {})[what] = int(n or 0)

    parts = [select(t.c.hospital_code.label("h"), t.c.cid.label("cid")) for t in (
        store.encounters, store.immunizations, store.allergies, store.chronic, store.documents)]
    people = parts[0].union(*parts[1:]).subquery()
    put("patients", conn.execute(select(people.c.h, func.count()).group_by(people.c.h)))
    for what, t in (("encounters", store.encounters), ("allergies", store.allergies),
                    ("immunizations", store.immunizations), ("chronic", store.chronic)):
        put(what, conn.execute(select(t.c.hospital_code, func.count()).group_by(t.c.hospital_code)))
    osum = store.org_summary
    q = select(osum.c.hospital_code, func.sum(osum.c.opd + osum.c.ipd))
    if since_day:
        q = q.where(osum.c.day >= since_day)
    put("his_3y", conn.execute(q.group_by(osum.c.hospital_code)))
    return out


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


@functools.cache
def _templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("phrsync.sandbox", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["num"] = lambda n: f"{n:,}"
    env.filters["size"] = _size
    return env


def render(data: dict[str, Any], now: float, tz: dt.tzinfo = BANGKOK) -> str:
    """The dashboard page for ``collect``'s figures, as of ``now`` (shown in ``tz`` with its zone)."""
    return _templates().get_template("dashboard.html").render(
        data=data, now_th=thai_datetime(now, tz), unknown=UNKNOWN, province_en=province_en())
