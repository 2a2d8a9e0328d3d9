"""The app step puts the app's packages in a ROMFS partition when the board has one.

The npm MicroPython port is built without ROMFS, so the board here runs
``klupa/testing/mp/romvfs.py``, a stand-in with ROMFS's outside: ``vfs.rom_ioctl`` writes a
partition file, and a valid image there is mounted at ``/rom`` (on ``sys.path``) at boot.
Everything else is real: mpremote's transport, the REPL, the imports from ``/rom``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from klupa.testing.mp.romvfs import image_tree
from provisioning.deployment import Deployment
from provisioning.steps import step_app, step_selftest
from tests.provisioning.test_app_step import _firmware, _run


def read_romfs(partition: bytes) -> dict[str, Any]:
    """The files of the ROMFS image at the start of a partition, as nested dicts."""
    tree = image_tree(partition)
    assert tree is not None, f"no ROMFS image: {partition[:8]!r}"
    return tree


def _manifest_files(fs_dir: Path) -> dict[str, str]:
    manifest = json.loads((fs_dir / "manifest.json").read_text())
    return {f["path"]: f["sha256"] for f in manifest["files"]}


def test_packages_go_to_romfs_run_from_rom_and_reruns_write_only_changes(
    micropython_board_factory, deployment: Deployment, tmp_path: Path
) -> None:
    # A stale package copy on the file system would shadow /rom: the step removes it.
    stale = tmp_path / "stale.mpy"
    stale.write_bytes(b"not the app")
    board = micropython_board_factory(romfs_size=64 * 1024, preload={"bench/core.mpy": stale})
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
    assert step_selftest(_run(deployment, board, fw)) == "OK 3/3 checks"

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
    micropython_board_factory, deployment: Deployment, tmp_path: Path
) -> None:
    board = micropython_board_factory(romfs_size=256)
    fw = _firmware(tmp_path / "fw")

    summary = step_app(_run(deployment, board, fw))

    assert "exceeds the board's 256-byte partition: packages on the file system" in summary
    assert (board.rom_dir / "partition.bin").read_bytes() == b"\xff" * 256  # untouched
    for path, sha in _manifest_files(board.fs_dir).items():
        assert hashlib.sha256((board.fs_dir / path).read_bytes()).hexdigest() == sha
    assert step_selftest(_run(deployment, board, fw)) == "OK 3/3 checks"
