# mypy: ignore-errors
# The virtual board: one bench's hardware, the one model of it. The MicroPython VM runs it
# (this folder is its /lib; `machine` keeps the VM's one board, machine.board) and CPython
# imports it as boards.virtual.mp.virtualboard (boards/virtual/hardware.py gives each bench
# its own), so it keeps to what MicroPython has.
#
# A Board carries the chip models on the I2C bus (INA226 solar and battery, INA3221 ports,
# BME280, SSD1306, at the profile's addresses) and the physical values a test or the physics
# sets:
#   board.set_solar(18.4, 1.1); board.set_battery(13.2, -0.4)
#   board.set_port(2, 0.9); board.set_seat(True); board.set_env(18, 55)
#   board.bus.detach(0x41)   # that chip stops answering (OSError ENODEV)
# `clock` is where it reads time, with the names of MicroPython's `time` (ticks_ms,
# ticks_diff, time, gmtime, and sleep_ms for a light sleep): that module itself in the VM.
import sys
import time

try:
    from chips import BME280, INA226, INA3221, SSD1306, I2CBus
except ImportError:  # CPython, where this folder is the package boards.virtual.mp
    from boards.virtual.mp.chips import BME280, INA226, INA3221, SSD1306, I2CBus

PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5

# A reset ends the program. In the VM it is a SystemExit, so the REPL board restarts its VM;
# on CPython it is not one, for asyncio lets a SystemExit out of the loop that runs the benches.
_Reset = SystemExit if sys.implementation.name == "micropython" else BaseException


class VirtualReset(_Reset):
    # machine.reset() and friends: the bench restarts with `cause`.
    def __init__(self, cause):
        super().__init__(cause)
        self.cause = cause


class Board:
    # hosted: the bench runs under a host that supervises it (boards.virtual.bench on
    # CPython): its own watchdog bites from outside the app, so the board's does not at the
    # next call into the hardware; and its firmware cannot wait synchronously (CPython's
    # `time` has no sleep_ms), so the chips answer at once instead of after their
    # conversions, and a light sleep is only recorded (the firmware waits on the host's clock).
    def __init__(self, profile, uid=b"\x01", clock=time, hosted=False):
        self.profile = profile
        self.uid = uid
        self.clock = clock
        self.hosted = hosted
        self.bus = I2CBus()
        self.pins = {}
        self.pin_changed = {}  # pin -> clock.ticks_ms() of its last change of level
        self.touch = {}
        for p in profile["touch"]["pins"]:
            self.touch[p] = 600
        # Timed presses: pin -> (reading, from, until) in clock.time() seconds, so that a
        # press lasts exactly its length however late the code that reads the pad runs.
        self.presses = {}
        self.touch_wake = {}  # pin -> TouchPad.config threshold (0 until set: never)
        self.wake_on_touch = False  # esp32.wake_on_touch(): a touch ends a light sleep
        self.adc = {}
        self.nvs = {}
        self.cause = PWRON_RESET
        self.wdt_timeout_ms = None
        self.wdt_fed_ms = 0.0  # clock.ticks_ms() at the last feed
        self.link_up = True
        self.rssi = -60
        self.ap_clients = 0
        self.ntp_ok = True
        self.sleep_requests = []
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
        for p in profile["ports"]:
            chip = self.bus.chips[p["addr"]]
            self.port_chips[p["n"]] = (chip, p["channel"] - 1)
            chip.source[p["channel"] - 1] = self._port_source(p)
        self.env = None
        if profile.get("env"):
            self.env = BME280(None if hosted else clock)
            self.bus.attach(profile["env"]["addr"], self.env)
        self.display = SSD1306()
        if profile.get("display"):
            self.bus.attach(profile["display"]["addr"], self.display)
        seat = profile["seat"]
        self.pins[seat["pin"]] = 1 if seat["active_low"] else 0

    # -- physical values, for tests and the physics
    def set_solar(self, volts, amps):
        self.solar.volts, self.solar.amps = volts, amps

    def set_battery(self, volts, amps):
        self.battery.volts, self.battery.amps = volts, amps

    def port_enabled(self, n):
        for p in self.profile["ports"]:
            if p["n"] == n:
                return bool(self.pins.get(p["enable_pin"], 0))
        raise ValueError("no port " + str(n))

    def _port_source(self, port):
        pin = port["enable_pin"]
        n = port["n"]
        chip = self.port_chips[n][0]

        def read():
            on = bool(self.pins.get(pin, 0))
            at = self.pin_changed.get(pin)
            if not self.hosted and at is not None:
                if self.clock.ticks_diff(self.clock.ticks_ms(), at) < chip.settle_ms():
                    on = not on  # the chip's averages still cover the time before the switch
            if not on:
                return 0.0, 0.0
            return self.port_demand.get(n, (5.1, 0.0))

        return read

    def set_pin(self, pin, v):
        # Drive an output (machine.Pin): the level, and when it last changed (see INA3221).
        v = 1 if v else 0
        if self.pins.get(pin, 0) != v:
            self.pin_changed[pin] = self.clock.ticks_ms()
        self.pins[pin] = v

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
        # A finger on touch pin `pin` from `start` (clock.time()) for `seconds`.
        self.presses[pin] = (reading, start, start + seconds)

    def touch_reading(self, pin):
        timed = self.presses.get(pin)
        if timed is not None and timed[1] <= self.clock.time() < timed[2]:
            return timed[0]
        return self.touch.get(pin, 0)

    def touch_wakes(self):
        # Would a touch end a light sleep now: touch is a wake-up source and a pad's reading
        # is past its threshold (the ESP32 wakes below it, the S3, whose readings rise, above).
        if not self.wake_on_touch:
            return False
        rises = self.profile["touch"].get("direction", "falls") == "rises"
        for pin in self.touch_wake:
            level = self.touch_wake[pin]
            reading = self.touch_reading(pin)
            if level and (reading > level if rises else reading < level):
                return True
        return False

    def light_sleep(self, ms):
        # machine.lightsleep(ms): the CPU stops for ms, or until a touch wakes it.
        c = self.clock
        start = c.ticks_ms()
        while not self.touch_wakes():
            left = ms - c.ticks_diff(c.ticks_ms(), start)
            if left <= 0:
                return
            c.sleep_ms(min(left, 10))

    def set_link(self, up):
        self.link_up = up

    def wdt_expired(self):
        if self.wdt_timeout_ms is None:
            return False
        return self.clock.ticks_diff(self.clock.ticks_ms(), self.wdt_fed_ms) > self.wdt_timeout_ms
