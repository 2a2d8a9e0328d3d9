"""A register-level model of the SSD1306 128x64 OLED controller on the virtual I2C bus.

It decodes the I2C stream as the chip does (control byte Co and D/C# bits, commands with
their argument bytes, GDDRAM writes in page, horizontal or vertical addressing mode), keeps
the 128x64 GDDRAM and the display state, and renders what the glass would show: segment
remap, COM scan direction, start line, display offset, inverse, entire-on, contrast, and a
dark panel while the display is off or the charge pump was never enabled.

It is a :class:`boards.virtual.chips.Chip`, so ``I2CBus.attach(0x3C, SSD1306Model())``
puts it on the bus; a ``writeto(addr, buf)`` reaches :meth:`write` with ``buf[0]`` (the
control byte) as ``reg``. :meth:`i2c_write` takes a whole transaction for buses that pass
raw bytes.
"""

from __future__ import annotations

from pathlib import Path

from boards.virtual.chips import Chip

WIDTH = 128
HEIGHT = 64
PAGES = HEIGHT // 8

# Commands and how many argument bytes follow each (datasheet table 9).
_ARGS = {
    0x81: 1,  # contrast
    0x8D: 1,  # charge pump
    0x20: 1,  # memory addressing mode
    0x21: 2,  # column address
    0x22: 2,  # page address
    0xA8: 1,  # multiplex ratio
    0xD3: 1,  # display offset
    0xD5: 1,  # clock divide
    0xD9: 1,  # pre-charge period
    0xDA: 1,  # COM pins
    0xDB: 1,  # VCOMH deselect
    0x26: 6,  # right horizontal scroll setup
    0x27: 6,  # left horizontal scroll setup
    0x29: 5,  # vertical and right scroll setup
    0x2A: 5,  # vertical and left scroll setup
    0xA3: 2,  # vertical scroll area
}


