"""Masking and the citizen-ID checksum."""

from __future__ import annotations

import random

from phrsync.pdpa import cid_check_digit, cid_is_valid, mask_cid, mask_text, mask_value


def _reference_valid(cid: str) -> bool:
    if len(cid) != 13 or not cid.isdigit():
        return False
    total = sum(int(cid[i]) * (13 - i) for i in range(12))
    return (11 - total % 11) % 10 == int(cid[12])


def test_checksum_matches_the_textbook_formula_on_random_numbers() -> None:
    rng = random.Random(7)
    for _ in range(5000):
        cid = "".join(rng.choice("0123456789") for _ in range(13))
        assert cid_is_valid(cid) == _reference_valid(cid)
    for _ in range(500):
        first12 = "".join(rng.choice("0123456789") for _ in range(12))
        assert cid_is_valid(first12 + cid_check_digit(first12))


def test_non_digits_and_thai_numerals_are_not_valid() -> None:
    assert not cid_is_valid("12345678901２3")
    assert not cid_is_valid("๑๒๓๔๕๖๗๘๙๐๑๒๓")
    assert not cid_is_valid("123")


def test_masks() -> None:
    assert mask_cid("1234567890121") == "1-2345-xxxxx-xx-1"
    assert mask_text("cid=1234567890121 ok") == "cid=1-2345-xxxxx-xx-1 ok"
    assert mask_value("สมชาย", True) == "สxxxย"
    assert mask_value("0100", False) == "0100"
