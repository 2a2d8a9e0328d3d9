# mypy: ignore-errors
# (MicroPython code for the VM; the CPython original is boards/virtual/hardware.py.)
# The virtual board's `machine` for firmware running inside the MicroPython VM (the VM
# test runner puts this folder on /lib; the REPL board gets it preloaded as /lib).
#
# `board` is the one bench this VM is: built at import from /board.json when that file exists
# (a provisioned board), or by `use(profile)` / `load(path)`. It carries the chip models on
# the I2C bus (INA226 solar and battery, INA3221 ports, BME280, SSD1306, at the profile's
# addresses) and the physical values a test sets, with the API of the CPython VirtualBoard:
#   machine.board.set_solar(18.4, 1.1); machine.board.set_battery(13.2, -0.4)
#   machine.board.set_port(2, 0.9); machine.board.set_seat(True); machine.board.set_env(18, 55)
#   machine.board.bus.detach(0x41)   # that chip stops answering (OSError ENODEV)
import json
import time

from chips import BME280, INA226, INA3221, SSD1306, I2CBus

PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5


class VirtualReset(SystemExit):
    # machine.reset() and friends: a SystemExit, so the REPL board restarts its VM.
    def __init__(self, cause):
        super().__init__(cause)
        self.cause = cause


class Board:
    def __init__(self, profile, uid=b"\x01"):
        self.profile = profile
        self.uid = uid
        self.bus = I2CBus()
        self.pins = {}
        self.touch = {}
        for p in profile["touch"]["pins"]:
            self.touch[p] = 600
        self.presses = {}  # pin -> (reading, from, until) in time.time() seconds
        self.touch_wake = {}  # pin -> TouchPad.config threshold
        self.adc = {}
        self.nvs = {}
        self.cause = PWRON_RESET
        self.wdt_timeout_ms = None
        self.wdt_fed_ms = 0
        self.link_up = True
        self.rssi = -60
        self.ap_clients = 0
        self.ntp_ok = True
        self.sleep_requests = []
        self.touch_wake = False
        self.solar = INA226(profile["solar"]["shunt_ohm"])
        self.battery = INA226(profile["battery"]["shunt_ohm"])
        self.bus.attach(profile["solar"]["addr"], self.solar)
        self.bus.attach(profile["battery"]["addr"], self.battery)
        shunts = {}
        for p in profile["ports"]:
            shunts.setdefault(p["addr"], [0.1, 0.1, 0.1])[p["channel"] - 1] = p["shunt_ohm"]
        for addr in shunts:
            sh = shunts[addr]
            self.bus.attach(addr, INA3221((sh[0], sh[1], sh[2])))
        self.port_demand = {}
        self.port_chips = {}
        self.pin_changed = {}  # pin -> ticks_ms of its last change of level
        for p in profile["ports"]:
            chip = self.bus.chips[p["addr"]]
            self.port_chips[p["n"]] = (chip, p["channel"] - 1)
            chip.source[p["channel"] - 1] = self._port_source(p["n"])
        self.env = None
        if profile.get("env"):
            self.env = BME280()
            self.bus.attach(profile["env"]["addr"], self.env)
        self.display = SSD1306()
        if profile.get("display"):
            self.bus.attach(profile["display"]["addr"], self.display)
        seat = profile["seat"]
        self.pins[seat["pin"]] = 1 if seat["active_low"] else 0

    # -- physical values, for tests
    def set_solar(self, volts, amps):
        self.solar.volts, self.solar.amps = volts, amps

    def set_battery(self, volts, amps):
        self.battery.volts, self.battery.amps = volts, amps

    def port_enabled(self, n):
        for p in self.profile["ports"]:
            if p["n"] == n:
                return bool(self.pins.get(p["enable_pin"], 0))
        raise ValueError(f"no port {n}")

    def _port_source(self, n):
        pin = None
        for p in self.profile["ports"]:
            if p["n"] == n:
                pin = p["enable_pin"]
        chip = self.port_chips[n][0]

        def read():
            on = bool(self.pins.get(pin, 0))
            at = self.pin_changed.get(pin)
            if at is not None and time.ticks_diff(time.ticks_ms(), at) < chip.settle_ms():
                on = not on  # the chip's averages still cover the time before the switch
            if not on:
                return 0.0, 0.0
            return self.port_demand.get(n, (5.1, 0.0))

        return read

    def set_port(self, n, amps, volts=5.1):
        # A device draws `amps` on port n (it flows only while the port is switched on).
        self.port_demand[n] = (volts, amps)

    def set_seat(self, occupied):
        seat = self.profile["seat"]
        self.pins[seat["pin"]] = int(occupied != seat["active_low"])

    def set_env(self, temp_c, rh):
        if self.env is not None:
            self.env.temp_c, self.env.rh = temp_c, rh

    def press(self, pin, reading, start, seconds):
        # A finger on touch pin `pin` from `start` (time.time()) for `seconds`.
        self.presses[pin] = (reading, start, start + seconds)

    def set_link(self, up):
        self.link_up = up

    def wdt_expired(self):
        if self.wdt_timeout_ms is None:
            return False
        return time.ticks_diff(time.ticks_ms(), self.wdt_fed_ms) > self.wdt_timeout_ms


board = None


