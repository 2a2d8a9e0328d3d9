"""The virtual board: host versions of MicroPython's ``machine``, ``network``, ``esp32`` and
``ntptime`` for one bench, wired to the chip models from its board profile.

Every bench gets its own :class:`VirtualBoard`; its ``machine``, ``network``, ``esp32`` and
``ntptime`` attributes are module objects with the MicroPython API, so several benches can
share one process. :func:`boards.virtual.install` puts one board's modules in ``sys.modules``
for firmware that does ``import machine``.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable
from typing import Any

from boards.virtual.chips import BME280, INA226, INA3221, I2CBus
from boards.virtual.clock import VirtualClock
from boards.virtual.display import SSD1306Model

PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5


class VirtualReset(BaseException):  # noqa: N818 - it is a reset, not an error
    """machine.reset() and friends: the bench restarts with ``cause``."""

    def __init__(self, cause: int) -> None:
        super().__init__(cause)
        self.cause = cause


class WatchdogBite(BaseException):  # noqa: N818 - it is the watchdog, not an error
    """Raised in firmware stuck in synchronous code when its watchdog expires (VirtualBench)."""


class VirtualBoard:
    def __init__(self, profile: dict[str, Any], clock: VirtualClock, uid: bytes = b"\x01") -> None:
        self.profile = profile
        self.clock = clock
        self.uid = uid
        self.bus = I2CBus()
        self.pins: dict[int, int] = {}
        self.touch: dict[int, int] = {p: 600 for p in profile["touch"]["pins"]}
        # Timed presses: pin -> (reading, from, until) on the bench's clock, so that a press
        # lasts exactly its length however late the simulator's event loop gets round to it.
        self.presses: dict[int, tuple[int, float, float]] = {}
        self.touch_wake: dict[int, int] = {}  # pin -> TouchPad.config threshold
        self.adc: dict[int, int] = {}
        self.nvs: dict[str, dict[str, Any]] = {}
        self.cause = PWRON_RESET
        self.wdt_timeout_ms: int | None = None
        self.wdt_fed_ms = 0.0
        self.link_up = True
        self.rssi = -60
        self.ap_clients = 0
        self.ntp_ok = True
        self.sleep_requests: list[tuple[str, int]] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.solar = INA226(profile["solar"]["shunt_ohm"])
        self.battery = INA226(profile["battery"]["shunt_ohm"])
        self.bus.attach(profile["solar"]["addr"], self.solar)
        self.bus.attach(profile["battery"]["addr"], self.battery)
        self.port_chips: dict[int, tuple[INA3221, int]] = {}
        shunts: dict[int, list[float]] = {}
        for p in profile["ports"]:
            shunts.setdefault(p["addr"], [0.1, 0.1, 0.1])[p["channel"] - 1] = p["shunt_ohm"]
        for addr, sh in shunts.items():
            self.bus.attach(addr, INA3221((sh[0], sh[1], sh[2])))
        self.port_demand: dict[int, tuple[float, float]] = {}
        for p in profile["ports"]:
            chip = self.bus.chips[p["addr"]]
            assert isinstance(chip, INA3221)
            self.port_chips[p["n"]] = (chip, p["channel"] - 1)
            chip.source[p["channel"] - 1] = self._port_source(p["n"])
        self.env: BME280 | None = None
        if profile.get("env"):
            self.env = BME280()
            self.bus.attach(profile["env"]["addr"], self.env)
        self.display = SSD1306Model()
        if profile.get("display"):
            self.bus.attach(profile["display"]["addr"], self.display)
        seat = profile["seat"]
        self.pins[seat["pin"]] = 1 if seat["active_low"] else 0
        self.machine = _machine_module(self)
        self.network = _network_module(self)
        self.esp32 = _esp32_module(self)
        self.ntptime = _ntptime_module(self)

    # -- physical values, for tests and the physics
    def set_solar(self, volts: float, amps: float) -> None:
        self.solar.volts, self.solar.amps = volts, amps

    def set_battery(self, volts: float, amps: float) -> None:
        self.battery.volts, self.battery.amps = volts, amps

    def port_enabled(self, n: int) -> bool:
        pin = next(p["enable_pin"] for p in self.profile["ports"] if p["n"] == n)
        return bool(self.pins.get(pin, 0))

    def _port_source(self, n: int) -> Callable[[], tuple[float, float]]:
        def read() -> tuple[float, float]:
            if not self.port_enabled(n):
                return 0.0, 0.0
            volts, amps = self.port_demand.get(n, (5.1, 0.0))
            return volts, amps

        return read

    def set_port(self, n: int, amps: float, volts: float = 5.1) -> None:
        """A device draws ``amps`` on port ``n`` (it flows only while the port is switched on)."""
        self.port_demand[n] = (volts, amps)

    def set_seat(self, occupied: bool) -> None:
        seat = self.profile["seat"]
        self.pins[seat["pin"]] = int(occupied != seat["active_low"])

    def set_env(self, temp_c: float, rh: float) -> None:
        if self.env is not None:
            self.env.temp_c, self.env.rh = temp_c, rh

    def press(self, pin: int, reading: int, start: float, seconds: float) -> None:
        """A finger on touch pin ``pin`` from ``start`` (the bench's clock) for ``seconds``."""
        self.presses[pin] = (reading, start, start + seconds)

    def set_link(self, up: bool) -> None:
        """Wi-Fi up or down; going down cuts every open connection of this bench."""
        self.link_up = up
        if not up:
            self.kill_sockets()

    def kill_sockets(self) -> None:
        """Abort this bench's TCP connections without a FIN handshake from the firmware."""
        for w in self.writers:
            try:
                w.transport.abort()
            except Exception:  # noqa: BLE001 - already closed
                pass
        self.writers.clear()

    def wdt_expired(self) -> bool:
        if self.wdt_timeout_ms is None:
            return False
        return self.clock.elapsed_ms() - self.wdt_fed_ms > self.wdt_timeout_ms

    async def open_connection(
        self, host: str, port: int, ssl: Any = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if not self.link_up:
            raise OSError(113, "EHOSTUNREACH (virtual Wi-Fi down)")
        if ssl is None:
            reader, writer = await asyncio.open_connection(host, port)
        else:
            reader, writer = await asyncio.open_connection(host, port, ssl=ssl)
        self.writers = [w for w in self.writers if not w.is_closing()] + [writer]
        return reader, writer


def _machine_module(board: VirtualBoard) -> types.ModuleType:
    m = types.ModuleType("machine")

    class Pin:
        IN, OUT, OPEN_DRAIN = 1, 3, 7
        PULL_UP, PULL_DOWN = 1, 2
        IRQ_RISING, IRQ_FALLING = 1, 2

        def __init__(self, pin_id: int, mode: int = -1, pull: int = -1, value: int | None = None):
            self.id = pin_id
            if value is not None:
                board.pins[pin_id] = int(bool(value))
            board.pins.setdefault(pin_id, 0)

        def value(self, v: int | None = None) -> int | None:
            if v is None:
                return board.pins.get(self.id, 0)
            board.pins[self.id] = int(bool(v))
            return None

        def on(self) -> None:
            board.pins[self.id] = 1

        def off(self) -> None:
            board.pins[self.id] = 0

        def __call__(self, v: int | None = None) -> int | None:
            return self.value(v)

    class I2C:
        def __init__(self, bus_id: int, scl: Any = None, sda: Any = None, freq: int = 400000):
            self.bus = board.bus

        def scan(self) -> list[int]:
            return self.bus.scan()

        def readfrom_mem(self, addr: int, reg: int, n: int, addrsize: int = 8) -> bytes:
            return self.bus.chip(addr).read(reg, n)

        def readfrom_mem_into(self, addr: int, reg: int, buf: bytearray, addrsize: int = 8) -> None:
            buf[:] = self.bus.chip(addr).read(reg, len(buf))

        def writeto_mem(self, addr: int, reg: int, buf: bytes, addrsize: int = 8) -> None:
            self.bus.chip(addr).write(reg, bytes(buf))

        def writeto(self, addr: int, buf: bytes, stop: bool = True) -> int:
            data = bytes(buf)
            if data:
                self.bus.chip(addr).write(data[0], data[1:])
            else:
                self.bus.chip(addr)  # an address-only probe: OSError if nobody answers
            return 1

        def writevto(self, addr: int, bufs: Any, stop: bool = True) -> int:
            return self.writeto(addr, b"".join(bytes(b) for b in bufs), stop)

    class ADC:
        def __init__(self, pin: Any, atten: int | None = None) -> None:
            self.id = pin.id if hasattr(pin, "id") else int(pin)

        def read_u16(self) -> int:
            return board.adc.get(self.id, 0)

    class TouchPad:
        def __init__(self, pin: Any) -> None:
            self.id = pin.id if hasattr(pin, "id") else int(pin)

        def read(self) -> int:
            timed = board.presses.get(self.id)
            if timed is not None and timed[1] <= board.clock.time() < timed[2]:
                return timed[0]
            return board.touch.get(self.id, 0)

        def config(self, value: int) -> None:
            # The ESP32 wakes from light sleep on a reading below this (0 until set: never).
            board.touch_wake[self.id] = value

    class WDT:
        def __init__(self, id: int = 0, timeout: int = 5000) -> None:  # noqa: A002
            board.wdt_timeout_ms = timeout
            board.wdt_fed_ms = board.clock.elapsed_ms()

        def feed(self) -> None:
            board.wdt_fed_ms = board.clock.elapsed_ms()

    class RTC:
        def datetime(self, t: Any = None) -> Any:
            import time as _t

            g = _t.gmtime(board.clock.time())
            return (g[0], g[1], g[2], g[6], g[3], g[4], g[5], 0)

        def memory(self, data: bytes | None = None) -> bytes | None:
            if data is None:
                return board.nvs.get("__rtc__", {}).get("mem", b"")
            board.nvs.setdefault("__rtc__", {})["mem"] = bytes(data)
            return None

    def reset() -> None:
        raise VirtualReset(HARD_RESET)

    def soft_reset() -> None:
        raise VirtualReset(SOFT_RESET)

    def deepsleep(ms: int = 0) -> None:
        board.sleep_requests.append(("deep", ms))
        raise VirtualReset(DEEPSLEEP_RESET)

    def lightsleep(ms: int = 0) -> None:
        board.sleep_requests.append(("light", ms))
        del board.sleep_requests[:-1000]  # the latest thousand are plenty for a test

    ns: dict[str, Any] = {
        "Pin": Pin,
        "I2C": I2C,
        "SoftI2C": I2C,
        "ADC": ADC,
        "TouchPad": TouchPad,
        "WDT": WDT,
        "RTC": RTC,
        "reset": reset,
        "soft_reset": soft_reset,
        "deepsleep": deepsleep,
        "lightsleep": lightsleep,
        "reset_cause": lambda: board.cause,
        "unique_id": lambda: board.uid,
        "freq": lambda *a: 240000000,
        "PWRON_RESET": PWRON_RESET,
        "HARD_RESET": HARD_RESET,
        "WDT_RESET": WDT_RESET,
        "DEEPSLEEP_RESET": DEEPSLEEP_RESET,
        "SOFT_RESET": SOFT_RESET,
    }
    m.__dict__.update(ns)
    return m


def _network_module(board: VirtualBoard) -> types.ModuleType:
    m = types.ModuleType("network")
    STA_IF, AP_IF = 0, 1  # noqa: N806
    STAT_IDLE, STAT_CONNECTING, STAT_GOT_IP, STAT_NO_AP_FOUND = 1000, 1001, 1010, 201  # noqa: N806

    class WLAN:
        def __init__(self, interface: int = STA_IF) -> None:
            self.interface = interface
            self._active = False
            self._wanted = False
            self._config: dict[str, Any] = {}

        def active(self, on: bool | None = None) -> bool:
            if on is not None:
                self._active = bool(on)
            return self._active

        def connect(self, ssid: str | None = None, key: str | None = None, **kw: Any) -> None:
            if not self._active:
                raise OSError("Wi-Fi Internal Error")
            self._wanted = True

        def disconnect(self) -> None:
            self._wanted = False

        def isconnected(self) -> bool:
            if self.interface == AP_IF:
                return self._active
            return self._active and self._wanted and board.link_up

        def status(self, param: str | None = None) -> Any:
            if param == "rssi":
                if not self.isconnected():
                    raise OSError("not connected")
                return board.rssi
            if param == "stations":
                if self.interface != AP_IF or not self._active:
                    raise OSError("Wifi Invalid Mode")  # the ESP32: only an active AP has any
                return [(bytes([2, 0, 0, 0, 0, i]),) for i in range(board.ap_clients)]
            if param is not None:
                raise ValueError("unknown status param")
            if self.isconnected():
                return STAT_GOT_IP
            return STAT_NO_AP_FOUND if self._wanted else STAT_IDLE

        def config(self, *args: str, **kw: Any) -> Any:
            if kw:
                self._config.update(kw)
                return None
            if args:
                if args[0] == "mac":
                    return b"\x24\x0a\xc4" + board.uid[-3:].rjust(3, b"\0")
                return self._config.get(args[0])
            return None

        def ifconfig(self, *a: Any) -> tuple[str, str, str, str]:
            return ("10.0.0.2", "255.255.255.0", "10.0.0.1", "10.0.0.1")

    m.__dict__.update(
        {
            "WLAN": WLAN,
            "STA_IF": STA_IF,
            "AP_IF": AP_IF,
            "STAT_IDLE": STAT_IDLE,
            "STAT_CONNECTING": STAT_CONNECTING,
            "STAT_GOT_IP": STAT_GOT_IP,
            "STAT_NO_AP_FOUND": STAT_NO_AP_FOUND,
        }
    )
    return m


def _esp32_module(board: VirtualBoard) -> types.ModuleType:
    m = types.ModuleType("esp32")

    class NVS:
        def __init__(self, namespace: str) -> None:
            self.data = board.nvs.setdefault(namespace, {})

        def set_i32(self, key: str, value: int) -> None:
            self.data[key] = int(value)

        def get_i32(self, key: str) -> int:
            if key not in self.data:
                raise OSError(-0x1102, "ESP_ERR_NVS_NOT_FOUND")
            return int(self.data[key])

        def set_blob(self, key: str, value: bytes) -> None:
            self.data[key] = bytes(value)

        def get_blob(self, key: str, buf: bytearray) -> int:
            if key not in self.data:
                raise OSError(-0x1102, "ESP_ERR_NVS_NOT_FOUND")
            v = self.data[key]
            buf[: len(v)] = v
            return len(v)

        def erase_key(self, key: str) -> None:
            self.data.pop(key, None)

        def commit(self) -> None:
            pass

    m.__dict__.update({"NVS": NVS, "raw_temperature": lambda: 120})
    return m


def _ntptime_module(board: VirtualBoard) -> types.ModuleType:
    m = types.ModuleType("ntptime")
    m.__dict__["host"] = "pool.ntp.org"
    m.__dict__["timeout"] = 1

    def ntp_time() -> int:
        if not board.link_up or not board.ntp_ok:
            raise OSError(110, "ETIMEDOUT")
        return int(board.clock.time())

    def settime() -> None:
        ntp_time()  # the virtual RTC is the virtual clock itself

    m.__dict__.update({"time": ntp_time, "settime": settime})
    return m
