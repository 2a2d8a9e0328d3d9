"""The heap a board offers the app, read over its REPL, and whether a bench may run on it.

../shared/DESIGN.md, principle 6: a bench is an ESP32 module with PSRAM running the stock SPIRAM
build, so the app's bytecode (about 56 KiB of it, `benchmarks/README.md`) has room in the heap. A
board without PSRAM is accepted only when the deployment pins a MicroPython build with a ROMFS
partition for its chip and the board runs it (the partition is there): the app's packages then
run in place from flash and the whole app needs about 37 KiB.

What the board offers is its GC heap, the "total" that ``micropython.mem_info()`` prints: the
ESP32 port makes it from the largest free block, up to half of what ESP-IDF has, so it is
about 2 MiB with 4 MiB of PSRAM and under 200 KiB without (an ESP32 has 520 KiB of SRAM, an
ESP32-S3 512 KiB). ``gc.mem_free()`` is no use here: on ports that grow the heap on demand it
adds the largest block the heap could still take.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from provisioning.deployment import FirmwareImage
from provisioning.device import Board, BoardError
from provisioning.romfs import Partition

PSRAM_HEAP_MIN = 512 * 1024

_HEAP = """\
import gc,sys,micropython
gc.collect()
micropython.mem_info()
print(repr(getattr(sys.implementation,'_machine','')))
"""
_TOTAL = re.compile(r"GC: total: (\d+)")


@dataclass(frozen=True)
class Heap:
    total: int  # bytes of GC heap
    machine: str

    @property
    def psram(self) -> bool:
        return self.total >= PSRAM_HEAP_MIN

    def text(self) -> str:
        return f"heap {self.total // 1024} KiB, {'PSRAM' if self.psram else 'no PSRAM'}"


class HeapRefused(Exception):
    """The board may not run a bench: (expected, seen, what to try)."""

    def __init__(self, expected: str, seen: str, hint: str) -> None:
        super().__init__(expected, seen, hint)
        self.expected, self.seen, self.hint = expected, seen, hint


def read_heap(board: Board) -> Heap:
    out = board.exec(_HEAP).decode(errors="replace")
    found = _TOTAL.search(out)
    if found is None:
        raise BoardError(f"no heap total in the board's answer: {out[:80]!r}")
    return Heap(int(found.group(1)), str(ast.literal_eval(out.strip().splitlines()[-1])))


def chip_of(machine: str) -> str:
    """The inventory's chip key from ``sys.implementation._machine`` ("… with ESP32S3")."""
    return "esp32s3" if "ESP32S3" in machine.upper().replace("-", "") else "esp32"


def judge(heap: Heap, chip: str, image: FirmwareImage | None, partition: Partition | None) -> str:
    """A one-line verdict on the board's heap, or HeapRefused naming the reason."""
    if heap.psram:
        return heap.text()
    pinned = image is not None and image.romfs
    if pinned and partition is not None:
        return f"{heap.text()}; ROMFS build pinned ({partition.size // 1024} KiB partition)"
    if pinned:
        raise HeapRefused(
            f"the ROMFS partition of the build pinned for {chip} (no PSRAM: "
            f"{heap.total // 1024} KiB of heap)",
            "no ROMFS partition: the board runs another MicroPython",
            "flash the pinned build: `klupa provision micropython PORT --bench ID --force`",
        )
    raise HeapRefused(
        f"PSRAM (a heap of {PSRAM_HEAP_MIN // 1024} KiB or more), or a ROMFS build pinned "
        f"for {chip}",
        f"{heap.total // 1024} KiB of heap: no PSRAM",
        "use the board's module with PSRAM (bench-v1: ESP32-WROVER-E, bench-s3-v2: "
        "ESP32-S3-WROOM-1-N8R2) and the SPIRAM build, or pin a ROMFS build "
        f"([micropython.{chip}] romfs = true, docs/provisioning.md) and flash it",
    )
