# mypy: ignore-errors
# The virtual board's `machine`, with MicroPython's API over one Board
# (virtualboard.py). In the VM that is the bench the VM is, `machine.board`: built at import
# from /board.json when that file exists (a provisioned board), or by `use(profile)` /
# `load(path)`. On CPython boards/virtual/hardware.py loads this file afresh for each bench
# and sets its `board`, so several benches share one process.
import json

from virtualboard import (
    DEEPSLEEP_RESET,
    HARD_RESET,
    PWRON_RESET,
    SOFT_RESET,
    WDT_RESET,
    Board,
    VirtualReset,
)

__all__ = ["PWRON_RESET", "HARD_RESET", "WDT_RESET", "DEEPSLEEP_RESET", "SOFT_RESET"]
__all__ += ["VirtualReset", "Pin", "I2C", "SoftI2C", "ADC", "TouchPad", "WDT", "RTC", "reset"]
__all__ += ["soft_reset", "deepsleep", "lightsleep", "reset_cause", "unique_id", "freq"]
__all__ += ["board", "use", "load"]

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
    # The watchdog, not fed within its timeout, resets the board. The VM cannot interrupt
    # running code, so it bites at the next call into the hardware (I2C, pins, pads, feed).
    b = board
    if b is not None and not b.hosted and b.wdt_expired():
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
        b = _board()
        if value is not None:
            b.set_pin(pin_id, value)
        elif pin_id not in b.pins:
            b.pins[pin_id] = 0

    def value(self, v=None):
        _watchdog()
        if v is None:
            return _board().pins.get(self.id, 0)
        _board().set_pin(self.id, v)

    def on(self):
        _board().set_pin(self.id, 1)

    def off(self):
        _board().set_pin(self.id, 0)

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
        return _board().touch_reading(self.id)

    def config(self, value):
        # The ESP32 wakes from light sleep on a reading below this (0 until set: never),
        # once esp32.wake_on_touch(True) made touch a wake-up source.
        _board().touch_wake[self.id] = value


class WDT:
    def __init__(self, id=0, timeout=5000):
        b = _board()
        b.wdt_timeout_ms = timeout
        b.wdt_fed_ms = b.clock.ticks_ms()

    def feed(self):
        _watchdog()  # too late: it has bitten already
        b = _board()
        b.wdt_fed_ms = b.clock.ticks_ms()


class RTC:
    def datetime(self, t=None):
        g = _board().clock.gmtime()
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
    # The VM sleeps (until a touch when touch wakes it); a host's firmware instead waits on
    # the host's clock after the request.
    _watchdog()
    b = _board()
    r = b.sleep_requests
    r.append(("light", ms))
    del r[:-1000]  # the latest thousand are plenty for a test
    if not b.hosted:
        b.light_sleep(ms)


def reset_cause():
    return _board().cause


def unique_id():
    return _board().uid


def freq(*a):
    return 240000000


try:
    load()
except (OSError, ValueError, KeyError, TypeError):
    # No /board.json (a test calls use(profile); the host sets board), or one the firmware
    # itself will reject: `import machine` works as on a real board; the hardware answers
    # once there is a board.
    pass
