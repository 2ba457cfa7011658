"""The 43-file structures phrsync needs, defined once.

Readers, row checks, staging tables, the HDC loader and the synthetic generator all read this
registry, so a field added here is read, checked, stored and generated everywhere at once.

Facts come from ../shared/reference/f43-structure.md (section 2): field order, types and widths of
the 2016 HDC schema, NOT NULL as "required", and the fields newer versions append after D_UPDATE.

Spec line format: ``NAME TYPE FLAGS`` where TYPE is ``C<n>`` (text up to n), ``T`` (long text),
``D`` (date), ``DT`` (date-time), ``N<p>.<s>`` (decimal), ``I<n>`` (integer of up to n digits);
FLAGS is any of ``K`` (part of the record key), ``R`` (required), ``+`` (appended by newer
versions), ``F`` (a date that may lie in the future, e.g. an appointment), ``P`` (personal: masked
in every report).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

# ---------------------------------------------------------------------------------------------
# Field kinds


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # "C" text, "T" long text, "D" date, "DT" date-time, "N" decimal, "I" integer
    length: int | None = None  # max characters (C), digits (I), precision (N)
    scale: int | None = None  # decimals (N)
    key: bool = False
    required: bool = False
    appended: bool = False  # added after D_UPDATE by newer versions
    future_ok: bool = False
    personal: bool = False
    pattern: str | None = None  # regular expression a non-empty value must match fully
    codes: str | None = None  # name of a closed code set (see CODESETS) the value must belong to

    @property
    def sql_name(self) -> str:
        return self.name.lower()

    @property
    def duck_type(self) -> str:
        """Column type in the staging store."""
        return {
            "D": "DATE",
            "DT": "TIMESTAMP",
            "N": "DOUBLE",
            "I": "BIGINT",
        }.get(self.kind, "VARCHAR")

    @property
    def mysql_type(self) -> str:
        """Column type in an HDC schema (the 2016 HDC schema's types)."""
        if self.kind == "C":
            return f"VARCHAR({self.length or 255})"
        if self.kind == "T":
            return "TEXT"
        if self.kind == "D":
            return "DATE"
        if self.kind == "DT":
            return "DATETIME"
        if self.kind == "N":
            return f"DECIMAL({self.length or 11},{self.scale or 2})"
        return "BIGINT"


@dataclass(frozen=True)
class FileSpec:
    """One 43-file table (e.g. SERVICE)."""

    name: str  # upper case, as in the standard
    title_th: str
    title_en: str
    kind: str  # "registry" (cumulative) or "service"
    fields: tuple[Field, ...] = field(default_factory=tuple)

    @property
    def table(self) -> str:
        """Lower-case table name, as HDC and the export file names use."""
        return self.name.lower()

    @cached_property
    def base_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if not f.appended)

    @cached_property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @cached_property
    def by_name(self) -> dict[str, Field]:
        return {f.name: f for f in self.fields}

    @cached_property
    def key(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.key)

    @cached_property
    def date_field(self) -> str | None:
        """The field that places a record in time, for date-range queries."""
        for cand in ("DATE_SERV", "DATETIME_ADMIT", "DATE_DIAG", "DATERECORD", "DDEATH", "BDATE"):
            if cand in self.by_name:
                return cand
        return None

    def layouts(self) -> list[tuple[str, ...]]:
        """Possible header-less column layouts, shortest first: the base fields, then each
        number of appended fields in order (older exporters stop anywhere in the appended tail)."""
        base = tuple(f.name for f in self.base_fields)
        extra = [f.name for f in self.fields if f.appended]
        return [base + tuple(extra[:i]) for i in range(len(extra) + 1)]


# ---------------------------------------------------------------------------------------------
# Closed code sets the row checks know (from f43-structure.md section 3). Larger tables
# (PRENAME, NATION, INSTYPE, VACCINETYPE, LABTEST) live in phrsync.terminology.

