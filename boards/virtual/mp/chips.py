# mypy: ignore-errors
# Register-level models of the bench's I2C chips on a simulated bus: the one model of each,
# run by the MicroPython VM (this folder is its /lib) and imported by CPython as
# boards.virtual.mp.chips, so it keeps to what MicroPython has. Measurement registers come
# from physical values a test or the physics sets (volts, amps, degrees); the drivers read
# them through the same register traffic as on the bench. A missing address NACKs with
# OSError(ENODEV).
import errno


def _clamp(v, lo, hi):
    return lo if v < lo else hi if v > hi else v


class Reg16Chip:
    # TI-style chips: 16-bit registers, MSB first, one register per address.
    def __init__(self):
        self.regs = {}

    def reg(self, r):
        return self.regs.get(r, 0)

    def read(self, reg, n):
        out = bytearray()
        while len(out) < n:
            v = self.reg(reg)
            out.append((v >> 8) & 0xFF)
            out.append(v & 0xFF)
            reg += 1
        return bytes(out[:n])

    def write(self, reg, data):
        if len(data) >= 2:
            self.store(reg, (data[0] << 8) | data[1])

    def store(self, reg, value):
        self.regs[reg] = value


class INA226(Reg16Chip):
    # Bus voltage 1.25 mV/LSB, shunt 2.5 uV/LSB, current = shunt x CAL / 2048.
    def __init__(self, shunt_ohm):
        super().__init__()
        self.shunt_ohm = shunt_ohm
        self.volts = 0.0
        self.amps = 0.0
        # The shunt's errors as fitted (boards.virtual.battery.SHUNT): the chip reads
        # gain x amps + offset_a. None by default: a test that sets amps reads amps.
        self.gain = 1.0
        self.offset_a = 0.0
        self.regs = {0x00: 0x4127, 0x05: 0, 0x06: 0, 0x07: 0, 0xFE: 0x5449, 0xFF: 0x2260}

    def store(self, reg, value):
        if reg == 0x00 and value & 0x8000:  # reset bit
            self.regs[0x00] = 0x4127
            self.regs[0x05] = 0
        elif reg in (0x00, 0x06, 0x07):
            self.regs[reg] = value
        elif reg == 0x05:
            self.regs[reg] = value & 0x7FFF  # FS14..FS0; bit 15 is reserved

    def _shunt(self):
        amps = self.amps * self.gain + self.offset_a
        return _clamp(round(amps * self.shunt_ohm / 2.5e-6), -32768, 32767)

    def _bus(self):
        return _clamp(round(self.volts / 1.25e-3), 0, 0x7FFF)

    def reg(self, r):
        if r == 0x01:
            return self._shunt() & 0xFFFF
        if r == 0x02:
            return self._bus()
        current = self._shunt() * self.regs[0x05] // 2048
        if r == 0x04:
            return _clamp(current, -32768, 32767) & 0xFFFF
        if r == 0x03:
            return _clamp(abs(current) * self._bus() // 20000, 0, 0xFFFF)
        return self.regs.get(r, 0)


class INA3221(Reg16Chip):
    # Per channel: shunt 40 uV/LSB and bus 8 mV/LSB, both in bits 15..3.
    def __init__(self, shunt_ohm=(0.1, 0.1, 0.1)):
        super().__init__()
        self.shunt_ohm = shunt_ohm
        self.volts = [0.0, 0.0, 0.0]
        self.amps = [0.0, 0.0, 0.0]
        # Per channel, a function giving (volts, amps) at each read (the board wires it to
        # the port's load switch and the device plugged in), or None for the fixed values.
        self.source = [None, None, None]
        self.regs = {0x00: 0x7127, 0xFE: 0x5449, 0xFF: 0x3220}

    def store(self, reg, value):
        if reg == 0x00:
            self.regs[0] = 0x7127 if value & 0x8000 else value
        elif 0x07 <= reg <= 0x10:
            self.regs[reg] = value & 0xFFF8

    def settle_ms(self):
        # After a change at its inputs, how long until a reading averages only the new level:
        # two conversion cycles as configured (channels on x averages x (bus + shunt
        # conversion time), datasheet register 00h). The board applies it to its ports.
        c = self.regs[0]
        chans = ((c >> 14) & 1) + ((c >> 13) & 1) + ((c >> 12) & 1)
        avg = (1, 4, 16, 64, 128, 256, 512, 1024)[(c >> 9) & 7]
        ct = (140, 204, 332, 588, 1100, 2116, 4156, 8244)
        return 2 * chans * avg * (ct[(c >> 6) & 7] + ct[(c >> 3) & 7]) // 1000

    def reg(self, r):
        if 0x01 <= r <= 0x06:
            ch = (r - 1) // 2
            src = self.source[ch]
            if src is not None:
                self.volts[ch], self.amps[ch] = src()
            if r % 2:
                raw = _clamp(round(self.amps[ch] * self.shunt_ohm[ch] / 40e-6), -4096, 4095)
            else:
                raw = _clamp(round(self.volts[ch] / 8e-3), 0, 4095)
            return (raw << 3) & 0xFFFF
        return self.regs.get(r, 0)


# BME280 trimming values (the datasheet's worked example set).
T_TRIM = (27504, 26435, -1000)
P_TRIM = (36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)
H_TRIM = (75, 362, 0, 313, 50, 30)


def _t_fine(adc_t):
    t1, t2, t3 = T_TRIM
    x = adc_t / 131072.0 - t1 / 8192.0
    return (adc_t / 16384.0 - t1 / 1024.0) * t2 + x * x * t3


def _humidity(adc_h, tf):
    h1, h2, h3, h4, h5, h6 = H_TRIM
    v = tf - 76800.0
    v = (adc_h - (h4 * 64.0 + h5 / 16384.0 * v)) * (
        h2 / 65536.0 * (1.0 + h6 / 67108864.0 * v * (1.0 + h3 / 67108864.0 * v))
    )
    return v * (1.0 - h1 * v / 524288.0)


def _pressure(adc_p, tf):
    p1, p2, p3, p4, p5, p6, p7, p8, p9 = P_TRIM
    v1 = tf / 2.0 - 64000.0
    v2 = v1 * v1 * p6 / 32768.0 + v1 * p5 * 2.0
    v2 = v2 / 4.0 + p4 * 65536.0
    v1 = (p3 * v1 * v1 / 524288.0 + p2 * v1) / 524288.0
    v1 = (1.0 + v1 / 32768.0) * p1
    p = (1048576.0 - adc_p - v2 / 4096.0) * 6250.0 / v1
    return p + (p9 * p * p / 2147483648.0 + p * p8 / 32768.0 + p7) / 16.0


def _invert(f, target, hi, rising):
    # The smallest raw value whose compensated reading reaches target (f is monotonic).
    lo = 0
    while lo < hi:
        mid = (lo + hi) // 2
        if (f(mid) < target) if rising else (f(mid) > target):
            lo = mid + 1
        else:
            hi = mid
    return lo


class BME280:
    # Byte registers; the raw ADC values are found by inverting the datasheet's floating
    # point compensation, a path independent of the driver's integer maths. `clock` (with
    # MicroPython's ticks_ms and ticks_diff) times its first measurement, 9.3 ms as on the
    # bench; without one it has a measurement as soon as it is started.
    def __init__(self, clock=None):
        self.clock = clock
        self.temp_c = 20.0
        self.rh = 50.0
        self.pa = 101325.0
        m = bytearray(256)
        m[0xD0] = 0x60
        i = 0x88
        for v in T_TRIM + P_TRIM:
            m[i] = v & 0xFF
            m[i + 1] = (v >> 8) & 0xFF
            i += 2
        h1, h2, h3, h4, h5, h6 = H_TRIM
        m[0xA1] = h1
        m[0xE1] = h2 & 0xFF
        m[0xE2] = (h2 >> 8) & 0xFF
        m[0xE3] = h3
        m[0xE4] = (h4 >> 4) & 0xFF
        m[0xE5] = (h4 & 0x0F) | ((h5 & 0x0F) << 4)
        m[0xE6] = (h5 >> 4) & 0xFF
        m[0xE7] = h6 & 0xFF
        self.mem = m
        self.started = None  # ticks_ms when ctrl_meas started measuring
        self.measured = False

    def raw(self):
        adc_t = _invert(lambda a: _t_fine(a) / 5120.0, self.temp_c, (1 << 20) - 1, True)
        tf = _t_fine(adc_t)
        adc_h = _invert(lambda a: _humidity(a, tf), self.rh, 0xFFFF, True)
        adc_p = _invert(lambda a: _pressure(a, tf), self.pa, (1 << 20) - 1, False)
        return adc_t, adc_p, adc_h

    def read(self, reg, n):
        m = self.mem
        if reg <= 0xF7 < reg + n:
            if not self.measured:
                # Until a first measurement is done (about 9.3 ms at x1 oversampling after
                # ctrl_meas starts one; never while asleep), the data registers hold their
                # reset values: 0x80000 for T and P, 0x8000 for H (datasheet, memory map).
                if self.started is None or not self._done():
                    m[0xF7:0xFF] = b"\x80\x00\x00\x80\x00\x00\x80\x00"
                    return bytes(m[reg : reg + n])
                self.measured = True
            t, p, h = self.raw()
            data = (p >> 12, (p >> 4) & 0xFF, (p & 0xF) << 4, t >> 12, (t >> 4) & 0xFF)
            data += ((t & 0xF) << 4, h >> 8, h & 0xFF)
            for i in range(8):
                m[0xF7 + i] = data[i]
        return bytes(m[reg : reg + n])

    def _done(self):
        c = self.clock
        return c is None or c.ticks_diff(c.ticks_ms(), self.started) >= 10

    def _now(self):
        return 0 if self.clock is None else self.clock.ticks_ms()

    def write(self, reg, data):
        for i in range(len(data)):
            r = reg + i
            if r == 0xE0 and data[i] == 0xB6:  # soft reset
                self.mem[0xF2] = self.mem[0xF4] = self.mem[0xF5] = 0
                self.started = None
                self.measured = False
            elif r in (0xF2, 0xF4, 0xF5):
                self.mem[r] = data[i]
                if r == 0xF4 and data[i] & 3 and data[i] >> 5 and self.started is None:
                    self.started = self._now()  # forced or normal mode, T measured


# SSD1306 commands followed by argument bytes, and how many (datasheet table 9).
_SSD_ARGS = {0x81: 1, 0x8D: 1, 0x20: 1, 0x21: 2, 0x22: 2, 0xA8: 1, 0xD3: 1, 0xD5: 1}
_SSD_ARGS.update({0xD9: 1, 0xDA: 1, 0xDB: 1, 0x26: 6, 0x27: 6, 0x29: 5, 0x2A: 5, 0xA3: 2})
WIDTH = 128
HEIGHT = 64


class SSD1306:
    # The 128x64 OLED controller. It decodes the I2C stream as the chip does (control byte
    # Co and D/C# bits, commands with their argument bytes, GDDRAM writes in page, horizontal
    # or vertical addressing mode), keeps the GDDRAM (page-major, one byte = eight rows of a
    # column) and the display state, and renders what the glass would show (pixels()):
    # segment remap, COM scan direction, start line, display offset, inverse, entire-on, and
    # a dark panel while the display is off or the charge pump was never enabled.
    # A writeto(addr, buf) reaches write() with buf[0], the control byte, as `reg`;
    # i2c_write() takes a whole transaction after the address byte.
    def __init__(self):
        self.gddram = bytearray(WIDTH * HEIGHT // 8)
        self.reset()
        self.frames = 0  # GDDRAM data transactions received (one per show())
        self.commands = []  # the latest command bytes, for tests

    def reset(self):
        # The chip's state after RESET# (datasheet table 9 reset values).
        self.display_on = False
        self.charge_pump = False
        self.contrast = 0x7F
        self.mode = 2  # page addressing
        self.cols = [0, WIDTH - 1]
        self.pages = [0, HEIGHT // 8 - 1]
        self.col = 0
        self.page = 0
        self.seg_remap = False
        self.com_reversed = False
        self.start_line = 0
        self.offset = 0
        self.mux = 63
        self.com_pins = 0x12
        self.inverse = False
        self.entire_on = False
        self._cmd = []

    @property
    def lit(self):
        # The panel glows only with the display on and the charge pump enabled.
        return self.display_on and self.charge_pump

    def read(self, reg, n):
        # A read returns the status byte: bit 6 set while the display is off.
        return bytes([0x00 if self.display_on else 0x40]) * n

    def write(self, reg, data):
        self.i2c_write(bytes([reg]) + bytes(data))

    def i2c_write(self, data):
        i = 0
        wrote = False
        while i < len(data):
            ctrl = data[i]
            i += 1
            if ctrl & 0x80:  # Co=1: one byte, then another control byte
                if i < len(data):
                    wrote = self._byte(ctrl, data[i]) or wrote
                i += 1
                continue
            for b in data[i:]:
                wrote = self._byte(ctrl, b) or wrote
            break
        if wrote:
            self.frames += 1

    def _byte(self, ctrl, b):
        # One byte after control byte ctrl; True when it went to the GDDRAM.
        if ctrl & 0x40:
            self._data(b)
            return True
        self._command_byte(b)
        return False

    def _command_byte(self, b):
        self.commands.append(b)
        del self.commands[:-256]
        c = self._cmd
        c.append(b)
        if len(c) <= _SSD_ARGS.get(c[0], 0):
            return
        self._cmd = []
        self._execute(c[0], c)

    def _execute(self, op, c):
        # Command op with its argument bytes in c[1:].
        paged = self.mode == 2
        if op == 0x81:
            self.contrast = c[1]
        elif op == 0x8D:
            self.charge_pump = bool(c[1] & 0x04)
        elif op == 0x20:
            self.mode = c[1] & 3
        elif op == 0x21:
            self.cols = [c[1] & 0x7F, c[2] & 0x7F]
            self.col = self.cols[0]
        elif op == 0x22:
            self.pages = [c[1] & 7, c[2] & 7]
            self.page = self.pages[0]
        elif op == 0xA8:
            self.mux = c[1] & 0x3F
        elif op == 0xD3:
            self.offset = c[1] & 0x3F
        elif op == 0xDA:
            self.com_pins = c[1]
        elif 0x40 <= op <= 0x7F:
            self.start_line = op & 0x3F
        elif op == 0xA0 or op == 0xA1:
            self.seg_remap = op == 0xA1
        elif op == 0xC0 or op == 0xC8:
            self.com_reversed = op == 0xC8
        elif op == 0xA4 or op == 0xA5:
            self.entire_on = op == 0xA5
        elif op == 0xA6 or op == 0xA7:
            self.inverse = op == 0xA7
        elif op == 0xAE or op == 0xAF:
            self.display_on = op == 0xAF
        elif 0xB0 <= op <= 0xB7 and paged:
            self.page = op & 7
        elif op <= 0x0F and paged:
            self.col = (self.col & 0xF0) | op
        elif 0x10 <= op <= 0x1F and paged:
            self.col = (self.col & 0x0F) | ((op & 0x0F) << 4)
        # other commands (timing, scrolling off, VCOMH, ...) do not change the picture here

    def _data(self, b):
        self.gddram[self.page * WIDTH + (self.col & 0x7F)] = b
        if self.mode == 0:  # horizontal
            self.col += 1
            if self.col > self.cols[1]:
                self.col = self.cols[0]
                self.page = self.pages[0] if self.page >= self.pages[1] else self.page + 1
        elif self.mode == 1:  # vertical
            self.page += 1
            if self.page > self.pages[1]:
                self.page = self.pages[0]
                self.col = self.cols[0] if self.col >= self.cols[1] else self.col + 1
        else:  # page addressing: the column wraps, the page stays
            self.col = 0 if self.col >= WIDTH - 1 else self.col + 1

    def pixels(self):
        # pixels()[y][x]: True where the panel glows, as seen by a person at the bench.
        out = [[False] * WIDTH for _ in range(HEIGHT)]
        if not self.lit:
            return out
        for y in range(HEIGHT):
            # The glass's top line is wired to COM63; 0xC8 scans COM63 first, so the picture
            # is upright with 0xC8 and upside down with 0xC0.
            com = HEIGHT - 1 - y
            line = (HEIGHT - 1 - com) if self.com_reversed else com
            if line > self.mux:
                continue
            if not self.com_pins & 0x10:  # sequential COM pins on an alternative-wired glass
                line = (line >> 1) + (32 if line & 1 else 0)
            row = (line + self.offset + self.start_line) % HEIGHT
            bit = 1 << (row & 7)
            page = (row >> 3) * WIDTH
            for x in range(WIDTH):
                col = x if self.seg_remap else WIDTH - 1 - x
                on = self.entire_on or bool(self.gddram[page + col] & bit)
                out[y][x] = on != self.inverse
        return out

    def text_rows(self):
        # The picture as '#'/'.' rows, for a readable assertion message.
        return ["".join("#" if p else "." for p in row) for row in self.pixels()]


class I2CBus:
    # Chips by 7-bit address; an address nobody answers NACKs.
    def __init__(self):
        self.chips = {}

    def attach(self, addr, chip):
        self.chips[addr] = chip

    def detach(self, addr):
        # Take a chip off the bus (a broken or unsoldered part): it stops answering.
        return self.chips.pop(addr, None)

    def chip(self, addr):
        c = self.chips.get(addr)
        if c is None:
            raise OSError(errno.ENODEV, "ENODEV")
        return c

    def scan(self):
        return sorted(self.chips)
