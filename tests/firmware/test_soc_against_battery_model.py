"""The firmware's SoC estimator against the simulator's battery, not against its own curve.

The battery of boards/virtual/battery.py (hysteresis, relaxation, temperature, a shunt reading
+1.5 % and +8 mA) through the virtual INA226 and the firmware's driver, over the grey November
week of the power-week system test (testkit/soc_week.py: ten-second samples, the ports
switched by the estimator's own power state), and through shunts with a negative offset.
Each week is two or three seconds of CPU; benchmarks/soc_week.py runs every sign combination.
"""

from __future__ import annotations

import pytest

from boards.virtual.battery import SHUNT, ShuntErrors
from testkit.soc_week import run_week


@pytest.mark.parametrize("profile", ["bench-v1", "bench-s3-v2"])
def test_soc_stays_within_5_percent_over_the_grey_november_week(profile: str) -> None:
    week = run_week(profile)
    # The week does what it is for: down to the steep bottom of the curve, and back.
    assert min(week.true_pct) < 20 and max(week.true_pct) > 40
    assert {"saver", "critical"} <= set(week.states)
    assert week.max_error() < 5.0, (profile, week.max_error(), week.mean_error())


def test_soc_stays_within_3_percent_after_a_full_charge() -> None:
    # The same week on a quieter bench: the clear days fill the LiFePO4 battery.
    week = run_week("bench-v1", people=1.0, soc=0.6)
    assert week.full_at is not None, "the battery never reached float"
    # The reset of docs/protocol.md (charge voltage, tail below C/20, 3 minutes) in absorption.
    absorbing = [
        e for t, e in zip(week.t, week.est_pct, strict=True) if 0 < week.full_at - t < 3600
    ]
    assert 100.0 in absorbing, "no full-charge reset while the controller absorbed"
    assert week.max_error(week.full_at) < 3.0, week.max_error(week.full_at)


# A real INA226's offset has either sign, and its gain error too (benchmarks/soc_week.py runs all
# four). These are the combinations that failed the targets before the estimator's charge
# efficiency, charge-voltage rest rule and lead-acid full-charge rule (docs/firmware.md).
NEGATIVE_OFFSET = [ShuntErrors(0.985, -0.008), ShuntErrors(1.015, -0.008)]


@pytest.mark.parametrize("shunt", NEGATIVE_OFFSET, ids=["-1.5%-8mA", "+1.5%-8mA"])
def test_lifepo4_grey_week_with_a_negative_shunt_offset_stays_within_5_percent(
    shunt: ShuntErrors,
) -> None:
    # The shunt reads the bench's own 0.12 A as 0.13: outside the dead-band, it drifts the count
    # low all week in the flat middle, where the voltage cannot say by how much.
    week = run_week("bench-v1", shunt=shunt)
    assert min(week.true_pct) < 20 and max(week.true_pct) > 40
    assert week.max_error() < 5.0, (shunt, week.max_error(), week.mean_error())


@pytest.mark.parametrize("shunt", [SHUNT, NEGATIVE_OFFSET[0]], ids=["+1.5%+8mA", "-1.5%-8mA"])
def test_lead_acid_after_a_full_charge_is_within_3_percent(shunt: ShuntErrors) -> None:
    # Lead-acid stores less of each amp-hour as it gasses near full and still takes C/20 at
    # ~97 %: the estimator counts with the profile's falling efficiency above gassing_soc and
    # calls it full at its tail_c (C/50), and the voltage under a small morning charge (the
    # overpotential) no longer pulls the count up.
    week = run_week("bench-s3-v2", people=1.0, soc=0.6, shunt=shunt)
    assert week.full_at is not None, "the battery never reached float"
    assert week.max_error(week.full_at) < 3.0, (shunt, week.max_error(week.full_at))
