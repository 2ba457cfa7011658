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


BANGKOK = dt.timezone(dt.timedelta(hours=7), "Asia/Bangkok")  # Thailand keeps no daylight saving time


def local_time(ts: float | dt.datetime, tz: dt.tzinfo = BANGKOK) -> dt.datetime:
    """An epoch time or an aware datetime, in the province's zone (naive datetimes are taken as UTC)."""
    if isinstance(ts, dt.datetime):
        return (ts if ts.tzinfo else ts.replace(tzinfo=dt.UTC)).astimezone(tz)
    return dt.datetime.fromtimestamp(ts, tz)


def zone_label(t: dt.datetime) -> str:
    """``UTC+7`` for a time's offset: every time phrsync shows says its zone."""
    off = t.utcoffset() or dt.timedelta(0)
    minutes = int(off.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    h, m = divmod(abs(minutes), 60)
    return f"UTC{sign}{h}" + (f":{m:02d}" if m else "")


def thai_datetime(ts: float | dt.datetime | None, tz: dt.tzinfo = BANGKOK, seconds: bool = False) -> str:
    """``4 ธ.ค. 2569 15:36 น. (UTC+7)``: a Buddhist-era date and a time that says its zone (Asia/Bangkok)."""
    if ts is None or ts == 0:
        return "-"
    t = local_time(ts, tz)
    clock = f"{t:%H:%M:%S}" if seconds else f"{t:%H:%M}"
    return f"{t.day} {MONTHS_TH[t.month - 1]} {t.year + 543} {clock} น. ({zone_label(t)})"


MONTHS_EN = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def be_date(d: dt.date | None, lang: str = "th") -> str:
    """A Buddhist-era date in the page's language: ``25 พ.ย. 2569`` or ``25 Nov 2569 BE`` (the English page
    keeps the Thai year, so a date reads the same in both and matches the HIS and PHR's own screens)."""
    if d is None:
        return "-"
    if isinstance(d, dt.datetime):
        d = d.date()
    if lang == "en":
        return f"{d.day} {MONTHS_EN[d.month - 1]} {d.year + 543} BE"
    return thai_date(d)


def be_month(d: dt.date, lang: str = "th") -> str:
    """``พ.ย. 2569`` / ``Nov 2569 BE``: a month of the per-day charts and tables."""
    if lang == "en":
        return f"{MONTHS_EN[d.month - 1]} {d.year + 543} BE"
    return f"{MONTHS_TH[d.month - 1]} {d.year + 543}"


def be_datetime(ts: float | dt.datetime | None, lang: str = "th", tz: dt.tzinfo = BANGKOK) -> str:
    """A time of the web pages: ``4 ธ.ค. 2569 15:36 น. (UTC+7 Asia/Bangkok)`` or ``4 Dec 2569 BE 15:36 (UTC+7
    Asia/Bangkok)``: the zone by offset and by name, since a reader may sit in another zone."""
    if ts is None or ts == 0:
        return "-"
    t = local_time(ts, tz)
    zone = f"{zone_label(t)} {tz.tzname(t) or ''}".strip()
    if lang == "en":
        return f"{t.day} {MONTHS_EN[t.month - 1]} {t.year + 543} BE {t:%H:%M} ({zone})"
    return f"{t.day} {MONTHS_TH[t.month - 1]} {t.year + 543} {t:%H:%M} น. ({zone})"
