"""`phrsync demo` — the README's first command — does the whole main job end to end."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from phrsync.cli import cli


def test_demo_runs_the_whole_main_job(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["demo", "-n", "300", "--data-dir", str(tmp_path / "demo"), "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output[res.output.index("{"):])
    assert d["import"]["rows_loaded"] > 300 and d["import"]["rows_quarantined"] > 0  # the demo injects defects
    assert d["build"]["built"] > 0
    # the synthetic TMT release and drug catalogue were imported before the build: every allergy has its substance
    assert d["codes"]["concepts"] > 0 and d["codes"]["drugs"] > 0 and d["codes"]["with_tmt"] == d["codes"]["drugs"]
    assert d["build"]["waiting"] == 0
    sync = d["sync"]
    assert sync["attempted"] == d["build"]["built"]
    outbox = {k: sum(f[k] for f in sync["outbox"].values()) for k in ("pending", "sending", "confirmed", "failed")}
    assert outbox["pending"] == outbox["sending"] == outbox["failed"] == 0
    assert outbox["confirmed"] + sum(f["refused"] for f in sync["outbox"].values()) == sync["attempted"]
    assert d["sync_again"]["sent"] == 0  # nothing changed: nothing sent
    assert (tmp_path / "demo" / "report.html").is_file()
    # the Digital ID step: everyone of the 43-file lists answered, the district table with its province row
    did = d["did"]
    assert did["check"]["answered"] == did["check"]["due"] > 0 and did["check"]["failed"] == 0
    total = did["report"]["rows"][-1]
    assert total["name"] == "รวมทั้งจังหวัด" and total["citizens"] == total["citizens_checked"] > 0
    assert "fallback" in did["report"]["citizens_source"][1]
    # a fixed sample per district, said so in the report (the step stays a few seconds)
    per = did["sample_per_district"]
    assert per and all(r["citizens"] <= per for r in did["report"]["rows"][:-1])
    assert any(en.startswith(f"citizens: a sample of {per} per district") for _th, en in did["report"]["notes"])
    # the local PHR's register knows where they live: each district's figure is its configured share within a point
    rows = {r["code"]: r for r in did["report"]["rows"] if r["code"]}
    for code, share in (("2705", 13.04), ("2708", 23.33), ("2707", 1.22)):
        assert abs(rows[code]["citizens_pct"] - share) <= 1, (code, rows[code])
    assert abs(total["personnel_pct"] - 87.72) <= 1
