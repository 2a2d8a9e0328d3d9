"""The app step puts the app's packages in a ROMFS partition when the board has one.

The npm MicroPython port is built without ROMFS, so the board here runs
``testkit/mp/romvfs.py``, a stand-in with ROMFS's outside: ``vfs.rom_ioctl`` writes a
partition file, and a valid image there is mounted at ``/rom`` (on ``sys.path``) at boot.
Everything else is real: mpremote's transport, the REPL, the imports from ``/rom``. The last
test mounts the real firmware's image on MicroPython's own ``VfsRom`` (the unix port).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from provisioning.deployment import Deployment
from provisioning.steps import step_app, step_selftest
from testkit.mp.romvfs import image_tree
from tests.provisioning.test_app_step import _firmware, _run


def read_romfs(partition: bytes) -> dict[str, Any]:
    """The files of the ROMFS image at the start of a partition, as nested dicts."""
    tree = image_tree(partition)
    assert tree is not None, f"no ROMFS image: {partition[:8]!r}"
    return tree


def _manifest_files(fs_dir: Path) -> dict[str, str]:
    manifest = json.loads((fs_dir / "manifest.json").read_text())
    return {f["path"]: f["sha256"] for f in manifest["files"]}


@pytest.mark.parametrize("kind", ["esp32", "buffer"])
def test_packages_go_to_romfs_run_from_rom_and_reruns_write_only_changes(
    micropython_board_factory, pin_romfs_build, deployment: Deployment, tmp_path: Path, kind: str
) -> None:
    """Both kinds of ROMFS build: the ESP32's partition is a block device, other ports' are
    bytes written through vfs.rom_ioctl (testkit/mp/romvfs.py)."""
    # A stale package copy on the file system would shadow /rom: the step removes it.
    stale = tmp_path / "stale.mpy"
    stale.write_bytes(b"not the app")
    pin_romfs_build(deployment)  # no PSRAM on this board (a WROOM): the ROMFS path
    board = micropython_board_factory(
        romfs_size=64 * 1024, romfs_kind=kind, preload={"bench/core.mpy": stale}
    )
    fw = _firmware(tmp_path / "fw")

    first = step_app(_run(deployment, board, fw))

    assert "3 package file(s) in ROMFS" in first and "written and verified" in first, first
    assert ", 1 removed," in first, first  # the stale copy, and nothing the board did not hold
    partition = (board.rom_dir / "partition.bin").read_bytes()
    tree = read_romfs(partition)
    want = _manifest_files(board.fs_dir)
    assert set(tree) == {"bench"}
    assert set(tree["bench"]) == {"__init__.mpy", "core.mpy", "selftest.mpy"}
    for name, data in tree["bench"].items():
        assert hashlib.sha256(data).hexdigest() == want["bench/" + name]
    # the file system keeps the boot files and the bench's own, and no package
    assert not (board.fs_dir / "bench" / "core.mpy").exists()
    for name in ("boot.py", "main.py", "config.json", "board.json", "ca.crt", "manifest.json"):
        assert (board.fs_dir / name).is_file(), name
    assert hashlib.sha256((board.fs_dir / "main.py").read_bytes()).hexdigest() == want["main.py"]

    # After the step's soft reset the board mounts the image: the self-test imports from /rom.
    assert step_selftest(_run(deployment, board, fw)).startswith("OK 3/3 checks; heap")

    again = step_app(_run(deployment, board, fw))
    assert again.startswith("app 9.9.1: 0 file(s) copied") and "unchanged" in again, again
    assert ", 0 removed," in again, again
    assert (board.rom_dir / "partition.bin").read_bytes() == partition

    (fw / "bench" / "core.py").write_text("def f(x):\n    return x * 3\n")
    third = step_app(_run(deployment, board, fw))
    assert "written and verified" in third, third
    core = read_romfs((board.rom_dir / "partition.bin").read_bytes())["bench"]["core.mpy"]
    assert hashlib.sha256(core).hexdigest() == _manifest_files(board.fs_dir)["bench/core.mpy"]
    assert core != tree["bench"]["core.mpy"]


def test_packages_stay_on_the_file_system_when_the_partition_is_too_small(
    micropython_board_factory, pin_romfs_build, deployment: Deployment, tmp_path: Path
) -> None:
    pin_romfs_build(deployment)
    board = micropython_board_factory(romfs_size=256)
    fw = _firmware(tmp_path / "fw")

    summary = step_app(_run(deployment, board, fw))

    assert "exceeds the board's 256-byte partition: packages on the file system" in summary
    assert (board.rom_dir / "partition.bin").read_bytes() == b"\xff" * 256  # untouched
    for path, sha in _manifest_files(board.fs_dir).items():
        assert hashlib.sha256((board.fs_dir / path).read_bytes()).hexdigest() == sha
    assert step_selftest(_run(deployment, board, fw)).startswith("OK 3/3 checks; heap")


_ON_VFSROM = """\
import sys, os, vfs, hashlib, binascii
with open(sys.argv[1], "rb") as f:
    image = f.read()
vfs.mount(vfs.VfsRom(image), "/rom")
sys.path.insert(0, "/rom")
def walk(d):
    for name, kind, *_ in os.ilistdir(d):
        p = d + "/" + name
        if kind == 0x4000:
            walk(p)
        else:
            with open(p, "rb") as f:
                print("file", p[4:], binascii.hexlify(hashlib.sha256(f.read()).digest()).decode())
walk("/rom")
from bench import font, pollcheck, protocol
print("from", protocol.__file__, font.__file__)
print("glyphs", all(font.has_glyph(c) for c in "čćđšžČĆĐŠŽЖљ"), font.has_glyph("\u20ac"))
print("poll", pollcheck.poll_error({"v": 1, "id": "mostar-2026-klupe", "opens": 2, "closes": 1}))
"""


def test_the_firmwares_image_runs_in_place_on_micropythons_own_vfsrom(tmp_path: Path) -> None:
    # The stand-in above parses images with our own reader; here MicroPython's VfsRom (the unix
    # port, 1.29 preview) mounts the image provisioning builds from the real firmware, lists
    # every package with its bytes intact, and imports and runs modules from it in place.
    from provisioning import romfs, signing
    from provisioning.bundle import build_bundle
    from testkit.services import need_program
    from testkit.vm import FIRMWARE_DIR

    exe = need_program(str(Path(sys.executable).parent / "micropython"), "micropython")
    bundle = build_bundle(FIRMWARE_DIR, tmp_path / "bundle", signing.generate())
    packages = romfs.rom_files(bundle.contents())
    assert "/bench/app.mpy" in packages and "/main.py" not in packages
    (tmp_path / "app.rom").write_bytes(romfs.build_image(packages))
    (tmp_path / "check.py").write_text(_ON_VFSROM)

    out = subprocess.run(
        [exe, str(tmp_path / "check.py"), str(tmp_path / "app.rom")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )

    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    listed = dict(line.split()[1:] for line in lines if line.startswith("file "))
    assert listed == {p: hashlib.sha256(d).hexdigest() for p, d in packages.items()}
    assert "from /rom/bench/protocol.mpy /rom/bench/font.mpy" in lines
    assert "glyphs True False" in lines
    assert "poll closes is not after opens" in lines
