"""The compiled (mypyc) modules: an extension is used only when built from the source beside it, and
PHRSYNC_PURE_PYTHON=1 runs the plain-Python source (the test suite passes either way)."""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
import os
import subprocess
import sys
from pathlib import Path

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


def _loaded_from(env: dict[str, str]) -> dict[str, str]:
    code = ("import json, phrsync.phr.validate as v, phrsync.phr.mapping as m; "
            "print(json.dumps({'validate': v.__file__, 'mapping': m.__file__}))")
    root = str(Path(phrsync.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""), **env}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_pure_python_on_request() -> None:
    files = _loaded_from({_native.ENV: "1"})
    assert all(f.endswith(".py") for f in files.values()), files


def test_modules_load_as_planned() -> None:
    """Each module is imported from what the plan says (the extension when current, else its source)."""
    files = _loaded_from({_native.ENV: "0"})
    for name, (_state, path) in _native.plan(pure=False).items():
        assert Path(files[name.rsplit(".", 1)[-1]]).resolve() == path.resolve(), (name, files)
