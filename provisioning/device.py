"""A MicroPython board over its serial REPL (mpremote's transport), and the app upload.

Every operation is one raw-REPL exec; the upload hashes all files on the board in one
exec, sends only the files whose SHA-256 differs (each to a temporary name, renamed when
complete, so an interrupted run leaves old or new files, never half a file), and hashes
everything again to verify.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import json
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mpremote.transport import TransportError
from mpremote.transport_serial import SerialTransport

Progress = Callable[[int, int], None]
CHUNK = 3072  # raw bytes per write exec (4 KiB of base64); fits the ESP32's raw-paste window

_HASH_FN = """\
import os,hashlib,binascii
def _h(p):
 try:
  f=open(p,'rb')
 except OSError:
  return None
 h=hashlib.sha256();b=bytearray(512);m=memoryview(b)
 while 1:
  n=f.readinto(b)
  if not n:break
  h.update(m[:n])
 f.close()
 return binascii.hexlify(h.digest()).decode()
"""


class _MutedThreads:
    """``sys.stdout`` while any board is talking: drops what mpremote prints from a thread
    inside a board call, passes everything else to the stdout it replaced.

    ``contextlib.redirect_stdout`` swaps the process-wide ``sys.stdout``; two boards in a
    batch's threads would restore each other's swaps and leave stdout pointing at a buffer
    (the batch's summary table then went nowhere).
    """

    def __init__(self, target: Any) -> None:
        self.target = target
        self.local = threading.local()

    def write(self, text: str) -> int:
        if getattr(self.local, "depth", 0):
            return len(text)
        return int(self.target.write(text))

    def flush(self) -> None:
        if not getattr(self.local, "depth", 0):
            self.target.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


_MUTE_LOCK = threading.Lock()
_mute: _MutedThreads | None = None
_mute_users = 0


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Mute this thread's prints (mpremote's) for the block, leaving other threads' alone."""
    global _mute, _mute_users
    with _MUTE_LOCK:
        if _mute_users == 0 or _mute is None or sys.stdout is not _mute:
            _mute = _MutedThreads(sys.stdout)
            sys.stdout = _mute
        mute = _mute
        _mute_users += 1
    mute.local.depth = getattr(mute.local, "depth", 0) + 1
    try:
        yield
    finally:
        mute.local.depth -= 1
        with _MUTE_LOCK:
            _mute_users -= 1
            if _mute_users == 0 and sys.stdout is mute:
                sys.stdout = mute.target
                _mute = None


class BoardError(Exception):
    """The board did not answer as a MicroPython REPL, or a command on it failed."""


@dataclass
class LinkStats:
    bytes_out: int = 0
    round_trips: int = 0


@dataclass
class UploadResult:
    copied: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    bytes_copied: int = 0


class Board:
    """An open raw REPL on one port. Use as a context manager."""

    def __init__(self, port: str, baud: int = 115200, timeout: float = 10.0) -> None:
        self.port = port
        self.stats = LinkStats()
        try:
            with _quiet():
                self.transport = SerialTransport(port, baudrate=baud)
        except (TransportError, OSError) as e:
            raise BoardError(f"cannot open {port}: {e}") from None
        serial = self.transport.serial
        write = serial.write

        def counted_write(data: bytes) -> int | None:
            self.stats.bytes_out += len(data)
            return write(data)

        serial.write = counted_write  # type: ignore[method-assign]
        original_exec = self.transport.exec_raw_no_follow

        def counted_exec(command: str | bytes) -> Any:
            self.stats.round_trips += 1
            return original_exec(command)

        self.transport.exec_raw_no_follow = counted_exec  # type: ignore[method-assign]
        self.timeout = timeout
        self.atomic = True
        try:
            with _quiet():
                self.transport.enter_raw_repl(soft_reset=False, timeout_overall=timeout)
        except (TransportError, OSError) as e:
            self.close()
            raise BoardError(f"no MicroPython REPL on {port}: {e}") from None

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception), _quiet():
            if self.transport.in_raw_repl:
                self.transport.exit_raw_repl()
            self.transport.close()

    def exec(self, code: str, timeout: float | None = None) -> bytes:
        try:
            with _quiet():
                out, err = self.transport.exec_raw(code, timeout=timeout or self.timeout)
        except (TransportError, OSError) as e:
            raise BoardError(f"the board stopped answering: {e}") from None
        if err:
            last = err.decode(errors="replace").strip().splitlines()
            raise BoardError(last[-1] if last else "error on the board")
        return bytes(out)

    def eval(self, expr: str) -> Any:
        return self.value(f"print(repr({expr}))")

    def value(self, code: str) -> Any:
        """Run code that prints one Python literal; return that value."""
        out = self.exec(code)
        try:
            return ast.literal_eval(out.decode().strip())
        except (ValueError, SyntaxError):
            raise BoardError(f"unexpected answer from the board: {out[:80]!r}") from None

    def soft_reset(self) -> None:
        """Leave the raw REPL and soft-reset, so boot.py and main.py start the app."""
        with contextlib.suppress(Exception), _quiet():
            self.transport.exit_raw_repl()
            self.transport.serial.write(b"\x04")

    # ------------------------------------------------------------------ facts

    def micropython_version(self) -> str:
        v = self.eval("__import__('sys').implementation.version")
        return ".".join(str(x) for x in v[:3])

    def facts(self) -> dict[str, str]:
        """Chip, MAC and MicroPython version as the running board reports them."""
        code = (
            "import sys\n"
            "r={'mpy':'.'.join(str(x) for x in sys.implementation.version[:3]),"
            "'machine':getattr(sys.implementation,'_machine','')}\n"
            "try:\n"
            " import network,binascii\n"
            " r['mac']=binascii.hexlify(network.WLAN(network.STA_IF).config('mac'),':').decode()\n"
            "except Exception:\n"
            " pass\n"
            "print(repr(r))\n"
        )
        return {str(k): str(v) for k, v in self.value(code).items()}

    # ------------------------------------------------------------------ files

    def hashes(self, paths: list[str]) -> dict[str, str | None]:
        if not paths:
            return {}
        values = self.value(_HASH_FN + f"print(repr([_h(p) for p in {paths!r}]))\n")
        return dict(zip(paths, values, strict=True))

    def read_text(self, path: str) -> str | None:
        code = (
            f"try:\n f=open({path!r})\nexcept OSError:\n print('None')\n"
            "else:\n print(repr(f.read()));f.close()\n"
        )
        out = self.exec(code).decode().strip()
        return None if out == "None" else str(ast.literal_eval(out))

    def make_dirs(self, dirs: list[str]) -> None:
        if not dirs:
            return
        self.exec(
            "import os\n"
            f"for d in {sorted(dirs)!r}:\n"
            " try:\n  os.mkdir(d)\n except OSError:\n  pass\n"
        )

    def write_file(self, path: str, data: bytes, progress: Progress | None = None) -> None:
        """Write to ``path.part`` in chunks, then rename over ``path`` (where the board's
        filesystem cannot rename, straight to ``path``; the hash check still catches a cut)."""
        target = path + ".part" if self.atomic else path
        self._send(target, data, progress)
        if not self.atomic:
            return
        try:
            self.exec(
                f"import os\ntry:\n os.remove({path!r})\nexcept OSError:\n pass\n"
                f"os.rename({target!r},{path!r})"
            )
        except BoardError:
            self.atomic = False
            self.remove_files([target])
            self._send(path, data, progress)

    def _send(self, path: str, data: bytes, progress: Progress | None) -> None:
        self.exec(f"import binascii\nf=open({path!r},'wb')\nw=f.write\na=binascii.a2b_base64")
        try:
            for off in range(0, len(data), CHUNK):
                chunk = data[off : off + CHUNK]
                self.exec(f"w(a({base64.b64encode(chunk)!r}))")
                if progress:
                    progress(off + len(chunk), len(data))
        finally:
            with contextlib.suppress(BoardError):
                self.exec("f.close()")

    def remove_files(self, paths: list[str]) -> None:
        if paths:
            self.exec(
                f"import os\nfor p in {paths!r}:\n try:\n  os.remove(p)\n except OSError:\n  pass\n"
            )

    def remove_empty_dirs(self, dirs: list[str]) -> None:
        """Remove these folders where empty, deepest first (a non-empty one stays)."""
        if dirs:
            deepest = sorted(dirs, key=lambda d: -d.count("/"))
            self.exec(
                f"import os\nfor d in {deepest!r}:\n try:\n  os.rmdir(d)\n except OSError:\n  pass\n"
            )


