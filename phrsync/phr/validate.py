"""The one MOPH-PHR payload validator, shared by the payload builder and the local test server.

It walks plain dicts (as parsed from JSON) by hand instead of building pydantic models: a typical
one-encounter UpdatePHRv1 payload must validate at well over 20,000 payloads/s per core, and every
problem must be reported at once with its path, not only the first. Rule codes and their basis are
in :mod:`phrsync.phr.rules`; section numbers refer to the PHR API reference (moph-phr-api.md).
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, ClassVar

import orjson

from phrsync.pdpa import cid_is_valid, mask_cid, mask_text
from phrsync.phr.rules import RULES, Rule, Severity
from phrsync.phr.systems import (  # noqa: F401 - re-exported for callers of the validator
    PHR_CS,
    SYS_ACTCODE,
    SYS_ALLERGY_CLINICAL,
    SYS_ALLERGY_VERIF,
    SYS_CID,
    SYS_COND_CLINICAL,
    SYS_COND_VERIF,
    SYS_EPRESCRIPTION,
    SYS_HCODE,
    SYS_HN,
    SYS_ICD10,
    SYS_LOINC,
    SYS_MARITAL,
    SYS_SNOMED,
    SYS_TMT,
    SYS_UCUM,
    SYS_VACCINE,
)

__all__ = [
    "ENDPOINTS", "RULES", "Endpoint", "Issue", "Rule", "errors", "has_errors", "parse_and_validate",
    "validate", "validate_json_bytes", "warnings",
]

# --- code systems (spec §6) -----------------------------------------------------------------------

_VACCINE_SYSTEMS = frozenset({SYS_VACCINE, PHR_CS + "vaccine_code"})
_ICD10_SYSTEMS = frozenset({SYS_ICD10})
_LOINC_SYSTEMS = frozenset({SYS_LOINC})
_TMT_SYSTEMS = frozenset({SYS_TMT})

# --- value sets ---------------------------------------------------------------------------------
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
_MEDREQ_STATUS = frozenset({"active", "on-hold", "cancelled", "completed", "entered-in-error", "stopped",
                            "draft", "unknown"})
_REQ_INTENT = frozenset({"proposal", "plan", "directive", "order", "original-order", "reflex-order",
                         "filler-order", "instance-order", "option"})
_REFERRAL_STATUS = frozenset({"draft", "active", "on-hold", "suspended", "revoked", "cancelled", "completed",
                              "entered-in-error", "unknown"})
_PRIORITY = frozenset({"routine", "urgent", "asap", "stat"})
_PERIOD_UNIT = frozenset({"s", "min", "h", "d", "wk", "mo", "a"})
_SELF_GENDER = frozenset({"M", "F"})  # spec §2.6: M or F, not male/female

# --- formats ------------------------------------------------------------------------------------
_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_DT_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?(Z|[+-][0-9]{2}:?[0-9]{2})?")
_HCODE_RE = re.compile(r"[0-9]{5}")
_ICD10_RE = re.compile(r"[A-Z][0-9]{2}(?:\.?[0-9A-Z]{1,4})?")
_LOINC_RE = re.compile(r"[0-9]{1,7}-[0-9]")
_PRACT_RE = re.compile(r"Practitioner/\S+")
_WS_RE = re.compile(r"\s")
_BKK = dt.timezone(dt.timedelta(hours=7))
_EPOCH_EMPTY = dt.date(1970, 1, 1)
_ONE_DAY = dt.timedelta(days=1)

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
_ONE_PHR_CHRONIC_DISEASE = frozenset({PHR_CS + "chronic_disease"})
_ONE_PHR_CAREGIVER_TYPE = frozenset({PHR_CS + "caregiver_type"})
_ONE_PHR_DRP_CATEGORY = frozenset({PHR_CS + "drp_category"})

_TYPE_TH = {"string": "ข้อความ", "object": "ออบเจ็กต์", "array": "อาร์เรย์", "number": "ตัวเลข",
            "integer": "จำนวนเต็ม", "boolean": "ค่าจริง/เท็จ", "null": "null"}


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem found in a payload; ``path`` is like ``Encounter[0].period.start`` (``$`` = the whole body)."""

    path: str
    rule: str
    message_th: str
    message_en: str
    severity: Severity

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "rule": self.rule, "severity": self.severity,
                "message_th": self.message_th, "message_en": self.message_en}

    def message(self, lang: str = "th") -> str:
        """Thai first with English beside it, or English only."""
        return self.message_en if lang == "en" else f"{self.message_th} / {self.message_en}"

    def __reduce__(self) -> tuple[type[Issue], tuple[str, str, str, str, Severity]]:
        """Pickled by its fields: compiled (mypyc), a frozen dataclass cannot be restored attribute by attribute."""
        return Issue, (self.path, self.rule, self.message_th, self.message_en, self.severity)


def has_errors(issues: list[Issue]) -> bool:
    return any(i.severity == "error" for i in issues)


def errors(issues: list[Issue]) -> list[Issue]:
    return [i for i in issues if i.severity == "error"]


def warnings(issues: list[Issue]) -> list[Issue]:
    return [i for i in issues if i.severity == "warning"]


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _short(v: Any) -> str:
    """A value as it may appear in a message: short, and with any 13-digit number masked."""
    s = v if isinstance(v, str) else repr(v)
    if len(s) > 40:
        s = s[:37] + "..."
    return mask_text(s)


# A JSON path is built lazily: ``(parent, key)`` pairs (an int key is an array index, so an object key
# that is not a string, possible only in a payload built in Python, goes in as str(key)) are only turned
# into text when an issue is recorded, so a valid payload never pays for formatting its paths.
_Path = str | tuple[Any, str | int]
# a JSON number as given: never annotated plain ``float``, which a compiled build (mypyc) would turn an int
# into (80 would then read "80.0" in a message)
_Num = int | float


def _path_str(path: _Path) -> str:
    """``(("Encounter", 0), "period")`` → ``Encounter[0].period``; a plain string is already a path."""
    keys: list[str | int] = []
    node: Any = path
    while type(node) is tuple:
        node, key = node
        keys.append(key)
    out: str = node
    for key in reversed(keys):
        if type(key) is int:
            out = f"{out}[{key}]"
        elif out:
            out = f"{out}.{key}"
        else:
            out = str(key)
    return out


@functools.cache
def _vaccine_codes() -> frozenset[str]:
    """43-file EPI VACCINETYPE codes shipped with phrsync (complete per the THCC list, see codes README)."""
    data = resources.files("phrsync.terminology").joinpath("data/vaccines.csv")
    with data.open(encoding="utf-8") as f:
        return frozenset(row["vaccinetype"].strip() for row in csv.DictReader(f) if row.get("vaccinetype"))


# (path, rule, detail th, detail en) -> Issue. Most issues of a build repeat the same few (e.g. a
# facility's local drug codes at Encounter[0].Medication[0]), so each is formatted and masked once
# (issues are immutable, so one object can be shared). Only issues that masking leaves unchanged are
# kept, so no citizen ID is held here; the size is bounded.
_ISSUES: dict[tuple[_Path, str, str, str], Issue] = {}
_ISSUES_MAX = 4096


