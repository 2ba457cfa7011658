"""One facility through the months of the period: its registry (people, staff) and its services.

:class:`FacilitySim` holds the facility's population for the whole period (bounded by the facility's
size, not by N) and produces, month by month, the rows of every 43-file: the registry files in full
in the first month and only the changed rows later; visits with their diagnoses, drugs, procedures,
labs, follow-ups, vaccinations, antenatal care, appointments, admissions and deliveries.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from phrsync.f43.schema import FILES
from phrsync.synth import catalog as cat
from phrsync.synth import names
from phrsync.synth.clock import HOLIDAYS, age_years, d8, day_weights, dt14, hms, month_end
from phrsync.synth.people import HH_CAP, Catchment, Person, Weighted, derive, make_household, provider_cid
from phrsync.synth.province import Facility, Province

FIELD_NAMES: dict[str, tuple[str, ...]] = {name: spec.field_names for name, spec in FILES.items()}
# an all-empty row per file: merging a row's values into it keeps the layout order (fast, in C)
_TEMPLATES: dict[str, dict[str, str]] = {name: dict.fromkeys(names, "") for name, names in FIELD_NAMES.items()}
# how labs report: glucose and lipids as whole mg/dL, HbA1c and haematocrit to one decimal
_LAB_DECIMALS = {cat.LAB_FBS: 0, cat.LAB_DTX: 0, cat.LAB_TG: 0, cat.LAB_CHOL: 0, cat.LAB_HDL: 0, cat.LAB_LDL: 0,
                 cat.LAB_HBA1C: 1, "0621201": 1}
_ACUTE: Weighted[cat.Acute] = Weighted(cat.ACUTE, [x.weight for x in cat.ACUTE])

_PCU_HOURS = ((8, 26), (9, 26), (10, 17), (11, 9), (12, 2), (13, 9), (14, 7), (15, 4))
_HOSP_HOURS = ((0, 1), (1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 2), (7, 9), (8, 16), (9, 16), (10, 12),
               (11, 8), (12, 3), (13, 8), (14, 6), (15, 5), (16, 4), (17, 4), (18, 4), (19, 3), (20, 3),
               (21, 2), (22, 2), (23, 1))


@dataclass
class Staff:
    code: str
    cid: str
    prename: str
    name: str
    lname: str
    sex: str
    birth: dt.date
    ptype: str  # PROVIDERTYPE
    council: str
    registerno: str
    start: dt.date
    registered: dt.datetime
    outdate: dt.date | None = None
    moveto: str = ""


@dataclass
class Visit:
    person: Person
    kind: str  # acute, chronic, epi, flu, anc, delivery
    date: dt.date
    seconds: int = 0  # arrival time, seconds after midnight
    info: dict[str, object] = field(default_factory=dict)


def _f2(x: float) -> str:
    return f"{x:.2f}"


class FacilitySim:
    """Everything one facility exports during the period."""

    def __init__(self, province: Province, fac: Facility, month_firsts: list[dt.date], quotas: list[int],
                 households: dict[str, int], seed: int):
        self.p = province
        self.fac = fac
        self.months = month_firsts
        self.quotas = quotas
        self.seed = seed
        self.start = month_firsts[0]
        self.end = month_end(month_firsts[-1])
        self.hospital = province.hospital_of(fac.ampur).hospcode
        self.households = households
        rng = random.Random(derive(seed, "fac", fac.hospcode))
        self.people: list[Person] = []
        self._build_population(rng)
        self.staff = self._build_staff(rng)
        self.doctors = [s for s in self.staff if s.ptype in ("01", "02")] or self.staff
        self.nurses = [s for s in self.staff if s.ptype not in ("01", "02", "11")] or self.staff
        self.seq_no = 10_000 + rng.randrange(80_000)
        self.an_no = rng.randrange(1000, 3000)
        self.screened: set[str] = set()

    # ------------------------------------------------------------------ population

    def catchment(self, fac: Facility) -> Catchment:
        return Catchment(fac, self.households[fac.hospcode], self.start, self.end, self.seed,
                         self.p.hospital_of(fac.ampur).hospcode, villages=6 + fac.ordinal % 10)

    def _build_population(self, rng: random.Random) -> None:
        own = self.catchment(self.fac)
        people: list[Person] = []
        for hh in range(own.households):
            for person in make_household(own, hh):
                person.typearea = "1" if rng.random() < 0.93 else "3"
                people.append(person)
        if self.fac.is_hospital:
            # people of the district's primary-care units who come to the hospital: the hospital
            # registers them under its own PID (same CID), as real HIS do
            pcus = [f for f in self.p.pcus_of(self.fac.ampur) if f.hospcode in self.households]
            wanted = max(30, int(own.households * 3.0 * 0.6))
            seen: set[tuple[str, int]] = set()
            guard = 0
            while pcus and wanted > 0 and guard < wanted * 4:
                guard += 1
                pcu = rng.choice(pcus)
                hh = rng.randrange(self.households[pcu.hospcode])
                if (pcu.hospcode, hh) in seen:
                    continue
                seen.add((pcu.hospcode, hh))
                members = make_household(self.catchment(pcu), hh)
                for person in rng.sample(members, k=min(len(members), 1 + (rng.random() < 0.3))):
                    person.typearea = "4"
                    person.registered = person.registered + dt.timedelta(days=rng.randrange(1, 400))
                    if person.registered.date() > self.start:
                        person.registered = dt.datetime.combine(self.start - dt.timedelta(days=3), dt.time(9))
                    person.registered = max(person.registered,
                                            dt.datetime.combine(person.birth, dt.time(10)))
                    people.append(person)
                    wanted -= 1
        # PIDs in registration order: people present at the start first, newborns as they arrive
        people.sort(key=lambda x: (x.birth > self.start, x.birth if x.birth > self.start else self.start))
        for i, person in enumerate(people, start=1):
            if self.fac.is_hospital:
                person.pid = f"{i:06d}"
                person.hn = f"{i:07d}"
            else:
                person.pid = str(i)
                person.hn = f"{i:06d}"
        self.people = people

    def _build_staff(self, rng: random.Random) -> list[Staff]:
        if self.fac.is_hospital:
            big = self.fac.type == "รพท."
            plan = [("01", "01", 12 if big else 5), ("02", "04", 3 if big else 1), ("03", "02", 18 if big else 8),
                    ("11", "03", 4 if big else 2), ("13", "06", 2 if big else 1)]
        else:
            plan = [("03", "02", 2), ("04", "", 1), ("05", "", 1), ("06", "", 1 if rng.random() < 0.5 else 0),
                    ("08", "", 1 if rng.random() < 0.4 else 0)]
        staff: list[Staff] = []
        for ptype, council, count in plan:
            for _ in range(count):
                idx = len(staff)
                sex = "2" if rng.random() < (0.45 if ptype in ("01", "02") else 0.8) else "1"
                born = 1966 + rng.randrange(34)
                birth = dt.date(born, 1 + rng.randrange(12), 1 + rng.randrange(28))
                if ptype == "01":
                    prename = "134" if sex == "1" else "135"
                elif ptype == "02":
                    prename = "136" if sex == "1" else "137"
                else:
                    prename = "003" if sex == "1" else rng.choice(("004", "005"))
                regno = {"01": f"ว.{rng.randrange(10_000, 60_000)}", "02": f"ท.{rng.randrange(5_000, 30_000)}",
                         "03": f"451{rng.randrange(10**7):07d}", "11": f"ภ.{rng.randrange(10_000, 40_000)}"}.get(
                    ptype, "")
                start = dt.date(max(born + 23, 2000) + rng.randrange(10), 1 + rng.randrange(12), 1)
                start = min(start, self.start - dt.timedelta(days=60))
                staff.append(Staff(
                    code=f"{self.fac.hospcode}{idx + 1:05d}",
                    cid=provider_cid(self.fac, idx, born),
                    prename=prename,
                    name=rng.choice(names.given_names(sex, born)),
                    lname=rng.choice(names.SURNAMES),
                    sex=sex, birth=birth, ptype=ptype, council=council, registerno=regno, start=start,
                    registered=dt.datetime.combine(start, dt.time(9, 0)) + dt.timedelta(minutes=rng.randrange(480)),
                ))
        assert len(staff) < (9000 - HH_CAP) * 8
        return staff

    # ------------------------------------------------------------------ months

    def run(self) -> Iterable[tuple[str, dict[str, list[list[str]]]]]:
        for i, first in enumerate(self.months):
            rng = random.Random(derive(self.seed, "month", self.fac.hospcode, d8(first)))
            out: dict[str, list[list[str]]] = defaultdict(list)
            self._registry(out, rng, i, first)
            self._services(out, rng, self.quotas[i], first)
            yield f"{first.year:04d}{first.month:02d}", dict(out)

    def _add(self, out: dict[str, list[list[str]]], name: str, values: dict[str, str]) -> None:
        row = {**_TEMPLATES[name], **values}
        if len(row) != len(_TEMPLATES[name]):
            raise KeyError(f"unknown field for {name}: {set(row) - set(_TEMPLATES[name])}")
        out[name].append(list(row.values()))

    # ------------------------------------------------------------------ registry rows

    def _registry(self, out: dict[str, list[list[str]]], rng: random.Random, idx: int, first: dt.date) -> None:
        last = month_end(first)
        hc = self.fac.hospcode
        if idx == 0:
            for s in self.staff:
                self._staff_row(out, s)
        elif rng.random() < 0.12:
            # a staff member transfers out (same PROVIDER key, OUTDATE/MOVETO, later D_UPDATE)
            active = [s for s in self.staff if s.outdate is None]
            movable = [s for s in active if sum(1 for t in active if t.ptype == s.ptype) > 1]
            if movable:
                s = rng.choice(movable)
                s.outdate = first + dt.timedelta(days=rng.randrange((last - first).days + 1))
                s.moveto = rng.choice([f.hospcode for f in self.p.facilities if f.hospcode != hc])
                s.registered = dt.datetime.combine(s.outdate, dt.time(9)) + dt.timedelta(minutes=rng.randrange(480))
                self._staff_row(out, s)
                self.doctors = [t for t in self.doctors if t is not s] or self.doctors
                self.nurses = [t for t in self.nurses if t is not s] or self.nurses
        for person in self.people:
            if person.birth > last:
                continue
            new = person.birth >= first if idx else True
            changed: dict[str, str] = {}
            stamp = person.registered
            if person.birth >= first:  # born this month: registered a few days after birth
                stamp = dt.datetime.combine(person.birth, dt.time(9)) + dt.timedelta(
                    days=rng.randrange(1, 6), minutes=rng.randrange(420))
            own = person.typearea != "4"
            if own and person.death and first <= person.death <= last:
                person.discharge, person.ddischarge = "1", person.death
                stamp = dt.datetime.combine(person.death, dt.time(10)) + dt.timedelta(days=rng.randrange(0, 4))
                changed["death"] = "1"
            elif own and idx and not new and person.discharge == "9" and person.alive(first):
                r = rng.random()
                if r < 0.006 and person.mobile:
                    person.mobile = rng.choice(("08", "09", "06")) + f"{rng.randrange(10**8):08d}"
                    changed["mobile"] = "1"
                elif r < 0.010 and person.sex == "2" and person.mstatus == "1" and 20 <= person.age(first) <= 38:
                    person.mstatus = "2"
                    changed["married"] = "1"
                elif r < 0.0112 and person.age(first) >= 18:
                    person.discharge = "2"
                    person.ddischarge = first + dt.timedelta(days=rng.randrange((last - first).days + 1))
                    changed["moved"] = "1"
                if changed:
                    day = person.ddischarge if "moved" in changed else first + dt.timedelta(
                        days=rng.randrange((last - first).days + 1))
                    assert day is not None
                    stamp = dt.datetime.combine(day, dt.time(8, 30)) + dt.timedelta(minutes=rng.randrange(480))
            if new or changed:
                self._person_rows(out, person, stamp, with_card=new)
                if changed.get("death") or (person.death and person.death < first and new and own):
                    self._death_row(out, person, rng, stamp)
            # chronic register
            for code, since in (("E119", person.dm_since), ("I10", person.ht_since)):
                if since is None or since > last or (person.typearea == "4" and rng.random() < 0.5 and new):
                    continue
                if new or first <= since <= last or changed.get("death") or changed.get("moved"):
                    if changed.get("death"):
                        typedisch, ddisch, upd = "02", person.death, stamp
                    elif changed.get("moved"):
                        typedisch, ddisch, upd = "10", person.ddischarge, stamp
                    else:
                        typedisch, ddisch = "03", since
                        upd = dt.datetime.combine(max(since, person.birth), dt.time(11)) + dt.timedelta(
                            minutes=rng.randrange(300))
                        if since < first and new:
                            upd = max(upd, stamp)
                    assert ddisch is not None
                    self._add(out, "CHRONIC", {
                        "HOSPCODE": hc, "PID": person.pid, "DATE_DIAG": d8(since), "CHRONIC": code,
                        "HOSP_DX": self.hospital if (person.key >> 37) % 10 < 6 else hc, "HOSP_RX": hc,
                        "DATE_DISCH": d8(ddisch), "TYPEDISCH": typedisch,
                        "D_UPDATE": dt14(upd.date(), upd.hour * 3600 + upd.minute * 60 + upd.second),
                        "CID": person.cid,
                    })
            if person.allergy and person.allergy_date and person.allergy_date <= last and (
                    new or person.allergy_date >= first):
                drug = cat.DRUGS[person.allergy]
                upd = max(stamp, dt.datetime.combine(person.allergy_date, dt.time(14)))
                self._add(out, "DRUGALLERGY", {
                    "HOSPCODE": hc, "PID": person.pid, "DATERECORD": d8(person.allergy_date),
                    "DRUGALLERGY": drug.code, "DNAME": drug.name, "TYPEDX": rng.choice("1223"),
                    "ALEVEL": "1" if rng.random() < 0.9 else "4", "SYMPTOM": rng.choice(("01", "02", "03", "05")),
                    "INFORMANT": rng.choice("1144"), "INFORMHOSP": "" if rng.random() < 0.7 else self.hospital,
                    "D_UPDATE": dt14(upd.date(), upd.hour * 3600 + upd.minute * 60), "CID": person.cid,
                })

    def _staff_row(self, out: dict[str, list[list[str]]], s: Staff) -> None:
        self._add(out, "PROVIDER", {
            "HOSPCODE": self.fac.hospcode, "PROVIDER": s.code, "REGISTERNO": s.registerno, "COUNCIL": s.council,
            "CID": s.cid, "PRENAME": s.prename, "NAME": s.name, "LNAME": s.lname, "SEX": s.sex,
            "BIRTH": d8(s.birth), "PROVIDERTYPE": s.ptype, "STARTDATE": d8(s.start),
            "OUTDATE": d8(s.outdate) if s.outdate else "", "MOVETO": s.moveto,
            "D_UPDATE": dt14(s.registered.date(), s.registered.hour * 3600 + s.registered.minute * 60),
        })

    def _person_rows(self, out: dict[str, list[list[str]]], p: Person, stamp: dt.datetime, with_card: bool) -> None:
        hc = self.fac.hospcode
        upd = dt14(stamp.date(), stamp.hour * 3600 + stamp.minute * 60 + stamp.second)
        on = max(stamp.date(), self.start)  # the prefix as the person is addressed during the period
        self._add(out, "PERSON", {
            "HOSPCODE": hc, "CID": p.cid, "PID": p.pid, "HID": str(p.hh_no + 1) if p.typearea != "4" else "",
            "PRENAME": p.prename(on), "NAME": p.name, "LNAME": p.lname, "HN": p.hn, "SEX": p.sex,
            "BIRTH": d8(p.birth), "MSTATUS": p.mstatus, "RACE": p.nation, "NATION": p.nation,
            "RELIGION": p.religion, "EDUCATION": p.education, "FSTATUS": p.fstatus, "FATHER": p.father,
            "MOTHER": p.mother, "COUPLE": p.couple, "VSTATUS": p.vstatus, "MOVEIN": d8(p.movein),
            "DISCHARGE": p.discharge, "DDISCHARGE": d8(p.ddischarge) if p.ddischarge else "",
            "ABOGROUP": p.abo, "RHGROUP": p.rh, "LABOR": p.labor, "TYPEAREA": p.typearea, "D_UPDATE": upd,
            "MOBILE": p.mobile,
        })
        cw, am, tb = p.tambon[0:2], p.tambon[2:4], p.tambon[4:6]
        self._add(out, "ADDRESS", {
            "HOSPCODE": hc, "PID": p.pid, "ADDRESSTYPE": "1", "HOUSE_ID": p.house_id, "HOUSETYPE": "1",
            "HOUSENO": p.houseno, "VILLAGE": p.village, "TAMBON": tb, "AMPUR": am, "CHANGWAT": cw,
            "MOBILE": p.mobile, "D_UPDATE": upd, "CID": p.cid,
        })
        if with_card:
            main = self.hospital
            if p.instype == "4200":
                main = "10699" if p.tambon[:4] in ("2701", "2702", "2707", "2709") else "10870"
            uc = p.instype == "0100"
            self._add(out, "CARD", {
                "HOSPCODE": hc, "PID": p.pid, "INSTYPE_NEW": p.instype, "INSID": p.cid if uc or p.instype == "4200" else "",
                "STARTDATE": d8(max(p.birth, stamp.date() - dt.timedelta(days=200))),
                "MAIN": main if p.instype in ("0100", "4200") else "",
                "SUB": (p.home if p.home != main else "") if uc else "",
                "D_UPDATE": upd, "CID": p.cid,
            })

    def _death_row(self, out: dict[str, list[list[str]]], p: Person, rng: random.Random, stamp: dt.datetime) -> None:
        assert p.death is not None
        in_hosp = rng.random() < 0.45
        a, underlying = p.death_cause
        self._add(out, "DEATH", {
            "HOSPCODE": self.fac.hospcode, "PID": p.pid, "HOSPDEATH": self.hospital if in_hosp else "",
            "DDEATH": d8(p.death), "CDEATH_A": a, "CDEATH": underlying, "PDEATH": "1" if in_hosp else "2",
            "PROVIDER": rng.choice(self.doctors).code if self.fac.is_hospital else "",
            "D_UPDATE": dt14(stamp.date(), stamp.hour * 3600 + stamp.minute * 60), "CID": p.cid,
        })

    # ------------------------------------------------------------------ services

    def _services(self, out: dict[str, list[list[str]]], rng: random.Random, quota: int, first: dt.date) -> None:
        last = month_end(first)
        days = day_weights(first, self.fac.is_hospital)
        workdays = [d for d, w in days if w >= 1.0] or [first]
        # NCD clinic days: two fixed weekdays at a primary-care unit, Tuesday to Thursday at hospitals
        ncd_days = (1, 2, 3) if self.fac.is_hospital else ((1, 3), (2, 4), (1, 2), (2, 3))[self.fac.ordinal % 4]
        clinic_days = [d for d in workdays if d.weekday() in ncd_days]
        for p in self.people:
            p.cur_age = age_years(p.birth, first) if p.birth <= first else 0
        own = [p for p in self.people if p.typearea != "4"]
        visits: list[Visit] = []
        # scheduled care first: vaccinations, antenatal care, deliveries, chronic clinics
        for p in own:
            if p.birth > last or (p.death and p.death <= first):
                continue
            if p.discharge == "2" and p.ddischarge and p.ddischarge < first:
                continue
            age_days = (first - p.birth).days
            if age_days < 1500:
                for offset, vaccines, zcode in cat.EPI_SCHEDULE:
                    due = p.birth + dt.timedelta(days=offset + (p.key // (offset + 1)) % 15 if offset else 0)
                    if first <= due <= last and p.alive(due):
                        if offset == 0 and not self.fac.is_hospital:
                            self._epi_elsewhere(out, p, due, vaccines)
                        else:
                            visits.append(Visit(p, "epi", due, info={"vaccines": vaccines, "z": zcode}))
            elif p.cur_age >= 65 and first.month in (6, 7) and ((p.key >> 5) + first.year) % 4 == first.month - 6:
                visits.append(Visit(p, "flu", rng.choice(workdays)))
            if p.edc:
                for no, base in enumerate((10, 18, 26, 32, 37), start=1):
                    ga = base + (p.key >> (3 * no)) % 3 - 1  # each woman keeps her own rhythm
                    day = p.edc - dt.timedelta(days=280 - ga * 7)
                    if first <= day <= last and day <= p.edc:
                        while day.weekday() >= 5:
                            day -= dt.timedelta(days=1)
                        if first <= day:
                            visits.append(Visit(p, "anc", day, info={"no": no, "ga": ga}))
                if first <= p.edc <= last:
                    if self.fac.is_hospital:
                        visits.append(Visit(p, "delivery", p.edc))
                    else:
                        self._labor(out, p, rng, self.hospital)
            chronic = (p.dm_since and p.dm_since <= last) or (p.ht_since and p.ht_since <= last)
            if chronic and rng.random() < 0.36:
                visits.append(Visit(p, "chronic", rng.choice(clinic_days or workdays)))
        if self.fac.is_hospital:  # district patients with chronic disease come to the hospital clinic
            for p in self.people:
                if p.typearea == "4" and (p.dm_since or p.ht_since) and p.alive(first) and rng.random() < 0.2:
                    since = min(x for x in (p.dm_since, p.ht_since) if x)
                    if since <= last:
                        visits.append(Visit(p, "chronic", rng.choice(workdays)))
        visits = [v for v in visits if v.person.alive(v.date)]
        if len(visits) > quota:
            rng.shuffle(visits)
            visits = visits[:quota]
        # acute visits fill the rest of the month's quota
        need = quota - len(visits)
        if need > 0:
            pool = [p for p in self.people if p.birth <= last and (p.death is None or p.death > first)]
            if pool:
                cum: list[float] = []
                total = 0.0
                for p in pool:
                    a = p.cur_age
                    w = 2.5 if a < 5 else 1.0 if a < 15 else 0.8 if a < 45 else 1.2 if a < 60 else 2.0
                    if p.typearea == "4":
                        w *= 1.5
                    total += w
                    cum.append(total)
                dates = rng.choices([d for d, _ in days], [w for _, w in days], k=need * 2)
                picks = rng.choices(pool, cum_weights=cum, k=need * 2)
                for p, d in zip(picks, dates, strict=True):
                    if need == 0:
                        break
                    if not p.alive(d) or (p.ddischarge and p.ddischarge <= d):
                        continue
                    visits.append(Visit(p, "acute", d))
                    need -= 1
                while need > 0:  # rare: the draws hit people not alive on the day
                    p = rng.choice(pool)
                    d = max(first, p.birth)
                    if p.alive(d):
                        visits.append(Visit(p, "acute", d))
                        need -= 1
        hours = _HOSP_HOURS if self.fac.is_hospital else _PCU_HOURS
        hour_pick = Weighted([h for h, _ in hours], [w for _, w in hours])
        for v in visits:
            hour = hour_pick.pick(rng)
            if v.kind in ("chronic", "anc", "epi", "flu"):
                hour = 7 + rng.randrange(4)
            elif not self.fac.is_hospital and (v.date.weekday() >= 5 or (v.date.month, v.date.day) in HOLIDAYS):
                hour = 9 + rng.randrange(6)
            v.seconds = hour * 3600 + rng.randrange(3600)
            if hour == 7 and v.kind in ("chronic", "anc", "epi", "flu"):
                v.seconds += 1800  # clinics open at 07:30
        visits.sort(key=lambda v: (v.date, v.seconds))
        day_counter: dict[dt.date, int] = defaultdict(int)
        for v in visits:
            if self.fac.is_hospital:
                day_counter[v.date] += 1
                seq = f"{(v.date.year + 543) % 100:02d}{v.date.month:02d}{v.date.day:02d}{day_counter[v.date]:06d}"
            else:
                self.seq_no += 1
                seq = str(self.seq_no)
            self._visit(out, rng, v, seq)
        self._screening(out, rng, own, first, workdays)

    def _epi_elsewhere(self, out: dict[str, list[list[str]]], p: Person, day: dt.date, vaccines: tuple[str, ...]) -> None:
        """Birth doses given at the delivering hospital, recorded by the primary-care unit without a visit."""
        for vac in vaccines:
            self._add(out, "EPI", {
                "HOSPCODE": self.fac.hospcode, "PID": p.pid, "DATE_SERV": d8(day), "VACCINETYPE": vac,
                "VACCINEPLACE": self.hospital, "D_UPDATE": dt14(day + dt.timedelta(days=7), 10 * 3600),
                "CID": p.cid,
            })

    def _labor(self, out: dict[str, list[list[str]]], p: Person, rng: random.Random, where: str) -> None:
        assert p.edc is not None
        lmp = p.edc - dt.timedelta(days=280)
        cs = rng.random() < 0.3
        self._add(out, "LABOR", {
            "HOSPCODE": self.fac.hospcode, "PID": p.pid, "GRAVIDA": str(max(1, p.gravida)), "LMP": d8(lmp),
            "EDC": d8(p.edc), "BDATE": d8(p.edc), "BRESULT": "O820" if cs else "O800", "BPLACE": "1",
            "BHOSP": where, "BTYPE": "2" if cs else "1", "BDOCTOR": "1" if cs else "2", "LBORN": "1", "SBORN": "0",
            "D_UPDATE": dt14(p.edc + dt.timedelta(days=2 + rng.randrange(10)), 10 * 3600 + rng.randrange(20000)),
            "CID": p.cid,
        })

    def _screening(self, out: dict[str, list[list[str]]], rng: random.Random, own: list[Person], first: dt.date,
                   workdays: list[dt.date]) -> None:
        """Community NCD screening (no visit row): adults 35+ without DM/HT, once per fiscal year."""
        fy = first.year + (1 if first.month >= 10 else 0)
        for p in own:
            if p.dm_since or p.ht_since or p.birth > first or p.cur_age < 35 or not p.alive(first):
                continue
            key = f"{fy}:{p.pid}"
            if key in self.screened or rng.random() > 0.07:
                continue
            self.screened.add(key)
            day = rng.choice(workdays)
            height = p.height or 158
            weight = p.weight or 58.0
            sbp = int(rng.gauss(124 + (p.cur_age - 35) * 0.4, 11))
            dbp = int(min(sbp - 30, rng.gauss(76, 8)))
            self._add(out, "NCDSCREEN", {
                "HOSPCODE": self.fac.hospcode, "PID": p.pid, "DATE_SERV": d8(day), "SERVPLACE": "2",
                "SMOKE": p.smoke, "ALCOHOL": p.alcohol, "DMFAMILY": rng.choice("1222"), "HTFAMILY": rng.choice("1222"),
                "WEIGHT": f"{weight + rng.uniform(-1.5, 1.5):.1f}", "HEIGHT": str(height),
                "WAIST_CM": str(int(weight * 0.55 + 45 + rng.gauss(0, 4))), "SBP_1": str(sbp), "DBP_1": str(dbp),
                "SBP_2": str(sbp - rng.randrange(0, 8)), "DBP_2": str(dbp - rng.randrange(0, 5)),
                "BSLEVEL": str(int(rng.gauss(96, 10))), "BSTEST": "3", "SCREENPLACE": self.fac.hospcode,
                "PROVIDER": rng.choice(self.nurses).code,
                "D_UPDATE": dt14(day, 15 * 3600 + rng.randrange(7200)), "CID": p.cid,
            })

    # ------------------------------------------------------------------ one visit

    def _visit(self, out: dict[str, list[list[str]]], rng: random.Random, v: Visit, seq: str) -> None:
        p, hc, day = v.person, self.fac.hospcode, v.date
        ds = d8(day)
        age = p.age(day) if p.birth <= day else 0
        hosp = self.fac.is_hospital
        staff = rng.choice(self.doctors if hosp else self.nurses)
        upd = dt14(day, v.seconds + 600 + rng.randrange(5 * 3600))
        clinic = "00100" if hosp else "01600"
        diags: list[tuple[str, str]] = []  # (code, diagtype)
        drugs: list[str] = []
        procs: list[str] = []
        typein, typeout, referin, referout = "1", "1", "", ""
        fever = False
        complaint = ""
        admit: cat.Inpatient | None = None
        chronic_codes = [c for c, s in (("E119", p.dm_since), ("I10", p.ht_since)) if s and s <= day]
        if v.kind == "acute":
            if hosp and rng.random() < 0.05:
                admit = self._pick_inpatient(rng, p, age, day)
            if admit:
                diags.append((admit.code, "1"))
                complaint = "ไข้ หอบเหนื่อย" if admit.code.startswith("J") else "ปวดท้อง อาเจียน" if admit.code[0] in "AK" else "อ่อนเพลีย"
                fever = admit.code in ("J189", "A90", "N10")
                clinic = "01200"
                typeout = "2"
            else:
                a = self._pick_acute(rng, age, p.sex)
                diags.append((a.code, "1"))
                if a.ext:
                    diags.append((a.ext, "5"))
                complaint = a.complaint.replace("{d}", str(1 + rng.randrange(4)))
                fever = a.fever and rng.random() < 0.7
                pool = a.child_drugs if age < 6 and a.child_drugs else a.drugs
                drugs = [d for d in pool if rng.random() < 0.8 and d != p.allergy] or [d for d in pool[:1] if d != p.allergy]
                if a.proc[0] and rng.random() < a.proc[1]:
                    procs.append(a.proc[0])
                if hosp:
                    clinic = a.clinic if a.clinic != "00100" else ("00500" if age < 15 else "00100")
                    if rng.random() < 0.04:
                        typein, referin = "3", rng.choice(self.p.pcus_of(self.fac.ampur) or [self.fac]).hospcode
                elif rng.random() < 0.015:
                    typeout, referout = "3", self.hospital
            for code in chronic_codes:
                if all(code != c for c, _ in diags):
                    diags.append((code, "2"))
        elif v.kind == "chronic":
            typein = "2"
            complaint = "มาตามนัด รับยาโรคเรื้อรัง"
            codes = chronic_codes or ["I10"]
            diags.append((codes[0], "1"))
            for code in codes[1:]:
                diags.append((code, "2"))
            if "E119" in codes and (p.key >> 11) % 10 < 4:
                diags.append(("E785", "2"))
            drugs = self._regimen(p, codes)
            clinic = "00100" if hosp else "01600"
        elif v.kind in ("epi", "flu"):
            typein = "2"
            complaint = "รับวัคซีนตามนัด" if v.kind == "epi" else "รับวัคซีนไข้หวัดใหญ่"
            diags.append((str(v.info.get("z", "Z251")), "1"))
            clinic = "00500" if hosp and v.kind == "epi" else clinic
        elif v.kind == "anc":
            typein = "2"
            complaint = "ฝากครรภ์ตามนัด"
            diags.append(("Z349", "1"))
            drugs = ["triferdine"]
            clinic = "00300" if hosp else "01600"
        elif v.kind == "delivery":
            complaint = "เจ็บครรภ์คลอด"
            admit = next(i for i in cat.INPATIENT if i.code == "O800")
            diags.append(("O800", "1"))
            clinic = "00300"
            typeout = "2"
        # vital signs
        if age >= 3:
            btemp = rng.uniform(37.6, 39.4) if fever else rng.gauss(36.7, 0.25)
            if p.ht_since and p.ht_since <= day:
                sbp = int(rng.gauss(138, 12))
            else:
                sbp = int(rng.gauss(112 + max(0, age - 20) * 0.45, 10))
            dbp = int(min(sbp - 30, rng.gauss(74 + (6 if sbp > 140 else 0), 8)))
            vit = {"BTEMP": f"{min(btemp, 40.5):.1f}", "SBP": str(sbp), "DBP": str(dbp),
                   "PR": str(int(rng.gauss(96 if fever else 80, 9))), "RR": str(int(rng.gauss(20, 2)))}
        else:
            vit = {"BTEMP": f"{(rng.uniform(37.6, 39.0) if fever else rng.gauss(36.8, 0.2)):.1f}",
                   "PR": str(int(rng.gauss(120, 10))), "RR": str(int(rng.gauss(30, 4)))}
        # prices
        drug_rows = []
        price = 50.0 if hosp else 0.0
        for key in dict.fromkeys(drugs):
            drug = cat.DRUGS[key]
            lo, hi = drug.amount
            amount = lo + rng.randrange(hi - lo + 1)
            price += amount * drug.price
            drug_rows.append((drug, amount))
        proc_price = {"8659": 150.0, "9339": 100.0, "2309": 200.0}
        price += sum(proc_price.get(c, 80.0) for c in procs)
        if v.kind in ("epi", "flu"):
            price += 30.0
        pay = price if p.instype in ("9100", "8401") else 0.0
        insid = p.cid if p.instype in ("0100", "4200") else ""
        office = day.weekday() < 5 and (day.month, day.day) not in HOLIDAYS and 8 * 3600 <= v.seconds < 16 * 3600 + 1800
        svc = {
            "HOSPCODE": hc, "PID": p.pid, "HN": p.hn, "SEQ": seq, "DATE_SERV": ds, "TIME_SERV": hms(v.seconds),
            "LOCATION": "1" if p.typearea in ("1", "3") else "2", "INTIME": "1" if office else "2",
            "INSTYPE": p.instype, "INSID": insid, "MAIN": self.hospital if p.instype == "0100" else "",
            "TYPEIN": typein, "REFERINHOSP": referin, "CAUSEIN": "1" if referin else "", "CHIEFCOMP": complaint,
            "SERVPLACE": "1", "TYPEOUT": typeout, "REFEROUTHOSP": referout, "CAUSEOUT": "1" if referout else "",
            "COST": _f2(price * 0.45), "PRICE": _f2(price), "PAYPRICE": _f2(pay), "ACTUALPAY": _f2(pay),
            "D_UPDATE": upd, "HSUB": p.home if p.instype == "0100" and p.home != self.hospital else "", "CID": p.cid,
        }
        svc.update(vit)
        self._add(out, "SERVICE", svc)
        for code, dtype in diags:
            self._add(out, "DIAGNOSIS_OPD", {
                "HOSPCODE": hc, "PID": p.pid, "SEQ": seq, "DATE_SERV": ds, "DIAGTYPE": dtype, "DIAGCODE": code,
                "CLINIC": clinic, "PROVIDER": staff.code, "D_UPDATE": upd, "CID": p.cid,
            })
        for code in procs:
            self._add(out, "PROCEDURE_OPD", {
                "HOSPCODE": hc, "PID": p.pid, "SEQ": seq, "DATE_SERV": ds, "CLINIC": clinic, "PROCEDCODE": code,
                "SERVICEPRICE": _f2(proc_price.get(code, 80.0)), "PROVIDER": staff.code, "D_UPDATE": upd,
                "CID": p.cid,
            })
        for drug, amount in drug_rows:
            self._add(out, "DRUG_OPD", {
                "HOSPCODE": hc, "PID": p.pid, "SEQ": seq, "DATE_SERV": ds, "CLINIC": clinic, "DIDSTD": drug.code,
                "DNAME": drug.name, "AMOUNT": str(amount), "UNIT": drug.unit, "UNIT_PACKING": drug.packing,
                "DRUGPRICE": _f2(drug.price), "DRUGCOST": _f2(drug.cost), "PROVIDER": staff.code, "D_UPDATE": upd,
                "CID": p.cid,
            })
        if v.kind == "chronic":
            self._chronic_rows(out, rng, v, seq, staff.code, upd, clinic)
        elif v.kind in ("epi", "flu"):
            vaccines = v.info.get("vaccines", (cat.FLU_VACCINE,))
            assert isinstance(vaccines, tuple)
            for vac in vaccines:
                self._add(out, "EPI", {
                    "HOSPCODE": hc, "PID": p.pid, "SEQ": seq, "DATE_SERV": ds, "VACCINETYPE": vac,
                    "VACCINEPLACE": hc, "PROVIDER": staff.code, "D_UPDATE": upd, "CID": p.cid,
                })
            nxt = [e for e in cat.EPI_SCHEDULE if p.birth + dt.timedelta(days=e[0]) > day + dt.timedelta(days=14)]
            if v.kind == "epi" and nxt:
                self._appointment(out, p, seq, ds, clinic, p.birth + dt.timedelta(days=nxt[0][0]), "Z27", staff.code, upd)
        elif v.kind == "anc":
            no = int(str(v.info["no"]))
            self._add(out, "ANC", {
                "HOSPCODE": hc, "PID": p.pid, "SEQ": seq, "DATE_SERV": ds, "GRAVIDA": str(max(1, p.gravida)),
                "ANCNO": str(no), "GA": str(v.info["ga"]), "ANCRESULT": "1" if rng.random() < 0.93 else "2",
                "ANCPLACE": hc, "PROVIDER": staff.code, "D_UPDATE": upd, "CID": p.cid,
                "WEIGHT": f"{(p.weight or 52.0) + int(str(v.info['ga'])) * 0.3:.1f}",
            })
            if no == 1:
                self._add(out, "EPI", {
                    "HOSPCODE": hc, "PID": p.pid, "SEQ": seq, "DATE_SERV": ds, "VACCINETYPE": "106",
                    "VACCINEPLACE": hc, "PROVIDER": staff.code, "D_UPDATE": upd, "CID": p.cid,
                })
                self._lab(out, p, seq, ds, "0621201", rng.uniform(31, 40), upd, staff.code)
            if no < 5 and p.edc:
                ga_next = (18, 26, 32, 37)[no - 1]
                self._appointment(out, p, seq, ds, clinic, p.edc - dt.timedelta(days=280 - ga_next * 7), "Z349",
                                  staff.code, upd)
        if admit:
            self._admission(out, rng, v, seq, admit, p, age)
            if v.kind == "delivery":
                self._labor(out, p, rng, hc)

    def _pick_acute(self, rng: random.Random, age: int, sex: str) -> cat.Acute:
        for _ in range(10):
            a = _ACUTE.pick(rng)
            if a.ages[0] <= age <= a.ages[1] and (not a.sex or a.sex == sex):
                return a
        return cat.ACUTE[0]

    def _pick_inpatient(self, rng: random.Random, p: Person, age: int, day: dt.date) -> cat.Inpatient | None:
        for _ in range(10):
            i = rng.choices(cat.INPATIENT, [x.weight * (2.5 if x.rainy and day.month in (6, 7, 8, 9, 10) else 1)
                                            for x in cat.INPATIENT])[0]
            if i.code == "O800":
                continue  # deliveries come from the pregnancies, not from chance
            if i.ages[0] <= age <= i.ages[1] and (not i.sex or i.sex == p.sex):
                return i
        return None

    def _regimen(self, p: Person, codes: list[str]) -> list[str]:
        h = p.key >> 17
        drugs: list[str] = []
        if "E119" in codes:
            drugs.append("metformin")
            if h % 10 < 4:
                drugs.append("glipizide")
            if h % 7 < 5:
                drugs.append("simvastatin")
            if h % 13 < 2:
                drugs.append("insulin")
        if "I10" in codes:
            drugs.append("amlodipine" if h % 5 < 4 else "atenolol")
            if h % 3 == 0:
                drugs.append("enalapril" if h % 4 else "losartan")
            if h % 6 == 1:
                drugs.append("hydrochlorothiazide")
        if h % 11 < 3:
            drugs.append("aspirin")
        return [d for d in drugs if d != p.allergy]

    def _lab(self, out: dict[str, list[list[str]]], p: Person, seq: str, ds: str, test: str, value: float, upd: str,
             provider: str) -> None:
        self._add(out, "LABFU", {
            "HOSPCODE": self.fac.hospcode, "PID": p.pid, "SEQ": seq, "DATE_SERV": ds, "LABTEST": test,
            "LABRESULT": _f2(round(value, _LAB_DECIMALS.get(test, 2))), "D_UPDATE": upd, "LABPLACE": self.fac.hospcode if self.fac.is_hospital else self.hospital,
            "CID": p.cid, "PROVIDER": provider,
        })

    def _appointment(self, out: dict[str, list[list[str]]], p: Person, seq: str, ds: str, clinic: str,
                     apdate: dt.date, diag: str, provider: str, upd: str) -> None:
        self._add(out, "APPOINTMENT", {
            "HOSPCODE": self.fac.hospcode, "PID": p.pid, "SEQ": seq, "DATE_SERV": ds, "CLINIC": clinic,
            "APDATE": d8(apdate), "APTYPE": "001", "APDIAG": diag, "PROVIDER": provider, "D_UPDATE": upd,
            "CID": p.cid,
        })

    def _chronic_rows(self, out: dict[str, list[list[str]]], rng: random.Random, v: Visit, seq: str, provider: str,
                      upd: str, clinic: str) -> None:
        p, day = v.person, v.date
        ds = d8(day)
        dm = bool(p.dm_since and p.dm_since <= day)
        ht = bool(p.ht_since and p.ht_since <= day)
        control = ((p.key >> 23) % 100) / 100  # how well this patient is controlled
        weight = (p.weight or 62.0) + rng.uniform(-1.5, 1.5)
        sbp = int(rng.gauss(128 + control * 22 if ht else 122, 9))
        dbp = int(min(sbp - 30, rng.gauss(78 + control * 8, 7)))
        annual = (p.key >> 31) % 12 == day.month - 1
        self._add(out, "CHRONICFU", {
            "HOSPCODE": self.fac.hospcode, "PID": p.pid, "SEQ": seq, "DATE_SERV": ds, "WEIGHT": f"{weight:.1f}",
            "HEIGHT": str(p.height or 158), "WAIST_CM": str(int(weight * 0.6 + 44 + rng.gauss(0, 3))),
            "SBP": str(sbp), "DBP": str(dbp), "FOOT": ("1" if rng.random() < 0.9 else "2") if dm and annual else "9",
            "RETINA": ("1" if rng.random() < 0.85 else "2") if dm and annual else "9", "PROVIDER": provider,
            "D_UPDATE": upd, "CHRONICFUPLACE": self.fac.hospcode, "CID": p.cid,
        })
        if dm:
            fbs = rng.gauss(105 + control * 110, 18)
            self._lab(out, p, seq, ds, cat.LAB_FBS, min(max(fbs, 70), 420), upd, provider)
            if rng.random() < 0.3:
                self._lab(out, p, seq, ds, cat.LAB_HBA1C, min(max(rng.gauss(6.2 + control * 4.5, 0.5), 4.8), 14.5),
                          upd, provider)
        if (dm or ht) and rng.random() < 0.2:
            tg = rng.gauss(150 + control * 60, 40)
            hdl = rng.gauss(48, 9)
            ldl = rng.gauss(115 + control * 30, 25)
            for test, value in ((cat.LAB_TG, tg), (cat.LAB_CHOL, ldl + hdl + tg / 5), (cat.LAB_HDL, hdl),
                                (cat.LAB_LDL, ldl)):
                self._lab(out, p, seq, ds, test, max(value, 20), upd, provider)
            cr = rng.gauss(0.95 if p.sex == "1" else 0.75, 0.15) + (0.4 if control > 0.85 else 0)
            self._lab(out, p, seq, ds, cat.LAB_CREAT, max(cr, 0.4), upd, provider)
        self._appointment(out, p, seq, ds, clinic, day + dt.timedelta(days=28 * (1 + rng.randrange(3))),
                          "E119" if dm else "I10", provider, upd)

    def _admission(self, out: dict[str, list[list[str]]], rng: random.Random, v: Visit, seq: str, adm: cat.Inpatient,
                   p: Person, age: int) -> None:
        hc = self.fac.hospcode
        self.an_no += 1
        be = (v.date.year + 543) % 100
        an = f"{be:02d}{self.an_no:07d}"
        admit_s = v.seconds + 3600 + rng.randrange(3 * 3600)
        los = adm.los[0] + rng.randrange(adm.los[1] - adm.los[0] + 1)
        disch_s = admit_s - admit_s % 86400 + los * 86400 + 10 * 3600 + rng.randrange(4 * 3600)
        t_admit = dt14(v.date, admit_s)
        t_disch = dt14(v.date, disch_s)
        doctor = rng.choice(self.doctors).code
        upd = dt14(v.date, disch_s + 3600 * (2 + rng.randrange(48)))
        drugs = [d for d in adm.drugs if d != p.allergy]
        price = 1500.0 * los + sum(cat.DRUGS[d].price * cat.DRUGS[d].amount[1] for d in drugs)
        pay = price if p.instype in ("9100", "8401") else 0.0
        self._add(out, "ADMISSION", {
            "HOSPCODE": hc, "PID": p.pid, "SEQ": seq, "AN": an, "DATETIME_ADMIT": t_admit, "WARDADMIT": adm.ward,
            "INSTYPE": p.instype, "TYPEIN": "1", "ADMITWEIGHT": f"{(p.weight or max(3.0, age * 2.5 + 8)):.1f}",
            "ADMITHEIGHT": str(p.height or max(50, min(170, 75 + age * 6))), "DATETIME_DISCH": t_disch,
            "WARDDISCH": adm.ward, "DISCHSTATUS": "4" if adm.code == "O800" else rng.choice("1222"),
            "DISCHTYPE": "1", "COST": _f2(price * 0.5), "PRICE": _f2(price), "PAYPRICE": _f2(pay),
            "ACTUALPAY": _f2(pay), "PROVIDER": doctor, "D_UPDATE": upd, "ACTLOS": str(los), "CID": p.cid,
        })
        codes = [adm.code] + [c for c, s in (("E119", p.dm_since), ("I10", p.ht_since)) if s and s <= v.date]
        for i, code in enumerate(codes):
            self._add(out, "DIAGNOSIS_IPD", {
                "HOSPCODE": hc, "PID": p.pid, "AN": an, "DATETIME_ADMIT": t_admit, "WARDDIAG": adm.ward,
                "DIAGTYPE": "1" if i == 0 else "2", "DIAGCODE": code, "PROVIDER": doctor, "D_UPDATE": upd,
                "CID": p.cid,
            })
        if adm.proc:
            start = admit_s + 3600 * (1 + rng.randrange(20))
            self._add(out, "PROCEDURE_IPD", {
                "HOSPCODE": hc, "PID": p.pid, "AN": an, "DATETIME_ADMIT": t_admit, "WARDSTAY": adm.ward,
                "PROCEDCODE": adm.proc, "TIMESTART": dt14(v.date, start), "TIMEFINISH": dt14(v.date, start + 2700),
                "SERVICEPRICE": "1500.00" if adm.proc == "4709" else "800.00", "PROVIDER": doctor, "D_UPDATE": upd,
                "CID": p.cid,
            })
        for typedrug, keys in (("1", drugs), ("2", [d for d in ("paracetamol",) if d != p.allergy])):
            for key in keys:
                drug = cat.DRUGS[key]
                lo, hi = drug.amount
                self._add(out, "DRUG_IPD", {
                    "HOSPCODE": hc, "PID": p.pid, "AN": an, "DATETIME_ADMIT": t_admit, "WARDSTAY": adm.ward,
                    "TYPEDRUG": typedrug, "DIDSTD": drug.code, "DNAME": drug.name, "DATESTART": t_admit[:8],
                    "DATEFINISH": t_disch[:8], "AMOUNT": str(lo + rng.randrange(hi - lo + 1)), "UNIT": drug.unit,
                    "UNIT_PACKING": drug.packing, "DRUGPRICE": _f2(drug.price), "DRUGCOST": _f2(drug.cost),
                    "PROVIDER": doctor, "D_UPDATE": upd, "CID": p.cid,
                })
