# Bosch BME280 temperature, humidity and pressure (datasheet BST-BME280-DS002), with the
# datasheet's integer compensation.
try:
    from micropython import const
except ImportError:  # CPython with the virtual board

    def const(x):  # type: ignore[misc]
        return x


_ID = const(0xD0)  # 0x60
_RESET = const(0xE0)
_CTRL_HUM = const(0xF2)
_CTRL_MEAS = const(0xF4)
_CONFIG = const(0xF5)
_DATA = const(0xF7)  # press[3], temp[3], hum[2]


def _s16(v):
    return v - 0x10000 if v & 0x8000 else v


class BME280:
    def __init__(self, i2c, addr=0x76):
        self.i2c = i2c
        self.addr = addr
        if i2c.readfrom_mem(addr, _ID, 1)[0] != 0x60:
            raise OSError("BME280 not found at " + hex(addr))
        c = i2c.readfrom_mem(addr, 0x88, 26)
        u = lambda i: c[i] | (c[i + 1] << 8)  # noqa: E731
        # Calibration as tuples (T1..T3, P1..P9, H1..H6), unpacked where used.
        self.t = (u(0), _s16(u(2)), _s16(u(4)))
        self.p = tuple([u(6)] + [_s16(u(8 + 2 * i)) for i in range(8)])
        h = i2c.readfrom_mem(addr, 0xE1, 7)
        h4 = (h[3] << 4) | (h[4] & 0x0F)
        h5 = (h[5] << 4) | (h[4] >> 4)
        self.h = (
            c[25],
            _s16(h[0] | (h[1] << 8)),
            h[2],
            h4 - 0x1000 if h4 & 0x800 else h4,
            h5 - 0x1000 if h5 & 0x800 else h5,
            h[6] - 256 if h[6] & 0x80 else h[6],
        )
        # Humidity x1, then temperature and pressure x1, normal mode, standby 1 s.
        i2c.writeto_mem(addr, _CTRL_HUM, b"\x01")
        i2c.writeto_mem(addr, _CONFIG, b"\xa0")
        i2c.writeto_mem(addr, _CTRL_MEAS, b"\x27")
        try:
            import time

            time.sleep_ms(10)  # the first measurement: 9.3 ms at x1 oversampling
        except AttributeError:  # CPython: the virtual board has one at once
            pass

    def read_raw(self):
        d = self.i2c.readfrom_mem(self.addr, _DATA, 8)
        p = (d[0] << 12) | (d[1] << 4) | (d[2] >> 4)
        t = (d[3] << 12) | (d[4] << 4) | (d[5] >> 4)
        h = (d[6] << 8) | d[7]
        return t, p, h

    def _t_fine(self, adc_t):
        t1, t2, t3 = self.t
        v1 = (((adc_t >> 3) - (t1 << 1)) * t2) >> 11
        v2 = (((((adc_t >> 4) - t1) * ((adc_t >> 4) - t1)) >> 12) * t3) >> 14
        return v1 + v2

    def read(self):
        # (centi-degrees C, milli-percent RH, pascal)
        adc_t, adc_p, adc_h = self.read_raw()
        if adc_t == adc_p == 0x80000 and adc_h == 0x8000:  # the registers' reset values
            raise OSError("BME280 has no measurement (asleep, or not done yet)")
        tf = self._t_fine(adc_t)
        t = (tf * 5 + 128) >> 8
        h1, h2, h3, h4, h5, h6 = self.h
        v = tf - 76800
        v = ((((adc_h << 14) - (h4 << 20) - (h5 * v)) + 16384) >> 15) * (
            ((((((v * h6) >> 10) * (((v * h3) >> 11) + 32768)) >> 10) + 2097152) * h2 + 8192) >> 14
        )
        v = v - (((((v >> 15) * (v >> 15)) >> 7) * h1) >> 4)
        v = 0 if v < 0 else v
        v = 419430400 if v > 419430400 else v
        h = (v >> 12) * 1000 // 1024
        return t, h, self._pressure(tf, adc_p)

    def _pressure(self, tf, adc_p):
        p1, p2, p3, p4, p5, p6, p7, p8, p9 = self.p
        v1 = tf - 128000
        v2 = v1 * v1 * p6
        v2 = v2 + ((v1 * p5) << 17)
        v2 = v2 + (p4 << 35)
        v1 = ((v1 * v1 * p3) >> 8) + ((v1 * p2) << 12)
        v1 = (((1 << 47) + v1) * p1) >> 33
        if v1 == 0:
            return 0
        p = 1048576 - adc_p
        p = (((p << 31) - v2) * 3125) // v1
        v1 = (p9 * (p >> 13) * (p >> 13)) >> 25
        v2 = (p8 * p) >> 19
        p = ((p + v1 + v2) >> 8) + (p7 << 4)
        return p >> 8
