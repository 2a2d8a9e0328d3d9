"""`app` and `selftest` against the MicroPython REPL on a pseudo-terminal (the VM board)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from provisioning.deployment import Deployment
from provisioning.errors import StepError
from provisioning.steps import Run, step_app, step_selftest
from provisioning.steps_app import boot_start
from provisioning.steps_board import failing_checks

SELFTEST_SRC = """\
def on_board():
    report = {"sensors": [{"name": "solar", "ok": True}, {"name": "bme280", "ok": %s}],
              "ports": [{"n": 1, "ok": True}], "ok": %s}
    return ("OK 3/3 checks" if %s else "FAIL 1/3: bme280"), report
"""


def _firmware(root: Path, bme_ok: bool = True) -> Path:
    (root / "bench").mkdir(parents=True, exist_ok=True)
    (root / "boot.py").write_text("# boot\n")
    (root / "main.py").write_text("# main: the app would start here\n")
    (root / "bench" / "__init__.py").write_text('VERSION = "9.9.1"\n')
    (root / "bench" / "core.py").write_text("def f(x):\n    return x * 2\n" + "# pad\n" * 400)
    (root / "bench" / "selftest.py").write_text(SELFTEST_SRC % (bme_ok, bme_ok, bme_ok))
    return root


def _run(dep: Deployment, board, firmware: Path) -> Run:
    return Run(dep=dep, port=board.port, bench=dep.bench("mostar-01"), firmware_dir=firmware)


def test_app_lands_with_matching_hashes_and_reruns_copy_only_changes(
    micropython_board, deployment: Deployment, tmp_path: Path
) -> None:
    fw = _firmware(tmp_path / "fw")
    run = _run(deployment, micropython_board, fw)

    first = step_app(run)

    manifest = json.loads((micropython_board.fs_dir / "manifest.json").read_text())
    assert manifest["version"] == "9.9.1"
    for f in manifest["files"]:
        data = (micropython_board.fs_dir / f["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"]
    paths = {f["path"] for f in manifest["files"]}
    assert {"boot.py", "main.py", "bench/core.mpy", "bench/__init__.mpy"} <= paths
    config = json.loads((micropython_board.fs_dir / "config.json").read_text())
    assert config["bench"] == "mostar-01" and config["mqtt"]["user"] == "mostar-01"
    assert abs(config["boot"] - boot_start(run.now())) <= 1
    # The bench gets the OTA key's public half only: nothing on it signs a bundle.
    assert config["ota_pub"] == deployment.ota_anchor and "ota_key" not in config
    private = deployment.ota_key_path.read_text().splitlines()[9:-1]
    for f in micropython_board.fs_dir.rglob("*"):
        if f.is_file():
            text = f.read_bytes().decode(errors="replace")
            assert not any(line in text for line in private), f
    assert json.loads((micropython_board.fs_dir / "board.json").read_text())["chip"] == "esp32"
    assert "0 unchanged" in first and "ROMFS" not in first  # this board has no partition

    again = step_app(_run(deployment, micropython_board, fw))
    assert again.startswith("app 9.9.1: 0 file(s) copied")
    assert (
        json.loads((micropython_board.fs_dir / "config.json").read_text())["boot"] == config["boot"]
    )

    (fw / "bench" / "core.py").write_text("def f(x):\n    return x * 3\n")
    changed = _run(deployment, micropython_board, fw)
    third = step_app(changed)
    # core.mpy and the manifest that lists its new hash.
    assert third.startswith("app 9.9.1: 2 file(s) copied")


def test_selftest_report_comes_back_and_a_failing_sensor_is_named(
    micropython_board_factory, deployment: Deployment, tmp_path: Path
) -> None:
    micropython_board = micropython_board_factory(heapsize=4 << 20)  # a WROVER's PSRAM heap
    fw = _firmware(tmp_path / "fw")
    step_app(_run(deployment, micropython_board, fw))
    run = _run(deployment, micropython_board, fw)
    assert step_selftest(run).startswith("OK 3/3 checks; heap 4")
    assert run.selftest_report is not None

    bad = _firmware(tmp_path / "bad", bme_ok=False)
    step_app(_run(deployment, micropython_board, bad))
    with pytest.raises(StepError) as err:
        step_selftest(_run(deployment, micropython_board, bad))
    assert err.value.step == "selftest" and "bme280" in err.value.seen


def test_failing_checks_names_sensors_and_ports() -> None:
    report = {
        "summary": "FAIL 2/3",
        "report": {
            "sensors": [{"name": "ina226", "ok": False}],
            "ports": [{"n": 2, "ok": False}],
            "ok": False,
        },
    }
    assert failing_checks(report) == ["ina226", "port2"]
