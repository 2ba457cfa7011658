"""Another version of the validator against this one: the same issues for every input, and the CPU time of each.

Used when the validator is changed for speed: its results must not change at all (paths, rules, messages,
severities, order). ``--old`` is the other version's source: the package's folder, e.g. the one on main,

    rm -rf /tmp/validate_old && mkdir /tmp/validate_old
    git archive main phrsync/phr/validate | tar -x -C /tmp/validate_old
    .venv/bin/python -m phrsync build --staging data/staging.duckdb --from 2025-11-01 --to 2025-11-07 \\
        --out /tmp/payloads.ndjson
    .venv/bin/python benchmarks/validate_compare.py --old /tmp/validate_old/phrsync/phr/validate \\
        --payloads /tmp/payloads.ndjson

or a single file, for a version from before the validator was a package (``git show
<commit>:phrsync/phr/validate.py > /tmp/validate_old.py``).

Compared: every payload of the NDJSON build file (optional), every fixture under tests/fixtures/payloads (valid
and invalid, byte-level cases through ``validate_json_bytes``) and ``--mutations`` mutated copies of those
(a random key deleted, or a random value replaced by a wrong type, an empty string, None or an odd date).
Then CPU time per UpdatePHRv1 payload of the build file, both versions in turn (``--rounds``). Exits 1 on
any difference. Only issue lists are printed; their messages carry masked citizen IDs only.
"""

from __future__ import annotations

import argparse
import base64
import copy
import gc
import importlib.util
import json
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from phrsync.phr import validate as new  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "payloads"
# replacement values of a mutation: wrong types, empty and blank strings, and dates near every date rule
ODD_VALUES: tuple[Any, ...] = (
    None, "", " ", 0, -1, 1.5, True, [], {}, "x", [None], [""], [{}], {"coding": []}, {"coding": [{}]},
    "1234567890123", "2568-13-45", "2025-11-01", "2025-11-01T08:00:00", "2025-02-30", "2025-W01-1",
    "1970-01-01", "2568-01-01", "2025-11-01T08:00:00Z", "2025-11-01T25:00:00+07:00", "1\u0e5900-01-01",
    "20251101", "1899-12-31", "2025-11-01T08:00:00.123+07:00", "2025-11-01T08:00:00+0700",
    "2025-02-29T08:00:00+07:00", "1970-01-01T00:00:00Z", "2100-01-01", "2999-01-01T00:00:00+07:00",
)


def load_module(path: Path) -> ModuleType:
    """The other version under its own name: a package folder (its modules import one another relatively,
    so they resolve inside it) or a single module file."""
    name = "phrsync_validate_other"
    if path.is_dir():
        spec = importlib.util.spec_from_file_location(name, path / "__init__.py",
                                                      submodule_search_locations=[str(path)])
    else:
        spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def issue_list(issues: list[Any]) -> list[tuple[str, str, str, str, str]]:
    return [(i.path, i.rule, i.message_th, i.message_en, i.severity) for i in issues]


def fixture_cases() -> Iterator[tuple[str, str, Any, bytes | None]]:
    """(name, endpoint, payload, raw body or None) of every fixture."""
    for f in sorted((FIXTURES / "valid").glob("*.json")):
        yield f.name, f.name.split(".")[0], json.loads(f.read_text(encoding="utf-8")), None
    for f in sorted((FIXTURES / "invalid").glob("*.json")):
        case = json.loads(f.read_text(encoding="utf-8"))
        if "body_b64" in case:
            yield f.name, case["endpoint"], None, base64.b64decode(case["body_b64"])
        else:
            yield f.name, case["endpoint"], case["payload"], None


def node_paths(node: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    if path:
        yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from node_paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from node_paths(v, (*path, i))


def mutate(payload: Any, rnd: random.Random) -> Any:
    """A copy with one to three random changes: a key or item deleted, or a value replaced."""
    out = copy.deepcopy(payload)
    for _ in range(rnd.choice((1, 1, 1, 2, 3))):
        paths = list(node_paths(out))
        if not paths:
            break
        path = rnd.choice(paths)
        parent = out
        for k in path[:-1]:
            parent = parent[k]
        if rnd.random() < 0.35:
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(rnd.choice(ODD_VALUES))
    return out


class Comparison:
    def __init__(self, old: ModuleType) -> None:
        self.old = old
        self.cases = 0
        self.differences = 0

    def check(self, label: str, endpoint: str, payload: Any, body: bytes | None = None) -> None:
        self.cases += 1
        if body is not None:
            a = issue_list(self.old.validate_json_bytes(endpoint, body))
            b = issue_list(new.validate_json_bytes(endpoint, body))
        else:
            a = issue_list(self.old.validate(endpoint, payload))
            b = issue_list(new.validate(endpoint, payload))
        if a != b:
            self.differences += 1
            if self.differences <= 10:
                print(f"DIFFERENT {label} ({endpoint})\n  other: {a}\n  this:  {b}")


def cpu_per_payload(fn: Any, payloads: list[Any]) -> float:
    gc.disable()
    try:
        t0 = time.process_time()
        for p in payloads:
            fn("UpdatePHRv1", p)
        return (time.process_time() - t0) / len(payloads)
    finally:
        gc.enable()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", type=Path, required=True,
                    help="the other validator version: its package folder, or its source file")
    ap.add_argument("--payloads", type=Path, help="NDJSON build file ({endpoint, payload} per line)")
    ap.add_argument("--mutations", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3, help="timing rounds (0: no timing)")
    args = ap.parse_args()
    cmp = Comparison(load_module(args.old))
    samples: list[tuple[str, Any]] = []
    built: list[Any] = []
    if args.payloads:
        with args.payloads.open("rb") as f:
            for n, line in enumerate(f):
                row = orjson.loads(line)
                cmp.check(f"{args.payloads.name}:{n + 1}", row["endpoint"], row["payload"])
                samples.append((row["endpoint"], row["payload"]))
                if row["endpoint"] == "UpdatePHRv1":
                    built.append(row["payload"])
        print(f"build file: {len(samples)} payloads, {cmp.differences} different")
    fixtures: list[tuple[str, Any]] = []
    for name, endpoint, payload, body in fixture_cases():
        cmp.check(name, endpoint, payload, body)
        if body is None:
            fixtures.append((endpoint, payload))
    print(f"fixtures: {len(fixtures)} payloads (+ byte-level cases), {cmp.differences} different so far")
    rnd = random.Random(args.seed)
    for m in range(args.mutations):  # every third mutation starts from a fixture, the others from anything
        endpoint, payload = rnd.choice(fixtures if m % 3 == 0 or not samples else samples)
        cmp.check(f"mutation {m} (seed {args.seed})", endpoint, mutate(payload, rnd))
    print(f"mutations: {args.mutations}; compared {cmp.cases} inputs, {cmp.differences} different")
    if built and args.rounds:
        for r in range(args.rounds):
            other = cpu_per_payload(cmp.old.validate, built)
            this = cpu_per_payload(new.validate, built)
            print(f"round {r + 1}: UpdatePHRv1 CPU per payload: other {other * 1e6:.1f} µs, this {this * 1e6:.1f} µs "
                  f"({other / this:.2f}x)")
    sys.exit(1 if cmp.differences else 0)


if __name__ == "__main__":
    main()
