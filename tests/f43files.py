"""Build small 43-file exports by hand for tests: rows as dicts, written exactly as exporters do."""

from __future__ import annotations

import zipfile
from pathlib import Path

from phrsync.f43 import schema
from phrsync.pdpa import cid_check_digit


def cid(n: int) -> str:
    """A valid citizen ID derived from a small number."""
    first12 = f"1{27000000000 + n:011d}"[:12]
    return first12 + cid_check_digit(first12)


def line(file: str, row: dict[str, str], layout: tuple[str, ...] | None = None) -> str:
    spec = schema.get(file)
    names = layout or spec.field_names
    unknown = set(row) - set(spec.field_names)
    assert not unknown, unknown
    return "|".join(str(row.get(n, "")) for n in names)


def text(file: str, rows: list[dict[str, str]], header: bool = True, layout: tuple[str, ...] | None = None,
         eol: str = "\r\n") -> str:
    spec = schema.get(file)
    names = layout or spec.field_names
    out = []
    if header:
        out.append("|".join(names))
    out += [line(file, r, names) for r in rows]
    return eol.join(out) + eol


def write_zip(path: Path, files: dict[str, str | bytes], folder: str | None = None) -> Path:
    folder = folder if folder is not None else path.stem
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, body in files.items():
            data = body.encode("utf-8") if isinstance(body, str) else body
            z.writestr(f"{folder}/{name}" if folder else name, data)
    return path


def person(pid: str, n: int, **kw: str) -> dict[str, str]:
    row = {
        "HOSPCODE": "10699", "CID": cid(n), "PID": pid, "HID": "1", "PRENAME": "003", "NAME": "สมชาย",
        "LNAME": "ใจดี", "SEX": "1", "BIRTH": "19700101", "MSTATUS": "2", "NATION": "099", "RACE": "099",
        "TYPEAREA": "1", "DISCHARGE": "9", "D_UPDATE": "20250101120000",
    }
    row.update(kw)
    return row


def service(seq: str, pid: str, n: int, **kw: str) -> dict[str, str]:
    row = {
        "HOSPCODE": "10699", "PID": pid, "HN": pid, "SEQ": seq, "DATE_SERV": "20250105", "TIME_SERV": "093000",
        "LOCATION": "1", "INTIME": "1", "INSTYPE": "0100", "MAIN": "10699", "TYPEIN": "1", "CHIEFCOMP": "ไข้ ไอ",
        "SERVPLACE": "1", "BTEMP": "37.2", "SBP": "128", "DBP": "82", "PR": "78", "RR": "18", "TYPEOUT": "1",
        "COST": "80.00", "PRICE": "150.00", "PAYPRICE": "0", "ACTUALPAY": "0", "D_UPDATE": "20250105103000",
        "CID": cid(n),
    }
    row.update(kw)
    return row


Piece = bytes | tuple[bytes, int]  # bytes written once, or (block, times): the block repeated


def repeat_zip(path: Path, members: dict[str, list[Piece]]) -> Path:
    """A zip whose members run to gigabytes yet is small on disk and quick to write (a zip bomb, made the way one
    is): each piece is deflated once, alone, and flushed to a byte boundary, so that copies of its output
    concatenate into one valid stream; a block repeated 2,000 times costs one compression and 2,000 copies."""
    import struct
    import zlib

    entries = []
    with path.open("wb") as out:
        for name, pieces in members.items():
            parts: list[tuple[bytes, int]] = []
            crc = size = packed = 0
            for piece in pieces:
                block, times = (piece, 1) if isinstance(piece, bytes) else piece
                c = zlib.compressobj(9, zlib.DEFLATED, -15)
                deflated = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
                parts.append((deflated, times))
                for _ in range(times):
                    crc = zlib.crc32(block, crc)
                size += len(block) * times
                packed += len(deflated) * times
            end = zlib.compressobj(9, zlib.DEFLATED, -15).flush()  # the final (empty) block
            packed += len(end)
            raw_name = name.encode()
            offset = out.tell()
            out.write(struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, 0, 8, 0, 33, crc, packed, size,
                                  len(raw_name), 0) + raw_name)
            for deflated, times in parts:
                for _ in range(times):
                    out.write(deflated)
            out.write(end)
            entries.append((raw_name, crc, packed, size, offset))
        cd_start = out.tell()
        for raw_name, crc, packed, size, offset in entries:
            out.write(struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 3, 20, 0, 0, 8, 0, 33, crc, packed, size,
                                  len(raw_name), 0, 0, 0, 0, 0o100644 << 16, offset) + raw_name)
        cd_size = out.tell() - cd_start
        out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), cd_size, cd_start, 0))
    return path
