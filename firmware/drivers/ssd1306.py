# Solomon Systech SSD1306 OLED controller, 128x64, on I2C (datasheet rev 1.1).
# The frame is kept in `buffer` in the chip's own GDDRAM order (MONO_VLSB: one byte is eight
# rows of one column; page p holds rows 8p..8p+7), so show() sends it as it is with the chip in
# horizontal addressing mode. Drawing uses framebuf where the port has it (the ESP32 does) and
# an equivalent few lines of Python where it does not (CPython with the virtual board).
try:
    from micropython import const
except ImportError:  # CPython with the virtual board

    def const(x):  # type: ignore[misc]
        return x


try:
    import framebuf
except ImportError:  # CPython
    framebuf = None  # type: ignore[assignment]

# Control byte: Co=0 and D/C#=0 -> a stream of commands; 0x40 (D/C#=1) -> GDDRAM data.
_CTRL_CMD = const(0x00)

_SET_CONTRAST = const(0x81)
_DISPLAY_RAM = const(0xA4)  # follow RAM (0xA5: all on)
_NORMAL = const(0xA6)  # 0xA7: inverse
_DISPLAY_OFF = const(0xAE)
_DISPLAY_ON = const(0xAF)
_MEMORY_MODE = const(0x20)
_COLUMN_ADDR = const(0x21)
_PAGE_ADDR = const(0x22)
_SCROLL_OFF = const(0x2E)
_START_LINE = const(0x40)
_SEG_REMAP = const(0xA1)  # column 127 -> SEG0: modules mount the glass this way round
_MUX_RATIO = const(0xA8)
_COM_SCAN_DEC = const(0xC8)
_DISPLAY_OFFSET = const(0xD3)
_COM_PINS = const(0xDA)
_CLOCK_DIV = const(0xD5)
_PRECHARGE = const(0xD9)
_VCOM_DESELECT = const(0xDB)
_CHARGE_PUMP = const(0x8D)

CONTRAST_NORMAL = const(0xCF)
CONTRAST_DIM = const(0x08)


class SSD1306:
    def __init__(self, i2c, addr=0x3C, width=128, height=64, external_vcc=False):
        self.i2c = i2c
        self.addr = addr
        self.width = width
        self.height = height
        self.external_vcc = external_vcc
        self.buffer = bytearray(width * height // 8)
        self.fb = None
        if framebuf is not None:
            self.fb = framebuf.FrameBuffer(self.buffer, width, height, framebuf.MONO_VLSB)
        self.on = False
        self.level = 0
        self.init()

    def _commands(self, cmds):
        self.i2c.writeto(self.addr, bytes((_CTRL_CMD,)) + bytes(cmds))

    def init(self):
        # Datasheet section 8 "Application example" order; charge pump before display on.
        self._commands(
            (
                _DISPLAY_OFF,
                _CLOCK_DIV,
                0x80,  # reset divide ratio, mid oscillator frequency
                _MUX_RATIO,
                self.height - 1,
                _DISPLAY_OFFSET,
                0x00,
                _START_LINE | 0,
                _CHARGE_PUMP,
                0x10 if self.external_vcc else 0x14,
                _MEMORY_MODE,
                0x00,  # horizontal addressing
                _SEG_REMAP,
                _COM_SCAN_DEC,
                _COM_PINS,
                0x02 if self.height == 32 else 0x12,  # alternative COM pins for 64 rows
                _SET_CONTRAST,
                0x9F if self.external_vcc else CONTRAST_NORMAL,
                _PRECHARGE,
                0x22 if self.external_vcc else 0xF1,
                _VCOM_DESELECT,
                0x30,  # 0.83 x Vcc
                _DISPLAY_RAM,
                _NORMAL,
                _SCROLL_OFF,
                _DISPLAY_ON,
            )
        )
        self.on = True
        self.level = 0x9F if self.external_vcc else CONTRAST_NORMAL

    def power(self, on):
        if on != self.on:
            self._commands((_DISPLAY_ON if on else _DISPLAY_OFF,))
            self.on = on

    def contrast(self, level):
        level &= 0xFF
        if level != self.level:
            self._commands((_SET_CONTRAST, level))
            self.level = level

    def invert(self, on):
        self._commands((_NORMAL | (1 if on else 0),))

    def show(self):
        self._commands((_COLUMN_ADDR, 0, self.width - 1, _PAGE_ADDR, 0, (self.height >> 3) - 1))
        writev = getattr(self.i2c, "writevto", None)
        if writev is not None:
            writev(self.addr, (b"\x40", self.buffer))
        else:
            self.i2c.writeto(self.addr, b"\x40" + bytes(self.buffer))

    # Drawing: only what the screens use.
    def fill(self, c):
        if self.fb is not None:
            self.fb.fill(c)
            return
        v = 0xFF if c else 0
        b = self.buffer
        for i in range(len(b)):
            b[i] = v

    def fill_rect(self, x, y, w, h, c):
        if self.fb is not None:
            self.fb.fill_rect(x, y, w, h, c)
            return
        x0 = max(x, 0)
        x1 = min(x + w, self.width)
        y0 = max(y, 0)
        y1 = min(y + h, self.height)
        b = self.buffer
        width = self.width
        for yy in range(y0, y1):
            row = (yy >> 3) * width
            bit = 1 << (yy & 7)
            for xx in range(x0, x1):
                if c:
                    b[row + xx] |= bit
                else:
                    b[row + xx] &= ~bit & 0xFF

    def pixel(self, x, y, c):
        if 0 <= x < self.width and 0 <= y < self.height:
            i = (y >> 3) * self.width + x
            if c:
                self.buffer[i] |= 1 << (y & 7)
            else:
                self.buffer[i] &= ~(1 << (y & 7)) & 0xFF

    def hline(self, x, y, w, c):
        self.fill_rect(x, y, w, 1, c)