CODESETS: dict[str, frozenset[str]] = {
    "SEX": frozenset({"1", "2"}),
    "MSTATUS": frozenset({"1", "2", "3", "4", "5", "6", "9"}),
    "TYPEAREA": frozenset({"1", "2", "3", "4", "5"}),
    "DISCHARGE": frozenset({"1", "2", "3", "9"}),
    "FSTATUS": frozenset({"1", "2"}),
    "ABOGROUP": frozenset({"1", "2", "3", "4"}),
    "RHGROUP": frozenset({"1", "2"}),
    "DIAGTYPE": frozenset({"1", "2", "3", "4", "5", "6", "7"}),
    "TYPEIN": frozenset({"1", "2", "3", "4", "5"}),
    "TYPEOUT": frozenset({"1", "2", "3", "4", "5", "6", "7", "8"}),
    "LOCATION": frozenset({"1", "2"}),
    "INTIME": frozenset({"1", "2"}),
    "SERVPLACE": frozenset({"1", "2"}),
    "DISCHSTATUS": frozenset({"1", "2", "3", "4", "5", "6", "7", "8", "9"}),
    "DISCHTYPE": frozenset({"1", "2", "3", "4", "5", "8", "9"}),
    "TYPEDISCH": frozenset({f"{i:02d}" for i in range(1, 12)}),
    "TYPEDX": frozenset({"1", "2", "3", "4", "5"}),
    "ALEVEL": frozenset({"1", "2", "3", "4", "5", "6", "7", "8"}),
    "INFORMANT": frozenset({"1", "2", "3", "4"}),
    "SMOKE": frozenset({"1", "2", "3", "4", "9"}),
    "ALCOHOL": frozenset({"1", "2", "3", "4", "9"}),
}

# Value patterns (full match) for fields whose form is fixed.
HOSP = r"[0-9A-Za-z]{5}"
ICD10 = r"[A-Z][0-9]{2}[0-9A-Z]{0,4}"  # ICD-10-TM without the dot, e.g. E119, I10, Z000
PATTERNS: dict[str, str] = {
    "HOSPCODE": HOSP,
    "CID": r"[0-9]{13}",
    "DIAGCODE": ICD10,
    "CHRONIC": ICD10,
    "CDEATH": ICD10,
    "CDEATH_A": ICD10,
    "CDEATH_B": ICD10,
    "CDEATH_C": ICD10,
    "CDEATH_D": ICD10,
    "ODISEASE": ICD10,
    "APDIAG": ICD10,
    "BRESULT": ICD10,
    "PROCEDCODE": r"[0-9A-Z]{2,7}",
    "VACCINETYPE": r"[0-9A-Z]{3}",
    "LABTEST": r"[0-9]{2}|[0-9]{7}",
    "INSTYPE": r"[0-9]{4}",
    "INSTYPE_NEW": r"[0-9]{4}",
    "PRENAME": r"[0-9]{3}",
    "NATION": r"[0-9]{3}",
    "RACE": r"[0-9]{3}",
    "CLINIC": r"[0-9A-Za-z]{5}",
    "TIME_SERV": r"([01][0-9]|2[0-3])[0-5][0-9][0-5][0-9]",
    "CHANGWAT": r"[0-9]{2}",
    "AMPUR": r"[0-9]{2}",
    "TAMBON": r"[0-9]{2}",
    "VILLAGE": r"[0-9]{1,2}",
}
# Facility-code fields other than HOSPCODE that must look like a facility code when filled.
for _f in (
    "MAIN", "SUB", "HSUB", "REFERINHOSP", "REFEROUTHOSP", "HOSPDEATH", "HOSP_DX", "HOSP_RX",
    "VACCINEPLACE", "INFORMHOSP", "SCREENPLACE", "ANCPLACE", "BHOSP", "LABPLACE",
    "CHRONICFUPLACE", "MOVEFROM", "MOVETO",
):
    PATTERNS[_f] = HOSP

PERSONAL = {"CID", "NAME", "LNAME", "FATHER", "MOTHER", "COUPLE", "PASSPORT", "TELEPHONE", "MOBILE",
            "INSID", "HOUSE_ID", "HOUSENO", "REGISTERNO"}
FUTURE_OK = {"APDATE", "EXPIREDATE", "EDC"}

_TYPE_RE = re.compile(r"^(C|T|DT|D|N|I)(\d+)?(?:\.(\d+))?$")


def _parse(spec: str) -> tuple[Field, ...]:
    out: list[Field] = []
    for line in spec.strip().splitlines():
        parts = line.split()
        name, typ = parts[0], parts[1]
        flags = parts[2] if len(parts) > 2 else ""
        m = _TYPE_RE.match(typ)
        if not m:
            raise ValueError(f"bad type {typ!r} for {name}")
        kind, length, scale = m.group(1), m.group(2), m.group(3)
        out.append(
            Field(
                name=name,
                kind=kind,
                length=int(length) if length else None,
                scale=int(scale) if scale else None,
                key="K" in flags,
                required="R" in flags or "K" in flags,
                appended="+" in flags,
                future_ok="F" in flags or name in FUTURE_OK,
                personal="P" in flags or name in PERSONAL,
                pattern=PATTERNS.get(name),
                codes=name if name in CODESETS else None,
            )
        )
    return tuple(out)


