"""The firmware and the board profiles are found where klupa is installed, and a command that
needs a part it cannot find says so in one line and exits non-zero, having started nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from klupa import shipped
from klupa.cli import main
from provisioning import signing
from provisioning.create import create_deployment


def test_the_installed_firmware_and_profiles_are_found() -> None:
    firmware = shipped.firmware_dir()
    assert (firmware / "main.py").is_file() and (firmware / "bench" / "app.py").is_file()
    assert {"bench-v1", "bench-s3-v2"} <= set(shipped.board_profiles())
    assert (shipped.boards_dir() / "bench-v1.json").is_file()


@pytest.fixture
def no_firmware(monkeypatch: pytest.MonkeyPatch) -> None:
    """An installation whose firmware package is gone."""
    monkeypatch.setattr(shipped, "FIRMWARE_PACKAGE", "klupa_firmware_gone")


def one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code  # type: ignore[assignment]
    err = capsys.readouterr().err
    assert code == 1, err
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_sim_without_the_firmware_runs_no_bench_and_says_so(
    no_firmware: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flash = tmp_path / "flash"
    argv = ["sim", "--municipalities", "mostar", "--flash", str(flash), "--broker", "127.0.0.1:1"]
    line = one_line_error(argv, capsys)
    assert line.startswith("klupa sim: the bench firmware is not installed"), line
    assert not flash.exists()


def test_bundle_without_the_firmware_says_so(
    no_firmware: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "ota.pem"
    key.write_text(signing.to_pem(signing.generate()))
    argv = ["bundle", "--key-file", str(key), "--out", str(tmp_path / "out")]
    line = one_line_error(argv, capsys)
    assert line.startswith("klupa bundle: the bench firmware is not installed"), line
    assert not (tmp_path / "out").exists()


def test_provision_app_without_the_firmware_says_so(
    no_firmware: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dep = create_deployment(tmp_path / "deploy")
    argv = ["provision", "app", "/dev/null", "--bench", "mostar-01", "--deploy", str(dep.root)]
    line = one_line_error(argv, capsys)
    assert line.startswith("klupa provision: the bench firmware is not installed"), line


def test_demo_without_the_firmware_starts_nothing_and_says_so(
    no_firmware: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "demo"
    line = one_line_error(["demo", "--dir", str(work), "--seconds", "1"], capsys)
    assert line.startswith("klupa demo: the bench firmware is not installed"), line
    assert not work.exists()
