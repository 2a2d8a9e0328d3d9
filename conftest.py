"""Root conftest: every test folder gets the real-service fixtures from one place."""

from pathlib import Path

pytest_plugins = [
    "testkit.services",
    "testkit.micropython",
    "testkit.bootloader",
]


def pytest_report_header() -> str:
    """Which firmware the tests run: the installed one (klupa.shipped), which is this checkout's
    only when the venv's editable install is of this checkout (worktrees may share a venv)."""
    from klupa import shipped

    here = Path(__file__).resolve().parent / "firmware"
    try:
        found = shipped.firmware_dir().resolve()
    except shipped.MissingPart as exc:
        return f"firmware: {exc}"
    if found != here:
        return f"firmware: {found}, NOT this checkout's {here} (the venv is installed from there)"
    return f"firmware: {found}"
