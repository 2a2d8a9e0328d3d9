# mypy: ignore-errors
# (MicroPython code, run inside the VM; not typed for CPython)
# A stand-in for a ROMFS build of MicroPython (run by mpboard.mjs --rom DIR after hostvfs.py).
# The npm WebAssembly port is built without ROMFS: it has no vfs.rom_ioctl and no VfsRom. A
# board built with ROMFS (MicroPython 1.25 and later) has a read-only partition that
# `vfs.rom_ioctl` erases and writes, and mounts a valid image found there at /rom at boot,
# with /rom and /rom/lib on sys.path. This file gives the VM the same outside: partition 0 is
# the host file DIR/partition.bin (written as flash is: prepare erases to 0xFF), and at boot a
# valid image is mounted at /rom by a read-only VFS that parses it. Unlike the real VfsRom it
# serves files from a copy in RAM, so heap figures taken with it say nothing about ROMFS.
# Two kinds of build, as MicroPython has them (the file DIR/kind names one, "buffer" when
# absent): "buffer" (unix, stm32) answers vfs.rom_ioctl(2, 0) with the partition's bytes and
# erases and writes through rom_ioctl 3, 4 and 5; "esp32" (the ESP32 port) answers it with the
# partition as a block device, an esp32.Partition, whose bytes are readable through the buffer
# protocol and which is erased with ioctl(6, block) and written with writeblocks(block, buf,
# offset), while rom_ioctl 3 to 6 answer -EINVAL.
# image_tree() also runs on CPython: the tests read the partition back with it.
import sys

try:
    import vfs as _vfs_module
except ImportError:  # CPython
    _vfs_module = None

_HEADER = b"\xd2\xcd\x31"
_ENODEV = 19
_EINVAL = 22
_BLOCK = 4096
_MIN_WRITE = 4


def _uint(buf, i):
    v = 0
    while True:
        b = buf[i]
        i += 1
        v = (v << 7) | (b & 0x7F)
        if not b & 0x80:
            return v, i


def _parse(buf, i, end):
    # Records (kind, length, payload) from i to end -> {name: bytes or {...}}
    out = {}
    while i < end:
        kind, i = _uint(buf, i)
        n, i = _uint(buf, i)
        stop = i + n
        if kind in (4, 5):  # directory, file: a name then their records
            ln, j = _uint(buf, i)
            name = bytes(buf[j : j + ln]).decode()
            j += ln
            if kind == 4:
                out[name] = _parse(buf, j, stop)
            else:
                k, j = _uint(buf, j)
                m, j = _uint(buf, j)
                if k != 2:  # only verbatim data: what the provisioning step writes
                    raise OSError(_EINVAL)
                out[name] = bytes(buf[j : j + m])
        i = stop
    return out


def image_tree(buf):
    # The files of a ROMFS image, or None when buf does not start with one.
    if bytes(buf[:3]) != _HEADER:
        return None
    n, i = _uint(buf, 3)
    return _parse(buf, i, i + n)


