"""The synthetic province generator: determinism, schema conformance, referential integrity,
plausibility, the dirty-data manifest and the CLI."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from phrsync.cli import cli

try:  # tests/ is on sys.path (conftest); the fixtures fail in CI and skip elsewhere without MariaDB
    from dbfixtures import hdc_url, mariadb_database, mariadb_server  # noqa: F401
except ImportError:  # pragma: no cover
    from tests.dbfixtures import hdc_url, mariadb_database, mariadb_server  # noqa: F401
from phrsync.f43.schema import CODESETS, FILES, ORDER, FileSpec
from phrsync.pdpa import cid_is_valid
from phrsync.synth import Batch, SynthOptions, generate, write_zips
from phrsync.synth.dirty import KINDS, written_fields
from phrsync.synth.export import write_province
from phrsync.synth.province import load_province

TODAY = dt.date(2026, 11, 25)
CID_FIELDS = {"CID", "FATHER", "MOTHER", "COUPLE"}


# ------------------------------------------------------------------------------------------ helpers


def field_errors(spec: FileSpec, cols: tuple[str, ...], values: list[str]) -> list[str]:
    """Everything wrong with one row by the registry's rules (empty list = conforming)."""
    errs: list[str] = []
    if len(values) != len(cols):
        return [f"field count {len(values)} != {len(cols)}"]
    for name, v in zip(cols, values, strict=True):
        f = spec.by_name[name]
        if v == "":
            if f.required:
                errs.append(f"{name} required")
            continue
        if f.kind == "C" and f.length and len(v) > f.length:
            errs.append(f"{name} too long {v!r}")
        if f.kind == "I" and not (v.lstrip("-").isdigit() and len(v.lstrip("-")) <= (f.length or 12)):
            errs.append(f"{name} bad int {v!r}")
        if f.kind == "N":
            m = re.fullmatch(r"-?(\d+)(?:\.(\d+))?", v)
            if not m or len(m.group(1)) + len(m.group(2) or "") > (f.length or 11) or len(m.group(2) or "") > (f.scale or 0):
                errs.append(f"{name} bad decimal {v!r}")
        if f.kind in ("D", "DT"):
            try:
                d = dt.datetime.strptime(v, "%Y%m%d" if f.kind == "D" else "%Y%m%d%H%M%S")
            except ValueError:
                errs.append(f"{name} bad date {v!r}")
                continue
            if d.year > 2400:
                errs.append(f"{name} BE year {v!r}")
            if not f.future_ok and d.date() >= TODAY:
                errs.append(f"{name} in the future {v!r}")
        if f.pattern and not re.fullmatch(f.pattern, v):
            errs.append(f"{name} pattern {v!r}")
        if f.codes and v not in CODESETS[f.codes]:
            errs.append(f"{name} code {v!r}")
        if name in CID_FIELDS and not cid_is_valid(v):
            errs.append(f"{name} checksum")
    return errs


def key_of(spec: FileSpec, cols: tuple[str, ...], values: list[str]) -> tuple[str, ...]:
    idx = {c: i for i, c in enumerate(cols)}
    return tuple(values[idx[k]] for k in spec.key)


def read_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {Path(n).name: zf.read(n) for n in zf.namelist()}


@pytest.fixture(scope="module")
def clean_batches() -> list[Batch]:
    return list(generate(SynthOptions(encounters=4000, seed=7, months=3, start="2025-10")))


@pytest.fixture(scope="module")
def dirty_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("dirty")
    opts = SynthOptions(encounters=1500, seed=3, months=1, dirty=0.05, start="2026-01")
    summary = write_zips(generate(opts), out, opts.to_dict())
    return out, summary


# ------------------------------------------------------------------------------------------ tests


def test_same_options_same_bytes(tmp_path: Path) -> None:
    opts = SynthOptions(encounters=400, seed=11, months=1, dirty=0.03)
    write_zips(generate(opts), tmp_path / "a", opts.to_dict())
    write_zips(generate(opts), tmp_path / "b", opts.to_dict())

    def digest(d: Path) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}

    a, b = digest(tmp_path / "a"), digest(tmp_path / "b")
    assert a == b and len(a) > 100
    other = SynthOptions(encounters=400, seed=12, months=1, dirty=0.03)
    write_zips(generate(other), tmp_path / "c")
    assert digest(tmp_path / "c")["F43_10699_202510.zip"] != a["F43_10699_202510.zip"]


