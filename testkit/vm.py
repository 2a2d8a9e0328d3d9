"""Run firmware unit tests inside the real MicroPython VM (the npm WebAssembly port).

    result = run_unittests(Path("tests/firmware/unit/test_window.py"))
    assert result.ok, result.report()
    print(result.heap_high_water)

or from a shell: ``python -m testkit.vm tests/firmware/unit/test_window.py ...``.
``run_script(path)`` instead imports a plain script and awaits its ``main()`` with nothing
else loaded (no runner, no ``unittest``): the heap benchmarks in ``benchmarks/vm/`` use it.

How the VM is set up
--------------------
``node`` runs ``vmrun.mjs``, which loads the port and copies into the VM's file system:

- ``firmware/`` to ``/`` (as on the bench's flash: ``import drivers.ina219`` works),
- ``boards/virtual/mp/`` to ``/lib`` (the MicroPython fakes of ``machine``, ``network``,
  ``esp32``, ``ntptime`` and the chip models they use),
- the board profiles ``boards/*.json`` to ``/boards`` (a test builds the virtual board with
  ``machine.use(json.load(open("/boards/bench-v1.json")))``),
- ``testkit/mp/`` to ``/lib`` (our ``unittest`` and the in-VM runner),
- the test file's folder (its ``*.py``) to ``/tests``.

``sys.path`` is ``['/tests', '', '/lib', '.frozen']``; the working directory is ``/``, an
in-memory file system thrown away after the run (files the firmware writes do not reach the
repository). The GC heap starts at 56 KiB, as on a plain ESP32, and grows on demand.

Writing a test that runs in both places
---------------------------------------
Write ``import unittest`` and subclass ``unittest.TestCase`` (or
``unittest.IsolatedAsyncioTestCase`` for ``async def test_...``). Under pytest the file runs on
CPython's unittest; in the VM it runs on ``testkit/mp/unittest.py``, which has:
``setUp``/``tearDown`` (``asyncSetUp``/``asyncTearDown`` for the async case), ``setUpClass``/
``tearDownClass``, ``addCleanup``, ``skipTest``, ``subTest``, the decorators ``skip``,
``skipIf``, ``skipUnless``, ``expectedFailure``, and the assertions ``assertEqual``,
``assertNotEqual``, ``assertTrue``, ``assertFalse``, ``assertIs``, ``assertIsNot``,
``assertIsNone``, ``assertIsNotNone``, ``assertIn``, ``assertNotIn``, ``assertIsInstance``,
``assertNotIsInstance``, ``assertAlmostEqual``/``assertNotAlmostEqual`` (``places`` or
``delta``), ``assertLess``, ``assertLessEqual``, ``assertGreater``, ``assertGreaterEqual``,
``assertRaises`` (call form and context manager, ``cm.exception``), ``assertCountEqual``,
``assertSequenceEqual``, ``assertDictEqual``, ``assertListEqual``, ``fail``. Nothing else
(no ``mock``, no ``assertLogs``, no ``assertRaisesRegex``).

What this VM is not: it is not an ESP32
---------------------------------------
- **asyncio is driven by JavaScript's event loop.** There is no ``asyncio.run`` and no
  ``loop.run_until_complete``/``run_forever``. Test async code with
  ``unittest.IsolatedAsyncioTestCase`` and ``async def test_...``: the in-VM runner awaits the
  coroutine at the top level (the port's top-level ``await``), so ``asyncio.sleep``,
  ``sleep_ms``, ``create_task``, ``gather``, ``wait_for``, ``Event``, ``Lock`` and task
  cancellation all work, with real (wall-clock) timers. Never call ``asyncio.run`` in code
  under test; keep it in ``main.py``. As on the ESP32, ``asyncio.sleep()`` returns a
  singleton generator, not a coroutine: ``wait_for``/``gather``/``create_task`` need a
  coroutine (``async def``), not ``asyncio.sleep(1)`` directly.
- **No** ``socket``, ``ssl``, ``network``, ``machine``, ``esp32``, ``ntptime``, ``_thread``,
  ``select.poll`` on sockets, ``umqtt``: hardware and network come from the fakes in
  ``boards/virtual/mp/`` (``machine``, ``network``, ``esp32``, ``ntptime``) or from objects the
  test passes in.
- **Floats are doubles** here, single precision on the ESP32: compare floats with
  ``assertAlmostEqual`` and never rely on digits past the 6th.
- ``errno`` numbers are Emscripten's (``ENOENT`` is 44, 2 on the ESP32): compare with
  ``errno.ENOENT``, never a literal.
- ``time.time()`` counts from 1970 here; the ESP32 port's epoch is also 1970 (since v1.22).
- The VM has modules an ESP32 does not (``js``, ``jsffi``, ``pathlib``, ``tarfile``, a
  frozen ``unittest``): ``python -m klupa.firmware_checks`` rejects imports outside the ESP32
  port's modules, so do not use them in ``firmware/``.

Heap figures
------------
This port cannot scan its C stack, so its garbage collector runs only when control returns
to JavaScript (an ``await`` that yields to the event loop): inside synchronous code
``gc.collect()`` and the ``gc.threshold()`` trigger only mark a collection as pending, and the
heap grows instead. The runner therefore sets ``gc.threshold()`` to 4 KiB and samples
``gc.mem_alloc()`` right after collections: after ``gc.collect()`` plus a yield between test
phases (import, setUp, the test, tearDown, cleanups) and every 2 ms while an async
test waits (each yield collects when 4 KiB were allocated since the last collection).

- ``heap_high_water``: the highest such sample minus the baseline taken before the module is
  imported: the live bytes the module (its imports, fixtures, code under test) held at its
  peak, within about the 4 KiB threshold. Transient garbage inside one synchronous stretch
  is not in it; to measure a long computation's working set, drive it from an async test
  that yields (``await asyncio.sleep(0)``) as the firmware's tasks do.
- ``heap_burst``: the most bytes allocated between two collections (garbage included): an
  upper bound on a synchronous stretch's transient peak; on the ESP32 the collector would
  have run within it.

``tests/firmware/test_in_vm.py`` prints both and checks ``heap_high_water`` against the
module's ``HEAP_BUDGET`` (a module-level int, bytes) when it declares one.
``DEFAULT_HEAP_BUDGET`` (100 000, what Wi-Fi and TLS leave a plain ESP32) is the figure to
start from.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

PACKAGE = "@micropython/micropython-webassembly-pyscript"
HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
MPBOARD_SCRIPT = HERE / "mpboard.mjs"
VMRUN_SCRIPT = HERE / "vmrun.mjs"
MP_LIB = HERE / "mp"
FIRMWARE_DIR = REPO_ROOT / "firmware"
FAKES_DIR = REPO_ROOT / "boards" / "virtual" / "mp"
PROFILES_DIR = REPO_ROOT / "boards"
RESULT_MARKER = "@@klupa-vm-result "


def firmware_module(name: str) -> ModuleType:
    """A firmware module (``bench.pollcheck``, …) imported into CPython, where it runs too:
    for tests that hold a host-side check to the bench's."""
    if str(FIRMWARE_DIR) not in sys.path:
        sys.path.insert(0, str(FIRMWARE_DIR))
    return importlib.import_module(name)


