"""The board profiles in boards/ against the firmware's own validation (bench.config, the same
code the bench runs at boot): both shipped profiles pass, and a broken one is refused with the
field named, which on the bench means a `fault` event and safe mode (test_bench_integration)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from bench import config

from boards.pins import pin_problems

BOARDS = Path(__file__).resolve().parents[2] / "boards"
PROFILES = sorted(BOARDS.glob("*.json"))


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((BOARDS / f"{name}.json").read_text())
    return data


@pytest.mark.parametrize("path", PROFILES, ids=[p.stem for p in PROFILES])
def test_shipped_profiles_validate(path: Path) -> None:
    board = json.loads(path.read_text())
    assert config.validate_board(copy.deepcopy(board))["ports"]


def test_every_port_limit_is_measurable_by_its_chip() -> None:
    # 163.8 mV full scale on the INA3221: limit x shunt must stay below it, or a port in
    # trouble could never be seen past the limit (bench-v1 once had 0.1 ohm with 2.6 A).
    for path in PROFILES:
        for p in json.loads(path.read_text())["ports"]:
            assert p["limit_a"] * p["shunt_ohm"] <= 0.1638, (path.name, p)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda b: b["ports"][1].update(shunt_ohm=0.1), "ports[1].limit_a x shunt_ohm"),
        (lambda b: b["ports"][0].update(channel=4), "ports[0].channel"),
        (lambda b: b["ports"][2].update(kind="lamp"), "ports[2].kind"),
        (lambda b: b["ports"][3].pop("enable_pin"), "ports[3].enable_pin missing"),
        (lambda b: b["battery"].update(chemistry="unobtainium"), "battery.chemistry"),
        (lambda b: b["touch"].update(direction="sideways"), "touch.direction"),
        (lambda b: b.pop("seat"), "seat missing"),
        (lambda b: b["i2c"].pop("freq"), "i2c.freq missing"),
        (lambda b: b["battery"]["thresholds"].pop("critical_v"), "battery.thresholds.critical_v"),
        (lambda b: b["display"].update(addr=0x99), "display.addr out of range"),
        (lambda b: b["solar"].update(shunt_ohm="x"), "solar.shunt_ohm has the wrong type"),
        (lambda b: b["battery"].update(gassing_soc="80"), "battery.gassing_soc has the wrong"),
        (lambda b: b["battery"].update(gassing_soc=0), "battery.gassing_soc out of range"),
        (lambda b: b["battery"].update(tail_c=2.0), "battery.tail_c out of range"),
        (
            lambda b: b["battery"].update(charge_efficiency_full=-1),
            "battery.charge_efficiency_full",
        ),
        (lambda b: b["seat"].pop("pull"), "seat.pin 34 has no internal pull resistor"),
    ],
)
def test_a_broken_profile_is_refused_naming_the_field(change: Any, named: str) -> None:
    board = load("bench-v1")
    change(board)
    with pytest.raises(config.ConfigError) as err:
        config.validate_board(board)
    code, message = err.value.args[0], err.value.args[1]
    assert code == "bad_board" and named in message, message


@pytest.mark.parametrize("path", PROFILES, ids=[p.stem for p in PROFILES])
def test_shipped_profiles_keep_inputs_off_strapping_and_module_pins(path: Path) -> None:
    assert pin_problems(json.loads(path.read_text())) == []


@pytest.mark.parametrize(
    ("change", "named"),
    [
        # bench-v1 until issue 19: pads on GPIO 15 and 12 (12 selects the flash voltage)
        (lambda b: b["touch"].update(pins=[4, 15, 13, 12]), "touch.pins[3] GPIO 12 is a strapping"),
        (lambda b: b["touch"].update(pins=[4, 15, 13, 12]), "touch.pins[1] GPIO 15 is a strapping"),
        (lambda b: b["seat"].update(pin=0), "seat.pin GPIO 0 is a strapping"),
        (
            lambda b: b["touch"].update(pins=[4, 13, 33, 16]),
            "GPIO 16 is wired to the ESP32-WROVER-E",
        ),
        (lambda b: b["touch"].update(pins=[4, 13, 33, 14]), "GPIO 14 is also touch.pins[3]"),
        (lambda b: b["touch"].update(pins=[4, 13, 33, 26]), "GPIO 26 has no touch channel"),
        (lambda b: b.update(module="ESP32-S3-WROOM-1-N8R2"), "has an esp32s3"),
    ],
)
def test_a_pin_unsafe_at_reset_is_refused_naming_it(change: Any, named: str) -> None:
    board = load("bench-v1")
    change(board)
    assert any(named in p for p in pin_problems(board)), pin_problems(board)


def test_the_s3_profile_keeps_its_pads_off_gpio3() -> None:
    board = load("bench-s3-v2")
    board["touch"]["pins"] = [1, 2, 3]
    assert pin_problems(board) == [
        "touch.pins[2] GPIO 3 is a strapping pin of the esp32s3: an input there can decide how "
        "the chip boots"
    ]
