# OTA: the manifest's RSA signature and the bench's anchor, the version floor and a rotation
# of the anchor (NVS), manifest verification, streamed staging, switch, rollback.
# Runs under pytest (CPython) and inside the MicroPython VM.
import hashlib
import json
import os
import sys
import unittest

if sys.implementation.name != "micropython":
    import pathlib

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3] / "firmware"))
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import main  # the boot's check for an image waiting to be written
from bench import ota, store, trust
from ota_testkeys import KEY_A, KEY_B

ANCHOR = KEY_A[0]  # the bench's anchor: KEY_A's public modulus
OTHER = KEY_B[0]


def sha(b):
    return trust.hexlify(hashlib.sha256(b).digest())


def rsa_sign(key, message):
    # RSASSA-PKCS1-v1_5 with SHA-256, by the CRT (the host signs with `cryptography`).
    n, p, q, dp, dq, qinv = [int(x, 16) for x in key]
    k = len(key[0]) // 2
    pad = k - 3 - len(trust._SHA256_INFO) // 2 - 32
    digest = trust.hexlify(hashlib.sha256(message).digest())
    em = int("0001" + "ff" * pad + "00" + trust._SHA256_INFO + digest, 16)
    m1 = pow(em % p, dp, p)
    m2 = pow(em % q, dq, q)
    s = m2 + qinv * (m1 - m2) % p * q  # qinv: q ** -1 mod p (RFC 8017, 5.1.2)
    h = hex(s)[2:]
    return "0" * (2 * k - len(h)) + h


def signed(m, key=KEY_A):
    m = dict(m)
    m.pop("sig", None)
    m["sig"] = rsa_sign(key, trust.canonical(m).encode())
    return m


def entry(p, data):
    return {"path": p, "size": len(data), "sha256": sha(data)}


def make_bundle(files, version="1.1.0", key=KEY_A, rom=None, anchor=None):
    # The manifest's bytes as the host's bundle builder makes them; rom: the ROMFS image;
    # anchor: the modulus a rotation hands over to.
    m = {"version": version, "files": [entry(p, files[p]) for p in sorted(files)]}
    if rom is not None:
        m["rom"] = entry("app.rom", rom)
    if anchor is not None:
        m["anchor"] = anchor
    return json.dumps(signed(m, key)).encode()


class Nvs:
    # esp32.NVS as the bench has it: blobs by key, OSError when a key is missing.
    def __init__(self):
        self.data = {}

    def get_blob(self, key, buf):
        if key not in self.data:
            raise OSError(-0x1102, "ESP_ERR_NVS_NOT_FOUND")
        v = self.data[key]
        if len(v) > len(buf):
            raise OSError(-0x1109, "ESP_ERR_NVS_INVALID_LENGTH")
        for i in range(len(v)):
            buf[i] = v[i]
        return len(v)

    def set_blob(self, key, value):
        self.data[key] = bytes(value)

    def commit(self):
        pass


class Response:
    def __init__(self, data, status=200, cut=None):
        self.data = data
        self.pos = 0
        self.status = status
        self.cut = cut  # raise after this many bytes: a dropped connection

    async def readinto(self, buf):
        b = await self.read(len(buf))
        buf[: len(b)] = b
        return len(b)

    async def read(self, n):
        if self.cut is not None and self.pos >= self.cut:
            raise OSError(104, "ECONNRESET")
        n = min(n, len(self.data) - self.pos, 4096 if self.cut is None else self.cut - self.pos)
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

    async def fetch(self, url):
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


