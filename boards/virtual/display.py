"""The bench's display as pictures: PNGs of what the SSD1306 model's glass shows.

The chip itself (its I2C stream, GDDRAM and what the glass shows, ``pixels()``) is the one
model in ``boards/virtual/mp/chips.py``; here is what CPython adds: pictures of it with
Pillow, for golden tests and the docs.
"""

from __future__ import annotations

from pathlib import Path

from boards.virtual.mp.chips import HEIGHT, WIDTH
from boards.virtual.mp.chips import SSD1306 as SSD1306Model

__all__ = ["SSD1306Model", "image", "load_png_pixels", "save_png"]


def image(
    model: SSD1306Model, scale: int = 1, colour: tuple[int, int, int] | None = None
) -> object:
    """The picture as a PIL image: mode "1" at scale 1 with no colour (for goldens),
    else an RGB picture of the glass with the contrast setting shown as brightness."""
    from PIL import Image

    px = model.pixels()
    if colour is None and scale == 1:
        img = Image.new("1", (WIDTH, HEIGHT), 0)
        img.putdata([1 if p else 0 for row in px for p in row])
        return img
    r, g, b = colour or (120, 200, 255)
    k = 0.35 + 0.65 * model.contrast / 255.0
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


def save_png(model: SSD1306Model, path: str | Path, scale: int = 1) -> Path:
    """Writes the picture; scale 1 is the exact 1-bit golden, larger is for the docs."""
    p = Path(path)
    img = image(model, scale, None if scale == 1 else (120, 200, 255))
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