def _issue(key: tuple[_Path, str, str, str]) -> Issue:
    path, code, th, en = key
    rule = RULES[code]
    raw_th = f"{rule.title_th}: {th}" if th else rule.title_th
    raw_en = f"{rule.title_en}: {en}" if en else rule.title_en
    issue = Issue(_path_str(path) or "$", code, mask_text(raw_th), mask_text(raw_en), rule.severity)
    if issue.message_th == raw_th and issue.message_en == raw_en and type(issue.path) is str \
            and mask_text(issue.path) == issue.path:
        if len(_ISSUES) >= _ISSUES_MAX:
            _ISSUES.clear()
        _ISSUES[key] = issue
    return issue


class _Ctx:
    """State of one validation run: the issues so far and the facts later checks compare against."""

    __slots__ = ("issues", "now", "limit", "limit_date", "near", "day_max", "birth", "birth_near", "day_min", "hcode",
                 "refs")
    _clock: ClassVar[tuple[float, dt.datetime, dt.datetime, dt.date, str, str] | None] = None

    def __init__(self) -> None:
        self.issues: list[Issue] = []
        clock = _Ctx._clock
        t = time.time()
        if clock is None or t - clock[0] >= 1.0:  # 'now' is re-read at most once a second
            now = dt.datetime.now(dt.UTC)
            today = now.astimezone(_BKK).date()
            near = (today - dt.timedelta(days=1)).isoformat()
            clock = _Ctx._clock = (t, now, now + dt.timedelta(days=1), today + dt.timedelta(days=1), near,
                                   min(near, "2400"))
        _, self.now, self.limit, self.limit_date, self.near, self.day_max = clock
        self.birth: dt.date | None = None
        self.birth_near: str | None = None
        self.day_min = "1900"
        self.hcode: str | None = None
        self.refs: dict[str, _Path] = {}

    def set_birth(self, birth: dt.date | None) -> None:
        self.birth = birth
        self.birth_near = (birth + _ONE_DAY).isoformat() if birth is not None else None
        # the first 'yyyy-mm-dd' after birth_near (x + "\0" is the least string above x), at least "1900"
        self.day_min = "1900" if self.birth_near is None else max("1900", self.birth_near + "\0")

    def add(self, path: _Path, code: str, th: str, en: str) -> None:
        key = (path, code, th, en)
        self.issues.append(_ISSUES.get(key) or _issue(key))

    def duplicate(self, path: _Path, first: _Path) -> None:
        self.add(path, "duplicate_key", f"ซ้ำกับ {_path_str(first)}", f"same as {_path_str(first)}")

    def required(self, path: _Path, key: str) -> None:
        self.add((path, key), "required", f"ต้องมีฟิลด์ '{key}'", f"'{key}' is required")

    def bad_type(self, path: _Path, expected: str, v: Any) -> None:
        got = _json_type(v)
        self.add(path, "type", f"ต้องเป็น{_TYPE_TH[expected]} ({expected}) แต่ได้ {_TYPE_TH.get(got, got)}",
                 f"expected {expected}, got {got}")


# --- primitive getters: each returns the value when usable, else None, and records what is wrong ----

def _str(c: _Ctx, o: dict, p: _Path, k: str, req: bool = False) -> str | None:
    v = o.get(k)
    if type(v) is str and v.strip():
        return v
    if v is None:
        if req:
            c.required(p, k)
        return None
    if type(v) is not str:
        c.bad_type((p, k), "string", v)
        return None
    if not v or v.isspace():
        if req:
            c.add((p, k), "not_empty", "", "")
        else:
            c.add((p, k), "empty_value", "", "")
        return None
    return v


def _obj(c: _Ctx, o: dict, p: _Path, k: str, req: bool = False) -> dict | None:
    v = o.get(k)
    if v is None:
        if req:
            c.required(p, k)
        return None
    if type(v) is not dict:
        c.bad_type((p, k), "object", v)
        return None
    return v


def _arr(c: _Ctx, o: dict, p: _Path, k: str, req: bool = False, min1: bool = False) -> list | None:
    v = o.get(k)
    if v is None:
        if req:
            c.required(p, k)
        return None
    if type(v) is not list:
        c.bad_type((p, k), "array", v)
        return None
    if min1 and not v:
        c.add((p, k), "min_items", f"'{k}' ว่าง", f"'{k}' is empty")
    return v


def _objs(c: _Ctx, o: dict, p: _Path, k: str, req: bool = False, min1: bool = False) -> list[tuple[_Path, dict]]:
    """The object items of an array field, each with its path; non-object items are reported."""
    arr = o.get(k)
    if type(arr) is list:
        if len(arr) == 1:
            item = arr[0]
            if type(item) is dict:  # the usual case
                return [(((p, k), 0), item)]
        elif not arr:
            if min1:
                _arr(c, o, p, k, req, min1)
            return []
    else:
        if arr is not None or req:  # an absent optional array: nothing
            _arr(c, o, p, k, req, min1)
        return []
    base = (p, k)
    out: list[tuple[_Path, dict]] = []
    for i, item in enumerate(arr):
        if type(item) is dict:
            out.append(((base, i), item))
        else:
            c.bad_type((base, i), "object", item)
    return out


def _opt_strs(c: _Ctx, o: dict, p: _Path, keys: tuple[str, ...]) -> None:
    """Several optional string fields at once (one call instead of one per field)."""
    for k in keys:
        v = o.get(k)
        if v is not None and not (type(v) is str and v.strip()):
            _str(c, o, p, k)


def _strs(c: _Ctx, o: dict, p: _Path, k: str, req: bool = False) -> list[str]:
    arr = o.get(k)
    if type(arr) is list and arr:
        for item in arr:
            if not (type(item) is str and item.strip()):
                break
        else:
            return arr  # fast path: a non-empty list of proper strings
    elif arr is None and not req:
        return []
    arr = _arr(c, o, p, k, req, req)
    if not arr:
        return []
    out = []
    for i, item in enumerate(arr):
        if type(item) is str:
            if item.strip():
                out.append(item)
            else:
                c.add(((p, k), i), "empty_value", "", "")
        else:
            c.bad_type(((p, k), i), "string", item)
    return out


def _num(c: _Ctx, o: dict, p: _Path, k: str, req: bool = False) -> _Num | None:
    v = o.get(k)
    if v is None:
        if req:
            c.required(p, k)
        return None
    t = type(v)
    if t is int or t is float:
        return v
    c.bad_type((p, k), "number", v)
    return None


def _int(c: _Ctx, o: dict, p: _Path, k: str, req: bool = False) -> int | None:
    v = o.get(k)
    if v is None:
        if req:
            c.required(p, k)
        return None
    if type(v) is int:
        return v
    if type(v) is float and v.is_integer():
        return int(v)
    c.bad_type((p, k), "integer", v)
    return None


