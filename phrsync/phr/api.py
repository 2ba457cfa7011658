"""The library under ``phrsync build`` and ``phrsync validate``: one typed function each, which the commands,
the demo and a web page call alike. They raise :mod:`phrsync.errors` (exit 2 for a wrong argument, an
unknown facility, a missing staging store) and return a result with ``to_dict()`` for ``--json``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from phrsync.config import Config
from phrsync.errors import ConfigError, NotFoundError, UsageError
from phrsync.f43.read import Selection
from phrsync.phr.build import STAGES, BuildResult, ProgressFn
from phrsync.terminology.drugcodes import DrugCodes

_BKK = dt.timezone(dt.timedelta(hours=7))


# ---- build ------------------------------------------------------------------------------------------

def parse_facilities(values: Iterable[str]) -> tuple[str, ...]:
    """Facility codes as given (repeated, or comma-separated), sorted and unique; a code that cannot be a
    HOSPCODE (five digits) is a usage error naming it (a typo such as 1066 would select nothing)."""
    facs = tuple(sorted({f.strip() for v in values for f in v.split(",") if f.strip()}))
    bad = [f for f in facs if not (len(f) == 5 and f.isdigit())]
    if bad:
        raise UsageError(f"--facility ต้องเป็นรหัสหน่วยบริการ 5 หลัก (HOSPCODE): {', '.join(bad)}",
                         f"--facility must be a 5-digit facility code (HOSPCODE): {', '.join(bad)}")
    return facs


def check_facilities(staging_path: str | Path, codes: Sequence[str]) -> None:
    """Raise :class:`NotFoundError` naming every code the staging store holds nothing of: a well-formed but
    unknown code would otherwise build nothing and report an empty success (the check is f43's)."""
    if not codes:
        return
    from phrsync.f43.read import require_facilities
    from phrsync.f43.staging import Staging

    with Staging(staging_path, read_only=True) as st:
        require_facilities(st, codes)


def facility_names(cfg: Config) -> dict[str, str]:
    """Optional ``[facilities]`` table in phrsync.toml: ``"12345" = "รพ.สต.ตัวอย่าง"`` overrides the code table."""
    return {str(k): str(v) for k, v in cfg.section("facilities").items() if isinstance(v, str)}


def drug_codes(cfg: Config, store: str | Path | None = None) -> DrugCodes:
    """The drug codes of the code store (``store``, else the configuration's: ``[terminology] store`` or
    ``<data_dir>/codes.sqlite``), loaded once per build. Empty when there is no store: every drug then follows
    ``[policies] unmapped_drug`` and every allergy waits for a drug code."""
    from phrsync.terminology.codestore import config_store_path, load_drug_codes

    return load_drug_codes(Path(store) if store else config_store_path(cfg))


def lab_codes(cfg: Config, store: str | Path | None = None) -> dict[tuple[str, str], str]:
    """The local lab codes of the code store (same store as :func:`drug_codes`): (hcode, LABTEST) → standard lab
    code, hcode '' = province-wide. Empty without a store: a LABTEST the shipped lab_loinc lacks stays local."""
    from phrsync.terminology.codestore import config_store_path, load_lab_codes

    return load_lab_codes(Path(store) if store else config_store_path(cfg))


@dataclass
class BuildOutcome:
    """What ``phrsync build`` did: the builder's counts and timings, the files written, the policies used."""

    result: BuildResult
    selection: Selection
    policies: dict[str, Any]
    report: dict[str, str] = field(default_factory=dict)  # {"html", "csv"} when a report was asked for

    def to_dict(self) -> dict[str, Any]:
        return {**self.result.to_dict(), "report": self.report, "policies": self.policies}


def build_payloads(cfg: Config, out: str | Path, *, staging: str | Path | None = None,
                   facilities: Sequence[str] = (), date_from: dt.date | None = None, date_to: dt.date | None = None,
                   report: str | Path | None = None, stages: Sequence[str] = STAGES, workers: int | None = None,
                   progress: ProgressFn | None = None, now: dt.datetime | None = None,
                   code_store: str | Path | None = None) -> BuildOutcome:
    """Build and validate the payloads of a selection into ``out`` (NDJSON, with its summary beside it) and,
    when ``report`` is given, the data-quality report there (HTML) and beside it (CSV). Sends nothing.
    ``code_store``: the drug codes' store when not the configuration's (the demo keeps its own)."""
    from phrsync.phr.build import build
    from phrsync.phr.mapping import MapContext, reset_code_cache
    from phrsync.phr.policies import PolicyError, from_config
    from phrsync.phr.report import write_csv, write_html
    from phrsync.terminology import configure_from_config

    configure_from_config(cfg)  # the province's own code tables (drug_tmt, facility names ...)
    reset_code_cache()
    try:
        policies = from_config(cfg)
    except PolicyError as e:
        raise ConfigError(str(e)) from e
    if date_from and date_to and date_to < date_from:
        raise UsageError("--to ต้องไม่ก่อน --from", "--to must not be before --from")
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise UsageError(f"ไม่รู้จักส่วน {', '.join(unknown)}", f"unknown part {', '.join(unknown)}",
                         hint=", ".join(STAGES))
    facs = parse_facilities(facilities)
    path = Path(staging) if staging else cfg.staging
    if not path.exists():
        raise NotFoundError(f"ไม่พบไฟล์ staging {path} (ใช้ phrsync import ก่อน)",
                            f"staging store {path} not found (run phrsync import first)")
    check_facilities(path, facs)
    now = now or dt.datetime.now(dt.UTC)
    sel = Selection(facs, date_from, date_to)
    mctx = MapContext(now=now, policies=policies, facility_names=facility_names(cfg), drug_codes=drug_codes(cfg, code_store),
                      lab_codes=lab_codes(cfg, code_store))
    res = build(path, out, sel, mctx, stages=tuple(s for s in STAGES if s in stages), progress=progress,
                workers=workers)
    outcome = BuildOutcome(res, sel, policies.to_dict())
    if report:
        assert res.quality is not None
        rpath = Path(report)
        rpath.parent.mkdir(parents=True, exist_ok=True)
        write_html(res.quality, rpath, generated=now.astimezone(_BKK),
                   selection={"facilities": list(facs), "date_from": date_from, "date_to": date_to},
                   policies=outcome.policies)
        csv_path = rpath.with_suffix(".csv")
        write_csv(res.quality, csv_path)
        outcome.report = {"html": str(rpath), "csv": str(csv_path)}
    return outcome


# ---- validate ---------------------------------------------------------------------------------------

DEFAULT_ENDPOINT = "UpdatePHRv1"


@dataclass
class Checked:
    """One payload checked: where it came from (file, or file:line and key), its endpoint and its issues."""

    item: str
    endpoint: str
    issues: list[Any]  # phrsync.phr.validate.Issue

    @property
    def errors(self) -> int:
        return sum(1 for i in self.issues if i.severity == "error")

    @property
    def ok(self) -> bool:
        return self.errors == 0

    def to_dict(self, limit: int = 20) -> dict[str, Any]:
        return {"item": self.item, "endpoint": self.endpoint, "ok": self.ok, "errors": self.errors,
                "warnings": len(self.issues) - self.errors, "issues": [i.to_dict() for i in self.issues[:limit]]}


@dataclass
class ValidationReport:
    results: list[Checked] = field(default_factory=list)
    limit: int = 20  # issues listed per payload in to_dict()

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if not r.ok)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": len(self.results), "failed": self.failed,
                "results": [r.to_dict(self.limit) for r in self.results]}


