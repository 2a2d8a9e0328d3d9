"""SoC error of the firmware's estimator against the simulator's battery, over a week.

    .venv/bin/python benchmarks/soc_week.py [--baseline COMMIT]

The battery of ``boards/virtual/battery.py`` (hysteresis, relaxation, temperature) read
through a shunt with +1.5 % gain and +8 mA offset, in Mostar's grey November week
(``testkit.soc_week``: the week of the power-week system test, ten-second samples, the
ports switched by the estimator's power state). Two scenarios per board profile:

- grey week: a busy bench (people x6) starting at 50 %: down to the bottom, then up;
- full-charge week: a quiet bench (people x1) starting at 60 %: the clear days fill it;
  "after full" is the error from the end of the first absorption to the end of the week.

The baseline is the estimator as it was at ``--baseline`` (default: the commit before this
work), loaded from git into the same process and run on the same worlds. Then the present
estimator with the shunt's errors of the other signs (a real INA226's offset has either).
Prints max and mean |estimate - true| in SoC points.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from boards.virtual import firmware_path  # noqa: E402
from boards.virtual.battery import SHUNT, ShuntErrors  # noqa: E402
from testkit.soc_week import run_week  # noqa: E402

BASELINE = "d111b0d"  # main before the estimator's changes for issue 19, part 6
SCENARIOS = {"grey week": (6.0, 0.5), "full-charge week": (1.0, 0.6)}


def old_estimator(commit: str) -> Any:
    firmware_path()
    src = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{commit}:firmware/bench/power.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    mod = types.ModuleType("power_baseline")
    exec(compile(src, f"{commit}:firmware/bench/power.py", "exec"), mod.__dict__)  # noqa: S102
    return mod.PowerManager


def row(label: str, profile: str, estimator: Any, shunt: ShuntErrors, scenario: str) -> None:
    people, soc = SCENARIOS[scenario]
    t0 = time.perf_counter()
    week = run_week(profile, estimator=estimator, shunt=shunt, people=people, soc=soc)
    took = time.perf_counter() - t0
    after = "-"
    if week.full_at is not None:
        after = f"{week.max_error(week.full_at):.2f}"
    print(
        f"| {profile} | {scenario} | {label} | {week.max_error():.2f} | {week.mean_error():.2f}"
        f" | {after} | {took:.1f} s |"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", default=BASELINE, help="git commit of the baseline estimator")
    args = ap.parse_args()
    firmware_path()
    # This checkout's firmware, not the one klupa is installed with: worktrees share a venv
    # whose editable install may map the firmware to another checkout (see conftest.py).
    sys.path.insert(0, str(ROOT / "firmware"))
    from bench.power import PowerManager  # type: ignore[import-not-found]

    print(f"estimator: {sys.modules['bench.power'].__file__}", file=sys.stderr)
    baseline = old_estimator(args.baseline)
    print(
        "| profile | scenario | estimator, shunt | max error | mean error | max after full | run |"
    )
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for profile in ("bench-v1", "bench-s3-v2"):
        for scenario in SCENARIOS:
            row(f"baseline {args.baseline}, +1.5 %/+8 mA", profile, baseline, SHUNT, scenario)
            row("present, +1.5 %/+8 mA", profile, PowerManager, SHUNT, scenario)
        for gain, offset in ((0.985, -0.008), (1.015, -0.008), (0.985, 0.008)):
            shunt = ShuntErrors(gain, offset)
            label = f"present, {100 * (gain - 1):+.1f} %/{1000 * offset:+.0f} mA"
            for scenario in SCENARIOS:
                row(label, profile, PowerManager, shunt, scenario)
    return 0


if __name__ == "__main__":
    sys.exit(main())
