"""Masking and the citizen-ID checksum."""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

from click.testing import CliRunner
from f43files import write_zip
from fixtures.golden import dataset as golden

from phrsync.cli import cli
from phrsync.config import Config
from phrsync.delivery.config import load_delivery
from phrsync.pdpa import cid_check_digit, cid_is_valid, mask_cid, mask_text, mask_value
from phrsync.sandbox.settings import SandboxConfig


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


def test_reprs_of_settings_show_no_secret() -> None:
    """repr() of the agent's and the sandbox's settings printed the state store's PostgreSQL password, the JWT
    signing secret and the password-hash key: a traceback or a test report would carry them."""
    cfg = Config(raw={"delivery": {"state_url": "postgresql+psycopg://phr:DbSecret1@db/agent"}})
    env = {"PHRSYNC_PHR_PASSWORD": "pw-Secret2", "PHRSYNC_PHR_PASSWORD_KEY": "key-Secret3",
           "PHRSYNC_PHR_FACILITY_TOKEN": "10699:{TOKEN-Secret4}"}
    settings = load_delivery(cfg, "sandbox", env=env)
    sbx = SandboxConfig(db_url="postgresql+psycopg://pg:DbSecret5@db/sbx", jwt_secret=b"jwt-Secret6",
                        password_key="key-Secret7")
    for text in (repr(settings), repr(sbx), repr(cfg)):
        assert "Secret" not in text, text
    assert settings.state_url.endswith("@db/agent") and sbx.secret() == b"jwt-Secret6"


def test_files_holding_personal_data_are_created_private(tmp_path: Path) -> None:
    """Under the usual umask 022 the staging DuckDB, the payloads, the reports and the outbox SQLite were created
    0644 (and their folders 0755): any local account could read every citizen's ID, name and diagnoses. The
    phrsync command now creates what it writes readable by its own user only, and leaves the umask as it was."""
    (tmp_path / "phrsync.toml").write_text('data_dir = "data"\n', encoding="utf-8")
    z = write_zip(tmp_path / "F43_10699_202501.zip", golden.files())
    conf = ["--config", str(tmp_path / "phrsync.toml")]
    data = tmp_path / "data"
    old = os.umask(0o022)
    try:
        run = CliRunner()
        assert run.invoke(cli, [*conf, "import", str(z)]).exit_code == 0
        r = run.invoke(cli, [*conf, "build", "--out", str(data / "out" / "payloads.ndjson"), "--report",
                             str(data / "out" / "report.html")])
        assert r.exit_code == 0, r.output
        r = run.invoke(cli, [*conf, "sync", "-i", str(data / "out" / "payloads.ndjson"), "--dry-run"])
        assert r.exit_code == 0, r.output
        assert os.umask(0o022) == 0o022  # the caller's umask is back
    finally:
        os.umask(old)
    made = [data / "staging.duckdb", data / "out" / "payloads.ndjson", data / "out" / "report.html",
            data / "out" / "report.csv", data / "delivery" / "outbox.sqlite", data / "delivery", data / "out", data]
    for p in made:
        assert p.exists(), p
        assert stat.S_IMODE(p.stat().st_mode) & 0o077 == 0, f"{p}: {oct(p.stat().st_mode)}"


def _cid(first12: str) -> str:
    return first12 + cid_check_digit(first12)


def test_mask_text_hides_a_cid_written_in_groups() -> None:
    """The access log left ``1-1001-00334-43-9`` as it was: only an unbroken run of 13 digits was masked."""
    for sep in ("-", " ", "+"):
        grouped = sep.join(("1", "1001", "00334", "43", "9"))
        out = mask_text(f"cid={grouped}&x=1")
        assert out == "cid=1-1001-xxxxx-xx-9&x=1", out
        assert "00334" not in out
    # dates, phone numbers and mixed separators are not CIDs
    assert mask_text("2025-01-01 02-590-1000 1-1001 00334-43-9") == "2025-01-01 02-590-1000 1-1001 00334-43-9"


def test_mask_text_hides_a_cid_inside_a_longer_number() -> None:
    """A CID glued to a facility code or a visit number (``10699`` + CID + ``01``) passed unmasked; now every
    digit of a checksum-valid 13-digit stretch of a longer number is hidden, and the rest of it stays."""
    cid = _cid("110010033443")
    for text, kept in ((f"ref=10699{cid}01", ("ref=10", "01")), (f"{cid}20250101", ("101",)),
                       (f"hn{cid}{cid}", ("hn",))):
        out = mask_text(text)
        assert cid not in out and cid[1:12] not in out, out
        assert all(k in out for k in kept), out
    # a long number with no checksum-valid stretch is kept as it is (reference codes stay readable)
    rng = random.Random(3)
    kept_numbers = 0
    for _ in range(200):
        n = "".join(rng.choice("0123456789") for _ in range(16))
        if not any(cid_is_valid(n[i:i + 13]) for i in range(4)):
            assert mask_text(n) == n
            kept_numbers += 1
    assert kept_numbers > 100
    assert mask_text("1234567890121") == "1-2345-xxxxx-xx-1"  # 13 digits: masked whatever the check digit