def dirs_of(paths: list[str]) -> list[str]:
    out: set[str] = set()
    for p in paths:
        parts = p.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            out.add("/" + "/".join(parts[:i]))
    return sorted(out, key=lambda d: (d.count("/"), d))


def sync_files(
    board: Board,
    files: dict[str, bytes],
    progress: Progress | None = None,
    stale: list[str] | None = None,
) -> UploadResult:
    """Make the board hold exactly these bytes at these absolute paths; verify by hash."""
    import hashlib

    want = {p: hashlib.sha256(d).hexdigest() for p, d in files.items()}
    have = board.hashes(list(files))
    result = UploadResult()
    todo = [p for p in files if have.get(p) != want[p]]
    result.unchanged = [p for p in files if p not in todo]
    total = sum(len(files[p]) for p in todo)
    sent_before = 0
    board.make_dirs(dirs_of(todo))
    for p in todo:
        base = sent_before

        def one(done: int, _size: int, base: int = base) -> None:
            if progress:
                progress(base + done, total)

        board.write_file(p, files[p], one)
        sent_before += len(files[p])
        result.copied.append(p)
        result.bytes_copied += len(files[p])
    gone = [p for p in (stale or []) if p not in files]
    board.remove_files(gone)
    result.removed = gone
    after = board.hashes(list(files))
    bad = [p for p in files if after.get(p) != want[p]]
    if bad:
        raise BoardError(
            f"{len(bad)} file(s) differ after upload, first {bad[0]}: "
            f"expected sha256 {want[bad[0]][:16]}…, board has {str(after.get(bad[0]))[:16]}…"
        )
    return result


def parse_json_line(out: bytes, marker: str) -> Any:
    for line in out.decode(errors="replace").splitlines():
        if line.startswith(marker):
            return json.loads(line[len(marker) :])
    raise BoardError(f"no {marker.strip()} line in the board's answer")
