# OTA app updates: fetch a bundle's manifest and files over HTTP, verify every SHA-256 and the
# manifest's RSA signature against the bench's trust anchor and refuse a version below the
# highest this bench ever committed (bench.trust), stage the new app in <root>/app.new streaming each
# file to flash with an await between chunks (the app keeps running), and switch at the next
# boot with the previous app kept for a trial. Import this module only when an update runs or
# at boot: it is not part of the resident set.
# Flash layout (root "/" on the bench):
#   app/        the running app (on sys.path)
#   app.new/    the staged app while downloading (resumable: complete files are kept)
#   app.old/    the previous app while the new one is on trial
#   ota.json    {"state": "staged"|"trial", "version", "prev", "report": [state, version]|null,
#                "rom": [path, size, sha256] (the app's ROMFS image, below),
#                "anchor": the anchor the bundle hands over at its commit, or null}
# On a board with a ROMFS partition (MicroPython runs .mpy files there in place, so the app's
# bytecode stays out of the GC heap) the bundle's ROMFS image is downloaded too. The trial runs
# from app/ as always: the partition keeps the previous app for a rollback. Once the new app
# is healthy, the next boot writes its image into the partition (to_rom) and drops app/.
import hashlib
import json
import os

from bench import runtime
from bench.runtime import asyncio, unload
from bench.trust import OtaError, hexlify, trust_of, verify_steps, version_key

MANIFEST_MAX = 16384
CHUNK = 512
TRIAL_MS = 300000  # a trial app must be healthy within 5 minutes
NET_MS = 15000  # a read that waits longer than this fails the download


# -- the file system, relative to a root the virtual board can place per bench ------------
def _exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def _is_dir(p):
    try:
        return os.stat(p)[0] & 0x4000 != 0
    except OSError:
        return False


def rmtree(p):
    if _is_dir(p):
        for name in os.listdir(p):
            rmtree(p + "/" + name)
        os.rmdir(p)
    elif _exists(p):
        os.remove(p)


def _makedirs(p):
    parts = p.split("/")
    cur = ""
    for i, part in enumerate(parts):
        cur = part if i == 0 else cur + "/" + part
        if cur and not _is_dir(cur):
            os.mkdir(cur)


