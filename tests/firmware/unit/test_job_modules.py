# Runs under pytest and inside the MicroPython VM: unittest and firmware modules only.
# Modules imported for one job leave sys.modules when the job is done (docs/firmware.md,
# "Heap: what stays resident"), and a failed NTP query is not repeated within 30 s.
import gc
import sys
import unittest

try:
    import asyncio
except ImportError:  # older MicroPython
    import uasyncio as asyncio

from bench import runtime
from bench import spool as sp
from scratch import fresh


def forget(name):
    runtime.unload(name)


def loaded(name):
    # Still reachable as an import: in sys.modules or as an attribute of the bench package.
    pkg = sys.modules.get("bench")
    return "bench." + name in sys.modules or (pkg is not None and hasattr(pkg, name))


def rec(seq, kind=sp.KIND_TELEMETRY):
    return sp.Record(kind, 3, seq, 1795712460 + seq, 0, bytes([seq]) * 40)


class Clock:
    # runtime.CLOCK: ticks and wall time the test moves.
    def __init__(self):
        self.ms = 0

    def ticks_ms(self):
        return self.ms

    def time(self):
        return 1795712460 + self.ms // 1000

    def settime(self, t):
        pass

    def real_s(self, ms):
        return ms / 1000


class FailingNtp:
    host = None

    def __init__(self):
        self.queries = 0

    def settime(self):
        self.queries += 1
        raise OSError("no answer")


class Net:
    STA_IF = 0
    AP_IF = 1

    class WLAN:
        def __init__(self, kind):
            self.kind = kind


class Hw:
    network = Net

    def __init__(self):
        self.ntptime = FailingNtp()


class StubApp:
    def __init__(self):
        self.hw = Hw()
        self.cfg = {
            "bench": "maglaj-01",
            "municipality": "maglaj",
            "mqtt": {"host": "10.0.0.1", "port": 1883},
            "ntp_every_s": 21600,
        }
        self.clock_calls = 0

    def set_clock(self, new_wall, old_wall):
        self.clock_calls += 1


class JobModulesTest(unittest.TestCase):
    def test_spool_recovery_runs_in_a_module_that_is_dropped_afterwards(self):
        root = fresh("jobs-recover")
        s = sp.Spool(root)
        for i in range(1, 6):
            s.append(rec(i))
        forget("spoolmaint")
        again = sp.Spool(root)
        self.assertEqual([r.seq for r in again.records()], [1, 2, 3, 4, 5])  # it recovered
        self.assertFalse(loaded("spoolmaint"))

    def test_making_room_in_a_full_spool_drops_its_module_too(self):
        root = fresh("jobs-full")
        s = sp.Spool(root, capacity=1200, segment_bytes=300)
        s.append(rec(1, sp.KIND_EVENT))
        for i in range(2, 40):
            s.append(rec(i))
        self.assertGreater(s.dropped, 0)  # room was made
        self.assertIn(1, [r.seq for r in s.records()])  # the event stayed
        self.assertFalse(loaded("spoolmaint"))

    def test_a_failed_ntp_query_waits_30_s_before_the_next(self):
        # Imported here, not at the top: other tests in this process may have dropped the
        # app's modules, and the clock must be set on the runtime the link uses.
        from bench import runtime as rt
        from bench.link import Link

        clock = Clock()
        rt.CLOCK = clock
        try:
            app = StubApp()
            link = Link(app)
            self.assertTrue(link.ntp_due())  # never synchronised
            from bench import connect

            connect.ntp(link)
            rt.unload("connect")
            self.assertEqual(app.hw.ntptime.queries, 1)
            self.assertEqual(app.clock_calls, 0)
            clock.ms += 29000
            self.assertFalse(link.ntp_due())
            clock.ms += 1500
            self.assertTrue(link.ntp_due())
            self.assertFalse(loaded("connect"))
        finally:
            rt.CLOCK = None


async def settle():
    # The VM port collects when control returns to JavaScript: collect, then yield (twice).
    for _ in range(2):
        gc.collect()
        await asyncio.sleep(0.002)


class DroppedModuleTest(unittest.IsolatedAsyncioTestCase):
    async def test_an_unloaded_module_can_be_collected(self):
        # The point of dropping a job module: its code leaves memory. In MicroPython the heap
        # shows it (gc.mem_alloc); on CPython nothing refers to the module object any more.
        __import__("bench.app")  # what bench.commands imports stays resident anyway
        forget("commands")
        await settle()
        if hasattr(gc, "mem_alloc"):
            before = gc.mem_alloc()
            __import__("bench.commands")
            await settle()
            held = gc.mem_alloc()
            runtime.unload("commands")
            await settle()
            after = gc.mem_alloc()
            self.assertGreater(held - before, 1024)
            # what remains are the names it interned (they stay for the VM's life)
            self.assertLess(after - before, (held - before) // 2)
        else:
            import weakref

            __import__("bench.commands")
            ref = weakref.ref(sys.modules["bench.commands"])
            runtime.unload("commands")
            await settle()
            self.assertIsNone(ref())
        self.assertFalse(loaded("commands"))


class _Glass:
    # A display that keeps the frame buffer and counts frames shown.
    def __init__(self):
        self.width = 128
        self.height = 64
        self.buffer = bytearray(1024)
        self.shown = 0

    def fill(self, c):
        for i in range(len(self.buffer)):
            self.buffer[i] = 0xFF if c else 0

    def fill_rect(self, x, y, w, h, c):
        pass

    def show(self):
        self.shown += 1


class _NoPoll:
    poll = None

    def is_open(self):
        return False


class ServiceScreen(unittest.TestCase):
    def test_the_service_screen_is_drawn_and_its_module_leaves(self):
        from bench.screens import Screens, Ui

        forget("service")
        glass = _Glass()
        info = {"bench": "mostar-01", "boot": 3, "fw": "1.0.0", "rssi": -60, "broker": True}
        info["spool"] = 0
        info["fault"] = None
        ui = Ui(Screens(glass), _NoPoll(), lambda: ("mostar", 50, 2, None), lambda: 0, lambda: info)
        ui.on_touch("service", 0)
        self.assertEqual(ui.mode, "service")
        self.assertEqual(glass.shown, 1)
        self.assertFalse(loaded("service"))


if __name__ == "__main__":
    unittest.main()
