# Update trust (docs/firmware.md, "Update trust"): what a bench accepts an app bundle by. The
# manifest's form and canonical bytes (docs/display.md), its RSA signature checked against the
# bench's anchor (the public half of the deployment's OTA signing key), the version floor and a
# rotated anchor in NVS. Imported with bench.ota, and dropped with it.
import hashlib

NVS_NAMESPACE = "klupa_ota"
_HEX = "0123456789abcdef"
_PATH_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/"
# EMSA-PKCS1-v1_5 (RFC 8017, 9.2): the DER prefix of a SHA-256 DigestInfo.
_SHA256_INFO = "3031300d060960864801650304020105000420"
_KEY_HEX_MIN = 512  # RSA-2048 .. RSA-4096, as hex digits of the modulus
_KEY_HEX_MAX = 1024


class OtaError(Exception):
    # An update refused or failed; its text goes to the `ota` event's and the ack's detail.
    pass


def hexlify(b):
    out = []
    for x in b:
        out.append(_HEX[x >> 4] + _HEX[x & 15])
    return "".join(out)


def feed(h, obj):
    # The manifest's canonical text (docs/display.md), fed to h.update() a piece at a time (no
    # copy of the text in the heap): sorted keys, no whitespace, strings of printable ASCII
    # without quote or backslash, integers only. Equals CPython's
    # json.dumps(obj, sort_keys=True, separators=(",", ":")) on such values.
    t = type(obj)
    if t is dict:
        h.update(b"{")
        first = True
        for k in sorted(obj):
            if not first:
                h.update(b",")
            first = False
            feed(h, k)
            h.update(b":")
            feed(h, obj[k])
        h.update(b"}")
    elif t is list:
        h.update(b"[")
        for i in range(len(obj)):
            if i:
                h.update(b",")
            feed(h, obj[i])
        h.update(b"]")
    elif t is str:
        for ch in obj:
            if not 0x20 <= ord(ch) < 0x7F or ch == '"' or ch == "\\":
                raise OtaError("manifest string not plain ASCII")
        h.update(b'"')
        h.update(obj.encode())
        h.update(b'"')
    elif t is bool:
        h.update(b"true" if obj else b"false")
    elif t is int:
        h.update(str(obj).encode())
    elif obj is None:
        h.update(b"null")
    else:
        raise OtaError("manifest value of type %s" % t.__name__)


class _Text:
    def __init__(self):
        self.parts = []

    def update(self, b):
        self.parts.append(b)


def canonical(obj):
    # feed()'s text as one string (tests, tools).
    t = _Text()
    feed(t, obj)
    return b"".join(t.parts).decode()


# -- update trust: an RSA public key as the anchor, the version floor ---------------------
def key_ok(k):
    # An anchor: the RSA modulus as lowercase hex, 2048 to 4096 bits (public exponent 65537).
    if type(k) is not str or not _KEY_HEX_MIN <= len(k) <= _KEY_HEX_MAX or len(k) & 1:
        return False
    if k[:2] == "00":
        return False
    for c in k:
        if c not in _HEX:
            return False
    return True


def key_id(k):
    # A short name for an anchor in a technician's message: its SHA-256's first 8 hex digits.
    return hexlify(hashlib.sha256(k.encode()).digest()[:4])


def _pow16(m, n):
    # m ** 16 mod n. Three-argument pow() works in place (a few hundred bytes of garbage where
    # four squarings and reductions leave kilobytes); a port built without it squares.
    try:
        return pow(m, 16, n)
    except TypeError:
        for _ in range(4):
            m = m * m % n
        return m


def rsa_steps(key, sig, digest):
    # Whether sig (hex) is key's RSASSA-PKCS1-v1_5 signature of the SHA-256 digest, a few big
    # products at a time: a generator that yields None after each quarter of the 16 squarings
    # of s ** 65537 mod n and last True or False, so that an update lets the app run between
    # them (on an ESP32 a product of 3,072-bit numbers takes milliseconds). The result is
    # compared whole with the encoding the digest must have (RFC 8017, 8.2.2), never parsed,
    # so no loose padding passes. A public key operation: nothing secret, nothing timed.
    if type(sig) is not str or len(sig) != len(key):
        yield False
        return
    for c in sig:
        if c not in _HEX:
            yield False
            return
    n = int(key, 16)
    s = int(sig, 16)
    if s >= n:
        yield False
        return
    m = s
    for _ in range(4):
        m = _pow16(m, n)
        yield None
    m = m * s % n
    pad = len(key) // 2 - 3 - len(_SHA256_INFO) // 2 - 32
    yield m == int("0001" + "ff" * pad + "00" + _SHA256_INFO + hexlify(digest), 16)


def rsa_verify(key, sig, digest):
    ok = False
    for ok in rsa_steps(key, sig, digest):
        pass
    return ok


def digest_steps(manifest):
    # SHA-256 of the manifest's canonical text without "sig": a generator yielding None after
    # each entry of a list (a file) and last the digest.
    h = hashlib.sha256()
    h.update(b"{")
    first = True
    for k in sorted(manifest):
        if k == "sig":
            continue
        if not first:
            h.update(b",")
        first = False
        feed(h, k)
        h.update(b":")
        v = manifest[k]
        if type(v) is list:
            h.update(b"[")
            for i in range(len(v)):
                if i:
                    h.update(b",")
                feed(h, v[i])
                yield None
            h.update(b"]")
        else:
            feed(h, v)
    h.update(b"}")
    yield h.digest()


