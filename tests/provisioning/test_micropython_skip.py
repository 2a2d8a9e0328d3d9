"""`micropython`: skipped when the board already runs the pinned MicroPython version.

The step asks the board's REPL (`sys.implementation.version`, through mpremote's transport)
before touching the bootloader. A REPL board here is the WebAssembly VM on a pseudo-terminal;
a blank board is esp32-mock-bootloader, which has no REPL. On a real ESP32 both are the same
port (esptool resets it into the bootloader); here the two answer on different ports, so the
"goes on to flash" path on a REPL board shows as the step reaching esptool's `detect`.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from esptool.cmds import detect_chip

from provisioning.deployment import Deployment
from provisioning.errors import StepError
from provisioning.steps import Run, step_micropython
from testkit.bootloader import MockBootloader
from testkit.micropython import MicroPythonBoard


def _banner_version(board: MicroPythonBoard) -> str:
    """The version the VM printed in its banner at boot (not asked through the step's code)."""
    m = re.search(rb"MicroPython v(\d+\.\d+\.\d+)", board.output)
    assert m, board.output[:200]
    return m.group(1).decode()


def _pin_version(dep: Deployment, version: str, image: Path | None = None) -> None:
    text = dep.inventory_path.read_text()
    text = re.sub(r'(?m)^version = ".*"$', f'version = "{version}"', text, count=1)
    if image is not None:
        text = text.replace('image = ""\noffset = 0x1000', f'image = "{image}"\noffset = 0x1000')
    dep.inventory_path.write_text(text)
    dep.reload()


def test_board_running_the_pinned_version_is_skipped(
    micropython_board: MicroPythonBoard, deployment: Deployment
) -> None:
    running = _banner_version(micropython_board)
    _pin_version(deployment, running)
    (micropython_board.fs_dir / "keep.txt").write_text("a file on the board's flash")
    run = Run(dep=deployment, port=micropython_board.port, bench=deployment.bench("mostar-01"))

    summary = step_micropython(run)

    assert summary == f"MicroPython {running} already installed (use --force to reflash)"
    assert run.facts["micropython"] == running
    assert "chip" not in run.facts  # the bootloader was never asked
    assert (micropython_board.fs_dir / "keep.txt").read_text() == "a file on the board's flash"


@pytest.mark.parametrize("case", ["older version on the board", "--force"])
def test_board_not_on_the_pinned_version_goes_on_to_flash(
    micropython_board: MicroPythonBoard, deployment: Deployment, case: str
) -> None:
    running = _banner_version(micropython_board)
    major, minor, patch = (int(x) for x in running.split("."))
    if case == "--force":
        _pin_version(deployment, running)
    else:
        _pin_version(deployment, f"{major}.{minor + 1}.0")  # the deployment moved on
    run = Run(
        dep=deployment,
        port=micropython_board.port,
        bench=deployment.bench("mostar-01"),
        force=case == "--force",
        bauds=(115200,),
    )

    # The VM on this port has no ROM bootloader: reaching esptool is what shows the step
    # did not skip (on an ESP32, esptool would now reset the same port into its bootloader).
    with pytest.raises(StepError) as err:
        step_micropython(run)

    assert err.value.step == "detect"
    assert err.value.expected == "an ESP32 in its ROM bootloader"


def test_blank_board_without_a_repl_is_flashed(
    mock_bootloader: Callable[..., MockBootloader], deployment: Deployment, tmp_path: Path
) -> None:
    image = bytes([0xE9, 0x03, 0x02, 0x20]) + os.urandom(32 * 1024 - 4)
    path = tmp_path / "mp.bin"
    path.write_bytes(image)
    _pin_version(deployment, "1.27.0", image=path)
    mock = mock_bootloader("esp32")
    # probe_repl is on (the default): the probe finds no REPL on a blank board and flashes.
    run = Run(dep=deployment, port=mock.url, bench=deployment.bench("mostar-01"))
    assert run.probe_repl

    summary = step_micropython(run)

    assert "MicroPython 1.27.0 written" in summary and summary.endswith("verified")
    assert run.facts["micropython"] == "1.27.0" and run.facts["chip"] == "ESP32"
    esp = detect_chip(mock.url, 115200, "no-reset", connect_attempts=2)
    try:
        assert esp.flash_md5sum(0x1000, len(image)) == hashlib.md5(image).hexdigest()
    finally:
        esp._port.close()
