"""``phrsync build`` / ``phrsync validate`` end to end on the golden 43-file set, and the data-quality report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from f43files import cid
from fixtures.golden import dataset as D

from phrsync.cli import cli
from phrsync.phr import buildfile
from phrsync.phr.policies import Policies, PolicyError


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return D.make_staging(tmp_path_factory.mktemp("cli"))


def _run(args: list[str], config: Path | None = None) -> tuple[int, str]:
    pre = ["--config", str(config)] if config else []
    r = CliRunner().invoke(cli, pre + args, catch_exceptions=False)
    return r.exit_code, r.output


def test_build_json_summary_and_ndjson(staging: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.ndjson"
    code, text = _run(["build", "--staging", str(staging), "--out", str(out), "--report", str(tmp_path / "q.html"),
                       "--json"])
    assert code == 0, text
    s = json.loads(text)
    assert s["by_endpoint"]["UpdatePHRv1"] == {"built": 4, "refused": 0, "skipped": 0, "waiting": 0}
    # no code store: the allergy waits for a drug code (never refused as malformed)
    assert s["by_endpoint"]["AllergyIntolerancev1"] == {"built": 0, "refused": 0, "skipped": 0, "waiting": 1}
    assert s["built"] == 7 and s["refused"] == 0 and s["waiting"] == 1
    lines = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert len(lines) == 7
    assert all(set(x) - {"day"} == {"key", "endpoint", "hospcode", "payload"} for x in lines)
    # an encounter carries its visit day (Bangkok) for the agent; nothing else does
    for x in lines:
        if x["endpoint"] == "UpdatePHRv1":
            assert x["day"] == x["payload"]["Encounter"][0]["period"]["start"][:10]
        else:
            assert "day" not in x
    assert not (tmp_path / "p.ndjson.part").exists()
    # every line the build writes is in the layout the outbox splits without parsing the payload
    assert all(buildfile.split_line(x, 1) is not None for x in out.read_bytes().splitlines(keepends=True))
    assert s["facilities"]["10699"]["quarantined"] == 2  # person 4: PERSON and SERVICE rows
    # the summary beside the build file: what each facility built, and what the validator refused before sending
    bs = buildfile.read_summary(out)
    assert bs is not None and s["summary"] == str(tmp_path / "p.ndjson.summary.json")
    assert bs.facilities == {h: f["by_endpoint"] for h, f in s["facilities"].items()}
    assert bs.count("10699", "waiting") == 1 and bs.count("10699", "built") == 7
    assert [(r["kind"], r["code"], r["waiting"]) for r in bs.unmapped if r["kind"] == "allergy"] == [
        ("allergy", "200000000000000000000002", 1)]
    assert s["report"] == {"html": str(tmp_path / "q.html"), "csv": str(tmp_path / "q.csv")}


def test_build_selection(staging: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.ndjson"
    code, text = _run(["build", "--staging", str(staging), "--out", str(out), "--from", "2025-01-06",
                       "--to", "2025-01-06", "--only", "encounters", "--json"])
    assert code == 0, text
    keys = [orjson.loads(x)["key"] for x in out.read_bytes().splitlines()]
    assert keys == ["UpdatePHRv1|10699:V002"]
    # a well-formed code that the staging store has nothing of: an error naming it, not an empty success
    out.unlink()
    code, text = _run(["build", "--staging", str(staging), "--out", str(out), "--facility", "10699,99999", "--json"])
    assert code == 2 and "ไม่มีหน่วยบริการ 99999 " in text and "no facility 99999 " in text and "no facility 10699" not in text
    assert not out.exists()
    # ... but a facility whose rows were all quarantined is known: its report says why
    import shutil

    import duckdb

    copy = tmp_path / "copy.duckdb"
    shutil.copy(staging, copy)
    with duckdb.connect(str(copy)) as con:
        con.execute("INSERT INTO quarantine (hospcode, file, rule, severity, reason_th, reason_en) "
                    "VALUES ('10777', 'PERSON', 'cid_checksum', 'error', 'ผิด', 'bad')")
    code, text = _run(["build", "--staging", str(copy), "--out", str(out), "--facility", "10777", "--json"])
    assert code == 0 and json.loads(text)["facilities"]["10777"]["quarantined"] == 1
    code, text = _run(["build", "--staging", str(staging), "--out", str(out), "--from", "2025-02-01",
                       "--to", "2025-01-01"])
    assert code != 0


def test_build_policies_from_config(staging: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "phrsync.toml"
    cfg.write_text('[policies]\nvisit_end = "estimate"\nvisit_minutes_opd = 30\nmissing_time = "default_time"\n'
                   '[facilities]\n"10699" = "รพ.ทดสอบ"\n', encoding="utf-8")
    out = tmp_path / "p.ndjson"
    code, text = _run(["build", "--staging", str(staging), "--out", str(out), "--only", "encounters", "--json"], cfg)
    assert code == 0, text
    by = {x["key"]: x["payload"] for x in map(orjson.loads, out.read_bytes().splitlines())}
    v1 = by["UpdatePHRv1|10699:V001"]
    assert v1["Encounter"][0]["period"] == {"start": "2025-01-05T09:30:00+07:00", "end": "2025-01-05T10:00:00+07:00"}
    assert v1["managingOrganization"]["display"] == "รพ.ทดสอบ"
    assert by["UpdatePHRv1|10699:V002"]["Encounter"][0]["period"]["start"] == "2025-01-06T08:30:00+07:00"
    cfg.write_text('[policies]\nvisit_ends = "estimate"\n', encoding="utf-8")
    code, text = _run(["build", "--staging", str(staging), "--out", str(out)], cfg)
    assert code != 0 and "visit_ends" in text


def test_report_html_and_csv(staging: Path, tmp_path: Path) -> None:
    html_path = tmp_path / "q.html"
    code, text = _run(["build", "--staging", str(staging), "--out", str(tmp_path / "p.ndjson"),
                       "--report", str(html_path)])
    assert code == 0, text
    html = html_path.read_text(encoding="utf-8")
    assert "รายงานคุณภาพข้อมูล" in html and "data-quality report" in html
    assert "โรงพยาบาลสมเด็จพระยุพราชสระแก้ว" in html
    for needle in ("allergy_waiting_code", "drug_unmapped", "รอรหัสยา", "cid_checksum", "time_missing", "typein_unmapped", "lab_unknown",
                   "chronic_no_cd_code", "lab_time_visit_start"):
        assert needle in html, needle
    rows = list(csv.DictReader((tmp_path / "q.csv").open(encoding="utf-8-sig")))
    by = {(r["category"], r["code"]): r for r in rows}
    assert by[("waiting", "allergy_waiting_code")]["endpoint_or_file"] == "AllergyIntolerancev1"
    q = [r for r in rows if r["category"] == "quarantine" and r["code"] == "cid_checksum"]
    assert sorted((r["endpoint_or_file"], r["count"], r["path"]) for r in q) == [("PERSON", "1", "CID"),
                                                                                 ("SERVICE", "1", "CID")]
    assert by[("missing", "time_missing")]["count"] == "1"
    assert "10699:V002" in by[("missing", "time_missing")]["examples"]
    # PDPA: no full citizen ID anywhere in the report, only masked forms
    everything = html + (tmp_path / "q.csv").read_text(encoding="utf-8-sig")
    for n in (1, 2, 3):
        assert cid(n) not in everything
    assert D.BAD_CID not in everything
    assert "1-2345-xxxxx-xx-3" in everything  # the quarantined CID, masked


def test_report_dates_are_thai(staging: Path, tmp_path: Path) -> None:
    html_path = tmp_path / "q.html"
    code, _ = _run(["build", "--staging", str(staging), "--out", str(tmp_path / "p.ndjson"), "--report",
                    str(html_path), "--from", "2025-01-05", "--to", "2025-01-31"])
    assert code == 0
    assert "5 ม.ค. 2568 ถึง 31 ม.ค. 2568" in html_path.read_text(encoding="utf-8")


def test_validate_command(staging: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.ndjson"
    assert _run(["build", "--staging", str(staging), "--out", str(out)])[0] == 0
    code, text = _run(["validate", str(out), "--json"])
    assert code == 0, text
    s = json.loads(text)
    assert s["ok"] and s["checked"] == 7
    bad = tmp_path / "bad.json"
    payload = orjson.loads(out.read_bytes().splitlines()[0])["payload"]
    del payload["Patient"]["gender"]
    bad.write_bytes(orjson.dumps(payload))
    code, text = _run(["validate", str(bad), "--endpoint", "UpdatePHRv1"])
    assert code == 1 and "Patient.gender" in text
    assert cid(1) not in text


def test_build_refuses_a_malformed_facility_code(staging: Path, tmp_path: Path) -> None:
    """--facility 1066 (a digit short) selected nothing and the build reported only '0 encounters', with exit 0;
    a code that cannot be a HOSPCODE is now a usage error that names it."""
    code, text = _run(["build", "--staging", str(staging), "--out", str(tmp_path / "p.ndjson"),
                       "--facility", "10699,1066", "--json"])
    assert code == 2 and "1066" in text and "5" in text
    assert not (tmp_path / "p.ndjson").exists()


def test_build_missing_staging(tmp_path: Path) -> None:
    code, text = _run(["build", "--staging", str(tmp_path / "none.duckdb"), "--out", str(tmp_path / "p.ndjson")])
    assert code != 0 and "staging" in text


def test_policy_validation() -> None:
    with pytest.raises(PolicyError):
        Policies(visit_end="guess")
    with pytest.raises(PolicyError):
        Policies(default_time="8h30")
    with pytest.raises(PolicyError):
        Policies.from_mapping({"visit_minutes_opd": 0})
    assert Policies.from_mapping({"visit_end": "estimate"}).visit_end == "estimate"


def test_parallel_build_writes_the_same_payloads(staging: Path, tmp_path: Path) -> None:
    outs = {}
    for w in (1, 2):
        out = tmp_path / f"p{w}.ndjson"
        code, text = _run(["build", "--staging", str(staging), "--out", str(out), "--workers", str(w), "--json"])
        assert code == 0, text
        outs[w] = (sorted(out.read_bytes().splitlines()), json.loads(text))
    assert outs[1][0] == outs[2][0]
    assert outs[1][1]["by_endpoint"] == outs[2][1]["by_endpoint"]
    assert outs[1][1]["facilities"] == outs[2][1]["facilities"]
    assert not list(tmp_path.glob("*.part*"))


def test_split_by_days_covers_the_range_once(staging: Path) -> None:
    import datetime as dt

    from phrsync.f43.read import Selection
    from phrsync.f43.staging import Staging
    from phrsync.phr.build import split_by_days

    with Staging(staging, read_only=True) as st:
        parts = split_by_days(st.con, Selection(), 3)
    assert parts[0].date_from == dt.date(2025, 1, 5) and parts[-1].date_to == dt.date(2025, 1, 7)
    for a, b in zip(parts, parts[1:], strict=False):
        assert a.date_to is not None and b.date_from is not None and a.date_to < b.date_from


def test_report_keeps_different_notes_apart() -> None:
    from phrsync.phr.mapping import Note
    from phrsync.phr.report import Quality

    q = Quality()
    for typein in ("2", "3", "2"):
        q.payload("10699", "UpdatePHRv1", "built", f"10699:V{typein}", (),
                  [Note("typein_unmapped", "Encounter[0].type", f"TYPEIN {typein}", f"TYPEIN {typein}", "unknown_code")])
    rows = {r["message_en"]: r["count"] for r in q.rows("10699")}
    assert rows == {"TYPEIN 2": 2, "TYPEIN 3": 1}
    assert q.totals["10699"].built == 3


def test_report_says_who_fixes_what(staging: Path, tmp_path: Path) -> None:
    code, _ = _run(["build", "--staging", str(staging), "--out", str(tmp_path / "p.ndjson"), "--report",
                    str(tmp_path / "q.html")])
    assert code == 0
    rows = list(csv.DictReader((tmp_path / "q.csv").open(encoding="utf-8-sig")))
    owner = {(r["category"], r["code"]): r["owner"] for r in rows}
    assert owner[("missing", "time_missing")] == "facility"
    assert owner[("quarantine", "cid_checksum")] == "facility"
    assert owner[("skipped", "chronic_no_cd_code")] == "province"
    assert owner[("waiting", "allergy_waiting_code")] == "province"  # the province maps the drug code
    assert owner[("unknown_code", "drug_unmapped")] == "province"
    assert owner[("estimate", "lab_time_visit_start")] == "none"
    html = (tmp_path / "q.html").read_text(encoding="utf-8")
    assert "ต้องแก้ที่หน่วยบริการ" in html and "to fix at the facility" in html


def test_report_escapes_what_comes_from_the_data() -> None:
    """A facility name, message or example holding markup is shown as text, never run (the report's template
    escapes every value)."""
    import datetime as dt

    from phrsync.phr.mapping import Note
    from phrsync.phr.report import Quality, render_html

    q = Quality({"10699": "<script>alert('x')</script> รพ.สต."})
    q.payload("10699", "UpdatePHRv1", "built", "10699:<b>V1</b>", (),
              [Note("typein_unmapped", "Encounter[0].type", "TYPEIN <i>", "TYPEIN <i>", "unknown_code")])
    html = render_html(q, generated=dt.datetime(2025, 1, 5, tzinfo=dt.UTC), selection={"facilities": ["<x>"]},
                       policies={"visit_end": "<omit>"})
    assert "<script>" not in html and "<b>V1" not in html and "<i>" not in html and "<x>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; รพ.สต." in html
    assert "10699:&lt;b&gt;V1&lt;/b&gt;" in html and "&lt;omit&gt;" in html
    assert html.count("<style>") == 1 and "font-family:'Sarabun'" in html  # the stylesheet itself is not escaped


def test_build_and_validate_as_a_library(staging: Path, tmp_path: Path) -> None:
    """The functions under ``phrsync build`` and ``phrsync validate``: typed results, errors of phrsync.errors."""
    import datetime as dt

    from phrsync.config import Config
    from phrsync.errors import Exit, NotFoundError, PhrsyncError, UsageError
    from phrsync.phr.api import build_payloads, parse_facilities, validate_files

    cfg = Config(data_dir=tmp_path)
    out = tmp_path / "lib.ndjson"
    done = build_payloads(cfg, out, staging=staging, facilities=["10699"], date_from=dt.date(2025, 1, 6),
                          date_to=dt.date(2025, 1, 6), stages=("encounters",), report=tmp_path / "r.html")
    assert done.result.counts["UpdatePHRv1"]["built"] == 1 and done.selection.facilities == ("10699",)
    d = done.to_dict()
    assert d["built"] == 1 and d["report"]["csv"] == str(tmp_path / "r.csv") and "visit_end" in d["policies"]
    assert (tmp_path / "r.html").exists() and buildfile.read_summary(out) is not None
    with pytest.raises(NotFoundError, match="99999") as e:
        build_payloads(cfg, tmp_path / "x.ndjson", staging=staging, facilities=["99999"])
    assert e.value.exit_code == Exit.USAGE and not (tmp_path / "x.ndjson").exists()
    with pytest.raises(NotFoundError, match="staging"):
        build_payloads(cfg, tmp_path / "x.ndjson")  # <data_dir>/staging.duckdb does not exist
    with pytest.raises(UsageError, match="--to"):
        build_payloads(cfg, out, staging=staging, date_from=dt.date(2025, 2, 1), date_to=dt.date(2025, 1, 1))
    assert parse_facilities(["10700,10699", " 10699"]) == ("10699", "10700")
    with pytest.raises(UsageError, match="1066"):
        parse_facilities(["1066"])
    rep = validate_files([out])
    assert rep.ok and len(rep.results) == 1 and rep.results[0].item.endswith("UpdatePHRv1|10699:V002")
    assert rep.to_dict()["checked"] == 1
    bad = tmp_path / "bad.ndjson"
    bad.write_bytes(out.read_bytes() + b"{not json\n")
    rep = validate_files([bad], limit=1)
    assert (rep.ok, rep.failed, rep.results[1].item) == (False, 1, f"{bad}:2")
    assert len(rep.to_dict()["results"][1]["issues"]) <= 1
    with pytest.raises(PhrsyncError, match="Nope"):
        validate_files([out], endpoint="Nope")
