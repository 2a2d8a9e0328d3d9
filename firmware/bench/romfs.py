# Writing the app's ROMFS image into the ROMFS partition (bench.ota.rom_partition finds it):
# once an updated app is committed, the next boot writes its image there (Ota.to_rom).
# Imported by bench.ota for that boot step only, before anything runs from /rom.
import hashlib

from bench.runtime import const
from bench.trust import hexlify

_CHUNK = const(512)  # bytes written and hashed a step, as bench.ota's CHUNK


def _ok(r, what, error):
    if type(r) is int and r < 0:
        raise error("ROMFS %s refused: %d" % (what, r))
    return r


def write_rom(part, path, size, sha, error):
    # Write the image file at path into the partition (unmounted first: its flash is erased)
    # and check the partition's first size bytes against sha. Raises `error` (the caller's
    # OtaError: bench.trust may have been unloaded and imported again since the caller's).
    import vfs

    dev, room, block = part
    if size > room:
        raise error("ROMFS image of %d bytes, partition of %d" % (size, room))
    try:
        vfs.umount("/rom")
    except OSError:
        pass
    step = 1  # the smallest write the partition takes
    if dev is not None:
        for b in range((size + block - 1) // block):
            _ok(dev.ioctl(6, b), "erase", error)
    elif block < room:  # erase whole blocks, at most 32 KiB a call
        span = max(block, 32768 // block * block)
        off = 0
        while off < size:
            n = min(span, (size - off + block - 1) // block * block)
            step = _ok(vfs.rom_ioctl(3, 0, off, n), "erase", error)
            off += n
    else:
        step = _ok(vfs.rom_ioctl(3, 0, size), "erase", error)
    step = max(1, step)
    buf = bytearray(max(_CHUNK, (step + _CHUNK - 1) // step * step))
    mv = memoryview(buf)
    off = 0
    with open(path, "rb") as f:
        while off < size:
            n = f.readinto(buf)
            if not n:
                raise error("ROMFS image shorter than its size")
            data = mv[:n] if n % step == 0 else bytes(mv[:n]) + b"\xff" * (-n % step)
            if dev is not None:
                dev.writeblocks(off // block, data, off % block)
            else:
                _ok(vfs.rom_ioctl(4, 0, off, data), "write", error)
            off += n
    if dev is None:
        _ok(vfs.rom_ioctl(5, 0), "finish", error)
    m = memoryview(vfs.rom_ioctl(2, 0))
    h = hashlib.sha256()
    for i in range(0, size, _CHUNK):
        h.update(m[i : min(size, i + _CHUNK)])
    if hexlify(h.digest()) != sha:
        raise error("ROMFS partition differs after writing")
