"""Where a facility is: its name, kind, district, province and health region, from the code tables
(``sakaeo_facilities``, ``sakaeo_districts``, ``health_regions``; a province's own copies in its codes
directory replace them). One reading for every page that places facilities: the monitoring web, the sandbox's
PHR-centre dashboard."""

from __future__ import annotations

from dataclasses import dataclass

from phrsync.terminology.tables import get_table


@dataclass(frozen=True)
class Province:
    code: str  # DOPA changwat code, 2 digits
    name: str
    name_en: str
    region: str  # health region (เขตสุขภาพ) number; "13" is Bangkok


@dataclass(frozen=True)
class District:
    code: str  # DOPA ampur code, 4 digits
    name: str
    name_en: str


@dataclass(frozen=True)
class Place:
    """A facility as the code tables know it; what they do not say is None."""

    hospcode: str
    name: str | None = None
    kind: str | None = None  # รพ.สต., รพช., ...
    district: District | None = None
    province: Province | None = None


def provinces() -> dict[str, Province]:
    """Every province by code (the 77 of ``health_regions``)."""
    return {r["province_code"]: Province(r["province_code"], r.get("province_name_th") or "",
                                         r.get("province_name_en") or "", r.get("region") or "")
            for r in get_table("health_regions").rows if r.get("province_code")}


def districts() -> dict[str, District]:
    """The districts the tables name, by ampur code."""
    return {r["ampur_code"]: District(r["ampur_code"], r.get("name_th") or "", r.get("name_en") or "")
            for r in get_table("sakaeo_districts").rows if r.get("ampur_code")}


def facilities() -> dict[str, Place]:
    """Every facility of the facility table by code, placed by its ampur code (whose first two digits are the
    province). A district missing from the district table keeps its code and the facility table's name."""
    provs, dists = provinces(), districts()
    out: dict[str, Place] = {}
    for r in get_table("sakaeo_facilities").rows:
        h = (r.get("hospcode") or "").strip()
        if not h:
            continue
        amp = (r.get("ampur_code") or "").strip()
        dist = dists.get(amp) or (District(amp, r.get("ampur_name_th") or "", "") if amp else None)
        out[h] = Place(h, r.get("name_th") or None, r.get("type") or None, dist, provs.get(amp[:2]) if amp else None)
    return out
