"""Personal data protection: masking of citizen IDs and secrets before anything is logged or shown."""

from __future__ import annotations

import re
from typing import Any

# a run of digits (13 exactly: a CID, checked or not), or a CID written in its groups 1-4-5-2-1 with one kind of
# separator throughout (dash as on the card, space, or '+' as a query string encodes a space)
_DIGITS_RE = re.compile(r"[0-9]{13,}")
_GROUPED_RE = re.compile(r"(?<![0-9])([0-9])([- +])([0-9]{4})\2([0-9]{5})\2([0-9]{2})\2([0-9])(?![0-9])")


def mask_cid(cid: str | None) -> str:
    """``1234567890121`` → ``1-2345-xxxxx-xx-1``: enough to tell people apart, not to identify them."""
    if not cid:
        return ""
    s = str(cid).strip()
    if len(s) == 13 and s.isdigit():
        return f"{s[0]}-{s[1:5]}-xxxxx-xx-{s[12]}"
    if len(s) <= 4:
        return "x" * len(s)
    return s[:2] + "x" * (len(s) - 4) + s[-2:]


def _masked(cid: str) -> str:
    return f"{cid[0]}-{cid[1:5]}-xxxxx-xx-{cid[12]}"


def _mask_run(m: re.Match[str]) -> str:
    """A run of 13 digits is masked whatever its check digit (a mistyped CID is still someone's). In a longer
    run, every digit of every 13-digit stretch whose check digit is right becomes ``x``: a CID glued to a
    facility code, a visit number or a date is hidden whole, even where a chance stretch overlaps it. A long
    number with no such stretch (9 in 10 of 14-digit numbers, fewer as they grow) stays readable: masking every
    long number would blind the log to reference codes and ids."""
    run = m.group(0)
    if len(run) == 13:
        return _masked(run)
    hidden = bytearray(len(run))
    for i in range(len(run) - 12):
        if cid_is_valid(run[i:i + 13]):
            hidden[i:i + 13] = b"\x01" * 13
    return "".join("x" if h else d for d, h in zip(run, hidden, strict=True))


def mask_text(text: str) -> str:
    """Mask the citizen IDs in free text (log lines, error messages): 13-digit numbers, CIDs written in
    groups (``1-1001-00334-43-9``, ``1 1001 00334 43 9``) and checksum-valid CIDs inside longer numbers."""
    text = _GROUPED_RE.sub(lambda m: _masked(m.group(1) + m.group(3) + m.group(4) + m.group(5) + m.group(6)),
                           text)
    return _DIGITS_RE.sub(_mask_run, text)


def mask_url(url: Any) -> str:
    """A database URL (text, SQLAlchemy ``URL`` or ``Engine``) with its password replaced by ``***``, safe for
    logs, messages and ``phrsync config``."""
    from sqlalchemy.engine import URL, Engine, make_url
    from sqlalchemy.exc import ArgumentError

    if isinstance(url, Engine):
        url = url.url
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        # Not parseable: hide anything between "user:" and "@" the way a URL would carry it.
        return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)


def mask_value(value: str | None, personal: bool) -> str:
    """A field value as it may appear in a report: personal fields masked, others as they are."""
    if value is None:
        return ""
    if not personal:
        return value
    v = str(value)
    if len(v) == 13 and v.isdigit():
        return mask_cid(v)
    if len(v) <= 2:
        return "x" * len(v)
    return v[0] + "x" * (len(v) - 2) + v[-1]


def cid_is_valid(cid: str) -> bool:
    """Thai national ID checksum: digit 13 = (11 - Σ d_i·(13-i) mod 11) mod 10.

    Unrolled on the bytes: the validator calls this for every payload, so it is on the hot path."""
    if len(cid) != 13 or not cid.isascii() or not cid.isdigit():
        return False
    b = cid.encode()
    total = (13 * b[0] + 12 * b[1] + 11 * b[2] + 10 * b[3] + 9 * b[4] + 8 * b[5] + 7 * b[6] + 6 * b[7]
             + 5 * b[8] + 4 * b[9] + 3 * b[10] + 2 * b[11] - 48 * 90)
    return (11 - total % 11) % 10 == b[12] - 48


def cid_check_digit(first12: str) -> str:
    total = sum(int(first12[i]) * (13 - i) for i in range(12))
    return str((11 - total % 11) % 10)
