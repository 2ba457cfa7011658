"""Which hot modules run compiled (mypyc) and which as plain Python, and why.

``setup.py`` compiles the modules in :data:`COMPILED` with mypyc when it can (about half the CPU of a
build); each ``.py`` stays beside its extension as the source of truth and the fallback. An extension is
used only when it was compiled from the ``.py`` that is there now: the build records a hash of each source
in :data:`STAMP`, and a module whose source changed since (an edit in an editable install, a ``git
checkout``) is imported from its ``.py`` with a warning instead of running stale compiled code. Rebuild
with ``make`` (or ``pip install -e .``). ``PHRSYNC_PURE_PYTHON=1`` imports every one of them from source.

The compiled modules of one directory are loaded compiled only all together (:func:`groups`): a compiled
module calls another's compiled code directly, through that module's mypyc library rather than the module
that was imported, so beside the other's source it would run old code on objects it does not know (the
interpreter crashes). When one of them is stale, every module of its directory is imported from source.

Only :mod:`importlib` is used here: this runs when ``phrsync`` is imported.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

# modules compiled by setup.py, as paths relative to the project root (setup.py and the Makefile's COMPILED
# read this list; a test checks the Makefile)
COMPILED = (
    "phrsync/phr/validate/primitives.py",
    "phrsync/phr/validate/resources.py",
    "phrsync/phr/validate/endpoints.py",
    "phrsync/phr/mapping.py",
)
STAMP = "_native_sources.json"  # in the phrsync package directory, written by setup.py's build_ext
ENV = "PHRSYNC_PURE_PYTHON"
_ROOT = Path(__file__).resolve().parent  # the phrsync package directory


def source_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def module_name(rel: str) -> str:
    return rel.removesuffix(".py").replace("/", ".")


def groups(compiled: Sequence[str] = COMPILED) -> dict[str, tuple[str, ...]]:
    """The compiled modules by package (directory): the modules that are loaded compiled only together."""
    out: dict[str, tuple[str, ...]] = {}
    for rel in compiled:
        package = module_name(rel).rpartition(".")[0]
        out[package] = (*out.get(package, ()), rel)
    return out


def _extension(py: Path) -> Path | None:
    """The compiled extension beside ``py`` that Python's import would pick over it, if any."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        ext = py.with_name(py.stem + suffix)
        if ext.exists():
            return ext
    return None


def plan(root: Path = _ROOT, compiled: Sequence[str] = COMPILED,
         pure: bool | None = None) -> dict[str, tuple[str, Path]]:
    """For each compiled module: ``("compiled" | "pure" | "stale" | "absent", file to import)``.

    ``stale``: an extension exists but was not built from the source now beside it (or its hash is not
    recorded), or another compiled module of its directory is not loaded compiled, so the source is used."""
    if pure is None:
        pure = os.environ.get(ENV, "") not in ("", "0")
    try:
        hashes = json.loads((root / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        hashes = {}
    out: dict[str, tuple[str, Path]] = {}
    for rel in compiled:
        name = module_name(rel)
        py = root.parent / rel
        ext = _extension(py)
        if ext is None:
            out[name] = ("absent", py)
        elif pure:
            out[name] = ("pure", py)
        elif not py.exists() or hashes.get(name) == source_hash(py):
            out[name] = ("compiled", ext)
        else:
            out[name] = ("stale", py)
    for members in groups(compiled).values():
        names = [module_name(rel) for rel in members]
        if any(out[n][0] != "compiled" for n in names):
            for n in names:
                if out[n][0] == "compiled":
                    out[n] = ("stale", root.parent / members[names.index(n)])
    return out


class _SourceFinder:
    """Imports the listed modules from their ``.py`` even when a compiled extension sits beside it."""

    def __init__(self, sources: dict[str, Path]) -> None:
        self.sources = sources

    def find_spec(self, fullname: str, path: object = None, target: ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        py = self.sources.get(fullname)
        if py is None:
            return None
        return importlib.util.spec_from_file_location(fullname, py)


STATUS: dict[str, tuple[str, Path]] = {}


def install() -> None:
    """Called once from ``phrsync/__init__``, before any compiled module can be imported."""
    STATUS.update(plan())
    sources = {name: path for name, (state, path) in STATUS.items() if state in ("pure", "stale")}
    stale = [name for name, (state, _) in STATUS.items() if state == "stale"]
    if stale:
        warnings.warn(f"phrsync: {', '.join(stale)} — ส่วนที่คอมไพล์ไว้เก่ากว่าต้นฉบับ (หรือคอมไพล์ร่วมกับโมดูลที่เก่า) "
                      "จึงใช้ต้นฉบับแทน (ช้ากว่า) คอมไพล์ใหม่: make หรือ pip install -e . / compiled code older than "
                      "its source, or compiled with a module that is; the sources are used (slower). Rebuild: make, "
                      "or pip install -e .", RuntimeWarning, stacklevel=3)
    if sources:
        sys.meta_path.insert(0, _SourceFinder(sources))


def describe() -> str:
    """One line for benchmark output: how each compiled module is loaded."""
    return ", ".join(f"{name.rsplit('.', 1)[-1]}: {state}" for name, (state, _) in STATUS.items())


def require_compiled(status: dict[str, tuple[str, Path]] | None = None) -> int:
    """``make test`` in CI, before the compiled run of the suite: 0 when every module runs compiled, else 1
    with the reason (an install that fell back to plain Python would otherwise test the same code twice)."""
    status = STATUS if status is None else status
    off = {name: state for name, (state, _) in status.items() if state != "compiled"}
    if not off:
        print(f"phrsync: ทุกโมดูลทำงานแบบคอมไพล์ / every module runs compiled ({len(status)})")
        return 0
    what = ", ".join(f"{name} ({state})" for name, state in off.items())
    print(f"phrsync: โมดูลเหล่านี้ไม่ได้ทำงานแบบคอมไพล์ / not running compiled: {what}. ติดตั้งใหม่พร้อม mypyc และ"
          f"คอมไพเลอร์ C / re-install with mypyc and a C compiler: .venv/bin/pip install -e .", file=sys.stderr)
    return 1