def _file(name: str, th: str, en: str, kind: str, spec: str) -> FileSpec:
    return FileSpec(name=name, title_th=th, title_en=en, kind=kind, fields=_parse(spec))


# ---------------------------------------------------------------------------------------------
# The registry. Keys: the fields that identify one record across exports (the "PK" of both HDC
# schemas, plus the 2016-only or newer-only key fields where a record would otherwise collapse
# with another, e.g. LABFU needs SEQ to keep results of different visits apart).

FILES: dict[str, FileSpec] = {}


def _register(*specs: FileSpec) -> None:
    for s in specs:
        FILES[s.name] = s


_register(
    _file("PERSON", "ข้อมูลประชากร", "Persons", "registry", """
HOSPCODE C5 K
CID C13
PID C15 K
HID C14
PRENAME C3 R
NAME C50 R
LNAME C50 R
HN C15
SEX C1 R
BIRTH D R
MSTATUS C1
OCCUPATION_OLD C3
OCCUPATION_NEW C4
RACE C3
NATION C3 R
RELIGION C2
EDUCATION C2
FSTATUS C1
FATHER C13
MOTHER C13
COUPLE C13
VSTATUS C1
MOVEIN D
DISCHARGE C1
DDISCHARGE D
ABOGROUP C1
RHGROUP C1
LABOR C2
PASSPORT C8
TYPEAREA C1 R
D_UPDATE DT R
TELEPHONE C15 +
MOBILE C15 +
"""),
    _file("ADDRESS", "ที่อยู่", "Addresses", "registry", """
HOSPCODE C5 K
PID C15 K
ADDRESSTYPE C1 K
HOUSE_ID C11
HOUSETYPE C1 R
ROOMNO C10
CONDO C75
HOUSENO C75
SOISUB C255
SOIMAIN C255
ROAD C255
VILLANAME C255
VILLAGE C2 R
TAMBON C2 R
AMPUR C2 R
CHANGWAT C2 R
TELEPHONE C15
MOBILE C15
D_UPDATE DT R
CID C13 +
"""),
    _file("CARD", "สิทธิการรักษา", "Coverage cards", "registry", """
HOSPCODE C5 K
PID C15 K
INSTYPE_OLD C2
INSTYPE_NEW C4 K
INSID C18
STARTDATE D
EXPIREDATE D
MAIN C5
SUB C5
D_UPDATE DT R
CID C13 +
"""),
    _file("DEATH", "การเสียชีวิต", "Deaths", "registry", """
HOSPCODE C5 K
PID C15 K
HOSPDEATH C5
AN C9
SEQ C16
DDEATH D R
CDEATH_A C6 R
CDEATH_B C6
CDEATH_C C6
CDEATH_D C6
ODISEASE C6
CDEATH C6 R
PREGDEATH C1
PDEATH C1 R
PROVIDER C15
D_UPDATE DT R
CID C13 +
"""),
    _file("CHRONIC", "ทะเบียนโรคเรื้อรัง", "Chronic disease register", "registry", """
HOSPCODE C5 K
PID C15 K
DATE_DIAG D R
CHRONIC C6 K
HOSP_DX C5 R
HOSP_RX C5
DATE_DISCH D R
TYPEDISCH C2 R
D_UPDATE DT R
CID C13 +
"""),
    _file("SERVICE", "การมารับบริการ", "OPD visits", "service", """
HOSPCODE C5 K
PID C15 R
HN C15
SEQ C16 K
DATE_SERV D R
TIME_SERV C6
LOCATION C1
INTIME C1
INSTYPE C4 R
INSID C18
MAIN C5
TYPEIN C1 R
REFERINHOSP C5
CAUSEIN C1
CHIEFCOMP T
SERVPLACE C1 R
BTEMP N4.1
SBP I3
DBP I3
PR I3
RR I3
TYPEOUT C1 R
REFEROUTHOSP C5
CAUSEOUT C1
COST N11.2
PRICE N11.2 R
PAYPRICE N11.2 R
ACTUALPAY N11.2 R
D_UPDATE DT R
HSUB C5 +
CID C13 +
"""),
    _file("DIAGNOSIS_OPD", "การวินิจฉัยโรคผู้ป่วยนอก", "OPD diagnoses", "service", """
HOSPCODE C5 K
PID C15 R
SEQ C16 K
DATE_SERV D R
DIAGTYPE C1 R
DIAGCODE C6 K
CLINIC C5 R
PROVIDER C15
D_UPDATE DT R
CID C13 +
"""),
    _file("PROCEDURE_OPD", "หัตถการผู้ป่วยนอก", "OPD procedures", "service", """
HOSPCODE C5 K
PID C15 R
SEQ C16 K
DATE_SERV D R
CLINIC C5 R
PROCEDCODE C7 K
SERVICEPRICE N11.2
PROVIDER C15
D_UPDATE DT R
CID C13 +
"""),
    _file("DRUG_OPD", "การจ่ายยาผู้ป่วยนอก", "OPD drugs", "service", """
HOSPCODE C5 K
PID C15 R
SEQ C16 K
DATE_SERV D R
CLINIC C5 R
DIDSTD C24 K
DNAME C255
AMOUNT I12
UNIT C3
UNIT_PACKING C20
DRUGPRICE N11.2
DRUGCOST N11.2
PROVIDER C15
D_UPDATE DT R
CID C13 +
"""),
    _file("ADMISSION", "ผู้ป่วยใน", "Admissions", "service", """
HOSPCODE C5 K
PID C15 R
SEQ C16 R
AN C9 K
DATETIME_ADMIT DT R
WARDADMIT C5 R
INSTYPE C4 R
TYPEIN C1 R
REFERINHOSP C5
CAUSEIN C1
ADMITWEIGHT N5.1
ADMITHEIGHT I3
DATETIME_DISCH DT R
WARDDISCH C5 R
DISCHSTATUS C1 R
DISCHTYPE C1 R
REFEROUTHOSP C5
CAUSEOUT C1
COST N11.2
PRICE N11.2 R
PAYPRICE N11.2 R
ACTUALPAY N11.2 R
PROVIDER C15
D_UPDATE DT R
DRG C10 +
RW N10.4 +
ADJRW N10.4 +
ERROR C10 +
WARNING C10 +
ACTLOS I5 +
GROUPER_VERSION C10 +
CID C13 +
"""),
    _file("DIAGNOSIS_IPD", "การวินิจฉัยโรคผู้ป่วยใน", "IPD diagnoses", "service", """
HOSPCODE C5 K
PID C15 R
AN C9 K
DATETIME_ADMIT DT R
WARDDIAG C5 R
DIAGTYPE C1 R
DIAGCODE C6 K
PROVIDER C15
D_UPDATE DT R
CID C13 +
"""),
    _file("PROCEDURE_IPD", "หัตถการผู้ป่วยใน", "IPD procedures", "service", """
HOSPCODE C5 K
PID C15 R
AN C9 K
DATETIME_ADMIT DT R
WARDSTAY C5 R
PROCEDCODE C7 K
TIMESTART DT K
TIMEFINISH DT
SERVICEPRICE N11.2
PROVIDER C15
D_UPDATE DT R
CID C13 +
"""),
    _file("DRUG_IPD", "การจ่ายยาผู้ป่วยใน", "IPD drugs", "service", """
HOSPCODE C5 K
PID C15 R
AN C9 K
DATETIME_ADMIT DT R
WARDSTAY C5 R
TYPEDRUG C1 K
DIDSTD C24 K
DNAME C255
DATESTART D
DATEFINISH D
AMOUNT I12
UNIT C3
UNIT_PACKING C20
DRUGPRICE N11.2
DRUGCOST N11.2
PROVIDER C15
D_UPDATE DT R
CID C13 +
"""),
    _file("LABFU", "ผลตรวจทางห้องปฏิบัติการ", "Lab results", "service", """
HOSPCODE C5 K
PID C15 K
SEQ C16 K
DATE_SERV D R
LABTEST C7 K
LABRESULT N6.2 R
D_UPDATE DT R
LABPLACE C5 +
CID C13 +
PROVIDER C15 +
"""),
    _file("CHRONICFU", "ติดตามผู้ป่วยโรคเรื้อรัง", "Chronic follow-ups", "service", """
HOSPCODE C5 K
PID C15 K
SEQ C16 K
DATE_SERV D R
WEIGHT N5.1 R
HEIGHT I3 R
WAIST_CM I3 R
SBP I3 R
DBP I3 R
FOOT C1 R
RETINA C1 R
PROVIDER C15
D_UPDATE DT R
CHRONICFUPLACE C5 +
CID C13 +
"""),
    _file("NCDSCREEN", "คัดกรองโรคไม่ติดต่อเรื้อรัง", "NCD screening", "service", """
HOSPCODE C5 K
PID C15 K
SEQ C16
DATE_SERV D K
SERVPLACE C1 R
SMOKE C1
ALCOHOL C1
DMFAMILY C1
HTFAMILY C1
WEIGHT N5.1 R
HEIGHT I3 R
WAIST_CM I3 R
SBP_1 I3 R
DBP_1 I3 R
SBP_2 I3
DBP_2 I3
BSLEVEL I6
BSTEST C1
SCREENPLACE C5
PROVIDER C15
D_UPDATE DT R
CID C13 +
"""),
    _file("EPI", "การได้รับวัคซีน", "Vaccinations", "service", """
HOSPCODE C5 K
PID C15 K
SEQ C16
DATE_SERV D K
VACCINETYPE C3 K
VACCINEPLACE C5
PROVIDER C15
D_UPDATE DT R
CID C13 +
"""),
    _file("DRUGALLERGY", "ประวัติการแพ้ยา", "Drug allergies", "registry", """
HOSPCODE C5 K
PID C15 K
DATERECORD D R
DRUGALLERGY C24 K
DNAME C255
TYPEDX C1
ALEVEL C1
SYMPTOM C2
INFORMANT C1 R
INFORMHOSP C5
D_UPDATE DT R
PROVIDER C15 +
CID C13 +
"""),
    _file("APPOINTMENT", "การนัด", "Appointments", "service", """
HOSPCODE C5 K
PID C15 K
AN C9
SEQ C16 K
DATE_SERV D R
CLINIC C5 R
APDATE D R
APTYPE C3 K
APDIAG C6
PROVIDER C15
D_UPDATE DT R
CID C13 +
"""),
    _file("PROVIDER", "ผู้ให้บริการ", "Health-care staff", "registry", """
HOSPCODE C5 K
PROVIDER C15 K
REGISTERNO C15
COUNCIL C2
CID C13 R
PRENAME C20 R
NAME C50 R
LNAME C50 R
SEX C1 R
BIRTH D R
PROVIDERTYPE C3 R
STARTDATE D R
OUTDATE D
MOVEFROM C5
MOVETO C5
D_UPDATE DT R
"""),
    _file("ANC", "การฝากครรภ์", "Antenatal care", "service", """
HOSPCODE C5 K
PID C15 K
SEQ C16
DATE_SERV D K
GRAVIDA C2 R
ANCNO C1 R
GA C2 R
ANCRESULT C1 R
ANCPLACE C5
PROVIDER C15
D_UPDATE DT R
CID C13 +
WEIGHT N5.1 +
"""),
    _file("LABOR", "การคลอด", "Deliveries", "service", """
HOSPCODE C5 K
PID C15 K
GRAVIDA C2 K
LMP D R
EDC D
BDATE D R
BRESULT C6 R
BPLACE C1 R
BHOSP C5
BTYPE C1 R
BDOCTOR C1 R
LBORN I1 R
SBORN I1 R
D_UPDATE DT R
CID C13 +
"""),
)

