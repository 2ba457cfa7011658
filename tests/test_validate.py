"""The MOPH-PHR payload validator against the shared example payloads and rule-by-rule cases."""

from __future__ import annotations

import ast
import base64
import copy
import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from phrsync.pdpa import cid_check_digit, mask_cid
from phrsync.phr.rules import RULES
from phrsync.phr.validate import (
    ENDPOINTS,
    Issue,
    errors,
    has_errors,
    parse_and_validate,
    validate,
    validate_json_bytes,
)

FIX = Path(__file__).parent / "fixtures" / "payloads"
VALID = sorted((FIX / "valid").glob("*.json"))
INVALID = sorted((FIX / "invalid").glob("*.json"))
CID_RE = re.compile(r"(?<!\d)\d{13}(?!\d)")


def _endpoint(path: Path) -> str:
    return path.name.split(".")[0]


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _issues_of(case: dict[str, Any]) -> list[Issue]:
    if "body_b64" in case:
        return validate_json_bytes(case["endpoint"], base64.b64decode(case["body_b64"]))
    return validate(case["endpoint"], case["payload"])


def _base() -> dict[str, Any]:
    return _load(FIX / "valid" / "UpdatePHRv1.json")


def _pairs(issues: list[Issue]) -> set[tuple[str, str]]:
    return {(i.path, i.rule) for i in issues}


def test_fixture_sets_cover_every_endpoint() -> None:
    assert {_endpoint(p) for p in VALID} == set(ENDPOINTS)
    assert {_load(p)["endpoint"] for p in INVALID} == set(ENDPOINTS)
    assert len(INVALID) >= 60


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_fixture_has_no_errors(path: Path) -> None:
    issues = validate(_endpoint(path), _load(path))
    assert not errors(issues), [i.to_dict() for i in issues]
    # the same body as bytes, as the server receives it
    assert not has_errors(validate_json_bytes(_endpoint(path), path.read_bytes()))


def test_spec_example_is_clean() -> None:
    """The spec's own §3.4 one-encounter example gives no issue at all, not even a warning."""
    assert validate("UpdatePHRv1", _base()) == []


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_fixture_gives_expected_issues(path: Path) -> None:
    case = _load(path)
    issues = _issues_of(case)
    expected = sorted(tuple(x) for x in case["expect"])
    got = sorted((i.path, i.rule) for i in issues)
    if case["exact"]:
        assert got == expected, case["description"]
    else:
        assert set(expected) <= set(got), case["description"]
    expects_error = any(RULES[r].severity == "error" for _, r in expected)
    assert has_errors(issues) == expects_error or not case["exact"]


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_messages_never_contain_a_full_cid(path: Path) -> None:
    case = _load(path)
    text = json.dumps(case.get("payload")) if "payload" in case else base64.b64decode(case["body_b64"]).decode(
        "utf-8", "replace")
    cids = set(CID_RE.findall(text))
    for issue in _issues_of(case):
        for msg in (issue.message_th, issue.message_en, issue.path):
            assert not CID_RE.search(msg), msg
            assert not any(c in msg for c in cids)


def test_five_problems_give_five_issues() -> None:
    p = _base()
    p["Patient"]["gender"] = "M"
    p["Patient"]["birthDate"] = "1980/01/01"
    enc = p["Encounter"][0]
    enc["status"] = "done"
    enc["period"]["start"] = "yesterday"
    enc["vital_signs"]["bp_systolic_mmhg"] = 500
    issues = validate("UpdatePHRv1", p)
    assert len(issues) == 5
    assert all(i.severity == "error" for i in issues)
    assert {i.rule for i in issues} == {"enum", "iso_date", "iso_datetime", "vital_range"}


def test_cid_message_is_masked() -> None:
    p = _base()
    bad = "3100700000016"  # check digit should be 5
    p["Patient"]["identifier"][0]["value"] = bad
    [issue] = validate("UpdatePHRv1", p)
    assert issue.rule == "cid_checksum"
    assert bad not in issue.message_th + issue.message_en
    assert mask_cid(bad) in issue.message_en


