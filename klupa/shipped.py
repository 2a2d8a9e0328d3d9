"""Where the parts that klupa ships beside its code are: the bench firmware and the board
profiles, found through the import system wherever klupa is installed (a wheel in any venv, or
the editable install of a checkout), never by walking up from a module's file.

- The firmware is the package ``klupa_firmware``: ``setup.py`` maps it to the checkout's
  ``firmware/`` folder. It is not a package of the host (no ``__init__.py``; its own imports are
  ``import bench...``), so its folder comes from the import system's spec of it:
  ``importlib.resources.files()`` cannot read such a package in an editable install on
  Python 3.11.
- The board profiles are the JSON files of the package ``boards`` (package data).

A part that cannot be found raises ``MissingPart``, whose message is the one line a command
prints (``klupa.cli`` does) before it exits non-zero.
"""

from __future__ import annotations

import importlib.util
from importlib import resources
from pathlib import Path

FIRMWARE_PACKAGE = "klupa_firmware"
BOARDS_PACKAGE = "boards"
REINSTALL = "reinstall klupa (`pip install klupa`, or `pip install -e .` in a checkout)"


class MissingPart(LookupError):
    """A part klupa ships is not where the installation put it."""


def firmware_dir() -> Path:
    """The bench firmware's folder (boot.py, main.py, bench/, drivers/)."""
    try:
        spec = importlib.util.find_spec(FIRMWARE_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    for entry in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(entry)
        if (folder / "main.py").is_file() and (folder / "bench").is_dir():
            return folder
    raise MissingPart(
        f"the bench firmware is not installed (no package {FIRMWARE_PACKAGE}); {REINSTALL}"
    )


def boards_dir() -> Path:
    """The folder of the board profiles (``bench-v1.json``, ...)."""
    try:
        folder = resources.files(BOARDS_PACKAGE)
    except ModuleNotFoundError:
        folder = None
    if isinstance(folder, Path) and any(folder.glob("*.json")):
        return folder
    raise MissingPart(
        f"the board profiles are not installed (package {BOARDS_PACKAGE}); {REINSTALL}"
    )


def board_profiles() -> list[str]:
    """The names of the installed board profiles, e.g. ``["bench-s3-v2", "bench-v1"]``."""
    return sorted(p.stem for p in boards_dir().glob("*.json"))
