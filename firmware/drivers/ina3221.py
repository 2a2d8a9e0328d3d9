# TI INA3221 three-channel shunt and bus monitor (datasheet SBOS576). 16-bit registers,
# MSB first; shunt and bus values sit in bits 15..3 (two's complement for the shunt).
try:
    from micropython import const
except ImportError:  # CPython with the virtual board

    def const(x):  # type: ignore[misc]
        return x


_CONFIG = const(0x00)
_MANUFACTURER = const(0xFE)  # 0x5449
_DIE = const(0xFF)  # 0x3220
# All channels on, 16 averages, 1.1 ms conversions, shunt and bus continuous.
_CONFIG_VALUE = const(0x7527)


class INA3221:
    def __init__(self, i2c, addr=0x40, shunt_ohm=(0.1, 0.1, 0.1)):
        self.i2c = i2c
        self.addr = addr
        self.buf = bytearray(2)
        # Shunt resistance per channel in micro-ohms, so current is integer maths.
        self.shunt_uohm = [int(r * 1000000) for r in shunt_ohm]
        self.configure()

    def _read(self, reg):
        self.i2c.readfrom_mem_into(self.addr, reg, self.buf)
        return (self.buf[0] << 8) | self.buf[1]

    def configure(self):
        if self._read(_MANUFACTURER) != 0x5449 or self._read(_DIE) != 0x3220:
            raise OSError("INA3221 not found at " + hex(self.addr))
        self.buf[0] = _CONFIG_VALUE >> 8
        self.buf[1] = _CONFIG_VALUE & 0xFF
        self.i2c.writeto_mem(self.addr, _CONFIG, self.buf)

    def shunt_uv(self, ch):
        v = self._read(2 * ch - 1)
        if v & 0x8000:
            v -= 0x10000
        return (v >> 3) * 40

    def bus_mv(self, ch):
        return (self._read(2 * ch) >> 3) * 8

    def current_ma(self, ch):
        return self.shunt_uv(ch) * 1000 // self.shunt_uohm[ch - 1]
