"""What each shipped code table is: key, title, how complete, where it comes from, what replaces it.

Kept apart from the loader so the facts about provenance (the field's main question: "where do
these codes come from?") can be read, reviewed and turned into docs without touching CSV parsing.
The facts restate ``data/SOURCES.md`` and ``f43-structure.md`` section 3; nothing here is invented.
"""

from __future__ import annotations

from dataclasses import dataclass

# completeness keyword -> (Thai, English) label shown to users
COMPLETENESS_LABELS: dict[str, tuple[str, str]] = {
    "complete": ("ครบตามแหล่งที่มา", "complete per its source"),
    "partial": ("ไม่ครบ", "partial"),
    "derived": ("อนุมานขึ้นเอง ต้องตรวจทาน", "derived here, needs review"),
    "examples": ("เฉพาะค่าตัวอย่าง", "example values only"),
    "empty": ("ว่าง ต้องจัดหาเอง", "empty, province must supply"),
    "user": ("ไฟล์ของผู้ใช้", "user-supplied file"),
}

SIL_TH = "SIL-TH terminology IG (github:sil-th/terminology-ig), a 2023 FHIR re-publication of THCC / 43-file lists"
PHR_SPEC = "MOPH-PHR spec v2.3 (examples only; live lists at https://phr1.moph.go.th/api/CodingSystem?System=<name>)"
OFFICIAL_43 = ("the current 43-file specification (โครงสร้างมาตรฐานข้อมูลด้านการแพทย์และสุขภาพ, via HDC / สนย.) "
               "and THCC (thcc.or.th, not checked here)")
PHR_CODINGSYSTEM = "the MOPH-PHR CodingSystem endpoint https://phr1.moph.go.th/api/CodingSystem?System=<name>"


@dataclass(frozen=True)
class TableSpec:
    """Static description of one table; the loader adds columns and rows."""

    name: str
    title_th: str
    title_en: str
    key: tuple[str, ...]
    completeness: str  # a COMPLETENESS_LABELS keyword
    completeness_note: str  # English detail: what is and is not there
    origin: str  # where the data comes from
    production: str  # what a real deployment must load instead
    note_th: str = ""  # one Thai sentence for users: how far to trust it, what to replace
    alt_key: str | None = None  # second column that also resolves a lookup (lab: old 2-digit code)
    allow_duplicate_keys: bool = False  # shipped data with two rows for a key: first wins
    derived_from: str | None = None  # built from another table instead of its own CSV

    @property
    def filename(self) -> str:
        return f"{self.name}.csv"


def _t(*specs: TableSpec) -> dict[str, TableSpec]:
    return {s.name: s for s in specs}