def test_cid_in_an_unexpected_field_is_masked_too() -> None:
    p = _base()
    cid = "310070000001" + cid_check_digit("310070000001")
    p["Patient"]["gender"] = cid  # a CID pasted into the wrong column
    p["Encounter"][0]["status"] = cid
    issues = validate("UpdatePHRv1", p)
    assert {i.rule for i in issues} == {"enum"}
    assert all(cid not in i.message_th + i.message_en for i in issues)


def test_root_must_be_object() -> None:
    for payload in ([], "x", 3, None, True):
        [issue] = validate("UpdatePHRv1", payload)
        assert (issue.path, issue.rule, issue.severity) == ("$", "payload_object", "error")


def test_unknown_endpoint_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        validate("UpdatePHRv2", {})
    with pytest.raises(ValueError):
        validate_json_bytes("Nope", b"{}")


def test_bom_is_reported_and_rest_still_checked() -> None:
    p = _base()
    p["Patient"]["gender"] = "X"
    payload, issues = parse_and_validate("UpdatePHRv1", b"\xef\xbb\xbf" + orjson.dumps(p))
    assert payload is not None
    assert _pairs(issues) == {("$", "json_bom"), ("Patient.gender", "enum")}


def test_utf16_is_not_accepted() -> None:
    body = json.dumps(_base(), ensure_ascii=False).encode("utf-16")
    payload, issues = parse_and_validate("UpdatePHRv1", body)
    assert payload is None and issues and issues[0].rule == "json_bom"


def test_json_syntax_error_reports_position() -> None:
    [issue] = validate_json_bytes("UpdatePHRv1", b'{"a": 1,}')
    assert issue.rule == "json_syntax" and "position" in issue.message_en


def test_encounter_ref_prefix_rules() -> None:
    p = _base()
    ident = p["Encounter"][0]["identifier"][0]
    ident["value"] = "VN 0001"
    assert _pairs(validate("UpdatePHRv1", p)) == {
        ("Encounter[0].identifier[0].value", "encounter_ref_format"),
        ("Encounter[0].identifier[0].value", "encounter_ref_prefix"),
    }
    ident["value"] = "99999:VN:0001"  # the visit part may itself contain ':'
    assert validate("UpdatePHRv1", p) == []


def test_duplicate_refs_after_prefixing() -> None:
    """'VN1' and '99999:VN1' are the same stored key (§7.3)."""
    p = _load(FIX / "valid" / "UpdatePHRv1.scope_all.json")
    p["Encounter"][0]["identifier"][0]["value"] = "VN1"
    p["Encounter"][1]["identifier"][0]["value"] = "99999:VN1"
    assert ("Encounter[1].identifier[0].value", "duplicate_key") in _pairs(validate("UpdatePHRv1", p))


def test_scope_at_top_level_is_accepted() -> None:
    p = _load(FIX / "valid" / "UpdatePHRv1.scope_all.json")
    p["scope"] = p["managingOrganization"].pop("scope")
    assert validate("UpdatePHRv1", p) == []


def test_future_dates() -> None:
    p = _base()
    p["Encounter"][0]["period"] = {"start": "2099-01-01T09:00:00+07:00"}
    assert _pairs(validate("UpdatePHRv1", p)) == {("Encounter[0].period.start", "future_date")}
    p = _base()  # appointments may be in the future
    p["Encounter"][0]["Appointment"] = [{"status": "booked", "start": "2099-01-01T09:00:00+07:00"}]
    assert validate("UpdatePHRv1", p) == []


def test_placeholder_and_ancient_dates() -> None:
    p = _base()
    p["Patient"]["birthDate"] = "1970-01-01"
    p["Encounter"][0]["Condition"][0]["recordedDate"] = "1899-12-31T00:00:00Z"
    assert _pairs(validate("UpdatePHRv1", p)) == {
        ("Patient.birthDate", "date_implausible"),
        ("Encounter[0].Condition[0].recordedDate", "date_implausible"),
    }