DEFAULT_HEAPSIZE = 56 * 1024
# What Wi-Fi and TLS leave a plain ESP32's GC heap (../shared/DESIGN.md): the default budget a test
# module's heap high-water mark is checked against; a module may set its own HEAP_BUDGET.
DEFAULT_HEAP_BUDGET = 100_000


class VmUnavailable(RuntimeError):
    """node or the npm MicroPython port is missing."""


def port_module() -> Path:
    """The port's entry module (override with KLUPA_MICROPYTHON_MJS)."""
    env = os.environ.get("KLUPA_MICROPYTHON_MJS")
    if env:
        return Path(env)
    return REPO_ROOT / "node_modules" / PACKAGE / "micropython.mjs"


def require_vm() -> tuple[str, Path]:
    """Return (node binary, port module) or raise VmUnavailable naming what is missing."""
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        raise VmUnavailable(
            "node is not installed (needed to run the MicroPython WebAssembly port; "
            "install Debian's nodejs and npm)"
        )
    module = port_module()
    if not module.is_file():
        raise VmUnavailable(
            f"the npm package {PACKAGE} is not installed ({module} missing; "
            "run `npm ci` at the repository root, as `make test` does)"
        )
    return node, module


@dataclass
class CaseOutcome:
    """One test's result in the VM: status is pass, fail, error, skip, xfail or xpass."""

    name: str
    status: str
    detail: str = ""


