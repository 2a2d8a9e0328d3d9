"""The firmware's SoC estimator against the simulator's battery, not against its own curve.

The battery of boards/virtual/battery.py (hysteresis, relaxation, temperature, a shunt reading
+1.5 % and +8 mA) through the virtual INA226 and the firmware's driver, over the grey November
week of the power-week system test (testkit/soc_week.py: ten-second samples, the ports
switched by the estimator's own power state). Each week is a few seconds of CPU.
"""

from __future__ import annotations

import pytest

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


def test_lead_acid_after_a_full_charge_is_within_4_percent() -> None:
    # Lead-acid stores less of each amp-hour as it gasses near full, and reaches the C/20 tail
    # at about 97 %: the estimator is ~3 points high until the next discharge shows it.
    week = run_week("bench-s3-v2", people=1.0, soc=0.6)
    assert week.full_at is not None, "the battery never reached float"
    assert week.max_error(week.full_at) < 4.0, week.max_error(week.full_at)
