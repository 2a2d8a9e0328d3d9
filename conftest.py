"""Root conftest: every test folder gets the real-service fixtures from one place, and the tests
run this checkout's firmware."""

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent

pytest_plugins = [
    "testkit.services",
    "testkit.micropython",
    "testkit.bootloader",
]


def _run_this_checkouts_firmware() -> None:
    """klupa finds the firmware it is installed with (klupa.shipped). Worktrees may share one
    venv, whose editable install maps the package klupa_firmware to another checkout's
    firmware/ (or to none yet): then the tests, and the processes they start (through
    PYTHONPATH), find this checkout's first, through a folder holding only that package."""
    from klupa import shipped

    here = ROOT / "firmware"
    try:
        if shipped.firmware_dir().resolve() == here:
            return
    except shipped.MissingPart:
        pass
    folder = tempfile.mkdtemp(prefix="klupa-firmware-")
    atexit.register(shutil.rmtree, folder, True)
    (Path(folder) / shipped.FIRMWARE_PACKAGE).symlink_to(here, target_is_directory=True)
    sys.path.insert(0, folder)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (folder, os.environ.get("PYTHONPATH", "")) if p
    )


_run_this_checkouts_firmware()


def pytest_report_header() -> str:
    from klupa import shipped

    found = shipped.firmware_dir()
    through = f" (through {found})" if found.resolve() != found else ""
    return f"firmware: {found.resolve()}{through}"
