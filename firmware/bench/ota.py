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
# is healthy, the next boot writes its image into the partition (to_rom, with bench.romfs) and
# drops app/. Files come over HTTP with bench.http, imported for a download only.
import hashlib
import json
import os

from bench import runtime, store
from bench.runtime import asyncio, unload
from bench.trust import OtaError, hexlify, trust_of, verify_steps, version_key

MANIFEST_MAX = 16384
CHUNK = 512
TRIAL_MS = 300000  # a trial app must be healthy within 5 minutes
TRIAL_WIFI_MS = 600000  # and its birth acknowledged within 10 minutes with Wi-Fi


# -- the file system, relative to a root the virtual board can place per bench ------------
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
    elif store.exists(p):
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


# -- the ROMFS partition (bench.romfs writes it, at boot) ---------------------------------
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


# -- HTTP: bench.http, imported for a download only ---------------------------------------
def _http_get(url, opener):
    from bench.http import http_get

    return http_get(url, opener)


class Ota:
    # root: the flash root ("/" on the bench); trust: a Trust (the anchor, the version floor);
    # emit(state, version, detail): records an `ota` Event; fetch(url) -> response (a
    # coroutine; status, read(n) and readinto(buf) coroutines, close()), http_get over opener
    # by default.
    def __init__(self, root, trust, emit, fetch=None, opener=None):
        self.root = root.rstrip("/")
        self.trust = trust
        self.emit = emit
        self.fetch = fetch or (lambda url: _http_get(url, opener))
        self.error = ""  # why the last run failed, for the command's ack

    def _p(self, name):
        return self.root + "/" + name

    # -- state -------------------------------------------------------------------------
    def state(self):
        return store.load(self._p("ota.json"), {})

    def _save(self, s):
        store.save(self._p("ota.json"), s)

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
        from bench.http import NET_MS

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
            if resume and store.exists(dest):
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
        if st == "staged" and _is_dir(new) and not store.exists(new + "/.manifest"):
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
        from bench.romfs import write_rom

        write_rom(part, image, rom[1], rom[2], OtaError)
        # Out of sys.path's way by renames (each atomic), so that a power cut cannot leave
        # half an app to shadow /rom; then forgotten, then deleted.
        gone = self._p("app.gone")
        rmtree(gone)
        os.rename(app, gone)
        for name in packages:
            if store.exists(self._p(name)):
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
        for name in ("trust", "http"):  # imported with this module: not resident
            unload(name)


def trial(app, ms):
    # An app on trial (docs/protocol.md), called by the supervisor when the trial can move
    # (app.trial: 1 on trial, 2 with its healthy run noted here; 0 once it ends): committed
    # once healthy with its birth Status acknowledged; rolled back when not healthy in time,
    # or after TRIAL_WIFI_MS of Wi-Fi without an acknowledged birth (ms: this boot's time with
    # Wi-Fi); without Wi-Fi it stays on trial. -> True to reboot.
    acked = app.link is not None and app.link.birth_acked
    if app.healthy and acked:
        app.trial = 0
        return step(app, "healthy")  # True: the next boot puts it in ROMFS
    if app.healthy and app.trial == 1:
        app.trial = 2
        step(app, "ran")  # a reboot now keeps it on trial
    if (not app.healthy and app.uptime_ms() >= TRIAL_MS) or ms >= TRIAL_WIFI_MS:
        app.trial = 0
        step(app, "rollback")
        return True
    return False


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
