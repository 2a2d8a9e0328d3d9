# Runs inside the MicroPython VM (under pytest on CPython it is skipped: the CPython virtual
# board's watchdog is tested on a whole bench, tests/firmware/test_bench_watchdog.py). The
# MicroPython fake `machine`'s WDT resets the board (VirtualReset, cause WDT_RESET) when it
# is not fed within its timeout; this VM cannot interrupt running code, so it bites at the
# next call into the hardware.
import json
import sys
import time
import unittest

MICROPYTHON = sys.implementation.name == "micropython"


def board_of(name):
    import machine

    with open("/boards/" + name + ".json") as f:
        prof = json.load(f)
    return machine.use(prof), machine, prof


@unittest.skipUnless(MICROPYTHON, "the MicroPython fake machine runs only in the VM")
class WatchdogVmTest(unittest.TestCase):
    def test_a_loop_stuck_reading_the_bus_is_reset_by_the_watchdog(self):
        board, machine, prof = board_of("bench-v1")
        i2c = machine.I2C(0)
        addr = prof["battery"]["addr"]
        machine.WDT(timeout=60)
        t0 = time.ticks_ms()
        with self.assertRaises(machine.VirtualReset) as cm:
            while time.ticks_diff(time.ticks_ms(), t0) < 5000:
                i2c.readfrom_mem(addr, 2, 2)
        waited = time.ticks_diff(time.ticks_ms(), t0)
        self.assertEqual(cm.exception.cause, machine.WDT_RESET)
        self.assertEqual(machine.reset_cause(), machine.WDT_RESET)
        self.assertGreaterEqual(waited, 60)
        self.assertLess(waited, 1000)
        self.assertIsNone(board.wdt_timeout_ms)  # the reset stopped it

    def test_fed_in_time_it_never_bites(self):
        board, machine, prof = board_of("bench-v1")
        i2c = machine.I2C(0)
        wdt = machine.WDT(timeout=60)
        t0 = time.ticks_ms()
        fed = t0
        while time.ticks_diff(time.ticks_ms(), t0) < 300:
            i2c.readfrom_mem(prof["battery"]["addr"], 2, 2)
            if time.ticks_diff(time.ticks_ms(), fed) > 20:
                wdt.feed()
                fed = time.ticks_ms()
        self.assertEqual(machine.reset_cause(), machine.PWRON_RESET)

    def test_a_late_feed_is_too_late(self):
        board, machine, prof = board_of("bench-v1")
        wdt = machine.WDT(timeout=20)
        t0 = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t0) < 40:
            pass
        with self.assertRaises(machine.VirtualReset):
            wdt.feed()


if __name__ == "__main__":
    unittest.main()
