"""The build file: the contract between ``phrsync build`` (which writes it) and the agent's outbox (which loads it).

One UTF-8 JSON object per line, one line per payload that passed the validator. The head fields come first,
always in :data:`HEAD` order, and the payload last, with its keys sorted (its bytes are then its canonical form)::

    {"day":"2025-03-01","endpoint":"UpdatePHRv1","hospcode":"10699","key":"UpdatePHRv1|10699:V1","payload":{…}}

``day`` (the visit day in Asia/Bangkok, :func:`visit_day`) is written only beside an encounter. A reader that
meets a line in exactly this layout takes the head from it and the payload's bytes as they are, without
parsing them (:func:`read_line`); any other line that is valid JSON with the four fields (hand-written, keys
in another order, spaces) is parsed whole and means the same. Beside the file, ``<file>.summary.json`` says
when it was built and what was built, refused and skipped per facility and endpoint (:func:`write_summary`).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import orjson

ENCOUNTER = "UpdatePHRv1"
FIELDS = ("key", "endpoint", "hospcode", "payload")  # every line has these; ``day`` only an encounter's
# The head as the writer lays it out: (field, bytes its value may hold for the fast reader). A value outside
# its pattern (a quote or backslash in a key, a non-ASCII code) is still written correctly; such a line is
# simply parsed whole by the reader.
HEAD: tuple[tuple[str, bytes], ...] = (
    ("day", rb"\d{4}-\d{2}-\d{2}"),
    ("endpoint", rb"[A-Za-z0-9_]{1,64}"),
    ("hospcode", rb"[0-9A-Za-z]{1,16}"),
    ("key", rb'[^"\\]{1,255}'),
)
_PAYLOAD_AT = b',"payload":'


def _head_re(optional_day: bool, endpoint: str | None = None) -> re.Pattern[bytes]:
    """The writer's head (up to where the payload starts) as a pattern with one group per :data:`HEAD` field:
    the fast reader's (any endpoint, ``day`` optional) or the chunker's (``day`` and this one endpoint)."""
    parts = []
    for name, value in HEAD:
        if name == "endpoint" and endpoint is not None:
            value = re.escape(endpoint.encode())
        part = b'"' + name.encode() + b'":"(' + value + b')",'
        parts.append(b"(?:" + part + b")?" if name == "day" and optional_day else part)
    return re.compile(b"\\{" + b"".join(parts)[:-1] + _PAYLOAD_AT)


_HEAD_RE = _head_re(optional_day=True)  # groups: day (or None), endpoint, hospcode, key
_ENCOUNTER_RE = _head_re(optional_day=False, endpoint=ENCOUNTER)
_CLOSER = {b"{": b"}", b"[": b"]"}
_BKK = dt.timezone(dt.timedelta(hours=7))


# ---- the visit day --------------------------------------------------------------------------------

def visit_day(payload: Any) -> str | None:
    """The visit day of an encounter payload in Asia/Bangkok, as PHR files it for OrganizationSummary (None
    when its ``period.start`` is missing or not a date/time)."""
    try:
        start = payload["Encounter"][0]["period"]["start"]
        if isinstance(start, str) and len(start) == 25 and start.endswith("+07:00") and start[10] == "T":
            return start[:10]  # already Bangkok time, as phrsync builds it: no parsing needed
        t = dt.datetime.fromisoformat(str(start).replace("Z", "+00:00"))
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    if t.tzinfo is not None:
        t = t.astimezone(_BKK)
    return t.date().isoformat()


# ---- writing ----------------------------------------------------------------------------------------

# HEAD's names are in sorted order and "payload" sorts after them: one orjson call with sorted keys then writes
# the whole line in this layout, the payload's own keys sorted as they must be (the cheapest way to write it)
_NAMES = [name for name, _ in HEAD] + ["payload"]
assert sorted(_NAMES) == _NAMES, "the build file's head must be in sorted order"
_LINE = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE


def encode_line(key: str, endpoint: str, hospcode: str, payload: Any) -> bytes:
    """One line of the build file (ending in ``\\n``), in the layout :func:`read_line` reads fast."""
    day = visit_day(payload) if endpoint == ENCOUNTER else None
    if day is not None:
        return orjson.dumps({"day": day, "endpoint": endpoint, "hospcode": hospcode, "key": key, "payload": payload},
                            option=_LINE)
    return orjson.dumps({"endpoint": endpoint, "hospcode": hospcode, "key": key, "payload": payload}, option=_LINE)


# ---- reading ----------------------------------------------------------------------------------------

def _bad(n: int, path: str | Path, why: object) -> ValueError:
    return ValueError(f"บรรทัด {n} ของ {path} ไม่ถูกต้อง / line {n} of {path} is invalid: {why}")


def parse_line(line: bytes, n: int, path: str | Path) -> dict[str, Any]:
    """A line parsed whole: its fields and ``line`` (its number, for a later complaint such as a duplicate key)."""
    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise _bad(n, path, e) from None
    if not isinstance(item, dict) or not all(k in item for k in FIELDS):
        raise _bad(n, path, "missing key/endpoint/hospcode/payload")
    item["line"] = n
    return item


def split_line(line: bytes, n: int,
               digest: Callable[[memoryview], str] | None = None) -> dict[str, Any] | None:
    """A line in the writer's layout, split without parsing its payload: the head fields, ``day`` (None when
    not written), ``payload`` None, ``payload_bytes`` (a memoryview into the line), ``payload_hash``
    (``digest`` of those bytes, or None) and ``line``. None for any other line."""
    end = len(line) - (2 if line.endswith(b"\r\n") else 1 if line.endswith(b"\n") else 0)
    if line[end - 1:end] != b"}":
        return None
    m = _HEAD_RE.match(line)
    # the payload (an object or a list) must close right before the line does: a field added after it by hand
    # is caught here when its value is not itself an object (checking more would mean parsing the payload)
    if m is None or _CLOSER.get(line[m.end():m.end() + 1]) != line[end - 2:end - 1]:
        return None
    day, endpoint, hospcode, key = m.groups()
    raw = memoryview(line)[m.end():end - 1]
    return {"day": day.decode() if day is not None else None, "endpoint": endpoint.decode(),
            "hospcode": hospcode.decode(), "key": key.decode(), "payload": None, "payload_bytes": raw,
            "payload_hash": digest(raw) if digest is not None else None, "line": n}


def read_line(line: bytes, n: int, path: str | Path,
              digest: Callable[[memoryview], str] | None = None) -> Iterator[dict[str, Any]]:
    """The item of one line (none for a blank one): split fast when it is in the writer's layout
    (:func:`split_line`), parsed whole otherwise (:func:`parse_line`)."""
    item = split_line(line, n, digest)
    if item is not None:
        yield item
    elif line.strip():
        yield parse_line(line, n, path)


def iter_lines(path: str | Path) -> Iterator[dict[str, Any]]:
    """Every line of a build file parsed whole: {"key", "endpoint", "hospcode", "payload", …, "line"}."""
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                yield parse_line(line, n, path)


def iter_items(path: str | Path, digest: Callable[[memoryview], str] | None = None) -> Iterator[dict[str, Any]]:
    """Every line of a build file through :func:`read_line` (lines as the writer wrote them are not parsed)."""
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, 1):
            yield from read_line(line, n, path, digest)


def facilities(path: str | Path) -> list[str]:
    """The facility codes of a build file (e.g. to create one sandbox account per facility for a demo)."""
    return sorted({str(i["hospcode"]) for i in iter_lines(path)})


# ---- chunks of encounter lines -------------------------------------------------------------------------

CHUNK_CUT = 32  # a run is also cut after a line whose key hashes to 0 modulo this: ~32 lines per chunk


def split_lines(data: bytes) -> list[bytes]:
    """Lines as the file has them (split at ``\\n`` only, as line numbers are counted)."""
    parts = data.split(b"\n")
    if parts and not parts[-1]:
        parts.pop()
    return parts


class Run(NamedTuple):
    first_line: int
    start: int
    end: int
    hospcode: str | None  # None: not encounter lines in the writer's layout (registers, summaries, other)
    day: str | None
    first_key: str | None  # a chunk's identity with (hospcode, day): its first line's key
    lines: int


def runs(buf: Any) -> list[Run]:
    """The file as chunks: consecutive encounter lines (in the writer's layout, with a day) of one facility and
    visit day, also cut after a line whose key's CRC-32 is 0 modulo ``CHUNK_CUT`` — content-defined, so a
    changed, added or removed visit changes only its own chunk; everything else in runs of its own. One match
    of the head and one newline search per line: no line is copied."""
    out: list[Run] = []
    size = len(buf)
    pos = n = count = start = first = 0
    cur: tuple[bytes, bytes] | None | bool = False  # False: no run yet
    first_key = b""
    match, find, crc = _ENCOUNTER_RE.match, buf.find, zlib.crc32

    def close(end: int) -> None:
        k = cur if isinstance(cur, tuple) else None
        out.append(Run(first, start, end, k[1].decode() if k else None, k[0].decode() if k else None,
                       first_key.decode() if k else None, count))

    while pos < size:
        nl = find(b"\n", pos)
        n += 1
        m = match(buf, pos)  # None: not an encounter line with its day, a run of its own kind
        k = (m[1], m[3]) if m else None
        if k != cur:
            if count:
                close(pos)
            cur, start, first, count = k, pos, n, 0
            first_key = m.group(4) if m else b""
        count += 1
        pos = size if nl < 0 else nl + 1
        if m and crc(m.group(4)) % CHUNK_CUT == 0:  # cut here: the next line starts a chunk
            close(pos)
            cur, count = False, 0
    if count:
        close(pos)
    return out


# ---- the summary beside the file -------------------------------------------------------------------------

SUMMARY_SUFFIX = ".summary.json"
OUTCOMES = ("built", "refused", "skipped", "waiting")  # waiting: held for a code (an allergy without a TMT substance)


def summary_path(ndjson_path: str | Path) -> Path:
    p = Path(ndjson_path)
    return p.with_name(p.name + SUMMARY_SUFFIX)


@dataclass
class BuildSummary:
    """What one build made of each facility: {hospcode: {endpoint: {"built", "refused", "skipped"}}}, so that
    ``status`` can count what the validator refused before anything was sent. ``size`` and ``mtime_ns``: the
    build file's, which tell a summary from a file written since."""

    built_at: dt.datetime
    seconds: float = 0.0
    facilities: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    size: int = 0
    mtime_ns: int = 0
    # {hospcode: [the data-quality report's rows]}: what the validator refused and why, and the notes (unknown
    # codes, missing data, estimates), each with its owner, count and masked examples (phrsync.phr.report)
    issues: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # codes the build could not map, one row each: {"kind": "drug" | "allergy" | "lab", "hospcode", "code",
    # "name" (the 43 files' own text, may be None), "payloads" (how many payloads carry it), "waiting" (how many
    # of them are held for it)}; read by ``phrsync codes unmapped`` and the web's review page
    unmapped: list[dict[str, Any]] = field(default_factory=list)

    def count(self, hospcode: str, what: str) -> int:
        return sum(c.get(what, 0) for c in self.facilities.get(hospcode, {}).values())

    def to_dict(self) -> dict[str, Any]:
        return {"built_at": self.built_at.isoformat(timespec="seconds"), "seconds": round(self.seconds, 3),
                "size": self.size, "mtime_ns": self.mtime_ns, "facilities": self.facilities, "issues": self.issues,
                "unmapped": self.unmapped}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BuildSummary:
        return cls(built_at=dt.datetime.fromisoformat(d["built_at"]), seconds=float(d.get("seconds", 0.0)),
                   facilities={str(h): {str(ep): {w: int(c.get(w, 0)) for w in OUTCOMES} for ep, c in eps.items()}
                               for h, eps in d.get("facilities", {}).items()},
                   size=int(d.get("size", 0)), mtime_ns=int(d.get("mtime_ns", 0)),
                   issues={str(h): [dict(r) for r in rows if isinstance(r, dict)]
                           for h, rows in (d.get("issues") or {}).items() if isinstance(rows, list)},
                   unmapped=[dict(r) for r in d.get("unmapped") or [] if isinstance(r, dict)])


def write_summary(ndjson_path: str | Path, summary: BuildSummary) -> Path:
    """Write ``<file>.summary.json`` beside the build file (atomically; ``size`` and ``mtime_ns`` taken from
    the file)."""
    out = summary_path(ndjson_path)
    st = Path(ndjson_path).stat()
    summary.size, summary.mtime_ns = st.st_size, st.st_mtime_ns
    tmp = out.with_name(out.name + ".part")
    tmp.write_bytes(orjson.dumps(summary.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    os.replace(tmp, out)
    return out


def read_summary(ndjson_path: str | Path) -> BuildSummary | None:
    """The summary of the build file, or None when there is none, it cannot be read, or it belongs to an
    earlier file of that name (the file's size or modification time differs)."""
    p = summary_path(ndjson_path)
    try:
        s = BuildSummary.from_dict(orjson.loads(p.read_bytes()))
        st = Path(ndjson_path).stat()
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None
    return s if (s.size, s.mtime_ns) == (st.st_size, st.st_mtime_ns) else None