# PROVIDER.PRENAME is free text or code in the wild; do not force the PERSON pattern on it.
FILES["PROVIDER"] = FileSpec(
    name="PROVIDER",
    title_th=FILES["PROVIDER"].title_th,
    title_en=FILES["PROVIDER"].title_en,
    kind="registry",
    fields=tuple(
        Field(**{**f.__dict__, "pattern": None}) if f.name == "PRENAME" else f
        for f in FILES["PROVIDER"].fields
    ),
)

# Order in which files are imported and generated: registries first, then visits, then children.
ORDER: tuple[str, ...] = (
    "PROVIDER", "PERSON", "ADDRESS", "CARD", "DEATH", "CHRONIC", "DRUGALLERGY",
    "SERVICE", "DIAGNOSIS_OPD", "PROCEDURE_OPD", "DRUG_OPD", "LABFU", "CHRONICFU", "NCDSCREEN",
    "EPI", "APPOINTMENT", "ANC", "LABOR",
    "ADMISSION", "DIAGNOSIS_IPD", "PROCEDURE_IPD", "DRUG_IPD",
)
assert set(ORDER) == set(FILES), set(FILES) ^ set(ORDER)


def get(name: str) -> FileSpec:
    """The spec of a 43-file by name, in any case (``service``, ``SERVICE.txt``)."""
    key = name.upper()
    if key.endswith(".TXT"):
        key = key[:-4]
    return FILES[key]


def lookup(name: str) -> FileSpec | None:
    try:
        return get(name)
    except KeyError:
        return None
