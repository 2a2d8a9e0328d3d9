"""Register-level models of the bench's I2C chips, answering on a simulated bus.

Each model holds the registers the datasheet names and derives the measurement registers
from physical values a test or the physics sets (volts, amps, degrees). Drivers talk to
them through :class:`I2CBus`, exactly as they talk to a ``machine.I2C``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable


def _u16(v: int) -> int:
    return v & 0xFFFF


def _clamp(v: int, lo: int, hi: int) -> int:
    return lo if v < lo else hi if v > hi else v


class Chip(abc.ABC):
    """A device on the bus: 8-bit register pointer, auto-increment on reads."""

    @abc.abstractmethod
    def read(self, reg: int, n: int) -> bytes:
        """``n`` bytes from register ``reg`` on."""

    @abc.abstractmethod
    def write(self, reg: int, data: bytes) -> None:
        """``data`` into register ``reg`` on."""


class Reg16Chip(Chip):
    """TI-style chips: 16-bit registers, MSB first, one register per address."""

    def __init__(self) -> None:
        self.regs: dict[int, int] = {}

    def reg(self, r: int) -> int:
        return self.regs.get(r, 0)

    def read(self, reg: int, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            v = self.reg(reg)
            out += bytes([(v >> 8) & 0xFF, v & 0xFF])
            reg += 1
        return bytes(out[:n])

    def write(self, reg: int, data: bytes) -> None:
        if len(data) >= 2:
            self.store(reg, (data[0] << 8) | data[1])

    def store(self, reg: int, value: int) -> None:
        self.regs[reg] = value


class INA226(Reg16Chip):
    """INA226: bus voltage 1.25 mV/LSB, shunt 2.5 uV/LSB, current = shunt x CAL / 2048."""

    def __init__(self, shunt_ohm: float) -> None:
        super().__init__()
        self.shunt_ohm = shunt_ohm
        self.volts = 0.0
        self.amps = 0.0
        # The shunt's errors as fitted (boards.virtual.battery.SHUNT): what the chip reads is
        # gain x amps + offset_a. None by default: a test that sets amps reads amps.
        self.gain = 1.0
        self.offset_a = 0.0
        self.regs = {0x00: 0x4127, 0x05: 0, 0x06: 0, 0x07: 0, 0xFE: 0x5449, 0xFF: 0x2260}

    def store(self, reg: int, value: int) -> None:
        if reg == 0x00 and value & 0x8000:  # reset bit
            self.regs[0x00] = 0x4127
            self.regs[0x05] = 0
        elif reg in (0x00, 0x06, 0x07):
            self.regs[reg] = value
        elif reg == 0x05:
            self.regs[reg] = value & 0x7FFF  # FS14..FS0; bit 15 is reserved

    def _shunt_raw(self) -> int:
        amps = self.amps * self.gain + self.offset_a
        return _clamp(round(amps * self.shunt_ohm / 2.5e-6), -32768, 32767)

    def reg(self, r: int) -> int:
        if r == 0x01:
            return _u16(self._shunt_raw())
        if r == 0x02:
            return _clamp(round(self.volts / 1.25e-3), 0, 0x7FFF)
        if r == 0x04:
            return _u16(_clamp(self._shunt_raw() * self.regs[0x05] // 2048, -32768, 32767))
        if r == 0x03:
            current = self._shunt_raw() * self.regs[0x05] // 2048
            bus = _clamp(round(self.volts / 1.25e-3), 0, 0x7FFF)
            return _clamp(abs(current) * bus // 20000, 0, 0xFFFF)
        return self.regs.get(r, 0)


class INA3221(Reg16Chip):
    """INA3221: per channel shunt 40 uV/LSB and bus 8 mV/LSB, both in bits 15..3."""

    def __init__(self, shunt_ohm: tuple[float, float, float] = (0.1, 0.1, 0.1)) -> None:
        super().__init__()
        self.shunt_ohm = shunt_ohm
        self.volts = [0.0, 0.0, 0.0]
        self.amps = [0.0, 0.0, 0.0]
        # When set, the channel's (volts, amps) come from here at each read (the board wires
        # it to the port's load switch and the device plugged in).
        self.source: list[Callable[[], tuple[float, float]] | None] = [None, None, None]
        self.regs = {0x00: 0x7127, 0xFE: 0x5449, 0xFF: 0x3220}

    def store(self, reg: int, value: int) -> None:
        if reg == 0x00:
            self.regs[0] = 0x7127 if value & 0x8000 else value
        elif 0x07 <= reg <= 0x10:
            self.regs[reg] = value & 0xFFF8

    def reg(self, r: int) -> int:
        if 0x01 <= r <= 0x06:
            ch = (r - 1) // 2
            src = self.source[ch]
            if src is not None:
                self.volts[ch], self.amps[ch] = src()
            if r % 2:  # shunt
                raw = _clamp(round(self.amps[ch] * self.shunt_ohm[ch] / 40e-6), -4096, 4095)
            else:
                raw = _clamp(round(self.volts[ch] / 8e-3), 0, 4095)
            return _u16(raw << 3)
        return self.regs.get(r, 0)


# BME280 trimming values (the datasheet's worked example set).
BME280_TRIM = {
    "T": (27504, 26435, -1000),
    "P": (36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000),
    "H": (75, 362, 0, 313, 50, 30),
}


class BME280(Chip):
    """BME280: byte registers; raw ADC values found by inverting the datasheet's floating
    point compensation (an independent path from the driver's integer maths)."""

    def __init__(self) -> None:
        self.temp_c = 20.0
        self.rh = 50.0
        self.pa = 101325.0
        self.mem = bytearray(256)
        self.mem[0xD0] = 0x60
        t, p, h = BME280_TRIM["T"], BME280_TRIM["P"], BME280_TRIM["H"]
        cal = bytearray()
        for v in t + p:
            cal += (v & 0xFFFF).to_bytes(2, "little")
        self.mem[0x88 : 0x88 + 24] = cal
        self.mem[0xA1] = h[0]
        h2, h3, h4, h5, h6 = h[1:]
        self.mem[0xE1:0xE3] = (h2 & 0xFFFF).to_bytes(2, "little")
        self.mem[0xE3] = h3
        self.mem[0xE4] = (h4 >> 4) & 0xFF
        self.mem[0xE5] = (h4 & 0x0F) | ((h5 & 0x0F) << 4)
        self.mem[0xE6] = (h5 >> 4) & 0xFF
        self.mem[0xE7] = h6 & 0xFF
        self.measuring = False  # ctrl_meas has started measurements since the last reset

    @staticmethod
    def t_fine(adc_t: float) -> float:
        t1, t2, t3 = BME280_TRIM["T"]
        v1 = (adc_t / 16384.0 - t1 / 1024.0) * t2
        x = adc_t / 131072.0 - t1 / 8192.0
        return v1 + x * x * t3

    @staticmethod
    def humidity(adc_h: float, tf: float) -> float:
        h1, h2, h3, h4, h5, h6 = BME280_TRIM["H"]
        v = tf - 76800.0
        v = (adc_h - (h4 * 64.0 + h5 / 16384.0 * v)) * (
            h2 / 65536.0 * (1.0 + h6 / 67108864.0 * v * (1.0 + h3 / 67108864.0 * v))
        )
        return v * (1.0 - h1 * v / 524288.0)

    @staticmethod
    def pressure(adc_p: float, tf: float) -> float:
        p1, p2, p3, p4, p5, p6, p7, p8, p9 = BME280_TRIM["P"]
        v1 = tf / 2.0 - 64000.0
        v2 = v1 * v1 * p6 / 32768.0 + v1 * p5 * 2.0
        v2 = v2 / 4.0 + p4 * 65536.0
        v1 = (p3 * v1 * v1 / 524288.0 + p2 * v1) / 524288.0
        v1 = (1.0 + v1 / 32768.0) * p1
        p = 1048576.0 - adc_p
        p = (p - v2 / 4096.0) * 6250.0 / v1
        return p + (p9 * p * p / 2147483648.0 + p * p8 / 32768.0 + p7) / 16.0

    @staticmethod
    def _invert(f: Callable[[int], float], target: float, hi: int, rising: bool) -> int:
        lo = 0
        while lo < hi:
            mid = (lo + hi) // 2
            below = f(mid) < target if rising else f(mid) > target
            if below:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def raw(self) -> tuple[int, int, int]:
        adc_t = self._invert(lambda a: self.t_fine(a) / 5120.0, self.temp_c, (1 << 20) - 1, True)
        tf = self.t_fine(adc_t)
        adc_h = self._invert(lambda a: self.humidity(a, tf), self.rh, 0xFFFF, True)
        adc_p = self._invert(lambda a: self.pressure(a, tf), self.pa, (1 << 20) - 1, False)
        return adc_t, adc_p, adc_h

    def read(self, reg: int, n: int) -> bytes:
        if reg <= 0xF7 < reg + n:
            if not self.measuring:
                # Asleep since power-on or a reset: the data registers hold their reset values
                # (0x80000 for T and P, 0x8000 for H). Once measuring, this model has a
                # measurement at once (the VM's model takes the chip's 9.3 ms).
                self.mem[0xF7:0xFF] = b"\x80\x00\x00\x80\x00\x00\x80\x00"
                return bytes(self.mem[reg : reg + n])
            t, p, h = self.raw()
            data = [p >> 12, (p >> 4) & 0xFF, (p & 0xF) << 4, t >> 12, (t >> 4) & 0xFF]
            data += [(t & 0xF) << 4, h >> 8, h & 0xFF]
            self.mem[0xF7:0xFF] = bytes(data)
        return bytes(self.mem[reg : reg + n])

    def write(self, reg: int, data: bytes) -> None:
        for i, b in enumerate(data):
            r = reg + i
            if r == 0xE0 and b == 0xB6:
                self.mem[0xF2] = self.mem[0xF4] = self.mem[0xF5] = 0
                self.measuring = False
            elif r in (0xF2, 0xF4, 0xF5):
                self.mem[r] = b
                if r == 0xF4 and b & 3 and b >> 5:  # forced or normal mode, T measured
                    self.measuring = True


class I2CBus:
    """The simulated bus: chips by 7-bit address; a missing address NACKs (OSError 19)."""

    def __init__(self) -> None:
        self.chips: dict[int, Chip] = {}

    def attach(self, addr: int, chip: Chip) -> None:
        self.chips[addr] = chip

    def chip(self, addr: int) -> Chip:
        c = self.chips.get(addr)
        if c is None:
            raise OSError(19, "ENODEV")
        return c

    def scan(self) -> list[int]:
        return sorted(self.chips)