def _nonneg(c: _Ctx, o: dict, p: _Path, k: str, req: bool = False, positive: bool = False,
            integer: bool = False) -> _Num | None:
    v: Any = o.get(k)
    t = type(v)
    if (t is int or (t is float and not integer)) and (v > 0 if positive else v >= 0):
        return v  # fast path: a number of the right kind in range
    num = _int(c, o, p, k, req) if integer else _num(c, o, p, k, req)
    if num is not None and (num <= 0 if positive else num < 0):
        want = "มากกว่า 0" if positive else "ไม่ติดลบ"
        c.add((p, k), "number_range", f"ต้อง{want} ได้ {num}", f"must be {'> 0' if positive else '≥ 0'}, got {num}")
        return None
    return num


def _bool(c: _Ctx, o: dict, p: _Path, k: str, req: bool = False) -> bool | None:
    v = o.get(k)
    if v is None:
        if req:
            c.required(p, k)
        return None
    if type(v) is not bool:
        c.bad_type((p, k), "boolean", v)
        return None
    return v


def _enum(c: _Ctx, o: dict, p: _Path, k: str, allowed: frozenset[str], req: bool = False) -> str | None:
    v = o.get(k)
    if type(v) is str and v in allowed:
        return v
    v = _str(c, o, p, k, req)
    if v is not None and v not in allowed:
        c.add((p, k), "enum", f"'{_short(v)}' ต้องเป็นหนึ่งใน {', '.join(sorted(allowed))}",
              f"'{_short(v)}' is not one of {', '.join(sorted(allowed))}")
        return None
    return v


def _year_checks(c: _Ctx, path: _Path, d: dt.date, future_ok: bool, birth_check: bool) -> bool:
    """Plausibility of a parsed (local) date; False when the year is unusable."""
    y = d.year
    if y >= 2400:
        c.add(path, "buddhist_year", f"ปี {y} น่าจะเป็น พ.ศ. (ค.ศ. {y - 543})",
              f"year {y} looks Buddhist era (C.E. {y - 543})")
        return False
    if y < 1900 or d == _EPOCH_EMPTY:
        c.add(path, "date_implausible", f"{d.isoformat()}", f"{d.isoformat()}")
        return False
    if not future_ok and d > c.limit_date:
        c.add(path, "future_date", f"{d.isoformat()}", f"{d.isoformat()}")
    if birth_check and c.birth is not None and d < c.birth:
        c.add(path, "date_before_birth", f"{d.isoformat()}", f"{d.isoformat()}")
    return True


def _needs_checks(c: _Ctx, day: str, future_ok: bool, birth_check: bool) -> bool:
    """Cheap string test on the 'yyyy-mm-dd' part: can this value fail a plausibility rule at all?
    Only then are the exact (time-zone aware) checks run, which keeps the common case fast."""
    return (day >= "2400" or day < "1900" or day == "1970-01-01" or (not future_ok and day >= c.near)
            or (birth_check and c.birth_near is not None and day <= c.birth_near))


def _parse_dt(c: _Ctx, path: _Path, v: str, future_ok: bool, birth_check: bool,
              date_only_code: str | None = "datetime_date_only") -> dt.datetime | None:
    m = _DT_RE.fullmatch(v)
    if m is None:
        if _DATE_RE.fullmatch(v):
            d = _parse_date(c, path, v, future_ok, birth_check, with_time_code=None)
            if d is None:
                return None
            if date_only_code:
                c.add(path, date_only_code, v, v)
            return dt.datetime(d.year, d.month, d.day, tzinfo=_BKK)
        c.add(path, "iso_datetime", f"ได้ '{_short(v)}'", f"got '{_short(v)}'")
        return None
    frac, tz = m.group(7, 8)
    s = v if frac is None or len(frac) <= 6 else v[:m.start(7) + 6] + v[m.end(7):]
    if tz is not None and len(tz) == 5:  # +0700 → +07:00 for fromisoformat
        s = s[:-2] + ":" + s[-2:]
    try:
        value = dt.datetime.fromisoformat(s)
    except ValueError:
        c.add(path, "iso_datetime", f"ไม่มีวันเวลานี้ '{_short(v)}'", f"no such date-time '{_short(v)}'")
        return None
    if tz is None:
        c.add(path, "datetime_no_tz", v, v)
        value = value.replace(tzinfo=_BKK)
    if _needs_checks(c, v[:10], future_ok, birth_check):
        if not _year_checks(c, path, value.astimezone(_BKK).date(), True, birth_check):
            return None
        if not future_ok and value > c.limit:
            c.add(path, "future_date", v, v)
    return value


def _parse_date(c: _Ctx, path: _Path, v: str, future_ok: bool, birth_check: bool,
                with_time_code: str | None = "date_has_time") -> dt.date | None:
    if _DATE_RE.fullmatch(v) is None:
        if with_time_code and _DT_RE.fullmatch(v):
            value = _parse_dt(c, path, v, future_ok, birth_check, None)
            if value is None:
                return None
            c.add(path, with_time_code, v, v)
            return value.astimezone(_BKK).date()
        c.add(path, "iso_date", f"ได้ '{_short(v)}'", f"got '{_short(v)}'")
        return None
    try:
        d = dt.date.fromisoformat(v)
    except ValueError:
        y = int(v[:4])
        if y >= 2400:
            c.add(path, "buddhist_year", f"ปี {y} น่าจะเป็น พ.ศ.", f"year {y} looks Buddhist era")
        else:
            c.add(path, "iso_date", f"ไม่มีวันที่นี้ '{_short(v)}'", f"no such date '{_short(v)}'")
        return None
    if _needs_checks(c, v, future_ok, birth_check) and not _year_checks(c, path, d, future_ok, birth_check):
        return None
    return d


def _date(c: _Ctx, o: dict, p: _Path, k: str, req: bool = False, future_ok: bool = False,
          birth_check: bool = True) -> dt.date | None:
    v = o.get(k)
    # fast path: 'yyyy-mm-dd' (fromisoformat checks the digits) and clearly plausible; anything else
    # goes through the full checks below, which name the problem
    if type(v) is str and len(v) == 10 and v[4:8:3] == "--" and v[5] != "W" \
            and (c.day_min if birth_check else "1900") <= v < ("2400" if future_ok else c.day_max) \
            and v != "1970-01-01":
        try:
            return dt.date.fromisoformat(v)
        except ValueError:
            pass
    v = _str(c, o, p, k, req)
    if v is None:
        return None
    return _parse_date(c, (p, k), v, future_ok, birth_check)


