"""The synthetic generator's batches through the HDC loader and back (the ``synth --hdc`` path)."""

from __future__ import annotations

from collections import defaultdict

import pytest
from dbfixtures import *  # noqa: F403  (the shared DB fixtures; conftest puts tests/ on sys.path)

from phrsync.f43 import hdc, schema
from phrsync.synth import generator

pytestmark = pytest.mark.mariadb

Row = tuple[str, ...]


def _inputs(batches: list) -> dict[str, dict[Row, set[Row]]]:  # type: ignore[type-arg]
    """File → key → every full-width row given for that key (short layouts padded with "")."""
    out: dict[str, dict[Row, set[Row]]] = defaultdict(lambda: defaultdict(set))
    for b in batches:
        for name, rows in b.files.items():
            spec = schema.get(name)
            idx = [spec.field_names.index(k) for k in spec.key]
            for r in rows:
                full = tuple(r) + ("",) * (len(spec.field_names) - len(r))
                out[spec.name][tuple(full[i] for i in idx)].add(full)
    return out


def _read(url: str) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = defaultdict(list)
    for chunk in hdc.read_hdc(url, chunk_rows=1_000):
        names = chunk.spec.field_names
        for r in chunk.table.to_pylist():
            out[chunk.spec.name].append(tuple("" if r[n] is None else r[n] for n in names))
    return out


def test_clean_synthetic_province_round_trips(hdc_url: str) -> None:
    batches = list(generator.generate(generator.SynthOptions(encounters=60, seed=11, months=1)))
    result = hdc.load_batches(hdc_url, batches)
    assert result.bad_values == {} and result.skipped == {}
    given = _inputs(batches)
    got = _read(hdc_url)
    for name, by_key in given.items():
        spec = schema.FILES[name]
        idx = [spec.field_names.index(k) for k in spec.key]
        assert len(got[name]) == len(by_key), name  # one stored row per key
        for r in got[name]:
            assert r in by_key[tuple(r[i] for i in idx)], (name, r)  # exactly a row that was given
    assert sum(result.values()) == sum(len(rows) for b in batches for rows in b.files.values())


def test_dirty_values_survive_verbatim_in_a_varchar_hdc(hdc_url: str) -> None:
    batches = list(generator.generate(generator.SynthOptions(encounters=60, seed=12, months=1, dirty=0.2)))
    result = hdc.load_batches(hdc_url, batches, typed=False)
    given = _inputs(batches)
    got = _read(hdc_url)
    # Rows whose key is empty or wider than the key column cannot be stored; nothing else is lost.
    expect_skipped: dict[str, int] = {}
    for b in batches:
        for name, rows in b.files.items():
            spec = schema.get(name)
            keys = [(spec.field_names.index(k), spec.by_name[k].length or 14) for k in spec.key]
            n = sum(1 for r in rows if any(i >= len(r) or not r[i] or len(r[i]) > w for i, w in keys))
            if n:
                expect_skipped[spec.name] = expect_skipped.get(spec.name, 0) + n
    assert result.skipped == expect_skipped
    for name, by_key in given.items():
        spec = schema.FILES[name]
        idx = [spec.field_names.index(k) for k in spec.key]
        for r in got[name]:
            assert r in by_key[tuple(r[i] for i in idx)], (name, r)