@dataclass
class VmResult:
    """The VM run of one test module."""

    module: str
    tests: list[CaseOutcome] = field(default_factory=list)
    heap_baseline: int = 0
    heap_peak: int = 0
    heap_budget: int | None = None  # the module's HEAP_BUDGET, when it sets one
    heap_burst: int = 0  # most bytes allocated between two collections
    error: str = ""  # the module failed to import, or the VM died
    output: str = ""  # everything the VM printed besides the result line

    @property
    def heap_high_water(self) -> int:
        """Peak bytes held by the module above the pre-import baseline."""
        return self.heap_peak - self.heap_baseline

    @property
    def ok(self) -> bool:
        return not self.error and all(t.status in ("pass", "skip", "xfail") for t in self.tests)

    def failures(self) -> list[CaseOutcome]:
        return [t for t in self.tests if t.status not in ("pass", "skip", "xfail")]

    def report(self) -> str:
        lines = [f"{self.module}: {len(self.tests)} tests in the MicroPython VM"]
        if self.error:
            lines.append(f"module error:\n{self.error}")
        for t in self.tests:
            lines.append(f"  {t.status.upper():5} {t.name}")
            if t.detail and t.status not in ("pass",):
                lines.extend("        " + line for line in t.detail.rstrip().splitlines())
        lines.append(
            f"  heap high-water {self.heap_high_water} bytes "
            f"(peak {self.heap_peak}, baseline {self.heap_baseline}); "
            f"at most {self.heap_burst} bytes allocated between collections"
        )
        if self.output.strip() and not self.ok:
            lines.append("VM output:\n" + self.output.rstrip())
        return "\n".join(lines)


def default_paths() -> list[tuple[Path, str]]:
    """Host folders the VM gets by default: (host path, VM path)."""
    paths = [(FIRMWARE_DIR, "/")]
    if FAKES_DIR.is_dir():
        paths.append((FAKES_DIR, "/lib"))
    paths.extend((p, "/boards") for p in sorted(PROFILES_DIR.glob("*.json")))
    return paths


def _vm_config(
    entry: Path, extra_paths: Sequence[tuple[Path, str]], firmware: bool, heapsize: int
) -> dict[str, object]:
    node, module = require_vm()
    copies: list[tuple[Path, str]] = list(default_paths()) if firmware else []
    copies.append((MP_LIB, "/lib"))
    copies.extend(extra_paths)
    copies.extend((p, "/tests") for p in sorted(entry.parent.glob("*.py")))
    return {
        "node": node,
        "portModule": str(module),
        "heapsize": heapsize,
        "copies": [[str(host), vm] for host, vm in copies if host.exists()],
        "module": entry.stem,
        "marker": RESULT_MARKER,
    }


