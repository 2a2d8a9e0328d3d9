# mypy: ignore-errors
# (MicroPython code, run inside the VM by benchmarks/vm_ui.py: ota_presses.py's measure()
# imports this after the app's modules and subtracts what the import costs.)
# Vote presses while an OTA download runs, against the same presses without one, in the same
# run; and the manifest's signature check (RSA, the deployment's key size) against hashing the
# same canonical bytes alone.
#
# The download is bench.ota's own path: Ota.run() -> bench.http.http_get() over a stream pair
# whose reader hands out the bundle (the copy of the bundle at the VM's root) with a yield on
# every read, as a socket with data waiting does; the files are hashed and written to the VM's
# file system in 512-byte chunks, then verified and staged. It runs as a task, again and again, while the
# press task does what Front.run() does: sleeps 50 ms (real time), samples the pads. A press
# is held 0.4 s of the app's clock, then released; the release sample is the one timed, from
# the moment it was due (its sleep began + 50 ms) to the confirmation frame reaching I2C, so
# any time the download keeps the loop is in the figure. The download's longest hold of the
# loop (resume to next yield) is timed too.
import asyncio
import gc
import hashlib
import json
import time

import vmapp
import vmkit
from pressrun import POLL, app_with_front

PRESSES = 60
ANCHOR_FILE = "/ota_anchor.txt"  # the public half of the key that signed /manifest.json


