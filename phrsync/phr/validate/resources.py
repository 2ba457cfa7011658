"""Checks of the PHR resources and of the blocks they share (§2.0–§3.2): the sending organization, the
patient and their identifiers, names, telecoms, addresses, references, each part of an encounter (vital
signs, observations, conditions, medications, appointments, immunizations, coverage) and allergies.

Each check takes the run's ``_Ctx``, the object and its path, records every problem, and returns what later
checks compare against (the sender's HCODE, the patient's CID). The bodies of the endpoints that use them
are read in :mod:`.endpoints`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from phrsync.phr.systems import (
    PHR_CS,
    SYS_ACTCODE,
    SYS_ALLERGY_CLINICAL,
    SYS_ALLERGY_VERIF,
    SYS_CID,
    SYS_COND_CLINICAL,
    SYS_COND_VERIF,
    SYS_HCODE,
    SYS_ICD10,
    SYS_LOINC,
    SYS_MARITAL,
    SYS_SNOMED,
    SYS_TMT,
    SYS_VACCINE,
)

from .primitives import (
    _BKK,
    _HCODE_RE,
    _arr,
    _bool,
    _cid,
    _coding,
    _codings,
    _concept,
    _Ctx,
    _date,
    _datetime,
    _enum,
    _hcode,
    _icd10_code,
    _int,
    _loinc_code,
    _nonneg,
    _Num,
    _num,
    _obj,
    _objs,
    _opt_strs,
    _order,
    _Path,
    _period,
    _quantity,
    _short,
    _str,
    _strs,
    _vaccine_codes,
)

# --- value sets ---------------------------------------------------------------------------------------
_GENDER = frozenset({"male", "female"})  # spec §3.1: "male or female only"
_NAME_USE = frozenset({"usual", "official", "temp", "nickname", "anonymous", "old", "maiden"})
_TELECOM_SYSTEM = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})
_TELECOM_USE = frozenset({"home", "work", "temp", "old", "mobile"})
_IDENT_USE = frozenset({"usual", "official", "temp", "secondary", "old"})
_ENCOUNTER_STATUS = frozenset({"planned", "arrived", "triaged", "in-progress", "onleave", "finished",
                               "cancelled", "entered-in-error", "unknown"})
_ENCOUNTER_CLASS = frozenset({"AMB", "IMP", "EMER", "HH", "VR", "FLD", "ACUTE", "NONAC", "OBSENC", "PRENC",
                              "SS"})
_MARITAL = frozenset({"A", "D", "I", "L", "M", "P", "S", "T", "U", "W", "UNK"})
_OBS_STATUS = frozenset({"registered", "preliminary", "final", "amended", "corrected", "cancelled",
                         "entered-in-error", "unknown"})
_COND_CLINICAL = frozenset({"active", "recurrence", "relapse", "inactive", "remission", "resolved"})
_COND_VERIF = frozenset({"unconfirmed", "provisional", "differential", "confirmed", "refuted",
                         "entered-in-error"})
_MED_STATUS = frozenset({"active", "completed", "entered-in-error", "intended", "stopped", "on-hold",
                         "unknown", "not-taken"})
_APPT_STATUS = frozenset({"proposed", "pending", "booked", "arrived", "fulfilled", "cancelled", "noshow",
                          "entered-in-error", "checked-in", "waitlist"})
_IMM_STATUS = frozenset({"completed", "entered-in-error", "not-done"})
_ALLERGY_CLINICAL = frozenset({"active", "inactive", "resolved"})
_ALLERGY_VERIF = frozenset({"unconfirmed", "presumed", "confirmed", "refuted", "entered-in-error"})
_ALLERGY_TYPE = frozenset({"allergy", "intolerance"})
_ALLERGY_CATEGORY = frozenset({"food", "medication", "environment", "biologic"})
_ALLERGY_CRIT = frozenset({"low", "high", "unable-to-assess"})


# --- code systems (spec §6) ---------------------------------------------------------------------------
_VACCINE_SYSTEMS = frozenset({SYS_VACCINE, PHR_CS + "vaccine_code"})
_ICD10_SYSTEMS = frozenset({SYS_ICD10})
_TMT_SYSTEMS = frozenset({SYS_TMT})


# single-system / single-value sets, built once
_ONE_ORGANIZATION = frozenset({"Organization"})
_ONE_OFFICIAL = frozenset({"official"})
_ONE_MARITAL = frozenset({SYS_MARITAL})
_ONE_PHR_NATIONALITY = frozenset({PHR_CS + "nationality"})
_ONE_COND_CLINICAL = frozenset({SYS_COND_CLINICAL})
_ONE_COND_VERIF = frozenset({SYS_COND_VERIF})
_ONE_PHR_ENCOUNTER_TYPE = frozenset({PHR_CS + "encounter_type"})
_ONE_ALLERGY_CLINICAL = frozenset({SYS_ALLERGY_CLINICAL})
_ONE_ALLERGY_VERIF = frozenset({SYS_ALLERGY_VERIF})
_ONE_PHR_TMT_SUBSTANCE = frozenset({PHR_CS + "tmt_substance"})
_ONE_SNOMED = frozenset({SYS_SNOMED})


# formats of references
_PRACT_RE = re.compile(r"Practitioner/\S+")
_WS_RE = re.compile(r"\s")


# --- shared blocks ------------------------------------------------------------------------------------

def _organization(c: _Ctx, o: dict, p: _Path, k: str, req: bool, sender: bool = False,
                  agent: bool = False) -> str | None:
    """A managingOrganization block (§2.0); returns its valid HCODE."""
    org = o.get(k)
    if type(org) is dict:
        # fast path: the usual block (every field as the spec shows it, the sender's HCODE) has nothing
        # to report; anything else goes through the checks below, which name the problem
        ident = org.get("identifier")
        if type(ident) is dict:
            hcode = ident.get("value")
            display = org.get("display")
            ag = org.get("agent")
            scope = org.get("scope")
            if (org.get("type") == "Organization" and ident.get("use") == "official"
                    and ident.get("system") == SYS_HCODE and type(hcode) is str
                    and (hcode == c.hcode or _HCODE_RE.fullmatch(hcode))
                    and type(display) is str and display.strip()
                    and ((ag is None and not agent) or (type(ag) is str and ag.strip()))
                    and (scope is None or type(scope) is str) and (sender or c.hcode is None or hcode == c.hcode)):
                if sender:
                    c.hcode = hcode
                return hcode
    org = _obj(c, o, p, k, req)
    if org is None:
        return None
    path = (p, k)
    _enum(c, org, path, "type", _ONE_ORGANIZATION, True)
    hcode = None
    ident = org.get("identifier")
    if type(ident) is list and len(ident) == 1 and type(ident[0]) is dict:
        c.add((path, "identifier"), "shape_variant", "identifier ควรเป็นออบเจ็กต์เดียว",
              "identifier should be a single object")
        ident = ident[0]
        ipath = (path, "identifier[0]")
    else:
        ident = _obj(c, org, path, "identifier", True)
        ipath = (path, "identifier")
    if ident is not None:
        _enum(c, ident, ipath, "use", _ONE_OFFICIAL, True)
        system = _str(c, ident, ipath, "system", True)
        if system is not None and system != SYS_HCODE:
            c.add((ipath, "system"), "identifier_system", f"ต้องเป็น {SYS_HCODE} ได้ '{_short(system)}'",
                  f"must be {SYS_HCODE}, got '{_short(system)}'")
        value = _str(c, ident, ipath, "value", True)
        if value is not None and _hcode(c, (ipath, "value"), value):
            hcode = value
    _str(c, org, path, "display", True)
    if agent:
        if org.get("agent") is None:
            c.add((path, "agent"), "recommended", "ควรระบุชื่อและรุ่นของโปรแกรมที่ส่ง",
                  "name and version of the sending software")
        else:
            _str(c, org, path, "agent")
    elif "agent" in org:
        _str(c, org, path, "agent")
    if "scope" in org and org["scope"] is not None and type(org["scope"]) is not str:
        c.bad_type((path, "scope"), "string", org["scope"])
    if sender:
        c.hcode = hcode
    elif hcode is not None and c.hcode is not None and hcode != c.hcode:
        c.add((ipath, "value"), "org_mismatch", f"{hcode} ≠ ผู้ส่ง {c.hcode}", f"{hcode} ≠ sender {c.hcode}")
    return hcode


def _item_org(c: _Ctx, item: dict, p: _Path, expected: bool) -> None:
    if item.get("managingOrganization") is None:
        if expected:
            c.add((p, "managingOrganization"), "recommended", "ตัวอย่างในสเปกใส่สถานพยาบาลในทุกรายการ",
                  "the spec samples repeat the facility in every item")
        return
    _organization(c, item, p, "managingOrganization", False)


def _identifiers(c: _Ctx, o: dict, p: _Path, need_cid: bool) -> str | None:
    """Patient/CareGiver identifier[]: the CID entry is required (§3.1); returns the valid CID."""
    found = False
    cid = None
    for ip, ident in _objs(c, o, p, "identifier", True, True):
        system = ident.get("system")
        typ = ident.get("type")
        if "use" in ident:
            _enum(c, ident, ip, "use", _IDENT_USE)
        if system == SYS_CID or typ == "CID":
            found = True
            if system != SYS_CID:
                s = _str(c, ident, ip, "system", True)
                if s is not None:
                    c.add((ip, "system"), "identifier_system", f"CID ต้องใช้ {SYS_CID}",
                          f"a CID uses {SYS_CID}")
            if typ is not None and typ != "CID":
                c.add((ip, "type"), "enum", "identifier ระบบ dopa ต้องมี type 'CID'",
                      "a dopa identifier has type 'CID'")
            value = _cid(c, (ip, "value"), ident.get("value"))
            if value is not None:
                if cid is not None and cid != value:
                    c.add((ip, "value"), "duplicate_key", "มีเลขประจำตัวประชาชนมากกว่า 1 เลข",
                          "more than one different CID")
                cid = value
        else:
            _other_identifier(c, ident, ip, False)
    if need_cid and not found and type(o.get("identifier")) is list:
        c.add((p, "identifier"), "cid_missing", f"ต้องมี identifier ระบบ {SYS_CID} type CID",
              f"needs an identifier with system {SYS_CID} and type CID")
    return cid


def _other_identifier(c: _Ctx, ident: dict, ip: _Path, check_use: bool = True) -> None:
    """An identifier that is not the CID or the visit key (HN, local IDs): shape only."""
    _str(c, ident, ip, "system", True)
    _str(c, ident, ip, "value", True)
    if check_use and "use" in ident:
        _enum(c, ident, ip, "use", _IDENT_USE)
    typ = ident.get("type")
    if type(typ) is dict:
        c.add((ip, "type"), "shape_variant", "CodeableConcept (สเปกใช้ข้อความ เช่น 'HN')",
              "a CodeableConcept (the spec uses a string such as 'HN')")
    elif typ is not None:
        _str(c, ident, ip, "type")
    if "assigner" in ident:
        _assigner(c, ident, ip)
    if "period" in ident:
        _period(c, ident, ip, "period", False)


def _assigner(c: _Ctx, ident: dict, ip: _Path) -> None:
    a = _obj(c, ident, ip, "assigner")
    if a is None:
        return
    ap = (ip, "assigner")
    sub = a.get("identifier")
    if type(sub) is dict:
        s = _str(c, sub, (ap, "identifier"), "system")
        if s is not None and s != SYS_HCODE:
            c.add((ap, "identifier.system"), "identifier_system", f"ต้องเป็น {SYS_HCODE}", f"must be {SYS_HCODE}")
        v = _str(c, sub, (ap, "identifier"), "value")
        if v is not None:
            _hcode(c, (ap, "identifier.value"), v)
    elif sub is not None:
        c.bad_type((ap, "identifier"), "object", sub)
    if "display" in a:
        _str(c, a, ap, "display")


def _human_name(c: _Ctx, n: dict, path: _Path) -> None:
    if "use" in n:
        _enum(c, n, path, "use", _NAME_USE)
    lang = n.get("languageCode")
    if lang is not None and lang not in ("TH", "EN"):
        lang = _str(c, n, path, "languageCode")
        if lang is not None and lang.upper() not in ("TH", "EN"):
            c.add((path, "languageCode"), "code_unusual", f"'{_short(lang)}' (ใช้ TH หรือ EN)",
                  f"'{_short(lang)}' (use TH or EN)")
    _opt_strs(c, n, path, ("text", "family"))
    text = n.get("text")
    family = n.get("family")
    given = _strs(c, n, path, "given")
    if "prefix" in n:
        _strs(c, n, path, "prefix")
    if "suffix" in n:
        _strs(c, n, path, "suffix")
    if text is None and family is None and not given and "text" not in n and "family" not in n \
            and "given" not in n:
        c.add((path, "text"), "required", "ชื่อต้องมี text, given หรือ family",
              "a name needs text, given or family")
    if "period" in n:
        _period(c, n, path, "period", False)


def _patient(c: _Ctx, o: dict) -> str | None:
    pt = _obj(c, o, "", "Patient", True)
    if pt is None:
        return None
    p = "Patient"
    bd = _date(c, pt, p, "birthDate", True, birth_check=False)
    c.set_birth(bd)
    cid = _identifiers(c, pt, p, True)
    for np, n in _objs(c, pt, p, "name", True, True):
        _human_name(c, n, np)
    _enum(c, pt, p, "gender", _GENDER, True)
    _bool(c, pt, p, "active")
    _bool(c, pt, p, "deceasedBoolean")
    if "deceasedDateTime" in pt:
        _datetime(c, pt, p, "deceasedDateTime", date_ok=True)
    if "telecom" in pt:
        for tp, t in _objs(c, pt, p, "telecom"):
            _telecom(c, t, tp)
    if "maritalStatus" in pt:
        _concept(c, pt, p, "maritalStatus", systems=_ONE_MARITAL, codes=_MARITAL, text_ok=True)
    for ap, a in _objs(c, pt, p, "address"):
        _address(c, a, ap)
    if "nationality" in pt:
        cods = _concept(c, pt, p, "nationality", systems=_ONE_PHR_NATIONALITY, text_ok=True)
        for i, (s, code) in enumerate(cods or ()):
            if s == PHR_CS + "nationality" and code is not None and not (len(code) == 3 and code.isascii() and code.isdigit()):
                c.add(f"Patient.nationality.coding[{i}].code", "code_unusual", f"'{_short(code)}' (รหัส 3 หลัก เช่น 099)",
                      f"'{_short(code)}' (3 digits, e.g. 099)")
    if "contact" in pt:
        for cp, ct in _objs(c, pt, p, "contact"):
            _contact(c, ct, cp)
    return cid


def _telecom(c: _Ctx, t: dict, tp: _Path) -> None:
    _enum(c, t, tp, "system", _TELECOM_SYSTEM)
    _str(c, t, tp, "value", True)
    _enum(c, t, tp, "use", _TELECOM_USE)
    if "rank" in t:
        _nonneg(c, t, tp, "rank", positive=True, integer=True)
    if "period" in t:
        _period(c, t, tp, "period", False)


def _address(c: _Ctx, a: dict, ap: _Path) -> None:
    _opt_strs(c, a, ap, ("use", "type", "text", "city", "district", "state", "postalCode", "country"))
    if "line" in a:
        _strs(c, a, ap, "line")
    if "period" in a:
        _period(c, a, ap, "period", False)
    code = a.get("address_code")
    if code is None:
        return
    if type(code) is int:
        c.add((ap, "address_code"), "shape_variant", "ส่งเป็นตัวเลข ควรเป็นข้อความ 6 หลัก",
              "sent as a number; a 6-digit string is preferred")
        code = f"{code:06d}"
    elif type(code) is not str:
        c.bad_type((ap, "address_code"), "string", code)
        return
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        c.add((ap, "address_code"), "code_unusual", f"'{_short(code)}' (รหัสตำบล 6 หลัก)",
              f"'{_short(code)}' (6-digit tambon code)")


def _contact(c: _Ctx, ct: dict, cp: _Path) -> None:
    for rp, r in _objs(c, ct, cp, "relationship"):
        if "coding" in r:
            _codings(c, r, rp)
        if "text" in r:
            _str(c, r, rp, "text")
    name = ct.get("name")
    if type(name) is dict:
        _human_name(c, name, (cp, "name"))
    else:
        for np, n in _objs(c, ct, cp, "name"):
            _human_name(c, n, np)
    for tp, t in _objs(c, ct, cp, "telecom"):
        _telecom(c, t, tp)
    for ap, a in _objs(c, ct, cp, "address"):
        _address(c, a, ap)
    if "gender" in ct:
        _enum(c, ct, cp, "gender", _GENDER)


def _ref_code(c: _Ctx, path: _Path, v: str) -> str:
    """An encounter reference (§7.3): 'HCODE:VN'; returns the value as the server will store it."""
    if _WS_RE.search(v):
        c.add(path, "encounter_ref_format", "ห้ามมีช่องว่าง", "must not contain spaces")
    head, sep, tail = v.partition(":")
    if sep and (head == c.hcode or _HCODE_RE.fullmatch(head)):
        if not tail:
            c.add(path, "encounter_ref_format", "ไม่มีรหัสการรับบริการหลัง ':'", "no visit reference after ':'")
        elif c.hcode is not None and head != c.hcode:
            c.add(path, "encounter_ref_hcode", f"{head} ≠ ผู้ส่ง {c.hcode}", f"{head} ≠ sender {c.hcode}")
        return v
    if c.hcode is not None:
        c.add(path, "encounter_ref_prefix", f"จะเก็บเป็น '{c.hcode}:{_short(v)}'",
              f"stored as '{c.hcode}:{_short(v)}'")
        return f"{c.hcode}:{v}"
    return v


def _ref_field(c: _Ctx, o: dict, p: _Path, k: str, req: bool, unique_in: dict[str, _Path] | None) -> str | None:
    v = _str(c, o, p, k, req)
    if v is None:
        return None
    stored = _ref_code(c, (p, k), v)
    if unique_in is not None:
        first = unique_in.get(stored)
        if first is not None:
            c.duplicate((p, k), first)
        else:
            unique_in[stored] = (p, k)
    return stored


def _practitioner(c: _Ctx, o: dict, p: _Path, k: str, req: bool = False, ref_req: bool = False) -> None:
    r = _obj(c, o, p, k, req)
    if r is None:
        return
    path = (p, k)
    ref = _str(c, r, path, "reference", ref_req)
    if ref is not None and _PRACT_RE.fullmatch(ref) is None:
        c.add((path, "reference"), "reference_format", f"ได้ '{_short(ref)}'", f"got '{_short(ref)}'")
    _str(c, r, path, "display", ref_req)
    for key in ("identifier", "providerToken"):
        if key in r:
            _str(c, r, path, key)


def _notes(c: _Ctx, o: dict, p: _Path, k: str = "note") -> None:
    v = o.get(k)
    if v is None:
        return
    if type(v) is str:
        c.add((p, k), "shape_variant", "ข้อความเดียว (ควรเป็น {text})", "a plain string ({text} is preferred)")
        _str(c, o, p, k)
    elif type(v) is dict:
        _str(c, v, (p, k), "text", True)
    else:
        for np, n in _objs(c, o, p, k):
            _str(c, n, np, "text", True)


# --- UpdatePHRv1: Encounter and its parts (§3.2) ------------------------------------------------------
_ENCOUNTER_KEYS = frozenset({
    "identifier", "managingOrganization", "status", "class", "type", "priority", "subclass", "division",
    "period", "subject", "participant", "reason", "screen_allergy", "screen_smoking", "screen_drinking",
    "financeTotalAmount", "financeReimbursementAmount", "financePaidAmount", "Coverage", "vital_signs",
    "Observation", "Condition", "Medication", "Claim", "Appointment", "Immunization", "DiagnosticReport",
    "serviceProvider", "hospitalization", "location", "length", "text", "id", "resourceType",
})
# flat name → (min possible, max possible, min usual, max usual, Thai name)
_VITALS: dict[str, tuple[_Num, _Num, _Num, _Num, str]] = {
    "body_weight_kg": (0.2, 500, 1.0, 250, "น้ำหนัก (กก.)"),
    "body_height_cm": (15, 280, 40, 220, "ส่วนสูง (ซม.)"),
    "body_temp_cel": (25, 45, 34, 41, "อุณหภูมิ (°C)"),
    "bp_systolic_mmhg": (30, 350, 70, 250, "ความดันตัวบน (มม.ปรอท)"),
    "bp_diastolic_mmhg": (10, 250, 35, 150, "ความดันตัวล่าง (มม.ปรอท)"),
    "body_mass_index": (5, 150, 12, 60, "ดัชนีมวลกาย"),
    "respiratory_rate": (1, 150, 8, 70, "อัตราการหายใจ (/นาที)"),
    "pulse": (10, 350, 35, 200, "ชีพจร (/นาที)"),
}
_VITAL_ARRAY_NAMES = {"body_weight": "body_weight_kg", "body_height": "body_height_cm",
                      "body_temp": "body_temp_cel", "bp_systolic": "bp_systolic_mmhg",
                      "bp_diastolic": "bp_diastolic_mmhg", "body_mass_index": "body_mass_index",
                      "bmi": "body_mass_index", "respiratory_rate": "respiratory_rate", "pulse": "pulse"}


def _vital(c: _Ctx, path: _Path, name: str, v: _Num) -> bool:
    """Range check of one vital sign; False when the value is impossible (so it is not cross-checked)."""
    lo, hi, ulo, uhi, th = _VITALS[name]
    if v < lo or v > hi:
        c.add(path, "vital_range", f"{th} = {v} (ช่วงที่เป็นไปได้ {lo}–{hi})", f"{name} = {v} (possible {lo}–{hi})")
        return False
    if v < ulo or v > uhi:
        c.add(path, "vital_unusual", f"{th} = {v}", f"{name} = {v}")
    return True


def _vital_signs(c: _Ctx, enc: dict, ep: _Path) -> None:
    vs = enc.get("vital_signs")
    if vs is None:
        return
    path = (ep, "vital_signs")
    values: dict[str, tuple[_Path, str, _Num]] = {}  # name -> (parent path, key path, value)
    if type(vs) is dict:
        if not vs:
            c.add(path, "empty_value", "ไม่มีค่าใดเลย (ไม่ต้องส่ง)", "no values (leave it out)")
        for key, v in vs.items():
            bounds = _VITALS.get(key)
            if bounds is not None and (type(v) is int or type(v) is float) and bounds[2] <= v <= bounds[3]:
                values[key] = (path, key, v)  # usual range: nothing to say
                continue
            if bounds is None:
                c.add((path, str(key)), "unknown_key", key, key)
                continue
            num = _num(c, vs, path, key)
            if num is not None and _vital(c, (path, key), key, num):
                values[key] = (path, key, num)
    elif type(vs) is list:
        c.add(path, "shape_variant", "แบบอาร์เรย์ (ควรเป็นออบเจ็กต์แบน)", "array form (the flat object is preferred)")
        for ip, item in _objs(c, enc, ep, "vital_signs"):
            for key, v in item.items():
                name = _VITAL_ARRAY_NAMES.get(key)
                if name is None:
                    c.add((ip, str(key)), "unknown_key", key, key)
                    continue
                if type(v) is not dict:
                    c.bad_type((ip, key), "object", v)
                    continue
                num = _quantity(c, v, (ip, key), "valueQuantity", True)
                if "status" in v:
                    _str(c, v, (ip, key), "status")
                interp = v.get("interpretation")
                if type(interp) is dict:
                    _concept(c, v, (ip, key), "interpretation", text_ok=True)
                elif interp is not None:
                    _str(c, v, (ip, key), "interpretation")
                qpath = (ip, f"{key}.valueQuantity.value")
                if num is not None and _vital(c, qpath, name, num):
                    values[name] = (ip, f"{key}.valueQuantity.value", num)
    else:
        c.bad_type(path, "object", vs)
        return
    sys_ = values.get("bp_systolic_mmhg")
    dia = values.get("bp_diastolic_mmhg")
    if sys_ and dia and dia[2] >= sys_[2]:
        c.add((dia[0], dia[1]), "bp_order", f"{dia[2]} ≥ {sys_[2]}", f"{dia[2]} ≥ {sys_[2]}")
    w = values.get("body_weight_kg")
    h = values.get("body_height_cm")
    bmi = values.get("body_mass_index")
    if w and h and bmi:
        calc = w[2] / (h[2] / 100) ** 2
        if abs(calc - bmi[2]) > max(1.0, 0.05 * bmi[2]):
            c.add((bmi[0], bmi[1]), "bmi_mismatch", f"{bmi[2]} แต่คำนวณได้ {calc:.1f}",
                  f"{bmi[2]} but computed {calc:.1f}")


# result forms of an Observation besides valueQuantity, in the order they are checked
_OBS_OTHER_VALUES: tuple[str, ...] = ("valueString", "valueCodeableConcept", "valueBoolean", "valueInteger",
                                      "dataAbsentReason")


def _observation(c: _Ctx, o: dict, p: _Path) -> None:
    cods = _concept(c, o, p, "code", True)
    if cods:
        loinc = False
        for i, (s, code) in enumerate(cods):
            if s == SYS_LOINC:
                loinc = True
                if code is not None:
                    _loinc_code(c, (((p, "code.coding"), i), "code"), code)
        if not loinc and any(s is not None for s, _ in cods):
            c.add((p, "code.coding"), "coding_system_local", "ไม่มีรหัส LOINC (จะไม่แสดงในสรุปผลแล็บ)",
                  "no LOINC code (not mapped to PHR lab summary)")
    if "status" in o:
        _enum(c, o, p, "status", _OBS_STATUS)
    has_value = False
    if "valueQuantity" in o:
        has_value = _quantity(c, o, p, "valueQuantity", False) is not None or has_value
        q = o.get("valueQuantity")
        if type(q) is dict and q.get("value") is not None and q.get("unit") is None and q.get("code") is None:
            c.add((p, "valueQuantity.unit"), "recommended", "ควรระบุหน่วย", "a unit is expected")
    if not o.keys().isdisjoint(_OBS_OTHER_VALUES):  # usually only valueQuantity is sent
        for key in _OBS_OTHER_VALUES:
            if key in o and o[key] is not None:
                has_value = True
                if key == "valueString":
                    _str(c, o, p, key)
                elif key == "valueBoolean":
                    _bool(c, o, p, key)
                elif key == "valueInteger":
                    _int(c, o, p, key)
                else:
                    _obj(c, o, p, key)
    if not has_value and o.get("valueQuantity") is None:
        c.add((p, "valueQuantity"), "required", "ต้องมีผลตรวจ (valueQuantity หรือ valueString)",
              "a result is required (valueQuantity or valueString)")
    eff = _datetime(c, o, p, "effectiveDateTime") if "effectiveDateTime" in o else None
    issued = _datetime(c, o, p, "issued") if "issued" in o else None
    if eff is None and issued is None and o.get("effectiveDateTime") is None and o.get("issued") is None:
        c.add((p, "effectiveDateTime"), "recommended", "ควรระบุเวลาที่ตรวจ", "the time of the test is expected")
    for key in ("category", "interpretation"):
        v = o.get(key)
        if type(v) is dict:
            c.add((p, key), "shape_variant", "ออบเจ็กต์เดียว (ควรเป็นอาร์เรย์)", "single object (an array is preferred)")
            _concept(c, o, p, key, text_ok=True)
        elif v is not None:
            for cp, cc in _objs(c, o, p, key):
                if "coding" in cc or "text" not in cc:
                    _codings(c, cc, cp)
    if "referenceRange" in o:
        for rp, rr in _objs(c, o, p, "referenceRange"):
            for key in ("low", "high"):
                if key in rr:
                    _quantity(c, rr, rp, key)
            if "text" in rr:
                _str(c, rr, rp, "text")
    _notes(c, o, p)
    if "specimen" in o:
        _obj(c, o, p, "specimen")


def _condition(c: _Ctx, o: dict, p: _Path) -> None:
    code_obj = o.get("code")
    cods = _concept(c, o, p, "code", True, _ICD10_SYSTEMS, True, text_ok=True)
    if cods is not None and not cods and type(code_obj) is dict and "coding" not in code_obj:
        c.add((p, "code.coding"), "coding_system_local", "มีแต่ข้อความ ไม่มีรหัส ICD-10",
              "text only, no ICD-10 code")
    elif cods:
        for i, (s, code) in enumerate(cods):
            if s == SYS_ICD10 and code is not None:
                _icd10_code(c, (((p, "code.coding"), i), "code"), code)
    if "clinicalStatus" in o:
        _concept(c, o, p, "clinicalStatus", systems=_ONE_COND_CLINICAL, strict=True, codes=_COND_CLINICAL)
    if "verificationStatus" in o:
        _concept(c, o, p, "verificationStatus", systems=_ONE_COND_VERIF, strict=True, codes=_COND_VERIF)
    for cp, cat in _objs(c, o, p, "category"):
        _codings(c, cat, cp, False)
    if "severity" in o:
        _concept(c, o, p, "severity")
    if "bodySite" in o:
        for bp, b in _objs(c, o, p, "bodySite"):
            _codings(c, b, bp, False)
    if "recordedDate" in o:
        _datetime(c, o, p, "recordedDate", date_ok=True)
    if "onsetDateTime" in o:
        _datetime(c, o, p, "onsetDateTime", date_ok=True)


def _medication(c: _Ctx, o: dict, p: _Path) -> None:
    cods = _concept(c, o, p, "code", True, _TMT_SYSTEMS)
    for i, (s, code) in enumerate(cods or ()):
        if s == SYS_TMT and code is not None and not (code.isascii() and code.isdigit()):
            c.add((((p, "code.coding"), i), "code"), "code_unusual", f"รหัส TMT เป็นตัวเลข ได้ '{_short(code)}'",
                  f"TMT codes are numeric, got '{_short(code)}'")
    if "status" in o:
        _enum(c, o, p, "status", _MED_STATUS)
    cat = o.get("category")
    if type(cat) is str:
        if not cat or cat.isspace():
            _str(c, o, p, "category")
    elif type(cat) is dict:
        _concept(c, o, p, "category", text_ok=True)
    elif cat is not None:
        c.bad_type((p, "category"), "string", cat)
    if "form" in o:
        _concept(c, o, p, "form", text_ok=True)
    fin = o.get("finance")
    if type(fin) is not dict:
        fin = _obj(c, o, p, "finance")
    if fin is not None:
        fp = (p, "finance")
        _nonneg(c, fin, fp, "qty")
        _nonneg(c, fin, fp, "unitPrice")
    st = _obj(c, o, p, "statement") if "statement" in o else None
    if st is not None:
        sp = (p, "statement")
        if "status" in st:
            _enum(c, st, sp, "status", _MED_STATUS)
        if "category" in st:
            _concept(c, st, sp, "category")
        if "effectiveDateTime" in st:
            _datetime(c, st, sp, "effectiveDateTime", date_ok=True)
        _notes(c, st, sp)
        _arr(c, st, sp, "dosage")
    if "dosage" in o:
        _arr(c, o, p, "dosage")


def _appointment(c: _Ctx, o: dict, p: _Path) -> None:
    _enum(c, o, p, "status", _APPT_STATUS, True)
    start = _datetime(c, o, p, "start", True, future_ok=True, birth_check=False, date_ok=True)
    if "end" in o:
        end = _datetime(c, o, p, "end", future_ok=True, birth_check=False, date_ok=True)
        _order(c, (p, "end"), start, end)
    if "created" in o:
        _datetime(c, o, p, "created", date_ok=True)
    if "description" in o:
        _str(c, o, p, "description")
    st = o.get("serviceType")
    if type(st) is dict:
        c.add((p, "serviceType"), "shape_variant", "ออบเจ็กต์เดียว (ควรเป็นอาร์เรย์)", "single object (an array is preferred)")
        _concept(c, o, p, "serviceType", text_ok=True)
    else:
        for sp, s in _objs(c, o, p, "serviceType"):
            if "text" in s:
                _str(c, s, sp, "text")
            if "coding" in s or "text" not in s:
                _codings(c, s, sp)
    _notes(c, o, p)
    if "participant" in o:
        _arr(c, o, p, "participant")


def _immunization(c: _Ctx, o: dict, p: _Path, register: bool = False) -> None:
    _item_org(c, o, p, register)
    _enum(c, o, p, "status", _IMM_STATUS, True)
    cods = _concept(c, o, p, "vaccineCode", True, systems=_VACCINE_SYSTEMS, strict=True)
    for i, (s, code) in enumerate(cods or ()):
        if s in _VACCINE_SYSTEMS and code is not None and code not in _vaccine_codes():
            c.add((((p, "vaccineCode.coding"), i), "code"), "code_unusual", f"'{_short(code)}' ไม่อยู่ในรายการวัคซีน 43 แฟ้ม",
                  f"'{_short(code)}' is not a 43-file vaccine code")
    _ref_field(c, o, p, "encounterRefCode", register, None)
    given = _datetime(c, o, p, "occurrenceDateTime", True, date_ok=True)
    _bool(c, o, p, "primarySource")
    for key in ("location", "manufacturer", "lotNumber"):
        if key in o:
            _str(c, o, p, key)
    exp = _date(c, o, p, "expirationDate", future_ok=True, birth_check=False) if "expirationDate" in o else None
    if exp is not None and given is not None and given.astimezone(_BKK).date() > exp:
        c.add((p, "expirationDate"), "period_order", "ฉีดหลังวันหมดอายุของวัคซีน",
              "given after the lot's expiry date")
    if "site" in o:
        _concept(c, o, p, "site")
    if "route" in o:
        _concept(c, o, p, "route")
    if "doseQuantity" in o:
        _quantity(c, o, p, "doseQuantity", positive=True)
    _notes(c, o, p)
    for rp, r in _objs(c, o, p, "reasonCode"):
        _codings(c, r, rp, False)
    perf = _obj(c, o, p, "performer")
    if perf is not None:
        for key in ("license_no", "name"):
            if key in perf:
                _str(c, perf, (p, "performer"), key)


def _coverage(c: _Ctx, o: dict, p: _Path) -> None:
    cg = o.get("class_group")
    if type(cg) is not dict:
        cg = _obj(c, o, p, "class_group")
    if cg is not None:
        _str(c, cg, (p, "class_group"), "value", True)
        _str(c, cg, (p, "class_group"), "name")
    if "class_subgroup" in o:
        sg = _obj(c, o, p, "class_subgroup")
        if sg is not None:
            _str(c, sg, (p, "class_subgroup"), "value", True)
    classes = _objs(c, o, p, "class") if "class" in o else []
    for cp, cl in classes:
        _str(c, cl, cp, "value", True)
        if "name" in cl:
            _str(c, cl, cp, "name")
        if "type" in cl:
            _concept(c, cl, cp, "type")
    if cg is None and not classes and "class_group" not in o and "class" not in o:
        c.add((p, "class_group"), "required", "ต้องมี class_group หรือ class[] (สิทธิการรักษา)",
              "needs class_group or class[] (the insurance scheme)")
    if "status" in o:
        _str(c, o, p, "status")
    if "type" in o:
        _concept(c, o, p, "type")
    if "period" in o:
        _period(c, o, p, "period", False, future_ok=True)
    if "reimbursementAmount" in o:
        _nonneg(c, o, p, "reimbursementAmount")
    if "identifier" in o:
        for ip, ident in _objs(c, o, p, "identifier"):
            _str(c, ident, ip, "system")
            _str(c, ident, ip, "value", True)
    for key in ("payor", "contract"):
        if key in o:
            for rp, r in _objs(c, o, p, key):
                _opt_strs(c, r, rp, ("reference", "display"))


# optional coded fields of an encounter (a Coding or a CodeableConcept each), in the order they are checked
_ENCOUNTER_CODED: tuple[str, ...] = ("priority", "subclass", "division", "screen_allergy", "screen_smoking", "screen_drinking")
# the resource arrays of an encounter, in the order their items are checked
_ENCOUNTER_ITEMS: tuple[tuple[str, Callable[[_Ctx, dict, _Path], None]], ...] = (
    ("Observation", _observation), ("Condition", _condition), ("Medication", _medication),
    ("Appointment", _appointment), ("Immunization", _immunization))


def _encounter(c: _Ctx, enc: dict, ep: _Path) -> None:
    if not enc.keys() <= _ENCOUNTER_KEYS:
        for key in enc:
            if key not in _ENCOUNTER_KEYS:
                c.add((ep, str(key)), "unknown_key", key, key)
    if "managingOrganization" in enc:
        _organization(c, enc, ep, "managingOrganization", False)
    ref_found = False
    for ip, ident in _objs(c, enc, ep, "identifier", True, True):
        system = ident.get("system")
        if system == SYS_HCODE:
            if ref_found:
                continue
            ref_found = True
            if "use" in ident:
                _enum(c, ident, ip, "use", _IDENT_USE)
            _ref_field(c, ident, ip, "value", True, c.refs)
        else:
            _other_identifier(c, ident, ip)
    if not ref_found and type(enc.get("identifier")) is list:
        c.add((ep, "identifier"), "identifier_system", f"ต้องมี identifier ระบบ {SYS_HCODE} ค่า 'HCODE:VN'",
              f"needs an identifier with system {SYS_HCODE} and value 'HCODE:VN'")
    _enum(c, enc, ep, "status", _ENCOUNTER_STATUS, True)
    cls = _obj(c, enc, ep, "class", True)
    if cls is not None:
        cp: _Path = (ep, "class")
        s, code = _coding(c, cls, cp)
        if s is not None and s != SYS_ACTCODE:
            c.add((cp, "system"), "coding_system", f"ต้องเป็น {SYS_ACTCODE}", f"must be {SYS_ACTCODE}")
        if code is not None and code not in _ENCOUNTER_CLASS:
            c.add((cp, "code"), "enum", f"'{_short(code)}' (AMB ผู้ป่วยนอก, IMP ผู้ป่วยใน, EMER ฉุกเฉิน ...)",
                  f"'{_short(code)}' (AMB outpatient, IMP inpatient, EMER emergency ...)")
    typ = enc.get("type")
    etype = _ONE_PHR_ENCOUNTER_TYPE
    if typ is None:
        c.required(ep, "type")
    elif type(typ) is list:
        if not typ:
            c.add((ep, "type"), "min_items", "'type' ว่าง", "'type' is empty")
        for tp, t in _objs(c, enc, ep, "type"):
            _codings(c, t, tp, True, etype)
    elif type(typ) is dict:
        c.add((ep, "type"), "shape_variant", "ออบเจ็กต์เดียว (ควรเป็นอาร์เรย์)", "single object (an array is preferred)")
        _concept(c, enc, ep, "type", systems=etype)
    else:
        c.bad_type((ep, "type"), "array", typ)
    _period(c, enc, ep, "period", True, start_req=True)
    if not enc.keys().isdisjoint(_ENCOUNTER_CODED):  # usually none of them is sent
        for key in _ENCOUNTER_CODED:
            v = enc.get(key)
            if v is None:
                continue
            if type(v) is not dict:
                c.bad_type((ep, key), "object", v)
            elif "coding" in v:
                _codings(c, v, (ep, key))
            else:
                _coding(c, v, (ep, key))
    for key in ("financeTotalAmount", "financeReimbursementAmount", "financePaidAmount"):
        if key in enc:
            _nonneg(c, enc, ep, key)
    for rp, r in _objs(c, enc, ep, "reason"):
        _opt_strs(c, r, rp, ("text",))
    if "participant" in enc:
        _arr(c, enc, ep, "participant")
    if "subject" in enc:
        _obj(c, enc, ep, "subject")
    if enc.get("Coverage") is None:
        c.add((ep, "Coverage"), "recommended", "ควรระบุสิทธิการรักษาของการรับบริการ",
              "the insurance scheme of the visit is expected")
    for cp, item in _objs(c, enc, ep, "Coverage"):
        _coverage(c, item, cp)
    _vital_signs(c, enc, ep)
    for key, check in _ENCOUNTER_ITEMS:
        items = enc.get(key)
        if items is not None and items != []:  # absent or empty (the usual case): nothing to check
            for ip, item in _objs(c, enc, ep, key):
                check(c, item, ip)
    if "DiagnosticReport" in enc:
        _objs(c, enc, ep, "DiagnosticReport")
    claims = _arr(c, enc, ep, "Claim")
    if claims:
        c.add((ep, "Claim"), "unspecified_content", "ส่ง []", "send []")


# --- allergies (UpdatePHRv1, AllergyIntolerancev1) ----------------------------------------------------

def _allergy(c: _Ctx, o: dict, p: _Path, expect_org: bool) -> None:
    _item_org(c, o, p, expect_org)
    for ip, ident in _objs(c, o, p, "identifier"):
        _str(c, ident, ip, "system")
        _str(c, ident, ip, "value", True)
    _concept(c, o, p, "clinicalStatus", True, _ONE_ALLERGY_CLINICAL, True, _ALLERGY_CLINICAL)
    _concept(c, o, p, "verificationStatus", True, _ONE_ALLERGY_VERIF, True, _ALLERGY_VERIF)
    _enum(c, o, p, "type", _ALLERGY_TYPE, True)
    cats = o.get("category")
    categories: list[str] = []
    if type(cats) is str:
        c.add((p, "category"), "shape_variant", "ข้อความเดียว (ควรเป็นอาร์เรย์)", "a single string (an array is preferred)")
        categories = [cats]
    else:
        categories = _strs(c, o, p, "category", True)
    for i, cat in enumerate(categories):
        if cat not in _ALLERGY_CATEGORY:
            c.add(((p, "category"), i), "enum", f"'{_short(cat)}' (medication, food, environment, biologic)",
                  f"'{_short(cat)}' (medication, food, environment, biologic)")
    if "criticality" in o:
        _enum(c, o, p, "criticality", _ALLERGY_CRIT)
    tmt = _ONE_PHR_TMT_SUBSTANCE
    _concept(c, o, p, "code", True, tmt, "medication" in categories)
    for key in ("seriousness", "allergyGroup", "allergyInformationSource", "allergyResult", "naranjoResult"):
        if key in o:
            _concept(c, o, p, key)
    _bool(c, o, p, "preventable")
    if "preventableScore" in o:
        _num(c, o, p, "preventableScore")
    _datetime(c, o, p, "recordedDate", True, date_ok=True)
    _practitioner(c, o, p, "recordOfficer")
    for rp, r in _objs(c, o, p, "reaction"):
        for mp, m in _objs(c, r, rp, "manifestation"):
            _codings(c, m, mp, True, _ONE_SNOMED)
