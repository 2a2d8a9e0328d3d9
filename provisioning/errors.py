"""The one exception a provisioning step raises: step, port, expected, seen, what to try."""

from __future__ import annotations

from dataclasses import dataclass


# eq=False: an exception compares, and hashes, by identity; repr=False: its repr stays
# Exception's, StepError('<the line>').
@dataclass(eq=False, repr=False)
class StepError(Exception):
    """A step failed in a way a technician can act on."""

    step: str
    port: str
    expected: str
    seen: str
    hint: str

    def __post_init__(self) -> None:
        super().__init__(self.line())  # args and str(): the one line

    def line(self) -> str:
        where = f" on {self.port}" if self.port else ""
        return (
            f"step {self.step} failed{where}: expected {self.expected}; saw {self.seen}. "
            f"Try: {self.hint}"
        )


# What to try for the failures a USB link gives, written once.
HINT_NO_BOOTLOADER = (
    "hold the BOOT button while pressing RESET (EN), then run again; check the USB cable "
    "carries data (not a charge-only cable) and the USB-serial driver (CP210x/CH340) is installed"
)
HINT_PORT_BUSY = (
    "close any other program using the port (serial monitor, another klupa run, Thonny, "
    "mpremote), then run again"
)
HINT_NO_REPL = (
    "press RESET on the board and run again; if it still does not answer, run the "
    "`micropython` step to reflash MicroPython"
)
