"""The self-test's verdicts: sensors within limits, ports that switch, pads, display."""

from __future__ import annotations

import json

from bench import selftest
from bench.screens import Screens
from drivers.ssd1306 import SSD1306

from boards.virtual.display import SSD1306Model


class Port:
    def __init__(self, cuts: bool = True) -> None:
        self.on = True
        self.cuts = cuts

    def switch(self, on: bool) -> None:
        self.on = on

    def read(self) -> tuple[float, float]:
        return (5.05, 0.0) if self.on or not self.cuts else (0.02, 0.0)


class Pads:
    def __init__(self, bases: list[int | None]) -> None:
        self.bases = bases

    def baselines(self) -> list[int | None]:
        return self.bases


class Bus:
    def __init__(self, model: SSD1306Model) -> None:
        self.model = model

    def writeto(self, addr: int, buf: bytes) -> None:
        self.model.i2c_write(bytes(buf))


def test_all_good_gives_ok_and_a_json_report_and_draws_the_pattern() -> None:
    model = SSD1306Model()
    ports = [Port(), Port()]
    summary, report = selftest.run(
        [("solar", lambda: {"v": 18.4, "a": 1.1}, {"v": (0.0, 30.0), "a": (-0.1, 10.0)})],
        [(i + 1, p.switch, p.read) for i, p in enumerate(ports)],
        Pads([1000, 990]),
        Screens(SSD1306(Bus(model))),
    )
    assert summary == "OK 5/5 checks"
    assert report["ok"] is True
    json.dumps(report)
    assert all(p.on for p in ports)
    assert sum(map(sum, model.pixels())) > 1000


def test_failures_are_named_in_the_one_line_summary() -> None:
    def dead() -> dict[str, float]:
        raise OSError(19, "ENODEV")

    stuck = Port(cuts=False)
    summary, report = selftest.run(
        [
            ("env", dead, {"t": (-40.0, 85.0)}),
            ("batt", lambda: {"v": 3.0}, {"v": (9.0, 15.0)}),
        ],
        [(3, stuck.switch, stuck.read)],
        Pads([1000, None]),
    )
    assert summary == "FAIL 4/4: env batt port3 pads"
    assert report["sensors"][1]["implausible"] == ["v"]
    assert report["ok"] is False
    json.dumps(report)
