"""The firmware checks pass on the real firmware and catch CPython-only code."""

from __future__ import annotations

from pathlib import Path

import pytest

from klupa import firmware_checks as fc

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"


@pytest.fixture
def broken_firmware(tmp_path: Path) -> Path:
    root = tmp_path / "firmware"
    (root / "bench").mkdir(parents=True)
    (root / "bench" / "__init__.py").write_text("")
    (root / "bench" / "good.py").write_text(
        "import asyncio\nimport machine\nfrom micropython import const\n"
        "from bench import util\nfrom . import util as u2\n\n"
        "LIMIT = const(3)\n\n\ndef double(x: int) -> int:\n    return util.twice(x)\n"
    )
    (root / "bench" / "util.py").write_text("def twice(x: int) -> int:\n    return 2 * x\n")
    (root / "bench" / "matcher.py").write_text(
        "def kind(msg):\n    match msg:\n        case 1:\n            return 'one'\n"
        "        case _:\n            return 'other'\n"
    )
    (root / "bench" / "record.py").write_text(
        "import dataclasses\n\ntry:\n    import typing\nexcept ImportError:\n    typing = None\n"
    )
    (root / "bench" / "typed.py").write_text(
        "import time\n\n\ndef stamp() -> str:\n    return time.ticks_ms()\n"
    )
    return root


def test_real_firmware_compiles_with_mpy_cross() -> None:
    assert fc.check_compile(FIRMWARE) == []


def test_real_firmware_imports_only_what_the_esp32_port_ships() -> None:
    assert fc.check_imports(FIRMWARE) == []


def test_real_firmware_type_checks_against_the_esp32_stubs() -> None:
    problems = fc.check_types(FIRMWARE)
    assert problems == [], "\n".join(map(str, problems))


def test_shipped_modules_come_from_the_esp32_stubs() -> None:
    shipped = fc.esp32_modules()
    # Hardware and MicroPython modules, and the new names behind "u" alias stubs.
    for name in ("machine", "network", "esp32", "micropython", "asyncio", "re", "os", "json"):
        assert name in shipped
    # CPython-only modules are not in any ESP32 stub.
    for name in ("dataclasses", "typing", "enum", "pathlib", "threading", "ctypes"):
        assert name not in shipped


def test_match_statement_fails_mpy_cross_naming_the_file(broken_firmware: Path) -> None:
    problems = fc.check_compile(broken_firmware)
    assert [(p.check, Path(p.path).name) for p in problems] == [("compile", "matcher.py")]
    assert "SyntaxError" in problems[0].message


def test_dataclasses_import_fails_naming_file_line_and_module(broken_firmware: Path) -> None:
    problems = fc.check_imports(broken_firmware)
    assert len(problems) == 1, problems
    p = problems[0]
    assert Path(p.path).name == "record.py" and p.line == 1
    assert "'dataclasses'" in p.message
    # The guarded `import typing` is optional and the firmware's own imports are fine.


def test_type_error_against_the_stubs_is_reported(broken_firmware: Path) -> None:
    problems = fc.check_types(broken_firmware)
    typed = [p for p in problems if Path(p.path).name == "typed.py"]
    assert typed and typed[0].line == 5, problems
    # time.ticks_ms() has the ESP32 stubs' own type: proof that mypy used those stubs.
    assert "_TicksMs" in typed[0].message and '"str"' in typed[0].message
    assert not [p for p in problems if Path(p.path).name in ("good.py", "util.py")], problems


def test_cli_exits_one_and_prints_the_problems(
    broken_firmware: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fc.main([str(broken_firmware)]) == 1
    out = capsys.readouterr().out
    assert "matcher.py" in out and "dataclasses" in out and "typed.py" in out


def test_cli_exits_zero_on_clean_firmware(
    broken_firmware: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("matcher.py", "record.py", "typed.py"):
        (broken_firmware / "bench" / name).unlink()
    assert fc.main([str(broken_firmware)]) == 0


def test_cli_names_a_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fc.main([str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err
