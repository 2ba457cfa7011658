"""Catalogue of the payload rules the validator applies, each with a stable code and where it comes from.

The codes are part of the product's interface: the builder, the local server's error bodies and the
tests all name rules by code, so a code is never renamed. ``basis`` says whether the MOPH-PHR spec
(section numbers of /work/shared/reference/moph-phr-api.md) requires the rule or phrsync chose it
where the spec is silent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One validation rule: ``error`` means the server refuses the payload, ``warning`` means it accepts it."""

    code: str
    severity: Severity
    title_th: str
    title_en: str
    basis: str


def _r(code: str, severity: Severity, th: str, en: str, basis: str) -> Rule:
    return Rule(code, severity, th, en, basis)


_ALL: tuple[Rule, ...] = (
    # --- the body itself -------------------------------------------------------------------------
    _r("json_bom", "error", "ข้อมูลขึ้นต้นด้วย BOM", "body starts with a byte-order mark (BOM)",
       "spec (intro): the spec's curl removes the UTF-8 BOM before sending, so a leading BOM is not accepted"),
    _r("json_utf8", "error", "ข้อมูลไม่ใช่ UTF-8 ที่ถูกต้อง", "body is not valid UTF-8",
       "spec (intro): real payloads must be strict UTF-8 JSON"),
    _r("json_syntax", "error", "รูปแบบ JSON ไม่ถูกต้อง", "body is not valid JSON",
       "spec (intro): real payloads must be strict JSON (no comments, no trailing commas)"),
    _r("payload_object", "error", "ข้อมูลต้องเป็นออบเจ็กต์ JSON", "payload must be a JSON object",
       "spec §2.0: every upload is an object {managingOrganization, Patient, <ResourceArray>}"),
    _r("payload_array", "error", "ข้อมูลต้องเป็นอาร์เรย์ JSON", "payload must be a JSON array",
       "spec §2.3: the remove call's body is a JSON array of chronic_ref_code strings"),
    _r("unknown_key", "warning", "ไม่รู้จักชื่อฟิลด์นี้", "unknown key",
       "phrsync choice: keys outside the spec are accepted but are usually typos (e.g. 'Encounters')"),
    # --- presence and JSON types -------------------------------------------------------------------
    _r("required", "error", "ขาดข้อมูลที่จำเป็น", "required field missing",
       "spec §2.x/§3.x tables, column 'Req.' = yes; §7.1 lists missing CID, gender, birthDate, Encounter and "
       "encounter identifier as HTTP 400"),
    _r("recommended", "warning", "ควรมีข้อมูลนี้", "expected field missing",
       "spec tables marked 'expected' or 'yes (in samples)' (e.g. managingOrganization.agent §2.0, "
       "Encounter.Coverage §3.2, managingOrganization inside resource items §2.2–2.4)"),
    _r("type", "error", "ชนิดข้อมูลไม่ถูกต้อง", "wrong JSON type",
       "spec tables, column 'Type'; §7.1 answers a wrong type with HTTP 400"),
    _r("not_empty", "error", "ข้อมูลที่จำเป็นต้องไม่เป็นค่าว่าง", "required value is empty",
       "phrsync choice: an empty or blank string in a required field carries no data"),
    _r("empty_value", "warning", "ค่าว่าง", "empty value",
       "phrsync choice: an empty optional string is better left out"),
    _r("min_items", "error", "ต้องมีอย่างน้อย 1 รายการ", "array must have at least one item",
       "spec §2.1/§3.0: UpdatePHRv1 holds at least one Encounter; required arrays (identifier, name, coding, "
       "resource arrays) need an item"),
    _r("shape_variant", "warning", "ใช้รูปแบบทางเลือก (รับได้)", "alternative shape accepted",
       "spec §7.5: variants seen in the sources (vital_signs array, Encounter.type object, numeric "
       "address_code, ...) are accepted; the spec's own shape is preferred"),
    _r("alias_key", "warning", "ใช้ชื่อฟิลด์แบบเครื่องมือทดสอบ", "tester key name used as an alias",
       "spec §2.9/§7.5: OrgEncounterSummary tester keys (period_end, opd_count, ipd_count) are aliases; "
       "follow the spec's key names"),
    _r("unspecified_content", "warning", "สเปกไม่ได้กำหนดโครงสร้าง ไม่ได้ตรวจเนื้อหา",
       "the spec gives no structure; content not checked",
       "spec §3.0/§3.2: CarePlan and Claim have no structure in any source; send []"),
    # --- code values -------------------------------------------------------------------------------
    _r("enum", "error", "ค่าไม่อยู่ในรายการที่กำหนด", "value not in the allowed set",
       "spec §3.1 (gender male/female only, HumanName use, telecom), §3.2 (class AMB/IMP, FHIR Encounter "
       "status), §2.2/§2.4 FHIR value sets, §2.6 gender M/F"),
    _r("identifier_system", "error", "ระบบรหัส (system) ของ identifier ไม่ถูกต้อง", "wrong identifier system",
       "spec §2.0 (facility: https://bps.moph.go.th/hcode/5), §3.1 (CID: https://www.dopa.go.th), "
       "§3.2 (encounter identifier: hcode/5)"),
    _r("cid_missing", "error", "ไม่มีเลขประจำตัวประชาชน", "no national ID (CID) identifier",
       "spec §3.1: Patient.identifier must include the national ID"),
    _r("cid_format", "error", "เลขประจำตัวประชาชนต้องเป็นตัวเลข 13 หลัก", "CID must be 13 digits",
       "spec §3.1/§2.6: value = 13 digits"),
    _r("cid_checksum", "error", "เลขตรวจสอบของเลขประจำตัวประชาชนไม่ถูกต้อง", "CID check digit is wrong",
       "phrsync choice: the DOPA check-digit rule (digit 13 = (11 - Σ dᵢ·(14-i) mod 11) mod 10)"),
    _r("hcode_format", "error", "รหัสสถานพยาบาลต้องเป็นตัวเลข 5 หลัก", "facility code must be 5 digits",
       "spec §1.2/§2.0: HCODE is the facility's 5-digit code"),
    _r("org_mismatch", "warning", "รหัสสถานพยาบาลไม่ตรงกับผู้ส่ง", "facility differs from the sender",
       "phrsync choice: a managingOrganization inside an item normally repeats the sender (§2.0); "
       "the token check (§7.1, HTTP 403) is the server's job"),
    _r("encounter_ref_format", "error", "รูปแบบรหัสอ้างอิงการรับบริการไม่ถูกต้อง",
       "encounter reference has the wrong format",
       "spec §3.2/§7.3: value is 'HCODE:VN' with a non-empty visit reference; phrsync choice: no spaces"),
    _r("encounter_ref_prefix", "warning", "รหัสอ้างอิงไม่มีคำนำหน้า HCODE: (ระบบจะเติมให้)",
       "encounter reference lacks the 'HCODE:' prefix (it will be added)",
       "spec §7.3: a value that does not start with '<HCODE>:' is prefixed by the server"),
    _r("encounter_ref_hcode", "error", "คำนำหน้ารหัสอ้างอิงเป็นรหัสสถานพยาบาลอื่น",
       "encounter reference is prefixed with another facility's code",
       "phrsync choice (§7.3): the prefix must be the sender's HCODE, otherwise OrganizationSummary and "
       "RemoveEncounter cannot match it"),
    _r("duplicate_key", "error", "รหัสอ้างอิงซ้ำกันในข้อมูลชุดเดียว", "duplicate reference key in one payload",
       "phrsync choice: the upsert keys of §7.4 (encounter_ref_code, chronic_ref_code, period_start) must be "
       "unique within a payload"),
    _r("one_encounter", "warning", "ควรส่งครั้งละ 1 การรับบริการ", "send one encounter per payload",
       "spec §3.3: without scope ALL, put exactly one item in Encounter[]"),
    _r("replace_all_empty", "warning", "รายการว่างจะลบข้อมูลเดิมทั้งหมด",
       "an empty list deletes everything stored",
       "spec §2.4: ImmunizationRegisterv1 replaces the person's full vaccine list for the facility; "
       "§2.3: an empty remove list removes every registry row of that cd_code"),
    # --- dates and times ---------------------------------------------------------------------------
    _r("iso_date", "error", "วันที่ต้องอยู่ในรูปแบบ yyyy-mm-dd", "date must be yyyy-mm-dd",
       "spec §3.1: birthDate is yyyy-mm-dd, Gregorian year; §2.3/§2.9 dates likewise"),
    _r("iso_datetime", "error", "วันเวลาต้องอยู่ในรูปแบบ ISO 8601", "date-time must be ISO 8601",
       "spec §3.2/§7.9: ISO 8601 (yyyy-mm-ddThh:mm[:ss[.fff]][Z|±hh:mm])"),
    _r("datetime_no_tz", "warning", "วันเวลาไม่ระบุเขตเวลา (ถือเป็นเวลาประเทศไทย)",
       "date-time has no time zone (taken as Asia/Bangkok)",
       "spec §7.9: a zone-less value is accepted and treated as Asia/Bangkok; an explicit offset is clearer"),
    _r("datetime_date_only", "warning", "มีแต่วันที่ ไม่มีเวลา", "date-time has a date only",
       "phrsync choice: FHIR dateTime allows a bare date, but PHR shows visit times"),
    _r("date_has_time", "warning", "ช่องวันที่มีเวลาต่อท้าย", "date field carries a time",
       "spec §3.1: birthDate is yyyy-mm-dd; [3P] exporters send a full date-time, which is accepted"),
    _r("buddhist_year", "error", "ปีเป็นพุทธศักราช ต้องใช้คริสต์ศักราช", "year is Buddhist era; use the Gregorian year",
       "spec §3.1: dates use the Gregorian (C.E.) year; phrsync choice: a year ≥ 2400 is read as B.E."),
    _r("future_date", "error", "วันที่อยู่ในอนาคต", "date is in the future",
       "phrsync choice: births, visits, results and records cannot lie more than 1 day ahead "
       "(appointments and expiry dates may)"),
    _r("date_implausible", "warning", "วันที่ไม่น่าเป็นไปได้", "implausible date",
       "phrsync choice: a year before 1900, or 1970-01-01 which the read side uses as 'empty' (§7.9)"),
    _r("date_before_birth", "warning", "วันที่ก่อนวันเกิด", "date before the birth date",
       "phrsync choice: a visit or record dated before the patient's birth is almost always a data error"),
    _r("period_order", "error", "วันสิ้นสุดอยู่ก่อนวันเริ่มต้น", "end is before start",
       "phrsync choice (FHIR Period invariant per-1): period.end, dischargeDate, appointment end and "
       "validityPeriod.end are not before their start"),
    _r("summary_span", "error", "ส่งได้ไม่เกิน 1 เดือนต่อครั้ง", "at most one month per call",
       "spec §2.9: keep each OrgEncounterSummary call to one month or less"),
    # --- codings -----------------------------------------------------------------------------------
    _r("coding_system", "error", "ระบบรหัส (system) ของ coding ไม่ถูกต้องหรือไม่มี",
       "coding system missing or wrong",
       "spec §6 and field tables: Condition uses ICD-10, Immunization the vaccine system, class v3-ActCode, "
       "allergy/condition status the HL7 systems; the intro notes spec samples lacking 'system' are not valid"),
    _r("coding_system_local", "warning", "ใช้ระบบรหัสท้องถิ่นหรือระบบอื่น", "local or other code system used",
       "phrsync choice: §3.2 allows a local lab system and [3P] local drug codes; PHR cannot map them to its "
       "summary columns"),
    _r("code_format", "error", "รูปแบบรหัสไม่ถูกต้อง", "code has the wrong format",
       "spec §3.2/§6: ICD-10 is a letter, 2 digits and an optional .x part (e.g. E11.9; the dot may be left "
       "out as in 43-file data); LOINC is nnnnn-c with its mod-10 check digit"),
    _r("code_unusual", "warning", "รหัสมีรูปแบบผิดปกติหรือไม่อยู่ในรายการที่รู้จัก",
       "code has an unusual format or is not in the known list",
       "phrsync choice: cd_code 3 digits (§2.3), nationality 3 digits (§3.1), address_code 6 digits (§3.1), "
       "TMT numeric (§6), 43-file vaccine list (§2.4, codes/vaccines.csv)"),
    _r("reference_format", "warning", "รูปแบบการอ้างอิงผู้บันทึกไม่ถูกต้อง", "practitioner reference format",
       "spec §2.2/§2.8: reference is 'Practitioner/<licence>'"),
    # --- numbers -----------------------------------------------------------------------------------
    _r("number_range", "error", "ตัวเลขอยู่นอกช่วงที่เป็นไปได้", "number outside the possible range",
       "phrsync choice: counts and amounts are ≥ 0, doses and quantities > 0, latitude/longitude in range"),
    _r("vital_range", "error", "สัญญาณชีพมีค่าที่เป็นไปไม่ได้", "physically impossible vital sign",
       "phrsync choice: e.g. systolic BP outside 30–350 mmHg, temperature outside 25–45 °C, 0 for any vital"),
    _r("vital_unusual", "warning", "สัญญาณชีพมีค่าผิดปกติมาก", "very unusual vital sign",
       "phrsync choice: possible but rare values, worth checking at the source"),
    _r("bp_order", "error", "ความดันตัวล่างต้องน้อยกว่าตัวบน", "diastolic must be below systolic",
       "phrsync choice: diastolic ≥ systolic is physically impossible (usually swapped fields)"),
    _r("bmi_mismatch", "warning", "ดัชนีมวลกายไม่ตรงกับน้ำหนัก/ส่วนสูง", "BMI does not match weight and height",
       "phrsync choice: BMI differs from weight/height² by more than 5 % (and 1 kg/m²)"),
)

RULES: dict[str, Rule] = {r.code: r for r in _ALL}