def _datetime(c: _Ctx, o: dict, p: _Path, k: str, req: bool = False, future_ok: bool = False,
              birth_check: bool = True, date_ok: bool = False) -> dt.datetime | None:
    v = o.get(k)
    # fast path: 'yyyy-mm-ddThh:mm:ss' + 'Z' or '±hh:mm' (fromisoformat checks the digits), or a plain
    # 'yyyy-mm-dd' where a date is allowed, and clearly plausible; every other form goes through the full
    # checks below, which name the problem
    if type(v) is str:
        n = len(v)
        # v[4:17:3] is the characters at 4, 7, 10, 13 and 16; v[19:23:3] those at 19 and 22
        full = (n == 25 and v[19:23:3] in ("+:", "-:") or n == 20 and v[19] == "Z") and v[4:17:3] == "--T::"
        if full or (n == 10 and date_ok and v[5] != "W" and v[4:8:3] == "--"):
            day = v[:10]
            # the plausibility rules of _needs_checks as one range: after 1900 (and birth), before 2400 (and
            # the day before today)
            if (c.day_min if birth_check else "1900") <= day < ("2400" if future_ok else c.day_max) \
                    and day != "1970-01-01":
                try:
                    if full:
                        return dt.datetime.fromisoformat(v)
                    d = dt.date.fromisoformat(v)
                    return dt.datetime(d.year, d.month, d.day, tzinfo=_BKK)
                except ValueError:
                    pass
    v = _str(c, o, p, k, req)
    if v is None:
        return None
    return _parse_dt(c, (p, k), v, future_ok, birth_check, None if date_ok else "datetime_date_only")


def _order(c: _Ctx, path: _Path, start: dt.date | dt.datetime | None, end: dt.date | dt.datetime | None) -> None:
    if start is None or end is None:
        return
    if isinstance(start, dt.datetime) != isinstance(end, dt.datetime):
        start = start.astimezone(_BKK).date() if isinstance(start, dt.datetime) else start
        end = end.astimezone(_BKK).date() if isinstance(end, dt.datetime) else end
    if end < start:  # type: ignore[operator]
        c.add(path, "period_order", f"{end.isoformat()} ก่อน {start.isoformat()}",
              f"{end.isoformat()} is before {start.isoformat()}")


# --- codings --------------------------------------------------------------------------------------

def _coding(c: _Ctx, co: dict, path: _Path) -> tuple[str | None, str | None]:
    """Check one Coding; returns (system, code)."""
    system = co.get("system")
    if system is None:
        c.add((path, "system"), "coding_system", "coding ต้องมี 'system'", "a coding needs a 'system'")
        system = None
    elif type(system) is not str:
        c.bad_type((path, "system"), "string", system)
        system = None
    elif not system or system.isspace():
        c.add((path, "system"), "coding_system", "'system' ว่าง", "'system' is empty")
        system = None
    code = _str(c, co, path, "code", True)
    if "display" in co:
        _str(c, co, path, "display")
    if "version" in co:
        _str(c, co, path, "version")
    return system, code


def _codings(c: _Ctx, cc: dict, path: _Path, req: bool = True, systems: frozenset[str] | None = None,
             strict: bool = False, codes: frozenset[str] | None = None) -> list[tuple[str | None, str | None]]:
    """The codings of a CodeableConcept as (system, code), one per item in order (an item that is not an
    object gives (None, None)). One pass takes the usual list (every coding well-formed, an allowed code
    where its system is in ``systems``); at the first other coding, :func:`_codings_full` starts over
    and names every problem (the pass recorded nothing, so nothing is reported twice)."""
    arr = cc.get("coding")
    if type(arr) is not list or not arr:
        _arr(c, cc, path, "coding", req, req)
        return []
    out: list[tuple[str | None, str | None]] = []
    hit = False  # a coding from ``systems`` (with an allowed code)
    for co in arr:
        if type(co) is not dict:
            break
        s = co.get("system")
        code = co.get("code")
        if not (type(s) is str and type(code) is str and s.strip() and code.strip()
                and "version" not in co):
            break
        d = co.get("display")
        if d is not None and not (type(d) is str and d.strip()):
            break
        if systems is not None and s in systems:
            if codes is not None and code not in codes:
                break
            hit = True
        out.append((s, code))
    else:
        if systems is not None and not hit:  # every coding well-formed, none from ``systems``
            _no_system(c, path, systems, strict)
        return out
    return _codings_full(c, arr, path, systems, strict, codes)


def _codings_full(c: _Ctx, arr: list, path: _Path, systems: frozenset[str] | None, strict: bool,
                  codes: frozenset[str] | None) -> list[tuple[str | None, str | None]]:
    """:func:`_codings` for a list with some coding off the usual form: every item checked in full."""
    out: list[tuple[str | None, str | None]] = []
    for i, co in enumerate(arr):
        if type(co) is not dict:
            c.bad_type(((path, "coding"), i), "object", co)
            out.append((None, None))
        else:
            out.append(_coding(c, co, ((path, "coding"), i)))
    if systems is not None:
        _check_systems(c, path, out, systems, strict, codes)
    return out


def _concept(c: _Ctx, o: dict, p: _Path, k: str, req: bool = False, systems: frozenset[str] | None = None,
             strict: bool = False, codes: frozenset[str] | None = None,
             text_ok: bool = False) -> list[tuple[str | None, str | None]] | None:
    """A CodeableConcept ``{coding: [...], text}``; returns its (system, code) pairs in coding order.
    With ``systems``, at least one coding must use one of them (error when ``strict``, else a warning);
    ``codes`` restricts the codes of those codings."""
    cc = o.get(k)
    if type(cc) is not dict:
        _obj(c, o, p, k, req)
        return None
    path = (p, k)
    text = cc.get("text")
    if text is not None and not (type(text) is str and text.strip()):
        text = _str(c, cc, path, "text")
    if text_ok and text is not None and "coding" not in cc:
        return []
    return _codings(c, cc, path, True, systems, strict, codes)


def _no_system(c: _Ctx, path: _Path, systems: frozenset[str], strict: bool) -> None:
    """No coding of the concept at ``path`` is from ``systems`` (an error when ``strict``)."""
    c.add((path, "coding"), *_systems_text(systems, strict))


@functools.cache
def _systems_text(systems: frozenset[str], strict: bool) -> tuple[str, str, str]:
    """Rule and message (Thai, English) for codings without one of ``systems``; built once per set (a
    validator uses only a few), which keeps the common local-code warning cheap."""
    want, want_en = " หรือ ".join(sorted(systems)), " or ".join(sorted(systems))
    if strict:
        return "coding_system", f"ต้องมี coding ระบบ {want}", f"needs a coding from {want_en}"
    return "coding_system_local", f"ไม่มี coding ระบบ {want}", f"no coding from {want_en}"


def _check_systems(c: _Ctx, path: _Path, cods: list[tuple[str | None, str | None]],
                   systems: frozenset[str] | None, strict: bool, codes: frozenset[str] | None) -> None:
    if not cods or systems is None:
        return
    hit = False
    named = False  # some coding has a system at all
    for i, (s, code) in enumerate(cods):
        if s is not None:
            named = True
        if s in systems:
            hit = True
            if codes is not None and code is not None and code not in codes:
                c.add((((path, "coding"), i), "code"), "enum", f"'{_short(code)}' ต้องเป็นหนึ่งใน {', '.join(sorted(codes))}",
                      f"'{_short(code)}' is not one of {', '.join(sorted(codes))}")
    if not hit and named:
        _no_system(c, path, systems, strict)


