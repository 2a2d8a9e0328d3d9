# OTA: HMAC-SHA256 written with hashlib, manifest verification, staging, switch, rollback.
# Runs under pytest (CPython) and inside the MicroPython VM.
import hashlib
import json
import os
import sys
import unittest

if sys.implementation.name != "micropython":
    import pathlib

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3] / "firmware"))

import main  # the boot's check for an image waiting to be written
from bench import ota

KEY = b"deployment-ota-key-for-tests"


def sha(b):
    return ota.hexlify(hashlib.sha256(b).digest())


def entry(p, data):
    return {"path": p, "size": len(data), "sha256": sha(data)}


def make_bundle(files, version="1.1.0", key=KEY, rom=None):
    # The manifest's bytes as the host's bundle builder makes them; rom: the ROMFS image.
    m = {"version": version, "files": [entry(p, files[p]) for p in sorted(files)]}
    if rom is not None:
        m["rom"] = entry("app.rom", rom)
    m["hmac"] = ota.hexlify(ota.hmac_sha256(key, ota.canonical(m).encode()))
    return json.dumps(m).encode()


class Response:
    def __init__(self, data, status=200, cut=None):
        self.data = data
        self.pos = 0
        self.status = status
        self.cut = cut  # raise after this many bytes: a dropped connection

    def readinto(self, buf):
        if self.cut is not None and self.pos >= self.cut:
            raise OSError(104, "ECONNRESET")
        n = min(len(buf), len(self.data) - self.pos)
        buf[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n

    def read(self, n):
        b = self.data[self.pos : self.pos + n]
        self.pos += len(b)
        return b

    def close(self):
        pass


class Server:
    # A static file server in memory: url -> bytes, counting requests.
    def __init__(self, base="http://gw:8070/b/"):
        self.base = base
        self.files = {}
        self.gets = []
        self.cut = {}

    def fetch(self, url):
        self.gets.append(url)
        if url not in self.files:
            return Response(b"", 404)
        return Response(self.files[url], cut=self.cut.pop(url, None))


def _tmpdir():
    if sys.implementation.name != "micropython":
        import tempfile

        return tempfile.mkdtemp()
    n = 0
    while True:
        d = "ota" + str(n)  # the VM runner cannot rename inside /tmp
        try:
            os.mkdir(d)
            return d
        except OSError:
            n += 1


def _read(p):
    with open(p, "rb") as f:
        return f.read()


def _restore(name, module):
    if module is None:
        del sys.modules[name]
    else:
        sys.modules[name] = module


class Partition(bytearray):
    # esp32.Partition of a ROMFS build: erased with ioctl(6, block), written with
    # writeblocks(block, buf, offset), its bytes readable in place. refuse: erases fail.
    erased = None
    refuse = False

    def ioctl(self, op, arg):
        if op == 6:
            if self.refuse:
                return -5
            self.erased.append(arg)
            self[arg * 4096 : (arg + 1) * 4096] = b"\xff" * 4096
        return 0

    def writeblocks(self, block, buf, offset=0):
        start = block * 4096 + offset
        self[start : start + len(buf)] = buf


def _partition(size, refuse=False):
    p = Partition(size)
    p.erased = []
    p.refuse = refuse
    return p


class Hmac(unittest.TestCase):
    def test_rfc4231_vectors(self):
        self.assertEqual(
            ota.hexlify(ota.hmac_sha256(b"\x0b" * 20, b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        )
        self.assertEqual(
            ota.hexlify(ota.hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        )
        long_key = ota.hmac_sha256(
            b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First"
        )
        self.assertEqual(
            ota.hexlify(long_key),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        )

    def test_matches_cpython_hmac_for_many_key_and_message_lengths(self):
        try:
            import hmac
        except ImportError:
            return  # MicroPython has no hmac to compare with; the RFC vectors cover it
        for klen in (0, 1, 31, 63, 64, 65, 200):
            for mlen in (0, 1, 55, 56, 64, 1000):
                key = bytes((i * 7 + klen) & 0xFF for i in range(klen))
                msg = bytes((i * 13) & 0xFF for i in range(mlen))
                self.assertEqual(
                    ota.hmac_sha256(key, msg), hmac.new(key, msg, hashlib.sha256).digest()
                )


class Manifest(unittest.TestCase):
    def manifest(self, **change):
        m = json.loads(make_bundle({"bench/app.mpy": b"app", "main.py": b"import app\n"}))
        for k in change:
            m[k] = change[k]
        return m

    def test_good_manifest_verifies(self):
        m = ota.verify_manifest(self.manifest(), KEY)
        self.assertEqual(m["version"], "1.1.0")

    def test_canonical_bytes_are_sorted_compact_json(self):
        m = {"version": "1.0", "files": [{"size": 3, "path": "a.mpy", "sha256": "ab"}]}
        self.assertEqual(
            ota.canonical(m), '{"files":[{"path":"a.mpy","sha256":"ab","size":3}],"version":"1.0"}'
        )
        if sys.implementation.name != "micropython":
            self.assertEqual(ota.canonical(m), json.dumps(m, sort_keys=True, separators=(",", ":")))

    def test_wrong_key_is_refused(self):
        self.assertRaises(ota.OtaError, ota.verify_manifest, self.manifest(), b"other key")

    def test_any_tampered_field_is_refused(self):
        m = self.manifest()
        m["files"][0]["size"] += 1
        self.assertRaises(ota.OtaError, ota.verify_manifest, m, KEY)
        m = self.manifest(version="9.9.9")
        self.assertRaises(ota.OtaError, ota.verify_manifest, m, KEY)
        m = self.manifest()
        m["files"][1]["sha256"] = sha(b"evil")
        self.assertRaises(ota.OtaError, ota.verify_manifest, m, KEY)
        m = self.manifest(extra="added")
        self.assertRaises(ota.OtaError, ota.verify_manifest, m, KEY)

    def test_paths_that_escape_the_app_are_refused(self):
        for bad in ("../boot.py", "/boot.py", "a//b", "bench/", "x.part", "a b"):
            self.assertFalse(ota.path_ok(bad), bad)
        self.assertTrue(ota.path_ok("bench/app.mpy"))

    def test_a_rom_entry_is_checked_like_a_file_and_covered_by_the_hmac(self):
        files = {"bench/app.mpy": b"app", "main.py": b"import app\n"}
        m = json.loads(make_bundle(files, rom=b"image"))
        self.assertEqual(ota.verify_manifest(m, KEY)["rom"]["size"], 5)
        m["rom"]["sha256"] = sha(b"other image")
        self.assertRaises(ota.OtaError, ota.verify_manifest, m, KEY)  # HMAC
        bad = (
            {"path": "main.py", "size": 5, "sha256": sha(b"image")},  # a file's path
            {"path": "../app.rom", "size": 5, "sha256": sha(b"image")},
            {"path": "app.rom", "size": -1, "sha256": sha(b"image")},
            {"path": "app.rom", "size": 5, "sha256": "xyz"},
            "app.rom",
            None,
        )
        for rom in bad:
            m = json.loads(make_bundle(files))
            m["rom"] = rom
            m["hmac"] = ota.hexlify(ota.hmac_sha256(KEY, ota.canonical(m).encode()))
            with self.assertRaises(ota.OtaError, msg=repr(rom)) as e:
                ota.verify_manifest(m, KEY)
            self.assertIn("manifest", str(e.exception))

    def test_missing_hmac_is_refused(self):
        m = self.manifest()
        del m["hmac"]
        self.assertRaises(ota.OtaError, ota.verify_manifest, m, KEY)


class Update(unittest.TestCase):
    OLD = {"bench/app.mpy": b"old app", "main.py": b"old main"}
    NEW = {
        "bench/app.mpy": b"new app " * 300,
        "main.py": b"new main",
        "drivers/x.mpy": b"\x00\x01" * 700,
    }

    def setUp(self):
        self.root = _tmpdir()
        os.mkdir(self.root + "/app")
        os.mkdir(self.root + "/app/bench")
        for p in self.OLD:
            with open(self.root + "/app/" + p, "wb") as f:
                f.write(self.OLD[p])
        self.server = Server()
        self.events = []
        self.ota = ota.Ota(self.root, KEY, lambda s, v: self.events.append(s), self.server.fetch)

    def publish(self, files, version="1.1.0", key=KEY):
        man = make_bundle(files, version, key)
        self.server.files[self.server.base + "manifest.json"] = man
        for p in files:
            self.server.files[self.server.base + p] = files[p]
        return man

    def run_ota(self, man, version="1.1.0"):
        return self.ota.run(self.server.base + "manifest.json", version, sha(man))

    def app(self, p):
        return _read(self.root + "/app/" + p)

    def test_good_bundle_stages_switches_at_boot_and_is_applied_when_healthy(self):
        man = self.publish(self.NEW)
        self.assertTrue(self.run_ota(man), self.ota.error)
        self.assertEqual(self.events, ["downloading", "verified"])
        self.assertEqual(self.app("main.py"), b"old main")  # nothing changes before reboot
        self.assertEqual(self.ota.boot(), "switched")
        self.assertTrue(self.ota.on_trial())
        for p in self.NEW:
            self.assertEqual(self.app(p), self.NEW[p])
        self.ota.healthy()
        self.assertEqual(self.ota.report(), ("applied", "1.1.0"))
        self.ota.reported()
        self.assertIsNone(self.ota.report())
        self.assertEqual(self.ota.boot(), "")
        self.assertEqual(self.app("main.py"), b"new main")

    def test_trial_app_whose_first_boot_fails_is_rolled_back(self):
        self.assertTrue(self.run_ota(self.publish(self.NEW)), self.ota.error)
        self.assertEqual(self.ota.boot(), "switched")
        # ... the new app crashes at import; the next boot finds it still on trial
        self.assertEqual(self.ota.boot(), "rolled_back")
        self.assertEqual(self.app("main.py"), b"old main")
        self.assertEqual(self.ota.report(), ("rolled_back", "1.1.0"))
        self.assertFalse(self.ota.on_trial())

    def test_tampered_file_changes_nothing(self):
        man = self.publish(self.NEW)
        self.server.files[self.server.base + "main.py"] = b"evil main"
        self.assertFalse(self.run_ota(man))
        self.assertEqual(self.events, ["downloading", "failed"])
        self.assertEqual(self.ota.boot(), "")
        self.assertEqual(self.app("main.py"), b"old main")

    def test_tampered_manifest_or_wrong_key_changes_nothing(self):
        man = self.publish(self.NEW, key=b"not the deployment key")
        self.assertFalse(self.run_ota(man))
        man = self.publish(self.NEW)
        self.assertFalse(self.ota.run(self.server.base + "manifest.json", "1.1.0", sha(b"x")))
        self.assertEqual(self.events.count("failed"), 2)
        self.assertEqual(self.ota.boot(), "")
        self.assertEqual(self.app("main.py"), b"old main")

    def test_interrupted_download_resumes_with_the_files_already_complete(self):
        man = self.publish(self.NEW)
        self.server.cut[self.server.base + "main.py"] = 4  # bench/app.mpy, drivers/x.mpy first
        self.assertFalse(self.run_ota(man))
        self.assertEqual(self.ota.boot(), "")
        self.server.gets = []
        self.assertTrue(self.run_ota(man), self.ota.error)
        fetched = [u[len(self.server.base) :] for u in self.server.gets]
        self.assertEqual(fetched, ["manifest.json", "main.py"])
        self.assertEqual(self.ota.boot(), "switched")
        self.assertEqual(self.app("drivers/x.mpy"), self.NEW["drivers/x.mpy"])

    def test_a_different_bundle_after_an_interruption_starts_over(self):
        man = self.publish(self.NEW)
        self.server.cut[self.server.base + "main.py"] = 4
        self.run_ota(man)
        newer = dict(self.NEW)
        newer["drivers/x.mpy"] = b"v2"
        man2 = self.publish(newer, "1.2.0")
        self.server.gets = []
        self.assertTrue(self.run_ota(man2, "1.2.0"))
        self.assertEqual(len(self.server.gets), 4)
        self.ota.boot()
        self.assertEqual(self.app("drivers/x.mpy"), b"v2")

    def test_the_rom_image_is_fetched_only_where_a_romfs_partition_takes_it(self):
        image = b"\xd2\xcd\x31" + b"r" * 3000
        self.publish(self.NEW)  # the files, served
        man = make_bundle(self.NEW, rom=image)
        self.server.files[self.server.base + "manifest.json"] = man
        self.server.files[self.server.base + "app.rom"] = image
        # No ROMFS (CPython, or a stock build): the image is neither fetched nor pending.
        self.assertIsNone(ota.rom_partition())
        self.assertTrue(self.run_ota(man), self.ota.error)
        self.assertNotIn(self.server.base + "app.rom", self.server.gets)
        self.assertEqual(self.ota.boot(), "switched")
        self.assertFalse(self.ota.healthy())
        self.assertFalse(main._rom_pending(self.root))
        # A partition too small for it: the same.
        real = ota.rom_partition
        try:
            ota.rom_partition = lambda: (None, len(image) - 1, 4096)
            self.server.gets = []
            self.assertTrue(self.run_ota(man), self.ota.error)
            self.assertNotIn(self.server.base + "app.rom", self.server.gets)
            self.ota.boot()
            self.assertFalse(self.ota.healthy())
            # One it fits in: fetched and checked with the files, pending once healthy.
            ota.rom_partition = lambda: (None, 64 * 1024, 4096)
            self.server.gets = []
            self.assertTrue(self.run_ota(man), self.ota.error)
            self.assertIn(self.server.base + "app.rom", self.server.gets)
            self.assertEqual(self.ota.boot(), "switched")
            self.assertEqual(self.app("app.rom"), image)
            self.assertFalse(main._rom_pending(self.root))  # not while on trial
            self.assertTrue(self.ota.healthy())
            self.assertTrue(main._rom_pending(self.root))
            self.assertEqual(self.ota.report(), ("applied", "1.1.0"))
            # A tampered image fails the update like any file.
            self.server.files[self.server.base + "app.rom"] = image[:-1] + b"x"
            self.assertFalse(self.run_ota(man))
            self.assertIn("app.rom", self.ota.error)
            # A trial that fails drops the pending image with the app.
            self.server.files[self.server.base + "app.rom"] = image
            self.assertTrue(self.run_ota(man), self.ota.error)
            self.assertEqual(self.ota.boot(), "switched")
            self.assertEqual(self.ota.boot(), "rolled_back")
            self.assertFalse(main._rom_pending(self.root))
        finally:
            ota.rom_partition = real

    def committed_with_rom(self, image, device):
        # The new app with its ROMFS image, healthy: the image waits for the next boot.
        self.publish(self.NEW)  # the files, served
        man = make_bundle(self.NEW, rom=image)
        self.server.files[self.server.base + "manifest.json"] = man
        self.server.files[self.server.base + "app.rom"] = image
        ota.rom_partition = lambda: (device, 64 * 1024, 4096)
        self.assertTrue(self.run_ota(man), self.ota.error)
        self.assertEqual(self.ota.boot(), "switched")
        self.assertTrue(self.ota.healthy())

    def with_vfs(self, device):
        # The vfs module of a ROMFS build whose partition 0 is `device` (the ESP32's kind).
        mounted = []

        class Vfs:
            @staticmethod
            def umount(path):
                pass

            @staticmethod
            def rom_ioctl(op, *args):
                return device if op == 2 else -22

            @staticmethod
            def VfsRom(buf):  # noqa: N802
                return ("rom", bytes(buf[:3]))

            @staticmethod
            def mount(fs, path):
                mounted.append((fs, path))

        sys.modules["vfs"] = Vfs
        return mounted

    def test_the_committed_app_moves_into_the_rom_partition_at_boot(self):
        image = b"\xd2\xcd\x31" + bytes(range(256)) * 20
        device = _partition(64 * 1024)
        real, saved = ota.rom_partition, sys.modules.get("vfs")
        try:
            self.committed_with_rom(image, device)
            mounted = self.with_vfs(device)
            self.assertTrue(self.ota.to_rom(("bench", "drivers")))
            self.assertEqual(bytes(device[: len(image)]), image)
            self.assertEqual(device.erased, list(range(2)))  # the blocks the image needs
            self.assertEqual(mounted, [(("rom", b"\xd2\xcd\x31"), "/rom")])
            self.assertFalse(ota._exists(self.root + "/app"))
            self.assertFalse(ota._exists(self.root + "/app.gone"))
            self.assertFalse(main._rom_pending(self.root))
            self.assertEqual(self.ota.state()["version"], "1.1.0")
        finally:
            ota.rom_partition = real
            _restore("vfs", saved)

    def test_a_move_into_romfs_cut_short_leaves_nothing_on_the_path(self):
        # Power lost after app/ was moved aside: it is not the app any more, and goes.
        os.rename(self.root + "/app", self.root + "/app.gone")
        self.assertEqual(self.ota.boot(), "")
        self.assertFalse(ota._exists(self.root + "/app.gone"))
        self.assertFalse(ota._exists(self.root + "/app"))

    def test_a_rom_write_that_keeps_failing_leaves_the_app_on_the_file_system(self):
        image = b"\xd2\xcd\x31" + b"r" * 3000
        device = _partition(64 * 1024, refuse=True)
        real, saved = ota.rom_partition, sys.modules.get("vfs")
        try:
            self.committed_with_rom(image, device)
            self.with_vfs(device)
            for _ in range(2):
                self.assertRaises(ota.OtaError, self.ota.to_rom, ("bench", "drivers"))
                self.assertTrue(main._rom_pending(self.root))  # the next boot tries again
            self.assertFalse(self.ota.to_rom(("bench", "drivers")))
            self.assertFalse(main._rom_pending(self.root))
            self.assertEqual(self.app("main.py"), self.NEW["main.py"])
            self.assertNotIn("rom_tries", self.ota.state())
        finally:
            ota.rom_partition = real
            _restore("vfs", saved)

    def test_version_mismatch_with_the_command_is_refused(self):
        man = self.publish(self.NEW)
        self.assertFalse(self.run_ota(man, "2.0.0"))


if __name__ == "__main__":
    unittest.main()
