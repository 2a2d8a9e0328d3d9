"""The simulator's battery behaves as real ones do where the firmware's estimator is blind."""

from __future__ import annotations

import calendar

from boards.virtual import firmware_path
from boards.virtual.battery import CELLS, SHUNT, Cell, interpolate
from boards.virtual.bench import load_profile
from boards.virtual.mp.chips import INA226, I2CBus
from boards.virtual.physics import World
from testkit.soc_week import DriverI2C


def rest_voltage(cell: Cell, minutes: int = 120) -> float:
    for _ in range(minutes):
        cell.flow(0.0, 60.0)
    return cell.voltage


def test_lifepo4_rests_higher_after_charging_than_after_discharging_at_the_same_soc() -> None:
    charged = Cell("lifepo4", 40.0, soc=0.4, temp_c=25.0)
    charged.flow(8.0, 1800.0)  # 0.4 -> ~0.5
    discharged = Cell("lifepo4", 40.0, soc=0.6, temp_c=25.0)
    discharged.flow(-8.0, 1800.0)  # 0.6 -> 0.5
    # Bring both to exactly the same charge, with a trickle that cannot swap the branch.
    discharged.q_ah = charged.q_ah
    gap = rest_voltage(charged) - rest_voltage(discharged)
    assert 0.06 < gap < 0.1, gap  # 2 x hyst_v, less what the relaxation has left
    # On the profile's curve, 70 mV in the flat middle is more than 10 points of SoC.
    curve = [(float(v), float(s)) for s, v in load_profile("bench-v1")["battery"]["ocv"]]
    v = rest_voltage(discharged)
    assert interpolate(tuple(curve), v + gap) - interpolate(tuple(curve), v) > 10


def test_terminal_voltage_settles_over_minutes_after_the_load_stops() -> None:
    cell = Cell("lifepo4", 40.0, soc=0.5, temp_c=25.0)
    cell.flow(-10.0, 1800.0)
    loaded = cell.voltage
    cell.flow(0.0, 10.0)
    just_after = cell.voltage
    for _ in range(5):
        cell.flow(0.0, 60.0)
    five_min = cell.voltage
    for _ in range(60):
        cell.flow(0.0, 60.0)
    settled = cell.voltage
    # The series resistance's part at once, the RC pair's over its 10-minute constant.
    assert just_after - loaded > 0.14
    assert settled - just_after > 0.06
    assert 0.02 < settled - five_min < settled - just_after
    assert abs(cell.v_rc) < 0.001


def test_cold_cell_gives_less_before_its_voltage_collapses() -> None:
    def loaded_voltage(temp_c: float) -> float:
        cell = Cell("lead-acid", 55.0, soc=0.15, temp_c=temp_c)
        cell.flow(-3.0, 1.0)
        return cell.voltage

    warm, cold = loaded_voltage(25.0), loaded_voltage(0.0)
    assert warm - cold > 0.3  # near empty, 3 A in the cold reads as an empty battery
    assert Cell("lead-acid", 55.0, temp_c=0.0).usable() < 0.9
    assert Cell("lifepo4", 40.0, temp_c=25.0).usable() == 1.0


def test_cell_follows_the_air_with_a_lag() -> None:
    cell = Cell("lifepo4", 40.0, temp_c=20.0)
    cell.flow(0.0, 3600.0, air_c=0.0)
    assert 14.0 < cell.temp_c < 17.0  # one hour of a four-hour constant
    hot, cold = Cell("lifepo4", 40.0, temp_c=35.0), Cell("lifepo4", 40.0, temp_c=5.0)
    assert abs(hot.ocv - cold.ocv - 30 * CELLS["lifepo4"].ocv_v_per_k) < 1e-9


def test_the_battery_shunt_reads_with_its_gain_and_offset_through_the_driver() -> None:
    firmware_path()
    from drivers.ina226 import INA226 as Driver  # type: ignore[import-not-found]

    battery = load_profile("bench-v1")["battery"]
    bus = I2CBus()
    chip = INA226(battery["shunt_ohm"])
    bus.attach(battery["addr"], chip)
    ina = Driver(DriverI2C(bus), battery["addr"], battery["shunt_ohm"], battery["max_a"])
    chip.amps = 0.0
    assert ina.current_ma() == 0
    chip.gain, chip.offset_a = SHUNT.gain, SHUNT.offset_a
    assert 6 <= ina.current_ma() <= 10  # 8 mA of offset, in steps of the INA226's LSB
    chip.amps = 10.0
    assert abs(ina.current_ma() - 10_158) <= 8  # 10 A x 1.015 + 8 mA, to an LSB or two


def test_charge_controller_holds_absorption_until_the_tail_then_floats() -> None:
    start = float(calendar.timegm((2026, 6, 20, 4, 0, 0)))
    world = World("mostar", 1, start, capacity_ah=40.0, soc=0.9, people_scale=0.0)
    seen: list[tuple[str, float, float]] = []
    top = 0.0
    for _ in range(12 * 360):  # 12 h of a June day, 10-s steps
        world.step(10)
        seen.append((world.charge_stage, world.battery.voltage, world.battery.current_a))
        top = max(top, world.battery.soc)
    absorb = [(v, a) for stage, v, a in seen if stage == "absorb"]
    assert absorb and all(14.35 < v < 14.45 for v, _ in absorb)
    # The current tapers below the C/20 the firmware waits for, at the charge voltage.
    assert any(a < 2.0 for _, a in absorb)
    assert "float" in {s for s, _, _ in seen}
    assert top > 0.995
    # Floated at 13.5 V, a LiFePO4 pack gives back its top percent or two to the loads.
    assert 0.96 < world.battery.soc < 0.995


def test_ideal_battery_keeps_the_profiles_own_curve() -> None:
    start = float(calendar.timegm((2026, 11, 20, 0, 0, 0)))
    world = World("mostar", 1, start, chemistry="lead-acid", soc=0.5, ideal_battery=True)
    world.step(10)
    assert not isinstance(world.battery, Cell)
