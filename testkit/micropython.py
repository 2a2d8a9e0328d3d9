"""A MicroPython board on a pseudo-terminal, for tests that drive it with `mpremote`.

The board is the npm MicroPython WebAssembly port run by ``node`` through our
``mpboard.mjs`` (which answers raw-paste requests with "not supported", restarts the VM on a
soft reset printing ``MPY: soft reboot``, and keeps the board's files in a host folder). A
thread here bridges the pty's master side to node's stdin/stdout; ``mpremote connect <port>``
opens the slave side as it would a USB serial port.

Fixture ``micropython_board`` yields a :class:`MicroPythonBoard`:

- ``.port``: the pty path for ``mpremote connect``.
- ``.fs_dir``: the host folder that is the board's ``/`` (its flash).
- ``.restart()``: a hard reset (power cycle): a new VM on the same pty and folder.
- ``.rom_dir``: with ``romfs_size=N`` given to the factory, the host folder whose
  ``partition.bin`` (N bytes, erased) is the board's ROMFS partition. The npm port has no
  ROMFS; ``mp/romvfs.py`` stands in for it (``vfs.rom_ioctl``, the image mounted at ``/rom``).
- ``.output``: everything the board printed so far (bytes), for diagnostics.

Files can be preloaded onto the board before it boots: the fixture
``micropython_board_factory(preload={"lib": Path("boards/virtual/mp"), "": Path("firmware")})``
copies each host file or folder to the given board path (``""`` is the root).

A missing ``node`` or npm package skips the test with a message naming it, unless
``KLUPA_REQUIRE_SERVICES=1``, where the test fails.
"""

from __future__ import annotations

import errno
import os
import select
import shutil
import subprocess
import threading
import time
import tty
from collections.abc import Callable, Iterator, Mapping
from dataclasses import InitVar, dataclass, field
from pathlib import Path

import pytest

from testkit.services import services_required
from testkit.vm import MPBOARD_SCRIPT, VmUnavailable, require_vm

__all__ = ["MicroPythonBoard", "copy_onto_board", "need_micropython_vm"]


def need_micropython_vm() -> tuple[str, Path]:
    """Return (node, port module), or skip (fail under KLUPA_REQUIRE_SERVICES=1) naming what lacks."""
    try:
        return require_vm()
    except VmUnavailable as exc:
        if services_required():
            pytest.fail(f"KLUPA_REQUIRE_SERVICES=1 but {exc}")
        pytest.skip(str(exc))


def copy_onto_board(fs_dir: Path, preload: Mapping[str, Path]) -> None:
    """Copy host files/folders into the board's folder; keys are board paths ("" = root)."""
    for board_path, host in preload.items():
        dest = fs_dir / board_path.strip("/")
        if host.is_dir():
            shutil.copytree(
                host,
                dest,
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"),
            )
        else:
            if board_path.endswith("/") or dest.is_dir():
                dest = dest / host.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(host, dest)


@dataclass(eq=False)
class MicroPythonBoard:
    """The WebAssembly MicroPython VM served as a REPL on a pseudo-terminal."""

    fs_dir: Path
    node: str
    port_module: Path
    heapsize: int = 56 * 1024
    run_main: bool = False
    # Where node's stderr goes: ``log``, or ``<fs_dir>-board.log`` beside the flash folder.
    log: InitVar[Path | None] = None
    rom_dir: Path | None = None
    log_file: Path = field(init=False)
    output: bytes = field(default=b"", init=False)
    port: str = field(init=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)

    def __post_init__(self, log: Path | None) -> None:
        self.log_file = log or self.fs_dir.with_name(self.fs_dir.name + "-board.log")
        self._master, self._slave = os.openpty()
        # Raw line discipline: the REPL's control bytes (Ctrl-A..E) must pass untouched.
        tty.setraw(self._slave)
        tty.setraw(self._master)
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 20.0) -> None:
        self.fs_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            self.node,
            str(MPBOARD_SCRIPT),
            "--fs",
            str(self.fs_dir),
            "--heapsize",
            str(self.heapsize),
            "--port-module",
            str(self.port_module),
        ]
        if self.run_main:
            cmd.append("--run-main")
        if self.rom_dir is not None:
            cmd += ["--rom", str(self.rom_dir)]
        with open(self.log_file, "ab") as log:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log
            )
        self._stop.clear()
        self._thread = threading.Thread(target=self._bridge, name="mpboard-bridge", daemon=True)
        self._thread.start()
        self.wait_for_output(b">>> ", timeout)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._proc is not None:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None

    def restart(self, timeout: float = 20.0) -> None:
        """Hard reset: power-cycle the board (new VM, same pty, same files)."""
        self.stop()
        self.output = b""
        self.start(timeout)

    def close(self) -> None:
        self.stop()
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> MicroPythonBoard:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait_for_output(self, marker: bytes, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.output:
            if not self.running:
                raise RuntimeError(f"MicroPython board exited; see {self.log_file}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"board did not print {marker!r} within {timeout}s")
            time.sleep(0.02)

    # ------------------------------------------------------------------ pty bridge

    def _bridge(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        node_in, node_out = proc.stdin.fileno(), proc.stdout.fileno()
        to_pty = b""  # board output waiting for room in the pty
        while not self._stop.is_set():
            wlist = [self._master] if to_pty else []
            try:
                readable, writable, _ = select.select([self._master, node_out], wlist, [], 0.1)
            except (OSError, ValueError):
                return
            if node_out in readable:
                data = os.read(node_out, 65536)
                if not data:
                    return  # node exited
                self.output += data
                to_pty += data
            if to_pty and (self._master in writable or node_out in readable):
                try:
                    n = os.write(self._master, to_pty)
                    to_pty = to_pty[n:]
                except BlockingIOError:
                    pass
                if len(to_pty) > 1 << 20:  # nobody reads the port: keep the newest output
                    to_pty = to_pty[-(1 << 20) :]
            if self._master in readable:
                try:
                    data = os.read(self._master, 65536)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    if exc.errno == errno.EIO:  # no one has the port open
                        time.sleep(0.05)
                        continue
                    raise
                try:
                    os.write(node_in, data)
                except BrokenPipeError:
                    return


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def micropython_board_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., MicroPythonBoard]]:
    boards: list[MicroPythonBoard] = []

    def make(
        preload: Mapping[str, Path] | None = None,
        heapsize: int = 56 * 1024,
        run_main: bool = False,
        romfs_size: int | None = None,
        romfs_kind: str = "buffer",
    ) -> MicroPythonBoard:
        node, port_module = need_micropython_vm()
        workdir = tmp_path_factory.mktemp("mpboard")
        fs_dir = workdir / "flash"
        fs_dir.mkdir()
        copy_onto_board(fs_dir, preload or {})
        rom_dir = None
        if romfs_size is not None:  # an erased ROMFS partition (see mp/romvfs.py)
            rom_dir = workdir / "rom"
            rom_dir.mkdir()
            (rom_dir / "partition.bin").write_bytes(b"\xff" * romfs_size)
            (rom_dir / "kind").write_text(romfs_kind)  # "buffer" or "esp32" (mp/romvfs.py)
        board = MicroPythonBoard(
            fs_dir,
            node,
            port_module,
            heapsize=heapsize,
            run_main=run_main,
            log=workdir / "board.log",
            rom_dir=rom_dir,
        )
        boards.append(board)
        board.start()
        return board

    try:
        yield make
    finally:
        for board in boards:
            board.close()


@pytest.fixture
def micropython_board(
    micropython_board_factory: Callable[..., MicroPythonBoard],
) -> MicroPythonBoard:
    return micropython_board_factory()
