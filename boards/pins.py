"""What each ESP32 module does with its pins at reset, and a check of a board profile against it.

A strapping pin is sampled by the ROM at reset: on the ESP32, GPIO 12 (MTDI) selects the flash
voltage (high: 1.8 V, which browns out a 3.3 V flash and the module never boots), GPIO 0 and 2
the boot mode, GPIO 15 (MTDO) the boot log, GPIO 5 the SDIO timing. A touch pad or a seat mat
is a wire in the weather that can hold such a pin at the wrong level while the bench resets,
so no input may sit on one. Outputs we drive only after boot, so the check is for inputs.
Modules also take pins for their flash and PSRAM (the WROVER's PSRAM is on GPIO 16/17); no
profile pin may use those at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Chip:
    strapping: frozenset[int]
    touch: frozenset[int]  # pins with a capacitive touch channel


@dataclass(frozen=True)
class Module:
    chip: str
    psram: bool
    reserved: frozenset[int]  # wired to the module's flash / PSRAM


CHIPS = {
    "esp32": Chip(
        strapping=frozenset({0, 2, 5, 12, 15}),
        touch=frozenset({4, 0, 2, 15, 13, 12, 14, 27, 33, 32}),
    ),
    "esp32s3": Chip(strapping=frozenset({0, 3, 45, 46}), touch=frozenset(range(1, 15))),
}
_ESP32_FLASH = frozenset(range(6, 12))
_S3_FLASH = frozenset(range(26, 33))
MODULES = {
    "ESP32-WROOM-32E": Module("esp32", False, _ESP32_FLASH),
    "ESP32-WROVER-E": Module("esp32", True, _ESP32_FLASH | {16, 17}),
    "ESP32-S3-WROOM-1-N8": Module("esp32s3", False, _S3_FLASH),
    # quad PSRAM in the package: the same pins as the flash (octal R8 parts also take 33-37)
    "ESP32-S3-WROOM-1-N8R2": Module("esp32s3", True, _S3_FLASH),
    "ESP32-S3-WROOM-1-N8R8": Module("esp32s3", True, _S3_FLASH | frozenset(range(33, 38))),
}


def _inputs(profile: dict[str, Any]) -> list[tuple[str, int]]:
    out = [(f"touch.pins[{i}]", int(p)) for i, p in enumerate(profile["touch"]["pins"])]
    out.append(("seat.pin", int(profile["seat"]["pin"])))
    return out


def _outputs(profile: dict[str, Any]) -> list[tuple[str, int]]:
    out = [("i2c.scl", int(profile["i2c"]["scl"])), ("i2c.sda", int(profile["i2c"]["sda"]))]
    out += [
        (f"ports[{i}].enable_pin", int(p["enable_pin"])) for i, p in enumerate(profile["ports"])
    ]
    return out


def pin_problems(profile: dict[str, Any]) -> list[str]:
    """One line per pin of ``profile`` that is unsafe on its module; empty when all are safe."""
    module = MODULES.get(str(profile.get("module", "")))
    if module is None:
        return [f"module {profile.get('module')!r} is not one of {', '.join(MODULES)}"]
    if module.chip != profile.get("chip"):
        return [
            f"module {profile['module']} has an {module.chip}, the profile says {profile.get('chip')}"
        ]
    chip = CHIPS[module.chip]
    problems: list[str] = []
    used: dict[int, str] = {}
    for name, pin in _inputs(profile) + _outputs(profile):
        if pin in used:
            problems.append(f"{name} GPIO {pin} is also {used[pin]}")
        used.setdefault(pin, name)
        if pin in module.reserved:
            problems.append(f"{name} GPIO {pin} is wired to the {profile['module']}'s flash/PSRAM")
    for name, pin in _inputs(profile):
        if pin in chip.strapping:
            problems.append(
                f"{name} GPIO {pin} is a strapping pin of the {module.chip}: an input there "
                "can decide how the chip boots"
            )
    for name, pin in _inputs(profile)[:-1]:
        if pin not in chip.touch:
            problems.append(f"{name} GPIO {pin} has no touch channel on the {module.chip}")
    return problems
