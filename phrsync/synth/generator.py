"""The synthetic province as a stream of exports: one :class:`Batch` per facility per month.

Visits are shared out before anything is generated (facility by size, month by season) so the
total is exactly ``encounters``; then facilities are simulated one after another, which keeps
memory bounded by the largest facility, not by N.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from phrsync.f43.schema import FILES
from phrsync.synth.clock import SEASON, TODAY, month_end, months, parse_month
from phrsync.synth.dirty import inject
from phrsync.synth.people import HH_CAP, derive
from phrsync.synth.province import Facility, Province, load_province
from phrsync.synth.visits import FacilitySim

MONTHLY_PER_MONTH = 50_000  # visits per month the default period length aims at (for the province)


@dataclass
class SynthOptions:
    province: str = "27"
    encounters: int = 10_000
    seed: int = 1
    dirty: float = 0.0
    start: str = "2025-10"
    months: int | None = None  # default: enough months for ``encounters`` (1..12)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Batch:
    """One facility's export for one month. ``files`` rows are full layouts in 43-file text form."""

    hospcode: str
    month: str  # YYYYMM
    files: dict[str, list[list[str]]]
    defects: list[dict[str, Any]] = field(default_factory=list)
    header: bool = True  # False: the exporter writes no header and the 2016 base layout


@dataclass
class Plan:
    province: Province
    months: list[dt.date]
    quotas: dict[str, list[int]]  # hospcode -> visits per month
    households: dict[str, int]


def _shares(total: int, weights: list[float]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` exactly (largest remainder, ties by position)."""
    s = sum(weights)
    raw = [total * w / s for w in weights]
    base = [int(x) for x in raw]
    rest = total - sum(base)
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - base[i]), i))
    for i in order[:rest]:
        base[i] += 1
    return base


def default_months(encounters: int) -> int:
    return max(1, min(12, math.ceil(encounters / MONTHLY_PER_MONTH)))


def plan(opts: SynthOptions) -> Plan:
    if opts.encounters < 0:
        raise ValueError("จำนวนครั้งบริการต้องไม่ติดลบ / encounters must not be negative")
    if not 0.0 <= opts.dirty <= 1.0:
        raise ValueError("--dirty ต้องอยู่ระหว่าง 0 ถึง 1 / --dirty must be between 0 and 1")
    prov = load_province(opts.province)
    count = opts.months or default_months(opts.encounters)
    firsts = months(parse_month(opts.start), count)
    if month_end(firsts[-1]) >= TODAY.replace(day=1):
        raise ValueError(
            f"ช่วงข้อมูลต้องจบก่อนเดือนปัจจุบัน ({TODAY:%Y-%m}) / the period must end before the current month: "
            f"{firsts[0]:%Y-%m} + {count} months")
    facs = list(prov.facilities)
    per_fac = _shares(opts.encounters, [f.weight for f in facs])
    season = [SEASON[m.month] for m in firsts]
    quotas = {f.hospcode: _shares(n, season) for f, n in zip(facs, per_fac, strict=True)}
    households: dict[str, int] = {}
    for f, n in zip(facs, per_fac, strict=True):
        monthly = n / count
        persons = 2.0 * monthly if f.is_hospital else 7.0 * monthly
        households[f.hospcode] = int(min(HH_CAP, max(12, persons / 3.0)))
    return Plan(prov, firsts, quotas, households)


def _old_layout(files: dict[str, list[list[str]]]) -> None:
    """An old exporter has no appended fields: keep the full layout but leave them empty, so the
    batch says exactly what the written (header-less, 2016-layout) file says."""
    for name, rows in files.items():
        spec = FILES[name]
        base, full = len(spec.base_fields), len(spec.fields)
        if base < full:
            blank = [""] * (full - base)
            for r in rows:
                r[base:] = blank


def facility_batches(opts: SynthOptions, pl: Plan, fac: Facility) -> Iterator[Batch]:
    sim = FacilitySim(pl.province, fac, pl.months, pl.quotas[fac.hospcode], pl.households, opts.seed)
    for month, files in sim.run():
        if not fac.writes_header:
            _old_layout(files)
        defects: list[dict[str, Any]] = []
        if opts.dirty > 0:
            rng = random.Random(derive(opts.seed, "dirty", fac.hospcode, month))
            defects = inject(files, fac.hospcode, month, fac.writes_header, opts.dirty, rng)
        yield Batch(fac.hospcode, month, files, defects, header=fac.writes_header)


def generate(opts: SynthOptions) -> Iterator[Batch]:
    """Stream the province's exports, facility by facility, month by month (deterministic)."""
    pl = plan(opts)
    for fac in pl.province.facilities:
        yield from facility_batches(opts, pl, fac)
