"""Run an app that OTA installed in a virtual bench's flash (``<root>/app``) on CPython.

The bundle holds ``.mpy`` files (MicroPython bytecode), which CPython cannot execute. A
``.mpy`` is run here as the source file that compiles to exactly those bytes: for
``bench/app.mpy`` each source folder's ``bench/app.py`` is compiled with ``mpy-cross`` the way
``klupa bundle`` does and compared byte for byte; no match is an ImportError, as a file the
board cannot load would be. ``.py`` files in the app folder run as they are. Only one app at
a time per process: activating one drops the app modules imported so far.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from boards.mpy import mpy_cross_command

PACKAGES = ("bench", "drivers")
_compiled: dict[tuple[str, float], bytes] = {}


def mpy_of(source: Path, rel: str) -> bytes:
    """``source`` compiled as ``klupa bundle`` compiles ``rel`` (cached by path and mtime)."""
    key = (str(source), source.stat().st_mtime)
    if key not in _compiled:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out.mpy"
            subprocess.run(
                mpy_cross_command(source, out, rel),
                check=True,
                capture_output=True,
            )
            _compiled[key] = out.read_bytes()
    return _compiled[key]


class _Loader(importlib.abc.Loader):
    def __init__(self, filename: str, source: str | None) -> None:
        self.filename = filename
        self.source = source

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        if self.source is None:  # a package folder without an __init__
            return
        module.__file__ = self.filename
        exec(compile(self.source, self.filename, "exec"), module.__dict__)  # noqa: S102


class FlashApp(importlib.abc.MetaPathFinder):
    def __init__(self, app_dir: Path, sources: list[Path]) -> None:
        self.app_dir = Path(app_dir)
        self.sources = [Path(s) for s in sources]

    def _source_of(self, mpy: Path, rel: str) -> str:
        data = mpy.read_bytes()
        for folder in self.sources:
            cand = folder / rel
            if cand.is_file() and mpy_of(cand, rel) == data:
                return cand.read_text()
        raise ImportError(f"{mpy}: no known source compiles to this .mpy")

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".")[0] not in PACKAGES:
            return None
        rel = fullname.replace(".", "/")
        base = self.app_dir / rel
        if base.is_dir():
            init = None
            for ext in (".py", ".mpy"):
                if (base / ("__init__" + ext)).is_file():
                    init = base / ("__init__" + ext)
            src = ""
            if init is not None:
                src = (
                    init.read_text()
                    if init.suffix == ".py"
                    else self._source_of(init, rel + "/__init__.py")
                )
            spec = importlib.util.spec_from_loader(
                fullname, _Loader(str(base / "__init__.py"), src), is_package=True
            )
            assert spec is not None
            spec.submodule_search_locations = [str(base)]
            return spec
        py, mpy = base.with_suffix(".py"), base.with_suffix(".mpy")
        if py.is_file():
            return importlib.util.spec_from_loader(fullname, _Loader(str(py), py.read_text()))
        if mpy.is_file():
            src = self._source_of(mpy, rel + ".py")
            return importlib.util.spec_from_loader(fullname, _Loader(str(mpy), src))
        raise ModuleNotFoundError(f"No module named {fullname!r} in {self.app_dir}")


def forget_app_modules() -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in PACKAGES:
            del sys.modules[name]


_active: FlashApp | None = None


def activate(app_dir: Path | None, sources: list[Path]) -> bool:
    """Make ``import bench...`` read ``app_dir`` (None: the repository's firmware/).
    Returns True when the app changed (its modules were dropped)."""
    global _active
    current = None if _active is None else _active.app_dir
    if current == (None if app_dir is None else Path(app_dir)):
        return False
    if _active is not None and _active in sys.meta_path:
        sys.meta_path.remove(_active)
    _active = None
    if app_dir is not None:
        _active = FlashApp(Path(app_dir), sources)
        sys.meta_path.insert(0, _active)
    forget_app_modules()
    return True
