"""Small TMT releases and drug masters in the official layouts, written by the tests (never real TMT content:
its licence does not let us ship it). IDs and names are invented."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

# (tmtid, FSN) per level; MANUFACTURER for TP/TPU
SUBS = [("900001", "amoxicillin"), ("900002", "clavulanic acid"), ("900003", "paracetamol")]
VTM = [("910001", "amoxicillin"), ("910002", "amoxicillin + clavulanic acid"), ("910003", "paracetamol")]
GP = [("920001", "amoxicillin 500 mg oral capsule"), ("920002", "amoxicillin 875 mg + clavulanic acid 125 mg "
                                                               "oral tablet"),
      ("920003", "paracetamol 500 mg oral tablet")]
GPU = [("930001", "amoxicillin 500 mg oral capsule, 1 capsule"), ("930003", "paracetamol 500 mg oral tablet, 1 tablet")]
TP = [("940001", "AMOXY (amoxicillin 500 mg) oral capsule", "SYNTH PHARMA"),
      ("940003", "PARA-X (paracetamol 500 mg) oral tablet", "SYNTH PHARMA"),
      ("940009", "LONELY (nothing) oral tablet", "SYNTH PHARMA")]
TPU = [("950001", "AMOXY (amoxicillin 500 mg) oral capsule, 1 capsule", "SYNTH PHARMA"),
       ("950003", "PARA-X (paracetamol 500 mg) oral tablet, 1 tablet", "SYNTH PHARMA")]
RELS = {
    "SUBStoVTM": [("900001", "910001"), ("900001", "910002"), ("900002", "910002"), ("900003", "910003")],
    "VTMtoGP": [("910001", "920001"), ("910002", "920002"), ("910003", "920003")],
    "GPtoGPU": [("920001", "930001"), ("920003", "930003")],
    "GPtoTP": [("920001", "940001")],  # 940003 has no GP parent: reached through its TPU
    "GPUtoTPU": [("930001", "950001"), ("930003", "950003")],
    "TPtoTPU": [("940001", "950001"), ("940003", "950003")],
}


def _tab(rows: list[list[str]]) -> bytes:
    return ("\r\n".join("\t".join(r) for r in rows) + "\r\n").encode("utf-8")


def _xlsx(rows: list[list[str]]) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    for r in rows:
        ws.append([int(c) if c.isdigit() and len(c) < 10 else c for c in r])  # IDs as numbers, as Excel keeps them
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _rec(rt: int, data: bytes) -> bytes:
    return struct.pack("<HH", rt, len(data)) + data


def _xls(rows: list[list[str]]) -> bytes:
    """A minimal BIFF8 workbook (the old .xls record stream: BOF, CODEPAGE, BOUNDSHEET, then the sheet's LABEL and
    NUMBER cells), without the OLE2 container Excel wraps it in; xlrd reads both the same way after the container.
    Enough to test the .xls path without an .xls writer."""
    def bof(kind: int) -> bytes:
        return _rec(0x0809, struct.pack("<HHHHII", 0x0600, kind, 0x0DBB, 0x07CC, 0, 0x06))

    cells = [bof(0x10)]
    for r, row in enumerate(rows):
        for c, v in enumerate(row):
            if v.isdigit() and len(v) < 10:  # IDs and dates as numbers, as Excel keeps them
                cells.append(_rec(0x0203, struct.pack("<HHHd", r, c, 0, float(v))))
            else:
                cells.append(_rec(0x0204, struct.pack("<HHHHB", r, c, 0, len(v), 1) + v.encode("utf-16-le")))
    cells.append(_rec(0x000A, b""))
    name = b"Sheet1"

    def globals_(offset: int) -> bytes:
        return b"".join([bof(0x05), _rec(0x0042, struct.pack("<H", 1200)),
                         _rec(0x0085, struct.pack("<IHBB", offset, 0, len(name), 0) + name), _rec(0x000A, b"")])

    return globals_(len(globals_(0))) + b"".join(cells)


def tmt_zip(path: Path, date: str = "20250101", fmt: str = "xlsx", fsn_suffix: str = "",
            extra_rows: dict[str, list[list[str]]] | None = None) -> Path:
    """``TMTRF<date>.zip`` in the release layout: TMTRF<date>/TMTRF<date>_BONUS/Concept|Relationship/..."""
    write = {"xlsx": _xlsx, "xls": _xls}.get(fmt, _tab)
    ext = fmt if fmt in ("xlsx", "xls") else "txt"
    root = f"TMTRF{date}/TMTRF{date}_BONUS"
    z = path / f"TMTRF{date}.zip"
    levels = {"SUBS": SUBS, "VTM": VTM, "GP": GP, "GPU": GPU, "TP": TP, "TPU": TPU}
    with zipfile.ZipFile(z, "w") as zf:
        for level, rows in levels.items():
            head = [f"TMTID({level})", "FSN", "CHANGEDATE"] + (["MANUFACTURER"] if level in ("TP", "TPU") else [])
            body = [[r[0], r[1] + fsn_suffix, date] + ([r[2]] if level in ("TP", "TPU") else []) for r in rows]
            body += (extra_rows or {}).get(level, [])
            zf.writestr(f"{root}/Concept/{level}{date}.{ext}", write([head] + body))
        for kind, pairs in RELS.items():
            a, b = kind.split("to")
            body = [[p, c] for p, c in pairs] + (extra_rows or {}).get(kind, [])
            zf.writestr(f"{root}/Relationship/{kind}{date}.{ext}", write([[f"{a}ID", f"{b}ID"]] + body))
        zf.writestr(f"TMTRF{date}/TMTRF{date}_SNAPSHOT.{ext}", write([["TPUID", "FSN"], ["950001", "x"]]))
    return z
