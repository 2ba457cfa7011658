"""Synthetic people and households of one facility's catchment.

Every household is generated from its own seeded random stream (seed, facility, household number),
so any facility can rebuild any household without holding the province in memory: a district
hospital rebuilds the households of its district's primary-care units to register their members
who come to it, with the same CID, birth date and illnesses, under its own PID.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from bisect import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Generic, TypeVar

from phrsync.pdpa import cid_check_digit
from phrsync.synth import names
from phrsync.synth.catalog import INSTYPE_MIX
from phrsync.synth.clock import age_years
from phrsync.synth.province import Facility

HH_CAP = 8900  # households per facility; 8900-8999 are reserved for staff CIDs
BORDER_AMPURS = {"2702", "2703", "2706"}  # Khlong Hat, Ta Phraya, Aranyaprathet: Cambodian border


T = TypeVar("T")


class Weighted(Generic[T]):
    """A weighted choice that is cheap to repeat (``random.choices`` rebuilds its table every call)."""

    __slots__ = ("items", "cum", "total")

    def __init__(self, items: Sequence[T], weights: Sequence[float]):
        self.items = list(items)
        self.cum = list(accumulate(weights))
        self.total = self.cum[-1]

    def pick(self, rng: random.Random) -> T:
        return self.items[bisect(self.cum, rng.random() * self.total)]


def derive(*parts: object) -> int:
    """A 64-bit seed from any parts (stable across runs, unlike ``hash()``)."""
    h = hashlib.blake2b(":".join(str(p) for p in parts).encode(), digest_size=8)
    return int.from_bytes(h.digest(), "big")


def make_cid(first: str, prov4: str, fac_ord: int, hh_no: int, member: int) -> str:
    """A valid 13-digit CID, unique in the province: the 7-digit body is a bijective scramble of
    (facility, household, member)."""
    x = (fac_ord * 9000 + hh_no) * 8 + member
    body = (x * 7919 + 1_234_567) % 10_000_000
    first12 = f"{first}{prov4}{body:07d}"
    return first12 + cid_check_digit(first12)


@dataclass(slots=True)
class Person:
    cid: str
    sex: str
    birth: dt.date
    name: str
    lname: str
    mstatus: str
    nation: str
    religion: str
    education: str
    fstatus: str
    vstatus: str
    home: str  # hospcode of the facility whose catchment the person lives in
    hh_no: int
    village: str
    houseno: str
    house_id: str
    tambon: str  # 6-digit tambon code
    instype: str
    abo: str
    rh: str
    mobile: str
    movein: dt.date
    registered: dt.datetime  # when the registry row was last written before the period
    father: str = ""
    mother: str = ""
    couple: str = ""
    labor: str = ""
    dm_since: dt.date | None = None
    ht_since: dt.date | None = None
    allergy: str = ""  # key of catalog.DRUGS
    allergy_date: dt.date | None = None
    death: dt.date | None = None
    death_cause: tuple[str, str] = ("", "")
    edc: dt.date | None = None  # expected delivery of a pregnancy touching the period
    gravida: int = 0
    smoke: str = "1"
    alcohol: str = "1"
    weight: float = 0.0
    height: int = 0
    cur_age: int = 0  # age at the start of the month being generated (cache)
    key: int = 0  # per-person random bits for stable traits (regimen, how well controlled, ...)
    # facility-local, filled when the person is registered at a facility
    pid: str = ""
    hn: str = ""
    typearea: str = "1"
    discharge: str = "9"
    ddischarge: dt.date | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def age(self, on: dt.date) -> int:
        return age_years(self.birth, on)

    def prename(self, on: dt.date) -> str:
        """DOPA prefix code: ด.ช. 001 / ด.ญ. 002 under 15, then นาย 003, นางสาว 004, นาง 005."""
        if self.age(on) < 15:
            return "001" if self.sex == "1" else "002"
        if self.sex == "1":
            return "003"
        return "004" if self.mstatus == "1" else "005"

    def alive(self, on: dt.date) -> bool:
        return self.birth <= on and (self.death is None or on < self.death)


_HEAD_AGE_TABLE = [(a, w) for a, w in (
    (22, 1), (27, 2), (32, 4), (37, 6), (42, 8), (47, 10), (52, 12), (57, 13), (62, 13), (67, 12),
    (72, 9), (77, 6), (82, 4), (87, 2), (92, 0.7),
)]
_HEAD_AGES: Weighted[int] = Weighted([a for a, _ in _HEAD_AGE_TABLE], [w for _, w in _HEAD_AGE_TABLE])
_SIZES: Weighted[int] = Weighted((1, 2, 3, 4, 5, 6), (15, 27, 24, 18, 10, 6))
_EDU_OLD: Weighted[str] = Weighted(("00", "02", "03"), (8, 80, 12))
_EDU_MID: Weighted[str] = Weighted(("02", "03", "04", "05"), (45, 38, 9, 8))
_EDU_NEW: Weighted[str] = Weighted(("02", "03", "04", "05"), (15, 50, 15, 20))
_INSTYPES: Weighted[str] = Weighted([i for i, _ in INSTYPE_MIX], [w for _, w in INSTYPE_MIX])
_ABO: Weighted[str] = Weighted("1234", (22, 33, 8, 37))
_KHMER_SMOKE: Weighted[str] = Weighted("124", (60, 15, 25))


def _age_draw(rng: random.Random, center: int) -> float:
    return center - 2.5 + rng.random() * 5


def _mortality(age: int) -> float:
    """Yearly chance of dying, rural Thailand (rough)."""
    if age < 1:
        return 0.006
    if age < 40:
        return 0.0009
    if age < 60:
        return 0.0035
    if age < 70:
        return 0.011
    if age < 80:
        return 0.028
    return 0.08


def _chronic_chance(age: int) -> tuple[float, float]:
    """(DM, HT) prevalence by age."""
    if age < 35:
        return 0.005, 0.02
    if age < 45:
        return 0.04, 0.09
    if age < 55:
        return 0.08, 0.18
    if age < 65:
        return 0.12, 0.27
    return 0.13, 0.33


_DEATH_CAUSES = (("I639", "I639"), ("J189", "J189"), ("C229", "C229"), ("I219", "I219"), ("N185", "N189"),
                 ("R54", "R54"), ("A419", "E119"), ("C349", "C349"))


@dataclass
class Catchment:
    """What people generation needs to know about one facility and the period."""

    fac: Facility
    households: int
    start: dt.date  # first day of the period
    end: dt.date  # last day of the period
    seed: int
    district_hospital: str
    villages: int = 10


def make_household(c: Catchment, hh_no: int) -> list[Person]:
    """Members of household ``hh_no`` of the catchment, head first."""
    rng = random.Random(derive(c.seed, "hh", c.fac.hospcode, hh_no))
    ref = c.start
    fac = c.fac
    khmer = fac.ampur in BORDER_AMPURS and rng.random() < 0.04
    village = str(1 + rng.randrange(c.villages))
    houseno = str(1 + rng.randrange(180)) + (f"/{1 + rng.randrange(9)}" if rng.random() < 0.15 else "")
    house_id = f"{fac.tambon.code[:4]}{rng.randrange(10**6):06d}"
    house_id += str(sum(int(ch) for ch in house_id) % 10)
    surname = rng.choice(names.KHMER_SURNAMES if khmer else names.SURNAMES)
    # composition: head, maybe spouse, then children or grandchildren (skipped generations are
    # common where working-age adults have moved to Bangkok or the Eastern Seaboard)
    head_age = _age_draw(rng, _HEAD_AGES.pick(rng))
    size = _SIZES.pick(rng)
    ages: list[tuple[float, str, str]] = []  # (age, role, sex)
    head_sex = "1" if rng.random() < (0.58 if head_age < 65 else 0.42) else "2"
    ages.append((head_age, "head", head_sex))
    if size >= 2 and rng.random() < (0.8 if head_age < 70 else 0.5):
        ages.append((max(18.0, head_age + rng.uniform(-7, 4)), "spouse", "2" if head_sex == "1" else "1"))
    while len(ages) < size:
        if head_age < 48:
            a = head_age - rng.uniform(20, 36)
            role = "child"
        elif head_age < 62:
            a = head_age - rng.uniform(22, 34) if rng.random() < 0.6 else head_age - rng.uniform(42, 55)
            role = "child" if head_age - a < 40 else "grandchild"
        else:
            a = head_age - rng.uniform(44, 62) if rng.random() < 0.65 else head_age - rng.uniform(25, 40)
            role = "grandchild" if head_age - a > 40 else "child"
        if a < 0:
            a = rng.uniform(0, 4)
        ages.append((a, role, "1" if rng.random() < 0.51 else "2"))

    people: list[Person] = []
    prov4 = fac.ampur
    for member, (age, role, sex) in enumerate(ages):
        birth = ref - dt.timedelta(days=int(age * 365.25))
        people.append(_person(rng, c, hh_no, member, birth, role, sex, surname, khmer, prov4,
                              village, houseno, house_id))
    # family links
    head = people[0]
    spouse = next((p for p in people if p.extra.get("role") == "spouse"), None)
    if spouse:
        head.couple, spouse.couple = spouse.cid, head.cid
        head.mstatus = spouse.mstatus = "2"
        if spouse.sex == "2" and spouse.age(ref) >= 15:
            spouse.lname = head.lname
    mother = head if head.sex == "2" else spouse
    father = head if head.sex == "1" else spouse
    for p in people[1:]:
        if p.extra.get("role") == "child":
            p.mother = mother.cid if mother else ""
            p.father = father.cid if father and rng.random() < 0.85 else ""
    # a pregnancy touching the period: the young wife delivers before or after its end
    wife = mother if mother and mother.sex == "2" else None
    if wife and 18 <= wife.age(ref) <= 40 and len(people) < 8:
        window = (c.end - ref).days + 270
        if rng.random() < 0.16 * window / 365:
            edc = ref + dt.timedelta(days=rng.randrange(window))
            wife.edc = edc
            wife.gravida = 1 + sum(1 for p in people if p.extra.get("role") == "child")
            if edc <= c.end and len(people) < 8:
                baby = _person(rng, c, hh_no, len(people), edc, "child", "1" if rng.random() < 0.51 else "2",
                               head.lname, khmer, prov4, village, houseno, house_id)
                baby.mother = wife.cid
                baby.father = wife.couple
                baby.movein = edc
                people.append(baby)
    return people


def _person(rng: random.Random, c: Catchment, hh_no: int, member: int, birth: dt.date, role: str, sex: str,
            surname: str, khmer: bool, prov4: str, village: str, houseno: str, house_id: str) -> Person:
    ref = c.start
    age = age_years(birth, ref) if birth <= ref else 0
    if khmer:
        first = "6"
        prov = prov4
    else:
        first = "1" if birth.year >= 1984 else "3"
        if first == "1" and rng.random() < 0.02:
            first = "2"  # late birth registration
        prov = prov4 if rng.random() < 0.86 else rng.choice(("2501", "2504", "3001", "3016", "2401", "1001"))
    cid = make_cid(first, prov, c.fac.ordinal, hh_no, member)
    pool = ((names.KHMER_MALE if sex == "1" else names.KHMER_FEMALE) if khmer
            else names.given_names(sex, birth.year))
    if age < 18:
        mstatus = "1"
    elif age < 26:
        mstatus = "1" if rng.random() < 0.6 else "2"
    else:
        r = rng.random()
        widow = 0.05 + (0.25 if age > 65 and sex == "2" else 0.08 if age > 65 else 0.0)
        mstatus = "3" if r < widow else "4" if r < widow + 0.05 else "1" if r < widow + 0.22 else "2"
    if age < 7:
        edu = "00" if age < 3 else "01"
    elif age < 13:
        edu = "02"
    elif birth.year < 1965:
        edu = _EDU_OLD.pick(rng)
    elif birth.year < 1985:
        edu = _EDU_MID.pick(rng)
    else:
        edu = _EDU_NEW.pick(rng) if age >= 18 else "03"
    if khmer:
        instype = rng.choice(("8401", "8402", "8402"))
    elif age < 18:
        instype = "0100"
    else:
        instype = _INSTYPES.pick(rng)
        if age >= 60 and instype in ("4200", "1100", "1300"):
            instype = "1200" if instype == "1100" else "0100"
    mobile = "" if age < 12 or rng.random() < 0.12 else rng.choice(("08", "09", "06")) + f"{rng.randrange(10**8):08d}"
    reg_date = max(birth, ref - dt.timedelta(days=rng.randrange(30, 3000)))
    registered = dt.datetime.combine(reg_date, dt.time(8, 30)) + dt.timedelta(seconds=rng.randrange(8 * 3600))
    p = Person(
        cid=cid, sex=sex, birth=birth, name=rng.choice(pool), lname=surname, mstatus="1",
        nation="057" if khmer else "099", religion="01" if rng.random() < 0.985 else rng.choice(("02", "03")),
        education=edu, fstatus="1" if role == "head" else "2",
        vstatus="2" if 25 <= age < 65 and rng.random() < 0.04 else "1" if role == "head" and rng.random() < 0.01 else "5",
        home=c.fac.hospcode, hh_no=hh_no, village=village, houseno=houseno, house_id=house_id,
        tambon=c.fac.tambon.code, instype=instype, abo=_ABO.pick(rng),
        rh="1" if rng.random() < 0.997 else "2", mobile=mobile,
        movein=birth if rng.random() < 0.7 else max(birth, ref - dt.timedelta(days=rng.randrange(200, 9000))),
        registered=registered,
    )
    p.mstatus = mstatus
    p.key = rng.getrandbits(62)
    if p.registered.date() < p.movein:  # the record was written when the person moved in, not before
        p.registered = dt.datetime.combine(min(p.movein + dt.timedelta(days=rng.randrange(1, 30)), ref),
                                           dt.time(9)) + dt.timedelta(minutes=rng.randrange(420))
    p.labor = "11" if khmer else ""
    p.extra["role"] = role
    if khmer:
        p.smoke = _KHMER_SMOKE.pick(rng)
    elif age >= 15:
        smoke_p = 0.38 if sex == "1" else 0.02
        p.smoke = "4" if rng.random() < smoke_p else "1" if rng.random() < 0.85 else "2"
        drink_p = 0.5 if sex == "1" else 0.15
        p.alcohol = rng.choice("234") if rng.random() < drink_p else "1"
    # body size
    if age >= 18:
        p.height = int(rng.gauss(165 if sex == "1" else 154, 6))
        bmi = rng.gauss(23.5 if sex == "1" else 24.5, 3.8)
        p.weight = round(max(36.0, bmi * (p.height / 100) ** 2), 1)
    # chronic disease: DM / HT, first diagnosed in the past or (rarely) during the period
    dm_p, ht_p = _chronic_chance(age)
    if rng.random() < dm_p:
        p.dm_since = _diag_date(rng, birth, ref, c.end)
        p.weight = round(p.weight * 1.08, 1)
    if rng.random() < ht_p or (p.dm_since and rng.random() < 0.4):
        p.ht_since = _diag_date(rng, birth, ref, c.end)
    if rng.random() < 0.02:
        p.allergy = rng.choice(("amoxicillin", "dicloxacillin", "ibuprofen", "norfloxacin", "aspirin",
                                "naproxen", "roxithromycin"))
        if rng.random() < 0.1 and birth < ref:  # found during the period: a new register row that month
            p.allergy_date = ref + dt.timedelta(days=rng.randrange(max((c.end - ref).days, 1)))
        else:
            p.allergy_date = max(birth, ref - dt.timedelta(days=rng.randrange(60, 4000)))
    # death during the period
    years = max((c.end - ref).days, 1) / 365.25
    if birth <= ref and rng.random() < _mortality(age) * years:
        p.death = ref + dt.timedelta(days=rng.randrange(max((c.end - ref).days, 1)))
        p.death_cause = rng.choice(_DEATH_CAUSES)
    return p


def _diag_date(rng: random.Random, birth: dt.date, ref: dt.date, end: dt.date) -> dt.date:
    if rng.random() < 0.04:  # a new case during the period
        return ref + dt.timedelta(days=rng.randrange(max((end - ref).days, 1)))
    earliest = max(birth + dt.timedelta(days=30 * 365), ref - dt.timedelta(days=20 * 365))
    span = (ref - earliest).days
    return earliest + dt.timedelta(days=rng.randrange(span)) if span > 0 else ref - dt.timedelta(days=30)


def provider_cid(fac: Facility, index: int, born: int) -> str:
    """CIDs for staff from the household range reserved for them (8900-8999)."""
    return make_cid("1" if born >= 1984 else "3", fac.ampur, fac.ordinal, HH_CAP + index // 8, index % 8)
