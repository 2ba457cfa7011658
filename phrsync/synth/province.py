"""The province the generator fills: its facilities, districts and tambons, read from the reference
CSVs shipped in ``phrsync/terminology/data`` (stdlib ``csv``, no dependency on the terminology API).

Only units that run a HIS and send 43 files get data: hospitals (รพท./รพช.) and primary-care units
(รพ.สต., ศสม., local-government health centres). Offices (สสจ./สสอ.) and the non-MOPH hospitals do not.
"""

from __future__ import annotations

import csv
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "terminology" / "data"

HOSPITAL_TYPES = {"รพท.": 12.0, "รพช.": 5.0}
PCU_TYPES = {"รพ.สต.": 1.0, "ศสม.": 1.6, "ศบส.อปท.": 0.8}
PROVINCES = {"27": "สระแก้ว"}


def read_csv(name: str) -> list[dict[str, str]]:
    """One reference table as a list of dicts (header row = keys)."""
    with (DATA_DIR / name).open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@dataclass(frozen=True)
class Tambon:
    code: str  # 6 digits, e.g. 270102
    ampur: str  # 4 digits
    name_th: str

    @property
    def parts(self) -> tuple[str, str, str]:
        """(CHANGWAT, AMPUR, TAMBON) two-digit parts as ADDRESS stores them."""
        return self.code[0:2], self.code[2:4], self.code[4:6]


@dataclass(frozen=True)
class Facility:
    hospcode: str
    name_th: str
    type: str  # รพท., รพช., รพ.สต. ...
    ampur: str  # 4 digits
    tambon: Tambon  # own tambon, or one of the same ampur when the CSV has none
    ordinal: int  # position among the generated facilities (stable: CSV order)
    weight: float  # relative number of visits

    @property
    def is_hospital(self) -> bool:
        return self.type in HOSPITAL_TYPES

    @property
    def writes_header(self) -> bool:
        """A deterministic third of the primary-care units run an old exporter: no header line and the
        2016 layout without the appended fields, so both reader paths are exercised."""
        return self.is_hospital or zlib.crc32(self.hospcode.encode()) % 3 != 0


@dataclass(frozen=True)
class Province:
    code: str
    name_th: str
    facilities: tuple[Facility, ...]
    tambons: tuple[Tambon, ...]
    districts: dict[str, str]  # ampur code -> Thai name

    def hospital_of(self, ampur: str) -> Facility:
        """The hospital that serves a district (the รพท. in districts that have one)."""
        hs = [f for f in self.facilities if f.is_hospital and f.ampur == ampur]
        return hs[0] if hs else next(f for f in self.facilities if f.is_hospital)

    def pcus_of(self, ampur: str) -> list[Facility]:
        return [f for f in self.facilities if not f.is_hospital and f.ampur == ampur]

    def by_code(self, hospcode: str) -> Facility | None:
        return next((f for f in self.facilities if f.hospcode == hospcode), None)


@cache
def load_province(code: str = "27") -> Province:
    """The province model; only Sa Kaeo (27) has reference data."""
    if code not in PROVINCES:
        raise ValueError(f"มีข้อมูลอ้างอิงเฉพาะจังหวัดสระแก้ว (27) / only province 27 (Sa Kaeo) has reference data: {code}")
    tambons = tuple(
        Tambon(r["tambon_code"], r["ampur_code"], r["name_th"])
        for r in read_csv("sakaeo_tambons.csv")
        if r["tambon_code"].startswith(code)
    )
    by_code = {t.code: t for t in tambons}
    districts = {r["ampur_code"]: r["name_th"] for r in read_csv("sakaeo_districts.csv")}
    facilities: list[Facility] = []
    for r in read_csv("sakaeo_facilities.csv"):
        typ = r["type"]
        weight = HOSPITAL_TYPES.get(typ) or PCU_TYPES.get(typ)
        if not weight:
            continue
        ampur = r["ampur_code"]
        tambon = by_code.get(r["tambon_code"])
        if tambon is None:
            own = [t for t in tambons if t.ampur == ampur]
            # hospitals sit in the district's first (town) tambon; others get a stable pick
            tambon = own[0] if typ in HOSPITAL_TYPES else own[zlib.crc32(r["hospcode"].encode()) % len(own)]
        facilities.append(
            Facility(r["hospcode"], r["name_th"], typ, ampur, tambon, len(facilities), weight)
        )
    return Province(code, PROVINCES[code], tuple(facilities), tambons, districts)
