"""Build hook: compiles the hot modules listed in ``phrsync._native.COMPILED`` with mypyc (about half the
CPU of ``phrsync build``). Everything else, and all metadata, is in pyproject.toml.

The ``.py`` files stay the source of truth: when mypyc or a C compiler is missing, or
``PHRSYNC_COMPILE=0``, phrsync installs as plain Python and works the same, only slower. Each build
records the hash of the sources it compiled (``phrsync/_native_sources.json``) so that an edited source
is never shadowed by its old extension (see phrsync/_native.py).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
# the same list as phrsync/_native.py (read from there so the two cannot drift; that module imports nothing
# of phrsync)
_ns: dict[str, object] = {"__file__": str(ROOT / "phrsync" / "_native.py"), "__name__": "phrsync_native_setup"}
exec(compile((ROOT / "phrsync" / "_native.py").read_text(encoding="utf-8"), "_native.py", "exec"), _ns)
COMPILED: tuple[str, ...] = _ns["COMPILED"]  # type: ignore[assignment]
STAMP: str = _ns["STAMP"]  # type: ignore[assignment]
GROUPS: dict[str, tuple[str, ...]] = _ns["groups"](COMPILED)  # type: ignore[operator]


def _module(rel: str) -> str:
    return rel.removesuffix(".py").replace("/", ".")


class BuildExtStamped(build_ext):
    """build_ext that also records the hash of each source (in the build tree for a wheel, in the source tree
    for an editable install) when every extension of its directory built: those modules call one another's
    compiled code and are loaded compiled only together (phrsync/_native.py). A directory with an extension
    that failed to compile (they are optional) is left out, so an older one still lying there is not
    mistaken for current."""

    def run(self) -> None:
        self._ok: set[str] = set()
        super().run()
        names = {e.name for e in self.extensions}
        built = {}
        for members in GROUPS.values():
            mods = {_module(rel) for rel in members}
            needed = mods | {m + "__mypyc" for m in mods}  # each module and its support library
            if needed <= names and needed <= self._ok:
                for rel in members:
                    built[_module(rel)] = hashlib.sha256((ROOT / rel).read_bytes()).hexdigest()
        base = ROOT if self.inplace else Path(self.build_lib)
        (base / "phrsync").mkdir(parents=True, exist_ok=True)
        (base / "phrsync" / STAMP).write_text(json.dumps(built, indent=1, sort_keys=True) + "\n", encoding="utf-8")

    def build_extension(self, ext: Any) -> None:
        super().build_extension(ext)  # raises when the compile fails (the caller then skips an optional one)
        self._ok.add(ext.name)


def ext_modules() -> list[Any]:
    if os.environ.get("PHRSYNC_COMPILE", "1") == "0":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("setup.py: mypyc not available; phrsync installs as plain Python")
        return []
    # separate=True: each module gets its own support library inside the package (a shared one would be a
    # top-level module, which an editable install does not put on sys.path; a shared one inside a package
    # gets its modules' __file__ wrong). Calls between the libraries cost no measurable time.
    exts = mypycify(list(COMPILED), opt_level="3", separate=True)
    for e in exts:
        e.optional = True  # a failed compile leaves the pure-Python module in use instead of failing the install
    return exts


setup(ext_modules=ext_modules(), cmdclass={"build_ext": BuildExtStamped})