class _RomVfs:
    # Read-only VFS over a parsed image: what VfsRom offers for imports and reading.
    def __init__(self, tree):
        self._tree = tree

    def _find(self, path):
        node = self._tree
        for part in path.strip("/").split("/"):
            if not part:
                continue
            if not isinstance(node, dict) or part not in node:
                raise OSError(2)
            node = node[part]
        return node

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def stat(self, path):
        node = self._find(path)
        if isinstance(node, dict):
            return (0x4000, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        return (0x8000, 0, 0, 0, 0, 0, len(node), 0, 0, 0)

    def ilistdir(self, path):
        node = self._find(path)
        if not isinstance(node, dict):
            raise OSError(20)
        return iter(
            [(k, 0x4000 if isinstance(v, dict) else 0x8000, 0, len(v)) for k, v in node.items()]
        )

    def open(self, path, mode):
        if "w" in mode or "a" in mode or "+" in mode:
            raise OSError(30)  # EROFS
        node = self._find(path)
        if isinstance(node, dict):
            raise OSError(21)
        import io

        return io.BytesIO(node) if "b" in mode else io.StringIO(node.decode())

    def statvfs(self, path):
        return (_BLOCK, _BLOCK, 0, 0, 0, 0, 0, 0, 0, 255)

    def chdir(self, path):
        self._find(path)

    def getcwd(self):
        return "/"


class _Partition:
    def __init__(self, host_dir):
        self._fs = _vfs_module.VfsPosix()
        self._path = host_dir.rstrip("/") + "/partition.bin"

    def read(self):
        with self._fs.open(self._path, "rb") as f:
            return f.read()

    def write(self, offset, data):
        buf = bytearray(self.read())
        if offset < 0 or offset + len(data) > len(buf):
            return -_EINVAL
        buf[offset : offset + len(data)] = data
        with self._fs.open(self._path, "wb") as f:
            f.write(buf)
        return 0


class _Esp32Partition(bytearray):
    # esp32.Partition of the "romfs" partition: a block device whose bytes can be read in
    # place (memoryview), as flash mapped into memory is. Writes go to the file and to the
    # bytes seen through the buffer. _partition: the _Partition behind it.
    _partition = None

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return len(self) // _BLOCK
        if op == 5:  # block size
            return _BLOCK
        if op == 6:  # erase a block
            return self._put(arg * _BLOCK, b"\xff" * _BLOCK)
        return 0

    def writeblocks(self, block, buf, offset=0):
        if self._put(block * _BLOCK + offset, bytes(buf)):
            raise OSError(_EINVAL)

    def readblocks(self, block, buf, offset=0):
        start = block * _BLOCK + offset
        buf[:] = self[start : start + len(buf)]

    def _put(self, offset, data):
        r = self._partition.write(offset, data)
        if not r:
            self[offset : offset + len(data)] = data
        return r


class _VfsWithRom:
    # The vfs module with rom_ioctl: `import vfs` finds this in sys.modules first.
    def __init__(self, partition, kind):
        self._partition = partition
        self._device = None
        if kind == "esp32":
            self._device = _Esp32Partition(partition.read())
            self._device._partition = partition

    def __getattr__(self, name):
        return getattr(_vfs_module, name)

    def VfsRom(self, buf):  # noqa: N802 (MicroPython's name)
        tree = image_tree(memoryview(buf))
        if tree is None:
            raise OSError(_ENODEV)
        return _RomVfs(tree)

    def rom_ioctl(self, op, *args):
        if op == 1:  # number of partitions
            return 1
        if not args or args[0] != 0:
            return -_ENODEV if self._device is None else -_EINVAL
        p = self._partition
        if self._device is not None:
            return self._device if op == 2 else -_EINVAL
        if op == 2:  # the partition's bytes
            return memoryview(p.read())
        if op == 3:  # prepare to write: erase (offset, length) or (length) from 0
            offset, length = (args[1], args[2]) if len(args) == 3 else (0, args[1])
            r = p.write(offset, b"\xff" * length)
            return r if r < 0 else _MIN_WRITE
        if op == 4:  # write (offset, data)
            return p.write(args[1], bytes(args[2]))
        if op == 5:  # writing done
            return 0
        if op == 6:  # erase block size
            return _BLOCK
        return -_EINVAL


def _install_rom(host_dir):
    partition = _Partition(host_dir)
    try:
        with partition._fs.open(host_dir.rstrip("/") + "/kind", "r") as f:
            kind = f.read().strip()
    except OSError:
        kind = "buffer"
    sys.modules["vfs"] = _VfsWithRom(partition, kind)
    tree = image_tree(partition.read())
    if tree is not None:
        _vfs_module.mount(_RomVfs(tree), "/rom")
        sys.path[2:2] = ["/rom", "/rom/lib"]
