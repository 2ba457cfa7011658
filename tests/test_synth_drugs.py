"""synth's drug codes: every drug it invents maps through its synthetic release to a GP and substances."""

from __future__ import annotations

from pathlib import Path

from phrsync.synth import catalog as cat
from phrsync.synth.drugs import SOURCE, _substances, write_drug_codes
from phrsync.terminology.codestore import CodeStore, load_drug_codes
from phrsync.terminology.drugimport import import_drugs
from phrsync.terminology.tmtimport import import_tmt


def test_every_synth_drug_maps(tmp_path: Path) -> None:
    out = write_drug_codes(tmp_path / "codes")
    d = Path(out["dir"])
    with CodeStore(tmp_path / "c.sqlite") as s:
        res = import_tmt(s, d / out["tmt_zip"])
        assert res.issues.count == 0 and res.release == "TMTRF20240105" and "SYNTHETIC" in res.file
        r = import_drugs(s, d / out["catalogue"], "csv")
        assert r.issues.count == 0 and r.rows == {"": len(cat.DRUGS)}
    codes = load_drug_codes(tmp_path / "c.sqlite")
    for drug in cat.DRUGS.values():
        c = codes.lookup("10699", drug.code)
        assert c is not None and c.gp is not None and c.substances, drug.name
        assert c.source == SOURCE and "synthetic" in c.source
    amox = codes.lookup("10699", cat.DRUGS["amoxicillin"].code)
    assert amox is not None and [n for _, n in amox.substances] == ["amoxicillin"]
    # same bytes every time (no timestamps): the demo and the tests see one release
    again = write_drug_codes(tmp_path / "again")
    assert (d / out["tmt_zip"]).read_bytes() == (Path(again["dir"]) / again["tmt_zip"]).read_bytes()


def test_substances_from_names() -> None:
    assert _substances("Paracetamol syrup 120 mg/5 ml") == ["paracetamol"]
    assert _substances("Orphenadrine 35 mg + Paracetamol tab") == ["orphenadrine", "paracetamol"]
    assert _substances("Insulin NPH 100 IU/ml 10 ml") == ["insulin nph"]