def _quantity(c: _Ctx, o: dict, p: _Path, k: str, req: bool = False, positive: bool = False,
              value_req: bool = True) -> _Num | None:
    q = o.get(k)
    if type(q) is dict:
        val = q.get("value")
        if (type(val) is int or type(val) is float) and (not positive or val > 0):
            for key in ("unit", "system", "code", "comparator"):
                x = q.get(key)
                if x is not None and not (type(x) is str and x.strip()):
                    break
            else:
                return val
    q = _obj(c, o, p, k, req)
    if q is None:
        return None
    path = (p, k)
    v = _nonneg(c, q, path, "value", value_req, positive) if positive else _num(c, q, path, "value", value_req)
    for key in ("unit", "system", "code", "comparator"):
        if key in q:
            _str(c, q, path, key)
    return v


# --- shared blocks ----------------------------------------------------------------------------------

def _hcode(c: _Ctx, path: _Path, v: str) -> bool:
    if _HCODE_RE.fullmatch(v) is None:
        c.add(path, "hcode_format", f"ได้ '{_short(v)}'", f"got '{_short(v)}'")
        return False
    return True


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


def _cid(c: _Ctx, path: _Path, v: Any) -> str | None:
    """Check a CID value; messages carry only the masked form."""
    if type(v) is not str:
        if v is None:
            c.add(path, "required", "ต้องมีเลขประจำตัวประชาชน", "the CID value is required")
        else:
            c.bad_type(path, "string", v)
        return None
    if len(v) != 13 or not (v.isascii() and v.isdigit()):
        c.add(path, "cid_format", f"ได้ {len(v)} ตัวอักษร ({mask_cid(v)})", f"got {len(v)} characters ({mask_cid(v)})")
        return None
    if not cid_is_valid(v):
        c.add(path, "cid_checksum", mask_cid(v), mask_cid(v))
        return None
    return v


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


def _period(c: _Ctx, o: dict, p: _Path, k: str, req: bool, start_req: bool = False,
            future_ok: bool = False) -> tuple[dt.datetime | None, dt.datetime | None]:
    per = o.get(k)
    if type(per) is not dict:
        per = _obj(c, o, p, k, req)
        if per is None:
            return None, None
    path = (p, k)
    start = _datetime(c, per, path, "start", start_req, future_ok, date_ok=not start_req)
    if "end" not in per:  # the usual case: an open period
        return start, None
    end = _datetime(c, per, path, "end", False, future_ok, date_ok=not start_req)
    _order(c, (path, "end"), start, end)
    return start, end


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


# --- UpdatePHRv1: Encounter and its parts (§3.2) ---------------------------------------------------

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


@functools.lru_cache(maxsize=8192)
def _loinc_status(code: str) -> int:
    """0 = fine, 1 = not the nnnnn-n form, 2 = wrong mod-10 (Luhn) check digit. Cached: a facility
    uses a few hundred lab codes over and over."""
    if _LOINC_RE.fullmatch(code) is None or not code.isascii():
        return 1
    total = 0
    for i, ch in enumerate(reversed(code[:-2])):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return 0 if (10 - total % 10) % 10 == int(code[-1]) else 2


def _loinc_code(c: _Ctx, path: _Path, code: str) -> None:
    status = _loinc_status(code)
    if status == 1:
        c.add(path, "code_format", f"LOINC ต้องเป็น nnnnn-n ได้ '{_short(code)}'",
              f"LOINC is nnnnn-n, got '{_short(code)}'")
    elif status == 2:
        c.add(path, "code_format", f"เลขตรวจสอบ LOINC ผิด '{_short(code)}'", f"wrong LOINC check digit '{_short(code)}'")


def _condition(c: _Ctx, o: dict, p: _Path) -> None:
    code_obj = o.get("code")
    cods = _concept(c, o, p, "code", True, _ICD10_SYSTEMS, True, text_ok=True)
    if cods is not None and not cods and type(code_obj) is dict and "coding" not in code_obj:
        c.add((p, "code.coding"), "coding_system_local", "มีแต่ข้อความ ไม่มีรหัส ICD-10",
              "text only, no ICD-10 code")
    elif cods:
        for i, (s, code) in enumerate(cods):
            if s == SYS_ICD10 and code is not None and _ICD10_RE.fullmatch(code) is None:
                c.add((((p, "code.coding"), i), "code"), "code_format", f"ICD-10 ได้ '{_short(code)}'", f"ICD-10, got '{_short(code)}'")
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


# --- endpoints ------------------------------------------------------------------------------------

def _top_keys(c: _Ctx, payload: dict, known: frozenset[str]) -> None:
    if payload.keys() <= known:
        return
    for key in payload:
        if key not in known:
            c.add(key, "unknown_key", key, key)


def _v_update_phr(c: _Ctx, payload: dict) -> None:
    _organization(c, payload, "", "managingOrganization", True, sender=True, agent=True)
    _patient(c, payload)
    org = payload.get("managingOrganization")
    scope = org.get("scope") if type(org) is dict else None
    if scope is None:
        top = payload.get("scope")
        if top is not None and type(top) is not str:
            c.bad_type("scope", "string", top)
        else:
            scope = top
    for ap, a in _objs(c, payload, "", "AllergyIntolerance"):
        _allergy(c, a, ap, False)
    care = _arr(c, payload, "", "CarePlan")
    if care:
        c.add("CarePlan", "unspecified_content", "ส่ง []", "send []")
        for i, item in enumerate(care):
            if type(item) is not dict:
                c.bad_type(f"CarePlan[{i}]", "object", item)
    encounters = _objs(c, payload, "", "Encounter", True, True)
    for ep, enc in encounters:
        _encounter(c, enc, ep)
    if len(encounters) > 1 and scope != "ALL":
        c.add("Encounter", "one_encounter", f"มี {len(encounters)} รายการ โดยไม่ได้ตั้ง scope ALL",
              f"{len(encounters)} items without scope ALL")


def _v_allergy(c: _Ctx, payload: dict) -> None:
    _organization(c, payload, "", "managingOrganization", True, sender=True)
    _patient(c, payload)
    for ap, a in _objs(c, payload, "", "AllergyIntolerance", True, True):
        _allergy(c, a, ap, True)


