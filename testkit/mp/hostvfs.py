# mypy: ignore-errors
# (MicroPython code, run inside the VM; not typed for CPython)
# Mount the VM's file system at "/" with a board's errno numbers (run by mpboard.mjs and
# vmrun.mjs before anything else). The WebAssembly port's VfsPosix raises OSError with the
# Emscripten (WASI) numbers, e.g. 44 for a missing file, while its own errno module (and an
# ESP32) says ENOENT is 2; mpremote and firmware code that compare e.errno with errno.ENOENT
# would misread every error. This VFS object passes each call on to VfsPosix and renumbers.
# It prefixes the root itself: VfsPosix(root) builds both paths of rename() in one shared
# buffer, so a rooted VfsPosix renames the new name onto itself (ENOENT).
import vfs


class _HostVfs:
    _ERRNO = {
        63: 1,
        44: 2,
        29: 5,
        8: 9,
        2: 13,
        10: 16,
        20: 17,
        75: 18,
        43: 19,
        54: 20,
        31: 21,
        28: 22,
        51: 28,
        69: 30,
        37: 36,
        55: 39,
    }

    def __init__(self, root):
        self._root = root.rstrip("/")
        self._fs = vfs.VfsPosix()

    def _call(self, name, *args):
        root = self._root
        args = [root + a if a[:1] == "/" else a for a in args]
        try:
            return getattr(self._fs, name)(*args)
        except OSError as e:
            code = e.errno
            raise OSError(self._ERRNO.get(code, code)) from None

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def ilistdir(self, path):
        # (name, type, inode, size) as littlefs on the ESP32 gives, so `mpremote ls` shows sizes
        entries = []
        base = path.rstrip("/")
        absolute = path[:1] == "/"
        for entry in self._call("ilistdir", path):
            size = 0
            if entry[1] == 0x8000:
                child = base + "/" + entry[0] if (base or absolute) else entry[0]
                size = self._call("stat", child)[6]
            entries.append((entry[0], entry[1], entry[2], size))
        return iter(entries)

    def chdir(self, path):
        return self._call("chdir", path)

    def getcwd(self):
        cwd = self._call("getcwd")
        if self._root and cwd.startswith(self._root):
            cwd = cwd[len(self._root) :]
        return cwd or "/"

    def mkdir(self, path):
        return self._call("mkdir", path)

    def remove(self, path):
        return self._call("remove", path)

    def rename(self, old, new):
        return self._call("rename", old, new)

    def rmdir(self, path):
        return self._call("rmdir", path)

    def stat(self, path):
        return self._call("stat", path)

    def statvfs(self, path):
        return self._call("statvfs", path)

    def open(self, path, mode):
        return self._call("open", path, mode)


def _mount_root(root):
    import os

    os.umount("/")
    vfs.mount(_HostVfs(root), "/")
    os.chdir("/")