def version_key(v):
    # "2.10.1" -> (2, 10, 1, 0): versions compare as up to four dotted numbers.
    parts = v.split(".") if type(v) is str else ()
    if not 0 < len(parts) <= 4:
        raise OtaError("version %s is not dotted numbers" % v)
    out = []
    for p in parts:
        if not p or len(p) > 6 or any(c not in "0123456789" for c in p):
            raise OtaError("version %s is not dotted numbers" % v)
        out.append(int(p))
    while len(out) < 4:
        out.append(0)
    return tuple(out)


class Trust:
    # What a bench trusts an update by: the anchor (the provisioned one in config.json, until
    # a committed bundle rotates it; the rotation is kept in NVS with the hash of the
    # provisioned anchor it replaced, so a bench provisioned again with a new anchor trusts
    # that one), and the highest version it ever committed. nvs: esp32.NVS(NVS_NAMESPACE).
    def __init__(self, nvs, provisioned):
        self.nvs = nvs
        self.provisioned = provisioned if key_ok(provisioned) else None

    def _get(self, key, size):
        buf = bytearray(size)
        try:
            return bytes(buf[: self.nvs.get_blob(key, buf)]).decode()
        except (OSError, ValueError):  # not found, longer than size, or not text: none
            return None

    def anchor(self):
        a = self._get("anchor", _KEY_HEX_MAX)
        if key_ok(a) and (
            self.provisioned is None or self._get("base", 64) == self._hash(self.provisioned)
        ):
            return a
        return self.provisioned

    def floor(self):
        return self._get("floor", 32)

    def _hash(self, k):
        return hexlify(hashlib.sha256((k or "").encode()).digest())

    def commit(self, version, anchor=None):
        # The app of this version is committed: raise the floor, take the anchor it names.
        # -> "" or why NVS refused: the app stays committed all the same (a bench that cannot
        # write NVS keeps running; its caller reports the fault).
        f = self.floor()
        try:
            low = f is None or version_key(f) < version_key(version)
        except OtaError:
            low = True
        try:
            if low:
                self.nvs.set_blob("floor", version.encode())
            if key_ok(anchor) and anchor != self.anchor():
                self.nvs.set_blob("anchor", anchor.encode())
                self.nvs.set_blob("base", self._hash(self.provisioned).encode())
            self.nvs.commit()
        except OSError as e:
            return "NVS refused the commit: " + str(e)
        return ""


def trust_of(app):
    nvs = app.hw.esp32.NVS(NVS_NAMESPACE)
    return Trust(nvs, app.cfg.get("ota_pub") if app.cfg else None)


def path_ok(p):
    if type(p) is not str or not 0 < len(p) <= 64 or p[0] == "/" or p[-1] == "/":
        return False
    for ch in p:
        if ch not in _PATH_CHARS:
            return False
    for part in p.split("/"):
        if part in ("", ".", "..") or part.endswith(".part"):
            return False
    return True


def verify_manifest(manifest, anchor):
    # Raises OtaError unless the parsed manifest is well formed and signed by the anchor.
    for _ in verify_steps(manifest, anchor):
        pass
    return manifest


def verify_steps(manifest, anchor):
    # verify_manifest() a step at a time: a generator yielding None between steps (the
    # update awaits there) and raising OtaError where the manifest fails.
    if type(manifest) is not dict:
        raise OtaError("manifest is not an object")
    sig = manifest.get("sig")
    if type(sig) is not str:
        raise OtaError("manifest has no signature")
    v = manifest.get("version")
    if type(v) is not str or not 0 < len(v) <= 32:
        raise OtaError("manifest has no version")
    version_key(v)
    files = manifest.get("files")
    if type(files) is not list or not files:
        raise OtaError("manifest has no files")
    if "anchor" in manifest and not key_ok(manifest["anchor"]):
        raise OtaError("manifest: bad anchor")
    rom = manifest.get("rom")  # optional: the packages as one ROMFS image
    seen = []
    for f in files + ([rom] if "rom" in manifest else []):
        if type(f) is not dict or not path_ok(f.get("path")):
            raise OtaError("manifest: bad file path")
        if f["path"] in seen:
            raise OtaError("manifest: duplicate path " + f["path"])
        seen.append(f["path"])
        size = f.get("size")
        if type(size) is not int or size < 0:
            raise OtaError("manifest: bad size for " + f["path"])
        h = f.get("sha256")
        if type(h) is not str or len(h) != 64 or any(c not in _HEX for c in h):
            raise OtaError("manifest: bad sha256 for " + f["path"])
    if not key_ok(anchor):
        raise OtaError("no OTA anchor: provision the bench from its deployment")
    for digest in digest_steps(manifest):
        if digest is None:
            yield None
    for ok in rsa_steps(anchor, sig, digest):
        if ok is None:
            yield None
    if not ok:
        raise OtaError("manifest signature does not verify with anchor " + key_id(anchor))
