# mypy: ignore-errors
# (MicroPython code, run inside the VM; not typed for CPython)
# The in-VM side of testkit/vm.py: import one test module, run its TestCase classes
# (awaiting async tests on the port's JavaScript-driven asyncio), sample the heap, and print
# one result line "<marker><json>" for the host to parse.
#
# This port cannot scan its own C stack, so its collector runs only when control returns to
# JavaScript (a yield to the event loop): gc.collect() and the gc.threshold() trigger just
# mark a collection as pending. Hence two figures: the live heap sampled right after
# collections (after a yield: between test phases, and every millisecond while an async
# test waits), and the most bytes allocated between two collections (a synchronous stretch
# of code: an upper bound on its transient peak, since it counts its garbage too).
import asyncio
import gc
import io
import json
import sys
import unittest

HEAP_THRESHOLD = 4096
ASYNC_TIMEOUT_S = 60  # an async test or hook that waits longer fails instead of hanging


def _traceback(exc):
    buf = io.StringIO()
    sys.print_exception(exc, buf)
    return buf.getvalue()


_burst = [0]  # most bytes allocated between two collections
_after_collect = [0]  # gc.mem_alloc() just after the last settle


def _note_burst():
    grown = gc.mem_alloc() - _after_collect[0]
    if grown > _burst[0]:
        _burst[0] = grown


async def _settle():
    # Collect (at the top level, the only place this port can) and sample the live heap.
    _note_burst()
    gc.collect()
    # The port's loop returns to JavaScript only when the next task is not yet due: 0 or 1 ms
    # may resume at once without the collection; 2 ms always waits for a timer.
    await asyncio.sleep_ms(2)
    _after_collect[0] = gc.mem_alloc()
    unittest.sample_heap()


async def _sampler():
    while True:
        await asyncio.sleep_ms(2)
        unittest.sample_heap()


async def _maybe_await(result):
    # Async tests and hooks return a coroutine: await it while sampling the heap.
    if hasattr(result, "send"):
        sampler = asyncio.create_task(_sampler())
        try:
            await asyncio.wait_for(result, ASYNC_TIMEOUT_S)
        finally:
            sampler.cancel()
    await _settle()


def _status(exc):
    if isinstance(exc, unittest.SkipTest):
        return "skip", str(exc.args[0]) if exc.args else ""
    if isinstance(exc, unittest.ExpectedFailure):
        return "xfail", ""
    if isinstance(exc, unittest.UnexpectedSuccess):
        return "xpass", "unexpected success of a test marked expectedFailure"
    if isinstance(exc, AssertionError):
        return "fail", _traceback(exc)
    return "error", _traceback(exc)


async def _run_test(cls, name, results):
    test = cls(name)
    label = f"{cls.__name__}.{name}"
    is_async = isinstance(test, unittest.IsolatedAsyncioTestCase)
    status, detail = "pass", ""
    try:
        test.setUp()
        await _settle()
        if is_async:
            await _maybe_await(test.asyncSetUp())
        try:
            await _maybe_await(getattr(test, name)())
        finally:
            if is_async:
                await _maybe_await(test.asyncTearDown())
            test.tearDown()
            await _settle()
    except Exception as exc:
        status, detail = _status(exc)
    try:
        test.doCleanups()
        del test
        await _settle()
    except Exception as exc:
        if status == "pass":
            status, detail = "error", _traceback(exc)
    results.append((label, status, detail))


def _test_classes(module):
    bases = (unittest.TestCase, unittest.IsolatedAsyncioTestCase)
    found = []
    for attr in sorted(dir(module)):
        obj = getattr(module, attr)
        if isinstance(obj, type) and issubclass(obj, unittest.TestCase) and obj not in bases:
            found.append(obj)
    return found


async def run_module(name, marker):
    results = []
    error = ""
    budget = None
    gc.threshold(HEAP_THRESHOLD)
    await _settle()
    baseline = gc.mem_alloc()
    unittest.reset_heap(baseline)
    _burst[0] = 0
    try:
        module = __import__(name)
        await _settle()
        budget = getattr(module, "HEAP_BUDGET", None)
        for cls in _test_classes(module):
            names = sorted(
                n for n in dir(cls) if n.startswith("test") and callable(getattr(cls, n))
            )
            reason = getattr(cls, "__unittest_skip__", None)
            if reason is not None:
                for n in names:
                    results.append((f"{cls.__name__}.{n}", "skip", reason))
                continue
            try:
                cls.setUpClass()
            except Exception as exc:
                status, detail = _status(exc)
                for n in names:
                    results.append((f"{cls.__name__}.{n}", status, detail))
                continue
            for n in names:
                await _run_test(cls, n, results)
            try:
                cls.tearDownClass()
            except Exception as exc:
                results.append((f"{cls.__name__}.tearDownClass", "error", _traceback(exc)))
    except BaseException as exc:  # an import error or SystemExit ends the module's run
        error = _traceback(exc)
    await _settle()
    gc.threshold(-1)
    print(
        marker
        + json.dumps(
            {
                "tests": results,
                "baseline": baseline,
                "peak": unittest.heap_peak(),
                "error": error,
                "budget": budget,
                "burst": _burst[0],
            }
        )
    )
