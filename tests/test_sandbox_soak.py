"""The soak script end to end, briefly: a few kills of agent and server, then its checks must all hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _soak(*extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--seconds", "8", "--n", "40",
                           "--facilities", "2", "--kill-every", "2-4", "--finish-seconds", "120", *extra],
                          capture_output=True, text=True, timeout=240, cwd=ROOT)


@pytest.mark.slow
def test_soak_script_passes_a_short_run() -> None:
    r = _soak()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "soak: PASS" in r.stdout and r.stdout.count("soak: ok ") == 4, r.stdout
    assert "killed the agent" in r.stdout


@pytest.mark.slow
def test_soak_script_sees_a_payload_sent_again_after_its_acknowledgement() -> None:
    """The duplicate check is not vacuous: one acknowledged payload posted again makes it (and the run) fail."""
    r = _soak("--inject-resend", "--seed", "2")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "soak: FAIL written again after its acknowledgement: 1 of" in r.stdout, r.stdout
    assert r.stdout.count("soak: ok ") == 3, r.stdout