class Signature(unittest.TestCase):
    def test_a_signature_verifies_only_with_its_key_and_its_digest(self):
        d = hashlib.sha256(b"manifest").digest()
        sig = rsa_sign(KEY_A, b"manifest")
        self.assertTrue(trust.rsa_verify(ANCHOR, sig, d))
        self.assertFalse(trust.rsa_verify(OTHER, sig, d))
        self.assertFalse(trust.rsa_verify(ANCHOR, sig, hashlib.sha256(b"manifesu").digest()))
        flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
        self.assertFalse(trust.rsa_verify(ANCHOR, flipped, d))
        self.assertFalse(trust.rsa_verify(ANCHOR, sig[2:], d))  # a byte short
        self.assertFalse(trust.rsa_verify(ANCHOR, "zz" + sig[2:], d))
        n = ANCHOR[:-1] + "f"  # not even an RSA key's signature of it: s >= n
        self.assertFalse(trust.rsa_verify(ANCHOR, n, d))

    def test_anchors_are_rsa_2048_to_4096_moduli_in_hex(self):
        self.assertTrue(trust.key_ok(ANCHOR))
        for bad in (ANCHOR[:-2], "00" + ANCHOR[2:], ANCHOR.upper(), "ab" * 513, None, 5):
            self.assertFalse(trust.key_ok(bad), repr(bad)[:20])

    def test_versions_compare_as_numbers(self):
        self.assertLess(trust.version_key("0.9.0"), trust.version_key("2.0.0"))
        self.assertLess(trust.version_key("1.9.9"), trust.version_key("1.10.0"))
        self.assertEqual(trust.version_key("1.2"), trust.version_key("1.2.0"))
        for bad in ("1.0.0-rc1", "", "1..2", "v1", "1.2.3.4.5", None):
            self.assertRaises(trust.OtaError, trust.version_key, bad)


class TrustStore(unittest.TestCase):
    def test_the_provisioned_anchor_until_a_commit_rotates_it(self):
        nvs = Nvs()
        t = trust.Trust(nvs, ANCHOR)
        self.assertEqual(t.anchor(), ANCHOR)
        self.assertIsNone(t.floor())
        t.commit("1.1.0", OTHER)
        self.assertEqual(t.anchor(), OTHER)
        self.assertEqual(trust.Trust(nvs, ANCHOR).anchor(), OTHER)  # after a reboot too
        self.assertEqual(t.floor(), "1.1.0")

    def test_a_bench_provisioned_again_trusts_the_anchor_it_was_given(self):
        nvs = Nvs()
        trust.Trust(nvs, ANCHOR).commit("1.1.0", OTHER)
        # The technician provisions it with the deployment's anchor of the day.
        self.assertEqual(trust.Trust(nvs, KEY_A[0][:-2] + "ab").anchor(), KEY_A[0][:-2] + "ab")
        self.assertEqual(trust.Trust(nvs, None).anchor(), OTHER)

    def test_damaged_nvs_values_count_as_none(self):
        nvs = Nvs()
        nvs.set_blob("anchor", b"\xff\xfe" * 300)
        nvs.set_blob("floor", b"\xff")
        t = trust.Trust(nvs, ANCHOR)
        self.assertEqual(t.anchor(), ANCHOR)
        self.assertIsNone(t.floor())
        self.assertEqual(t.commit("1.0.0"), "")
        self.assertEqual(t.floor(), "1.0.0")

    def test_the_floor_only_rises(self):
        t = trust.Trust(Nvs(), ANCHOR)
        t.commit("2.0.0")
        t.commit("0.9.0")
        self.assertEqual(t.floor(), "2.0.0")
        t.commit("2.0.1")
        self.assertEqual(t.floor(), "2.0.1")
        self.assertEqual(t.anchor(), ANCHOR)


