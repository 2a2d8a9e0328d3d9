# mypy: ignore-errors
# (MicroPython code, run inside the VM by benchmarks/vm_core.py and benchmarks/vm_ui.py)
# The in-VM benchmarks' part loaded before their baseline: heap sampling, the interned-name
# report, and stand-ins for the hardware modules (machine, network), which an ESP32 has in
# ROM. Nothing here names a part of the app: every name this file interns is one the app
# would otherwise be charged for, or, for the hardware stand-ins, one the ESP32 has in ROM.
# What builds and drives the app (vmapp, dayrun, pressrun) is imported by measure() after
# the app's modules, and what that import costs is subtracted from the figures.
#
# Stand-ins, defined here on purpose (the MicroPython hardware fakes of boards/virtual/mp/
# are not used): Pin, TouchPad and WLAN hold a value; I2C only records writeto() (what the
# SSD1306 driver sends); the sensors (vmapp.Sensor) answer bus_mv()/current_ma() with values
# of a scripted day, not INA226/INA3221 registers over I2C. The real drivers for the seat mat
# (drivers.seat) and Wi-Fi statistics (drivers.wifi) run on top of these stand-ins.
import asyncio
import gc
import json
import time
from array import array
from binascii import crc32

# benchmarks/vm/binascii.py stands in for the ESP32's C binascii (see there): it must give
# the same CRC-32, or every spool record would fail its check.
if crc32(b"123456789") != 0xCBF43926 or crc32(b"56789", crc32(b"1234")) != 0xCBF43926:
    raise AssertionError("benchmarks/vm/binascii.py: crc32 differs from CRC-32/ISO-HDLC")

BOARD_FILE = "/boards/bench-v1.json"
ROOT = "/flash"  # the bench's file system (a launcher may point both elsewhere: unix_main.py)
# Module names as one string, split at run time: a short string literal here would be
# interned before the baseline, and the app's import of that module would not be charged.
# Modules resident on a healthy bench without the front (what App.start() leaves imported:
# bench.app and its imports, bench.link and bench.mqtt, what bench.startup builds the app
# from: power, session, window and the sensor drivers).
CORE_MODULES = (
    "bench.app bench.link bench.mqtt bench.power bench.session bench.window drivers.ina226 "
    "drivers.ina3221 drivers.bme280 drivers.seat drivers.wifi"
).split()
# What bench.front brings in on top: the touch pads, vote rules, screens, font, display.
FRONT_MODULES = (
    "bench.front bench.screens bench.font bench.fontdata bench.touch bench.voting drivers.ssd1306"
).split()


def now_us():
    # ticks_us (this port counts it in whole milliseconds) and a fine clock when the VM has
    # one (js.performance.now(): microseconds, VM only; an ESP32 has none).
    return time.ticks_us()


try:
    import js

    _perf = js.performance

    def fine_us():
        return int(_perf.now() * 1000)

except ImportError:
    fine_us = None


async def settle():
    # Collect and return the live heap. This port collects only when control returns to
    # JavaScript: gc.collect() marks it, a 2 ms sleep lets it happen (as klupa_vmrun does).
    # Twice: on a loaded machine the first yield may resume before the collection ran.
    for _ in range(2):
        gc.collect()
        await asyncio.sleep_ms(2)
    return gc.mem_alloc()


def names(label):
    # The interned-name pool, for the host to read: micropython.qstr_info() only prints, so a
    # "@@names <label>" line goes first and its "qstr pool: n_qstr=…, n_total_bytes=…" line
    # follows (benchmarks/vm_core.py parses the pair).
    import micropython

    print("@@names " + label)
    micropython.qstr_info()


def check(ok, what):
    # The benchmarks' own sanity checks (no unittest in the VM while they measure).
    if not ok:
        raise AssertionError("benchmark check failed: " + what)


class Peaks:
    # Per step of a benchmark (a window, a press): the most allocated between collections
    # (garbage included) and the highest live heap after one, with the step it came at; and
    # room for two series of per-step figures (a, b: `samples` ints each), so that recording
    # them allocates nothing while the heap is tracked (a growing list would be charged to the
    # app: 1,000 latencies in two lists came to 8 KiB). measure() makes the one instance
    # before its baseline, so none of it is charged to the app.
    def __init__(self, samples=0):
        self.a = array("i", bytes(4 * samples))
        self.b = array("i", bytes(4 * samples))
        self.reset(0)

    def reset(self, live):
        self.high = live
        self.high_at = 0
        self.burst = 0
        self.steps = 0
        self.before = 0

    def begin(self):
        self.before = gc.mem_alloc()

    def end(self):
        # The step's synchronous work is done: what it allocated since begin().
        grown = gc.mem_alloc() - self.before
        if grown > self.burst:
            self.burst = grown

    def note(self, live):
        # The live heap after the step's collection (await settle() in the caller's own frame:
        # a coroutine of ours would be live while it is sampled); returns it.
        self.steps += 1
        if live > self.high:
            self.high = live
            self.high_at = self.steps
        return live


def import_all(names):
    for name in names:
        __import__(name)


async def measure(run_module, marker, groups, samples=0):
    # Baseline; then each group of app modules imported (groups: ((label, modules), ...)),
    # the live heap after each; then the harness module run_module (which imports vmapp),
    # its cost as "harness"; then run_module.run(figures, peaks) and its result printed as one
    # "<marker>{json}" line. Figures taken after the harness import include its cost: the
    # host subtracts "start" and "harness" from them. run() gets a Peaks to track its steps
    # with room for `samples` figures per series.
    gc.threshold(4096)
    peaks = Peaks(samples)
    fig = {"start": await settle()}
    names("start")
    last = "start"
    for label, modules in groups:
        import_all(modules)
        fig[label] = await settle()
        names(label)
        last = label
    names("harness0")
    mod = __import__(run_module)
    fig["harness"] = await settle() - fig[last]
    names("harness1")
    result = await mod.run(fig, peaks)
    names("end")
    print(marker + json.dumps(result))


class Pin:
    OUT = 1
    IN = 0
    PULL_UP = 1
    PULL_DOWN = 2

    def __init__(self, n, mode=None, pull=None, value=None):
        self.n = n
        self.v = 1 if value is None else value

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v
        return None


class TouchPad:
    def __init__(self, pin):
        self.pin = pin
        self.v = 400

    def read(self):
        return self.v


class I2C:
    # Records what is written; on_frame(n) is called when a frame (GDDRAM data) goes out.
    def __init__(self, *args, **kwargs):
        self.writes = 0
        self.bytes = 0
        self.frames = 0
        self.on_frame = None

    def writeto(self, addr, data):
        self.writes += 1
        self.bytes += len(data)
        if data[0] == 0x40:
            self.frames += 1
            if self.on_frame is not None:
                self.on_frame(data)


class RTC:
    # RTC memory (outside the GC heap on an ESP32; here the one bytes object it holds is on it).
    v = b""

    def memory(self, data=None):
        if data is None:
            return RTC.v
        RTC.v = bytes(data)


class Machine:
    Pin = Pin
    TouchPad = TouchPad
    I2C = I2C
    RTC = RTC

    @staticmethod
    def reset_cause():
        return 1


class WLAN:
    def __init__(self, kind):
        self.kind = kind

    def isconnected(self):
        return True

    def active(self, on=None):
        return True

    def status(self, what=None):
        if what == "rssi":
            return -61
        if what == "stations":
            return [b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02"]
        return 1010


class Network:
    STA_IF = 0
    AP_IF = 1
    WLAN = WLAN


class Hw:
    machine = Machine
    network = Network
    esp32 = None
    ntptime = None
