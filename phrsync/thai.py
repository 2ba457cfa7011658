"""Thai-first presentation: messages in Thai with English beside them, dates as Thai readers read them."""

from __future__ import annotations

import datetime as dt

MONTHS_TH = ["ม.ค.", "ก.พ.", "มี.ค.", "เม.ย.", "พ.ค.", "มิ.ย.", "ก.ค.", "ส.ค.", "ก.ย.", "ต.ค.", "พ.ย.", "ธ.ค."]
MONTHS_TH_FULL = [
    "มกราคม", "กุมภาพันธ์", "มีนาคม", "เมษายน", "พฤษภาคม", "มิถุนายน",
    "กรกฎาคม", "สิงหาคม", "กันยายน", "ตุลาคม", "พฤศจิกายน", "ธันวาคม",
]


def thai_date(d: dt.date | dt.datetime | None, full: bool = False) -> str:
    """``2026-11-25`` → ``25 พ.ย. 2569`` (Buddhist era, as Thai users read dates)."""
    if d is None:
        return "-"
    months = MONTHS_TH_FULL if full else MONTHS_TH
    s = f"{d.day} {months[d.month - 1]} {d.year + 543}"
    if isinstance(d, dt.datetime):
        s += f" {d:%H:%M} น."
    return s


def bilingual(th: str, en: str) -> str:
    return f"{th} / {en}"