class Manifest(unittest.TestCase):
    def manifest(self, **change):
        m = json.loads(make_bundle({"bench/app.mpy": b"app", "main.py": b"import app\n"}))
        for k in change:
            m[k] = change[k]
        return m

    def test_good_manifest_verifies(self):
        m = trust.verify_manifest(self.manifest(), ANCHOR)
        self.assertEqual(m["version"], "1.1.0")

    def test_canonical_bytes_are_sorted_compact_json(self):
        m = {"version": "1.0", "files": [{"size": 3, "path": "a.mpy", "sha256": "ab"}]}
        self.assertEqual(
            trust.canonical(m),
            '{"files":[{"path":"a.mpy","sha256":"ab","size":3}],"version":"1.0"}',
        )
        if sys.implementation.name != "micropython":
            self.assertEqual(
                trust.canonical(m), json.dumps(m, sort_keys=True, separators=(",", ":"))
            )

    def test_the_digest_fed_in_pieces_is_that_of_the_canonical_text(self):
        m = json.loads(make_bundle({"bench/app.mpy": b"app", "main.py": b"x"}, rom=b"r"))
        m["anchor"] = OTHER
        steps = list(trust.digest_steps(m))
        body = {}
        for k in m:
            if k != "sig":
                body[k] = m[k]
        self.assertEqual(steps[-1], hashlib.sha256(trust.canonical(body).encode()).digest())
        self.assertEqual(steps[:-1], [None, None])  # a step per file

    def test_wrong_key_is_refused(self):
        self.assertRaises(trust.OtaError, trust.verify_manifest, self.manifest(), OTHER)
        self.assertRaises(trust.OtaError, trust.verify_manifest, self.manifest(), None)

    def test_any_tampered_field_is_refused(self):
        m = self.manifest()
        m["files"][0]["size"] += 1
        self.assertRaises(trust.OtaError, trust.verify_manifest, m, ANCHOR)
        m = self.manifest(version="9.9.9")
        self.assertRaises(trust.OtaError, trust.verify_manifest, m, ANCHOR)
        m = self.manifest()
        m["files"][1]["sha256"] = sha(b"evil")
        self.assertRaises(trust.OtaError, trust.verify_manifest, m, ANCHOR)
        m = self.manifest(extra="added")
        self.assertRaises(trust.OtaError, trust.verify_manifest, m, ANCHOR)

    def test_paths_that_escape_the_app_are_refused(self):
        for bad in ("../boot.py", "/boot.py", "a//b", "bench/", "x.part", "a b"):
            self.assertFalse(trust.path_ok(bad), bad)
        self.assertTrue(trust.path_ok("bench/app.mpy"))

    def test_a_rom_entry_is_checked_like_a_file_and_covered_by_the_signature(self):
        files = {"bench/app.mpy": b"app", "main.py": b"import app\n"}
        m = json.loads(make_bundle(files, rom=b"image"))
        self.assertEqual(trust.verify_manifest(m, ANCHOR)["rom"]["size"], 5)
        m["rom"]["sha256"] = sha(b"other image")
        self.assertRaises(trust.OtaError, trust.verify_manifest, m, ANCHOR)  # the signature
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
            m = signed(m)
            with self.assertRaises(trust.OtaError, msg=repr(rom)) as e:
                trust.verify_manifest(m, ANCHOR)
            self.assertIn("manifest", str(e.exception))

    def test_missing_signature_is_refused(self):
        m = self.manifest()
        del m["sig"]
        self.assertRaises(trust.OtaError, trust.verify_manifest, m, ANCHOR)