def test_parallel_workers_write_the_same_bytes(tmp_path: Path) -> None:
    opts = SynthOptions(encounters=400, seed=4, months=1, dirty=0.02)
    one = write_zips(generate(opts), tmp_path / "one", opts.to_dict())
    seen: dict[int, list[tuple[int, int]]] = {1: [], 2: []}
    two = write_province(opts, tmp_path / "two", workers=2, progress=lambda d, t: seen[2].append((d, t)))
    write_province(opts, tmp_path / "three", workers=1, progress=lambda d, t: seen[1].append((d, t)))
    facilities = two["facilities"]
    for w in (1, 2):  # progress by facility, to the last one, in either way of writing
        assert seen[w] == [(i, facilities) for i in range(1, facilities + 1)], w
    assert {k: v for k, v in one.items() if k != "out_dir"} == {k: v for k, v in two.items() if k != "out_dir"}
    for p in sorted((tmp_path / "one").iterdir()):
        assert p.read_bytes() == (tmp_path / "two" / p.name).read_bytes(), p.name


def test_encounters_exact_and_months(clean_batches: list[Batch]) -> None:
    assert sum(len(b.files.get("SERVICE", [])) for b in clean_batches) == 4000
    assert {b.month for b in clean_batches} == {"202510", "202511", "202512"}
    assert all(b.defects == [] for b in clean_batches)
    facs = load_province("27").facilities
    assert {b.hospcode for b in clean_batches} == {f.hospcode for f in facs}
    # hospitals carry more visits than primary-care units
    per = Counter()
    for b in clean_batches:
        per[b.hospcode] += len(b.files.get("SERVICE", []))
    assert per["10699"] > 5 * per["02435"]


def test_every_clean_row_conforms(clean_batches: list[Batch]) -> None:
    problems: list[str] = []
    for b in clean_batches:
        for name, rows in b.files.items():
            spec = FILES[name]
            keys = set()
            for r in rows:
                for e in field_errors(spec, spec.field_names, r):
                    problems.append(f"{b.hospcode} {b.month} {name}: {e}")
                k = key_of(spec, spec.field_names, r)
                if k in keys:
                    problems.append(f"{b.hospcode} {b.month} {name}: duplicate key {k}")
                keys.add(k)
                assert r[0] == b.hospcode
                row = dict(zip(spec.field_names, r, strict=True))
                upd = row["D_UPDATE"][:8]
                for earlier in ("BIRTH", "MOVEIN", "DATE_SERV", "DATERECORD", "DDEATH", "DATE_DIAG", "BDATE"):
                    if row.get(earlier) and upd < row[earlier]:
                        problems.append(f"{b.hospcode} {name}: D_UPDATE {upd} before {earlier} {row[earlier]}")
    assert not problems, problems[:20]


def test_old_exporters_have_no_appended_values(clean_batches: list[Batch]) -> None:
    prov = load_province("27")
    old = [b for b in clean_batches if not prov.by_code(b.hospcode).writes_header]
    assert old and all(not b.header for b in old)
    for b in old:
        for name, rows in b.files.items():
            spec = FILES[name]
            n = len(spec.base_fields)
            assert all(not any(r[n:]) for r in rows), (b.hospcode, name)
    new = [b for b in clean_batches if b.header]
    assert any(r[-1] for b in new for r in b.files.get("SERVICE", []))  # CID filled by newer exporters


def test_last_possible_month_has_nothing_in_the_future() -> None:
    problems = []
    for b in generate(SynthOptions(encounters=600, seed=9, months=1, start="2026-10")):
        for name, rows in b.files.items():
            spec = FILES[name]
            problems += [f"{name}: {e}" for r in rows for e in field_errors(spec, spec.field_names, r)]
    assert not problems, problems[:10]