def _median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n & 1 else (s[n // 2 - 1] + s[n // 2]) // 2


def _us():
    return vmkit.fine_us() if vmkit.fine_us is not None else vmkit.now_us()


# The download's longest hold of the event loop: from each resume to its next yield, at the
# reader's yields and bench.ota's own (asyncio.sleep(0) between chunks and verify steps).
HOLD = {"since": 0, "max": 0, "on": False}
HOLDS = []


async def _yield():
    if HOLD["on"] and HOLD["since"]:
        d = _us() - HOLD["since"]
        HOLDS.append(d)
        if d > HOLD["max"]:
            HOLD["max"] = d
    await asyncio.sleep_ms(0)
    HOLD["since"] = _us()


class Yields:
    # bench.ota's asyncio, as far as it uses it: sleep(0) between steps, timed.
    @staticmethod
    async def sleep(t):
        await _yield()


class Nvs:
    def __init__(self):
        self.d = {}

    def get_blob(self, k, buf):
        if k not in self.d:
            raise OSError(-0x1102)
        v = self.d[k]
        buf[: len(v)] = v
        return len(v)

    def set_blob(self, k, v):
        self.d[k] = bytes(v)

    def commit(self):
        pass


class Reader:
    # A socket's stream with the response waiting: each read yields once, as the bench's
    # asyncio stream does before it reads.
    def __init__(self, writer):
        self.w = writer
        self.f = None
        self.head = None

    def _open(self):
        self.f = open(self.w.sent.split(b" ")[1].decode(), "rb")  # the bundle's copy at /
        self.head = [b"HTTP/1.0 200 OK\r\n", b"\r\n"]

    async def readline(self):
        await _yield()
        if self.f is None:
            self._open()
        return self.head.pop(0)

    def _got(self, got):
        # What the bundle's copy gave; closed at its end.
        if not got:
            self.f.close()
        return got

    async def read(self, n):
        await _yield()
        return self._got(self.f.read(n))

    async def readinto(self, buf):
        await _yield()
        return self._got(self.f.readinto(buf))


class Writer(vmapp.Sink):
    # The request's stream: keeps what is sent (Reader opens the file it names).
    def __init__(self):
        super().__init__()
        self.sent = b""

    def write(self, data):
        self.sent += data


async def opener(host, port):
    w = Writer()
    return Reader(w), w


async def run(fig, peaks):
    clock, app, loop, built, front = await app_with_front(POLL)
    from bench import http, ota, trust

    with open(ANCHOR_FILE) as f:
        anchor = f.read().strip()
    with open("/manifest.json", "rb") as f:
        raw = f.read()
    sha = trust.hexlify(hashlib.sha256(raw).digest())
    manifest = json.loads(raw)

    # The signature check, and hashing the same canonical bytes (what any check needs).
    body = {}
    for k in manifest:
        if k != "sig":
            body[k] = manifest[k]
    text = trust.canonical(body).encode()
    reps = 20
    t0 = _us()
    for _ in range(reps):
        hashlib.sha256(text).digest()
    hash_us = (_us() - t0) // reps
    await vmkit.settle()
    gc.disable()
    a0 = gc.mem_alloc()
    t0 = _us()
    trust.verify_manifest(manifest, anchor)
    verify_us = _us() - t0
    verify_alloc = gc.mem_alloc() - a0
    gc.enable()
    t0 = _us()
    for _ in range(reps):
        trust.verify_manifest(manifest, anchor)
    verify_avg_us = (_us() - t0) // reps
    digest = hashlib.sha256(text).digest()
    t0 = _us()
    for _ in range(reps):
        vmkit.check(trust.rsa_verify(anchor, manifest["sig"], digest), "the signature verifies")
    rsa_us = (_us() - t0) // reps
    await vmkit.settle()

    i2c = app.i2c
    t = {"due": 0, "lat": None}

    def on_frame(data):
        if t["lat"] is None and t["due"]:
            t["lat"] = _us() - t["due"]

    i2c.on_frame = on_frame
    pads = front.pads
    state = {"runs": 0, "ok": 0, "stop": False, "bytes": 0, "chunks_ms": 0}
    events = []

    async def download():
        ota.asyncio = Yields
        HOLD["on"] = True
        while not state["stop"]:
            o = ota.Ota(vmkit.ROOT, trust.Trust(Nvs(), anchor), lambda *a: events.append(a[0]))
            o.fetch = lambda url: http.http_get(url, opener)
            started = _us()
            ok = await o.run("http://gw:8070/manifest.json", manifest["version"], sha)
            state["runs"] += 1
            state["ok"] += 1 if ok else 0
            vmkit.check(ok, "the download verifies: " + o.error)
            state["chunks_ms"] += (_us() - started) // 1000
            events.clear()

    async def presses(n, lat):
        for k in range(n):
            clock.advance(61000)  # past confirmation + cooldown, under the hourly cap
            front.ui.tick()
            pad = pads[k % 4]
            for i in range(10):  # idle, then held 0.4 s of the app's clock
                if i == 2:
                    pad.v = 250
                front.touch.sample()
                clock.advance(50)
                await asyncio.sleep_ms(0)
            pad.v = 400
            t["lat"] = None
            t["due"] = _us() + 50000
            await asyncio.sleep_ms(50)  # Front.run()'s sampling period
            front.touch.sample()  # released: the press is recognised here
            vmkit.check(t["lat"] is not None, f"press {k} sent a frame")
            vmkit.check(front.ui.mode == "confirm", f"press {k} confirmed")
            lat.append(t["lat"])
            t["due"] = 0
            await loop.pump()

    base = []
    await presses(PRESSES, base)
    during = []
    task = asyncio.create_task(download())
    await asyncio.sleep_ms(20)  # under way
    t0 = time.ticks_ms()
    await presses(PRESSES, during)
    span = time.ticks_diff(time.ticks_ms(), t0)
    state["stop"] = True
    await task
    size = 0
    for f in manifest["files"]:
        size += f["size"]
    result = dict(fig)
    result.update(
        {
            "built": built,
            "presses": PRESSES,
            "fine": vmkit.fine_us is not None,
            "base_median_us": _median(base),
            "base_worst_us": max(base),
            "base_p95_us": sorted(base)[len(base) * 95 // 100],
            "dl_p95_us": sorted(during)[len(during) * 95 // 100],
            "dl_median_us": _median(during),
            "dl_worst_us": max(during),
            "hold_max_us": HOLD["max"],
            "holds": len(HOLDS),
            "hold_median_us": _median(HOLDS),
            "hold_p99_us": sorted(HOLDS)[len(HOLDS) * 99 // 100],
            "downloads": state["runs"],
            "download_ms": state["chunks_ms"] // max(1, state["runs"]),
            "bundle_bytes": size,
            "files": len(manifest["files"]),
            "span_ms": span,
            "key_bits": len(anchor) * 4,
            "hash_us": hash_us,
            "verify_us": verify_us,
            "verify_avg_us": verify_avg_us,
            "rsa_us": rsa_us,
            "verify_alloc": verify_alloc,
            "manifest_bytes": len(raw),
        }
    )
    return result
