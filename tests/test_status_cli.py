"""`phrsync status` counts what the validator refused at build time, from the build's summary."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from click.testing import CliRunner

from phrsync.cli import cli
from phrsync.phr.buildfile import BuildSummary, write_summary


def test_status_counts_payloads_the_validator_refused_at_build(tmp_path: Path) -> None:
    build = tmp_path / "payloads.ndjson"
    build.write_bytes(b"")
    write_summary(build, BuildSummary(built_at=dt.datetime.now(dt.UTC), facilities={
        "10699": {"UpdatePHRv1": {"built": 0, "refused": 3, "skipped": 0},
                  "PatientChronicRegisterv1": {"built": 0, "refused": 1, "skipped": 0}}}))
    state = tmp_path / "outbox.sqlite"
    args = ["status", "--target", "sandbox", "--state", str(state), "-i", str(build)]
    r = CliRunner().invoke(cli, [*args, "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["facilities"]["10699"]["build_refused"] == 4
    text = CliRunner().invoke(cli, args).output
    assert "10699" in text and "refused at build 4" in text
    build.write_bytes(b"\n")  # rebuilt since: the summary no longer describes the file, so it is not counted
    r = CliRunner().invoke(cli, [*args, "--json"])
    assert "10699" not in json.loads(r.output)["facilities"]


def test_sync_with_a_facility_neither_outbox_nor_build_holds_is_an_error(tmp_path: Path) -> None:
    build = tmp_path / "payloads.ndjson"
    build.write_bytes(b'{"endpoint":"UpdatePHRv1","hospcode":"10699","key":"UpdatePHRv1|10699:V1","payload":{}}\n')
    args = ["sync", "--target", "sandbox", "--state", str(tmp_path / "outbox.sqlite"), "-i", str(build),
            "--dry-run"]
    r = CliRunner().invoke(cli, [*args, "--facility", "99999"])
    assert r.exit_code == 2 and "no facility 99999" in r.output and "ไม่มีหน่วยบริการ 99999" in r.output, r.output
    r = CliRunner().invoke(cli, [*args, "--facility", "10699"])
    assert r.exit_code == 0, r.output


def test_status_counts_payloads_waiting_for_a_drug_code(tmp_path: Path) -> None:
    build = tmp_path / "payloads.ndjson"
    build.write_bytes(b"")
    write_summary(build, BuildSummary(built_at=dt.datetime.now(dt.UTC), facilities={
        "10699": {"AllergyIntolerancev1": {"built": 0, "refused": 0, "skipped": 0, "waiting": 2}},
        "10870": {"UpdatePHRv1": {"built": 0, "refused": 1, "skipped": 0, "waiting": 0}}}))
    args = ["status", "--target", "sandbox", "--state", str(tmp_path / "outbox.sqlite"), "-i", str(build)]
    r = CliRunner().invoke(cli, [*args, "--json"])
    assert r.exit_code == 0, r.output
    facs = json.loads(r.output)["facilities"]
    assert (facs["10699"]["build_waiting"], facs["10699"]["build_refused"]) == (2, 0)
    assert (facs["10870"]["build_waiting"], facs["10870"]["build_refused"]) == (0, 1)
    text = CliRunner().invoke(cli, args).output
    assert "รอรหัสยา waiting for a code 2" in text
