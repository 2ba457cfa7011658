"""The validator's building blocks: the :class:`Issue` it reports, the state of one run (``_Ctx``), and the
checks of single values that every resource uses: JSON types, dates and times, codings, quantities, periods
and code formats (CID, HCODE, LOINC, ICD-10, the 43-file vaccine codes).

None of them knows a resource (:mod:`.resources` composes them). Each getter returns the value when it is
usable, else None, and records what is wrong at its path; the fast paths keep a valid payload from paying
for the checks that name a problem.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import re
import time
from dataclasses import dataclass
from importlib.resources import files
from typing import Any, ClassVar

from phrsync.pdpa import cid_is_valid, mask_cid, mask_text
from phrsync.phr.rules import RULES, Severity

# --- formats ------------------------------------------------------------------------------------------
_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_DT_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?(Z|[+-][0-9]{2}:?[0-9]{2})?")
_HCODE_RE = re.compile(r"[0-9]{5}")
_ICD10_RE = re.compile(r"[A-Z][0-9]{2}(?:\.?[0-9A-Z]{1,4})?")
_LOINC_RE = re.compile(r"[0-9]{1,7}-[0-9]")
_BKK = dt.timezone(dt.timedelta(hours=7))
_EPOCH_EMPTY = dt.date(1970, 1, 1)
_ONE_DAY = dt.timedelta(days=1)
_TYPE_TH = {"string": "ข้อความ", "object": "ออบเจ็กต์", "array": "อาร์เรย์", "number": "ตัวเลข",
            "integer": "จำนวนเต็ม", "boolean": "ค่าจริง/เท็จ", "null": "null"}


# --- issues -------------------------------------------------------------------------------------------

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


# --- the state of one run -----------------------------------------------------------------------------

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


# --- primitive getters: each returns the value when usable, else None, and records what is wrong ------

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


# --- dates, times and periods -------------------------------------------------------------------------

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


# --- codings and quantities ---------------------------------------------------------------------------

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


# --- identifiers and code formats ---------------------------------------------------------------------

def _hcode(c: _Ctx, path: _Path, v: str) -> bool:
    if _HCODE_RE.fullmatch(v) is None:
        c.add(path, "hcode_format", f"ได้ '{_short(v)}'", f"got '{_short(v)}'")
        return False
    return True


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


def _icd10_code(c: _Ctx, path: _Path, code: str) -> None:
    if _ICD10_RE.fullmatch(code) is None:
        c.add(path, "code_format", f"ICD-10 ได้ '{_short(code)}'", f"ICD-10, got '{_short(code)}'")


@functools.cache
def _vaccine_codes() -> frozenset[str]:
    """43-file EPI VACCINETYPE codes shipped with phrsync (complete per the THCC list, see codes README)."""
    data = files("phrsync.terminology").joinpath("data/vaccines.csv")
    with data.open(encoding="utf-8") as f:
        return frozenset(row["vaccinetype"].strip() for row in csv.DictReader(f) if row.get("vaccinetype"))
