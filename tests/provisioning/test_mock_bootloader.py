"""Foundation: esptool talks to the mock ROM bootloader the fixture starts."""

from __future__ import annotations

import pytest
from esptool.cmds import detect_chip
from esptool.loader import ESPLoader


@pytest.mark.parametrize(("chip", "name"), [("esp32", "ESP32"), ("esp32s3", "ESP32-S3")])
def test_esptool_reads_the_chip_id_from_the_mock(mock_bootloader, chip: str, name: str) -> None:
    mock = mock_bootloader(chip)
    esp: ESPLoader = detect_chip(mock.url, 115200, "no-reset", connect_attempts=2)
    try:
        assert esp.CHIP_NAME == name
        assert len(esp.read_mac()) == 6
    finally:
        esp._port.close()
