"""No garbage collection between a press and its confirmation (issue 19, part 4).

`tests/firmware/vm_gc/press_gc.py` runs in the MicroPython VM: the firmware's `gc` is a spy,
1,000 presses go through `TouchPads.sample()` and `Front.idle()` as `Front.run()` drives them,
and every collection the firmware asks for is counted, inside the press path (press recognised
→ confirmation frame at I2C) or outside it, as is the heap growing inside the path (where an
ESP32 out of room would collect). Ten more presses with a `gc.collect()` planted in the vote
callback show the count sees a collection there.
"""

from __future__ import annotations

import json
from pathlib import Path

from testkit.micropython import need_micropython_vm
from testkit.vm import run_script

HERE = Path(__file__).resolve().parent
VM_BENCH = HERE.parents[1] / "benchmarks" / "vm"


def test_no_collection_lands_in_the_press_path_over_1000_presses() -> None:
    need_micropython_vm()
    result = run_script(
        HERE / "vm_gc" / "press_gc.py",
        [(VM_BENCH / "vmkit.py", "/tests"), (VM_BENCH / "vmapp.py", "/tests")],
        timeout=600,
    )
    assert result.ok, result.error + result.output[-2000:]
    line = next(x for x in result.output.splitlines() if x.startswith("@@press-gc "))
    r = json.loads(line.removeprefix("@@press-gc "))
    assert r["frames"] == r["presses"] == 1000
    assert r["in_path"] == 0 and r["grown"] == 0, r
    assert r["idle"] >= r["presses"], r  # collected after each press, once the pads were idle
    assert r["planted_in_path"] == 10, r
