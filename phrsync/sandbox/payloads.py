"""What the server itself needs from each upload (facility, CID, refs, dates) and the validator bridge.

Content rules live in the shared validator (:mod:`phrsync.phr.validate`); this module only extracts the
keys used for storage and reports, in the validator's Issue shape, the few things storage cannot do without."""

from __future__ import annotations

import datetime as dt
import importlib
from dataclasses import dataclass
from typing import Any, Protocol, cast

from phrsync.thai import BANGKOK

BKK = BANGKOK  # zone-less times in payloads are Asia/Bangkok (spec §7.9)
HCODE_SYSTEM = "https://bps.moph.go.th/hcode/5"
CID_SYSTEM = "https://www.dopa.go.th"


class Validator(Protocol):
    """What the server needs of a validator: parse a body and report its issues in one pass."""

    def parse_and_validate(self, endpoint: str, body: bytes) -> tuple[Any, list[Any]]: ...


def load_validator() -> Validator:
    """The shared validator (:mod:`phrsync.phr.validate`), imported lazily so the server starts fast."""
    return cast(Validator, importlib.import_module("phrsync.phr.validate"))


def clean(text: str) -> str:
    """Drop NUL characters: PostgreSQL text cannot hold them and no PHR value needs them."""
    return text.replace("\x00", "") if "\x00" in text else text


def issue(path: str, rule: str, th: str, en: str, severity: str = "error") -> dict[str, Any]:
    return {"path": path, "rule": rule, "message_th": th, "message_en": en, "severity": severity}


def issue_dict(i: Any) -> dict[str, Any]:
    """Validator Issue (dataclass, pydantic model or dict) → plain dict for the JSON answer."""
    if isinstance(i, dict):
        d = i
    else:
        d = {k: getattr(i, k, None) for k in ("path", "rule", "message_th", "message_en", "severity")}
    return {k: d.get(k) for k in ("path", "rule", "message_th", "message_en", "severity")}


class Bad(Exception):
    """Payload missing something storage needs; carries validator-shaped issues."""

    def __init__(self, issues: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(issues)} issue(s)")
        self.issues = issues


def _dig(obj: Any, *keys: Any) -> Any:
    for k in keys:
        if isinstance(k, int):
            if not isinstance(obj, list) or len(obj) <= k:
                return None
        elif not isinstance(obj, dict):
            return None
        obj = obj[k] if isinstance(k, int) else obj.get(k)
    return obj


def org_hcode(payload: dict[str, Any], path: str = "managingOrganization") -> str:
    mo = payload.get("managingOrganization")
    v = _dig(mo, "identifier", "value")
    if not isinstance(v, str) or not v.strip():
        raise Bad([issue(f"{path}.identifier.value", "required", "ต้องระบุรหัสหน่วยบริการ 5 หลัก",
                         "facility code (5 digits) is required")])
    return v.strip()


def org_name(payload: dict[str, Any]) -> str:
    v = _dig(payload, "managingOrganization", "display")
    return clean(v) if isinstance(v, str) else ""


def org_agent(payload: dict[str, Any]) -> str:
    v = _dig(payload, "managingOrganization", "agent")
    return clean(v) if isinstance(v, str) else ""


def patient_cid(payload: dict[str, Any]) -> str:
    ids = _dig(payload, "Patient", "identifier")
    if isinstance(ids, list):
        for ident in ids:
            if isinstance(ident, dict) and (ident.get("type") == "CID" or ident.get("system") == CID_SYSTEM):
                v = ident.get("value")
                if isinstance(v, str) and len(v.strip()) == 13 and v.strip().isdigit():
                    return v.strip()
    raise Bad([issue("Patient.identifier", "required", "ต้องมีเลขประจำตัวประชาชน 13 หลัก",
                     "a 13-digit CID identifier is required")])


def is_scope_all(payload: dict[str, Any]) -> bool:
    s = _dig(payload, "managingOrganization", "scope") or payload.get("scope")
    return isinstance(s, str) and s.strip().upper() == "ALL"