def use(profile, uid=b"\x01"):
    # Make this VM the bench of `profile` (a board profile dict); returns the new board.
    global board
    board = Board(profile, uid)
    return board


def load(path="/board.json"):
    with open(path) as f:
        return use(json.load(f))


def _board():
    if board is None:
        raise OSError("virtual board: no /board.json; call machine.use(profile)")
    return board


def _watchdog():
    # The watchdog, not fed within its timeout, resets the board. This VM cannot interrupt
    # running code, so it bites at the next call into the hardware (I2C, pins, pads, feed).
    b = board
    if b is not None and b.wdt_expired():
        b.wdt_timeout_ms = None
        b.cause = WDT_RESET
        raise VirtualReset(WDT_RESET)


def _id(pin):
    return pin.id if hasattr(pin, "id") else int(pin)


class Pin:
    IN, OUT, OPEN_DRAIN = 1, 3, 7
    PULL_UP, PULL_DOWN = 1, 2
    IRQ_RISING, IRQ_FALLING = 1, 2

    def __init__(self, pin_id, mode=-1, pull=-1, value=None):
        self.id = pin_id
        self.pins = _board().pins
        if value is not None:
            self._set(value)
        elif pin_id not in self.pins:
            self.pins[pin_id] = 0

    def _set(self, v):
        v = 1 if v else 0
        if self.pins.get(self.id, 0) != v:  # when each output last changed (see INA3221)
            _board().pin_changed[self.id] = time.ticks_ms()
        self.pins[self.id] = v

    def value(self, v=None):
        _watchdog()
        if v is None:
            return self.pins.get(self.id, 0)
        self._set(v)

    def on(self):
        self._set(1)

    def off(self):
        self._set(0)

    def __call__(self, v=None):
        return self.value(v)


class I2C:
    def __init__(self, bus_id=0, scl=None, sda=None, freq=400000):
        self.bus = _board().bus

    def scan(self):
        return self.bus.scan()

    def readfrom_mem(self, addr, reg, n, addrsize=8):
        _watchdog()
        return self.bus.chip(addr).read(reg, n)

    def readfrom_mem_into(self, addr, reg, buf, addrsize=8):
        _watchdog()
        data = self.bus.chip(addr).read(reg, len(buf))
        for i in range(len(buf)):
            buf[i] = data[i]

    def readfrom(self, addr, n, stop=True):
        _watchdog()
        return self.bus.chip(addr).read(0, n)

    def writeto_mem(self, addr, reg, buf, addrsize=8):
        _watchdog()
        self.bus.chip(addr).write(reg, bytes(buf))

    def writeto(self, addr, buf, stop=True):
        _watchdog()
        chip = self.bus.chip(addr)  # an address-only probe: OSError if nobody answers
        data = bytes(buf)
        if data:
            chip.write(data[0], data[1:])
        return 1

    def writevto(self, addr, bufs, stop=True):
        return self.writeto(addr, b"".join(bytes(b) for b in bufs), stop)


SoftI2C = I2C


class ADC:
    ATTN_0DB, ATTN_2_5DB, ATTN_6DB, ATTN_11DB = 0, 1, 2, 3

    def __init__(self, pin, atten=None):
        self.id = _id(pin)

    def read_u16(self):
        return _board().adc.get(self.id, 0)


class TouchPad:
    def __init__(self, pin):
        self.id = _id(pin)
        if self.id not in _board().touch:
            raise ValueError("invalid pin for touchpad")

    def read(self):
        _watchdog()
        b = _board()
        timed = b.presses.get(self.id)
        if timed is not None and timed[1] <= time.time() < timed[2]:
            return timed[0]
        return b.touch.get(self.id, 0)

    def config(self, value):
        # The ESP32 wakes from light sleep on a reading below this (0 until set: never).
        _board().touch_wake[self.id] = value


class WDT:
    def __init__(self, id=0, timeout=5000):
        b = _board()
        b.wdt_timeout_ms = timeout
        b.wdt_fed_ms = time.ticks_ms()

    def feed(self):
        _watchdog()  # too late: it has bitten already
        _board().wdt_fed_ms = time.ticks_ms()


class RTC:
    def datetime(self, t=None):
        g = time.gmtime()
        return (g[0], g[1], g[2], g[6], g[3], g[4], g[5], 0)

    def memory(self, data=None):
        mem = _board().nvs.setdefault("__rtc__", {})
        if data is None:
            return mem.get("mem", b"")
        mem["mem"] = bytes(data)


def reset():
    raise VirtualReset(HARD_RESET)


def soft_reset():
    raise VirtualReset(SOFT_RESET)


def deepsleep(ms=0):
    _board().sleep_requests.append(("deep", ms))
    raise VirtualReset(DEEPSLEEP_RESET)


def lightsleep(ms=0):
    _watchdog()
    r = _board().sleep_requests
    r.append(("light", ms))
    del r[:-1000]  # the latest thousand are plenty for a test


def reset_cause():
    return _board().cause


def unique_id():
    return _board().uid


def freq(*a):
    return 240000000


try:
    load()
except (OSError, ValueError, KeyError, TypeError):
    # No /board.json (a test calls use(profile)), or one the firmware itself will reject:
    # `import machine` works as on a real board; the hardware answers once use() is called.
    pass
