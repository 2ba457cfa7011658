"""Time in the synthetic province: the fixed "today", months of the period, how busy each day is,
and the 43-file text forms of dates. Nothing here reads the real clock, so output is reproducible."""

from __future__ import annotations

import datetime as dt

TODAY = dt.date(2026, 11, 25)  # every generated date lies before this (except appointments)

# Visits by calendar month: more in the rainy season (Jun-Oct), fewer around Songkran and New Year.
SEASON = {1: 0.95, 2: 0.92, 3: 0.95, 4: 0.82, 5: 1.0, 6: 1.1, 7: 1.15, 8: 1.15, 9: 1.12, 10: 1.05,
          11: 0.97, 12: 0.88}

# Public holidays that recur on the same date (Songkran, Chakri day, Labour day, Coronation,
# Queen's birthday, King's birthday, Mother's day, Chulalongkorn day, Father's day, Constitution day).
HOLIDAYS = {(1, 1), (4, 6), (4, 13), (4, 14), (4, 15), (5, 1), (5, 4), (6, 3), (7, 28), (8, 12),
            (10, 13), (10, 23), (12, 5), (12, 10), (12, 31)}


def recent_start(count: int = 3) -> str:
    """The first of ``count`` months that end just before :data:`TODAY` (a period may not reach its month), as
    ``YYYY-MM``: data as recent as the synthesizer makes it, inside a monitoring page's last 90 days for a while."""
    d = TODAY.replace(day=1)
    for _ in range(count):
        d = (d - dt.timedelta(days=1)).replace(day=1)
    return f"{d:%Y-%m}"


def parse_month(text: str) -> tuple[int, int]:
    """``2025-10`` or ``202510`` → (2025, 10)."""
    s = text.replace("-", "").replace("/", "").strip()
    if len(s) != 6 or not s.isdigit() or not 1 <= int(s[4:]) <= 12:
        raise ValueError(f"เดือนไม่ถูกต้อง ต้องเป็น YYYY-MM / bad month, expected YYYY-MM: {text!r}")
    return int(s[:4]), int(s[4:])


def months(start: tuple[int, int], count: int) -> list[dt.date]:
    """First days of ``count`` consecutive months from ``start``."""
    y, m = start
    out = []
    for _ in range(count):
        out.append(dt.date(y, m, 1))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def month_end(first: dt.date) -> dt.date:
    nxt = dt.date(first.year + 1, 1, 1) if first.month == 12 else dt.date(first.year, first.month + 1, 1)
    return nxt - dt.timedelta(days=1)


def day_weights(first: dt.date, hospital: bool) -> list[tuple[dt.date, float]]:
    """Each day of the month with its share of visits: few at weekends and on holidays
    (hospitals keep an emergency room open, primary-care units mostly close)."""
    out = []
    d = first
    while d.month == first.month:
        if (d.month, d.day) in HOLIDAYS:
            w = 0.3 if hospital else 0.05
        elif d.weekday() == 5:
            w = 0.35 if hospital else 0.08
        elif d.weekday() == 6:
            w = 0.3 if hospital else 0.05
        else:
            w = 1.0 if d.weekday() != 0 else 1.15  # Mondays are busiest
        out.append((d, w))
        d += dt.timedelta(days=1)
    return out


def d8(d: dt.date) -> str:
    return f"{d.year:04d}{d.month:02d}{d.day:02d}"


def dt14(d: dt.date, seconds: int) -> str:
    """A date plus seconds after midnight (may run into the next days) as YYYYMMDDHHMMSS."""
    days, rem = divmod(seconds, 86400)
    if days:
        d = d + dt.timedelta(days=days)
    return f"{d.year:04d}{d.month:02d}{d.day:02d}{rem // 3600:02d}{rem % 3600 // 60:02d}{rem % 60:02d}"


def hms(seconds: int) -> str:
    seconds %= 86400
    return f"{seconds // 3600:02d}{seconds % 3600 // 60:02d}{seconds % 60:02d}"


def age_years(birth: dt.date, on: dt.date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
