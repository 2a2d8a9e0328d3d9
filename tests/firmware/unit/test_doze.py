# The `critical` state's doze with touch wake-up, on the virtual board's hardware: each pad
# gets its wake threshold (TouchPad.config), touch becomes a wake-up source
# (esp32.wake_on_touch, on MicroPython), the bench light-sleeps, and a touch during the doze
# wakes the front. Runs under pytest (CPython, with the board of boards/virtual/hardware.py)
# and inside the MicroPython VM (machine.use(profile)): the same board model in both.
import asyncio
import json
import sys
import unittest

MICROPYTHON = sys.implementation.name == "micropython"
if MICROPYTHON:
    PROFILES = "/boards"
else:
    import pathlib

    _ROOT = pathlib.Path(__file__).resolve().parents[3]
    if str(_ROOT / "firmware") not in sys.path:
        sys.path.insert(0, str(_ROOT / "firmware"))
    PROFILES = str(_ROOT / "boards")

from bench import doze, runtime  # noqa: E402
from bench.runtime import ticks_ms  # noqa: E402
from bench.touch import TouchPads  # noqa: E402

DOZE_MS = 300
PRESSED = 360  # a finger on a pad; the board's idle reading is 600


def make_board(prof):
    # (board, hw with .machine and .esp32) for one bench of this profile.
    if MICROPYTHON:
        import esp32
        import machine

        board = machine.use(prof)
    else:
        from boards.virtual import use_clock
        from boards.virtual.clock import VirtualClock
        from boards.virtual.hardware import VirtualBoard

        clock = VirtualClock()
        use_clock(clock)  # the firmware's ticks and sleeps on the board's clock
        board = VirtualBoard(prof, clock)
        machine, esp32 = board.machine, board.esp32

    class Hw:
        pass

    hw = Hw()
    hw.machine, hw.esp32 = machine, esp32
    return board, hw


class Ui:
    awake_on = False


class Front:
    # The bench's front as the doze sees it: the pads and their press detector, and whether
    # a touch lit the display.
    def __init__(self, machine, touch):
        self.pads = [machine.TouchPad(machine.Pin(p)) for p in touch["pins"]]
        self.touch = TouchPads(self.read, touch, ticks_ms, self.on_touch, self.on_fault)
        self.ui = Ui()
        self.woken = False
        self.touch.sample()  # the pads' baselines, as the front's task takes them at boot

    def read(self, i):
        return self.pads[i].read()

    def on_touch(self, kind, pad):
        if kind == "down":
            self.woken = True
            self.ui.awake_on = True

    def on_fault(self, code, detail):
        pass

    async def run(self):
        # As Front.run samples the pads while the bench sleeps (the host's stand-in for the
        # touch wake-up hardware).
        while True:
            self.touch.sample()
            await runtime.sleep_ms(50)


class Link:
    # A link that has sent everything and has no client: the doze leaves it at once.
    connected = True
    birth_acked = True
    backing_off = False
    client = None

    def __init__(self, app):
        self.app = app
        self.resume = asyncio.Event()
        self.wake = asyncio.Event()
        self.woken = 0

    def idle(self):
        return True

    def wake_up(self):
        self.woken += 1


class Power:
    state = "critical"


class App:
    clock_set = True
    reboot_requested = None

    def __init__(self, hw, front):
        self.hw = hw
        self.front = front
        self.link = Link(self)
        self.power = Power()
        self.asleep = False
        self.checkins = 0

    def now(self):
        return None

    def checkin(self, name):
        self.checkins += 1


class DozeWithTouchWakeUp(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.clock_before = runtime.CLOCK
        with open(PROFILES + "/bench-v1.json") as f:
            self.prof = json.load(f)
        self.board, hw = make_board(self.prof)
        self.front = Front(hw.machine, self.prof["touch"])
        self.app = App(hw, self.front)
        self.pins = self.prof["touch"]["pins"]

    async def asyncTearDown(self):
        runtime.CLOCK = self.clock_before

    async def test_a_critical_doze_sets_each_pads_wake_threshold_and_sleeps_light(self):
        await doze.doze(self.app, DOZE_MS)
        wake = self.board.touch_wake
        self.assertEqual(sorted(wake), sorted(self.pins))
        for level in wake.values():  # a press crosses it, the idle reading does not
            self.assertGreater(level, PRESSED)
            self.assertLess(level, 600)
        if MICROPYTHON:  # (the host's doze stands the pad sampler in for the wake-up)
            self.assertTrue(self.board.wake_on_touch)
        self.assertIn("light", [kind for kind, _ in self.board.sleep_requests])
        self.assertFalse(self.app.asleep)
        self.assertEqual(self.app.link.woken, 0)  # on time: the sampler wakes the link
        self.assertFalse(self.front.woken)

    async def test_a_touch_during_the_doze_wakes_the_front_and_the_doze_ends_on_time(self):
        sampler = asyncio.create_task(self.front.run())
        try:
            self.board.press(self.pins[1], PRESSED, self.board.clock.time(), 3)
            start = ticks_ms()
            await doze.doze(self.app, DOZE_MS)
            slept = runtime.ticks_diff(ticks_ms(), start)
        finally:
            sampler.cancel()
        self.assertTrue(self.front.woken)
        self.assertGreaterEqual(slept, DOZE_MS)
        self.assertFalse(self.app.asleep)


if __name__ == "__main__":
    unittest.main()