def test_datetime_variants() -> None:
    p = _base()
    period = p["Encounter"][0]["period"]
    for ok in ("2025-01-15T09:00:00Z", "2025-01-15T09:00+07:00", "2025-01-15T09:00:00.123456789+0700",
               "2025-01-15T09:00:00.5-03:00"):
        period.update(start=ok, end=ok)
        assert validate("UpdatePHRv1", p) == [], ok
    for bad in ("2025-01-15T25:00:00Z", "2025-13-15T09:00:00Z", "20250115T090000Z", "2025-01-15T09:00:00+7"):
        period.update(start=bad, end="2025-01-15T11:30:00+07:00")
        assert _pairs(validate("UpdatePHRv1", p)) == {("Encounter[0].period.start", "iso_datetime")}, bad
    period.update(start="2025-01-15", end="2025-01-15T11:30:00+07:00")
    assert _pairs(validate("UpdatePHRv1", p)) == {("Encounter[0].period.start", "datetime_date_only")}


def test_period_order_compares_instants_not_strings() -> None:
    p = _base()
    # 10:00 Bangkok is 03:00Z: end 05:00Z is later although "05" < "10"
    p["Encounter"][0]["period"] = {"start": "2025-01-15T10:00:00+07:00", "end": "2025-01-15T05:00:00Z"}
    assert validate("UpdatePHRv1", p) == []


def test_vital_boundaries() -> None:
    p = _base()
    vs = p["Encounter"][0]["vital_signs"]
    vs.update(bp_systolic_mmhg=260, bp_diastolic_mmhg=78)
    assert _pairs(validate("UpdatePHRv1", p)) == {("Encounter[0].vital_signs.bp_systolic_mmhg", "vital_unusual")}
    vs.update(bp_systolic_mmhg=True)  # a boolean is not a number
    assert _pairs(validate("UpdatePHRv1", p)) == {("Encounter[0].vital_signs.bp_systolic_mmhg", "type")}
    vs.update(bp_systolic_mmhg=125, spo2=98)
    assert _pairs(validate("UpdatePHRv1", p)) == {("Encounter[0].vital_signs.spo2", "unknown_key")}


def test_vital_signs_array_form_is_range_checked() -> None:
    p = _load(FIX / "valid" / "UpdatePHRv1.full_forms.json")
    p["Encounter"][0]["vital_signs"][0]["bp_systolic"]["valueQuantity"]["value"] = 500
    assert ("Encounter[0].vital_signs[0].bp_systolic.valueQuantity.value", "vital_range") in _pairs(
        validate("UpdatePHRv1", p))


def test_condition_with_text_only_is_a_warning() -> None:
    p = _base()
    p["Encounter"][0]["Condition"] = [{"code": {"text": "ปวดหัว"}}]
    issues = validate("UpdatePHRv1", p)
    assert not has_errors(issues)
    assert _pairs(issues) == {("Encounter[0].Condition[0].code.coding", "coding_system_local")}


def test_icd10_forms() -> None:
    p = _base()
    coding = p["Encounter"][0]["Condition"][0]["code"]["coding"][0]
    for ok in ("E11.9", "E119", "I10", "U07.1", "Z00.00"):
        coding["code"] = ok
        assert validate("UpdatePHRv1", p) == [], ok
    for bad in ("E1", "11.9", "E11-9", "E11.9 "):
        coding["code"] = bad
        assert _pairs(validate("UpdatePHRv1", p)) == {
            ("Encounter[0].Condition[0].code.coding[0].code", "code_format")}, bad


def test_loinc_check_digits() -> None:
    p = _base()
    coding = p["Encounter"][0]["Observation"][0]["code"]["coding"][0]
    for ok in ("2345-7", "2160-0", "4548-4", "15074-8", "1558-6", "2093-3"):
        coding["code"] = ok
        assert validate("UpdatePHRv1", p) == [], ok
    coding["code"] = "15074-7"
    assert validate("UpdatePHRv1", p)[0].rule == "code_format"


