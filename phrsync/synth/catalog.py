"""What a synthetic visit is made of: common diagnoses with their complaints and usual drugs, a small
drug formulary with 24-digit codes, OPD/IPD procedures, the Thai EPI schedule and lab tests.

The formulary codes are synthetic but have the standard's form (24 digits); diagnoses are real
ICD-10-TM codes without the dot, vaccine and lab codes come from the reference CSVs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Drug:
    code: str  # 24 digits
    name: str
    unit: str  # 3-char dispensing unit
    packing: str
    price: float  # per unit
    cost: float
    amount: tuple[int, int]  # usual quantity dispensed (min, max)


def _did(name: str) -> str:
    """A stable 24-digit code for a drug name (form of the 24-digit standard drug code)."""
    digits = str(int.from_bytes(hashlib.blake2b(name.encode(), digest_size=12).digest(), "big"))
    return ("1" + digits)[:24].ljust(24, "0")


def _drug(name: str, unit: str, packing: str, price: float, cost: float, lo: int, hi: int) -> Drug:
    return Drug(_did(name), name, unit, packing, price, cost, (lo, hi))


DRUGS: dict[str, Drug] = {
    d.name.split()[0].lower()
    + ("_syr" if "syr" in d.name.lower() else "_neb" if "nebule" in d.name else ""): d
    for d in (
        _drug("Paracetamol 500 mg tab", "TAB", "1", 1.0, 0.35, 10, 20),
        _drug("Paracetamol syrup 120 mg/5 ml", "BOT", "60 ml", 15.0, 6.5, 1, 1),
        _drug("Amoxicillin 500 mg cap", "CAP", "1", 2.0, 0.85, 15, 21),
        _drug("Amoxicillin dry syrup 125 mg/5 ml", "BOT", "60 ml", 25.0, 11.0, 1, 1),
        _drug("Chlorpheniramine 4 mg tab", "TAB", "1", 0.5, 0.1, 10, 20),
        _drug("Dextromethorphan 15 mg tab", "TAB", "1", 0.5, 0.15, 10, 20),
        _drug("Bromhexine 8 mg tab", "TAB", "1", 0.5, 0.15, 10, 20),
        _drug("Ammonium carbonate (M.Tussis) 60 ml", "BOT", "60 ml", 15.0, 5.0, 1, 1),
        _drug("Omeprazole 20 mg cap", "CAP", "1", 1.5, 0.4, 14, 30),
        _drug("Aluminium hydroxide+Mg (Alum milk) 240 ml", "BOT", "240 ml", 20.0, 8.0, 1, 2),
        _drug("Simethicone 80 mg tab", "TAB", "1", 1.0, 0.3, 10, 20),
        _drug("Domperidone 10 mg tab", "TAB", "1", 0.8, 0.2, 10, 15),
        _drug("Hyoscine 10 mg tab", "TAB", "1", 1.0, 0.3, 6, 10),
        _drug("ORS (Oral rehydration salt) sachet", "SAC", "1", 3.0, 1.2, 5, 10),
        _drug("Norfloxacin 400 mg tab", "TAB", "1", 1.5, 0.5, 6, 14),
        _drug("Ibuprofen 400 mg tab", "TAB", "1", 1.0, 0.3, 10, 20),
        _drug("Diclofenac 25 mg tab", "TAB", "1", 0.5, 0.15, 10, 20),
        _drug("Naproxen 250 mg tab", "TAB", "1", 1.5, 0.5, 10, 20),
        _drug("Orphenadrine 35 mg + Paracetamol tab", "TAB", "1", 1.5, 0.6, 10, 20),
        _drug("Methyl salicylate cream 25 g", "TUB", "25 g", 20.0, 8.0, 1, 1),
        _drug("Plai cream 25 g (ครีมไพล)", "TUB", "25 g", 40.0, 18.0, 1, 1),
        _drug("Fah Talai Jone 400 mg cap (ฟ้าทะลายโจร)", "CAP", "1", 1.0, 0.4, 20, 40),
        _drug("Metformin 500 mg tab", "TAB", "1", 0.6, 0.25, 60, 180),
        _drug("Glipizide 5 mg tab", "TAB", "1", 0.5, 0.15, 30, 90),
        _drug("Pioglitazone 30 mg tab", "TAB", "1", 2.0, 0.8, 30, 60),
        _drug("Amlodipine 5 mg tab", "TAB", "1", 0.5, 0.12, 30, 90),
        _drug("Enalapril 5 mg tab", "TAB", "1", 0.5, 0.1, 30, 90),
        _drug("Losartan 50 mg tab", "TAB", "1", 1.5, 0.45, 30, 90),
        _drug("Hydrochlorothiazide 25 mg tab", "TAB", "1", 0.3, 0.08, 30, 90),
        _drug("Atenolol 50 mg tab", "TAB", "1", 0.5, 0.12, 30, 90),
        _drug("Simvastatin 20 mg tab", "TAB", "1", 0.8, 0.2, 30, 90),
        _drug("Aspirin 81 mg tab", "TAB", "1", 0.3, 0.07, 30, 90),
        _drug("Ferrous fumarate 200 mg tab", "TAB", "1", 0.3, 0.08, 30, 60),
        _drug("Triferdine 150 tab", "TAB", "1", 1.0, 0.35, 30, 60),
        _drug("Calcium carbonate 1000 mg tab", "TAB", "1", 1.0, 0.3, 30, 60),
        _drug("Vitamin B complex tab", "TAB", "1", 0.2, 0.05, 20, 60),
        _drug("Salbutamol 2 mg tab", "TAB", "1", 0.3, 0.08, 15, 30),
        _drug("Cetirizine 10 mg tab", "TAB", "1", 0.5, 0.12, 10, 20),
        _drug("Loratadine 10 mg tab", "TAB", "1", 0.5, 0.15, 10, 30),
        _drug("Dicloxacillin 250 mg cap", "CAP", "1", 1.5, 0.6, 20, 28),
        _drug("Roxithromycin 150 mg tab", "TAB", "1", 3.0, 1.2, 10, 14),
        _drug("Chloramphenicol eye drop 0.5% 5 ml", "BOT", "5 ml", 20.0, 9.0, 1, 1),
        _drug("Triamcinolone cream 0.1% 5 g", "TUB", "5 g", 15.0, 5.0, 1, 2),
        _drug("Clotrimazole cream 1% 15 g", "TUB", "15 g", 15.0, 6.0, 1, 1),
        _drug("Povidone iodine solution 30 ml", "BOT", "30 ml", 20.0, 7.0, 1, 1),
        _drug("Dimenhydrinate 50 mg tab", "TAB", "1", 0.5, 0.15, 10, 20),
        _drug("Normal saline 0.9% 1000 ml", "BAG", "1000 ml", 45.0, 18.0, 1, 4),
        _drug("Ceftriaxone 1 g inj", "VIA", "1", 25.0, 11.0, 2, 10),
        _drug("Insulin NPH 100 IU/ml 10 ml", "VIA", "10 ml", 150.0, 85.0, 1, 2),
        _drug("Salbutamol nebule 2.5 mg", "AMP", "2.5 ml", 6.0, 2.5, 4, 12),
        _drug("Oxytocin 10 IU inj", "AMP", "1 ml", 10.0, 4.0, 1, 2),
    )
}


@dataclass(frozen=True)
class Acute:
    """A common reason for an OPD visit."""

    code: str  # ICD-10-TM, no dot
    weight: float
    complaint: str  # Thai chief complaint; {d} = days
    drugs: tuple[str, ...]  # keys of DRUGS, some of which are given
    fever: bool = False
    ages: tuple[int, int] = (0, 120)
    sex: str = ""  # "" any, "1" or "2"
    proc: tuple[str, float] = ("", 0.0)  # (ICD-9-CM code, chance)
    ext: str = ""  # external-cause code (DIAGTYPE 5)
    clinic: str = "00100"  # hospital clinic (medicine)
    child_drugs: tuple[str, ...] = ()


ACUTE: tuple[Acute, ...] = (
    Acute("J00", 12, "ไข้ ไอ มีน้ำมูก {d} วัน", ("paracetamol", "chlorpheniramine", "dextromethorphan"), True,
          child_drugs=("paracetamol_syr", "ammonium")),
    Acute("J069", 8, "เจ็บคอ ไข้ ไอ {d} วัน", ("paracetamol", "amoxicillin", "chlorpheniramine"), True,
          child_drugs=("paracetamol_syr", "amoxicillin_syr")),
    Acute("J029", 3, "เจ็บคอ กลืนลำบาก {d} วัน", ("paracetamol", "roxithromycin", "fah"), True),
    Acute("J209", 2, "ไอมีเสมหะ {d} วัน", ("bromhexine", "paracetamol", "amoxicillin"), True),
    Acute("J301", 2, "คัดจมูก จาม น้ำมูกใส", ("loratadine", "cetirizine")),
    Acute("K30", 6, "จุกแน่นลิ้นปี่ หลังอาหาร {d} วัน", ("omeprazole", "aluminium", "simethicone"), ages=(15, 120)),
    Acute("K297", 2, "ปวดท้อง แสบร้อนกลางอก", ("omeprazole", "domperidone"), ages=(15, 120)),
    Acute("A099", 4, "ถ่ายเหลว {d} ครั้ง ปวดท้อง", ("ors", "norfloxacin", "hyoscine"),
          child_drugs=("ors",)),
    Acute("M545", 7, "ปวดหลัง {d} วัน", ("ibuprofen", "orphenadrine", "methyl"), ages=(20, 120),
          proc=("9339", 0.15)),
    Acute("M791", 5, "ปวดเมื่อยกล้ามเนื้อ", ("diclofenac", "plai", "paracetamol"), ages=(18, 120),
          proc=("9339", 0.1)),
    Acute("M179", 3, "ปวดเข่า เดินลำบาก", ("naproxen", "methyl", "calcium"), ages=(50, 120)),
    Acute("R51", 4, "ปวดศีรษะ {d} วัน", ("paracetamol",), ages=(10, 120)),
    Acute("R42", 2, "เวียนศีรษะ บ้านหมุน", ("dimenhydrinate", "paracetamol"), ages=(25, 120)),
    Acute("R509", 3, "ไข้ {d} วัน", ("paracetamol",), True, child_drugs=("paracetamol_syr",)),
    Acute("L309", 3, "ผื่นคัน {d} วัน", ("triamcinolone", "chlorpheniramine")),
    Acute("B354", 2, "ผื่นวงแดงคันที่ลำตัว", ("clotrimazole",), ages=(5, 120)),
    Acute("H109", 2, "ตาแดง มีขี้ตา", ("chloramphenicol",)),
    Acute("T141", 3, "มีแผลถูกของมีคมบาด", ("povidone", "dicloxacillin", "paracetamol"), ages=(5, 90),
          proc=("8659", 0.5), ext="W260", clinic="01200"),
    Acute("S934", 1, "ข้อเท้าพลิก บวม", ("ibuprofen", "methyl"), ages=(10, 80), ext="W010", clinic="01200"),
    Acute("N390", 2, "ปัสสาวะแสบขัด {d} วัน", ("norfloxacin", "paracetamol"), ages=(15, 120), sex="2"),
    Acute("K021", 2, "ปวดฟัน {d} วัน", ("paracetamol", "amoxicillin"), ages=(6, 90), proc=("2309", 0.5),
          clinic="01100"),
    Acute("Z000", 3, "ตรวจสุขภาพประจำปี", (), ages=(18, 120)),
)

# Admissions at hospitals: (ICD-10, weight, ward, drugs, procedure, ages, sex)
@dataclass(frozen=True)
class Inpatient:
    code: str
    weight: float
    ward: str
    drugs: tuple[str, ...]
    proc: str = ""
    ages: tuple[int, int] = (0, 120)
    sex: str = ""
    los: tuple[int, int] = (1, 5)
    rainy: bool = False


INPATIENT: tuple[Inpatient, ...] = (
    Inpatient("J189", 6, "00001", ("ceftriaxone", "normal", "paracetamol"), los=(3, 7)),
    Inpatient("A099", 5, "00001", ("normal", "ors", "norfloxacin"), los=(1, 3)),
    Inpatient("A90", 3, "00001", ("normal", "paracetamol"), los=(2, 5), rainy=True),
    Inpatient("N10", 2, "00002", ("ceftriaxone", "normal"), ages=(15, 120), sex="2", los=(3, 6)),
    Inpatient("J441", 2, "00001", ("salbutamol_neb", "normal"), ages=(45, 120), los=(2, 5)),
    Inpatient("I639", 2, "00001", ("aspirin", "normal", "simvastatin"), "9339", ages=(45, 120), los=(4, 10)),
    Inpatient("I500", 1, "00001", ("normal", "enalapril"), ages=(50, 120), los=(3, 7)),
    Inpatient("K359", 2, "00005", ("ceftriaxone", "normal", "paracetamol"), "4709", ages=(8, 70), los=(2, 4)),
    Inpatient("O800", 4, "00004", ("oxytocin", "ferrous", "paracetamol"), "7359", ages=(16, 44), sex="2",
              los=(1, 3)),
    Inpatient("E162", 1, "00001", ("normal",), ages=(40, 120), los=(1, 3)),
)

# The Thai EPI schedule: (age in days, vaccine codes, ICD-10 Z code of the visit)
EPI_SCHEDULE: tuple[tuple[int, tuple[str, ...], str], ...] = (
    (0, ("010", "041"), "Z232"),
    (60, ("D21", "081", "R11"), "Z278"),
    (120, ("D22", "082", "401", "R12"), "Z278"),
    (180, ("D23", "083"), "Z278"),
    (270, ("061",), "Z274"),
    (365, ("J11",), "Z241"),
    (540, ("034", "084", "073"), "Z273"),
    (900, ("J12",), "Z241"),
    (1460, ("035", "085"), "Z273"),
)
FLU_VACCINE = "815"

LAB_FBS = "0531002"
LAB_DTX = "0531101"
LAB_HBA1C = "0531601"
LAB_TG, LAB_CHOL, LAB_HDL, LAB_LDL = "0546602", "0541602", "0541202", "0541402"
LAB_CREAT = "0581902"

# Coverage mix of a rural province: (INSTYPE, weight) for Thai adults of working age
INSTYPE_MIX: tuple[tuple[str, float], ...] = (
    ("0100", 76.0), ("4200", 11.0), ("1100", 4.0), ("1200", 2.5), ("1300", 0.5), ("2201", 0.6),
    ("2401", 0.8), ("3101", 0.3), ("9100", 0.5),
)
