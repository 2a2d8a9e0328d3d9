"""The virtual bench's battery: a cell that is *not* the firmware's estimator's.

The firmware estimates SoC from a board profile's OCV curve and its shunt (docs/protocol.md, Power
states). A test of that estimator against a cell built from the same curve and read by a
perfect shunt proves little, so this model differs from the profile where real batteries do:

- Open-circuit voltage: a curve of its own (``ocv_mid``), near the profile's but not on it,
  with **hysteresis**: after charging the cell rests ``hyst_v`` above that curve, after
  discharging ``hyst_v`` below; a state ``h`` in [-1, 1] moves from one branch to the other
  as charge flows (``hyst_rate``: the e-folding takes capacity / hyst_rate of charge).
- **Relaxation**: a series resistance ``r0_ohm`` and one RC pair (``r1_ohm``, ``tau_s``), so
  the terminal voltage settles over minutes after a change of current, not at once.
- **Temperature**: the cell follows the air with a lag (``thermal_tau_s``); the OCV moves by
  ``ocv_v_per_k`` per kelvin from 25 °C and the resistances grow in the cold
  (``r_cold_per_k``). In the cold less of the capacity can be drawn (``capacity_per_k`` per
  kelvin below 25 °C, :meth:`Cell.usable`): under load the cell's voltage reads as if the
  unusable share at the bottom were gone, so it collapses early near empty (a kinetic
  effect: in full at ``cold_full_rate_c`` and above, in proportion below, none at rest; the
  charge is still there and SoC counts it).
- **Charge acceptance**: near full an overpotential (``charge_rise_v`` at 100 %, rising from
  ``charge_knee``) makes a charge controller's constant voltage taper the current, and the
  coulombic efficiency (``efficiency``, falling to ``efficiency_full`` at 100 % from the knee)
  drops as lead-acid gasses.
- **Shunt errors** (:data:`SHUNT`): the battery INA226 of the virtual board reads
  ``gain`` × true current + ``offset_a`` (:class:`boards.virtual.mp.chips.INA226`).

True SoC is the charge stored over the rated capacity (what a coulomb counter counts). The charge
controller's set points (``absorb_v``, ``float_v``, ``absorb_s``) are here too, with the cell
they suit. The parameters of each chemistry, for a 12 V-class pack, are data in ``cells.toml``
beside this file; the figures are typical of datasheets and of the literature's orders of
magnitude, not of one product.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from klupa.contract.datafile import DataFile


def interpolate(curve: Sequence[tuple[float, float]], x: float) -> float:
    """The curve's y at ``x``, linear between its points, flat past its ends."""
    if x <= curve[0][0]:
        return curve[0][1]
    for (x0, y0), (x1, y1) in zip(curve, curve[1:], strict=False):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return curve[-1][1]


@dataclass(frozen=True)
class CellParams:
    ocv_mid: tuple[tuple[float, float], ...]  # SoC fraction -> volts, between the branches
    hyst_v: float  # half the gap between the charge and discharge OCV branches
    hyst_rate: float  # branches swap after about capacity / hyst_rate of charge
    r0_ohm: float  # series resistance at 25 °C
    r1_ohm: float  # the RC pair's resistance at 25 °C
    tau_s: float  # the RC pair's time constant: relaxation after a change of current
    capacity_per_k: float  # usable capacity change per kelvin from 25 °C (fraction)
    ocv_v_per_k: float  # OCV change per kelvin from 25 °C
    r_cold_per_k: float  # resistance growth per kelvin below 25 °C (fraction)
    thermal_tau_s: float  # how slowly the cell in its box follows the air
    cold_full_rate_c: float  # discharge rate (in C) at which the cold's capacity loss is full
    charge_knee: float  # SoC from which charging meets an overpotential ...
    charge_rise_v: float  # ... reaching this at 100 %
    efficiency: float  # coulombic efficiency of charge below the knee
    efficiency_full: float  # ... falling to this at 100 %
    absorb_v: float  # charge controller: constant voltage of absorption
    float_v: float  # ... and of float, once absorption has lasted absorb_s
    absorb_s: float


def _cells(data: DataFile) -> dict[str, CellParams]:
    cells = data.table(CellParams, "cells")
    for name, p in cells.items():
        socs = [soc for soc, _ in p.ocv_mid]
        if socs != sorted(set(socs)) or socs[:1] + socs[-1:] != [0.0, 1.0]:
            raise data.fail(f"cells.{name}.ocv_mid", "the SoC must rise from 0.0 to 1.0")
        if not 0.0 <= p.charge_knee < 1.0:
            raise data.fail(f"cells.{name}.charge_knee", "must be at least 0.0 and below 1.0")
    return cells