class Update(unittest.IsolatedAsyncioTestCase):
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
        self.reasons = []
        self.nvs = Nvs()
        self.trust = trust.Trust(self.nvs, ANCHOR)
        self.ota = ota.Ota(self.root, self.trust, self.emit, self.server.fetch)

    def emit(self, state, version, detail=None):
        self.events.append(state)
        if detail:
            self.reasons.append(detail)

    def publish(self, files, version="1.1.0", key=KEY_A, anchor=None):
        man = make_bundle(files, version, key, anchor=anchor)
        self.server.files[self.server.base + "manifest.json"] = man
        for p in files:
            self.server.files[self.server.base + p] = files[p]
        return man

    async def run_ota(self, man, version="1.1.0"):
        return await self.ota.run(self.server.base + "manifest.json", version, sha(man))

    def app(self, p):
        return _read(self.root + "/app/" + p)

    async def test_good_bundle_stages_switches_at_boot_and_is_applied_when_healthy(self):
        man = self.publish(self.NEW)
        self.assertTrue(await self.run_ota(man), self.ota.error)
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

    async def test_trial_app_whose_first_boot_fails_is_rolled_back(self):
        self.assertTrue(await self.run_ota(self.publish(self.NEW)), self.ota.error)
        self.assertEqual(self.ota.boot(), "switched")
        # ... the new app crashes at import; the next boot finds it still on trial
        self.assertEqual(self.ota.boot(), "rolled_back")
        self.assertEqual(self.app("main.py"), b"old main")
        self.assertEqual(self.ota.report(), ("rolled_back", "1.1.0"))
        self.assertFalse(self.ota.on_trial())

    async def test_tampered_file_changes_nothing(self):
        man = self.publish(self.NEW)
        self.server.files[self.server.base + "main.py"] = b"evil main"
        self.assertFalse(await self.run_ota(man))
        self.assertEqual(self.events, ["downloading", "failed"])
        self.assertEqual(self.ota.boot(), "")
        self.assertEqual(self.app("main.py"), b"old main")

    async def test_tampered_manifest_or_wrong_key_changes_nothing(self):
        man = self.publish(self.NEW, key=KEY_B)
        self.assertFalse(await self.run_ota(man))
        man = self.publish(self.NEW)
        self.assertFalse(await self.ota.run(self.server.base + "manifest.json", "1.1.0", sha(b"x")))
        self.assertEqual(self.events.count("failed"), 2)
        self.assertEqual(self.ota.boot(), "")
        self.assertEqual(self.app("main.py"), b"old main")

    async def test_interrupted_download_resumes_with_the_files_already_complete(self):
        man = self.publish(self.NEW)
        self.server.cut[self.server.base + "main.py"] = 4  # bench/app.mpy, drivers/x.mpy first
        self.assertFalse(await self.run_ota(man))
        self.assertEqual(self.ota.boot(), "")
        self.server.gets = []
        self.assertTrue(await self.run_ota(man), self.ota.error)
        fetched = [u[len(self.server.base) :] for u in self.server.gets]
        self.assertEqual(fetched, ["manifest.json", "main.py"])
        self.assertEqual(self.ota.boot(), "switched")
        self.assertEqual(self.app("drivers/x.mpy"), self.NEW["drivers/x.mpy"])

    async def test_a_different_bundle_after_an_interruption_starts_over(self):
        man = self.publish(self.NEW)
        self.server.cut[self.server.base + "main.py"] = 4
        await self.run_ota(man)
        newer = dict(self.NEW)
        newer["drivers/x.mpy"] = b"v2"
        man2 = self.publish(newer, "1.2.0")
        self.server.gets = []
        self.assertTrue(await self.run_ota(man2, "1.2.0"))
        self.assertEqual(len(self.server.gets), 4)
        self.ota.boot()
        self.assertEqual(self.app("drivers/x.mpy"), b"v2")

    async def test_the_rom_image_is_fetched_only_where_a_romfs_partition_takes_it(self):
        image = b"\xd2\xcd\x31" + b"r" * 3000
        self.publish(self.NEW)  # the files, served
        man = make_bundle(self.NEW, rom=image)
        self.server.files[self.server.base + "manifest.json"] = man
        self.server.files[self.server.base + "app.rom"] = image
        # No ROMFS (CPython, or a stock build): the image is neither fetched nor pending.
        self.assertIsNone(ota.rom_partition())
        self.assertTrue(await self.run_ota(man), self.ota.error)
        self.assertNotIn(self.server.base + "app.rom", self.server.gets)
        self.assertEqual(self.ota.boot(), "switched")
        self.assertFalse(self.ota.healthy())
        self.assertFalse(main._rom_pending(self.root))
        # A partition too small for it: the same.
        real = ota.rom_partition
        try:
            ota.rom_partition = lambda: (None, len(image) - 1, 4096)
            self.server.gets = []
            self.assertTrue(await self.run_ota(man), self.ota.error)
            self.assertNotIn(self.server.base + "app.rom", self.server.gets)
            self.ota.boot()
            self.assertFalse(self.ota.healthy())
            # One it fits in: fetched and checked with the files, pending once healthy.
            ota.rom_partition = lambda: (None, 64 * 1024, 4096)
            self.server.gets = []
            self.assertTrue(await self.run_ota(man), self.ota.error)
            self.assertIn(self.server.base + "app.rom", self.server.gets)
            self.assertEqual(self.ota.boot(), "switched")
            self.assertEqual(self.app("app.rom"), image)
            self.assertFalse(main._rom_pending(self.root))  # not while on trial
            self.assertTrue(self.ota.healthy())
            self.assertTrue(main._rom_pending(self.root))
            self.assertEqual(self.ota.report(), ("applied", "1.1.0"))
            # A tampered image fails the update like any file.
            self.server.files[self.server.base + "app.rom"] = image[:-1] + b"x"
            self.assertFalse(await self.run_ota(man))
            self.assertIn("app.rom", self.ota.error)
            # A trial that fails drops the pending image with the app.
            self.server.files[self.server.base + "app.rom"] = image
            self.assertTrue(await self.run_ota(man), self.ota.error)
            self.assertEqual(self.ota.boot(), "switched")
            self.assertEqual(self.ota.boot(), "rolled_back")
            self.assertFalse(main._rom_pending(self.root))
        finally:
            ota.rom_partition = real

    async def committed_with_rom(self, image, device):
        # The new app with its ROMFS image, healthy: the image waits for the next boot.
        self.publish(self.NEW)  # the files, served
        man = make_bundle(self.NEW, rom=image)
        self.server.files[self.server.base + "manifest.json"] = man
        self.server.files[self.server.base + "app.rom"] = image
        ota.rom_partition = lambda: (device, 64 * 1024, 4096)
        self.assertTrue(await self.run_ota(man), self.ota.error)
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

    async def test_the_committed_app_moves_into_the_rom_partition_at_boot(self):
        image = b"\xd2\xcd\x31" + bytes(range(256)) * 20
        device = _partition(64 * 1024)
        real, saved = ota.rom_partition, sys.modules.get("vfs")
        try:
            await self.committed_with_rom(image, device)
            mounted = self.with_vfs(device)
            self.assertTrue(self.ota.to_rom(("bench", "drivers")))
            self.assertEqual(bytes(device[: len(image)]), image)
            self.assertEqual(device.erased, list(range(2)))  # the blocks the image needs
            self.assertEqual(mounted, [(("rom", b"\xd2\xcd\x31"), "/rom")])
            self.assertFalse(store.exists(self.root + "/app"))
            self.assertFalse(store.exists(self.root + "/app.gone"))
            self.assertFalse(main._rom_pending(self.root))
            self.assertEqual(self.ota.state()["version"], "1.1.0")
        finally:
            ota.rom_partition = real
            _restore("vfs", saved)

    def test_a_move_into_romfs_cut_short_leaves_nothing_on_the_path(self):
        # Power lost after app/ was moved aside: it is not the app any more, and goes.
        os.rename(self.root + "/app", self.root + "/app.gone")
        self.assertEqual(self.ota.boot(), "")
        self.assertFalse(store.exists(self.root + "/app.gone"))
        self.assertFalse(store.exists(self.root + "/app"))

    async def test_a_rom_write_that_keeps_failing_leaves_the_app_on_the_file_system(self):
        image = b"\xd2\xcd\x31" + b"r" * 3000
        device = _partition(64 * 1024, refuse=True)
        real, saved = ota.rom_partition, sys.modules.get("vfs")
        try:
            await self.committed_with_rom(image, device)
            self.with_vfs(device)
            for _ in range(2):
                self.assertRaises(trust.OtaError, self.ota.to_rom, ("bench", "drivers"))
                self.assertTrue(main._rom_pending(self.root))  # the next boot tries again
            self.assertFalse(self.ota.to_rom(("bench", "drivers")))
            self.assertFalse(main._rom_pending(self.root))
            self.assertEqual(self.app("main.py"), self.NEW["main.py"])
            self.assertNotIn("rom_tries", self.ota.state())
        finally:
            ota.rom_partition = real
            _restore("vfs", saved)

    async def test_version_mismatch_with_the_command_is_refused(self):
        man = self.publish(self.NEW)
        self.assertFalse(await self.run_ota(man, "2.0.0"))

    async def test_a_version_below_the_highest_committed_is_refused(self):
        self.trust.commit("2.0.0")
        man = self.publish(self.NEW, "0.9.0")
        self.assertFalse(await self.run_ota(man, "0.9.0"))
        self.assertEqual(self.events, ["downloading", "failed"])
        self.assertIn("older than 2.0.0", self.reasons[0])
        self.assertEqual(self.server.gets, [self.server.base + "manifest.json"])
        self.assertEqual(self.ota.boot(), "")
        self.assertTrue(await self.run_ota(self.publish(self.NEW, "2.0.0"), "2.0.0"))

    async def test_the_floor_rises_when_the_trial_app_commits_not_before(self):
        self.assertTrue(await self.run_ota(self.publish(self.NEW, "2.0.0"), "2.0.0"))
        self.assertEqual(self.ota.boot(), "switched")
        self.assertIsNone(self.trust.floor())  # on trial: a rollback leaves the floor alone
        self.ota.healthy()
        self.assertEqual(self.trust.floor(), "2.0.0")

    async def test_a_bundle_signed_by_another_key_is_refused_with_its_reason(self):
        man = self.publish(self.NEW, key=KEY_B)
        self.assertFalse(await self.run_ota(man))
        self.assertEqual(self.events, ["downloading", "failed"])
        self.assertIn("signature", self.reasons[0])
        # ... even one that names its own key as the anchor to take over
        man = self.publish(self.NEW, key=KEY_B, anchor=OTHER)
        self.assertFalse(await self.run_ota(man))
        self.assertEqual(self.trust.anchor(), ANCHOR)
        self.assertEqual(self.ota.boot(), "")

    async def test_a_rotation_bundle_hands_the_anchor_over_at_its_commit(self):
        man = self.publish(self.NEW, "1.1.0", anchor=OTHER)
        self.assertTrue(await self.run_ota(man), self.ota.error)
        self.assertEqual(self.trust.anchor(), ANCHOR)  # staged, not committed
        self.assertEqual(self.ota.boot(), "switched")
        self.ota.healthy()
        self.assertEqual(self.trust.anchor(), OTHER)
        # From now on the old key's bundles are refused and the new key's taken.
        self.assertFalse(await self.run_ota(self.publish(self.NEW, "1.2.0"), "1.2.0"))
        man = self.publish(self.NEW, "1.2.0", key=KEY_B)
        self.assertTrue(await self.run_ota(man, "1.2.0"), self.ota.error)

    async def test_a_commit_nvs_refuses_still_commits_the_app_and_says_why(self):
        def full(key, value):
            raise OSError(-0x1105, "ESP_ERR_NVS_NOT_ENOUGH_SPACE")

        self.nvs.set_blob = full
        self.assertTrue(await self.run_ota(self.publish(self.NEW, "2.0.0"), "2.0.0"))
        self.assertEqual(self.ota.boot(), "switched")
        self.ota.healthy()
        self.assertIn("NVS refused", self.ota.error)
        self.assertEqual(self.ota.report(), ("applied", "2.0.0"))
        self.assertFalse(self.ota.on_trial())

    async def test_a_rotation_whose_trial_fails_leaves_the_anchor(self):
        self.assertTrue(await self.run_ota(self.publish(self.NEW, anchor=OTHER)))
        self.assertEqual(self.ota.boot(), "switched")
        self.assertEqual(self.ota.boot(), "rolled_back")
        self.assertEqual(self.trust.anchor(), ANCHOR)
        self.assertIsNone(self.trust.floor())


