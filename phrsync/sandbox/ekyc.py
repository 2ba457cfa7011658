"""The sandbox's answer to ``idp/api/check_ekyc``: for any valid CID, deterministic, from a share per district.

The district is that of the facility that last sent the person's demographics, when the sandbox knows the
person (the district they live in, as the province counts them), else digits 2–5 of the CID (the DOPA province
and district where the number was issued). A CID has a Digital ID when its Fibonacci hash (the serial digits
6–12 times ⌊2³²/φ⌋, modulo 2³², shifted by the seed) falls under the district's share: the same CID always gets the same
answer, and consecutive numbers spread evenly (a low-discrepancy sequence), so a few hundred people of a district
come out within a point of its share. ``result`` is then 1–3 (how many times the person confirmed with the PIN).
"""

from __future__ import annotations

# Sa Kaeo's report (issue 13): วัฒนานคร 13.04 %, โคกสูง 23.33 %, เขาฉกรรจ์ 1.22 % of citizens; the province 5.01 %
# (26,932 / 537,792) is the share of every district the issue does not give.
SAKAEO_SHARES: dict[str, float] = {"2705": 0.1304, "2708": 0.2333, "2707": 0.0122}
SAKAEO_DEFAULT = 0.0501
_FIB = 2654435769  # ⌊2³² / φ⌋
_M = 1 << 32


def district_of_facility(hospcode: str | None) -> str | None:
    """The DOPA district of a facility by the shipped code table (None when unknown)."""
    if not hospcode:
        return None
    from phrsync.terminology.tables import lookup

    code = (lookup("sakaeo_facilities", hospcode) or {}).get("ampur_code") or ""
    return code if len(code) == 4 else None


def unit(cid: str, seed: int = 0) -> float:
    """A CID's position in [0, 1): the same for the same CID and seed."""
    n = int(cid[5:12])
    return ((n * _FIB + seed * 40503) % _M) / _M


def answer(cid: str, shares: dict[str, float], default: float, seed: int = 0, district: str | None = None) -> int:
    """check_ekyc's ``result`` for ``cid`` (living in ``district`` when known): 0 (no Digital ID) or 1–3."""
    share = shares.get(district or cid[1:5], default)
    u = unit(cid, seed)
    if u >= share:
        return 0
    return 1 + int(u * 1_000_003) % 3