def test_referential_integrity(clean_batches: list[Batch]) -> None:
    by_fac: dict[str, dict[str, list[dict[str, str]]]] = defaultdict(lambda: defaultdict(list))
    for b in clean_batches:
        for name, rows in b.files.items():
            cols = FILES[name].field_names
            by_fac[b.hospcode][name].extend(dict(zip(cols, r, strict=True)) for r in rows)
    checked = 0
    for hc, files in by_fac.items():
        pids = {r["PID"] for r in files["PERSON"]}
        seqs = {r["SEQ"] for r in files["SERVICE"]}
        ans = {r["AN"] for r in files["ADMISSION"]}
        staff = {r["PROVIDER"] for r in files["PROVIDER"]}
        assert staff, hc
        for name in ("DIAGNOSIS_OPD", "PROCEDURE_OPD", "DRUG_OPD", "LABFU", "CHRONICFU", "APPOINTMENT", "ADMISSION"):
            for r in files[name]:
                assert r["SEQ"] in seqs, (hc, name, r["SEQ"])
                checked += 1
        for name in ("EPI", "ANC", "NCDSCREEN"):
            assert all(r["SEQ"] == "" or r["SEQ"] in seqs for r in files[name])
        for name in ("DIAGNOSIS_IPD", "PROCEDURE_IPD", "DRUG_IPD"):
            assert all(r["AN"] in ans for r in files[name])
        for name, rows in files.items():
            if name != "PROVIDER":
                assert all(r["PID"] in pids for r in rows), (hc, name)
            if "PROVIDER" in FILES[name].by_name and name != "PROVIDER":
                assert all(r["PROVIDER"] == "" or r["PROVIDER"] in staff for r in rows), (hc, name)
        # child rows agree with their visit on person and date
        visit = {r["SEQ"]: (r["PID"], r["DATE_SERV"]) for r in files["SERVICE"]}
        for r in files["DIAGNOSIS_OPD"]:
            assert visit[r["SEQ"]] == (r["PID"], r["DATE_SERV"])
    assert checked > 5000


def test_hospital_registers_district_patients_with_same_cid(clean_batches: list[Batch]) -> None:
    prov = load_province("27")
    cid_at: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for b in clean_batches:
        for r in b.files.get("PERSON", []):
            cid_at[r[1]].add((b.hospcode, r[2]))
    shared = [v for v in cid_at.values() if len({h for h, _ in v}) > 1]
    assert len(shared) > 50
    for places in shared:
        facs = [prov.by_code(h) for h, _ in places]
        assert any(f and f.is_hospital for f in facs)
        assert len({f.ampur for f in facs if f}) == 1  # hospitals see their own district


def test_registry_later_months_only_changes(clean_batches: list[Batch]) -> None:
    first: dict[tuple[str, str], str] = {}
    later_changed = later_new = 0
    for b in sorted(clean_batches, key=lambda b: b.month):
        for r in b.files.get("PERSON", []):
            key = (b.hospcode, r[2])
            if b.month == "202510":
                first[key] = r[30]
            elif key in first:
                assert r[30] > first[key]  # same key, later D_UPDATE
                later_changed += 1
            else:
                assert r[9] >= "20251101"  # only newborns are new after the first month
                later_new += 1
    n_first = len(first)
    assert later_changed > 0 and later_new > 0
    assert later_changed < 0.05 * n_first
    staff = {(b.hospcode, r[1]): r for b in clean_batches if b.month == "202510" for r in b.files["PROVIDER"]}
    moved = [(b.hospcode, r) for b in clean_batches if b.month != "202510" for r in b.files.get("PROVIDER", [])]
    assert moved
    for hc, r in moved:
        before = staff[(hc, r[1])]
        assert r[12] and r[14] and r[15] > before[15] and r[4] == before[4]  # OUTDATE, MOVETO, later D_UPDATE