class SSD1306Model(Chip):
    def __init__(self) -> None:
        self.gddram = bytearray(WIDTH * PAGES)
        self.reset()
        self.frames = 0  # GDDRAM data transactions received (one per show())
        self.commands: list[int] = []  # every command byte, for tests

    def reset(self) -> None:
        """The chip's state after RESET# (datasheet table 9 reset values)."""
        self.display_on = False
        self.charge_pump = False
        self.contrast = 0x7F
        self.mode = 2  # page addressing
        self.col_start, self.col_end = 0, WIDTH - 1
        self.page_start, self.page_end = 0, PAGES - 1
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
        self._pending: list[int] = []
        self._need = 0

    # -- the I2C side --------------------------------------------------------------
    def write(self, reg: int, data: bytes) -> None:
        self.i2c_write(bytes([reg]) + bytes(data))

    def read(self, reg: int, n: int) -> bytes:
        # A read returns the status byte: bit 6 is set while the display is off.
        return bytes([0x00 if self.display_on else 0x40]) * n

    def i2c_write(self, data: bytes) -> None:
        """One I2C write transaction after the address byte."""
        i = 0
        wrote_data = False
        while i < len(data):
            ctrl = data[i]
            i += 1
            is_data = bool(ctrl & 0x40)
            if ctrl & 0x80:  # Co=1: one byte, then another control byte
                if i < len(data):
                    if is_data:
                        self._data(data[i])
                        wrote_data = True
                    else:
                        self._command_byte(data[i])
                i += 1
                continue
            for b in data[i:]:
                if is_data:
                    self._data(b)
                    wrote_data = True
                else:
                    self._command_byte(b)
            break
        if wrote_data:
            self.frames += 1

    def _command_byte(self, b: int) -> None:
        self.commands.append(b)
        if self._need:
            self._pending.append(b)
            self._need -= 1
            if not self._need:
                self._execute(self._pending[0], self._pending[1:])
            return
        n = _ARGS.get(b, 0)
        if n:
            self._pending = [b]
            self._need = n
        else:
            self._execute(b, [])

    def _execute(self, cmd: int, args: list[int]) -> None:
        if cmd == 0x81:
            self.contrast = args[0]
        elif cmd == 0x8D:
            self.charge_pump = bool(args[0] & 0x04)
        elif cmd == 0x20:
            self.mode = args[0] & 0x03
        elif cmd == 0x21:
            self.col_start, self.col_end = args[0] & 0x7F, args[1] & 0x7F
            self.col = self.col_start
        elif cmd == 0x22:
            self.page_start, self.page_end = args[0] & 0x07, args[1] & 0x07
            self.page = self.page_start
        elif cmd == 0xA8:
            self.mux = args[0] & 0x3F
        elif cmd == 0xD3:
            self.offset = args[0] & 0x3F
        elif cmd == 0xDA:
            self.com_pins = args[0]
        elif 0x40 <= cmd <= 0x7F:
            self.start_line = cmd & 0x3F
        elif cmd in (0xA0, 0xA1):
            self.seg_remap = cmd == 0xA1
        elif cmd in (0xC0, 0xC8):
            self.com_reversed = cmd == 0xC8
        elif cmd in (0xA4, 0xA5):
            self.entire_on = cmd == 0xA5
        elif cmd in (0xA6, 0xA7):
            self.inverse = cmd == 0xA7
        elif cmd in (0xAE, 0xAF):
            self.display_on = cmd == 0xAF
        elif 0xB0 <= cmd <= 0xB7 and self.mode == 2:
            self.page = cmd & 0x07
        elif cmd <= 0x0F and self.mode == 2:
            self.col = (self.col & 0xF0) | cmd
        elif 0x10 <= cmd <= 0x1F and self.mode == 2:
            self.col = (self.col & 0x0F) | ((cmd & 0x0F) << 4)
        # other commands (timing, scrolling off, VCOMH, ...) do not change the picture here

    def _data(self, b: int) -> None:
        self.gddram[self.page * WIDTH + (self.col & 0x7F)] = b
        if self.mode == 0:  # horizontal
            self.col += 1
            if self.col > self.col_end:
                self.col = self.col_start
                self.page = self.page_start if self.page >= self.page_end else self.page + 1
        elif self.mode == 1:  # vertical
            self.page += 1
            if self.page > self.page_end:
                self.page = self.page_start
                self.col = self.col_start if self.col >= self.col_end else self.col + 1
        else:  # page addressing: the column wraps, the page stays
            self.col = 0 if self.col >= WIDTH - 1 else self.col + 1

    # -- what the glass shows -------------------------------------------------------
    def ram_pixel(self, col: int, row: int) -> bool:
        return bool(self.gddram[(row >> 3) * WIDTH + col] & (1 << (row & 7)))

    @property
    def lit(self) -> bool:
        return self.display_on and self.charge_pump

    def pixels(self) -> list[list[bool]]:
        """pixels()[y][x]: True where the panel glows, as seen by a person at the bench."""
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
            for x in range(WIDTH):
                col = x if self.seg_remap else WIDTH - 1 - x
                on = self.entire_on or self.ram_pixel(col, row)
                out[y][x] = on != self.inverse
        return out

    def text_rows(self) -> list[str]:
        """The picture as '#'/'.' rows, for a readable assertion message."""
        return ["".join("#" if p else "." for p in row) for row in self.pixels()]

    def image(self, scale: int = 1, colour: tuple[int, int, int] | None = None) -> object:
        """The picture as a PIL image: mode "1" at scale 1 with no colour (for goldens),
        else an RGB picture of the glass with the contrast setting shown as brightness."""
        from PIL import Image

        px = self.pixels()
        if colour is None and scale == 1:
            img = Image.new("1", (WIDTH, HEIGHT), 0)
            img.putdata([1 if p else 0 for row in px for p in row])
            return img
        r, g, b = colour or (120, 200, 255)
        k = 0.35 + 0.65 * self.contrast / 255.0
        on = (int(r * k), int(g * k), int(b * k))
        img = Image.new("RGB", (WIDTH * scale, HEIGHT * scale), (8, 10, 14))
        if scale == 1:
            img.putdata([on if p else (8, 10, 14) for row in px for p in row])
            return img
        from PIL import ImageDraw

        draw = ImageDraw.Draw(img)
        for y, row in enumerate(px):
            for x, p in enumerate(row):
                if p:
                    x0, y0 = x * scale, y * scale
                    draw.rectangle((x0, y0, x0 + scale - 2, y0 + scale - 2), fill=on)
        return img

    def save_png(self, path: str | Path, scale: int = 1) -> Path:
        """Writes the picture; scale 1 is the exact 1-bit golden, larger is for the docs."""
        p = Path(path)
        img = self.image(scale, None if scale == 1 else (120, 200, 255))
        img.save(p, format="PNG")  # type: ignore[attr-defined]
        return p


def load_png_pixels(path: str | Path) -> list[list[bool]]:
    """A 1-bit golden PNG as pixels()[y][x]."""
    from PIL import Image

    with Image.open(path) as img:
        grey = img.convert("L")
        w, h = grey.size
        data = grey.tobytes()
    return [[data[y * w + x] >= 128 for x in range(w)] for y in range(h)]
