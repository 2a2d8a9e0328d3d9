"""`detect` and `selftest` report the heap the board offers and refuse a board without PSRAM,
unless the deployment pins a ROMFS build for its chip (../shared/DESIGN.md, principle 6).

The boards are the MicroPython VM on a pseudo-terminal with the GC heap of each module: 4 MiB
as the SPIRAM build gives an ESP32-WROVER-E, 110 KiB as a plain ESP32-WROOM-32E leaves; the
blank board is esp32-mock-bootloader.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from provisioning import cli
from provisioning.deployment import Deployment
from provisioning.errors import StepError
from provisioning.steps import Run, step_detect, step_selftest
from testkit.bootloader import MockBootloader
from testkit.micropython import MicroPythonBoard

WROVER_HEAP = 4 * 1024 * 1024
WROOM_HEAP = 110 * 1024
SELFTEST = 'def on_board():\n    return "OK 1/1 checks", {"ok": True}\n'


def _board(factory: Callable[..., MicroPythonBoard], tmp: Path, heap: int, **kw: object):
    (tmp / "bench").mkdir(parents=True, exist_ok=True)
    (tmp / "bench" / "__init__.py").write_text("")
    (tmp / "bench" / "selftest.py").write_text(SELFTEST)
    return factory(preload={"bench": tmp / "bench"}, heapsize=heap, **kw)


def test_the_template_pins_the_spiram_build_and_no_romfs(deployment: Deployment) -> None:
    esp32 = deployment.firmware_image("esp32")
    assert (esp32.build, esp32.romfs, esp32.offset) == ("ESP32_GENERIC-SPIRAM", False, 0x1000)
    assert deployment.firmware_image("esp32s3").build == "ESP32_GENERIC_S3"
    # a folder made before `build` and `romfs` existed: no ROMFS build pinned
    text = deployment.inventory_path.read_text()
    deployment.inventory_path.write_text(
        text.replace("romfs = false\n", "").replace('build = "ESP32_GENERIC-SPIRAM"\n', "")
    )
    deployment.reload()
    assert (deployment.firmware_image("esp32").romfs, deployment.firmware_image("esp32").build) == (
        False,
        "",
    )


def test_selftest_reports_the_psram_heap(
    micropython_board_factory: Callable[..., MicroPythonBoard],
    deployment: Deployment,
    tmp_path: Path,
) -> None:
    board = _board(micropython_board_factory, tmp_path, WROVER_HEAP)
    run = Run(dep=deployment, port=board.port, bench=deployment.bench("mostar-01"))
    summary = step_selftest(run)
    m = re.fullmatch(r"OK 1/1 checks; heap (\d+) KiB, PSRAM", summary)
    assert m and 3900 <= int(m.group(1)) <= 4096, summary


def test_a_board_without_psram_is_refused_in_one_line_before_its_selftest(
    micropython_board_factory: Callable[..., MicroPythonBoard],
    deployment: Deployment,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    board = _board(micropython_board_factory, tmp_path, WROOM_HEAP)
    run = Run(dep=deployment, port=board.port, bench=deployment.bench("mostar-01"))
    with pytest.raises(StepError) as err:
        step_selftest(run)
    assert err.value.step == "selftest" and run.selftest_report is None
    assert re.fullmatch(r"\d{2,3} KiB of heap: no PSRAM", err.value.seen), err.value.seen
    assert "ESP32-WROVER-E" in err.value.hint and "romfs = true" in err.value.hint

    code = cli.main(["selftest", board.port, "--deploy", str(deployment.root)])
    err_text = capsys.readouterr().err
    assert code == 1 and len(err_text.strip().splitlines()) == 1
    assert "step selftest failed" in err_text and "no PSRAM" in err_text


def test_without_psram_a_pinned_romfs_build_is_accepted_only_with_its_partition(
    micropython_board_factory: Callable[..., MicroPythonBoard],
    pin_romfs_build: Callable[..., None],
    deployment: Deployment,
    tmp_path: Path,
) -> None:
    pin_romfs_build(deployment)
    bench = deployment.bench("mostar-01")
    plain = _board(micropython_board_factory, tmp_path / "a", WROOM_HEAP)
    with pytest.raises(StepError) as err:
        step_selftest(Run(dep=deployment, port=plain.port, bench=bench))
    assert err.value.seen == "no ROMFS partition: the board runs another MicroPython"

    rom = _board(
        micropython_board_factory,
        tmp_path / "b",
        WROOM_HEAP,
        romfs_size=16 * 1024,
        romfs_kind="esp32",
    )
    summary = step_selftest(Run(dep=deployment, port=rom.port, bench=bench))
    assert re.fullmatch(
        r"OK 1/1 checks; heap \d{2,3} KiB, no PSRAM; ROMFS build pinned \(16 KiB partition\)",
        summary,
    ), summary


def test_detect_reads_the_heap_when_micropython_answers(
    micropython_board_factory: Callable[..., MicroPythonBoard],
    deployment: Deployment,
    tmp_path: Path,
) -> None:
    bench = deployment.bench("mostar-01")
    small = _board(micropython_board_factory, tmp_path / "a", WROOM_HEAP)
    with pytest.raises(StepError) as err:
        step_detect(Run(dep=deployment, port=small.port, bench=bench))
    assert err.value.step == "detect" and "no PSRAM" in err.value.seen

    big = _board(micropython_board_factory, tmp_path / "b", WROVER_HEAP)
    summary = step_detect(Run(dep=deployment, port=big.port, bench=bench))
    # The VM has no ROM bootloader behind its port; an ESP32 would answer both.
    assert re.match(r"heap \d{4} KiB, PSRAM; chip not read: the ROM bootloader", summary)


def test_detect_on_a_blank_board_says_when_the_heap_is_read(
    mock_bootloader: Callable[..., MockBootloader], deployment: Deployment
) -> None:
    mock = mock_bootloader("esp32")
    run = Run(dep=deployment, port=mock.url, bench=deployment.bench("mostar-01"))
    summary = step_detect(run)
    assert summary.endswith("; heap: read once MicroPython runs (`selftest`)"), summary
    assert run.facts["chip"] == "ESP32"
