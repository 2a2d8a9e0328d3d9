"""A sample of a firmware unit test that runs both under pytest (CPython) and in the VM.

It exercises what tests/firmware/test_in_vm.py relies on: setUp/tearDown, cleanups,
assertion helpers, assertRaises in both forms, and an async test
driven by the VM's asyncio (create_task, Event, wait_for, gather, cancellation).
"""

import asyncio
import unittest


def moving_average(values, n):
    # A pure helper standing in for firmware logic.
    out = []
    total = 0
    for i, v in enumerate(values):
        total += v
        if i >= n:
            total -= values[i - n]
        out.append(total / min(i + 1, n))
    return out


class MovingAverageTest(unittest.TestCase):
    def setUp(self):
        self.values = [2, 4, 6, 8]
        self.cleaned = []
        self.addCleanup(self.cleaned.append, "done")

    def tearDown(self):
        self.assertEqual(self.cleaned, [])

    def test_window_of_two_averages_neighbours(self):
        self.assertEqual(moving_average(self.values, 2), [2.0, 3.0, 5.0, 7.0])

    def test_float_results_compare_with_tolerance(self):
        self.assertAlmostEqual(moving_average([1, 2], 3)[1], 1.5)
        self.assertAlmostEqual(0.1 + 0.2, 0.3, places=6)
        self.assertAlmostEqual(10.0, 10.4, delta=0.5)

    def test_assertion_helpers(self):
        self.assertTrue(self.values)
        self.assertFalse([])
        self.assertIn(4, self.values)
        self.assertNotIn(5, self.values)
        self.assertIsNone(None)
        self.assertIsNotNone(0)
        self.assertLess(1, 2)
        self.assertGreater(2, 1)
        self.assertLessEqual(2, 2)
        self.assertGreaterEqual(2, 2)
        self.assertIsInstance(1.5, float)
        self.assertCountEqual([1, 2, 2], [2, 1, 2])
        self.assertNotEqual(1, 2)

    def test_assert_raises_as_call_and_as_context_manager(self):
        self.assertRaises(ZeroDivisionError, lambda: 1 // 0)
        with self.assertRaises(ValueError) as cm:
            int("x")
        self.assertIsInstance(cm.exception, ValueError)

    def test_a_failed_assertion_raises_assertion_error(self):
        with self.assertRaises(AssertionError):
            self.assertEqual(1, 2)
        with self.assertRaises(AssertionError):
            with self.assertRaises(KeyError):
                pass


async def _produce(event, box):
    await asyncio.sleep(0.005)
    box.append("reading")
    event.set()


async def _forever():
    while True:
        await asyncio.sleep(0.01)


async def _double(x):
    await asyncio.sleep(0.001)
    return 2 * x


class AsyncLoopTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.box = []

    async def test_task_signals_event(self):
        event = asyncio.Event()
        task = asyncio.create_task(_produce(event, self.box))
        await asyncio.wait_for(event.wait(), 1)
        await task
        self.assertEqual(self.box, ["reading"])

    async def test_wait_for_times_out_and_cancel_stops_a_task(self):
        with self.assertRaises(asyncio.TimeoutError):
            await asyncio.wait_for(_forever(), 0.02)
        task = asyncio.create_task(_forever())
        await asyncio.sleep(0.001)
        task.cancel()
        with self.assertRaises(asyncio.CancelledError):
            await task

    async def test_gather_returns_results_in_order(self):
        self.assertEqual(await asyncio.gather(_double(1), _double(2)), [2, 4])

    async def test_heap_use_is_visible_to_the_runner(self):
        block = bytearray(20000)
        await asyncio.sleep(0.005)
        self.assertEqual(len(block), 20000)