# The chemistries, by name: boards/virtual/cells.toml.
CELLS: dict[str, CellParams] = _cells(DataFile.read("boards.virtual", "cells.toml"))


@dataclass(frozen=True)
class ShuntErrors:
    gain: float  # measured / true current
    offset_a: float  # added to every reading, A


# The battery shunt and its INA226 as fitted: +1.5 % gain (a 1 % shunt, the chip's own gain
# error, trace resistance) and +8 mA of offset (the chip's input offset of a few µV on 2 mΩ).
SHUNT = ShuntErrors(gain=1.015, offset_a=0.008)
PERFECT_SHUNT = ShuntErrors(gain=1.0, offset_a=0.0)


class Cell:
    """A 12 V-class battery with hysteresis, relaxation and temperature (see the module)."""

    def __init__(
        self, chemistry: str, capacity_ah: float, soc: float = 0.8, temp_c: float = 15.0
    ) -> None:
        if chemistry not in CELLS:
            raise ValueError(f"unknown battery chemistry {chemistry!r}")
        self.chemistry = chemistry
        self.p = CELLS[chemistry]
        self.capacity_ah = capacity_ah  # rated, at 25 °C
        self.temp_c = temp_c
        self.q_ah = soc * capacity_ah
        self.h = 0.0  # hysteresis state: -1 on the discharge branch, +1 on the charge branch
        self.v_rc = 0.0
        self.current_a = 0.0  # + charging, − discharging

    def usable(self) -> float:
        """The share of the rated capacity that can be drawn at the cell's temperature."""
        return min(1.0, max(0.5, 1.0 + self.p.capacity_per_k * (self.temp_c - 25.0)))

    @property
    def soc(self) -> float:
        """True state of charge: stored charge over the rated capacity."""
        return min(1.0, max(0.0, self.q_ah / self.capacity_ah))

    def _cold(self) -> float:
        return 1.0 + self.p.r_cold_per_k * max(0.0, 25.0 - self.temp_c)

    @property
    def ocv(self) -> float:
        p = self.p
        mid = interpolate(p.ocv_mid, self.soc)
        return mid + self.h * p.hyst_v + p.ocv_v_per_k * (self.temp_c - 25.0)

    def _overpotential(self) -> float:
        p = self.p
        x = max(0.0, self.soc - p.charge_knee) / (1.0 - p.charge_knee)
        return p.charge_rise_v * x * x

    def _cold_sag(self) -> float:
        """How much lower the voltage reads under the present discharge in the cold."""
        f = self.usable()
        if self.current_a >= 0 or f >= 1.0:
            return 0.0
        p = self.p
        drawn_as = max(0.0, (self.soc - (1.0 - f)) / f)  # the usable share's own SoC
        sag = interpolate(p.ocv_mid, self.soc) - interpolate(p.ocv_mid, drawn_as)
        return sag * min(1.0, -self.current_a / (p.cold_full_rate_c * self.capacity_ah))

    @property
    def voltage(self) -> float:
        """Terminal voltage at the present current."""
        v = self.ocv + self.v_rc + self.current_a * self.p.r0_ohm * self._cold()
        return v + (self._overpotential() if self.current_a > 0 else -self._cold_sag())

    def current_at(self, volts: float) -> float:
        """The current (+ charging) that holds the terminals at ``volts`` now."""
        r0 = self.p.r0_ohm * self._cold()
        rest = self.ocv + self.v_rc
        amps = (volts - rest - self._overpotential()) / r0
        return amps if amps > 0 else min(0.0, (volts - rest) / r0)

    def flow(self, current_a: float, dt_s: float, air_c: float | None = None) -> None:
        """Apply a current for dt seconds (+ charging), with the air at ``air_c``."""
        p = self.p
        self.current_a = current_a
        if air_c is not None:
            self.temp_c = air_c + (self.temp_c - air_c) * math.exp(-dt_s / p.thermal_tau_s)
        ah = current_a * dt_s / 3600.0
        if ah > 0:
            x = max(0.0, self.soc - p.charge_knee) / (1.0 - p.charge_knee)
            ah *= p.efficiency + (p.efficiency_full - p.efficiency) * x
        self.q_ah = min(self.capacity_ah, max(0.0, self.q_ah + ah))
        if current_a:
            s = 1.0 if current_a > 0 else -1.0
            self.h = s + (self.h - s) * math.exp(-p.hyst_rate * abs(ah) / self.capacity_ah)
        target = current_a * p.r1_ohm * self._cold()
        self.v_rc = target + (self.v_rc - target) * math.exp(-dt_s / p.tau_s)
