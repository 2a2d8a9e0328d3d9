"""`detect`: which serial ports hold a USB bridge ESP32 boards use, and what chip is behind."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from serial.tools import list_ports

# (VID, PID) -> bridge name. These are the bridges on the ESP32 dev boards benches use.
BRIDGES: dict[tuple[int, int], str] = {
    (0x10C4, 0xEA60): "CP210x",
    (0x1A86, 0x7523): "CH340",
    (0x1A86, 0x55D4): "CH9102",
    (0x0403, 0x6001): "FTDI FT232R",
    (0x303A, 0x1001): "ESP USB-Serial/JTAG",
}


@dataclass(frozen=True)
class Candidate:
    port: str
    bridge: str
    vid: int
    pid: int
    serial_number: str
    description: str

    @property
    def usb_id(self) -> str:
        return f"{self.vid:04X}:{self.pid:04X}"


def candidates(comports: Callable[[], Iterable[Any]] = list_ports.comports) -> list[Candidate]:
    """Ports whose USB VID:PID is one of ``BRIDGES``, sorted by port name."""
    out: list[Candidate] = []
    for info in comports():
        vid, pid = getattr(info, "vid", None), getattr(info, "pid", None)
        if vid is None or pid is None:
            continue
        bridge = BRIDGES.get((int(vid), int(pid)))
        if bridge is None:
            continue
        out.append(
            Candidate(
                port=str(info.device),
                bridge=bridge,
                vid=int(vid),
                pid=int(pid),
                serial_number=str(getattr(info, "serial_number", "") or ""),
                description=str(getattr(info, "description", "") or ""),
            )
        )
    return sorted(out, key=lambda c: c.port)
