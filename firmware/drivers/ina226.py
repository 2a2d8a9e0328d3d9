# TI INA226 current/power monitor (datasheet SBOS547A). Registers are 16-bit, MSB first.
try:
    from micropython import const
except ImportError:  # CPython with the virtual board

    def const(x):  # type: ignore[misc]
        return x


_CONFIG = const(0x00)
_SHUNT = const(0x01)  # signed, 2.5 uV/LSB
_BUS = const(0x02)  # 1.25 mV/LSB
_POWER = const(0x03)  # 25 x current LSB
_CURRENT = const(0x04)  # signed, current LSB
_CALIB = const(0x05)
_MANUFACTURER = const(0xFE)  # 0x5449 "TI"
_DIE = const(0xFF)  # 0x2260
# 16 averages, 1.1 ms bus and shunt conversion, shunt and bus continuous.
_CONFIG_VALUE = const(0x4527)


class INA226:
    def __init__(self, i2c, addr=0x40, shunt_ohm=0.002, max_a=20.0):
        self.i2c = i2c
        self.addr = addr
        self.buf = bytearray(2)
        # Current LSB in microamps, rounded up to a whole number so that integer maths is exact.
        self.lsb_ua = int(max_a * 1000000 / 32768) + 1
        self.cal = int(0.00512 / (self.lsb_ua * 1e-6 * shunt_ohm))
        if self.cal > 0x7FFF:  # 15 bits (register 05h; bit 15 is reserved)
            raise ValueError("INA226 shunt too small for max_a")
        self.configure()

    def _read(self, reg):
        self.i2c.readfrom_mem_into(self.addr, reg, self.buf)
        return (self.buf[0] << 8) | self.buf[1]

    def _write(self, reg, value):
        self.buf[0] = value >> 8
        self.buf[1] = value & 0xFF
        self.i2c.writeto_mem(self.addr, reg, self.buf)

    def configure(self):
        if self._read(_MANUFACTURER) != 0x5449 or self._read(_DIE) & 0xFFF0 != 0x2260:
            raise OSError("INA226 not found at " + hex(self.addr))
        self._write(_CONFIG, _CONFIG_VALUE)
        self._write(_CALIB, self.cal)

    def bus_mv(self):
        return self._read(_BUS) * 5 // 4

    def shunt_uv(self):
        v = self._read(_SHUNT)
        if v & 0x8000:
            v -= 0x10000
        return v * 5 // 2

    def current_ma(self):
        v = self._read(_CURRENT)
        if v & 0x8000:
            v -= 0x10000
        return v * self.lsb_ua // 1000

    def power_mw(self):
        return self._read(_POWER) * 25 * self.lsb_ua // 1000
