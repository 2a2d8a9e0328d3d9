"""The virtual bench's physics: shapes a real bench would show, deterministic for a seed."""

from __future__ import annotations

import calendar

from boards.virtual.physics import (
    Battery,
    Clouds,
    Phone,
    World,
    clear_sky_irradiance,
    solar_elevation,
)

MOSTAR = (43.3438, 17.8078)


def utc(y: int, mo: int, d: int, h: int, mi: int = 0) -> float:
    return float(calendar.timegm((y, mo, d, h, mi, 0)))


def test_noon_sun_in_mostar_is_high_in_june_and_low_in_november() -> None:
    # Solar noon in Mostar is about 10:50 UTC; 90 - 43.3 + declination.
    june = max(solar_elevation(*MOSTAR, utc(2026, 6, 21, 10, m)) for m in range(0, 60, 5))
    november = max(solar_elevation(*MOSTAR, utc(2026, 11, 26, 10, m)) for m in range(0, 60, 5))
    assert 69.0 < june < 71.0
    assert 24.0 < november < 27.0


def test_no_sun_at_night() -> None:
    assert solar_elevation(*MOSTAR, utc(2026, 11, 26, 23)) < 0
    assert clear_sky_irradiance(solar_elevation(*MOSTAR, utc(2026, 11, 26, 23))) == 0.0


def test_clear_sky_irradiance_grows_with_elevation() -> None:
    assert clear_sky_irradiance(10) < clear_sky_irradiance(30) < clear_sky_irradiance(60) < 1100


def test_cloud_days_persist_and_repeat_for_a_seed() -> None:
    clouds = Clouds(seed=7)
    days = [clouds.day_cover(20_400 + d) for d in range(400)]
    mean = sum(days) / len(days)
    num = sum((a - mean) * (b - mean) for a, b in zip(days, days[1:], strict=False))
    den = sum((a - mean) ** 2 for a in days)
    assert num / den > 0.4, "consecutive days should be alike: grey spells last"
    assert Clouds(seed=7).day_cover(20_450) == days[50]
    assert Clouds(seed=8).day_cover(20_450) != days[50]


def test_battery_voltage_sags_under_load_and_rises_on_charge() -> None:
    battery = Battery("lead-acid", 55.0, soc=0.6, internal_ohm=0.03)
    rest = battery.voltage
    battery.flow(-10.0, 1.0)
    assert battery.voltage < rest - 0.25
    battery.flow(+10.0, 1.0)
    assert battery.voltage > rest + 0.25


def test_battery_counts_charge_with_its_efficiency() -> None:
    battery = Battery("lead-acid", 50.0, soc=0.5, charge_efficiency=0.85)
    battery.flow(10.0, 3600.0)  # 10 Ah in, 8.5 Ah stored
    assert abs(battery.soc - (0.5 + 8.5 / 50.0)) < 1e-9


def test_phone_tapers_as_it_fills() -> None:
    phone = Phone(port=1, capacity_wh=15, soc=0.5, max_a=2.0, leave_at=0)
    assert phone.current() == 2.0
    phone.soc = 0.9
    assert 0.9 < phone.current() < 1.1
    phone.soc = 1.0
    assert phone.current() <= 0.01


def test_a_november_week_is_darker_than_a_june_week_and_repeatable() -> None:
    def harvest(start: float, seed: int) -> float:
        world = World("mostar", seed, start, chemistry="lead-acid", capacity_ah=55, soc=0.2)
        wh = 0.0
        for _ in range(7 * 24 * 12):
            world.step(300)
            wh += world.solar_a * world.solar_v * 300 / 3600
        return wh

    june = harvest(utc(2026, 6, 15, 0), 3)
    november = harvest(utc(2026, 11, 15, 0), 3)
    assert november < june * 0.6
    assert harvest(utc(2026, 11, 15, 0), 3) == november


def test_people_come_by_day_more_than_by_night() -> None:
    world = World("mostar", 11, utc(2026, 11, 21, 0), people_scale=3.0)
    day_seat = night_seat = 0
    for _ in range(7 * 24 * 60):
        world.step(60)
        hour, _ = world.local_hour()
        if world.seat_occupied():
            if 10 <= hour < 20:
                day_seat += 1
            elif hour < 6:
                night_seat += 1
    assert day_seat > 5 * max(1, night_seat)