def _run_node(
    config: dict[str, object], timeout: float
) -> tuple[subprocess.CompletedProcess[bytes] | None, str]:
    """(the finished run, "") or (None, what it printed) when it timed out."""
    try:
        proc = subprocess.run(
            [str(config.pop("node")), str(VMRUN_SCRIPT)],
            input=json.dumps(config).encode(),
            capture_output=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        return None, (exc.stdout or b"").decode(errors="replace")
    return proc, ""


def run_unittests(
    test_file: Path,
    extra_paths: Sequence[tuple[Path, str]] = (),
    *,
    firmware: bool = True,
    heapsize: int = DEFAULT_HEAPSIZE,
    timeout: float = 120.0,
) -> VmResult:
    """Run the unittest module ``test_file`` in the MicroPython VM and return its results.

    ``extra_paths`` are (host file or folder, VM folder) pairs copied in after the defaults
    (``firmware/`` to ``/``, ``boards/virtual/mp/`` to ``/lib`` and the board profiles to
    ``/boards`` unless ``firmware=False``).
    Raises VmUnavailable when node or the npm port is missing.
    """
    test_file = test_file.resolve()
    config = _vm_config(test_file, extra_paths, firmware, heapsize)
    proc, out = _run_node(config, timeout)
    if proc is None:
        return VmResult(module=test_file.stem, error=f"timed out after {timeout}s", output=out)
    return parse_output(test_file.stem, proc.stdout.decode(errors="replace"), proc)


@dataclass
class ScriptResult:
    """The VM run of one script: what it printed, and why it failed if it did."""

    output: str
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def run_script(
    script: Path,
    extra_paths: Sequence[tuple[Path, str]] = (),
    *,
    firmware: bool = True,
    heapsize: int = DEFAULT_HEAPSIZE,
    timeout: float = 120.0,
) -> ScriptResult:
    """Import ``script`` in the MicroPython VM and await its ``main()``, with nothing else
    loaded (no runner, no ``unittest``): the VM as lean as a bench before its app, for the
    heap benchmarks. The same copies as ``run_unittests``; raises VmUnavailable likewise."""
    script = script.resolve()
    config = _vm_config(script, extra_paths, firmware, heapsize)
    config["script"] = True
    proc, out = _run_node(config, timeout)
    if proc is None:
        return ScriptResult(out, f"timed out after {timeout}s")
    err = proc.stderr.decode(errors="replace").strip()
    return ScriptResult(
        proc.stdout.decode(errors="replace"),
        "" if proc.returncode == 0 else f"exit {proc.returncode}: {err}",
    )


def parse_output(module: str, stdout: str, proc: subprocess.CompletedProcess[bytes]) -> VmResult:
    other: list[str] = []
    payload: dict[str, object] | None = None
    for line in stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            payload = json.loads(line[len(RESULT_MARKER) :])
        else:
            other.append(line)
    output = "\n".join(other)
    if payload is None:
        err = proc.stderr.decode(errors="replace").strip()
        return VmResult(
            module=module,
            error=f"the VM gave no result (exit {proc.returncode}): {err or output[-2000:]}",
            output=output,
        )
    raw_tests = payload.get("tests", [])
    assert isinstance(raw_tests, list)
    tests = [CaseOutcome(str(t[0]), str(t[1]), str(t[2])) for t in raw_tests]
    return VmResult(
        module=module,
        tests=tests,
        heap_baseline=int(str(payload.get("baseline", 0))),
        heap_peak=int(str(payload.get("peak", 0))),
        heap_budget=None if payload.get("budget") is None else int(str(payload["budget"])),
        heap_burst=int(str(payload.get("burst", 0))),
        error=str(payload.get("error") or ""),
        output=output,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m testkit.vm",
        description="Run firmware unit-test files inside the MicroPython WebAssembly VM.",
    )
    parser.add_argument("tests", nargs="+", type=Path, help="unittest files")
    parser.add_argument("--heapsize", type=int, default=DEFAULT_HEAPSIZE)
    args = parser.parse_args(argv)
    ok = True
    for test in args.tests:
        try:
            result = run_unittests(test, heapsize=args.heapsize)
        except VmUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(result.report())
        ok = ok and result.ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
