"""Defect injection: the faults real exports carry, put in on purpose and recorded exactly, so the
importer's quarantine rules can be checked against a known answer.

Kinds (names are part of the manifest contract): ``bad_cid``, ``missing_time``, ``unknown_code``,
``bad_date``, ``future_date``, ``missing_required``, ``mixed_encoding``, ``truncated_line``,
``duplicate_key``. A defect is placed only in fields the member file really contains (a header-less
old-layout export has no appended fields), and its line number is the line in the written member.
"""

from __future__ import annotations

import random
from typing import Any

from phrsync.f43.schema import CODESETS, FILES, FileSpec

KINDS = ("bad_cid", "missing_time", "unknown_code", "bad_date", "future_date", "missing_required",
         "mixed_encoding", "truncated_line", "duplicate_key")


def zip_name(hospcode: str, month: str) -> str:
    return f"F43_{hospcode}_{month}.zip"


def member_name(file: str) -> str:
    return f"{file.lower()}.txt"


def written_fields(spec: FileSpec, header: bool) -> tuple[str, ...]:
    """The columns a facility's exporter writes: all of them with a header, the 2016 base layout without."""
    return spec.field_names if header else spec.layouts()[0]


def _applicable(spec: FileSpec, cols: tuple[str, ...]) -> list[str]:
    kinds = ["truncated_line", "duplicate_key"]
    if "CID" in cols:
        kinds.append("bad_cid")
    if spec.name == "SERVICE":
        kinds.append("missing_time")
    if any(spec.by_name[c].codes for c in cols):
        kinds.append("unknown_code")
    if any(spec.by_name[c].kind == "D" and not spec.by_name[c].future_ok for c in cols):
        kinds.append("bad_date")
    if "DATE_SERV" in cols:
        kinds.append("future_date")
    if _required(spec, cols):
        kinds.append("missing_required")
    return kinds


def _required(spec: FileSpec, cols: tuple[str, ...]) -> list[str]:
    return [c for c in cols if spec.by_name[c].required and not spec.by_name[c].key and c != "HOSPCODE"]


def _outside(codeset: frozenset[str], rng: random.Random) -> str:
    width = len(next(iter(codeset)))
    cands = ["7", "8", "9", "0", "6"] if width == 1 else ["99", "12", "00", "77"]
    return rng.choice([c for c in cands if c not in codeset])


def inject(files: dict[str, list[list[str]]], hospcode: str, month: str, header: bool, rate: float,
           rng: random.Random) -> list[dict[str, Any]]:
    """Damage about ``rate`` of the rows of one export in place; return what was done, where."""
    defects: list[dict[str, Any]] = []
    if rate <= 0:
        return defects
    zname = zip_name(hospcode, month)
    first_line = 2 if header else 1
    for name in sorted(files):
        spec = FILES[name]
        cols = written_fields(spec, header)
        index = {c: i for i, c in enumerate(spec.field_names)}
        kinds = _applicable(spec, cols)
        rows = files[name]
        out: list[list[str]] = []
        for row in rows:
            if rng.random() >= rate:
                out.append(row)
                continue
            kind = rng.choice(kinds)
            field = ""
            row = list(row)
            if kind == "bad_cid" and row[index["CID"]]:
                field = "CID"
                cid = row[index["CID"]]
                row[index["CID"]] = cid[:12] + str((int(cid[12]) + 1 + rng.randrange(9)) % 10)
            elif kind == "missing_time":
                field = "TIME_SERV"
                row[index[field]] = ""
            elif kind == "unknown_code":
                field = rng.choice([c for c in cols if spec.by_name[c].codes])
                row[index[field]] = _outside(CODESETS[spec.by_name[field].codes or ""], rng)
            elif kind == "bad_date":
                cands = [c for c in cols if spec.by_name[c].kind == "D" and not spec.by_name[c].future_ok
                         and len(row[index[c]]) == 8]
                if not cands:
                    out.append(row)
                    continue
                field = rng.choice(cands)
                v = row[index[field]]
                row[index[field]] = (f"{v[:4]}13{int(v[6:]) + 14:02d}" if rng.random() < 0.5
                                     else f"{int(v[:4]) + 543}{v[4:]}")
            elif kind == "future_date":
                field = "DATE_SERV"
                v = row[index[field]]
                row[index[field]] = f"{int(v[:4]) + 4}{v[4:6]}{min(int(v[6:]), 28):02d}"
            elif kind == "missing_required":
                field = rng.choice(_required(spec, cols))
                row[index[field]] = ""
            elif kind == "truncated_line":
                n = len(cols)
                keep = max(1, n // 2)
                cut = row[keep]
                row = row[:keep] + [cut[: len(cut) // 2]]
            elif kind == "duplicate_key":
                out.append(row)
                row = list(row)
            else:  # bad_cid on a row without CID: leave the row clean
                out.append(row)
                continue
            out.append(row)
            # a repeated key: the import keeps the later of two equal rows, so the earlier line is the one quarantined
            back = 2 if kind == "duplicate_key" else 1
            defects.append({"hospcode": hospcode, "zip": zname, "member": member_name(name),
                            "line": first_line + len(out) - back, "file": name, "field": field, "kind": kind})
        files[name] = out
    # a whole member in TIS-620 (cp874): only members with Thai text can show it
    thai = [n for n in sorted(files) if files[n] and any(not c.isascii() for r in files[n][:50] for c in "".join(r))]
    for name in thai:
        if rng.random() < min(rate, 0.5):
            defects.append({"hospcode": hospcode, "zip": zname, "member": member_name(name), "line": 0,
                            "file": name, "field": "", "kind": "mixed_encoding"})
    return defects
