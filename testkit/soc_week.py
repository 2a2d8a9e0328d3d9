"""The firmware's SoC estimator against the simulator's battery over a grey November week.

The world (``boards.virtual.physics.World``: Mostar's sun and clouds, people and phones, the
battery of ``boards.virtual.battery``) is stepped every ``sample_s`` simulated seconds; the
battery's terminal voltage and current go into the virtual board's INA226 model with the
shunt's gain and offset errors, are read back by the firmware's own INA226 driver, and fed to
the firmware's ``PowerManager.update`` as the app's sampler does. The ports follow the
estimator's power state as the app switches them (docs/protocol.md, Power states), so the
battery's week is the bench's. No firmware app, no network: a week runs in seconds.

The estimator starts at the battery's true SoC (a bench that has been tracking it): the week
measures drift and correction, not the first guess after a boot.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from boards.virtual import firmware_path
from boards.virtual.battery import SHUNT, ShuntErrors
from boards.virtual.bench import load_profile
from boards.virtual.mp.chips import INA226, I2CBus
from boards.virtual.physics import Clouds, World

WEEK_S = 7 * 86400


def grey_november_week(seed: int) -> int | None:
    """First day (Unix day number) of a November week that starts under three overcast days
    and ends with three clear ones, for this cloud seed; None if this seed has none (the
    week of hil_tests/test_power_week.py)."""
    clouds = Clouds(seed)
    for year in (2023, 2024, 2025):
        first = calendar.timegm((year, 11, 1, 0, 0, 0)) // 86400
        for day in range(first, first + 23):
            covers = [clouds.day_cover(day + k) for k in range(7)]
            if min(covers[:3]) > 0.7 and max(covers[4:]) < 0.3:
                return day
    return None


def first_grey_week() -> tuple[int, float]:
    """The seed and start (Unix s) the power-week system test uses: the first seed with one."""
    seed, day = next((s, d) for s in range(200) if (d := grey_november_week(s)) is not None)
    return seed, day * 86400.0


def bench_world(
    profile: dict[str, Any], seed: int, start: float, soc: float, people: float, **more: Any
) -> World:
    """Mostar's world from ``start`` for a bench of ``profile`` (its battery, its ports, no
    wireless port) with the battery at ``soc`` and ``people`` times the passers-by; ``more``
    as ``World`` takes it (the shunt's errors, Wi-Fi outages)."""
    battery = profile["battery"]
    return World(
        "mostar",
        seed,
        start,
        chemistry=battery["chemistry"],
        capacity_ah=battery["capacity_ah"],
        ports=len(profile["ports"]),
        wireless_port=None,
        soc=soc,
        people_scale=people,
        **more,
    )


class DriverI2C:
    """The bus as the firmware's drivers see a machine.I2C."""

    def __init__(self, bus: I2CBus) -> None:
        self.bus = bus

    def readfrom_mem_into(self, addr: int, reg: int, buf: bytearray) -> None:
        buf[:] = self.bus.chip(addr).read(reg, len(buf))

    def writeto_mem(self, addr: int, reg: int, buf: bytes) -> None:
        self.bus.chip(addr).write(reg, bytes(buf))


@dataclass
class WeekResult:
    t: list[float] = field(default_factory=list)
    true_pct: list[float] = field(default_factory=list)
    est_pct: list[float] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    full_at: float | None = None  # when the charge controller first finished absorption

    def errors(self, since: float | None = None) -> list[float]:
        return [
            abs(e - s)
            for t, s, e in zip(self.t, self.true_pct, self.est_pct, strict=True)
            if since is None or t >= since
        ]

    def max_error(self, since: float | None = None) -> float:
        return max(self.errors(since))

    def mean_error(self, since: float | None = None) -> float:
        errs = self.errors(since)
        return sum(errs) / len(errs)


def run_week(
    profile_name: str = "bench-v1",
    estimator: Callable[..., Any] | None = None,
    shunt: ShuntErrors = SHUNT,
    seed: int | None = None,
    start: float | None = None,
    days: float = 7.0,
    soc: float = 0.5,
    people: float = 6.0,
    sample_s: int = 10,
) -> WeekResult:
    """Run the estimator (a ``PowerManager``-like class; the firmware's by default) against
    the world for ``days`` from ``start`` (the grey November week by default)."""
    firmware_path()
    from drivers.ina226 import INA226 as Driver  # type: ignore[import-not-found]

    if estimator is None:
        from bench.power import PowerManager  # type: ignore[import-not-found]

        estimator = PowerManager
    if seed is None or start is None:
        seed, start = first_grey_week()
    profile = load_profile(profile_name)
    battery = profile["battery"]
    world = bench_world(profile, seed, start, soc, people, shunt=shunt)
    bus = I2CBus()
    chip = INA226(battery["shunt_ohm"])
    chip.gain, chip.offset_a = shunt.gain, shunt.offset_a
    bus.attach(battery["addr"], chip)
    ina = Driver(DriverI2C(bus), battery["addr"], battery["shunt_ohm"], battery["max_a"])
    pm = estimator(battery, soc_pct=world.battery.soc * 100)
    out = WeekResult()
    for _ in range(int(days * 86400) // sample_s):
        state = pm.state
        for n in world.port_on:  # as the app switches the ports for its power state
            world.port_on[n] = state == "normal" or (state == "saver" and n <= 2)
        world.step(sample_s)
        chip.volts, chip.amps = world.battery.voltage, world.battery.current_a
        pm.update(ina.bus_mv(), ina.current_ma(), sample_s * 1000)
        if out.full_at is None and world.charge_stage == "float":
            out.full_at = world.t
        out.t.append(world.t)
        out.true_pct.append(world.battery.soc * 100)
        out.est_pct.append(pm.soc_cp() / 100)
        out.states.append(pm.state)
    return out