def normalize_ref(hcode: str, ref: str) -> str:
    """Project default §7.3: keep ``HCODE:ref`` as sent, otherwise add the prefix once."""
    ref = clean(ref.strip())
    return ref if ref.startswith(f"{hcode}:") else f"{hcode}:{ref}"


def parse_time(value: Any) -> dt.datetime | None:
    """Any ISO 8601 value; zone-less means Asia/Bangkok (project default §7.9)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        t = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return t.replace(tzinfo=BKK) if t.tzinfo is None else t


@dataclass
class EncounterKey:
    ref: str
    day: str
    start_utc: str


def encounter_key(hcode: str, enc: Any, i: int) -> EncounterKey:
    path = f"Encounter[{i}]"
    ref = None
    ids = enc.get("identifier") if isinstance(enc, dict) else None
    if isinstance(ids, list):
        for ident in ids:
            if isinstance(ident, dict) and isinstance(ident.get("value"), str) and ident["value"].strip():
                if ref is None or ident.get("system") == HCODE_SYSTEM:
                    ref = ident["value"]
                if ident.get("system") == HCODE_SYSTEM:
                    break
    problems = []
    if ref is None:
        problems.append(issue(f"{path}.identifier", "required", "ต้องมีรหัสอ้างอิงการรับบริการ",
                              "encounter identifier is required"))
    start = parse_time(_dig(enc, "period", "start"))
    if start is None:
        problems.append(issue(f"{path}.period.start", "required", "ต้องระบุวันเวลาเริ่มรับบริการ (ISO 8601)",
                              "period.start (ISO 8601) is required"))
    if problems:
        raise Bad(problems)
    assert ref is not None and start is not None
    return EncounterKey(normalize_ref(hcode, ref), start.astimezone(BKK).date().isoformat(),
                        start.astimezone(dt.UTC).isoformat())


def require_list(payload: dict[str, Any], key: str, nonempty: bool = True) -> list[Any]:
    v = payload.get(key)
    if not isinstance(v, list) or (nonempty and not v):
        raise Bad([issue(key, "required", f"ต้องมี {key} อย่างน้อย 1 รายการ",
                         f"{key} must be a list with at least one item")])
    return v


def chronic_cd_code(item: Any, i: int) -> tuple[str, str]:
    ref = _dig(item, "chronic_ref_code")
    code = _dig(item, "code", "coding", 0, "code")
    problems = []
    if not isinstance(ref, str) or not ref.strip():
        problems.append(issue(f"ChronicDiseaseRegister[{i}].chronic_ref_code", "required",
                              "ต้องระบุ chronic_ref_code", "chronic_ref_code is required"))
    if not isinstance(code, str) or not code.strip():
        problems.append(issue(f"ChronicDiseaseRegister[{i}].code.coding[0].code", "required",
                              "ต้องระบุรหัสโรค (cd_code)", "disease code (cd_code) is required"))
    if problems:
        raise Bad(problems)
    return clean(ref.strip()), clean(code.strip())  # type: ignore[union-attr]


def summary_rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """OrgEncounterSummary rows; spec keys, with the tester's keys accepted as aliases (§7.5)."""
    items = require_list(payload, "EncounterSummary")
    rows, problems = [], []
    for i, it in enumerate(items):
        if not isinstance(it, dict):
            problems.append(issue(f"EncounterSummary[{i}]", "type", "ต้องเป็นออบเจ็กต์", "must be an object"))
            continue
        day = it.get("period_start") or it.get("period_end")
        d = parse_time(day) if isinstance(day, str) else None
        if d is None:
            problems.append(issue(f"EncounterSummary[{i}].period_start", "format", "วันที่ต้องเป็น yyyy-mm-dd",
                                  "period_start must be yyyy-mm-dd"))
            continue

        def num(*names: str, _it: dict[str, Any] = it) -> int:
            for n in names:
                v = _it.get(n)
                if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
                    return v
            return 0

        rows.append({"day": d.date().isoformat(), "opd": num("opd_encounter_count", "opd_count"),
                     "ipd": num("ipd_encounter_count", "ipd_count"), "ipd_discharge": num("ipd_discharge_count")})
    if problems:
        raise Bad(problems)
    return rows
