# mypy: ignore-errors
# (MicroPython code, run inside the VM; not typed for CPython)
# A small unittest for the MicroPython VM, so that firmware test files written for CPython's
# unittest run unchanged inside MicroPython (testkit/vm.py runs them; see its docs for
# what is here). MicroPython functions take no attributes, so the decorators wrap.
import gc

__all__ = [
    "IsolatedAsyncioTestCase",
    "SkipTest",
    "TestCase",
    "expectedFailure",
    "main",
    "sample_heap",
    "skip",
    "skipIf",
    "skipUnless",
]

_heap = [0]  # highest gc.mem_alloc() seen since the runner's last reset


def sample_heap():
    a = gc.mem_alloc()
    if a > _heap[0]:
        _heap[0] = a


def reset_heap(value):
    _heap[0] = value


def heap_peak():
    return _heap[0]


class SkipTest(Exception):
    pass


class ExpectedFailure(Exception):
    pass


class UnexpectedSuccess(Exception):
    pass


def skip(reason):
    def decorator(obj):
        if isinstance(obj, type):
            obj.__unittest_skip__ = reason
            return obj

        def skipped(*args, **kwargs):
            raise SkipTest(reason)

        return skipped

    return decorator


def skipIf(condition, reason):
    return skip(reason) if condition else (lambda obj: obj)


def skipUnless(condition, reason):
    return skip(reason) if not condition else (lambda obj: obj)


async def _expect_failure_async(coro):
    try:
        await coro
    except AssertionError:
        raise ExpectedFailure() from None
    raise UnexpectedSuccess()


def expectedFailure(fn):
    def wrapper(*args, **kwargs):
        try:
            result = fn(*args, **kwargs)
        except AssertionError:
            raise ExpectedFailure() from None
        if hasattr(result, "send"):
            return _expect_failure_async(result)
        raise UnexpectedSuccess()

    return wrapper


class _RaisesContext:
    def __init__(self, expected):
        self.expected = expected
        self.exception = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            raise AssertionError(f"{self.expected!r} not raised")
        if issubclass(exc_type, self.expected):
            self.exception = exc
            return True
        return False


class _NullContext:
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        return False


def _fmt(msg, default):
    return default if msg is None else msg


class TestCase:
    def __init__(self, methodName="runTest"):
        self._testMethodName = methodName
        self._cleanups = []

    def __str__(self):
        return f"{type(self).__name__}.{self._testMethodName}"

    @classmethod
    def setUpClass(cls):
        pass

    @classmethod
    def tearDownClass(cls):
        pass

    def setUp(self):
        pass

    def tearDown(self):
        pass

    def addCleanup(self, fn, *args, **kwargs):
        self._cleanups.append((fn, args, kwargs))

    def doCleanups(self):
        while self._cleanups:
            fn, args, kwargs = self._cleanups.pop()
            fn(*args, **kwargs)

    def skipTest(self, reason):
        raise SkipTest(reason)

    def subTest(self, msg=None, **params):
        return _NullContext()

    def fail(self, msg=None):
        raise AssertionError(_fmt(msg, "test failed"))

    # ---------------------------------------------------------------- assertions

    def assertEqual(self, first, second, msg=None):
        if not first == second:
            raise AssertionError(_fmt(msg, f"{first!r} != {second!r}"))

    def assertNotEqual(self, first, second, msg=None):
        if not first != second:
            raise AssertionError(_fmt(msg, f"{first!r} == {second!r}"))

    assertListEqual = assertEqual
    assertTupleEqual = assertEqual
    assertDictEqual = assertEqual
    assertSetEqual = assertEqual
    assertMultiLineEqual = assertEqual

    def assertSequenceEqual(self, first, second, msg=None, seq_type=None):
        self.assertEqual(list(first), list(second), msg)

    def assertCountEqual(self, first, second, msg=None):
        a, b = list(first), list(second)
        for item in a:
            if item in b:
                b.remove(item)
            else:
                raise AssertionError(_fmt(msg, f"{item!r} not in both sequences"))
        if b:
            raise AssertionError(_fmt(msg, f"{b!r} not in both sequences"))

    def assertTrue(self, expr, msg=None):
        if not expr:
            raise AssertionError(_fmt(msg, f"{expr!r} is not true"))

    def assertFalse(self, expr, msg=None):
        if expr:
            raise AssertionError(_fmt(msg, f"{expr!r} is not false"))

    def assertIs(self, first, second, msg=None):
        if first is not second:
            raise AssertionError(_fmt(msg, f"{first!r} is not {second!r}"))

    def assertIsNot(self, first, second, msg=None):
        if first is second:
            raise AssertionError(_fmt(msg, f"unexpectedly identical: {first!r}"))

    def assertIsNone(self, obj, msg=None):
        if obj is not None:
            raise AssertionError(_fmt(msg, f"{obj!r} is not None"))

    def assertIsNotNone(self, obj, msg=None):
        if obj is None:
            raise AssertionError(_fmt(msg, "unexpectedly None"))

    def assertIn(self, member, container, msg=None):
        if member not in container:
            raise AssertionError(_fmt(msg, f"{member!r} not found in {container!r}"))

    def assertNotIn(self, member, container, msg=None):
        if member in container:
            raise AssertionError(_fmt(msg, f"{member!r} unexpectedly found in {container!r}"))

    def assertIsInstance(self, obj, cls, msg=None):
        if not isinstance(obj, cls):
            raise AssertionError(_fmt(msg, f"{obj!r} is not an instance of {cls!r}"))

    def assertNotIsInstance(self, obj, cls, msg=None):
        if isinstance(obj, cls):
            raise AssertionError(_fmt(msg, f"{obj!r} is an instance of {cls!r}"))

    def assertLess(self, a, b, msg=None):
        if not a < b:
            raise AssertionError(_fmt(msg, f"{a!r} not less than {b!r}"))

    def assertLessEqual(self, a, b, msg=None):
        if not a <= b:
            raise AssertionError(_fmt(msg, f"{a!r} not less than or equal to {b!r}"))

    def assertGreater(self, a, b, msg=None):
        if not a > b:
            raise AssertionError(_fmt(msg, f"{a!r} not greater than {b!r}"))

    def assertGreaterEqual(self, a, b, msg=None):
        if not a >= b:
            raise AssertionError(_fmt(msg, f"{a!r} not greater than or equal to {b!r}"))

    def _almost(self, first, second, places, delta):
        if first == second:
            return True
        diff = abs(first - second)
        if delta is not None:
            return diff <= delta
        return round(diff, 7 if places is None else places) == 0

    def assertAlmostEqual(self, first, second, places=None, msg=None, delta=None):
        if not self._almost(first, second, places, delta):
            raise AssertionError(_fmt(msg, f"{first!r} != {second!r} within tolerance"))

    def assertNotAlmostEqual(self, first, second, places=None, msg=None, delta=None):
        if self._almost(first, second, places, delta):
            raise AssertionError(_fmt(msg, f"{first!r} == {second!r} within tolerance"))

    def assertRaises(self, expected, *args, **kwargs):
        ctx = _RaisesContext(expected)
        if not args:
            return ctx
        with ctx:
            args[0](*args[1:], **kwargs)
        return None


class IsolatedAsyncioTestCase(TestCase):
    async def asyncSetUp(self):
        pass

    async def asyncTearDown(self):
        pass


def main(*args, **kwargs):
    # The VM runner (klupa_vmrun) imports test modules by name, so a test file's
    # `if __name__ == "__main__": unittest.main()` never reaches here; nothing to do.
    pass
