"""The build-file contract (phrsync.phr.buildfile): the writer's layout, its fast reader, the full parse of any
other line, the visit day, the chunks the outbox compares whole, and the summary beside the file."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from phrsync.phr import buildfile as bf

ENC = {"resourceType": "x", "Encounter": [{"period": {"start": "2025-03-01T23:30:00+07:00"}, "zz": 1, "aa": [3]}],
       "Patient": {"name": "ก ข", "b": None}}
REG = {"list": [{"y": 2, "x": 1}]}


def _fields(item: dict[str, Any]) -> dict[str, Any]:
    payload = item["payload"] if item["payload"] is not None else orjson.loads(item["payload_bytes"])
    return {"key": item["key"], "endpoint": item["endpoint"], "hospcode": item["hospcode"],
            "day": item.get("day"), "payload": payload}


@pytest.mark.parametrize(("endpoint", "payload", "day"), [
    ("UpdatePHRv1", ENC, "2025-03-01"), ("PatientChronicRegisterv1", REG, None),
    ("UpdatePHRv1", {"Encounter": []}, None)])  # an encounter without a start has no day written
def test_writer_lines_are_read_fast_and_mean_what_a_full_parse_says(endpoint: str, payload: Any,
                                                                     day: str | None) -> None:
    line = bf.encode_line(f"{endpoint}|10699:V1", endpoint, "10699", payload)
    # the layout: head fields in HEAD order, the payload last with its keys sorted (canonical bytes)
    head = {"day": day} if day else {}
    head.update(endpoint=endpoint, hospcode="10699", key=f"{endpoint}|10699:V1")
    assert line == orjson.dumps({**head, "payload": payload}, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)
    assert list(orjson.loads(line)) == [name for name, _ in bf.HEAD if name in head] + ["payload"]
    fast = bf.split_line(line, 7, lambda b: f"h{len(b)}")
    assert fast is not None and fast["payload"] is None and fast["line"] == 7
    assert bytes(fast["payload_bytes"]) == orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    assert fast["payload_hash"] == f"h{len(fast['payload_bytes'])}"
    full = bf.parse_line(line, 7, "f")
    assert _fields(fast) == _fields(full) == {**head, "day": day, "payload": payload}
    assert bf.split_line(line.rstrip(b"\n") + b"\r\n", 1) is not None  # a file that went through Windows


@pytest.mark.parametrize("line", [
    # the same facts in other layouts: keys in another order, spaces, a field after the payload, an escape
    b'{"key":"UpdatePHRv1|10699:V1","endpoint":"UpdatePHRv1","hospcode":"10699","payload":{"a":1}}\n',
    b'{"day": "2025-03-01", "endpoint": "UpdatePHRv1", "hospcode": "10699", "key": "UpdatePHRv1|10699:V1", '
    b'"payload": {"a": 1}}\n',
    b'{"endpoint":"UpdatePHRv1","hospcode":"10699","key":"UpdatePHRv1|10699:V1","payload":{"a":1},"x":2}\n',
    b'{"endpoint":"UpdatePHRv1","hospcode":"10699","key":"UpdatePHRv1|10699:\\u0056\\"1","payload":{"a":1}}\n',
])
def test_any_other_line_is_parsed_whole(line: bytes) -> None:
    assert bf.split_line(line, 1) is None
    [item] = bf.read_line(line, 1, "f")
    assert item["payload"] == {"a": 1} and item["hospcode"] == "10699" and item["key"].startswith("UpdatePHRv1|")


def test_values_outside_the_fast_layout_are_still_written_and_read_correctly() -> None:
    key = 'UpdatePHRv1|10699:"quoted"\\'
    line = bf.encode_line(key, "UpdatePHRv1", "ก10699", ENC)
    assert bf.split_line(line, 1) is None
    [item] = bf.read_line(line, 1, "f")
    assert (item["key"], item["hospcode"], item["day"], item["payload"]) == (key, "ก10699", "2025-03-01", ENC)


def test_a_bad_line_is_named_with_its_number() -> None:
    with pytest.raises(ValueError, match="line 3 of f.ndjson"):
        list(bf.read_line(b'{"key":"x"}\n', 3, "f.ndjson"))
    with pytest.raises(ValueError, match="line 4 of f.ndjson"):
        list(bf.read_line(b'{"key":\n', 4, "f.ndjson"))
    assert list(bf.read_line(b"  \n", 5, "f.ndjson")) == []


@pytest.mark.parametrize(("start", "day"), [
    ("2025-03-01T23:30:00+07:00", "2025-03-01"), ("2025-03-01T20:00:00Z", "2025-03-02"),
    ("2025-03-01T01:00:00+09:00", "2025-02-28"), ("2025-03-01", "2025-03-01"), ("2025-03-01T08:00:00", "2025-03-01"),
    ("soon", None), (None, None)])
def test_visit_day_is_the_bangkok_day(start: Any, day: str | None) -> None:
    assert bf.visit_day({"Encounter": [{"period": {"start": start}}]}) == day
    assert bf.visit_day({"Patient": {}}) is None


def test_runs_group_a_facility_day_of_writer_lines() -> None:
    lines = [bf.encode_line(f"UpdatePHRv1|10699:V{i}", "UpdatePHRv1", "10699", ENC) for i in range(3)]
    lines.append(bf.encode_line("PatientChronicRegisterv1|10699:1", "PatientChronicRegisterv1", "10699", REG))
    lines.append(bf.encode_line("UpdatePHRv1|10700:V9", "UpdatePHRv1", "10700", ENC))
    buf = b"".join(lines)
    got = [(r.first_line, r.hospcode, r.day, r.first_key, r.lines) for r in bf.runs(buf)]
    assert got[-2:] == [(4, None, None, None, 1), (5, "10700", "2025-03-01", "UpdatePHRv1|10700:V9", 1)]
    enc = [g for g in got if g[1] == "10699"]
    assert sum(g[4] for g in enc) == 3 and enc[0][:4] == (1, "10699", "2025-03-01", "UpdatePHRv1|10699:V0")
    assert all(buf[r.start:r.end] == b"".join(lines[r.first_line - 1:r.first_line - 1 + r.lines])
               for r in bf.runs(buf))
    assert bf.split_lines(buf) == [x.rstrip(b"\n") for x in lines]


def test_summary_beside_the_build_file(tmp_path: Path) -> None:
    out = tmp_path / "p.ndjson"
    assert bf.read_summary(out) is None
    out.write_bytes(bf.encode_line("UpdatePHRv1|10699:V1", "UpdatePHRv1", "10699", ENC))
    at = dt.datetime(2025, 3, 1, 1, 2, 3, tzinfo=dt.UTC)
    s = bf.BuildSummary(at, 1.5, {"10699": {"UpdatePHRv1": {"built": 1, "refused": 2, "skipped": 0, "waiting": 0}}},
                        unmapped=[{"kind": "allergy", "hospcode": "10699", "code": "X", "name": None, "payloads": 1,
                                   "waiting": 1}])
    assert bf.write_summary(out, s) == tmp_path / "p.ndjson.summary.json"
    back = bf.read_summary(out)
    assert back is not None and back.to_dict() == s.to_dict() and back.built_at == at
    assert (back.count("10699", "refused"), back.count("10700", "refused")) == (2, 0)
    st = out.stat()
    os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # written again since, same size: not its summary
    assert bf.read_summary(out) is None
    bf.write_summary(out, s)
    out.write_bytes(out.read_bytes() * 2)
    assert bf.read_summary(out) is None
    (tmp_path / "p.ndjson.summary.json").write_text("{", encoding="utf-8")
    assert bf.read_summary(out) is None
