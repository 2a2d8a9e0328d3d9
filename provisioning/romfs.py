"""The app's packages in a ROMFS partition, where the board's MicroPython has one.

MicroPython 1.25 and later, on builds that enable ROMFS, runs ``.mpy`` files in place from a
read-only partition mounted at ``/rom`` (on ``sys.path`` after the current folder), so the
app's bytecode stays out of the GC heap. The app step asks the board (what ``mpremote romfs
query`` asks: ``vfs.rom_ioctl``), writes an image of the app's packages there when it fits,
verifies it by SHA-256 on the board, and leaves only the boot files and the bench's own files
on the file system (a copy there would come first on ``sys.path``). Without a partition, or
with one too small, the packages go to the file system as before.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mpremote.romfs import VfsRomWriter

from provisioning.device import CHUNK, Board, BoardError

PREPARE_MAX = 32768  # bytes erased per prepare call (an erase of a flash sector takes time)

# rom_ioctl(2, 0) answers the partition's bytes on some ports (unix, stm32: erased and written
# through rom_ioctl 3, 4, 5) and a block device on the ESP32 (an esp32.Partition, readable in
# place through the buffer protocol, erased with ioctl(6, block), written with writeblocks).
_QUERY = """\
import vfs
r=None
if hasattr(vfs,'rom_ioctl') and vfs.rom_ioctl(1)>0:
 d=vfs.rom_ioctl(2,0)
 if hasattr(d,'ioctl'):
  r=(d.ioctl(4,0)*d.ioctl(5,0),d.ioctl(5,0),1)
 elif not isinstance(d,int):
  r=(len(d),vfs.rom_ioctl(6,0),0)
 d=None
print(repr(r))
"""

_HASH = """\
import vfs,hashlib,binascii
m=memoryview(vfs.rom_ioctl(2,0))
if len(m)<{n}:
 print('None')
else:
 h=hashlib.sha256()
 for i in range(0,{n},1024):
  h.update(m[i:min({n},i+1024)])
 print(repr(binascii.hexlify(h.digest()).decode()))
m=None
"""


@dataclass(frozen=True)
class Partition:
    """ROMFS partition 0 of a board: its size and erase block, in bytes; ``device`` when the
    board offers it as a block device (the ESP32), else as bytes written through rom_ioctl."""

    size: int
    block: int
    device: bool = False


def query(board: Board) -> Partition | None:
    """The board's first ROMFS partition, or None when its MicroPython has none."""
    found = board.value(_QUERY)
    if not (isinstance(found, tuple) and len(found) == 3):
        return None
    size, block, device = int(found[0]), int(found[1]), bool(found[2])
    if size <= 0 or (device and block <= 0):
        return None
    return Partition(size, block if 0 < block <= size else size, device)


def rom_files(files: dict[str, bytes]) -> dict[str, bytes]:
    """Of the app step's files (absolute paths), the app's packages: every file in a folder."""
    return {p: d for p, d in files.items() if "/" in p.strip("/")}


def build_image(files: dict[str, bytes]) -> bytes:
    """A ROMFS image holding these files (absolute paths), folders and names in sorted order."""
    tree: dict[str, Any] = {}
    for path, data in files.items():
        *folders, name = path.strip("/").split("/")
        node = tree
        for folder in folders:
            node = node.setdefault(folder, {})
        node[name] = data
    writer = VfsRomWriter()

    def add(node: dict[str, Any]) -> None:
        for name in sorted(node):
            if isinstance(node[name], dict):
                writer.opendir(name)
                add(node[name])
                writer.closedir()
            else:
                writer.mkfile(name, node[name])

    add(tree)
    image: bytes = writer.finalise()
    return image


def on_board_sha256(board: Board, length: int) -> str | None:
    """SHA-256 of the partition's first ``length`` bytes, computed on the board."""
    found = board.value(_HASH.format(n=length))
    return found if isinstance(found, str) else None


def deploy(
    board: Board, image: bytes, part: Partition, progress: Callable[[int, int], None] | None = None
) -> bool:
    """Make partition 0 start with ``image`` (which fits: the caller checks); False when it
    already did (nothing written)."""
    want = hashlib.sha256(image).hexdigest()
    if on_board_sha256(board, len(image)) == want:
        return False
    # The image must not be in use while its flash is erased (mpremote does the same).
    board.exec("import vfs\ntry:\n vfs.umount('/rom')\nexcept OSError:\n pass")
    if part.device:
        _deploy_to_device(board, image, part, progress)
    else:
        _deploy_through_ioctl(board, image, part, progress)
    got = on_board_sha256(board, len(image))
    if got != want:
        raise BoardError(
            f"the ROMFS partition differs after writing: expected sha256 {want[:16]}…, "
            f"board has {str(got)[:16]}…"
        )
    return True


def _deploy_to_device(
    board: Board, image: bytes, part: Partition, progress: Callable[[int, int], None] | None
) -> None:
    blocks = -(-len(image) // part.block)
    per_call = max(1, PREPARE_MAX // part.block)
    board.exec("import vfs,binascii\nd=vfs.rom_ioctl(2,0)\na=binascii.a2b_base64")
    for first in range(0, blocks, per_call):
        last = min(blocks, first + per_call)
        board.exec(f"for b in range({first},{last}):\n r=d.ioctl(6,b)\n if r:\n  raise OSError(r)")
    for offset in range(0, len(image), CHUNK):
        data = image[offset : offset + CHUNK]
        block, within = divmod(offset, part.block)
        board.exec(f"d.writeblocks({block},a({base64.b64encode(data)!r}),{within})")
        if progress:
            progress(min(offset + CHUNK, len(image)), len(image))
    board.exec("d=None")


def _deploy_through_ioctl(
    board: Board, image: bytes, part: Partition, progress: Callable[[int, int], None] | None
) -> None:
    min_write = 1
    if part.block < part.size:
        step = max(part.block, PREPARE_MAX // part.block * part.block)
        offset = 0
        while offset < len(image):
            n = min(step, -(-(len(image) - offset) // part.block) * part.block)
            min_write = _ioctl(board, f"3,0,{offset},{n}", "erase")
            offset += n
    else:
        min_write = _ioctl(board, f"3,0,{len(image)}", "erase")
    min_write = max(1, min_write)
    chunk = -(-CHUNK // min_write) * min_write
    board.exec("import vfs,binascii\nw=vfs.rom_ioctl\na=binascii.a2b_base64")
    for offset in range(0, len(image), chunk):
        data = image[offset : offset + chunk]
        data += b"\xff" * (-len(data) % min_write)  # erased flash stays erased
        board.exec(f"r=w(4,0,{offset},a({base64.b64encode(data)!r}))\nif r:\n raise OSError(r)")
        if progress:
            progress(min(offset + chunk, len(image)), len(image))
    _ioctl(board, "5,0", "finish writing")


def _ioctl(board: Board, args: str, what: str) -> int:
    r = board.eval(f"__import__('vfs').rom_ioctl({args})")
    if not isinstance(r, int) or r < 0:
        raise BoardError(f"ROMFS {what} refused by the board: rom_ioctl({args}) -> {r!r}")
    return r
