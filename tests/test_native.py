"""The compiled (mypyc) modules: an extension is used only when built from the source beside it, and
PHRSYNC_PURE_PYTHON=1 runs the plain-Python source (the test suite passes either way)."""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import phrsync
from phrsync import _native


def _fake_tree(tmp_path: Path) -> tuple[Path, Path, Path]:
    root = tmp_path / "phrsync"
    (root / "phr").mkdir(parents=True)
    py = root / "phr" / "validate.py"
    py.write_text("X = 1\n", encoding="utf-8")
    ext = py.with_name("validate" + importlib.machinery.EXTENSION_SUFFIXES[0])
    return root, py, ext


def test_plan_uses_an_extension_only_when_built_from_this_source(tmp_path: Path) -> None:
    root, py, ext = _fake_tree(tmp_path)
    compiled = ("phrsync/phr/validate.py",)
    assert _native.plan(root, compiled, pure=False)["phrsync.phr.validate"] == ("absent", py)
    ext.write_bytes(b"")
    assert _native.plan(root, compiled, pure=False)["phrsync.phr.validate"][0] == "stale"  # no hash recorded
    digest = hashlib.sha256(py.read_bytes()).hexdigest()
    (root / _native.STAMP).write_text(json.dumps({"phrsync.phr.validate": digest}), encoding="utf-8")
    assert _native.plan(root, compiled, pure=False)["phrsync.phr.validate"] == ("compiled", ext)
    assert _native.plan(root, compiled, pure=True)["phrsync.phr.validate"] == ("pure", py)
    py.write_text("X = 2\n", encoding="utf-8")  # edited after the build: the old extension must not be used
    assert _native.plan(root, compiled, pure=False)["phrsync.phr.validate"] == ("stale", py)


def test_a_directory_is_loaded_compiled_only_all_together(tmp_path: Path) -> None:
    """Compiled modules call one another's compiled code (beside another's source the interpreter crashes):
    one edited module sends every compiled module of its directory to its source; another directory's stays
    compiled."""
    root = tmp_path / "phrsync"
    (root / "phr" / "validate").mkdir(parents=True)
    compiled = ("phrsync/phr/validate/primitives.py", "phrsync/phr/validate/endpoints.py", "phrsync/phr/mapping.py")
    hashes = {}
    for rel in compiled:
        py = tmp_path / rel
        py.write_text(f"X = {rel!r}\n", encoding="utf-8")
        py.with_name(py.stem + importlib.machinery.EXTENSION_SUFFIXES[0]).write_bytes(b"")
        hashes[_native.module_name(rel)] = hashlib.sha256(py.read_bytes()).hexdigest()
    (root / _native.STAMP).write_text(json.dumps(hashes), encoding="utf-8")
    assert {s for s, _ in _native.plan(root, compiled, pure=False).values()} == {"compiled"}
    (tmp_path / compiled[0]).write_text("X = 2\n", encoding="utf-8")
    plan = _native.plan(root, compiled, pure=False)
    assert plan["phrsync.phr.validate.primitives"] == ("stale", tmp_path / compiled[0])
    assert plan["phrsync.phr.validate.endpoints"] == ("stale", tmp_path / compiled[1])  # unchanged, but its group
    assert plan["phrsync.phr.mapping"][0] == "compiled"


def test_an_edited_module_runs_from_source_with_the_rest_of_its_directory(tmp_path: Path) -> None:
    """A copy of the installed package (with its extensions, if compiled) where one validator source was
    edited: the whole validator runs from source and works; compiled, its other modules beside the edited
    source would crash the interpreter."""
    shutil.copytree(Path(phrsync.__file__).resolve().parent, tmp_path / "phrsync",
                    ignore=shutil.ignore_patterns("__pycache__"))
    with (tmp_path / "phrsync" / "phr" / "validate" / "primitives.py").open("a", encoding="utf-8") as f:
        f.write("\n# edited after the build\n")
    code = ("import json, phrsync.phr.validate as v, phrsync.phr.validate.endpoints as e; "
            "print(json.dumps([e.__file__, [i.rule for i in v.validate('MaskEncounter', {})]]))")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), _native.ENV: "0"}
    out = subprocess.run([sys.executable, "-W", "ignore::RuntimeWarning", "-c", code], env=env,
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    endpoints_file, rules = json.loads(out.stdout)
    assert endpoints_file == str(tmp_path / "phrsync" / "phr" / "validate" / "endpoints.py")
    assert rules == ["required", "required"]


def test_groups_and_the_makefile_list() -> None:
    """The validator's modules fall back together, the mapping on its own; the Makefile re-installs when any
    compiled source changes (its COMPILED lists the same files)."""
    groups = _native.groups()
    assert groups["phrsync.phr.validate"] == tuple(
        f"phrsync/phr/validate/{m}.py" for m in ("primitives", "resources", "endpoints"))
    assert groups["phrsync.phr"] == ("phrsync/phr/mapping.py",)
    assert sorted(rel for members in groups.values() for rel in members) == sorted(_native.COMPILED)
    root = Path(phrsync.__file__).resolve().parents[1]
    makefile = (root / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ")
    line = next(ln for ln in makefile.splitlines() if ln.startswith("COMPILED :="))
    assert set(line.removeprefix("COMPILED :=").split()) == {"phrsync/_native.py", *_native.COMPILED}
    assert all((root / rel).is_file() for rel in _native.COMPILED)


def _loaded_from(env: dict[str, str]) -> dict[str, str]:
    """The file each compiled module is imported from, in a fresh interpreter with ``env``."""
    code = ("import importlib, json, sys; "
            "print(json.dumps({n: importlib.import_module(n).__file__ for n in sys.argv[1:]}))")
    root = str(Path(phrsync.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""), **env}
    names = [_native.module_name(rel) for rel in _native.COMPILED]
    out = subprocess.run([sys.executable, "-c", code, *names], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_pure_python_on_request() -> None:
    files = _loaded_from({_native.ENV: "1"})
    assert len(files) == len(_native.COMPILED)
    assert all(f.endswith(".py") for f in files.values()), files


def test_modules_load_as_planned() -> None:
    """Each module is imported from what the plan says (the extension when current, else its source)."""
    files = _loaded_from({_native.ENV: "0"})
    for name, (_state, path) in _native.plan(pure=False).items():
        assert Path(files[name]).resolve() == path.resolve(), (name, files)


def test_require_compiled_names_what_is_not(capsys: pytest.CaptureFixture[str]) -> None:
    py = Path("phrsync/phr/mapping.py")
    assert _native.require_compiled({"phrsync.phr.mapping": ("compiled", py)}) == 0
    status = {"phrsync.phr.mapping": ("compiled", py), "phrsync.phr.validate.primitives": ("absent", py)}
    assert _native.require_compiled(status) == 1
    err = capsys.readouterr().err
    assert "phrsync.phr.validate.primitives (absent)" in err and "mapping" not in err


def test_make_test_runs_the_suite_compiled_then_as_plain_python() -> None:
    root = Path(phrsync.__file__).resolve().parents[1]
    text = (root / "Makefile").read_text(encoding="utf-8")
    recipe = text.split("\ntest:", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    steps = [line.strip() for line in recipe]
    assert steps[0] == "$(BIN)/ruff check phrsync tests benchmarks"
    assert "_native.require_compiled()" in steps[1] and steps[1].startswith("$(if $(CI),")
    assert steps[2:] == ["$(BIN)/pytest -q", f"{_native.ENV}=1 $(BIN)/pytest -q"]
