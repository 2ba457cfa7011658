"""The facilities table as one definition: its columns, what each cell shows, how rows sort and filter. The
page, its CSV and its XLSX all come from here, so an export holds exactly what the page shows for the same
query (``?q=&district=&problem=&sort=&dir=``), in the same order, with the same unknowns.

The browser sorts and filters the rendered rows the same way (``static/app.js``): strings by code point,
numbers by value, unknown cells last in either direction, ties kept in code order."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from phrsync.errors import UsageError
from phrsync.pdpa import mask_text
from phrsync.web import model
from phrsync.web.render import number, percent, t, unknown, when

NO_DISTRICT = "-"  # the district filter's value for facilities of no known district
NUM, PCT, TIME, TEXT = "num", "pct", "time", "text"


@dataclass(frozen=True)
class Column:
    key: str
    th: str
    en: str
    kind: str
    get: Callable[[model.FacilityRow, str], Any]  # (row, lang) → the value (None: not known yet)

    def title(self, lang: str) -> str:
        return t(lang, self.th, self.en)


def _problems(r: model.FacilityRow, lang: str) -> str:
    return ", ".join(t(lang, *model.PROBLEM_TEXT[p]) for p in r.problems if p in model.PROBLEM_TEXT)


def _district(r: model.FacilityRow, lang: str) -> str | None:
    return (r.info.district_en or r.info.district) if lang == "en" else r.info.district


def _state(r: model.FacilityRow, lang: str) -> str | None:
    text = r.agent_state_text or ""
    if " / " in text:  # phrsync.delivery.status texts are "th / en"
        th, en = text.split(" / ", 1)
        text = t(lang, th, en)
    return text or None


COLUMNS: tuple[Column, ...] = (
    Column("code", "รหัส", "Code", TEXT, lambda r, _: r.info.hospcode),
    Column("name", "ชื่อหน่วยบริการ", "Facility", TEXT, lambda r, _: r.info.name),
    Column("district", "อำเภอ", "District", TEXT, _district),
    Column("his", "ครั้งบริการใน HIS", "Encounters in the HIS", NUM, lambda r, _: r.his),
    Column("built", "สร้างแล้ว", "Built", NUM, lambda r, _: r.built),
    Column("confirmed", "PHR ยืนยันแล้ว", "Confirmed", NUM, lambda r, _: r.confirmed),
    Column("phr_holds", "PHR มีอยู่", "Held by PHR", NUM, lambda r, _: r.phr_holds),
    Column("pct_in_phr", "% อยู่ใน PHR", "% in PHR", PCT, lambda r, _: r.pct_in_phr),
    Column("pending", "รอส่ง", "Pending", NUM, lambda r, _: r.pending),
    Column("refused", "PHR ปฏิเสธ", "Refused by PHR", NUM, lambda r, _: r.refused),
    Column("build_refused", "ปฏิเสธตอนสร้าง", "Refused at build", NUM, lambda r, _: r.build_refused),
    Column("build_waiting", "รอรหัสยา", "Waiting for a code", NUM, lambda r, _: r.build_waiting),
    Column("failed", "ส่งไม่สำเร็จ", "Failed", NUM, lambda r, _: r.failed),
    Column("quarantined", "แถวถูกกัก", "Quarantined rows", NUM, lambda r, _: r.quarantined),
    Column("last_received", "PHR รับล่าสุด", "Last received by PHR", TIME, lambda r, _: r.last_received),
    Column("agent_version", "รุ่นโปรแกรมส่ง", "Agent version", TEXT, lambda r, _: r.agent_version),
    Column("agent_state", "สถานะโปรแกรมส่ง", "Agent status", TEXT, _state),
    Column("computer", "เครื่องที่ส่ง", "Computer", TEXT, lambda r, _: r.computer),
    Column("last_error", "ข้อผิดพลาดล่าสุด", "Last error", TEXT, lambda r, _: r.last_error),
    Column("problems", "ปัญหา", "Problems", TEXT, _problems),
)
BY_KEY = {c.key: c for c in COLUMNS}


def cell_text(col: Column, value: Any, lang: str) -> str:
    """What the page shows in a cell (and the CSV writes): unknown as "ยังไม่ทราบ / not known yet"."""
    if col.kind == NUM:
        return number(value, lang)
    if col.kind == PCT:
        return percent(value, lang)
    if col.kind == TIME:
        return when(value, lang)
    return unknown(lang) if value is None else str(value)


def sort_value(col: Column, value: Any) -> str | float | None:
    """The ``data-sort`` of a cell: a number for figures and times, the text for text, None (last) unknown."""
    if value is None or value == "":
        return None
    return float(value) if col.kind in (NUM, PCT, TIME) else str(value)


@dataclass(frozen=True)
class Query:
    """The table's filters and order, as the page's query string carries them (and the export links)."""

    q: str = ""
    district: str = ""
    problem: str = ""
    sort: str = "code"
    desc: bool = False

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> Query:
        """From ``?q=&district=&problem=&sort=&dir=``; an unknown value is a clear bilingual 400."""
        sort = params.get("sort") or "code"
        if sort not in BY_KEY:
            raise UsageError(f"ไม่รู้จักคอลัมน์ที่ใช้เรียง: {sort}", f"unknown sort column: {sort}",
                             hint=", ".join(BY_KEY))
        direction = params.get("dir") or "asc"
        if direction not in ("asc", "desc"):
            raise UsageError(f"ทิศทางการเรียงต้องเป็น asc หรือ desc: {direction}",
                             f"the sort direction must be asc or desc: {direction}")
        problem = params.get("problem") or ""
        if problem and problem not in model.PROBLEMS:
            raise UsageError(f"ไม่รู้จักปัญหา: {problem}", f"unknown problem: {problem}",
                             hint=", ".join(model.PROBLEMS))
        district = params.get("district") or ""
        if district and district != NO_DISTRICT and not (district.isdigit() and len(district) == 4):
            raise UsageError(f"รหัสอำเภอต้องเป็นตัวเลข 4 หลัก: {district}",
                             f"a district code has 4 digits: {district}")
        # a citizen ID typed into the search box is never written back unmasked (the box, the address, the export
        # links): no facility name or code holds one, so the search loses nothing
        q = mask_text((params.get("q") or "").strip()[:100])
        return cls(q=q, district=district, problem=problem, sort=sort, desc=direction == "desc")

    def params(self) -> dict[str, str]:
        """The query string of this view (only what differs from the defaults)."""
        out = {"q": self.q, "district": self.district, "problem": self.problem}
        if self.sort != "code":
            out["sort"] = self.sort
        if self.desc:
            out["dir"] = "desc"
        return {k: v for k, v in out.items() if v}


def matches(r: model.FacilityRow, query: Query) -> bool:
    if query.q:
        needle = query.q.lower()
        if needle not in r.info.hospcode.lower() and needle not in (r.info.name or "").lower():
            return False
    if query.district and (r.info.district_code or NO_DISTRICT) != query.district:
        return False
    return not (query.problem and query.problem not in r.problems)


def apply(rows: Sequence[model.FacilityRow], query: Query, lang: str) -> list[model.FacilityRow]:
    """The rows the page shows for ``query``: filtered, then sorted (unknown last, ties in code order)."""
    kept = sorted((r for r in rows if matches(r, query)), key=lambda r: r.info.hospcode)
    col = BY_KEY[query.sort]
    known = [(sort_value(col, col.get(r, lang)), r) for r in kept]
    have = [(v, r) for v, r in known if v is not None]
    none = [r for v, r in known if v is None]
    have.sort(key=lambda vr: vr[0], reverse=query.desc)  # type: ignore[arg-type,return-value]
    return [r for _, r in have] + none


def districts(rows: Sequence[model.FacilityRow], lang: str) -> list[tuple[str, str]]:
    """The district filter's choices among ``rows``: (value, label), by code; "no known district" last."""
    seen: dict[str, str] = {}
    for r in rows:
        code = r.info.district_code
        if code:
            seen.setdefault(code, _district(r, lang) or code)
    out = [(c, f"{name} ({c})") for c, name in sorted(seen.items())]
    if any(not r.info.district_code for r in rows):
        out.append((NO_DISTRICT, t(lang, "ไม่ทราบอำเภอ", "no known district")))
    return out


def export_rows(rows: Sequence[model.FacilityRow], lang: str) -> tuple[list[str], list[list[Any]]]:
    """(headers, rows of values) for CSV/XLSX: figures as numbers, unknown and times as the page's text."""
    head = [c.title(lang) for c in COLUMNS]
    body: list[list[Any]] = []
    for r in rows:
        line: list[Any] = []
        for c in COLUMNS:
            v = c.get(r, lang)
            if v is not None and c.kind == NUM:
                line.append(int(v))
            elif v is not None and c.kind == PCT:
                line.append(round(float(v), 1))
            else:
                line.append(cell_text(c, v, lang))
        body.append(line)
    return head, body
