"""Synthetic drug codes for the drugs ``synth`` invents: a TMTRF-shaped release zip and a drug catalogue.

Why: TMT may not be shipped (its licence), yet a clean synthetic province should build with every Medication
under TMT GP and every allergy under a TMT substance. So synth writes, beside its 43-file zips (in ``<out>-codes/``:
a 43-file import of ``<out>`` reads every .zip and .txt below it), a release in the official layout with invented IDs and a province-wide
catalogue (phrsync ``csv`` format) mapping each formulary 24-digit code to its TPU. Both say they are
synthetic: the zip's name (``TMTRF<date>-SYNTHETIC.zip``), every concept's MANUFACTURER on TP/TPU, a README
inside, and every catalogue row's ``source``. Import them with ``phrsync codes import-tmt`` and
``phrsync codes import-drugs --format csv``. The bytes depend only on the formulary (no timestamps).
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path
from typing import Any

from phrsync.synth import catalog as cat

RELEASE_DATE = "20240105"  # fixed: the synthetic release is the same for every synthetic province
SOURCE = "synthetic: phrsync synth formulary (not real TMT or NHSO data)"
MAKER = "SYNTHETIC (phrsync synth)"
_ZIP_TIME = (2024, 1, 5, 0, 0, 0)


def _substances(name: str) -> list[str]:
    """The active substances a formulary name implies: the words before the first number, split at '+'."""
    base = re.sub(r"\(.*?\)", " ", name)
    parts = base.split("+")
    out = []
    for p in parts:
        words = re.split(r"\s\d|\s(?=\d)", " " + p.strip(), maxsplit=1)[0].strip()
        words = re.sub(r"\s+(tab|cap|cream|syrup|inj|solution|eye drop|nebule|sachet|dry syrup)\b.*$", "", words,
                       flags=re.I).strip()
        if words:
            out.append(words.lower())
    return out or [name.lower()]


def plan() -> dict[str, Any]:
    """Concepts and relationships for every formulary drug: {level: [(id, fsn)], kind: [(parent, child)],
    "catalogue": [(did24, tpu, name)]}."""
    levels: dict[str, list[tuple[str, str]]] = {lv: [] for lv in ("SUBS", "VTM", "GP", "GPU", "TP", "TPU")}
    rels: dict[str, list[tuple[str, str]]] = {k: [] for k in ("SUBStoVTM", "VTMtoGP", "GPtoGPU", "GPtoTP",
                                                            "GPUtoTPU", "TPtoTPU")}
    subs_ids: dict[str, str] = {}
    vtm_ids: dict[tuple[str, ...], str] = {}
    catalogue = []
    for n, drug in enumerate(sorted(cat.DRUGS.values(), key=lambda d: d.code), start=1):
        subs = _substances(drug.name)
        for s in subs:
            if s not in subs_ids:
                subs_ids[s] = f"81{len(subs_ids) + 1:04d}"
                levels["SUBS"].append((subs_ids[s], s))
        key = tuple(sorted(subs))
        if key not in vtm_ids:
            vtm_ids[key] = f"82{len(vtm_ids) + 1:04d}"
            levels["VTM"].append((vtm_ids[key], " + ".join(key)))
            rels["SUBStoVTM"].extend((subs_ids[s], vtm_ids[key]) for s in key)
        gp, gpu, tp, tpu = (f"{p}{n:04d}" for p in ("83", "84", "85", "86"))
        generic = drug.name.lower()
        levels["GP"].append((gp, generic))
        levels["GPU"].append((gpu, f"{generic}, 1 {drug.unit.lower()}"))
        levels["TP"].append((tp, f"SYNTH-{n:02d} ({generic})"))
        levels["TPU"].append((tpu, f"SYNTH-{n:02d} ({generic}), 1 {drug.unit.lower()}"))
        rels["VTMtoGP"].append((vtm_ids[key], gp))
        rels["GPtoGPU"].append((gp, gpu))
        rels["GPtoTP"].append((gp, tp))
        rels["GPUtoTPU"].append((gpu, tpu))
        rels["TPtoTPU"].append((tp, tpu))
        catalogue.append((drug.code, tpu, drug.name))
    return {**levels, **rels, "catalogue": catalogue}


def _tab(rows: list[list[str]]) -> bytes:
    return ("".join("\t".join(r) + "\r\n" for r in rows)).encode("utf-8")


def write_tmt_zip(out_dir: Path, p: dict[str, Any] | None = None) -> Path:
    """``TMTRF<date>-SYNTHETIC.zip`` in the release layout (tab text files, Concept/ and Relationship/)."""
    p = p or plan()
    root = f"TMTRF{RELEASE_DATE}/TMTRF{RELEASE_DATE}_BONUS"
    z = out_dir / f"TMTRF{RELEASE_DATE}-SYNTHETIC.zip"

    def put(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
        zf.writestr(zipfile.ZipInfo(name, _ZIP_TIME), data, compress_type=zipfile.ZIP_DEFLATED)

    with zipfile.ZipFile(z, "w") as zf:
        put(zf, f"TMTRF{RELEASE_DATE}/README.txt",
            ("SYNTHETIC release written by phrsync synth for its invented formulary. Not TMT: every ID and "
             "name is made up. / ข้อมูลสังเคราะห์ ไม่ใช่ TMT จริง\r\n").encode())
        for level in ("SUBS", "VTM", "GP", "GPU", "TP", "TPU"):
            maker = level in ("TP", "TPU")
            head = [f"TMTID({level})", "FSN", "CHANGEDATE"] + (["MANUFACTURER"] if maker else [])
            body = [[i, f, RELEASE_DATE] + ([MAKER] if maker else []) for i, f in p[level]]
            put(zf, f"{root}/Concept/{level}{RELEASE_DATE}.txt", _tab([head, *body]))
        for kind in ("SUBStoVTM", "VTMtoGP", "GPtoGPU", "GPtoTP", "GPUtoTPU", "TPtoTPU"):
            a, b = kind.split("to")
            put(zf, f"{root}/Relationship/{kind}{RELEASE_DATE}.txt",
                _tab([[f"{a}ID", f"{b}ID"], *[[x, y] for x, y in p[kind]]]))
    return z


def write_catalogue(out_dir: Path, p: dict[str, Any] | None = None) -> Path:
    """``drug_catalogue-SYNTHETIC.csv``: province-wide rows (phrsync csv format) 24-digit code → TPU."""
    p = p or plan()
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["hcode", "code", "did24", "tmtid", "name", "source"])
    for did, tpu, name in p["catalogue"]:
        w.writerow(["", did, did, tpu, name, SOURCE])
    out = out_dir / "drug_catalogue-SYNTHETIC.csv"
    out.write_text(buf.getvalue(), encoding="utf-8")
    return out


def write_drug_codes(out_dir: str | Path) -> dict[str, Any]:
    """Both files into ``out_dir`` (made when missing); what was written, for ``synth --json``."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    p = plan()
    z = write_tmt_zip(d, p)
    c = write_catalogue(d, p)
    return {"dir": str(d), "tmt_zip": z.name, "catalogue": c.name, "catalogue_format": "csv", "drugs": len(p["catalogue"]),
            "substances": len(p["SUBS"]), "source": SOURCE,
            "import": [f"phrsync codes import-tmt {z.name}", f"phrsync codes import-drugs {c.name} --format csv"]}
