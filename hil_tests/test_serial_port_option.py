"""`pytest hil_tests --port PORT --broker HOST:PORT` drives a bench the tests did not start, as
it would a real one: a virtual serial bench is started here as a stand-in (its config names a
free port of this machine as its broker, as a bench provisioned for the HIL run names the
laptop), and the commands scenario runs in a pytest of its own with only its port and that
address: the bench's id learned from its birth, Mosquitto started on --broker's port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from klupa.services import free_port
from testkit.serialbench import VirtualSerialBench

REPO = Path(__file__).resolve().parents[1]


def test_the_port_option_drives_a_bench_through_its_port_and_broker(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if request.config.getoption("--port"):
        pytest.skip("already running against a bench on --port")
    port = free_port()
    root = tmp_path / "zepce-03"
    root.mkdir()
    config = {
        "bench": "zepce-03",
        "municipality": "zepce",
        "wifi": {"ssid": "hil-lab", "password": "virtual"},
        "mqtt": {"host": "127.0.0.1", "port": port, "user": "zepce-03", "password": "any"},
        "ntp": "127.0.0.1",
        "period": 10,
    }
    (root / "config.json").write_text(json.dumps(config))
    bench = VirtualSerialBench(root, speed=10.0, start_ago=1800.0)
    serial_port = bench.start()
    try:
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
            + ["--basetemp", str(tmp_path / "run")]
            + ["hil_tests/test_serial_commands.py::test_serial_commands"]
            + ["hil_tests/test_telemetry.py", "--port", serial_port]
            + ["--broker", f"127.0.0.1:{port}"],
            cwd=REPO,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        bench.stop()
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "1 passed, 1 skipped" in run.stdout, run.stdout[-2000:]
