"""esptool's Python API, wrapped: one connection per use, its log routed per thread.

esptool logs through one global logger; a batch flashes several boards from threads, so
the logger installed here routes each thread's lines and progress to that thread's sink.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import serial
from esptool.cmds import detect_chip, detect_flash_size, run_stub
from esptool.loader import ESPLoader
from esptool.logger import TemplateLogger, log
from esptool.util import FatalError

from provisioning.errors import HINT_NO_BOOTLOADER, HINT_PORT_BUSY

Progress = Callable[[int, int], None]
ROM_BAUD = 115200

_local = threading.local()


class _RoutedLogger(TemplateLogger):
    def _sink(self) -> Any:
        return getattr(_local, "sink", None)

    def print(self, *args: Any, **kwargs: Any) -> None:
        sink = self._sink()
        if sink is not None:
            sink.lines.append(" ".join(str(a) for a in args))

    def note(self, message: str) -> None:
        self.print(f"note: {message}")

    def warning(self, message: str) -> None:
        self.print(f"warning: {message}")

    def error(self, message: str) -> None:
        self.print(f"error: {message}")

    def stage(self, finish: bool = False) -> None:
        pass

    def progress_bar(
        self,
        cur_iter: int,
        total_iters: int,
        prefix: str = "",
        suffix: str = "",
        bar_length: int = 30,
    ) -> None:
        sink = self._sink()
        if sink is not None and sink.progress is not None:
            sink.progress(cur_iter, total_iters)

    def set_verbosity(self, verbosity: str) -> None:
        pass


@dataclass
class _Sink:
    lines: list[str]
    progress: Progress | None


_installed = False
_install_lock = threading.Lock()


def _install_logger() -> None:
    global _installed
    with _install_lock:
        if not _installed:
            log.set_logger(_RoutedLogger())
            _installed = True


@contextlib.contextmanager
def esptool_output(progress: Progress | None = None) -> Iterator[list[str]]:
    """Collect esptool's lines for this thread (for error reports) and route its progress."""
    _install_logger()
    previous = getattr(_local, "sink", None)
    sink = _Sink(lines=[], progress=progress)
    _local.sink = sink
    try:
        yield sink.lines
    finally:
        _local.sink = previous


@dataclass(frozen=True)
class ChipInfo:
    chip: str  # esptool's name, e.g. "ESP32", "ESP32-S3"
    description: str
    mac: str
    flash_size: str | None

    @property
    def key(self) -> str:
        """The inventory's name for the chip family: esp32, esp32s3, …"""
        return self.chip.lower().replace("-", "")


def connect(port: str, attempts: int = 3) -> ESPLoader:
    """The ROM bootloader on ``port`` at the ROM baud rate (reset into it where the port can)."""
    return detect_chip(port, ROM_BAUD, "default-reset", connect_attempts=attempts)


def close(esp: ESPLoader | None) -> None:
    if esp is not None:
        with contextlib.suppress(Exception):
            esp._port.close()


def mac_text(esp: ESPLoader) -> str:
    mac = esp.read_mac()
    if isinstance(mac, tuple | list | bytes | bytearray):
        return ":".join(f"{b:02x}" for b in mac)
    return str(mac)


def chip_info(esp: ESPLoader) -> ChipInfo:
    """Chip, MAC and flash size; loads the stub (flash size needs it on most chips)."""
    mac = mac_text(esp)
    description = str(esp.get_chip_description())
    if not esp.IS_STUB:
        esp = run_stub(esp)
    from esptool.cmds import attach_flash

    attach_flash(esp)
    return ChipInfo(
        chip=str(esp.CHIP_NAME),
        description=description,
        mac=mac,
        flash_size=detect_flash_size(esp),
    )


def read_chip(port: str) -> ChipInfo:
    with esptool_output():
        esp = connect(port)
        try:
            return chip_info(esp)
        finally:
            close(esp)


def explain(exc: BaseException) -> tuple[str, str]:
    """(what was seen, what to try) for an esptool or serial failure."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    low = text.lower()
    if "busy" in low or "exclusively lock" in low or "resource temporarily" in low:
        return text, HINT_PORT_BUSY
    if "permission denied" in low:
        return text, (
            "on Linux add yourself to the dialout group (sudo usermod -aG dialout $USER, "
            "then log in again); " + HINT_PORT_BUSY
        )
    if "could not open port" in low or "no such file" in low:
        return (
            text,
            "check the cable is plugged in and the port name (run `klupa provision detect`)",
        )
    return text, HINT_NO_BOOTLOADER


ESPTOOL_ERRORS: tuple[type[BaseException], ...] = (FatalError, serial.SerialException, OSError)
