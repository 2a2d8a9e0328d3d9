"""The MicroPython board on a pty behaves as a board for mpremote."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from testkit.micropython import MicroPythonBoard

MPREMOTE = [sys.executable, "-m", "mpremote"]


def mpremote(board: MicroPythonBoard, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*MPREMOTE, "connect", board.port, *args], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, f"mpremote {args}: {proc.stdout}\n{proc.stderr}"
    return proc


def test_mpremote_copies_a_file_reads_its_sha256_and_runs_it(
    micropython_board: MicroPythonBoard, tmp_path: Path
) -> None:
    script = tmp_path / "greet.py"
    body = "import sys\nprint('hello from', sys.implementation.name, 6 * 7)\n"
    script.write_text(body + "# padding past one 256-byte raw REPL chunk\n" * 12)
    expected = hashlib.sha256(script.read_bytes()).hexdigest()

    mpremote(micropython_board, "fs", "cp", str(script), ":greet.py")
    assert (micropython_board.fs_dir / "greet.py").read_bytes() == script.read_bytes()

    out = mpremote(micropython_board, "fs", "sha256sum", ":greet.py").stdout
    assert expected in out

    ran = mpremote(micropython_board, "exec", "import greet").stdout
    assert "hello from micropython 42" in ran


def test_files_survive_soft_reset_and_errors_use_board_errno(
    micropython_board: MicroPythonBoard,
) -> None:
    mpremote(
        micropython_board,
        "exec",
        "import os\nos.mkdir('data')\nf = open('data/n.txt', 'w')\nf.write('7')\nf.close()",
    )
    out = mpremote(
        micropython_board,
        "soft-reset",
        "exec",
        "import errno, os\nprint(open('data/n.txt').read())\n"
        "try:\n os.stat('missing')\nexcept OSError as e:\n print('errno', e.errno == errno.ENOENT)",
    ).stdout
    assert "7" in out and "errno True" in out
    assert b"MPY: soft reboot" in micropython_board.output
    listing = mpremote(micropython_board, "fs", "ls", ":data").stdout
    assert "n.txt" in listing
    mpremote(micropython_board, "fs", "rm", ":data/n.txt")
    assert not (micropython_board.fs_dir / "data" / "n.txt").exists()


def test_preloaded_files_import_from_lib_and_restart_keeps_them(
    micropython_board_factory: Callable[..., MicroPythonBoard], tmp_path: Path
) -> None:
    lib = tmp_path / "fakes"
    lib.mkdir()
    (lib / "machine.py").write_text("def unique_id():\n    return b'\\x01\\x02'\n")
    (tmp_path / "boot.py").write_text("print('boot ran')\n")
    board = micropython_board_factory(preload={"lib": lib, "": tmp_path / "boot.py"})
    assert b"boot ran" in board.output
    out = mpremote(board, "exec", "import machine\nprint(machine.unique_id())").stdout
    assert "b'\\x01\\x02'" in out
    board.restart()
    assert b"boot ran" in board.output
    assert (
        "b'\\x01\\x02'"
        in mpremote(board, "exec", "import machine; print(machine.unique_id())").stdout
    )
