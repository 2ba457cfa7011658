"""Compact payload storage: canonical JSON (sorted keys, no spaces) deflated with a preset dictionary of the
key names and URIs every PHR payload repeats, so a typical encounter takes a few hundred bytes, not ~7 KB."""

from __future__ import annotations

import zlib
from typing import Any

import orjson

# Format byte 0x01 = zlib (raw deflate) with ZDICT_V1. Never edit ZDICT_V1: stored rows depend on it;
# add ZDICT_V2 with a new format byte instead.
_FMT_V1 = b"\x01"
ZDICT_V1 = (
    b'"Appointment":[],"Claim":[],"DiagnosticReport":[],"Immunization":[],'
    b'{"coding":[{"code":"1","display":"\xe0\xb8\xa1\xe0\xb8\xb2\xe0\xb9\x80\xe0\xb8\xad\xe0\xb8\x87 '
    b'(\xe0\xb8\xab\xe0\xb9\x89\xe0\xb8\xad\xe0\xb8\x87\xe0\xb8\x9a\xe0\xb8\xb1\xe0\xb8\x95\xe0\xb8\xa3)",'
    b'"system":"https://phr1.moph.go.th/api/CodingSystem?System=encounter_type"}]}'
    b'"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB","display":"ambulatory"'
    b'"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"'
    b'"system":"http://terminology.hl7.org/CodeSystem/condition-ver-status","code":"confirmed"'
    b'"system":"http://hl7.org/fhir/sid/icd-10","system":"http://loinc.org","system":"http://snomed.info/sct",'
    b'"system":"https://www.this.or.th/tmt/gp","system":"http://unitsofmeasure.org",'
    b'"system":"https://refcode.moph.go.th/vaccine","system":"https://www.dopa.go.th","type":"CID",'
    b'"class_group":{"name":"\xe0\xb8\xaa\xe0\xb8\xb4\xe0\xb8\x97\xe0\xb8\x98\xe0\xb8\xb4","value":"UCS"}'
    b'"category":"Outpatient","status":"active","status":"finished","status":"completed",'
    b'"valueQuantity":{"unit":"mg/dL","value":"effectiveDateTime":"recordedDate":"+07:00"'
    b'"vital_signs":{"body_height_cm":"body_mass_index":"body_temp_cel":"body_weight_kg":'
    b'"bp_diastolic_mmhg":"bp_systolic_mmhg":"pulse":"respiratory_rate":'
    b'"period":{"end":"start":"Coverage":[{"Condition":[{"Medication":[{"Observation":[{'
    b'"clinicalStatus":{"coding":[{"code":{"coding":[{"class":{"identifier":[{'
    b'"system":"https://bps.moph.go.th/hcode/5","use":"official","value":"'
)


def dumps(obj: Any) -> bytes:
    """Canonical JSON bytes: equal documents give equal bytes, which keeps compression and diffs stable."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def pack(obj: Any) -> bytes:
    co = zlib.compressobj(6, zlib.DEFLATED, -15, 4, zdict=ZDICT_V1)  # memLevel 4: far cheaper set-up
    return _FMT_V1 + co.compress(dumps(obj)) + co.flush()


def unpack(blob: bytes) -> Any:
    if blob[:1] != _FMT_V1:
        raise ValueError("unknown storage format")
    do = zlib.decompressobj(wbits=-15, zdict=ZDICT_V1)
    return orjson.loads(do.decompress(bytes(blob[1:])) + do.flush())