def test_org_summary_span_limit() -> None:
    p = _load(FIX / "valid" / "OrgEncounterSummary.json")
    p["EncounterSummary"][1]["period_start"] = "2025-02-14"  # 30 days after 2025-01-15: still one month
    assert validate("OrgEncounterSummary", p) == []
    p["EncounterSummary"][1]["period_start"] = "2025-02-15"
    assert _pairs(validate("OrgEncounterSummary", p)) == {("EncounterSummary", "summary_span")}


def test_nested_org_mismatch_is_a_warning() -> None:
    p = _load(FIX / "valid" / "AllergyIntolerancev1.json")
    p["AllergyIntolerance"][0]["managingOrganization"]["identifier"]["value"] = "11111"
    issues = validate("AllergyIntolerancev1", p)
    assert _pairs(issues) == {("AllergyIntolerance[0].managingOrganization.identifier.value", "org_mismatch")}
    assert not has_errors(issues)


def test_issue_serialisation_is_bilingual() -> None:
    p = _base()
    p["Patient"].pop("gender")
    [issue] = validate("UpdatePHRv1", p)
    d = issue.to_dict()
    assert d == {"path": "Patient.gender", "rule": "required", "severity": "error",
                 "message_th": issue.message_th, "message_en": issue.message_en}
    assert "ขาดข้อมูลที่จำเป็น" in issue.message_th and "required" in issue.message_en
    assert issue.message("th") == f"{issue.message_th} / {issue.message_en}"


def test_rule_catalogue_is_complete_and_documented() -> None:
    package = Path(__file__).parent.parent / "phrsync" / "phr" / "validate"
    used = {"required", "type"} | {
        node.args[1].value for src in sorted(package.glob("*.py"))
        for node in ast.walk(ast.parse(src.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add"
        and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)}
    assert len(used) > 30
    assert used <= set(RULES), used - set(RULES)
    for code, rule in RULES.items():
        assert rule.code == code and rule.severity in ("error", "warning")
        assert rule.title_th and rule.title_en
        assert rule.basis.startswith(("spec", "phrsync choice")), code
    # every rule is exercised by the shared cases or by a test in this file
    hit = {r for p in INVALID for _, r in _load(p)["expect"]}
    this_file = Path(__file__).read_text(encoding="utf-8")
    missing = {code for code in RULES if code not in hit and f'"{code}"' not in this_file}
    assert not missing, missing


def test_validator_does_not_modify_payload() -> None:
    p = _load(FIX / "valid" / "UpdatePHRv1.full_forms.json")
    before = copy.deepcopy(p)
    validate("UpdatePHRv1", p)
    assert p == before


def test_thai_digits_are_not_ascii_digits() -> None:
    """Thai numerals (๑๒๓) pass str.isdigit() and int(); codes and CIDs must still be ASCII digits."""
    p = _base()
    p["Patient"]["identifier"][0]["value"] = "๐๐๐๐๐๐๐๐๐๐๐๐๑"  # 0000000000001 in Thai numerals
    p["managingOrganization"]["identifier"]["value"] = "๙๙๙๙๙"
    p["Patient"]["birthDate"] = "๑๙๘๐-01-01"
    assert _pairs(validate("UpdatePHRv1", p)) == {
        ("Patient.identifier[0].value", "cid_format"),
        ("managingOrganization.identifier.value", "hcode_format"),
        ("Patient.birthDate", "iso_date"),
    }


def test_same_payload_same_issues() -> None:
    """Validation is deterministic and independent between calls (no state leaks between payloads)."""
    bad = _load(FIX / "invalid" / "update_five_problems.json")["payload"]
    first = validate("UpdatePHRv1", bad)
    assert validate("UpdatePHRv1", _base()) == []
    assert validate("UpdatePHRv1", bad) == first
