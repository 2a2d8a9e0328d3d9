"""The `selftest` step against the REPL board running the real firmware bundle on the
MicroPython fakes of the bench's hardware (boards/virtual/mp/ preloaded as /lib).

The app step uploads the bundle and /board.json; the fakes' `machine` builds the bench from
that profile, so `bench.selftest.on_board()` reads every INA226, INA3221 and the BME280 through
the firmware's drivers, switches the ports and draws on the SSD1306, all in the VM.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from provisioning.deployment import Deployment
from provisioning.device import Board
from provisioning.errors import StepError
from provisioning.steps import Run, step_app, step_selftest
from testkit.micropython import MicroPythonBoard

REPO = Path(__file__).resolve().parents[2]
FAKES = REPO / "boards" / "virtual" / "mp"


def _on_board(port: str, code: str) -> None:
    """Run ``code`` in the board's VM (the same one the next step talks to: no reset)."""
    with Board(port, timeout=10) as board:
        board.exec(code)


def test_selftest_step_passes_on_the_fakes_then_names_a_missing_battery_monitor(
    micropython_board_factory: Callable[..., MicroPythonBoard], deployment: Deployment
) -> None:
    mp = micropython_board_factory(preload={"lib": FAKES}, heapsize=4 << 20)  # WROVER-E
    bench = deployment.bench("mostar-01")
    assert bench.board == "bench-v1"
    step_app(Run(dep=deployment, port=mp.port, bench=bench))
    assert (mp.fs_dir / "board.json").is_file() and (mp.fs_dir / "bench" / "selftest.mpy").is_file()

    # A resting battery and some sun; the ports' outputs and the climate keep their defaults.
    _on_board(
        mp.port,
        "import machine\nmachine.board.set_solar(18.4, 1.1)\nmachine.board.set_battery(13.2, -0.4)",
    )
    run = Run(dep=deployment, port=mp.port, bench=bench)
    summary = step_selftest(run)
    assert re.fullmatch(r"OK 10/10 checks; heap \d{4} KiB, PSRAM", summary), summary
    report = run.selftest_report
    assert report is not None and report["report"]["ok"] is True
    sensors = {s["name"]: s for s in report["report"]["sensors"]}
    assert sensors["battery"]["values"]["v"] == pytest.approx(13.2, abs=0.01)
    assert sensors["solar"]["values"]["a"] == pytest.approx(1.1, abs=0.01)
    assert sensors["env"]["values"]["t"] == pytest.approx(20.0, abs=0.02)
    ports = report["report"]["ports"]
    assert [p["n"] for p in ports] == [1, 2, 3, 4, 5]
    assert all(p["on_v"] == pytest.approx(5.1, abs=0.01) and p["off_v"] == 0 for p in ports)
    assert report["report"]["display"] == {"ok": True}

    # The battery's INA226 (0x41 on bench-v1) stops answering: the step fails naming it.
    _on_board(mp.port, "import machine\nmachine.board.bus.detach(0x41)")
    with pytest.raises(StepError) as err:
        step_selftest(Run(dep=deployment, port=mp.port, bench=bench))
    assert err.value.step == "selftest"
    assert err.value.seen == "failed: battery"


def test_the_real_firmware_runs_its_selftest_from_romfs(
    micropython_board_factory: Callable[..., MicroPythonBoard],
    pin_romfs_build: Callable[..., None],
    deployment: Deployment,
) -> None:
    """The real bundle's packages in a ROMFS partition (the stand-in of
    testkit/mp/romvfs.py, as the ESP32 offers it: the npm port has no ROMFS) import
    from /rom and pass."""
    pin_romfs_build(deployment)  # the WROOM path: no PSRAM, the app's bytecode in ROMFS
    mp = micropython_board_factory(
        preload={"lib": FAKES}, romfs_size=256 * 1024, romfs_kind="esp32"
    )
    bench = deployment.bench("mostar-01")
    summary = step_app(Run(dep=deployment, port=mp.port, bench=bench))
    assert "package file(s) in ROMFS" in summary and "written and verified" in summary, summary
    assert not (mp.fs_dir / "bench").exists() and not (mp.fs_dir / "drivers").exists()
    assert (mp.fs_dir / "main.py").is_file() and (mp.fs_dir / "boot.py").is_file()
    _on_board(
        mp.port,
        "import machine\nmachine.board.set_solar(18.4, 1.1)\nmachine.board.set_battery(13.2, -0.4)",
    )
    summary = step_selftest(Run(dep=deployment, port=mp.port, bench=bench))
    # (the VM's stand-in holds the partition in RAM, so its heap says nothing of a WROOM's)
    assert summary.startswith("OK 10/10 checks; heap"), summary
