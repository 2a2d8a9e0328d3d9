// A host-folder file system for the MicroPython WebAssembly port's Emscripten FS.
//
// The npm build ships only MEMFS, so files written in the VM vanish with the process.
// HOSTFS maps a folder of the host into the VM (like Emscripten's NODEFS): every file
// operation goes straight to the host folder with node's synchronous fs calls, so the
// board's files survive soft resets and the host can inspect them.
import fs from "node:fs";
import path from "node:path";

// Emscripten's errno numbers (its own table, not Linux's).
const ERRNO = {
  EPERM: 63, ENOENT: 44, EIO: 29, EBADF: 8, EACCES: 2, EBUSY: 10, EEXIST: 20, EXDEV: 75,
  ENOTDIR: 54, EISDIR: 31, EINVAL: 28, ENOSPC: 51, EROFS: 69, ENOTEMPTY: 55,
  ENAMETOOLONG: 37, ELOOP: 32, EMFILE: 33,
};
const O_ACCMODE = 3;
const O_RDONLY = 0;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;

export function createHostFS(FS) {
  const toErrno = (e) => {
    if (e instanceof FS.ErrnoError) return e;
    return new FS.ErrnoError(ERRNO[e.code] ?? ERRNO.EIO);
  };
  const guard = (fn) => (...args) => {
    try {
      return fn(...args);
    } catch (e) {
      throw toErrno(e);
    }
  };
  const realPath = (node) => {
    const parts = [];
    while (node.parent !== node) {
      parts.push(node.name);
      node = node.parent;
    }
    parts.push(node.mount.opts.root);
    parts.reverse();
    return path.join(...parts);
  };

  const HOSTFS = {
    mount(mount) {
      const st = fs.statSync(mount.opts.root);
      if (!st.isDirectory()) throw new FS.ErrnoError(ERRNO.ENOTDIR);
      return HOSTFS.createNode(null, "/", st.mode, 0);
    },
    createNode(parent, name, mode, dev) {
      const node = FS.createNode(parent, name, mode, dev);
      node.node_ops = HOSTFS.node_ops;
      node.stream_ops = HOSTFS.stream_ops;
      return node;
    },
    node_ops: {
      getattr: guard((node) => {
        const st = fs.lstatSync(realPath(node));
        return {
          dev: st.dev, ino: st.ino, mode: st.mode, nlink: st.nlink, uid: st.uid, gid: st.gid,
          rdev: st.rdev, size: st.size, atime: st.atime, mtime: st.mtime, ctime: st.ctime,
          blksize: 4096, blocks: Math.ceil(st.size / 4096),
        };
      }),
      setattr: guard((node, attr) => {
        const p = realPath(node);
        if (attr.mode !== undefined) {
          fs.chmodSync(p, attr.mode);
          node.mode = attr.mode;
        }
        if (attr.size !== undefined) fs.truncateSync(p, attr.size);
        if (attr.atime !== undefined || attr.mtime !== undefined) {
          const st = fs.statSync(p);
          fs.utimesSync(p, new Date(attr.atime ?? st.atime), new Date(attr.mtime ?? st.mtime));
        }
      }),
      lookup: guard((parent, name) => {
        const st = fs.lstatSync(path.join(realPath(parent), name));
        return HOSTFS.createNode(parent, name, st.mode, 0);
      }),
      mknod: guard((parent, name, mode, dev) => {
        const p = path.join(realPath(parent), name);
        if ((mode & S_IFMT) === S_IFDIR) fs.mkdirSync(p, { mode: mode & 0o777 });
        else fs.writeFileSync(p, "", { mode: mode & 0o777, flag: "wx" });
        return HOSTFS.createNode(parent, name, mode, dev);
      }),
      rename: guard((oldNode, newDir, newName) => {
        fs.renameSync(realPath(oldNode), path.join(realPath(newDir), newName));
        oldNode.name = newName;
      }),
      unlink: guard((parent, name) => fs.unlinkSync(path.join(realPath(parent), name))),
      rmdir: guard((parent, name) => fs.rmdirSync(path.join(realPath(parent), name))),
      readdir: guard((node) => [".", "..", ...fs.readdirSync(realPath(node))]),
      symlink: guard((parent, newName, oldPath) => {
        fs.symlinkSync(oldPath, path.join(realPath(parent), newName));
      }),
      readlink: guard((node) => fs.readlinkSync(realPath(node))),
    },
    stream_ops: {
      open: guard((stream) => {
        if (FS.isFile(stream.node.mode)) {
          const readOnly = (stream.flags & O_ACCMODE) === O_RDONLY;
          stream.hostFd = fs.openSync(realPath(stream.node), readOnly ? "r" : "r+");
        }
      }),
      close: guard((stream) => {
        if (stream.hostFd !== undefined) fs.closeSync(stream.hostFd);
      }),
      read: guard((stream, buffer, offset, length, position) => {
        if (length === 0) return 0;
        return fs.readSync(stream.hostFd, buffer, offset, length, position);
      }),
      write: guard((stream, buffer, offset, length, position) => {
        return fs.writeSync(stream.hostFd, buffer, offset, length, position);
      }),
      llseek: guard((stream, offset, whence) => {
        let position = offset;
        if (whence === 1) position += stream.position;
        else if (whence === 2 && FS.isFile(stream.node.mode)) {
          position += fs.fstatSync(stream.hostFd).size;
        }
        if (position < 0) throw new FS.ErrnoError(ERRNO.EINVAL);
        return position;
      }),
    },
  };
  return HOSTFS;
}

// Mount host folder `hostDir` at `vmDir` (created if missing) in the VM's Emscripten FS.
export function mountHostDir(FS, hostDir, vmDir) {
  fs.mkdirSync(hostDir, { recursive: true });
  try {
    FS.mkdirTree(vmDir);
  } catch {
    // exists already
  }
  FS.mount(createHostFS(FS), { root: path.resolve(hostDir) }, vmDir);
}