def test_population_plausibility(clean_batches: list[Batch]) -> None:
    ref = dt.date(2025, 10, 1)
    prov = load_province("27")
    ages: list[int] = []
    adults35: set[tuple[str, str]] = set()
    prename_bad = 0
    for b in clean_batches:
        if b.month != "202510" or prov.by_code(b.hospcode).is_hospital:
            continue
        for r in b.files.get("PERSON", []):
            birth = dt.datetime.strptime(r[9], "%Y%m%d").date()
            age = ref.year - birth.year - ((ref.month, ref.day) < (birth.month, birth.day))
            ages.append(age)
            if age >= 35:
                adults35.add((b.hospcode, r[2]))
            expected = {("1", True): "001", ("2", True): "002", ("1", False): "003"}.get((r[8], age < 15))
            if expected and r[4] != expected:
                prename_bad += 1
            if r[8] == "2" and age >= 15 and r[4] not in ("004", "005"):
                prename_bad += 1
            if r[8] == "2" and age >= 15 and (r[4] == "004") != (r[10] == "1"):
                prename_bad += 1
    n = len(ages)
    old = sum(a >= 60 for a in ages) / n
    young = sum(a < 15 for a in ages) / n
    assert 0.15 <= old <= 0.30, old  # ageing rural Thailand
    assert 0.10 <= young <= 0.25, young
    assert max(ages) < 105
    assert prename_bad == 0
    dm: set[tuple[str, str]] = set()
    ht: set[tuple[str, str]] = set()
    for b in clean_batches:
        if b.month != "202510":
            continue
        for r in b.files.get("CHRONIC", []):
            key = (b.hospcode, r[1])
            if key in adults35:
                (dm if r[3].startswith("E11") else ht).add(key)
    assert 0.06 <= len(dm) / len(adults35) <= 0.13, len(dm) / len(adults35)
    assert 0.17 <= len(ht) / len(adults35) <= 0.30, len(ht) / len(adults35)


def test_visit_plausibility(clean_batches: list[Batch]) -> None:
    prov = load_province("27")
    weekday = total = office = pcu_total = 0
    instype = Counter()
    diag = Counter()
    for b in clean_batches:
        hosp = prov.by_code(b.hospcode).is_hospital
        for r in b.files.get("SERVICE", []):
            d = dt.datetime.strptime(r[4], "%Y%m%d").date()
            total += 1
            weekday += d.weekday() < 5
            instype[r[8]] += 1
            if not hosp:
                pcu_total += 1
                office += "080000" <= r[5] <= "163000"
        for r in b.files.get("DIAGNOSIS_OPD", []):
            if r[4] == "1":
                diag[r[5]] += 1
    assert weekday / total > 0.85
    assert office / pcu_total > 0.9
    assert 0.6 < instype["0100"] / total < 0.95
    assert instype["4200"] > 0 and instype["1100"] + instype["1200"] > 0
    top = {c for c, _ in diag.most_common(8)}
    assert {"I10", "E119", "J00"} <= top
    labs = [float(r[5]) for b in clean_batches for r in b.files.get("LABFU", []) if r[4] == "0531002"]
    hba1c = [float(r[5]) for b in clean_batches for r in b.files.get("LABFU", []) if r[4] == "0531601"]
    assert labs and 90 < sum(labs) / len(labs) < 250
    assert hba1c and all(4 <= x <= 15 for x in hba1c)
    epi = {r[4] for b in clean_batches for r in b.files.get("EPI", [])}
    assert {"D21", "081", "061"} & epi
    appts = [(r[4], r[6]) for b in clean_batches for r in b.files.get("APPOINTMENT", [])]
    assert appts and all(ap > ds for ds, ap in appts)
    count = Counter()
    for b in clean_batches:
        for name, rows in b.files.items():
            count[name] += len(rows)
    persons = sum(len(b.files.get("PERSON", [])) for b in clean_batches if b.month == "202510")
    assert 0.01 < count["DRUGALLERGY"] / persons < 0.03
    for name in ("ANC", "LABOR", "DEATH", "ADMISSION", "DIAGNOSIS_IPD", "DRUG_IPD", "PROCEDURE_OPD", "NCDSCREEN"):
        assert count[name] > 0, name
    assert count["ADMISSION"] < 0.05 * total
    deaths = [r for b in clean_batches for r in b.files.get("DEATH", [])]
    born = {(b.hospcode, r[2]): r[9] for b in clean_batches for r in b.files.get("PERSON", [])}
    old_deaths = sum(1 for r in deaths if born[(r[0], r[1])] < "19660101")
    assert old_deaths / len(deaths) > 0.6  # deaths are mostly among the elderly


