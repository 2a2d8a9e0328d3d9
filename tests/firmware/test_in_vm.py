"""Every firmware unit-test module also passes inside the real MicroPython VM.

The modules in tests/firmware/unit/ run under pytest on CPython as ordinary unittest files;
here each runs again in the npm MicroPython WebAssembly port (testkit/vm.py), with
the firmware and the MicroPython fakes of the hardware. Its heap high-water mark is printed
(and recorded as a junit property), and checked against the module's HEAP_BUDGET when it
declares one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit.micropython import need_micropython_vm
from testkit.vm import run_unittests

UNIT_DIR = Path(__file__).parent / "unit"
MODULES = sorted(UNIT_DIR.glob("test_*.py"))


@pytest.mark.parametrize("test_file", MODULES, ids=[p.stem for p in MODULES])
def test_unit_module_passes_in_micropython_vm(
    test_file: Path, record_property: pytest.RecordProperty
) -> None:
    need_micropython_vm()
    result = run_unittests(test_file)
    print(result.report())
    record_property("heap_high_water", result.heap_high_water)
    assert not result.error, result.report()
    assert result.tests, f"{test_file.name}: no tests ran in the VM"
    assert result.ok, result.report()
    if result.heap_budget is not None:
        assert result.heap_high_water <= result.heap_budget, (
            f"{test_file.name}: heap high-water {result.heap_high_water} bytes "
            f"exceeds its HEAP_BUDGET of {result.heap_budget}"
        )