def _v_chronic(c: _Ctx, payload: dict) -> None:
    _organization(c, payload, "", "managingOrganization", True, sender=True)
    _patient(c, payload)
    seen: dict[str, _Path] = {}
    for p, o in _objs(c, payload, "", "ChronicDiseaseRegister", True, True):
        _item_org(c, o, p, True)
        cods = _concept(c, o, p, "code", True, _ONE_PHR_CHRONIC_DISEASE)
        for i, (_s, code) in enumerate(cods or ()):
            if code is not None and not (len(code) == 3 and code.isascii() and code.isdigit()):
                c.add((((p, "code.coding"), i), "code"), "code_unusual", f"cd_code '{_short(code)}' (3 หลัก เช่น 001)",
                      f"cd_code '{_short(code)}' (3 digits, e.g. 001)")
        _concept(c, o, p, "clinicalStatus", True)
        ref = _str(c, o, p, "chronic_ref_code", True)
        if ref is not None:
            if ref in seen:
                c.duplicate((p, "chronic_ref_code"), seen[ref])
            else:
                seen[ref] = (p, "chronic_ref_code")
        if "clinicalText" in o:
            _str(c, o, p, "clinicalText")
        reg = _date(c, o, p, "registerDate", True)
        dis = _date(c, o, p, "dischargeDate") if "dischargeDate" in o else None
        _order(c, (p, "dischargeDate"), reg, dis)
        if "recordedDate" in o:
            _datetime(c, o, p, "recordedDate", date_ok=True)
        _strs(c, o, p, "description")
        for qp, q in _objs(c, o, p, "condition"):
            _str(c, q, qp, "system", True)
            _str(c, q, qp, "code", True)
            for key in ("display", "text"):
                if key in q:
                    _str(c, q, qp, key)


def _v_immunization(c: _Ctx, payload: dict) -> None:
    _organization(c, payload, "", "managingOrganization", True, sender=True)
    _patient(c, payload)
    items = _objs(c, payload, "", "Immunization", True)
    if type(payload.get("Immunization")) is list and not payload["Immunization"]:
        c.add("Immunization", "replace_all_empty", "ประวัติวัคซีนของบุคคลนี้ที่สถานพยาบาลจะถูกลบทั้งหมด",
              "all of this person's vaccinations at the facility will be deleted")
    for p, o in items:
        _immunization(c, o, p, True)


_SUMMARY_ALIASES = {"opd_count": "opd_encounter_count", "ipd_count": "ipd_encounter_count",
                    "period_end": "period_start"}
_SUMMARY_KEYS = frozenset({"period_start", "opd_encounter_count", "ipd_encounter_count", "ipd_discharge_count"})


def _v_org_summary(c: _Ctx, payload: dict) -> None:
    _organization(c, payload, "", "managingOrganization", True, sender=True)
    days: dict[dt.date, _Path] = {}
    for p, o in _objs(c, payload, "", "EncounterSummary", True, True):
        for key in o:
            if key in _SUMMARY_ALIASES:
                if _SUMMARY_ALIASES[key] not in o:
                    c.add((p, key), "alias_key", f"ใช้ '{_SUMMARY_ALIASES[key]}' ตามสเปก",
                          f"use the spec's '{_SUMMARY_ALIASES[key]}'")
            elif key not in _SUMMARY_KEYS:
                c.add((p, str(key)), "unknown_key", key, key)
        day_key = "period_start" if "period_start" in o or "period_end" not in o else "period_end"
        day = _date(c, o, p, day_key, True, birth_check=False)
        if day is not None:
            if day in days:
                c.duplicate((p, day_key), days[day])
            else:
                days[day] = (p, day_key)
        for key, alias in (("opd_encounter_count", "opd_count"), ("ipd_encounter_count", "ipd_count"),
                           ("ipd_discharge_count", None)):
            use = key if key in o or alias is None or alias not in o else alias
            _nonneg(c, o, p, use, True, integer=True)
    if days and (max(days) - min(days)).days > 30:
        c.add("EncounterSummary", "summary_span", f"{min(days).isoformat()} ถึง {max(days).isoformat()}",
              f"{min(days).isoformat()} to {max(days).isoformat()}")


def _v_referral(c: _Ctx, payload: dict) -> None:
    sender = _organization(c, payload, "", "managingOrganization", True, sender=True)
    _patient(c, payload)
    seen: dict[str, _Path] = {}
    for p, o in _objs(c, payload, "", "ReferralRequest", True, True):
        _organization(c, o, p, "managingOrganization", True)
        saved, c.hcode = c.hcode, None  # the recipient is another facility by design
        rec = _organization(c, o, p, "recipientOrganization", True)
        c.hcode = saved
        if rec is not None and rec == sender:
            c.add((p, "recipientOrganization.identifier.value"), "org_mismatch", "ส่งต่อไปยังสถานพยาบาลเดียวกัน",
                  "referral to the same facility")
        _ref_field(c, o, p, "encounterRefCode", True, None)
        ref = _str(c, o, p, "referralRefCode", True)
        if ref is not None:
            if ref in seen:
                c.duplicate((p, "referralRefCode"), seen[ref])
            seen.setdefault(ref, (p, "referralRefCode"))
        _enum(c, o, p, "status", _REFERRAL_STATUS, True)
        _enum(c, o, p, "intent", _REQ_INTENT, True)
        if "priority" in o:
            _enum(c, o, p, "priority", _PRIORITY)
        for key in ("type", "serviceRequested", "specialty"):
            if key in o:
                _concept(c, o, p, key, text_ok=True)
        ctx = _obj(c, o, p, "context")
        if ctx is not None:
            _str(c, ctx, (p, "context"), "display")
        occ = _datetime(c, o, p, "occurrenceDateTime", future_ok=True, date_ok=True) if "occurrenceDateTime" in o \
            else None
        op = _obj(c, o, p, "occurrencePeriod")
        if op is not None:
            end = _datetime(c, op, (p, "occurrencePeriod"), "end", future_ok=True, birth_check=False, date_ok=True)
            _order(c, (p, "occurrencePeriod.end"), occ, end)
        if "authoredOn" in o:
            _datetime(c, o, p, "authoredOn", date_ok=True)
        req = _obj(c, o, p, "requester")
        if req is not None:
            _practitioner(c, req, (p, "requester"), "agent")
        for key in ("description", "note", "supporting_info_diagnosis", "supporting_info_vital_sign",
                    "supporting_info_medication", "supporting_info_observation", "supporting_info_social_problem",
                    "supporting_info_present_illness"):
            if key in o:
                _str(c, o, p, key)


def _v_self_observation(c: _Ctx, payload: dict) -> None:
    _str(c, payload, "", "system_name", True)
    gis = _obj(c, payload, "", "location_gis")
    if gis is not None:
        for key, limit in (("latitude", 90.0), ("longitude", 180.0)):
            v = gis.get(key)
            if v is None:
                continue
            if type(v) in (int, float):
                c.add(f"location_gis.{key}", "shape_variant", "ส่งเป็นตัวเลข สเปกใช้ข้อความ",
                      "sent as a number; the spec uses a string")
                num: float | None = float(v)
            elif type(v) is str:
                try:
                    num = float(v)
                except ValueError:
                    c.add(f"location_gis.{key}", "type", f"ไม่ใช่ตัวเลข '{_short(v)}'", f"not a number '{_short(v)}'")
                    num = None
            else:
                c.bad_type(f"location_gis.{key}", "string", v)
                num = None
            if num is not None and not -limit <= num <= limit:
                c.add(f"location_gis.{key}", "number_range", f"{num}", f"{num}")
    _str(c, payload, "", "observation_ref_code", True)
    person = _obj(c, payload, "", "person", True)
    if person is not None:
        _cid(c, "person.cid", person.get("cid"))
        for key in ("prefix", "first_name", "last_name"):
            _str(c, person, "person", key, True)
        c.set_birth(_date(c, person, "person", "birth_date", True, birth_check=False))
        _enum(c, person, "person", "gender", _SELF_GENDER, True)
    obs = _obj(c, payload, "", "observation", True)
    if obs is not None:
        p = "observation"
        _str(c, obs, p, "reference_id", True)
        code = _str(c, obs, p, "loinc_code", True)
        if code is not None:
            _loinc_code(c, "observation.loinc_code", code)
        _str(c, obs, p, "loinc_display", True)
        _datetime(c, obs, p, "effective_datetime", True)
        for key in ("device_display", "performer_display"):
            if key in obs:
                _str(c, obs, p, key)
        _str(c, obs, p, "observation_value", True)
        _str(c, obs, p, "observation_unit", True)


