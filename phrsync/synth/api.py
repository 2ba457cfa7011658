"""The library under ``phrsync synth``: a synthetic province written as 43-file zips, into an HDC schema, or
both, with a typed result (``to_dict()`` is the command's ``--json``)."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phrsync.errors import SourceError, UsageError
from phrsync.pdpa import mask_text
from phrsync.synth.generator import SynthOptions

ProgressFn = Callable[[int, int], None]  # (facilities written, facilities in the province)


@dataclass
class SynthResult:
    """What was generated: the province, its months, and what the zips and/or the HDC schema received."""

    province: str
    province_name: str
    first_month: dt.date
    last_month: dt.date
    months: int
    seconds: float = 0.0
    zips: dict[str, Any] | None = None  # the zip writer's counts (out_dir, zips, facilities, rows, defects …)
    hdc: dict[str, Any] | None = None  # rows loaded per table, bad values, skipped rows

    @property
    def encounters(self) -> int:
        return int(self.zips["encounters"]) if self.zips else 0

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.hdc is not None:
            d["hdc"] = self.hdc
        d.update(self.zips or {})
        d["seconds"] = round(self.seconds, 2)
        d["period"] = {"first": f"{self.first_month:%Y-%m}", "last": f"{self.last_month:%Y-%m}",
                       "months": self.months}
        return d


def _hidden(message: str, url: str) -> str:
    """An HDC error message without the URL's password or any citizen ID it may carry."""
    msg = mask_text(message)
    try:
        from sqlalchemy.engine import make_url

        secret = make_url(url).password or ""
    except Exception:  # an unparsable URL has no password to hide
        secret = ""
    return msg.replace(secret, "***") if secret else msg


def codes_dir(out_dir: str | Path) -> Path:
    """Where synth writes its drug codes: ``<out_dir>-codes`` beside the 43-file folder."""
    p = Path(out_dir)
    return p.with_name(p.name + "-codes")


def synthesize(opts: SynthOptions, out_dir: str | Path | None = None, hdc_url: str | None = None, *,
               workers: int | None = None, progress: ProgressFn | None = None) -> SynthResult:
    """Generate the province of ``opts`` into ``out_dir`` (zips and manifest.json) and/or ``hdc_url`` (a
    MySQL/MariaDB HDC schema). Zips alone are written by ``workers`` processes (default min(2, CPUs)), with
    the same bytes as one process; with an HDC target one stream feeds both."""
    from phrsync.synth.export import ZipWriter, by_facility, write_province
    from phrsync.synth.generator import generate, plan

    if not out_dir and not hdc_url:
        raise UsageError("ต้องระบุ --out หรือ --hdc", "give --out or --hdc (or both)")
    try:
        pl = plan(opts)
    except ValueError as e:
        raise UsageError(str(e)) from e
    res = SynthResult(opts.province, pl.province.name_th, pl.months[0], pl.months[-1], len(pl.months))
    t0 = time.perf_counter()
    if out_dir and not hdc_url:
        res.zips = write_province(opts, out_dir, workers or min(2, os.cpu_count() or 1), progress)
    elif hdc_url:
        from phrsync.f43.hdc import load_batches

        batches = by_facility(generate(opts), len(pl.province.facilities), progress)
        writer = ZipWriter(out_dir) if out_dir else None
        if writer:
            batches = writer.tap(batches)
        try:
            loaded = load_batches(hdc_url, batches)
        except Exception as e:  # whatever the driver raised, reported without the password or a CID
            raise SourceError("โหลดเข้าฐาน HDC ไม่สำเร็จ", "loading into HDC failed",
                              hint=_hidden(str(e), hdc_url)) from e
        res.hdc = {"rows": {k: v for k, v in dict(loaded).items() if v},
                   "bad_values": dict(getattr(loaded, "bad_values", {})),
                   "skipped": dict(getattr(loaded, "skipped", {}))}
        if writer:
            res.zips = writer.finish(opts.to_dict())
    if out_dir and res.zips is not None:
        from phrsync.synth.drugs import write_drug_codes

        # the drug codes of the invented formulary (a TMTRF-shaped zip and a catalogue), for codes import-*: in a
        # folder beside out_dir, not in it (a 43-file import of out_dir reads every .zip/.txt below it)
        res.zips["codes"] = write_drug_codes(codes_dir(out_dir))
    res.seconds = time.perf_counter() - t0
    return res