def test_zips_layout_headers_and_manifest(dirty_run: tuple[Path, dict]) -> None:
    out, summary = dirty_run
    prov = load_province("27")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["zips"] == summary["zips"] == len(list(out.glob("F43_*.zip")))
    assert manifest["encounters"] == 1500
    headerless = 0
    line_counts: Counter[str] = Counter()
    cp874 = {(d["zip"], d["member"]) for d in manifest["defects"] if d["kind"] == "mixed_encoding"}
    for zp in sorted(out.glob("F43_*.zip")):
        hc = zp.stem.split("_")[1]
        fac = prov.by_code(hc)
        with zipfile.ZipFile(zp) as zf:
            names = zf.namelist()
            assert all(n.startswith(zp.stem + "/") for n in names)
            assert {Path(n).name for n in names} == {f"{f.lower()}.txt" for f in ORDER}
            for n in names:
                data = zf.read(n)
                member = Path(n).name
                if data:
                    assert data.endswith(b"\r\n")
                text = data.decode("cp874" if (zp.name, member) in cp874 else "utf-8")
                lines = text.split("\r\n")[:-1]
                spec = FILES[member[:-4].upper()]
                has_header = bool(lines) and lines[0].startswith("HOSPCODE|")
                if spec.name == "PROVIDER" and lines:
                    assert has_header == fac.writes_header
                if has_header:
                    assert lines[0] == "|".join(spec.field_names)
                line_counts[spec.name] += len(lines) - has_header
        headerless += not fac.writes_header
    assert headerless > 10
    assert line_counts == Counter({k: v for k, v in manifest["rows_written"].items() if v})


def test_dirty_manifest_is_exact(dirty_run: tuple[Path, dict]) -> None:
    out, summary = dirty_run
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    defects = manifest["defects"]
    assert Counter(d["kind"] for d in defects) == Counter({k: v for k, v in manifest["defect_counts"].items() if v})
    assert set(manifest["defect_counts"]) == set(KINDS)
    assert all(manifest["defect_counts"][k] > 0 for k in KINDS), manifest["defect_counts"]
    prov = load_province("27")
    by_member: dict[tuple[str, str], dict[int, dict]] = defaultdict(dict)
    for d in defects:
        assert d["line"] not in by_member[(d["zip"], d["member"])] or d["kind"] == "mixed_encoding"
        by_member[(d["zip"], d["member"])][d["line"]] = d
    total_rows = sum(manifest["rows_written"].values())
    line_defects = sum(1 for d in defects if d["line"] > 0)
    assert 0.02 < line_defects / total_rows < 0.09  # about --dirty 0.05 of rows
    checked = Counter()
    for zp in sorted(out.glob("F43_*.zip")):
        fac = prov.by_code(zp.stem.split("_")[1])
        for member, data in read_members(zp).items():
            spec = FILES[member[:-4].upper()]
            recorded = by_member.get((zp.name, member), {})
            if 0 in recorded:
                with pytest.raises(UnicodeDecodeError):
                    data.decode("utf-8")
                text = data.decode("cp874")
                checked["mixed_encoding"] += 1
            else:
                text = data.decode("utf-8")
            cols = written_fields(spec, fac.writes_header)
            lines = text.split("\r\n")[:-1]
            seen_keys: dict[tuple[str, ...], int] = {}
            for no, line in enumerate(lines, start=1):
                if fac.writes_header and no == 1:
                    continue
                values = line.split("|")
                d = recorded.get(no)
                if d is None:  # an unrecorded line must be clean
                    assert field_errors(spec, cols, values) == [], (zp.name, member, no)
                    k = key_of(spec, cols, values)
                    assert k not in seen_keys, (zp.name, member, no)
                    seen_keys[k] = no
                    continue
                kind, fname = d["kind"], d["field"]
                checked[kind] += 1
                assert d["file"] == spec.name and d["hospcode"] == fac.hospcode
                if kind == "truncated_line":
                    assert len(values) < len(cols)
                    continue
                assert len(values) == len(cols)
                row = dict(zip(cols, values, strict=True))
                if kind == "duplicate_key":
                    k = key_of(spec, cols, values)
                    assert k in seen_keys
                    continue
                errs = field_errors(spec, cols, values)
                v = row[fname]
                if kind == "missing_time":  # optional field: a warning for the importer, not an error
                    assert fname == "TIME_SERV" and v == "" and errs == []
                    continue
                assert errs and all(e.startswith(fname) for e in errs), (kind, errs)
                if kind == "bad_cid":
                    assert len(v) == 13 and not cid_is_valid(v)
                elif kind == "unknown_code":
                    assert v and v not in CODESETS[spec.by_name[fname].codes or ""]
                elif kind == "bad_date":
                    assert int(v[4:6]) > 12 or int(v[:4]) > 2400
                elif kind == "future_date":
                    assert fname == "DATE_SERV" and v > "20261125"
                elif kind == "missing_required":
                    assert v == "" and spec.by_name[fname].required
    assert set(checked) == set(KINDS)
    assert sum(checked.values()) == len(defects)