def _v_caregiver(c: _Ctx, payload: dict) -> None:
    _organization(c, payload, "", "managingOrganization", True, sender=True)
    patient_cid = _patient(c, payload)
    c.set_birth(None)  # dates inside a caregiver item are about the caregiver, not the patient
    for p, o in _objs(c, payload, "", "CareGiver", True, True):
        cid = _identifiers(c, o, p, True)
        if cid is not None and cid == patient_cid:
            c.add((p, "identifier"), "duplicate_key", "ผู้ดูแลเป็นคนเดียวกับผู้ป่วย", "the caregiver is the patient")
        _bool(c, o, p, "active", True)
        if "intent" in o:
            _str(c, o, p, "intent")
        name = o.get("name")
        if type(name) is list:
            c.bad_type((p, "name"), "object", name)
        else:
            n = _obj(c, o, p, "name", True)
            if n is not None:
                _human_name(c, n, (p, "name"))
        if "telecom_phone" in o:
            _str(c, o, p, "telecom_phone")
        _concept(c, o, p, "qualification", True, _ONE_PHR_CAREGIVER_TYPE)
        alias = o.get("care_giver_name")
        if alias is not None and type(alias) not in (str, dict):
            c.bad_type((p, "care_giver_name"), "string", alias)


def _v_medication_request(c: _Ctx, payload: dict) -> None:
    _organization(c, payload, "", "managingOrganization", True, sender=True)
    _patient(c, payload)
    for p, o in _objs(c, payload, "", "MedicationRequest", True, True):
        ids = _objs(c, o, p, "identifier", True, True)
        for ip, ident in ids:
            _other_identifier(c, ident, ip)
            s = ident.get("system")
            if type(s) is str and s and s != SYS_EPRESCRIPTION:
                c.add((ip, "system"), "coding_system_local", f"สเปกใช้ {SYS_EPRESCRIPTION}",
                      f"the spec uses {SYS_EPRESCRIPTION}")
        _enum(c, o, p, "status", _MEDREQ_STATUS, True)
        _enum(c, o, p, "intent", _REQ_INTENT, True)
        _concept(c, o, p, "medication", True, _TMT_SYSTEMS)
        _ref_field(c, o, p, "encounter_ref_code", True, None)
        _datetime(c, o, p, "authoredOn", True, date_ok=True)
        _practitioner(c, o, p, "requester", True, True)
        _notes(c, o, p)
        for dp, d in _objs(c, o, p, "dosageInstruction", True, True):
            if "sequence" in d:
                _nonneg(c, d, dp, "sequence", positive=True, integer=True)
            for key in ("text", "patientInstruction"):
                if key in d:
                    _str(c, d, dp, key)
            timing = _obj(c, d, dp, "timing")
            if timing is not None:
                rep = _obj(c, timing, (dp, "timing"), "repeat")
                if rep is not None:
                    rp: _Path = (dp, "timing.repeat")
                    _nonneg(c, rep, rp, "frequency", positive=True, integer=True)
                    _nonneg(c, rep, rp, "period", positive=True)
                    _enum(c, rep, rp, "periodUnit", _PERIOD_UNIT)
            if "route" in d:
                _concept(c, d, dp, "route")
            for rp, r in _objs(c, d, dp, "doseAndRate"):
                _quantity(c, r, rp, "doseQuantity", positive=True)
        disp = _obj(c, o, p, "dispenseRequest")
        if disp is not None:
            dp = (p, "dispenseRequest")
            _period(c, disp, dp, "validityPeriod", False, future_ok=True)
            _nonneg(c, disp, dp, "numberOfRepeatsAllowed", integer=True)
            _quantity(c, disp, dp, "quantity", positive=True)
            _quantity(c, disp, dp, "expectedSupplyDuration", positive=True)


def _v_drp(c: _Ctx, payload: dict) -> None:
    _organization(c, payload, "", "managingOrganization", True, sender=True)
    _patient(c, payload)
    seen: dict[str, _Path] = {}
    for p, o in _objs(c, payload, "", "DrugRelatedProblem", True, True):
        ref = _str(c, o, p, "drp_ref_code", True)
        if ref is not None:
            if ref in seen:
                c.duplicate((p, "drp_ref_code"), seen[ref])
            seen.setdefault(ref, (p, "drp_ref_code"))
        _bool(c, o, p, "active")
        if "intent" in o:
            _str(c, o, p, "intent")
        _concept(c, o, p, "medication", True, _TMT_SYSTEMS)
        if "category" in o:
            _concept(c, o, p, "category", systems=_ONE_PHR_DRP_CATEGORY)
        if "description" in o:
            _str(c, o, p, "description")
        if "recordedDate" in o:
            _datetime(c, o, p, "recordedDate", date_ok=True)


def _hospital_code(c: _Ctx, payload: dict) -> None:
    code = _str(c, payload, "", "hospital_code", True)
    if code is not None and _hcode(c, "hospital_code", code):
        c.hcode = code


def _v_agent_status(c: _Ctx, payload: dict) -> None:
    """UpdateAgentStatus (§4), both modes: the error mode sends only hospital_code and agent_status."""
    _hospital_code(c, payload)
    _str(c, payload, "", "agent_status", True)
    _opt_strs(c, payload, "", ("agent_computer_name", "most_client_version", "agent_version"))


def _v_agent_name(c: _Ctx, payload: dict) -> None:
    _hospital_code(c, payload)


def _v_mask_encounter(c: _Ctx, payload: dict) -> None:
    """MaskEncounter?mode=set|get (§4): {cid, encounter_ref_code}."""
    _cid(c, "cid", payload.get("cid"))
    _ref_field(c, payload, "", "encounter_ref_code", True, None)


