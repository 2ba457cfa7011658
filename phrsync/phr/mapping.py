"""43-file bundles → MOPH-PHR payload dicts. PURE: no I/O, no clock ("now" comes in the context).

The field-by-field rules, the code table behind each field and every missing-data policy are written
out for users in ``docs/mapping.md``; section numbers below refer to the PHR API reference
(moph-phr-api.md). Anything a policy fills in, and anything dropped, comes back as a :class:`Note`
on that payload so the data-quality report can say which health centre must fix what.

Code systems the PHR spec does not name for a 43-file code (the 24-digit drug code, the ICD-10-TM
lab code, TYPEIN, APTYPE, CLINIC) use phrsync's local namespace ``urn:phrsync:f43:<FIELD>`` so they
can never be mistaken for an official PHR CodingSystem.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from phrsync import AGENT_NAME
from phrsync.pdpa import cid_is_valid, mask_cid
from phrsync.phr.policies import Policies
from phrsync.phr.systems import (  # noqa: F401 - re-exported: tests and docs name them here
    PHR_CS,
    SYS_ACTCODE,
    SYS_ALLERGY_CLINICAL,
    SYS_ALLERGY_VERIF,
    SYS_CID,
    SYS_COND_CLINICAL,
    SYS_F43,
    SYS_HCODE,
    SYS_ICD10,
    SYS_LOINC,
    SYS_SNOMED,
    SYS_TMT,
    SYS_TYPEIN,
    SYS_UCUM,
    SYS_VACCINE,
)
from phrsync.terminology import chronic_group_for_icd10, get_table
from phrsync.terminology.drugcodes import DrugCodes, DrugConcept

# --- systems (spec §6) ------------------------------------------------------------------------------

TZ = "+07:00"  # the 43 files carry no zone; every Thai facility is on Asia/Bangkok (UTC+7, no DST)

EP_ENCOUNTER = "UpdatePHRv1"
EP_IMMUNIZATION = "ImmunizationRegisterv1"
EP_CHRONIC = "PatientChronicRegisterv1"
EP_ALLERGY = "AllergyIntolerancev1"
EP_SUMMARY = "OrgEncounterSummary"


@dataclass(frozen=True, slots=True)
class Note:
    """A data-quality fact about one payload: what was estimated, missing, unknown or left out."""

    code: str
    path: str
    message_th: str
    message_en: str
    kind: str  # "estimate" | "missing" | "unknown_code" | "skipped" | "waiting" (payload held for a code)
    # the code the note is about when the build could not map it: (kind "drug" | "allergy", code, name or ""),
    # so the build can list it in BuildSummary.unmapped (the message stays the same for every code: one report row)
    subject: tuple[str, str, str] | None = None

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "path": self.path, "kind": self.kind, "message_th": self.message_th,
                "message_en": self.message_en}

    def __reduce__(self) -> tuple[type[Note], tuple[str, str, str, str, str, tuple[str, str, str] | None]]:
        """Pickled by its fields: compiled (mypyc), a frozen dataclass cannot be restored attribute by attribute."""
        return Note, (self.code, self.path, self.message_th, self.message_en, self.kind, self.subject)


@dataclass(frozen=True)
class MapContext:
    """Everything the mapping needs besides the bundle. ``now`` caps estimates (never in the future)."""

    now: dt.datetime
    policies: Policies = field(default_factory=Policies)
    agent: str = AGENT_NAME
    facility_names: Mapping[str, str] = field(default_factory=dict)  # overrides sakaeo_facilities
    # the code store's drug codes (phrsync codes import-tmt / import-drugs), loaded once per build
    drug_codes: DrugCodes = field(default_factory=DrugCodes)
    # the code store's local lab codes: (hcode, LABTEST) → standard lab code of lab_loinc, hcode '' =
    # province-wide (phrsync codes import-labs / accept lab; codestore.load_lab_codes), loaded once per build
    lab_codes: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def __reduce__(self) -> tuple[type[MapContext], tuple[dt.datetime, Policies, str, Mapping[str, str], DrugCodes,
                                                          Mapping[tuple[str, str], str]]]:
        """Pickled by its fields (sent to the build's worker processes): compiled (mypyc), a frozen dataclass
        cannot be restored attribute by attribute."""
        return MapContext, (self.now, self.policies, self.agent, self.facility_names, self.drug_codes,
                            self.lab_codes)


# --- code tables, indexed once -----------------------------------------------------------------------

@functools.cache
def _index(table: str, key: str | None = None) -> dict[str, dict[str, str]]:
    t = get_table(table)
    out: dict[str, dict[str, str]] = {}
    for r in t.rows:
        k = r.get(key) if key else t.key_of(r)
        if k and k not in out:
            out[k] = dict(r)
    if t.alt_key:
        for r in t.rows:
            k = r.get(t.alt_key)
            if k and k not in out:
                out[k] = dict(r)
    return out


def reset_code_cache() -> None:
    """After the terminology override directory changes (tests, ``codes`` reload)."""
    _index.cache_clear()
    _table_concepts.cache_clear()
    _chronic_group.cache_clear()
    _ORG_CACHE.clear()
    _places.cache_clear()
    _class_group_names.cache_clear()
    _encounter_type_coding.cache_clear()
    _coverage_classes.cache_clear()
    _person_codes.cache_clear()
    _clock.cache_clear()


@functools.cache
def _class_group_names() -> dict[str, str]:
    """PHR class_group names seen in the spec (UCS = สิทธิหลักประกันสุขภาพแห่งชาติ), by group code."""
    return {r["code"]: r["display"] for r in get_table("phr_codingsystems").rows
            if r.get("name") == "class_group" and r.get("code") and r.get("display")}


@functools.cache
def _chronic_group(icd10: str) -> dict[str, str] | None:
    return chronic_group_for_icd10(icd10)


def facility_name(hcode: str, ctx: MapContext) -> str | None:
    if hcode in ctx.facility_names:
        return ctx.facility_names[hcode]
    row = _index("sakaeo_facilities").get(hcode)
    return row["name_th"] if row and row.get("name_th") else None


# --- small helpers ----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1 << 14)
def icd10_dotted(code: str) -> str:
    """``E119`` → ``E11.9`` (the spec's examples use the dotted form); ``I10`` stays ``I10``."""
    c = code.strip().upper().replace(".", "")
    return f"{c[:3]}.{c[3:]}" if len(c) > 3 else c


def cid_digest(cid: str) -> str:
    """A stable, non-reversible-at-a-glance token for a CID in outbox keys and logs (never the CID)."""
    return hashlib.blake2b(cid.encode(), digest_size=8).hexdigest()


def _ts(v: Any) -> str | None:
    """A 43-file date-time as ``YYYY-MM-DDTHH:MM:SS`` (extract.py already sends this text; typed values
    from other callers are formatted here). Comparisons below are on this text, which sorts in time order."""
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, dt.datetime):
        return v.isoformat(timespec="seconds")
    return f"{v.isoformat()}T00:00:00"


def _ds(v: Any) -> str | None:
    """A 43-file date as ``YYYY-MM-DD`` (text or typed)."""
    if v is None:
        return None
    if isinstance(v, str):
        return v[:10]
    return (v.date() if isinstance(v, dt.datetime) else v).isoformat()


def _dt(v: Any) -> str:
    return f"{_ts(v)}{TZ}"


def _date(v: Any) -> str:
    return _ds(v) or ""


def _thai_day(day: str) -> str:
    """``2025-01-05`` → ``5/1/2568`` (Buddhist era, as screens and notes show dates)."""
    try:
        d = dt.date.fromisoformat(day)
    except ValueError:
        return day
    return f"{d.day}/{d.month}/{d.year + 543}"


def _days_between(a: str, b: str) -> int:
    try:
        return (dt.date.fromisoformat(b[:10]) - dt.date.fromisoformat(a[:10])).days
    except ValueError:
        return 0


@functools.lru_cache(maxsize=1 << 17)
def _clock(t: str | None) -> str | None:
    """TIME_SERV ``HHMMSS`` (or ``HHMM``) → ``HH:MM:SS``; None when empty or impossible. Cached: a day has
    86,400 of them, and every visit's is parsed."""
    if not t:
        return None
    s = t.strip()
    if not s.isdigit() or len(s) not in (4, 6):
        return None
    h, m, sec = int(s[:2]), int(s[2:4]), int(s[4:6]) if len(s) == 6 else 0
    if h > 23 or m > 59 or sec > 59:
        return None
    return f"{h:02d}:{m:02d}:{sec:02d}"


def organization(hcode: str, ctx: MapContext, notes: list[Note] | None = None, agent: bool = True) -> dict[str, Any]:
    """managingOrganization (§2.0); an unknown facility name gets a placeholder display and a note.

    Built once per facility and context, then copied: it is the same block in every payload."""
    cache = _ORG_CACHE.get(id(ctx))
    if cache is None or cache[0] is not ctx:
        cache = _ORG_CACHE[id(ctx)] = (ctx, {})
        if len(_ORG_CACHE) > 8:
            _ORG_CACHE.pop(next(iter(_ORG_CACHE)))
    key = (hcode, agent)
    hit = cache[1].get(key)
    if hit is None:
        hit = cache[1][key] = _organization(hcode, ctx, agent)
    org, unknown = hit
    if unknown and notes is not None:
        notes.append(unknown)
    return {**org, "identifier": dict(org["identifier"])}


_ORG_CACHE: dict[int, tuple[MapContext, dict[tuple[str, bool], tuple[dict[str, Any], Note | None]]]] = {}


def _organization(hcode: str, ctx: MapContext, agent: bool) -> tuple[dict[str, Any], Note | None]:
    name = facility_name(hcode, ctx)
    note = None
    if name is None:
        name = f"หน่วยบริการ {hcode}"
        note = Note("facility_name_unknown", "managingOrganization.display",
                    f"ไม่พบชื่อหน่วยบริการ {hcode} ในตารางรหัส ใช้ '{name}'",
                    f"facility {hcode} not in the code table; display '{name}'", "unknown_code")
    org: dict[str, Any] = {"type": "Organization",
                           "identifier": {"use": "official", "system": SYS_HCODE, "value": hcode},
                           "display": name}
    if agent:
        org["agent"] = ctx.agent
    return org, note


def patient_cid(person: Mapping[str, Any] | None, *fallbacks: str | None) -> str | None:
    """PERSON.CID, else the CID carried on the service row (newer layouts append one)."""
    c = person.get("CID") if person else None
    if c:
        return str(c).strip()
    for c in fallbacks:
        if c:
            return str(c).strip()
    return None


@functools.lru_cache(maxsize=1 << 16)
def _cid_ok(cid: str) -> bool:
    return cid_is_valid(cid)


def _check_cid(cid: str | None, notes: list[Note]) -> bool:
    if not cid:
        notes.append(Note("cid_missing", "Patient.identifier", "ไม่มีเลขประจำตัวประชาชน ไม่ส่งรายการนี้",
                          "no citizen ID: not sent", "skipped"))
        return False
    if not _cid_ok(cid):
        notes.append(Note("cid_invalid", "Patient.identifier",
                          "เลขประจำตัวประชาชนไม่ถูกต้อง (เลขตรวจสอบผิด) ไม่ส่งรายการนี้",
                          "citizen ID fails its checksum: not sent", "skipped"))
        return False
    return True


@functools.lru_cache(maxsize=1 << 12)
def _person_codes(pre_code: str | None, sex: str | None, ms: str | None, nat_code: str | None
                  ) -> tuple[str | None, str | None, tuple[str, str, str, str] | None, dict[str, str] | None]:
    """(name prefix, FHIR gender, marital status (text, system, code, display), nationality row) of a
    person's codes: the same few combinations in every payload, so looked up once per build."""
    pre_row = _index("prename").get(pre_code or "")
    prefix = (pre_row.get("full_th") or pre_row.get("abbr_th")) if pre_row else None
    sex_row = _index("sex").get(sex or "")
    gender = sex_row.get("fhir_gender") if sex_row else None
    ms_row = _index("mstatus").get(ms or "")
    marital = ((ms_row["name_th"], ms_row["hl7_system"], ms_row["hl7_code"], ms_row["hl7_display"])
               if ms_row and ms_row.get("hl7_code") else None)
    return prefix or None, gender or None, marital, _index("nation").get(nat_code or "") or None


def patient(person: Mapping[str, Any], addresses: list[dict[str, Any]], death: Mapping[str, Any] | None,
            cid: str, notes: list[Note]) -> dict[str, Any]:
    """Patient (§3.1) from PERSON, ADDRESS and DEATH."""
    get = person.get
    given = (get("NAME") or "").strip()
    family = (get("LNAME") or "").strip()
    name: dict[str, Any] = {"use": "official", "languageCode": "TH"}
    pre_code = get("PRENAME")
    nat_code = get("NATION")
    prefix, gender, marital, nat = _person_codes(pre_code, get("SEX"), get("MSTATUS"), nat_code)
    if prefix:
        # Thai writes a title against a Thai name (นายสมชาย) but apart from a Latin one (นาย AUNG KYAW)
        sep = " " if given[:1].isascii() and given[:1].isalpha() else ""
        name["text"] = f"{prefix}{sep}{given} {family}".strip()
        name["prefix"] = [prefix]
    else:
        name["text"] = f"{given} {family}".strip()
        if pre_code:
            notes.append(Note("prename_unknown", "Patient.name[0].prefix", f"ไม่รู้จักคำนำหน้าชื่อรหัส {pre_code}",
                              f"unknown PRENAME code {pre_code}", "unknown_code"))
    if given:
        name["given"] = [given]
    if family:
        name["family"] = family
    pt: dict[str, Any] = {
        "identifier": [{"use": "official", "system": SYS_CID, "type": "CID", "value": cid}],
        "name": [name],
    }
    if gender:
        pt["gender"] = gender
    else:
        notes.append(Note("sex_unknown", "Patient.gender", f"เพศไม่ถูกต้อง ({get('SEX') or 'ว่าง'})",
                          f"SEX is not 1 or 2 ({get('SEX') or 'empty'})", "missing"))
    birth = get("BIRTH")
    if birth is not None:
        pt["birthDate"] = _date(birth)
    else:
        notes.append(Note("birth_missing", "Patient.birthDate", "ไม่มีวันเกิด", "no birth date", "missing"))
    if death is not None and death.get("DDEATH") is not None:
        pt["deceasedBoolean"] = True
        pt["deceasedDateTime"] = _date(death["DDEATH"])
    else:
        pt["deceasedBoolean"] = get("DISCHARGE") == "1"
    if marital is not None:
        pt["maritalStatus"] = {"text": marital[0], "coding": [
            {"system": marital[1], "code": marital[2], "display": marital[3]}]}
    addr = _address(addresses)
    if addr is not None:
        pt["address"] = [addr]
    telecom = _telecom(person, addresses)
    if telecom:
        pt["telecom"] = telecom
    if nat:
        pt["nationality"] = {"text": nat["name_th"], "coding": [
            {"system": PHR_CS + "nationality", "code": nat_code, "display": nat["name_th"]}]}
    elif nat_code:
        notes.append(Note("nation_unknown", "Patient.nationality", f"ไม่รู้จักรหัสสัญชาติ {nat_code}",
                          f"unknown NATION code {nat_code}", "unknown_code"))
    return pt


def _address(addresses: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The registered address (ADDRESSTYPE 1) if any, else the first one; Thai place names for Sa Kaeo."""
    if not addresses:
        return None
    a = addresses[0]
    if len(addresses) > 1:
        a = next((x for x in addresses if x.get("ADDRESSTYPE") == "1"), a)
    get = a.get
    line: list[str] = []
    if v := get("HOUSENO"):
        line.append(v.strip())
    village = (get("VILLAGE") or "").strip()
    if village.isdigit() and int(village) > 0:
        line.append(f"หมู่ที่ {int(village)}")
    if v := get("VILLANAME"):
        line.append(v.strip())
    if v := get("SOISUB"):
        line.append(f"ซอย{v.strip()}")
    if v := get("SOIMAIN"):
        line.append(f"ซอย{v.strip()}")
    if v := get("ROAD"):
        line.append(f"ถนน{v.strip()}")
    out: dict[str, Any] = {"use": "home", "type": "both"}
    suffix, fields = _places(get("CHANGWAT"), get("AMPUR"), get("TAMBON"))
    text = " ".join(line)
    if suffix:
        text = f"{text} {suffix}" if text else suffix
    if text:
        out["text"] = text
    if line:
        out["line"] = line
    out.update(fields)
    return out


@functools.cache
def _places(cw: str | None, am: str | None, tb: str | None) -> tuple[str, dict[str, str]]:
    """Thai place names of a (CHANGWAT, AMPUR, TAMBON): the "ต. อ. จ." text and the address fields."""
    code = f"{cw}{am}{tb}" if cw and am and tb else None
    tambon = _index("sakaeo_tambons").get(code or "")
    district = _index("sakaeo_districts").get(f"{cw}{am}" if cw and am else "")
    province = _index("health_regions", "province_code").get(cw or "")
    parts = []
    fields: dict[str, str] = {}
    if tambon:
        parts.append(f"ต.{tambon['name_th']}")
    if district:
        parts.append(f"อ.{district['name_th']}")
    if province:
        parts.append(f"จ.{province['province_name_th']}")
    if district:
        fields["city"] = district["name_th"]
    if tambon:
        fields["district"] = tambon["name_th"]
    if province:
        fields["state"] = province["province_name_th"]
    if tambon and tambon.get("postcode"):
        fields["postalCode"] = tambon["postcode"]
    fields["country"] = "TH"
    if code and len(code) == 6 and code.isdigit():
        fields["address_code"] = code
    return " ".join(parts), fields


def _telecom(person: Mapping[str, Any], addresses: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The phone numbers of the first of PERSON, then its addresses, that has any (mobile first)."""
    for src in (person, *addresses):
        mobile = (src.get("MOBILE") or "").strip()
        home = (src.get("TELEPHONE") or "").strip()
        if mobile:
            out = [{"system": "phone", "value": mobile, "use": "mobile"}]
            if home and home != mobile:
                out.append({"system": "phone", "value": home, "use": "home"})
            return out
        if home:
            return [{"system": "phone", "value": home, "use": "home"}]
    return []


# --- encounters (UpdatePHRv1, §3) -------------------------------------------------------------------

def encounter_ref(bundle: Mapping[str, Any], ctx: MapContext) -> str:
    """``HCODE:SEQ`` for a visit, ``HCODE:<prefix>AN`` for an admission (spec §7.3)."""
    h = bundle["hospcode"]
    if bundle["kind"] == "IPD":
        return f"{h}:{ctx.policies.ipd_ref_prefix}{bundle['ref']}"
    return f"{h}:{bundle['ref']}"


def _start(bundle: Mapping[str, Any], ctx: MapContext, notes: list[Note]) -> tuple[str, str | None]:
    """period.start as sent, and as local ``YYYY-MM-DDTHH:MM:SS`` when the time is known (or set by policy)."""
    svc = bundle["service"]
    if bundle["kind"] == "IPD":
        adm = _ts(svc["DATETIME_ADMIT"])
        return f"{adm}{TZ}", adm
    day = _ds(svc["DATE_SERV"])
    t = _clock(svc.get("TIME_SERV"))
    if t is not None:
        start = f"{day}T{t}"
        return f"{start}{TZ}", start
    if ctx.policies.missing_time == "default_time":
        start = f"{day}T{ctx.policies.default_time_value().isoformat()}"
        notes.append(Note("time_default", "Encounter[0].period.start",
                          f"ไม่มีเวลารับบริการ (TIME_SERV) ใช้เวลา {ctx.policies.default_time} ตามนโยบาย",
                          f"no TIME_SERV: {ctx.policies.default_time} used by policy", "estimate"))
        return f"{start}{TZ}", start
    notes.append(Note("time_missing", "Encounter[0].period.start", "ไม่มีเวลารับบริการ (TIME_SERV) ส่งเฉพาะวันที่",
                      "no TIME_SERV: date only", "missing"))
    return day or "", None


def _end(bundle: Mapping[str, Any], start: str | None, ctx: MapContext, notes: list[Note]) -> str | None:
    svc = bundle["service"]
    if bundle["kind"] == "IPD":
        disch = _ts(svc.get("DATETIME_DISCH"))
        if disch is None:
            return None
        if start is not None and disch < start:
            notes.append(Note("discharge_before_admit", "Encounter[0].period.end",
                              "วันเวลาจำหน่ายก่อนวันเวลารับไว้ ไม่ส่งเวลาสิ้นสุด",
                              "discharge before admission: end left out", "missing"))
            return None
        return f"{disch}{TZ}"
    pol = ctx.policies.visit_end
    if pol == "omit" or start is None:
        return None
    now_local = ctx.now.astimezone(dt.timezone(dt.timedelta(hours=7))).replace(tzinfo=None)
    if pol == "estimate":
        minutes = ctx.policies.visit_minutes_other if svc.get("TYPEIN") in ("3", "4") else ctx.policies.visit_minutes_opd
        begin = dt.datetime.fromisoformat(start)
        end = begin + dt.timedelta(minutes=minutes)
        if end.date() != begin.date():
            end = dt.datetime.combine(begin.date(), dt.time(23, 59, 59))
        end = min(end, now_local)
        if end <= begin:
            return None
        notes.append(Note("end_estimated", "Encounter[0].period.end",
                          f"เวลาสิ้นสุดประมาณจากเวลาเริ่ม + {minutes} นาที (43 แฟ้มไม่มีเวลาสิ้นสุด)",
                          f"end estimated as start + {minutes} min (the 43 files carry no end time)", "estimate"))
        return _dt(end)
    last = _ts(bundle.get("last_update"))
    if last is None or last <= start or last[:10] != start[:10] or last > now_local.isoformat(timespec="seconds"):
        return None
    notes.append(Note("end_from_last_update", "Encounter[0].period.end",
                      "เวลาสิ้นสุดประมาณจาก D_UPDATE ล่าสุดของการรับบริการ", "end estimated from the visit's latest D_UPDATE",
                      "estimate"))
    return f"{last}{TZ}"


def _encounter_type(typein: str | None, notes: list[Note]) -> list[dict[str, Any]]:
    coding, note = _encounter_type_coding(typein)
    if note is not None:
        notes.append(note)
    return [{"coding": [dict(coding)]}]


@functools.cache
def _encounter_type_coding(typein: str | None) -> tuple[dict[str, str], Note | None]:
    """The type coding of a TYPEIN (copied per payload) and the note when PHR has no code for it: the same
    few values in every encounter, so worked out once per build."""
    row = _index("typein_encounter").get(typein or "")
    if row and row.get("phr_encounter_type"):
        return {"system": PHR_CS + "encounter_type", "code": row["phr_encounter_type"],
                "display": row["phr_encounter_display"]}, None
    coding: dict[str, str] = {"system": SYS_TYPEIN, "code": typein or "9"}
    if row and row.get("name_th"):
        coding["display"] = row["name_th"]
    return coding, Note("typein_unmapped", "Encounter[0].type",
                        f"TYPEIN {typein or 'ว่าง'} ยังไม่มีรหัส encounter_type ของ PHR ส่งรหัส 43 แฟ้มแทน",
                        f"TYPEIN {typein or 'empty'} has no PHR encounter_type yet; the 43-file code is sent",
                        "unknown_code")


def _coverage(instype: str | None, cards: list[dict[str, Any]], ctx: MapContext,
              notes: list[Note]) -> list[dict[str, Any]] | None:
    classes = _coverage_classes(instype)
    if classes is None:
        notes.append(Note("instype_unknown", "Encounter[0].Coverage", f"ไม่รู้จักสิทธิการรักษา INSTYPE {instype or 'ว่าง'}",
                          f"unknown INSTYPE {instype or 'empty'}: no Coverage sent", "unknown_code"))
        return None
    grp, gname, sub_name = classes
    cov: dict[str, Any] = {"class_group": {"value": grp, "name": gname},
                           "class_subgroup": {"value": instype, "name": sub_name}}
    if ctx.policies.card_dates == "card":
        for card in cards:
            if card.get("INSTYPE_NEW") != instype:
                continue
            sdate, edate = card.get("STARTDATE"), card.get("EXPIREDATE")
            if sdate or edate:
                per: dict[str, str] = {}
                if sdate:
                    per["start"] = _date(sdate)
                if edate and (not sdate or _ds(edate) >= _ds(sdate)):  # type: ignore[operator]
                    per["end"] = _date(edate)
                cov["period"] = per
            break
    return [cov]


@functools.cache
def _coverage_classes(instype: str | None) -> tuple[str, str, str] | None:
    """(class_group code, its name, INSTYPE name) of a known INSTYPE, looked up once per build."""
    row = _index("instype").get(instype or "")
    if not row or not row.get("main_group"):
        return None
    grp = row["main_group"]
    gname = _class_group_names().get(grp) or (_index("coverage_main_group").get(grp) or {}).get("name_th") or grp
    return grp, gname, row["name_th"]


# values no living patient can have (the same bounds the shared validator refuses); a typing slip in one
# vital sign must not cost the whole visit its place in PHR
VITAL_BOUNDS: dict[str, tuple[int | float, int | float]] = {
    "body_weight_kg": (0.2, 500), "body_height_cm": (15, 280), "body_temp_cel": (25, 45),
    "bp_systolic_mmhg": (30, 350), "bp_diastolic_mmhg": (10, 250), "body_mass_index": (5, 150),
    "respiratory_rate": (1, 150), "pulse": (10, 350),
}


def _drop_implausible(vs: dict[str, Any], notes: list[Note]) -> None:
    """Policy ``implausible_vitals = "drop"``: leave out impossible values (and a BP whose diastolic is not
    below its systolic) with a note, instead of letting the validator refuse the whole encounter."""
    sbp, dbp = vs.get("bp_systolic_mmhg"), vs.get("bp_diastolic_mmhg")
    if sbp is None or dbp is None or dbp < sbp:
        for k, v in vs.items():
            lo, hi = VITAL_BOUNDS[k]
            if not lo <= v <= hi:
                break
        else:
            return  # the usual case: every value plausible
    for key, (lo, hi) in VITAL_BOUNDS.items():
        v = vs.get(key)
        if v is not None and not lo <= v <= hi:
            del vs[key]
            if key in ("body_weight_kg", "body_height_cm"):
                vs.pop("body_mass_index", None)
            notes.append(Note("vital_dropped", f"Encounter[0].vital_signs.{key}",
                              f"ค่า {key} = {v} เป็นไปไม่ได้ ไม่ส่งค่านี้ (ควรแก้ที่หน่วยบริการ)",
                              f"{key} = {v} is impossible: left out (fix it at the facility)", "missing"))
    sbp, dbp = vs.get("bp_systolic_mmhg"), vs.get("bp_diastolic_mmhg")
    if sbp is not None and dbp is not None and dbp >= sbp:
        del vs["bp_systolic_mmhg"], vs["bp_diastolic_mmhg"]
        notes.append(Note("vital_dropped", "Encounter[0].vital_signs.bp_diastolic_mmhg",
                          f"ความดันตัวล่าง {dbp} ไม่ต่ำกว่าตัวบน {sbp} ไม่ส่งค่าความดัน (ควรแก้ที่หน่วยบริการ)",
                          f"diastolic {dbp} is not below systolic {sbp}: blood pressure left out (fix it at the facility)",
                          "missing"))


def _vitals(bundle: Mapping[str, Any], ctx: MapContext, notes: list[Note]) -> dict[str, Any] | None:
    svc = bundle["service"]
    vs: dict[str, Any] = {}
    weight = height = None
    if bundle["kind"] == "IPD":
        weight, height = svc.get("ADMITWEIGHT"), svc.get("ADMITHEIGHT")
        sbp = dbp = None
    else:
        get = svc.get
        if (v := get("BTEMP")) is not None and v > 0:
            vs["body_temp_cel"] = v
        sbp = dbp = None
        if (v := get("SBP")) is not None and v > 0:
            vs["bp_systolic_mmhg"] = sbp = v
        if (v := get("DBP")) is not None and v > 0:
            vs["bp_diastolic_mmhg"] = dbp = v
        if (v := get("PR")) is not None and v > 0:
            vs["pulse"] = v
        if (v := get("RR")) is not None and v > 0:
            vs["respiratory_rate"] = v
        for fu in bundle.get("chronicfu") or ():
            weight = weight or fu.get("WEIGHT")
            height = height or fu.get("HEIGHT")
            if sbp is None and fu.get("SBP") and fu.get("DBP"):
                sbp, dbp = fu["SBP"], fu["DBP"]
        for sc in bundle.get("ncdscreen") or ():
            weight = weight or sc.get("WEIGHT")
            height = height or sc.get("HEIGHT")
            if sbp is None and sc.get("SBP_1") and sc.get("DBP_1"):
                sbp, dbp = sc["SBP_1"], sc["DBP_1"]
        if sbp is not None and dbp is not None:
            vs["bp_systolic_mmhg"], vs["bp_diastolic_mmhg"] = sbp, dbp
    if weight:
        vs["body_weight_kg"] = weight
    if height:
        vs["body_height_cm"] = height
    if weight and height:
        vs["body_mass_index"] = round(weight / (height / 100) ** 2, 1)
    if ctx.policies.implausible_vitals == "drop":
        _drop_implausible(vs, notes)
    if not vs:
        notes.append(Note("vital_signs_missing", "Encounter[0].vital_signs", "ไม่มีสัญญาณชีพในการรับบริการนี้",
                          "no vital signs recorded for this encounter", "missing"))
        return None
    order = ("body_weight_kg", "body_height_cm", "body_temp_cel", "bp_systolic_mmhg", "bp_diastolic_mmhg",
             "body_mass_index", "respiratory_rate", "pulse")
    return {k: vs[k] for k in order if k in vs}


def _conditions(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        code = r.get("DIAGCODE")
        if not code:
            continue
        c: dict[str, Any] = {
            "clinicalStatus": {"coding": [{"system": SYS_COND_CLINICAL, "code": "active"}]},
            "category": [{"coding": [{"system": SYS_SNOMED, "code": "439401001", "display": "Diagnosis"}]}],
            "code": {"coding": [{"system": SYS_ICD10, "code": icd10_dotted(code)}]},
        }
        if (u := r.get("D_UPDATE")) is not None:
            c["recordedDate"] = _dt(u)
        out.append(c)
    return out


@functools.cache
def _table_concepts() -> dict[str, DrugConcept]:
    """The province's hand-made ``drug_tmt`` table (didstd → tmt_code, tmt_level GP or SUBS) as concepts: the
    manual route beside the code store. A row without a level keeps its old meaning (the code serves both)."""
    out: dict[str, DrugConcept] = {}
    for didstd, r in _index("drug_tmt").items():
        tmt = (r.get("tmt_code") or "").strip()
        if not tmt:
            continue
        level = (r.get("tmt_level") or "").strip().upper() or None
        name = r.get("name") or ""
        gp = (tmt, name) if level in (None, "GP") else None
        subs = ((tmt, name),) if level in (None, "SUBS") else ()
        out[didstd] = DrugConcept(tmt, level, gp, subs, name or None, r.get("source") or "drug_tmt")
    return out


def drug_concept(hcode: str, code: str, ctx: MapContext) -> DrugConcept | None:
    """What a DIDSTD/DRUGALLERGY code means in TMT: the facility's own drug master first, then the province's
    ``drug_tmt`` table (a manual correction wins over an imported catalogue), then the province-wide store rows."""
    dc = ctx.drug_codes
    return dc.by_facility.get((hcode, code)) or _table_concepts().get(code) or dc.by_code.get(code)


@functools.lru_cache(maxsize=1 << 12)
def _drug_note(policy: str, code: str, name: str) -> Note:
    """The note on a medication without a TMT GP (one text for every code: one report row; the code rides in
    ``subject`` to the build summary's unmapped list). Cached: the same few codes in every visit."""
    if policy == "skip":
        return Note("drug_unmapped_skipped", "Encounter[0].Medication", "ยาไม่มีรหัส TMT GP ไม่ส่งรายการยานี้ (นโยบาย unmapped_drug = skip)",
                    "drug has no TMT GP: left out (policy unmapped_drug = skip)", "skipped", ("drug", code, name))
    return Note("drug_unmapped", "Encounter[0].Medication[].code", "ยาไม่มีรหัส TMT GP ส่งด้วยรหัส 24 หลัก/รหัสของหน่วยบริการและชื่อยา",
                "drug has no TMT GP: sent under its 24-digit/local code with its name", "unknown_code",
                ("drug", code, name))


def drug_coding(didstd: str, dname: str | None, concept: DrugConcept | None = None) -> list[dict[str, str]]:
    """The TMT GP (with its FSN) first when the drug is mapped, then the 43-file code."""
    out: list[dict[str, str]] = []
    if concept is not None and concept.gp is not None:
        c = {"system": SYS_TMT, "code": concept.gp[0]}
        if concept.gp[1]:
            c["display"] = concept.gp[1]
        out.append(c)
    local = {"system": SYS_F43 + "DIDSTD", "code": didstd}
    if dname:
        local["display"] = dname
    out.append(local)
    return out


def _medications(rows: Iterable[dict[str, Any]], category: str, hcode: str, ctx: MapContext,
                 notes: list[Note]) -> list[dict[str, Any]]:
    """Medication[] from DRUG_OPD/DRUG_IPD; a drug without a TMT GP follows ``policies.unmapped_drug``
    (local: its own code and name, skip: left out), noted either way."""
    out = []
    policy = ctx.policies.unmapped_drug
    for r in rows:
        didstd = r.get("DIDSTD")
        if not didstd:
            continue
        dname = r.get("DNAME")
        concept = drug_concept(hcode, didstd, ctx)
        if concept is None or concept.gp is None:
            note = _drug_note(policy, didstd, dname or "")
            if note not in notes:
                notes.append(note)
            if policy == "skip":
                continue
        code: dict[str, Any] = {"coding": drug_coding(didstd, dname, concept)}
        if dname:
            code["text"] = dname
        m: dict[str, Any] = {"code": code, "status": "completed", "category": category}
        fin: dict[str, Any] = {}
        if (v := r.get("AMOUNT")) is not None:
            fin["qty"] = v
        if (v := r.get("DRUGPRICE")) is not None:
            fin["unitPrice"] = v
        if fin:
            m["finance"] = fin
        out.append(m)
    return out


def lab_row(hcode: str, test: str, ctx: MapContext) -> dict[str, str] | None:
    """The ``lab_loinc`` row of a LABTEST: the shipped table first (its 7-digit and old 2-digit codes), then the
    code store's mapping of the facility's own code, then its province-wide one (→ a standard code → its row).
    None = unmapped: the lab goes out under its local code only, as before the store existed."""
    labs = _index("lab_loinc")
    row = labs.get(test)
    if row is None and ctx.lab_codes:
        std = ctx.lab_codes.get((hcode, test)) or ctx.lab_codes.get(("", test))
        if std:
            row = labs.get(std)
    return row


def _observations(rows: Iterable[dict[str, Any]], visit_day: str | None, start: str | None,
                  ctx: MapContext, notes: list[Note], hcode: str = "") -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    timed = False
    for i, r in enumerate(rows):
        test = r.get("LABTEST")
        if not test or r.get("LABRESULT") is None:
            notes.append(Note("lab_no_result", f"Encounter[0].Observation[{i}]", f"ผลแล็บ {test or ''} ไม่มีค่า ไม่ส่ง",
                              f"lab {test or ''} has no result: left out", "skipped"))
            continue
        row = lab_row(hcode, test, ctx)
        codings: list[dict[str, str]] = []
        if row and row.get("loinc"):
            codings.append({"system": SYS_LOINC, "code": row["loinc"], "display": row["loinc_display"]})
        local = {"system": SYS_F43 + "LABTEST", "code": test}
        if row and row.get("name_th"):
            local["display"] = row["name_th"]
        codings.append(local)
        if row is None:
            notes.append(Note("lab_unknown", f"Encounter[0].Observation[{len(out)}].code",
                              f"ไม่รู้จักรหัสแล็บ {test} (ไม่มี LOINC)", f"unknown LABTEST {test} (no LOINC)",
                              "unknown_code", ("lab", test, "")))
        q: dict[str, Any] = {"value": r["LABRESULT"]}
        unit = row.get("unit_ucum") if row else None
        if unit:
            q.update({"unit": unit, "system": SYS_UCUM, "code": unit})
        o: dict[str, Any] = {"status": "final", "code": {"coding": codings}, "valueQuantity": q}
        day = _ds(r.get("DATE_SERV")) or visit_day
        if ctx.policies.lab_time == "visit_start" and start is not None and day == start[:10]:
            o["effectiveDateTime"] = f"{start}{TZ}"
            timed = True
        elif day is not None:
            o["effectiveDateTime"] = day
        out.append(o)
    if timed:
        notes.append(_LAB_TIME_NOTE)
    return out


_LAB_TIME_NOTE = Note("lab_time_visit_start", "Encounter[0].Observation[].effectiveDateTime",
                      "LABFU มีแต่วันที่ ใช้เวลาเริ่มรับบริการเป็นเวลาตรวจ",
                      "LABFU has a date only: the visit start time is used", "estimate")


APPOINTMENT_MAX_DAYS = 2 * 366  # an appointment further after its visit is most likely a mistyped year


def _appointments(rows: Iterable[dict[str, Any]], visit_day: str | None, notes: list[Note]) -> list[dict[str, Any]]:
    """Appointments (``booked``). One dated before its visit cannot be a booking made there (a mistyped date or
    an old row): left out with a note; one more than two years ahead is sent with a warning."""
    out = []
    for i, r in enumerate(rows):
        ap = r.get("APDATE")
        if ap is None:
            continue
        day = str(ap)[:10]
        if visit_day is not None and day < visit_day:
            notes.append(Note("appointment_before_visit", f"Encounter[0].Appointment[{i}]",
                              f"วันนัด {_thai_day(day)} อยู่ก่อนวันรับบริการ {_thai_day(visit_day)} ไม่ส่งการนัดนี้",
                              f"appointment date {day} is before the visit ({visit_day}): left out", "missing"))
            continue
        if visit_day is not None and _days_between(visit_day, day) > APPOINTMENT_MAX_DAYS:
            notes.append(Note("appointment_far_ahead", f"Encounter[0].Appointment[{i}]",
                              f"วันนัด {_thai_day(day)} ห่างจากวันรับบริการเกิน 2 ปี (ตรวจปีที่บันทึก) ส่งตามที่บันทึก",
                              f"appointment date {day} is more than 2 years after the visit ({visit_day}): "
                              "sent as recorded (check the year)", "warning"))
        a: dict[str, Any] = {"status": "booked", "start": _date(ap)}
        if r.get("APTYPE"):
            a["serviceType"] = [{"coding": [{"system": SYS_F43 + "APTYPE", "code": r["APTYPE"]}]}]
        if r.get("APDIAG"):
            a["reasonCode"] = [{"coding": [{"system": SYS_ICD10, "code": icd10_dotted(r["APDIAG"])}]}]
        if r.get("D_UPDATE") is not None:
            a["created"] = _dt(r["D_UPDATE"])
        out.append(a)
    return out


def immunization_item(row: Mapping[str, Any], ref: str, hcode: str, ctx: MapContext,
                      register: bool) -> dict[str, Any]:
    """One vaccination (§2.4); ``register`` adds the item's managingOrganization as the spec samples do."""
    vt = row["VACCINETYPE"]
    vac = _index("vaccines").get(vt)
    coding: dict[str, str] = {"system": SYS_VACCINE, "code": vt}
    if vac and vac.get("name_en"):
        coding["display"] = vac["name_en"]
    item: dict[str, Any] = {}
    if register:
        item["managingOrganization"] = organization(hcode, ctx, agent=False)
    item["status"] = "completed"
    item["vaccineCode"] = {"coding": [coding]}
    if vac and vac.get("name_th"):
        item["vaccineCode"]["text"] = vac["name_th"]
    item["encounterRefCode"] = ref
    item["occurrenceDateTime"] = _date(row["DATE_SERV"])
    place = row.get("VACCINEPLACE")
    item["primarySource"] = not place or place == hcode
    if place and place != hcode:
        item["location"] = facility_name(place, ctx) or place
    return item


def _where(q: Mapping[str, Any]) -> tuple[str, str]:
    """(Thai, English) "file, line" of a quarantined row."""
    src, line = q.get("source") or q.get("file") or "", q.get("line")
    return f"{src} บรรทัด {line}", f"{src} line {line}"


def _person_quarantined(bundle: Mapping[str, Any], pid: Any, notes: list[Note]) -> bool:
    """A visit (or register) without its PERSON row because that row was quarantined at import says so, with
    the row's place and reason: "no PERSON row" sends the facility looking for a row it did export."""
    q = bundle.get("person_quarantined")
    if not q:
        return False
    th, en = _where(q)
    notes.append(Note("person_quarantined", "Patient",
                      f"แถว PERSON ของ PID {pid} ถูกกักตอนนำเข้า ({th}: {q.get('reason_th')}) ไม่ส่งรายการนี้",
                      f"the PERSON row of PID {pid} was quarantined at import ({en}: {q.get('reason_en')}): not sent",
                      "skipped"))
    return True


def _held(bundle: Mapping[str, Any], notes: list[Note]) -> bool:
    """A visit whose principal diagnosis (DIAGTYPE 1) was quarantined is held: sent without it, PHR would show
    a secondary diagnosis (or none) as the reason for the visit."""
    held = bundle.get("held") or []
    for q in held:
        th, en = _where(q)
        notes.append(Note("principal_diagnosis_quarantined", "Encounter[0].Condition",
                          f"การวินิจฉัยหลัก (DIAGTYPE 1) ถูกกักตอนนำเข้า ({th}: {q.get('reason_th')}) ยังไม่ส่งการรับบริการนี้"
                          " จนกว่าจะส่งออกใหม่ที่ถูกต้อง",
                          f"the principal diagnosis (DIAGTYPE 1) was quarantined at import ({en}: {q.get('reason_en')}):"
                          " the visit is held until a corrected export", "skipped"))
    return bool(held)


def _cid_mismatch(person: Mapping[str, Any], svc: Mapping[str, Any], kind: str, notes: list[Note]) -> None:
    """PERSON.CID wins (it is the register); a different CID on the visit row is worth a look (a merged or
    re-used PID). Both are shown masked."""
    pc, sc = (person.get("CID") or "").strip(), (svc.get("CID") or "").strip()
    if pc and sc and pc != sc:
        f = "SERVICE" if kind == "OPD" else "ADMISSION"
        notes.append(Note("cid_mismatch", "Patient.identifier",
                          f"เลขประจำตัวประชาชนใน {f} ({mask_cid(sc)}) ไม่ตรงกับ PERSON ({mask_cid(pc)}) ของ PID "
                          f"{svc.get('PID')} ใช้ของ PERSON",
                          f"{f}.CID ({mask_cid(sc)}) differs from PERSON.CID ({mask_cid(pc)}) for PID "
                          f"{svc.get('PID')}: PERSON's is used", "warning"))


def map_encounter(bundle: Mapping[str, Any], ctx: MapContext) -> tuple[dict[str, Any] | None, list[Note]]:
    """One UpdatePHRv1 payload holding exactly one encounter (spec §3.3, recommended mode).

    Returns ``(None, notes)`` when the encounter cannot be sent at all (no valid CID, no PERSON row)."""
    notes: list[Note] = []
    svc = bundle["service"]
    h = bundle["hospcode"]
    person = bundle.get("person")
    if person is None and _person_quarantined(bundle, svc.get("PID"), notes):
        return None, notes
    cid = patient_cid(person, svc.get("CID"))
    if not _check_cid(cid, notes):
        return None, notes
    assert cid is not None
    if person is None:
        notes.append(Note("person_missing", "Patient", f"ไม่มีแถว PERSON ของ PID {svc.get('PID')}",
                          f"no PERSON row for PID {svc.get('PID')}: not sent", "skipped"))
        return None, notes
    if _held(bundle, notes):
        return None, notes
    _cid_mismatch(person, svc, bundle["kind"], notes)
    ipd = bundle["kind"] == "IPD"
    ref = encounter_ref(bundle, ctx)
    start_text, start = _start(bundle, ctx, notes)
    period: dict[str, str] = {"start": start_text}
    end = _end(bundle, start, ctx, notes)
    if end is not None:
        period["end"] = end
    enc: dict[str, Any] = {
        "identifier": [{"use": "official", "system": SYS_HCODE, "value": ref}],
        "status": "finished",
        "class": ({"system": SYS_ACTCODE, "code": "IMP", "display": "inpatient encounter"} if ipd
                  else {"system": SYS_ACTCODE, "code": "AMB", "display": "ambulatory"}),
        "type": _encounter_type(svc.get("TYPEIN"), notes),
        "period": period,
    }
    if not ipd and svc.get("CHIEFCOMP"):
        enc["reason"] = [{"text": svc["CHIEFCOMP"].strip()}]
    cov = _coverage(svc.get("INSTYPE"), bundle.get("cards") or [], ctx, notes)
    if cov is not None:
        enc["Coverage"] = cov
    vs = _vitals(bundle, ctx, notes)
    if vs is not None:
        enc["vital_signs"] = vs
    if svc.get("PRICE") is not None:
        enc["financeTotalAmount"] = svc["PRICE"]
    if svc.get("ACTUALPAY") is not None:
        enc["financePaidAmount"] = svc["ACTUALPAY"]
    visit_day = start[:10] if start is not None else _ds(svc.get("DATE_SERV"))
    enc["Observation"] = _observations(bundle.get("labs") or [], visit_day, start, ctx, notes, h)
    enc["Condition"] = _conditions(bundle.get("diagnoses") or [])
    enc["Medication"] = _medications(bundle.get("drugs") or [], "Inpatient" if ipd else "Outpatient", h, ctx, notes)
    enc["Claim"] = []
    enc["Appointment"] = _appointments(bundle.get("appointments") or [], visit_day, notes)
    enc["Immunization"] = [immunization_item(r, ref, h, ctx, False) for r in bundle.get("epi") or []
                           if r.get("VACCINETYPE") and r.get("DATE_SERV")]
    enc["DiagnosticReport"] = []
    payload = {
        "managingOrganization": organization(h, ctx, notes),
        "Patient": patient(person, bundle.get("addresses") or [], bundle.get("death"), cid, notes),
        "AllergyIntolerance": [],
        "CarePlan": [],
        "Encounter": [enc],
    }
    return payload, notes


# --- person-level registers ------------------------------------------------------------------------

def _register_patient(reg: Mapping[str, Any], rows: list[dict[str, Any]],
                      notes: list[Note]) -> tuple[str, dict[str, Any]] | None:
    person = reg.get("person")
    if person is None and _person_quarantined(reg, reg.get("pid"), notes):
        return None
    cid = patient_cid(person, *(r.get("CID") for r in rows))
    if not _check_cid(cid, notes):
        return None
    assert cid is not None
    if person is None:
        notes.append(Note("person_missing", "Patient", f"ไม่มีแถว PERSON ของ PID {reg.get('pid')}",
                          f"no PERSON row for PID {reg.get('pid')}: not sent", "skipped"))
        return None
    return cid, patient(person, reg.get("addresses") or [], reg.get("death"), cid, notes)


def map_immunization_register(reg: Mapping[str, Any], ctx: MapContext) -> tuple[dict[str, Any] | None, list[Note]]:
    """ImmunizationRegisterv1 (§2.4): the person's WHOLE vaccination list at this facility, because the
    endpoint deletes whatever the new list leaves out."""
    notes: list[Note] = []
    h = reg["hospcode"]
    rows = [r for r in reg.get("rows") or [] if r.get("VACCINETYPE") and r.get("DATE_SERV")]
    got = _register_patient(reg, rows, notes)
    if got is None or not rows:
        return None, notes
    _cid, pt = got
    items = []
    for r in rows:
        if r.get("SEQ"):
            ref = f"{h}:{r['SEQ']}"
        else:
            day = _date(r["DATE_SERV"])
            ref = f"{h}:EPI-{reg['pid']}-{day.replace('-', '')}"
            notes.append(Note("epi_no_visit", "Immunization[].encounterRefCode",
                              f"EPI วันที่ {day} ไม่มี SEQ และไม่พบการรับบริการวันนั้น ใช้รหัสอ้างอิงที่สร้างขึ้น",
                              f"EPI on {day} has no SEQ and no visit that day: a built reference "
                              "is used", "estimate"))
        items.append(immunization_item(r, ref, h, ctx, True))
    return {"managingOrganization": organization(h, ctx, notes), "Patient": pt, "Immunization": items}, notes


def map_chronic_register(reg: Mapping[str, Any], ctx: MapContext) -> tuple[dict[str, Any] | None, list[Note]]:
    """PatientChronicRegisterv1 (§2.3) from CHRONIC; rows whose ICD-10 has no PHR cd_code are left out."""
    notes: list[Note] = []
    h = reg["hospcode"]
    rows = reg.get("rows") or []
    got = _register_patient(reg, rows, notes)
    if got is None:
        return None, notes
    _cid, pt = got
    items = []
    for r in rows:
        icd = r.get("CHRONIC")
        if not icd:
            continue
        grp = _chronic_group(icd)
        cd = grp.get("phr_chronic_disease_code") if grp else None
        if not cd:
            if grp:
                span = f"{grp['icd10_from']}–{grp['icd10_to']}"
                th = f"กลุ่มโรค{grp['name_th']} ({span}) ยังไม่มีรหัส cd_code ของ PHR ไม่ส่งแถวเหล่านี้"
                en = f"chronic group {grp['group']} ({span}) has no PHR cd_code yet: rows left out"
            else:
                th = f"ICD-10 {icd10_dotted(icd)} ไม่อยู่ในกลุ่มโรคเรื้อรังที่รู้จัก ไม่ส่งแถวนี้"
                en = f"ICD-10 {icd10_dotted(icd)} is in no known chronic group: row left out"
            notes.append(Note("chronic_no_cd_code", "ChronicDiseaseRegister[].code", th, en, "skipped"))
            continue
        assert grp is not None
        item: dict[str, Any] = {
            "managingOrganization": organization(h, ctx, agent=False),
            "code": {"coding": [{"system": PHR_CS + "chronic_disease", "code": cd, "display": f"โรค{grp['name_th']}"}]},
        }
        td = r.get("TYPEDISCH")
        td_row = _index("chronic_typedisch").get(td or "")
        if td and td.isdigit() and td_row:
            item["clinicalStatus"] = {"coding": [{"system": PHR_CS + "chronic_disease", "code": str(int(td)),
                                                  "display": td_row["name_th"]}]}
        else:
            notes.append(Note("typedisch_unknown", "ChronicDiseaseRegister[].clinicalStatus",
                              f"ไม่รู้จักสถานะการจำหน่าย TYPEDISCH {td or 'ว่าง'}", f"unknown TYPEDISCH {td or 'empty'}",
                              "unknown_code"))
        item["chronic_ref_code"] = f"{h}:{reg['pid']}:{icd}"
        item["clinicalText"] = f"{grp['name_th']} ({icd10_dotted(icd)})"
        if r.get("DATE_DIAG") is not None:
            item["registerDate"] = _date(r["DATE_DIAG"])
        if td not in (None, "03") and r.get("DATE_DISCH") is not None and (
                r.get("DATE_DIAG") is None or _date(r["DATE_DISCH"]) >= _date(r["DATE_DIAG"])):
            item["dischargeDate"] = _date(r["DATE_DISCH"])
        if r.get("D_UPDATE") is not None:
            item["recordedDate"] = _dt(r["D_UPDATE"])
        items.append(item)
    if not items:
        return None, notes
    return {"managingOrganization": organization(h, ctx, notes), "Patient": pt, "ChronicDiseaseRegister": items}, notes


_VERIFICATION = {"1": ("confirmed", "Confirmed"), "2": ("presumed", "Presumed")}


def _allergy_waiting_note(code: str, name: str) -> Note:
    return Note("allergy_waiting_code", "AllergyIntolerance[].code",
                "ยาที่แพ้ยังไม่มีรหัสสาร TMT (SUBS) รอรหัสยา ยังไม่ส่งรายการแพ้ยาของผู้ป่วยรายนี้",
                "allergy drug has no TMT substance (SUBS) yet: the patient's allergy list waits for a drug code",
                "waiting", ("allergy", code, name))


def map_allergy(reg: Mapping[str, Any], ctx: MapContext) -> tuple[dict[str, Any] | None, list[Note]]:
    """AllergyIntolerancev1 (§2.2) from DRUGALLERGY, each drug under its TMT substances (SUBS).

    When any item's drug has no SUBS yet, the WHOLE payload is held (``None`` with a ``waiting`` note per code):
    PHR's replace/append semantics for this endpoint are undocumented, and a patient's allergy list that is sent
    with an item missing reads as complete to whoever sees it. Once the code is mapped the next build makes it."""
    notes: list[Note] = []
    h = reg["hospcode"]
    rows = [r for r in reg.get("rows") or [] if r.get("DRUGALLERGY")]
    got = _register_patient(reg, rows, notes)
    if got is None or not rows:
        return None, notes
    _cid, pt = got
    items = []
    waiting: list[Note] = []
    for r in rows:
        code, display = _VERIFICATION.get(r.get("TYPEDX") or "", ("unconfirmed", "Unconfirmed"))
        coding: list[dict[str, str]] = []
        drug = drug_concept(h, r["DRUGALLERGY"], ctx)
        if drug is None or not drug.substances:
            note = _allergy_waiting_note(r["DRUGALLERGY"], r.get("DNAME") or "")
            if note not in waiting:
                waiting.append(note)
            continue
        for subs_id, fsn in drug.substances:
            c = {"system": PHR_CS + "tmt_substance", "code": subs_id}
            if fsn:
                c["display"] = fsn
            coding.append(c)
        local = {"system": SYS_F43 + "DIDSTD", "code": r["DRUGALLERGY"]}
        if r.get("DNAME"):
            local["display"] = r["DNAME"]
        coding.append(local)
        concept: dict[str, Any] = {"coding": coding}
        if r.get("DNAME"):
            concept["text"] = r["DNAME"]
        item: dict[str, Any] = {
            "managingOrganization": organization(h, ctx, agent=False),
            "clinicalStatus": {"coding": [{"system": SYS_ALLERGY_CLINICAL, "code": "active", "display": "Active"}]},
            "verificationStatus": {"coding": [{"system": SYS_ALLERGY_VERIF, "code": code, "display": display}]},
            "type": "allergy",
            "category": ["medication"],
        }
        level = r.get("ALEVEL")
        if level:
            item["criticality"] = "low" if level == "1" else "high"
        item["code"] = concept
        sev = _index("drugallergy_codes").get(f"ALEVEL:{level}") if level else None
        if sev and sev.get("phr_codingsystem") and sev.get("phr_code"):
            item["seriousness"] = {"coding": [{"system": PHR_CS + sev["phr_codingsystem"], "code": sev["phr_code"],
                                               "display": sev["name_th"].split(" (")[0]}]}
        if r.get("DATERECORD") is not None:
            item["recordedDate"] = _date(r["DATERECORD"])
        items.append(item)
    if waiting:
        return None, notes + waiting
    return {"managingOrganization": organization(h, ctx, notes), "Patient": pt, "AllergyIntolerance": items}, notes


def map_org_summary(month: Mapping[str, Any], ctx: MapContext) -> tuple[dict[str, Any], list[Note]]:
    """OrgEncounterSummary (§2.9): one calendar month of daily counts for one facility."""
    notes: list[Note] = []
    days = [{"period_start": _date(d["date"]), "opd_encounter_count": int(d["opd"]),
             "ipd_encounter_count": int(d["ipd"]), "ipd_discharge_count": int(d["disch"])}
            for d in month["days"]]
    return {"managingOrganization": organization(month["hospcode"], ctx, notes), "EncounterSummary": days}, notes


# --- outbox keys ----------------------------------------------------------------------------------

def key_for(endpoint: str, payload: Mapping[str, Any]) -> str:
    """The stable outbox key of a payload: a re-built payload for the same thing gets the same key.

    UpdatePHRv1: endpoint + encounter ref; registers: endpoint + HCODE + a digest of the CID (a key may
    be shown and logged, a CID may not); OrgEncounterSummary: endpoint + HCODE + month."""
    hcode = payload["managingOrganization"]["identifier"]["value"]
    if endpoint == EP_ENCOUNTER:
        return f"{endpoint}|{payload['Encounter'][0]['identifier'][0]['value']}"
    if endpoint == EP_SUMMARY:
        return f"{endpoint}|{hcode}|{payload['EncounterSummary'][0]['period_start'][:7]}"
    cid = payload["Patient"]["identifier"][0]["value"]
    return f"{endpoint}|{hcode}|{cid_digest(cid)}"
