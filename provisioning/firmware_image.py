"""`micropython`: the pinned MicroPython image, from a local file or a checked cache."""

from __future__ import annotations

import contextlib
import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from esptool.cmds import erase_flash, reset_chip, run_stub, verify_flash, write_flash

from provisioning import esp
from provisioning.deployment import FirmwareImage
from provisioning.errors import HINT_NO_BOOTLOADER, StepError

STEP = "micropython"
BAUDS = (921600, 460800, 230400, 115200)
FLASH_SIZES = {"1MB": 1 << 20, "2MB": 2 << 20, "4MB": 4 << 20, "8MB": 8 << 20, "16MB": 16 << 20}
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class FlashResult:
    chip: esp.ChipInfo
    baud: int
    sha256: str
    size: int
    failed_bauds: tuple[tuple[int, str], ...]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def resolve_image(image: FirmwareImage, cache_dir: Path, port: str = "") -> Path:
    """The image file to flash, its SHA-256 checked; downloads into the cache once."""
    if image.image:
        path = Path(image.image)
        if not path.is_file():
            raise StepError(
                STEP,
                port,
                f"the MicroPython image {path}",
                "no such file",
                f"fix `image` under [micropython.{image.chip}] in inventory.toml",
            )
        if image.sha256 and sha256_file(path) != image.sha256:
            raise StepError(
                STEP,
                port,
                f"{path} with sha256 {image.sha256}",
                f"sha256 {sha256_file(path)}",
                "the file is damaged or not the pinned release: fetch it again",
            )
        return path
    if not image.url or not image.sha256:
        raise StepError(
            STEP,
            port,
            f"a pinned MicroPython image for {image.chip}",
            "neither `image` nor `url` + `sha256` set",
            f"fill [micropython.{image.chip}] in inventory.toml from micropython.org/download",
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    cached = cache_dir / f"micropython-{image.chip}-{image.sha256[:16]}.bin"
    if cached.is_file():
        seen = sha256_file(cached)
        if seen != image.sha256:
            raise StepError(
                STEP,
                port,
                f"cached image {cached} with sha256 {image.sha256}",
                f"sha256 {seen}: the cache file is corrupted",
                f"delete {cached} and run again while online",
            )
        return cached
    part = cached.with_name(cached.name + ".part")
    try:
        with urllib.request.urlopen(image.url, timeout=60) as r, open(part, "wb") as f:
            while block := r.read(1 << 16):
                f.write(block)
    except (urllib.error.URLError, OSError) as e:
        with contextlib.suppress(OSError):
            part.unlink()
        raise StepError(
            STEP,
            port,
            f"MicroPython image from {image.url}",
            f"download failed ({e})",
            "connect to the internet once so the image is cached; later runs work offline",
        ) from None
    seen = sha256_file(part)
    if seen != image.sha256:
        part.unlink()
        raise StepError(
            STEP,
            port,
            f"download with sha256 {image.sha256}",
            f"sha256 {seen}",
            "check `url` and `sha256` in inventory.toml name the same release",
        )
    os.replace(part, cached)
    return cached


def flash_image(
    port: str,
    data: bytes,
    offset: int,
    bauds: tuple[int, ...] = BAUDS,
    progress: Progress | None = None,
    chip_check: Callable[[esp.ChipInfo], None] | None = None,
) -> FlashResult:
    """Erase and write ``data`` at ``offset``, verified, at the fastest baud rate that works."""
    sha = hashlib.sha256(data).hexdigest()
    failures: list[tuple[int, str]] = []
    last_hint = ""
    for baud in bauds:
        loader = None
        connected = False
        with esp.esptool_output(progress) as lines:
            try:
                loader = esp.connect(port)
                info = esp.chip_info(loader)
                loader = loader if loader.IS_STUB else run_stub(loader)
                if chip_check is not None:
                    chip_check(info)
                size = FLASH_SIZES.get(info.flash_size or "", 0)
                if size and offset + len(data) > size:
                    raise StepError(
                        STEP,
                        port,
                        f"an image that fits {info.flash_size} of flash",
                        f"{len(data)} bytes at {offset:#x}",
                        "use the image built for this board's flash size",
                    )
                connected = True
                if baud != esp.ROM_BAUD:
                    loader.change_baud(baud)
                erase_flash(loader)
                write_flash(loader, [(offset, data)])
                verify_flash(loader, [(offset, data)])
                with contextlib.suppress(*esp.ESPTOOL_ERRORS):
                    reset_chip(loader, "hard-reset")
                return FlashResult(info, baud, sha, len(data), tuple(failures))
            except esp.ESPTOOL_ERRORS as e:
                seen, last_hint = esp.explain(e)
                failures.append((baud, seen))
                del lines[:]
                if not connected:
                    # No bootloader at all: a slower baud rate will not find one either.
                    raise StepError(
                        STEP, port, "the ESP32 ROM bootloader", seen, last_hint
                    ) from None
            finally:
                esp.close(loader)
    tried = ", ".join(f"{b}: {s}" for b, s in failures)
    raise StepError(
        STEP,
        port,
        "MicroPython written and verified",
        f"every baud rate failed ({tried})",
        last_hint or HINT_NO_BOOTLOADER,
    )