def validate_files(files: Sequence[str | Path], endpoint: str | None = None, limit: int = 20) -> ValidationReport:
    """Check payload files with the shared validator: a ``.ndjson``/``.jsonl`` file line by line (each line's
    own endpoint, as ``phrsync build`` writes it), any other file as one payload of ``endpoint``
    (default UpdatePHRv1). A line that is not JSON is reported as such, not raised."""
    from phrsync.phr.validate import ENDPOINTS, validate, validate_json_bytes

    if endpoint is not None and endpoint not in ENDPOINTS:
        raise UsageError(f"ไม่รู้จัก endpoint {endpoint}", f"unknown endpoint {endpoint}", hint=", ".join(ENDPOINTS))
    rep = ValidationReport(limit=limit)
    for f in map(str, files):
        try:
            data = Path(f).read_bytes()
        except FileNotFoundError as e:
            raise NotFoundError(f"ไม่พบไฟล์ {f}", f"no such file {f}") from e
        if not f.endswith((".ndjson", ".jsonl")):
            ep = endpoint or DEFAULT_ENDPOINT
            rep.results.append(Checked(f, ep, validate_json_bytes(ep, data)))
            continue
        for n, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = orjson.loads(line)
                ep = endpoint or rec.get("endpoint") or DEFAULT_ENDPOINT
                rep.results.append(Checked(f"{f}:{n} {rec.get('key', '')}", ep, validate(ep, rec.get("payload"))))
            except (orjson.JSONDecodeError, AttributeError):
                ep = endpoint or DEFAULT_ENDPOINT
                rep.results.append(Checked(f"{f}:{n}", ep, validate_json_bytes(ep, line)))
    return rep