def test_cli_json(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["synth", "--encounters", "300", "--months", "1", "--seed", "5",
                              "--out", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["encounters"] == 300 and data["zips"] == len(list(tmp_path.glob("*.zip")))
    assert data["period"] == {"first": "2025-10", "last": "2025-10", "months": 1}
    res = runner.invoke(cli, ["synth", "--help"])
    assert res.exit_code == 0 and "--dirty" in res.output
    res = runner.invoke(cli, ["synth", "-n", "10", "--out", str(tmp_path), "--start", "2026-11"])
    assert res.exit_code != 0
    res = runner.invoke(cli, ["synth", "-n", "10", "--province", "10", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "27" in res.output
    res = runner.invoke(cli, ["synth", "-n", "200", "--months", "1", "--out", str(tmp_path / "h")])
    assert res.exit_code == 0 and "ครั้งบริการ" in res.output


@pytest.mark.mariadb
def test_cli_loads_the_same_data_into_hdc(tmp_path: Path, hdc_url: str) -> None:  # noqa: F811
    pytest.importorskip("phrsync.f43.hdc")
    res = CliRunner().invoke(cli, ["synth", "-n", "80", "--months", "1", "--seed", "2", "--hdc", hdc_url,
                                   "--out", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    written = {k: v for k, v in data["rows_written"].items() if v}
    assert data["hdc"]["rows"] == written
    assert data["hdc"]["skipped"] == {}


def test_cli_hdc_failure_hides_the_password(tmp_path: Path) -> None:
    pytest.importorskip("phrsync.f43.hdc")
    res = CliRunner().invoke(cli, ["synth", "-n", "20", "--months", "1", "--out", str(tmp_path),
                                   "--hdc", "mysql+pymysql://root:s3cretpw@127.0.0.1:1/nodb"])
    assert res.exit_code != 0
    assert "s3cretpw" not in res.output and "HDC" in res.output


def test_synthesize_as_a_library(tmp_path: Path) -> None:
    """The function under ``phrsync synth``: a typed result whose to_dict() is the command's --json."""
    from phrsync.errors import Exit, PhrsyncError, UsageError
    from phrsync.synth.api import synthesize

    opts = SynthOptions(encounters=120, months=1, seed=3)
    res = synthesize(opts, tmp_path / "lib", workers=1)
    assert res.encounters == 120 and res.months == 1 and res.province_name and res.hdc is None
    d = res.to_dict()
    assert d["zips"] == len(list((tmp_path / "lib").glob("*.zip"))) and d["period"]["first"] == "2025-10"
    cli_json = json.loads(CliRunner().invoke(cli, ["synth", "-n", "120", "--months", "1", "--seed", "3", "--out",
                                                   str(tmp_path / "cli"), "--json"]).output)
    assert {k: v for k, v in cli_json.items() if k not in ("seconds", "out_dir", "codes")} == {
        k: v for k, v in d.items() if k not in ("seconds", "out_dir", "codes")}
    assert {k: v for k, v in cli_json["codes"].items() if k != "dir"} == {
        k: v for k, v in d["codes"].items() if k != "dir"}
    assert (tmp_path / "lib-codes" / d["codes"]["tmt_zip"]).is_file()
    assert not list((tmp_path / "lib").rglob("TMTRF*"))  # not where a 43-file import of the folder looks
    with pytest.raises(UsageError, match="--out"):
        synthesize(opts)
    with pytest.raises(PhrsyncError) as e:
        synthesize(SynthOptions(encounters=10, province="10"), tmp_path / "x")
    assert e.value.exit_code == Exit.USAGE and "27" in str(e.value)