def file_sha256(p):
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    mv = memoryview(buf)
    size = 0
    with open(p, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(mv[:n])
            size += n
    return size, hexlify(h.digest())


# -- the ROMFS partition ------------------------------------------------------------------
def rom_partition():
    # (device, size, block) of ROMFS partition 0, or None (no vfs: CPython; no ROMFS: stock
    # builds). device: the ESP32's esp32.Partition (erase ioctl(6, n), writeblocks); None
    # where the partition is bytes written through vfs.rom_ioctl 3, 4, 5 (unix, stm32).
    try:
        import vfs

        if vfs.rom_ioctl(1) > 0:
            d = vfs.rom_ioctl(2, 0)
            if hasattr(d, "ioctl"):
                b = d.ioctl(5, 0)
                return d, d.ioctl(4, 0) * b, b
            if type(d) is not int:
                n = len(d)
                b = vfs.rom_ioctl(6, 0)
                return None, n, b if 0 < b <= n else n
    except Exception:
        pass
    return None


def _ok(r, what):
    if type(r) is int and r < 0:
        raise OtaError("ROMFS %s refused: %d" % (what, r))
    return r


def write_rom(part, path, size, sha):
    # Write the image file at path into the partition (unmounted first: its flash is erased)
    # and check the partition's first size bytes against sha. Raises OtaError.
    import vfs

    dev, room, block = part
    if size > room:
        raise OtaError("ROMFS image of %d bytes, partition of %d" % (size, room))
    try:
        vfs.umount("/rom")
    except OSError:
        pass
    step = 1  # the smallest write the partition takes
    if dev is not None:
        for b in range((size + block - 1) // block):
            _ok(dev.ioctl(6, b), "erase")
    elif block < room:  # erase whole blocks, at most 32 KiB a call
        span = max(block, 32768 // block * block)
        off = 0
        while off < size:
            n = min(span, (size - off + block - 1) // block * block)
            step = _ok(vfs.rom_ioctl(3, 0, off, n), "erase")
            off += n
    else:
        step = _ok(vfs.rom_ioctl(3, 0, size), "erase")
    step = max(1, step)
    buf = bytearray(max(CHUNK, (step + CHUNK - 1) // step * step))
    mv = memoryview(buf)
    off = 0
    with open(path, "rb") as f:
        while off < size:
            n = f.readinto(buf)
            if not n:
                raise OtaError("ROMFS image shorter than its size")
            data = mv[:n] if n % step == 0 else bytes(mv[:n]) + b"\xff" * (-n % step)
            if dev is not None:
                dev.writeblocks(off // block, data, off % block)
            else:
                _ok(vfs.rom_ioctl(4, 0, off, data), "write")
            off += n
    if dev is None:
        _ok(vfs.rom_ioctl(5, 0), "finish")
    m = memoryview(vfs.rom_ioctl(2, 0))
    h = hashlib.sha256()
    for i in range(0, size, CHUNK):
        h.update(m[i : min(size, i + CHUNK)])
    if hexlify(h.digest()) != sha:
        raise OtaError("ROMFS partition differs after writing")


# -- HTTP ---------------------------------------------------------------------------------
class _Response:
    # An HTTP response's body, read a chunk at a time; each read is an await, so the app's
    # other tasks (touch, display, the link, the watchdog's feeder) run between chunks.
    def __init__(self, reader, writer, status):
        self.reader = reader
        self.writer = writer
        self.status = status

    async def read(self, n):
        return await runtime.net_wait_ms(self.reader.read(n), NET_MS)

    async def readinto(self, buf):
        # Into the caller's buffer, with no timer of its own (the caller bounds the whole
        # body): a timer per chunk would cost the heap a task each time.
        r = self.reader
        if hasattr(r, "readinto"):  # MicroPython's streams; CPython's have only read()
            return await r.readinto(buf)
        b = await r.read(len(buf))
        buf[: len(b)] = b
        return len(b)

    def close(self):
        try:
            self.writer.close()
        except Exception:  # already gone: nothing to release
            pass


async def http_get(url, opener=None):
    # A plain HTTP/1.0 GET (the gateway serves bundles on the LAN) over the asyncio streams of
    # opener(host, port) (runtime.open_connection by default). Returns a response with
    # status, read(n) and readinto(buf) (coroutines) and close(); the body is streamed, never
    # held whole.
    if not url.startswith("http://"):
        raise OtaError("only http:// URLs")
    rest = url[7:]
    slash = rest.find("/")
    hostport, path = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    host, port = hostport, 80
    if ":" in hostport:
        host, p = hostport.rsplit(":", 1)
        port = int(p)
    reader, writer = await runtime.net_wait_ms(
        (opener or runtime.open_connection)(host, port), NET_MS
    )
    try:
        writer.write(("GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (path, hostport)).encode())
        await runtime.net_wait_ms(writer.drain(), NET_MS)
        line = await runtime.net_wait_ms(reader.readline(), NET_MS)
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise OtaError("bad HTTP status line")
        status = int(parts[1])
        while True:
            h = await runtime.net_wait_ms(reader.readline(), NET_MS)
            if not h or h in (b"\r\n", b"\n"):
                break
    except Exception:
        writer.close()
        raise
    return _Response(reader, writer, status)


class Ota:
    # root: the flash root ("/" on the bench); trust: a Trust (the anchor, the version floor);
    # emit(state, version, detail): records an `ota` Event; fetch(url) -> response (a
    # coroutine; status, read(n) and readinto(buf) coroutines, close()), http_get over opener
    # by default.
    def __init__(self, root, trust, emit, fetch=None, opener=None):
        self.root = root.rstrip("/")
        self.trust = trust
        self.emit = emit
        self.fetch = fetch or (lambda url: http_get(url, opener))
        self.error = ""  # why the last run failed, for the command's ack

    def _p(self, name):
        return self.root + "/" + name

    # -- state -------------------------------------------------------------------------
    def state(self):
        try:
            with open(self._p("ota.json")) as f:
                s = json.load(f)
            if type(s) is dict:
                return s
        except (OSError, ValueError):
            pass
        return {}

    def _save(self, s):
        tmp = self._p("ota.json.tmp")
        with open(tmp, "w") as f:
            json.dump(s, f)
        try:
            os.rename(tmp, self._p("ota.json"))
        except OSError:
            os.remove(self._p("ota.json"))
            os.rename(tmp, self._p("ota.json"))

    # -- download ----------------------------------------------------------------------
    async def _get_small(self, url, limit):
        r = await self.fetch(url)
        try:
            if r.status != 200:
                raise OtaError("HTTP %d for %s" % (r.status, url[-60:]))
            out = b""
            while True:
                b = await r.read(CHUNK)
                if not b:
                    return out
                out += b
                if len(out) > limit:
                    raise OtaError("manifest larger than %d bytes" % limit)
        finally:
            r.close()

    async def _download(self, url, dest, size, sha):
        # Stream url to dest + ".part", hashing as it goes; rename only when it verifies. One
        # deadline for the whole file: 15 s, and a millisecond a byte (1 KB/s at the least).
        part = dest + ".part"
        h = hashlib.sha256()
        got = await runtime.net_wait_ms(self._fetch_to(url, part, size, h), NET_MS + size)
        if got != size or hexlify(h.digest()) != sha:
            os.remove(part)
            raise OtaError("hash mismatch: " + dest[-40:])
        os.rename(part, dest)

    async def _fetch_to(self, url, part, size, h):
        buf = bytearray(CHUNK)
        mv = memoryview(buf)
        got = 0
        r = await self.fetch(url)
        try:
            if r.status != 200:
                raise OtaError("HTTP %d for %s" % (r.status, url[-60:]))
            with open(part, "wb") as f:
                while True:
                    n = await r.readinto(buf)
                    if not n:
                        break
                    got += n
                    if got > size:
                        raise OtaError("longer than its manifest size: " + part[-45:-5])
                    h.update(mv[:n])
                    f.write(mv[:n])
                    await asyncio.sleep(0)  # a read from a stream's buffer need not yield
        finally:
            r.close()
        return got

    async def run(self, url, version, manifest_sha256):
        # The `ota` command. True when the new app is staged (the caller acks and reboots);
        # False after a `failed` event naming the reason, with the running app untouched.
        self.emit("downloading", version)
        try:
            raw = await self._get_small(url, MANIFEST_MAX)
            if hexlify(hashlib.sha256(raw).digest()) != manifest_sha256.lower():
                raise OtaError("manifest sha256 differs from the command's")
            try:
                manifest = json.loads(raw)
            except ValueError:
                raise OtaError("manifest is not JSON")
            for _ in verify_steps(manifest, self.trust.anchor()):
                await asyncio.sleep(0)
            v = manifest["version"]
            if v != version:
                raise OtaError("manifest is version %s, not %s" % (v, version))
            floor = self.trust.floor()
            if floor is not None and version_key(v) < version_key(floor):
                raise OtaError("version %s is older than %s, committed before" % (v, floor))
            rom = await self._stage(url[: url.rfind("/") + 1], manifest, raw)
        except Exception as e:  # network, flash or verification: never past this point
            self.error = str(e)[:120]
            self.emit("failed", version, self.error)
            return False
        cur = self.state()
        self._save(
            {
                "state": "staged",
                "version": version,
                "prev": cur.get("version"),
                "report": cur.get("report"),
                "rom": rom,
                "anchor": manifest.get("anchor"),
            }
        )
        self.emit("verified", version)
        return True

    async def _stage(self, base, manifest, raw):
        # Downloads the files, and the ROMFS image where the partition takes it; returns
        # [path, size, sha256] of that image, or None.
        new = self._p("app.new")
        entries = manifest["files"]
        rom = manifest.get("rom")
        part = rom_partition() if rom else None
        if part is not None and rom["size"] <= part[1]:
            entries = entries + [rom]
        else:
            rom = None
        mark = new + "/.manifest"
        digest = hexlify(hashlib.sha256(raw).digest())
        # Resume only a download of this very manifest; anything else starts over.
        try:
            with open(mark) as f:
                resume = f.read() == digest
        except OSError:
            resume = False
        if not resume:
            rmtree(new)
            os.mkdir(new)
            with open(mark, "w") as f:
                f.write(digest)
        for entry in entries:
            dest = new + "/" + entry["path"]
            if "/" in entry["path"]:
                _makedirs(dest[: dest.rfind("/")])
            if resume and _exists(dest):
                if file_sha256(dest) == (entry["size"], entry["sha256"]):
                    continue
                os.remove(dest)
            await self._download(base + entry["path"], dest, entry["size"], entry["sha256"])
        os.remove(mark)
        return rom and [rom["path"], rom["size"], rom["sha256"]]

    # -- boot, trial, rollback ---------------------------------------------------------
    def boot(self):
        # Call first thing at boot, before the app is imported and before safe mode counts
        # the boot. Returns "switched" (now on trial), "rolled_back", or "".
        s = self.state()
        st = s.get("state")
        app, new, old = self._p("app"), self._p("app.new"), self._p("app.old")
        rmtree(self._p("app.gone"))  # what a move into ROMFS left, if cut short
        if st == "staged" and _is_dir(new) and not _exists(new + "/.manifest"):
            rmtree(old)
            if _is_dir(app):
                os.rename(app, old)
            os.rename(new, app)
            s["state"] = "trial"
            self._save(s)
            return "switched"
        if st == "trial":
            if s.get("ran"):
                # Healthy at its last boot, its birth never acknowledged (no Wi-Fi, or a power
                # cut): still on trial, and this boot must be healthy again.
                del s["ran"]
                self._save(s)
                return "trial"
            # The trial app booted before and never became healthy: that boot failed.
            self.rollback(s)
            return "rolled_back"
        return ""

    def ran(self):
        # The trial app is healthy but not committed (its birth not acknowledged yet).
        s = self.state()
        if s.get("state") == "trial" and not s.get("ran"):
            s["ran"] = 1
            self._save(s)

    def rollback(self, s=None):
        # Put the previous app back (the caller reboots into it).
        s = s or self.state()
        app, old = self._p("app"), self._p("app.old")
        rmtree(app)  # with no app.old (a first OTA) the app provisioned at the root comes back
        if _is_dir(old):
            os.rename(old, app)
        self._save(
            {"state": "", "version": s.get("prev"), "report": ["rolled_back", s.get("version")]}
        )

    def on_trial(self):
        return self.state().get("state") == "trial"

    def healthy(self):
        # The trial app became healthy (core: 60 s up, session, birth acknowledged). True when
        # its ROMFS image waits for the next boot (the caller reboots soon, to free the heap).
        s = self.state()
        if s.get("state") != "trial":
            return False
        v = s.get("version")
        # The floor and the anchor first: a power cut before ota.json is saved rolls the app
        # back, which costs a retry, where the other order would leave the floor below it.
        self.error = self.trust.commit(v, s.get("anchor"))
        rmtree(self._p("app.old"))
        self._save({"state": "", "version": v, "report": ["applied", v], "rom": s.get("rom")})
        return bool(s.get("rom"))

    def to_rom(self, packages):
        # At boot, before anything is imported from /rom (a module imported from there keeps
        # its names in the flash rewritten here): write the committed app's ROMFS image into
        # the partition, drop app/ and any copy of the packages at the root, which would come
        # before /rom on sys.path, and mount the new image. Two tries; the app keeps running
        # from app/ if both fail. True when the app now lives in ROMFS.
        s = self.state()
        rom = s.get("rom")
        if not rom or s.get("state"):
            return False
        tries = s.get("rom_tries", 0)
        if tries >= 2:  # the app stays in app/
            s["rom"] = None
            del s["rom_tries"]
            self._save(s)
            return False
        s["rom_tries"] = tries + 1
        self._save(s)
        part = rom_partition()
        if part is None:
            raise OtaError("no ROMFS partition")
        app = self._p("app")
        image = app + "/" + rom[0]
        if file_sha256(image) != (rom[1], rom[2]):
            raise OtaError("ROMFS image in app/ damaged")
        write_rom(part, image, rom[1], rom[2])
        # Out of sys.path's way by renames (each atomic), so that a power cut cannot leave
        # half an app to shadow /rom; then forgotten, then deleted.
        gone = self._p("app.gone")
        rmtree(gone)
        os.rename(app, gone)
        for name in packages:
            if _exists(self._p(name)):
                os.rename(self._p(name), gone + "/" + name + ".root")
        s["rom"] = None
        del s["rom_tries"]
        self._save(s)
        rmtree(gone)
        import sys
        import vfs

        vfs.mount(vfs.VfsRom(vfs.rom_ioctl(2, 0)), "/rom")
        for d in ("/rom", "/rom/lib"):
            if d not in sys.path:
                sys.path.append(d)
        return True

    def report(self):
        # (state, version) to record as an `ota` event after boot, or None; then reported().
        r = self.state().get("report")
        return (r[0], r[1]) if r else None

    def reported(self):
        s = self.state()
        if s.get("report"):
            s["report"] = None
            self._save(s)


# -- the app's steps outside a download (each imports this module for the step: runtime.job)
def recorder(app):
    # Ota's emit: every step becomes an `ota` event; a failure carries its reason.
    def emit(state, version, detail=None):
        d = {"state": state, "version": version or ""}
        if detail:
            d["detail"] = detail
        app.record_event("ota", d)

    return emit


async def command(app, args):
    # The `ota` command's work, as its own task (bench.commands): -> (ok, detail).
    try:
        opener = getattr(app.hw, "open_connection", None)
        o = Ota(app.root, trust_of(app), recorder(app), opener=opener)
        ok = await o.run(args["url"], args["version"], args["sha256"])
        return ok, o.error
    finally:
        unload("trust")  # imported with this module, not part of the resident set


def step(app, what):
    # "healthy": the trial app became healthy; "rollback": it did not in time; "report": the
    # boot records what the last OTA came to. Every step but a rollback reports.
    # True when the bench should reboot to put the app in ROMFS.
    o = Ota(app.root, trust_of(app) if what == "healthy" else None, recorder(app))
    rom = False
    if what == "healthy":
        rom = o.healthy()
        if o.error:
            app.fault("ota_trust", o.error)
    elif what == "rollback":
        o.rollback()
    elif what == "ran":
        o.ran()
        return False
    if what != "rollback":
        r = o.report()
        if r is not None:
            o.emit(r[0], r[1])
            o.reported()
    unload("trust")  # imported with this module, not part of the resident set
    return rom
