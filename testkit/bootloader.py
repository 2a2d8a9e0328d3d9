"""The ``mock_bootloader`` fixture: esp32-mock-bootloader serving the ESP ROM protocol on TCP.

``mock_bootloader(chip="esp32")`` starts ``esp32-mock-bootloader run`` (ESP32, ESP32-S3 or
any chip esptool knows) on a free loopback port, waits until it accepts connections and
returns a ``MockBootloader`` whose ``.url`` (``socket://127.0.0.1:PORT``) esptool takes as its
port. Its flash is in memory (4 MB of 0xFF at start) and survives reconnects until ``.stop()``;
every mock started by a test is stopped after it. Skips when the package is not installed
(fails under ``KLUPA_REQUIRE_SERVICES=1``).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from klupa.services import free_port, stop_process, wait_for_port
from testkit.services import REQUIRE_ENV, services_required


@dataclass
class MockBootloader:
    chip: str
    workdir: Path
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    def start(self) -> None:
        env = dict(os.environ, ESP32_MOCK_BOOTLOADER_STATE_DIR=str(self.workdir / "state"))
        log = open(self.workdir / "mock.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "esp32_mock_bootloader.cli",
                "run",
                "--chip",
                self.chip,
                "--port",
                str(self.port),
                "--bind",
                self.host,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        try:
            wait_for_port(self.port, self.proc, "esp32-mock-bootloader", timeout=20)
        except RuntimeError as e:
            self.stop()
            raise RuntimeError(f"{e}: {self.log()[-500:]}") from None

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def log(self) -> str:
        path = self.workdir / "mock.log"
        return path.read_text(errors="replace") if path.exists() else ""


def need_mock_bootloader() -> None:
    if importlib.util.find_spec("esp32_mock_bootloader") is None:
        msg = "esp32-mock-bootloader is not installed (pip install esp32-mock-bootloader)"
        if services_required():
            pytest.fail(f"{REQUIRE_ENV}=1 but {msg}")
        pytest.skip(msg)


@pytest.fixture
def mock_bootloader(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., MockBootloader]]:
    need_mock_bootloader()
    started: list[MockBootloader] = []

    def make(chip: str = "esp32") -> MockBootloader:
        mock = MockBootloader(chip=chip, workdir=tmp_path_factory.mktemp(f"mock-{chip}"))
        (mock.workdir / "state").mkdir()
        mock.start()
        started.append(mock)
        return mock

    try:
        yield make
    finally:
        for mock in started:
            mock.stop()
