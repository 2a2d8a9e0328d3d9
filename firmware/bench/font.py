# The bench's own 6x10 bitmap font: ASCII, the Latin letters of Bosnian, Croatian and Serbian
# (č ć đ š ž) and the Serbian Cyrillic alphabet. The glyphs are bytes literals (fontdata.py),
# which cost no heap beyond the objects themselves and stay in flash under ROMFS; lookup is a
# binary search over the sorted code points, so no dict is built at import.
# Text is drawn straight into an SSD1306-ordered buffer (MONO_VLSB: byte = 8 rows of one
# column, pages of 8 rows), column by column, so a glyph costs at most 15 byte writes.
from bench.fontdata import ADVANCE, BITMAPS, CODEPOINTS, GLYPH, HEIGHT, WIDTH

LINE = HEIGHT  # pixel rows per text line
_COUNT = len(GLYPH)


def glyph_number(cp):
    # Glyph number of a code point, 0 (the hollow box) when the font lacks it.
    lo = 0
    hi = _COUNT - 1
    while lo <= hi:
        mid = (lo + hi) >> 1
        v = (CODEPOINTS[2 * mid] << 8) | CODEPOINTS[2 * mid + 1]
        if v == cp:
            return GLYPH[mid]
        if v < cp:
            lo = mid + 1
        else:
            hi = mid - 1
    return 0


def has_glyph(ch):
    return glyph_number(ord(ch)) != 0


def columns(ch):
    # The glyph's five columns as ints, bit r = row r; for tests and the self-test.
    off = glyph_number(ord(ch)) * 2 * WIDTH
    return tuple(BITMAPS[off + 2 * c] | (BITMAPS[off + 2 * c + 1] << 8) for c in range(WIDTH))


def text_width(text):
    return len(text) * ADVANCE


def draw_text(buf, width, height, x, y, text, color=1):
    # Draws text with its cell's top-left at (x, y); clips to the buffer. Returns the x after.
    pages = height >> 3
    for ch in text:
        if x >= width:
            break
        if x + WIDTH > 0:
            off = glyph_number(ord(ch)) * 2 * WIDTH
            for c in range(WIDTH):
                px = x + c
                if px < 0 or px >= width:
                    continue
                bits = BITMAPS[off + 2 * c] | (BITMAPS[off + 2 * c + 1] << 8)
                if not bits:
                    continue
                top = y
                if top < 0:
                    bits >>= -top
                    top = 0
                page = top >> 3
                bits <<= top & 7
                while bits and page < pages:
                    i = page * width + px
                    if color:
                        buf[i] |= bits & 0xFF
                    else:
                        buf[i] &= ~bits & 0xFF
                    bits >>= 8
                    page += 1
        x += ADVANCE
    return x
