"""The VM runner reports each test's outcome and the heap a test module holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit.micropython import need_micropython_vm
from testkit.vm import run_script, run_unittests


@pytest.fixture(autouse=True)
def _vm() -> None:
    need_micropython_vm()


def write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def test_outcomes_are_reported_per_test(tmp_path: Path) -> None:
    test = write(
        tmp_path,
        "test_outcomes.py",
        "import unittest\n"
        "class T(unittest.TestCase):\n"
        "    def test_passes(self):\n        self.assertEqual(1 + 1, 2)\n"
        "    def test_fails(self):\n        self.assertLess(3, 2)\n"
        "    def test_errors(self):\n        {}['missing']\n"
        "    @unittest.skip('not today')\n    def test_skipped(self):\n        pass\n",
    )
    result = run_unittests(test, firmware=False)
    status = {t.name: t.status for t in result.tests}
    assert status == {
        "T.test_passes": "pass",
        "T.test_fails": "fail",
        "T.test_errors": "error",
        "T.test_skipped": "skip",
    }
    assert not result.ok
    failed = {t.name: t.detail for t in result.failures()}
    assert "3 not less than 2" in failed["T.test_fails"]
    assert "KeyError" in failed["T.test_errors"]


def test_a_module_that_does_not_import_in_micropython_is_an_error(tmp_path: Path) -> None:
    test = write(tmp_path, "test_cpython_only.py", "import dataclasses\nimport unittest\n")
    result = run_unittests(test, firmware=False)
    assert not result.ok and result.tests == []
    assert "dataclasses" in result.error


def test_extra_paths_are_importable_and_async_tests_run(tmp_path: Path) -> None:
    lib = tmp_path / "fw"
    lib.mkdir()
    (lib / "thermo.py").write_text(
        "import asyncio\nasync def read_after(ms, value):\n"
        "    await asyncio.sleep_ms(ms)\n    return value\n"
    )
    tests = tmp_path / "tests"
    tests.mkdir()
    test = write(
        tests,
        "test_thermo.py",
        "import unittest, thermo\n"
        "class T(unittest.IsolatedAsyncioTestCase):\n"
        "    async def test_reads(self):\n"
        "        self.assertEqual(await thermo.read_after(5, 21.5), 21.5)\n",
    )
    result = run_unittests(test, [(lib, "/")], firmware=False)
    assert [(t.name, t.status) for t in result.tests] == [("T.test_reads", "pass")], result.report()


def test_heap_high_water_counts_what_a_module_holds(tmp_path: Path) -> None:
    test = write(
        tmp_path,
        "test_heap.py",
        "import unittest\nHEAP_BUDGET = 50000\n"
        "class Big(unittest.TestCase):\n"
        "    def setUp(self):\n        self.block = bytearray(60000)\n"
        "    def test_uses_block(self):\n        self.assertEqual(len(self.block), 60000)\n",
    )
    small = write(
        tmp_path,
        "test_small.py",
        "import unittest\nclass Small(unittest.TestCase):\n"
        "    def test_tiny(self):\n        self.assertTrue(sum(range(10)))\n",
    )
    big = run_unittests(test, firmware=False)
    little = run_unittests(small, firmware=False)
    assert big.ok and little.ok
    assert big.heap_high_water >= 60000
    assert little.heap_high_water < 20000
    assert big.heap_budget == 50000 and little.heap_budget is None


def test_a_script_runs_alone_and_its_failure_is_reported(tmp_path: Path) -> None:
    # run_script awaits main() with nothing else loaded: neither unittest nor the runner.
    ok = write(
        tmp_path,
        "lean.py",
        "import sys\n"
        "async def main():\n"
        "    print('@@loaded', sorted(m for m in ('unittest', 'klupa_vmrun') if m in sys.modules))\n",
    )
    result = run_script(ok, firmware=False)
    assert result.ok, result.error
    assert "@@loaded []" in result.output
    bad = write(tmp_path, "broken.py", "async def main():\n    raise ValueError('no luck')\n")
    result = run_script(bad, firmware=False)
    assert not result.ok and "no luck" in result.error