class Resident(unittest.IsolatedAsyncioTestCase):
    def test_an_ota_step_leaves_neither_ota_nor_trust_imported(self):
        from bench import runtime

        class App:
            root = _tmpdir()
            events = []

            def record_event(self, kind, fields):
                self.events.append((kind, fields))

        saved = {n: sys.modules.get(n) for n in ("bench.ota", "bench.trust")}
        try:
            runtime.job("ota", "step", App(), "report")
            self.assertNotIn("bench.ota", sys.modules)
            self.assertNotIn("bench.trust", sys.modules)
        finally:
            for n in saved:
                if saved[n] is not None:
                    sys.modules[n] = saved[n]

    async def test_an_ota_command_leaves_its_download_modules_unimported(self):
        from bench import runtime

        nvs = Nvs()

        class App:
            root = _tmpdir()
            cfg = {"ota_pub": ANCHOR}
            events = []

            class hw:  # noqa: N801
                class esp32:  # noqa: N801
                    @staticmethod
                    def NVS(namespace):  # noqa: N802
                        return nvs

            def record_event(self, kind, fields):
                self.events.append((kind, fields))

        names = ("bench.ota", "bench.trust", "bench.http")
        saved = {n: sys.modules.get(n) for n in names}
        try:
            args = {"url": "http://127.0.0.1:9/b/manifest.json", "version": "1.1.0"}
            args["sha256"] = "0" * 64
            ok, detail = await runtime.job("ota", "command", App(), args)
            self.assertFalse(ok)
            self.assertTrue(detail)
            for n in names:
                self.assertNotIn(n, sys.modules)
        finally:
            for n in saved:
                if saved[n] is not None:
                    sys.modules[n] = saved[n]


if __name__ == "__main__":
    unittest.main()
