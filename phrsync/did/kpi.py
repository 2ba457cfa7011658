"""KPI 54 arithmetic: pure functions on counts (no store, no clock), so every figure can be checked by hand.

* 54.1 = A1 / B1 × 100: health personnel with a Digital ID over health personnel.
* 54.2 = A2 / B2 × 100: citizens with a Digital ID over citizens.

Per district and for the province; the province row adds the districts' numerators and denominators (never
averages their percentages). Percentages are rounded half up to two decimals, as the Sa Kaeo report prints them
(26,932 / 537,792 = 5.01 %; 2,935 / 3,346 = 87.72 %).

Targets by the Thai fiscal year (1 October to 30 September): "6 months" (by 31 March) and "12 months" (by
30 September). A quarter is judged against the target due at the end of its half: Q1 (Oct–Dec) and Q2
(Jan–Mar) against the 6-month target, Q3 (Apr–Jun) and Q4 (Jul–Sep) against the 12-month target. So a district
passes in Q1 only if it already meets what is due by March: the report shows early who is behind.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any


def pct(numerator: int, denominator: int) -> float | None:
    """``numerator / denominator × 100`` rounded half up to 2 decimals; None when nobody is counted (not 0 %)."""
    if denominator <= 0:
        return None
    q = Decimal(numerator) * 100 / Decimal(denominator)
    return float(q.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def fiscal_year(day: dt.date) -> int:
    """The Thai fiscal year (Christian era) ``day`` belongs to: it starts on 1 October (2026-10-01 → 2027)."""
    return day.year + 1 if day.month >= 10 else day.year


def fiscal_year_be(day: dt.date) -> int:
    """The same in the Buddhist era, as the reports write it (2026-10-01 → 2570)."""
    return fiscal_year(day) + 543


def fiscal_quarter(day: dt.date) -> int:
    """1 (Oct–Dec), 2 (Jan–Mar), 3 (Apr–Jun) or 4 (Jul–Sep)."""
    return ((day.month - 10) % 12) // 3 + 1


@dataclass(frozen=True)
class Targets:
    """The fiscal year's targets in percent ([did] settings)."""

    personnel_6m: float = 25.0
    citizens_6m: float = 10.0
    personnel_12m: float = 50.0
    citizens_12m: float = 25.0

    def for_quarter(self, quarter: int) -> tuple[str, float, float]:
        """(period, personnel target, citizens target) a quarter is judged against."""
        if quarter in (1, 2):
            return "6m", self.personnel_6m, self.citizens_6m
        return "12m", self.personnel_12m, self.citizens_12m

    @classmethod
    def from_settings(cls, s: Any) -> Targets:
        return cls(s.target_6m_personnel, s.target_6m_citizens, s.target_12m_personnel, s.target_12m_citizens)


@dataclass(frozen=True)
class Count:
    """People of one kind in one district: counted (B), with a Digital ID (A), answered so far."""

    district: str | None
    people: int
    with_did: int  # by either numerator source
    checked: int = 0
    with_did_check: int = 0  # check_ekyc says so
    with_did_ekyc: int = 0  # the IdP-admin export says so


@dataclass
class Row:
    """One line of the report table (a district, or the province total)."""

    code: str | None  # DOPA district code; None: the province total (or people of no known district)
    name: str
    name_en: str
    citizens: int
    citizens_did: int
    citizens_pct: float | None
    citizens_checked: int
    personnel: int
    personnel_did: int
    personnel_pct: float | None
    personnel_checked: int
    citizens_pass: bool | None = None  # None: nobody counted
    personnel_pass: bool | None = None
    total: bool = False
    # the numerator by source (a person counts once in citizens_did even when both sources say so)
    citizens_did_check: int = 0
    citizens_did_ekyc: int = 0
    personnel_did_check: int = 0
    personnel_did_ekyc: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Report:
    as_of: dt.date
    fiscal_year_be: int
    quarter: int
    period: str  # "6m" | "12m"
    target_personnel: float
    target_citizens: float
    rows: list[Row] = field(default_factory=list)  # districts in code order, then the province total
    citizens_source: tuple[str, str] = ("", "")  # (th, en) label of the denominator
    personnel_source: tuple[str, str] = ("", "")
    numerator_source: tuple[str, str] = ("", "")  # (th, en): which sources say who has a Digital ID
    notes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def total(self) -> Row:
        return self.rows[-1]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["as_of"] = self.as_of.isoformat()
        return d


def _passes(value: float | None, target: float) -> bool | None:
    return None if value is None else value >= target


def compute(citizens: list[Count], personnel: list[Count], district_names: dict[str, tuple[str, str]],
            targets: Targets, today: dt.date) -> Report:
    """The district table and the province total for ``today``'s quarter.

    Every district of ``district_names`` has a row (with zeros when nobody of it is counted, so a district is
    never silently missing); people of no known district get a row of their own and count in the total."""
    q = fiscal_quarter(today)
    period, t_pers, t_cit = targets.for_quarter(q)
    # per district: people, with DID, checked, by check_ekyc, by the export — citizens at 0, personnel at 5
    acc: dict[str | None, list[int]] = {code: [0] * 10 for code in district_names}
    for i, counts in ((0, citizens), (5, personnel)):
        for c in counts:
            a = acc.setdefault(c.district if c.district in district_names else None, [0] * 10)
            a[i] += c.people
            a[i + 1] += c.with_did
            a[i + 2] += c.checked
            a[i + 3] += c.with_did_check
            a[i + 4] += c.with_did_ekyc

    def row(code: str | None, name: str, name_en: str, a: list[int], total: bool = False) -> Row:
        cp, pp = pct(a[1], a[0]), pct(a[6], a[5])
        return Row(code, name, name_en, a[0], a[1], cp, a[2], a[5], a[6], pp, a[7], _passes(cp, t_cit),
                   _passes(pp, t_pers), total, a[3], a[4], a[8], a[9])

    rows = [row(code, *district_names[code], acc[code]) for code in sorted(district_names)]
    if None in acc and any(acc[None]):
        rows.append(row(None, "ไม่ทราบอำเภอ", "district not known", acc[None]))
    sums = [sum(a[i] for a in acc.values()) for i in range(10)]
    rows.append(row(None, "รวมทั้งจังหวัด", "province total", sums, total=True))
    return Report(today, fiscal_year_be(today), q, period, t_pers, t_cit, rows)
