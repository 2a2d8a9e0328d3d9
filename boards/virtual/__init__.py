"""The virtual board: the bench's hardware on the host (see docs/firmware.md)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from klupa import shipped

if TYPE_CHECKING:
    from boards.virtual.clock import VirtualClock
    from boards.virtual.hardware import VirtualBoard

FIRMWARE = shipped.firmware_dir()
BOARDS = shipped.boards_dir()


def firmware_path() -> None:
    """Put firmware/ on sys.path so `import bench...` finds the app as the ESP32 does."""
    if str(FIRMWARE) not in sys.path:
        sys.path.insert(0, str(FIRMWARE))


def use_clock(clock: VirtualClock) -> None:
    """Make the firmware's runtime read this clock (one clock per process)."""
    firmware_path()
    import bench.runtime  # type: ignore[import-not-found]

    bench.runtime.CLOCK = clock


def install(board: VirtualBoard) -> None:
    """Make `import machine` (and network, esp32, ntptime) give this board's modules."""
    firmware_path()
    sys.modules["machine"] = board.machine
    sys.modules["network"] = board.network
    sys.modules["esp32"] = board.esp32
    sys.modules["ntptime"] = board.ntptime
    use_clock(board.virtual_clock)
