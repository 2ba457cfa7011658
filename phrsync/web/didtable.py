"""The Digital ID page's two tables as one definition each — the district table (KPI 54) and a facility's
follow-up list: their columns and what each cell holds. The page (``did.html``), its CSV and its XLSX all come
from here, so an export holds what the page shows, with the same "not checked yet" and "not known yet".

A cell is ``(state, value)``: ``VALUE`` (a number, a percentage, pass/fail, a text or a time), ``UNKNOWN``
(nobody counted: never 0) or ``NOT_CHECKED`` (people counted, nobody of them answered yet)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from phrsync.did.kpi import Row
from phrsync.did.store import FollowUp
from phrsync.web.render import t, unknown, when

VALUE, UNKNOWN, NOT_CHECKED = "value", "unknown", "not_checked"
TEXT, NUM, PCT, PASS, TIME = "text", "num", "pct", "pass", "time"
NOT_CHECKED_TEXT = ("ยังไม่ได้ตรวจ Digital ID", "not checked yet")
Cell = tuple[str, Any]


@dataclass(frozen=True)
class Column:
    key: str
    th: str
    en: str
    kind: str
    get: Callable[[Any, str], Cell]  # (row, lang) → cell
    ekyc_only: bool = False  # shown only when an IdP-admin export is imported (its per-source counts)

    def title(self, lang: str) -> str:
        return t(lang, self.th, self.en)


def _name(r: Row, lang: str) -> Cell:
    return VALUE, t(lang, r.name, r.name_en)


def _count(group: str) -> Callable[[Row, str], Cell]:
    def get(r: Row, _lang: str) -> Cell:
        return VALUE, getattr(r, group)
    return get


def _answered(group: str, attr: str) -> Callable[[Row, str], Cell]:
    """A numerator, percentage or pass: not checked while nobody of the group answered; unknown when nobody is
    counted (a district with no list)."""
    def get(r: Row, _lang: str) -> Cell:
        if getattr(r, group) and not getattr(r, f"{group}_checked"):
            return NOT_CHECKED, None
        v = getattr(r, attr)
        if v is None or not getattr(r, group):
            return UNKNOWN, None
        return VALUE, v
    return get


def _by_source(group: str, attr: str) -> Callable[[Row, str], Cell]:
    def get(r: Row, _lang: str) -> Cell:
        return (VALUE, getattr(r, attr)) if getattr(r, group) else (UNKNOWN, None)
    return get


DISTRICT_COLUMNS: tuple[Column, ...] = (
    Column("name", "อำเภอ", "District", TEXT, _name),
    Column("citizens", "ประชาชน", "Citizens", NUM, _count("citizens")),
    Column("citizens_did", "ประชาชนมีดิจิทัลไอดี", "Citizens with DID", NUM, _answered("citizens", "citizens_did")),
    Column("citizens_pct", "ร้อยละ", "%", PCT, _answered("citizens", "citizens_pct")),
    Column("citizens_pass", "ผ่านเป้า 54.2", "54.2 target", PASS, _answered("citizens", "citizens_pass")),
    Column("personnel", "บุคลากรสาธารณสุข", "Health personnel", NUM, _count("personnel")),
    Column("personnel_did", "บุคลากรที่มีดิจิทัลไอดี", "Personnel with DID", NUM,
           _answered("personnel", "personnel_did")),
    Column("personnel_pct", "ร้อยละ", "%", PCT, _answered("personnel", "personnel_pct")),
    Column("personnel_pass", "ผ่านเป้า 54.1", "54.1 target", PASS, _answered("personnel", "personnel_pass")),
    Column("citizens_did_check", "ประชาชนมี DID ตาม check_ekyc", "Citizens with DID by check_ekyc", NUM,
           _by_source("citizens", "citizens_did_check"), ekyc_only=True),
    Column("citizens_did_ekyc", "ประชาชนมี DID ตามไฟล์ IdP admin", "Citizens with DID by the IdP-admin export",
           NUM, _by_source("citizens", "citizens_did_ekyc"), ekyc_only=True),
    Column("personnel_did_check", "บุคลากรมี DID ตาม check_ekyc", "Personnel with DID by check_ekyc", NUM,
           _by_source("personnel", "personnel_did_check"), ekyc_only=True),
    Column("personnel_did_ekyc", "บุคลากรมี DID ตามไฟล์ IdP admin", "Personnel with DID by the IdP-admin export",
           NUM, _by_source("personnel", "personnel_did_ekyc"), ekyc_only=True),
)


def district_columns(with_ekyc: bool) -> tuple[Column, ...]:
    """The district table's columns: the per-source counts only when there is a second source to tell apart."""
    return tuple(c for c in DISTRICT_COLUMNS if with_ekyc or not c.ekyc_only)


def _checked_at(f: FollowUp, _lang: str) -> Cell:
    return (NOT_CHECKED, None) if f.checked_at is None else (VALUE, f.checked_at)


FOLLOWUP_COLUMNS: tuple[Column, ...] = (
    Column("cid", "เลขประจำตัวประชาชน", "Citizen ID", TEXT, lambda f, _: (VALUE, f.cid_masked)),
    Column("name", "ชื่อ", "Name", TEXT, lambda f, _: (VALUE, f.name) if f.name else (UNKNOWN, None)),
    Column("checked_at", "ตรวจล่าสุด", "Last checked", TIME, _checked_at),
    Column("attempts", "ครั้งที่ถาม", "Attempts", NUM, lambda f, _: (VALUE, f.attempts)),
)


def cell_text(col: Column, cell: Cell, lang: str) -> Any:
    """A cell as the exports write it: figures as numbers, the rest as the page's text."""
    state, v = cell
    if state == NOT_CHECKED:
        return t(lang, *NOT_CHECKED_TEXT)
    if state == UNKNOWN or v is None:
        return unknown(lang)
    if col.kind == NUM:
        return int(v)
    if col.kind == PCT:
        return float(v)
    if col.kind == PASS:
        return t(lang, "ผ่าน", "pass") if v else t(lang, "ไม่ผ่าน", "fail")
    if col.kind == TIME:
        return when(float(v), lang)
    return str(v)


def export_rows(columns: Sequence[Column], rows: Sequence[Any], lang: str,
                numbered: bool = False) -> tuple[list[str], list[list[Any]]]:
    """(headers, rows of values) for CSV/XLSX from the page's columns (``numbered``: the page's No. column)."""
    head = ([t(lang, "ลำดับ", "No.")] if numbered else []) + [c.title(lang) for c in columns]
    body = [([i] if numbered else []) + [cell_text(c, c.get(r, lang), lang) for c in columns]
            for i, r in enumerate(rows, start=1)]
    return head, body