def _v_chronic_remove(c: _Ctx, payload: list) -> None:
    """PatientChronicRegisterv1?mode=remove (§2.3): a JSON array of chronic_ref_code strings; [] removes
    every row of that cd_code."""
    if not payload:
        c.add("$", "replace_all_empty", "ลบทะเบียนโรคเรื้อรังของ cd_code นี้ทั้งหมดของสถานพยาบาล",
              "removes every registry row of this cd_code for the facility")
    seen: set[str] = set()
    for i, v in enumerate(payload):
        if type(v) is not str:
            c.bad_type(f"$[{i}]", "string", v)
        elif not v or v.isspace():
            c.add(f"$[{i}]", "not_empty", "", "")
        elif v in seen:
            c.add(f"$[{i}]", "duplicate_key", v, v)
        else:
            seen.add(v)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A request body the validator knows: name, URL path (with its query when that selects the body),
    the resource array (uploads), the known top-level keys and whether the body is an object or array."""

    name: str
    path: str
    resource_key: str
    top_keys: frozenset[str]
    title_th: str
    title_en: str
    check: Callable[[_Ctx, Any], None]
    root: str = "object"


def _ep(name: str, resource: str, keys: tuple[str, ...], th: str, en: str, check: Callable[[_Ctx, Any], None],
        path: str | None = None, root: str = "object") -> Endpoint:
    return Endpoint(name, path or f"/api/{name}", resource, frozenset(keys), th, en, check, root)


_STD = ("managingOrganization", "Patient")
ENDPOINTS: dict[str, Endpoint] = {e.name: e for e in (
    _ep("UpdatePHRv1", "Encounter", (*_STD, "AllergyIntolerance", "CarePlan", "Encounter", "scope"),
        "ข้อมูลสุขภาพรายบุคคล (การรับบริการ)", "personal health record (encounters)", _v_update_phr),
    _ep("AllergyIntolerancev1", "AllergyIntolerance", (*_STD, "AllergyIntolerance"),
        "ประวัติการแพ้ยา/อาหาร", "drug/food allergies", _v_allergy),
    _ep("PatientChronicRegisterv1", "ChronicDiseaseRegister", (*_STD, "ChronicDiseaseRegister"),
        "ทะเบียนโรคเรื้อรัง", "chronic-disease registry", _v_chronic),
    _ep("ImmunizationRegisterv1", "Immunization", (*_STD, "Immunization"),
        "ทะเบียนการได้รับวัคซีน", "vaccination register", _v_immunization),
    _ep("OrgEncounterSummary", "EncounterSummary", ("managingOrganization", "EncounterSummary"),
        "จำนวนการรับบริการรายวัน", "daily encounter counts", _v_org_summary),
    _ep("ReferralRequest", "ReferralRequest", (*_STD, "ReferralRequest"),
        "การส่งต่อผู้ป่วย", "referral", _v_referral),
    _ep("SelfObservation", "observation",
        ("system_name", "location_gis", "observation_ref_code", "person", "observation"),
        "ผลตรวจวัดด้วยตนเอง", "self/kiosk measurement", _v_self_observation),
    _ep("CareGiver", "CareGiver", (*_STD, "CareGiver"), "ผู้ดูแล", "caregiver", _v_caregiver),
    _ep("MedicationRequest", "MedicationRequest", (*_STD, "MedicationRequest"),
        "ใบสั่งยา", "prescription", _v_medication_request),
    _ep("DrugRelatedProblem", "DrugRelatedProblem", (*_STD, "DrugRelatedProblem"),
        "ปัญหาจากการใช้ยา", "drug-related problem", _v_drp),
    # utility bodies (§2.3 remove, §4)
    _ep("PatientChronicRegisterv1_remove", "", (), "ลบรายการทะเบียนโรคเรื้อรัง", "remove chronic registry rows",
        _v_chronic_remove, path="/api/PatientChronicRegisterv1?mode=remove", root="array"),
    _ep("UpdateAgentStatus", "", ("hospital_code", "agent_status", "agent_computer_name", "most_client_version",
                                  "agent_version"),
        "สถานะโปรแกรมส่งข้อมูล", "sending-agent status", _v_agent_status),
    _ep("GetAgentComputerName", "", ("hospital_code",), "เครื่องที่กำลังส่งข้อมูล", "computer currently sending",
        _v_agent_name),
    _ep("MaskEncounter", "", ("cid", "encounter_ref_code"), "ซ่อน/ตรวจสถานะการรับบริการที่ข้อมูลผิด",
        "mask or query a wrong encounter", _v_mask_encounter),
)}


def validate(endpoint: str, payload: Any) -> list[Issue]:
    """Every problem of ``payload`` (already parsed JSON) for ``endpoint`` (e.g. ``"UpdatePHRv1"``).

    Never raises on bad data; raises ``ValueError`` only for an endpoint name it does not know.
    """
    ep = ENDPOINTS.get(endpoint)
    if ep is None:
        raise ValueError(f"unknown endpoint {endpoint!r}; known: {', '.join(ENDPOINTS)}")
    c = _Ctx()
    if ep.root == "array":
        if type(payload) is not list:
            c.add("$", "payload_array", f"ได้ {_TYPE_TH.get(_json_type(payload), _json_type(payload))}",
                  f"got {_json_type(payload)}")
        else:
            ep.check(c, payload)
        return c.issues
    if type(payload) is not dict:
        c.add("$", "payload_object", f"ได้ {_TYPE_TH.get(_json_type(payload), _json_type(payload))}",
              f"got {_json_type(payload)}")
        return c.issues
    _top_keys(c, payload, ep.top_keys)
    ep.check(c, payload)
    return c.issues


def parse_and_validate(endpoint: str, body: bytes) -> tuple[Any, list[Issue]]:
    """Parse a request body and validate it: ``(payload or None, issues)``. A leading BOM is reported
    and then skipped so the rest of the body is still checked; bad UTF-8 or JSON stops there."""
    if endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; known: {', '.join(ENDPOINTS)}")
    c = _Ctx()
    if body.startswith(b"\xef\xbb\xbf"):
        c.add("$", "json_bom", "ลบ BOM (EF BB BF) ออกก่อนส่ง", "remove the EF BB BF bytes before sending")
        body = body[3:]
    elif body[:2] in (b"\xff\xfe", b"\xfe\xff"):
        c.add("$", "json_bom", "UTF-16 BOM — ต้องส่งเป็น UTF-8", "UTF-16 BOM; send UTF-8")
        return None, c.issues
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as ue:
            c.add("$", "json_utf8", f"ไบต์ที่ {ue.start}", f"at byte {ue.start}")
            return None, c.issues
        pos = getattr(e, "pos", None)
        where_th = f" ตำแหน่ง {pos}" if pos is not None else ""
        where_en = f" at position {pos}" if pos is not None else ""
        detail = mask_text(str(e.msg if hasattr(e, "msg") else e))[:120]
        c.add("$", "json_syntax", f"{detail}{where_th}", f"{detail}{where_en}")
        return None, c.issues
    return payload, c.issues + validate(endpoint, payload)


def validate_json_bytes(endpoint: str, body: bytes) -> list[Issue]:
    """Issues of a raw request body: BOM, invalid UTF-8 or JSON, then everything :func:`validate` finds."""
    return parse_and_validate(endpoint, body)[1]