SPECS: dict[str, TableSpec] = _t(
    TableSpec(
        "prename", "คำนำหน้าชื่อ (กรมการปกครอง)", "Name prefix (DOPA)", ("prename_code",), "complete",
        "504 codes per the SIL-TH copy of the DOPA list.",
        f"{SIL_TH}: CS_DOPA_NamePrefix.fsh",
        "the DOPA name-prefix list (กรมการปกครอง) in its current release",
        "ครบตามสำเนา SIL-TH ปี 2566; ใช้งานจริงควรใช้รายการล่าสุดของกรมการปกครอง",
    ),
    TableSpec(
        "nation", "สัญชาติ / เชื้อชาติ", "Nationality / race", ("nation_code",), "complete",
        "272 codes (THCC IDs 6, 7); 099 = ไทย. No English names.",
        f"{SIL_TH}: CS_MoPH_Nationality.fsh",
        f"the nationality list of {OFFICIAL_43}",
        "ครบตามสำเนา SIL-TH (099 = ไทย); ไม่มีชื่อภาษาอังกฤษ",
    ),
    TableSpec(
        "instype", "สิทธิการรักษา (INSTYPE 4 หลัก)", "Coverage right (4-digit INSTYPE)", ("instype",), "complete",
        "Codes complete (110, THCC IDs 34/76/95/129/150). The main_group column (UCS/OFC/SSS/LGO...) is DERIVED "
        "here from the names; only UCS was seen in a MOPH-PHR example.",
        f"{SIL_TH}: CS_MoPH_CoverageType.fsh; main_group derived (see main_group_basis)",
        "THCC INSTYPE list; align main groups with NHSO inscl codes (สปสช.) and the PHR class_group CodingSystem",
        "รหัสครบ แต่คอลัมน์กลุ่มสิทธิหลัก (main_group) อนุมานขึ้นเอง ต้องเทียบกับ สปสช. และ class_group ของ PHR",
    ),
    TableSpec(
        "vaccines", "วัคซีน (EPI VACCINETYPE)", "Vaccine (EPI VACCINETYPE)", ("vaccinetype",), "complete",
        "131 codes (THCC ID 198). The cvx column is empty: no public CVX mapping was found.",
        f"{SIL_TH}: CS_MoPH_VaccineCode.fsh; PHR Immunization uses these codes with system "
        "https://refcode.moph.go.th/vaccine",
        f"the VACCINETYPE list of {OFFICIAL_43}",
        "ครบตามสำเนา SIL-TH; ไม่มีรหัส CVX",
    ),
    TableSpec(
        "lab_loinc", "รหัสการตรวจทางห้องปฏิบัติการ → LOINC", "Lab test (LABFU LABTEST) → LOINC", ("labtest",),
        "partial",
        "36 tests: all 21 old 2-digit NCD codes plus 15 common tests (8 of them from the SIL-TH 43fileplus lab "
        "profiles: TSH, HIV, VDRL, ABO, Rh, urine glucose and protein strips, hepatitis B), of ~1,400 7-digit codes; "
        "TMLT codes where a profile gives one. LOINC rows marked 'derived' or 'concept-source' need sign-off; "
        "OPEN CONFLICT on 0531004 (fasting or not).",
        f"{SIL_TH}: CS_MoPH_ICD10TMLab.fsh; 2-digit→7-digit map: github:inforeportable/EXPORT_SETTING_LABFU; "
        "LOINC: SIL-TH 43fileplus / mophncd profiles, Thai public sources, or derived (see loinc_mapping)",
        "the full ICD-10-TM lab list (THCC / THIS TMLT) and the current LOINC release (loinc.org), signed off by a "
        "lab or informatics lead",
        "มีเพียง 36 รายการจากราว 1,400; LOINC ที่อนุมานต้องให้ผู้เชี่ยวชาญแล็บรับรอง; 0531004 ยังขัดแย้ง",
        alt_key="labtest_2digit",
    ),
    TableSpec(
        "labtest_units", "หน่วยผลแล็บ (UCUM)", "Lab result units (UCUM)", ("labtest",), "partial",
        "Built at load time from lab_loinc.unit_ucum (after any lab_loinc override). 43-file LABFU carries no unit.",
        "derived: lab_loinc.csv column unit_ucum",
        "units confirmed by each laboratory for its own analyser and method",
        "สร้างจากคอลัมน์ unit_ucum ของ lab_loinc; แต่ละแล็บต้องยืนยันหน่วยของตน",
        alt_key="labtest_2digit",
        derived_from="lab_loinc",
    ),
    TableSpec(
        "mstatus", "สถานภาพสมรส → HL7", "Marital status (MSTATUS) → HL7", ("mstatus",), "complete",
        "Codes complete (THCC ID 3). HL7 mapping sourced only for 2 = M; the rest derived by meaning "
        "(5 แยก → L and 6 สมณะ → U need review).",
        f"{SIL_TH}: CS_MoPH_Patient.fsh; SIL-TH 43fileplus examples; MOPH-PHR PatientSummary",
        f"{OFFICIAL_43}; confirm the HL7 mapping with the PHR team",
        "รหัสครบ แต่การเทียบ HL7 ส่วนใหญ่อนุมาน (แยก, สมณะ ต้องตรวจทาน)",
    ),
    TableSpec(
        "sex", "เพศ", "Sex", ("sex",), "derived",
        "1 = ชาย, 2 = หญิง is the universal HIS / 43-file convention, but no official table was retrieved. A "
        "43-file check app (github:jingjoe/hos-report@533a382 frontend/modules/oppp/views/person/view.php) uses the "
        "same values.",
        "43-file convention; targets male/female and M/F from the MOPH-PHR spec",
        f"the PERSON.SEX list of {OFFICIAL_43}",
        "1 ชาย 2 หญิง ตามธรรมเนียม ยังไม่พบตารางทางการ",
    ),
    TableSpec(
        "chronic_groups", "กลุ่มโรคเรื้อรัง (ช่วง ICD-10)", "Chronic disease groups (ICD-10 ranges)", ("group",),
        "derived",
        "Ranges derived from the WHO ICD-10 block structure; no published range table was found. The PHR "
        "chronic-disease code is known only for DM (001).",
        "WHO ICD-10 2019 browser; MOPH-PHR spec (DM = 001)",
        "the HDC / กรมควบคุมโรค indicator definitions and the PHR cd_code CodingSystem",
        "ช่วงรหัสอนุมานจากโครงสร้าง ICD-10; รหัสโรคเรื้อรังของ PHR รู้เฉพาะเบาหวาน (001)",
    ),
    TableSpec(
        "chronic_typedisch", "สถานะการจำหน่ายโรคเรื้อรัง (TYPEDISCH)", "Chronic discharge type (TYPEDISCH)",
        ("typedisch",), "complete",
        "01–11 (THCC ID 33). PHR clinicalStatus 3 = ยังรักษาอยู่ matches 03.",
        f"{SIL_TH}: CS_MoPH_Discharge.fsh",
        OFFICIAL_43,
        "ครบตาม SIL-TH",
    ),
    TableSpec(
        "coverage_main_group", "กลุ่มสิทธิหลัก", "Coverage main groups", ("group_code",), "partial",
        "UCS, OFC, SSS, LGO, SEN, RAA, PI, SP, ... NRH, BFC and STP were not found in any public source. "
        "UCS appears twice (SIL-TH label and the MOPH-PHR display); the first row wins a lookup.",
        f"{SIL_TH}: CS_TH_CoverageType, CS_eClaim_CoverageType; th-core draft; MOPH-PHR spec",
        f"NHSO inscl codes (สปสช.) and the PHR class_group list from {PHR_CODINGSYSTEM}",
        "ไม่ครบ (ไม่พบ NRH, BFC, STP); ต้องเทียบกับ class_group ของ PHR",
        allow_duplicate_keys=True,
    ),
    TableSpec(
        "encounter_type", "ประเภทการมารับบริการ (PHR / TYPEIN)", "Encounter type (PHR / TYPEIN)",
        ("code_system", "code"), "partial",
        "PHR: only 1 = มาเอง (ห้องบัตร) is public. TYPEIN 1–5 complete per SIL-TH. Key is code_system:code.",
        f"{PHR_SPEC}; {SIL_TH}: CS_MoPH_Encounter.fsh",
        f"the encounter_type list from {PHR_CODINGSYSTEM}",
        "ค่าของ PHR รู้เพียง 1 = มาเอง (ห้องบัตร)",
    ),
    TableSpec(
        "typein_encounter", "TYPEIN → encounter_type ของ PHR", "43-file TYPEIN → PHR encounter_type", ("typein",),
        "partial",
        "TYPEIN 1–5 complete. Only TYPEIN 1 → PHR 1 is filled (derived by meaning); 2–5 are blank because no "
        "mapping is published.",
        f"{SIL_TH}: CS_MoPH_Encounter.fsh (THCC ID 130); f43-structure.md §3.6; MOPH-PHR spec",
        f"a mapping agreed with the PHR team, using the encounter_type list from {PHR_CODINGSYSTEM}",
        "เทียบได้เฉพาะ TYPEIN 1; รหัส 2–5 ยังว่าง จังหวัดต้องเติมเองด้วยไฟล์ extend",
    ),
    TableSpec(
        "diagtype", "ประเภทการวินิจฉัย (DIAGTYPE)", "Diagnosis type (DIAGTYPE)", ("diagtype",), "complete",
        "1–5 base standard; 6–7 only in the '43 แฟ้ม plus' list.",
        f"{SIL_TH}: CS_MoPH_Encounter.fsh (CS_43Plus_EncounterDiagnosisRole); f43-structure.md §3.5",
        OFFICIAL_43,
        "ครบ (6–7 มีเฉพาะ 43 แฟ้ม plus)",
    ),
    TableSpec(
        "typeout", "สถานะเมื่อเสร็จสิ้นบริการ (TYPEOUT)", "Visit outcome (TYPEOUT)", ("typeout",), "complete",
        "1–8 (THCC ID 82, marked 'Modified' in SIL-TH).",
        f"{SIL_TH}: CS_MoPH_Discharge.fsh; f43-structure.md §3.6",
        OFFICIAL_43,
        "ครบตาม SIL-TH",
    ),
    TableSpec(
        "person_codes", "รหัสแฟ้ม PERSON (DISCHARGE, FSTATUS, VSTATUS, ABOGROUP, RHGROUP)",
        "PERSON codes (DISCHARGE, FSTATUS, VSTATUS, ABOGROUP, RHGROUP)", ("field", "code"), "complete",
        "Small closed sets as a 43-file check app states them. Key is field:code, e.g. ABOGROUP:4.",
        "43-file check app github:jingjoe/hos-report@533a382 frontend/modules/oppp/views/person/view.php; "
        "f43-structure.md §3.1",
        OFFICIAL_43,
        "ครบตามแอปตรวจสอบ 43 แฟ้ม (ไม่ใช่เอกสารทางการ)",
    ),
    TableSpec(
        "service_codes", "รหัสการมารับบริการ (LOCATION, INTIME, SERVPLACE)",
        "Visit codes (LOCATION, INTIME, SERVPLACE)", ("field", "code"), "complete",
        "Two codes each. Key is field:code, e.g. INTIME:2.",
        f"{SIL_TH}: CS_MoPH_Encounter.fsh (THCC IDs 75, 76; PCU list); f43-structure.md §3.6",
        OFFICIAL_43,
        "ครบ",
    ),
    TableSpec(
        "dischstatus", "สถานภาพการจำหน่ายผู้ป่วยใน (DISCHSTATUS)", "Inpatient discharge status (DISCHSTATUS)",
        ("dischstatus",), "complete",
        "1–9 (THCC IDs 131/136). The source gives English text only; name_th is blank.",
        f"{SIL_TH}: CS_MoPH_Discharge.fsh; f43-structure.md §3.7",
        OFFICIAL_43,
        "รหัสครบ แต่แหล่งที่มามีเฉพาะชื่อภาษาอังกฤษ",
    ),
    TableSpec(
        "dischtype", "วิธีการจำหน่ายผู้ป่วยใน (DISCHTYPE)", "Inpatient discharge type (DISCHTYPE)", ("dischtype",),
        "complete",
        "1–5, 8, 9 (THCC ID 137).",
        f"{SIL_TH}: CS_MoPH_Discharge.fsh; f43-structure.md §3.7",
        OFFICIAL_43,
        "ครบตาม SIL-TH",
    ),
    TableSpec(
        "drugallergy_codes", "รหัสแฟ้มแพ้ยา (TYPEDX, ALEVEL, INFORMANT)", "Drug-allergy codes (TYPEDX, ALEVEL, INFORMANT)",
        ("field", "code"), "complete",
        "TYPEDX 1–5 (English text only), ALEVEL 1–8, INFORMANT 1–4. Key is field:code. Only ALEVEL 1 has a PHR "
        "allergy_seriousness value (same text). SYMPTOM (20 categories) is not included: the list was not found.",
        "f43-structure.md §3.15 (43-file check app github:jingjoe/hos-report@533a382); text from "
        f"{SIL_TH}: CS_MoPH_Allergy.fsh (THCC IDs 66, 67, 69)",
        f"{OFFICIAL_43}; PHR allergy_* lists from {PHR_CODINGSYSTEM}",
        "รหัสครบ; เทียบกับ PHR ได้เฉพาะ ALEVEL 1; ไม่มีรายการ SYMPTOM",
    ),
    TableSpec(
        "providertype", "ประเภทบุคลากร (PROVIDERTYPE)", "Provider type (PROVIDERTYPE)", ("providertype",), "complete",
        "01–14 plus 011 and 081–085 (THCC ID 61). 3-digit sub-codes do not fit the C(2) column of the 2016 schema.",
        f"{SIL_TH}: CS_MoPH_Provider.fsh; f43-structure.md §3.14",
        OFFICIAL_43,
        "ครบตาม SIL-TH",
    ),
    TableSpec(
        "council", "สภาวิชาชีพ (COUNCIL)", "Professional council (COUNCIL)", ("council",), "complete",
        "01–07 (THCC ID 62).",
        f"{SIL_TH}: CS_MoPH_Provider.fsh; f43-structure.md §3.14",
        OFFICIAL_43,
        "ครบตาม SIL-TH",
    ),
    TableSpec(
        "clinic", "แผนก / คลินิก (2 หลัก, ไม่แน่นอน)", "Clinic / department (2-digit, uncertain)", ("department",),
        "partial",
        "UNCERTAIN: the 2-digit e-Claim department list. The official 5-char 43-file CLINIC list was not found; "
        "clinic5_exporter_form (0+dd+00) is one exporter's practice and also resolves a lookup.",
        f"{SIL_TH}: CS_MoPH_Encounter.fsh (CS_eClaim_Clinic); f43-structure.md §3.4",
        "the official 43-file CLINIC list, or each hospital's own clinic table (supply it as clinic.csv)",
        "ไม่แน่นอน: เป็นรายการแผนกของ e-Claim; รหัส CLINIC 5 หลักทางการยังไม่พบ",
        alt_key="clinic5_exporter_form",
    ),
    TableSpec(
        "religion", "ศาสนา (RELIGION)", "Religion (RELIGION)", ("religion",), "complete",
        "00–09, 99 (THCC ID 8).",
        f"{SIL_TH}: CS_MoPH_Patient.fsh; f43-structure.md §3.1",
        OFFICIAL_43,
        "ครบตาม SIL-TH",
    ),
    TableSpec(
        "education", "การศึกษา (EDUCATION)", "Education (EDUCATION)", ("education",), "complete",
        "00–06, 09 (THCC ID 9).",
        f"{SIL_TH}: CS_MoPH_Patient.fsh; f43-structure.md §3.1",
        OFFICIAL_43,
        "ครบตาม SIL-TH",
    ),
    TableSpec(
        "typearea", "สถานะบุคคลในเขตรับผิดชอบ (TYPEAREA)", "Person type by area (TYPEAREA)", ("typearea",),
        "complete",
        "1–5 (THCC ID 16). hdc_catchment = Y for 1 and 3, the HDC catchment-population convention.",
        f"{SIL_TH}: CS_MoPH_Patient.fsh; f43-structure.md §3.1",
        OFFICIAL_43,
        "ครบตาม SIL-TH (HDC นับ 1 และ 3 เป็นประชากรในเขต)",
    ),
    TableSpec(
        "drug_tmt", "รหัสยา 24 หลัก → TMT", "24-digit drug code (DIDSTD) → TMT", ("didstd",), "empty",
        "Header only. No public DIDSTD→TMT list was found; the province must supply drug_tmt.csv "
        "(columns didstd, tmt_code, tmt_level, name, source) in its codes directory.",
        "none shipped: the PHR uses TMT GP (https://www.this.or.th/tmt/gp) and tmt_substance",
        "TMT releases from THIS (this.or.th) joined to each hospital's own drug list (24-digit code → TMT ID)",
        "ว่าง: จังหวัดต้องจัดทำไฟล์ drug_tmt.csv เอง (จาก TMT ของ THIS และบัญชียาของโรงพยาบาล)",
    ),
    TableSpec(
        "health_regions", "เขตสุขภาพ → จังหวัด", "Health region → province", ("province_code",), "complete",
        "All 77 provinces; region 13 = Bangkok.",
        "NHSO area table (github:damasac/thaipalliative_lte), checked for regions 5 and 6; names DOPA (SIL-TH) "
        "and kongvut/thai-province-data",
        "the MOPH announcement of the 13 health regions (re-check after any reorganisation)",
        "ครบ 77 จังหวัด",
    ),
    TableSpec(
        "sakaeo_districts", "อำเภอ จ.สระแก้ว", "Sa Kaeo districts", ("ampur_code",), "complete",
        "The 9 ampur 2701–2709.",
        "DOPA codes (SIL-TH CS_DOPA_Location); English names kongvut/thai-province-data",
        "DOPA administrative-area codes (กรมการปกครอง)",
        "ครบ 9 อำเภอ",
    ),
    TableSpec(
        "sakaeo_tambons", "ตำบล จ.สระแก้ว", "Sa Kaeo sub-districts", ("tambon_code",), "complete",
        "The 59 tambon with English name and postcode.",
        "DOPA codes (SIL-TH CS_DOPA_Location); English names and postcodes kongvut/thai-province-data",
        "DOPA administrative-area codes (กรมการปกครอง)",
        "ครบ 59 ตำบล",
    ),
    TableSpec(
        "sakaeo_facilities", "สถานบริการ จ.สระแก้ว", "Sa Kaeo health facilities", ("hospcode",), "partial",
        "139 units from a secondary source (HDC-fed dashboard). Private clinics and hospitals are NOT included; "
        "tambon_code is filled for 88 of 139.",
        "github:strategicsko-alt/strategic-skomoph sa_kaeo_health_facilities.json (secondary, not the MOPH registry)",
        "the MOPH hospital-code registry (รหัสสถานพยาบาล, สป.สธ.; HDC chospital); supply it as hospitals.csv or "
        "replace this file",
        "ข้อมูลทุติยภูมิ ไม่รวมคลินิก/โรงพยาบาลเอกชน; ใช้ทะเบียนรหัสสถานพยาบาลของ สป.สธ. แทน",
    ),
    TableSpec(
        "ncd_screen", "คัดกรอง NCD (สูบบุหรี่ / ดื่มสุรา)", "NCD screening (smoking / alcohol)", ("field", "code"),
        "complete",
        "SMOKE and ALCOHOL codes (THCC IDs 166, 167). Key is field:code, e.g. SMOKE:1.",
        f"{SIL_TH}: CS_MoPH_NCD.fsh",
        OFFICIAL_43,
        "ครบตาม SIL-TH",
    ),
    TableSpec(
        "phr_codingsystems", "ระบบรหัสของ MOPH-PHR (ตัวอย่าง)", "MOPH-PHR coding systems (examples)",
        ("name", "code"), "examples",
        "Example values only, usually one per system, from the spec. Key is name:code.",
        PHR_SPEC,
        f"the full lists from {PHR_CODINGSYSTEM}",
        "มีเฉพาะค่าตัวอย่างจากเอกสาร ต้องดึงรายการเต็มจาก CodingSystem ของ PHR",
    ),
)
