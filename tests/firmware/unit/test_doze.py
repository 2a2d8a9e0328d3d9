# The `critical` state's doze with touch wake-up, on the virtual board's hardware: each pad
# gets its wake threshold (TouchPad.config), touch becomes a wake-up source
# (esp32.wake_on_touch, on MicroPython), the bench light-sleeps, and a touch during the doze
# wakes the front. Runs under pytest (CPython, with the board of boards/virtual/hardware.py)
# and inside the MicroPython VM (machine.use(profile)): the same board model in both.
import asyncio
import unittest

from bench import doze, runtime
from bench.runtime import ticks_diff, ticks_ms
from bench.touch import TouchPads
from vboard import MICROPYTHON, make_board, profile, radio_modules

DOZE_MS = 300
PRESSED = 360  # a finger on a pad; the board's idle reading is 600


class Hw:
    # The app's hardware modules, as main.Hardware hands them over.
    def __init__(self, board, machine):
        self.machine = machine
        self.esp32 = radio_modules(board)[1]


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
        self.woken_at = None
        self.touch.sample()  # the pads' baselines, as the front's task takes them at boot

    def read(self, i):
        return self.pads[i].read()

    def on_touch(self, kind, pad):
        if kind == "down":
            self.woken = True
            self.woken_at = ticks_ms()
            self.ui.awake_on = True

    def on_fault(self, code, detail):
        pass

    async def run(self):
        # As Front.run samples the pads while the bench sleeps: on the host it stands in for
        # the touch wake-up hardware.
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
        self.prof = profile("bench-v1")
        if MICROPYTHON:
            self.board, machine = make_board(self.prof)
        else:
            from boards.virtual.clock import VirtualClock

            # The firmware's ticks and sleeps on the board's clock (set on the runtime doze
            # uses: another test may have imported bench afresh since this module was).
            runtime.CLOCK = VirtualClock()
            self.board, machine = make_board(self.prof, runtime.CLOCK)
        self.front = Front(machine, self.prof["touch"])
        self.app = App(Hw(self.board, machine), self.front)
        self.pins = self.prof["touch"]["pins"]

    async def asyncTearDown(self):
        runtime.CLOCK = self.clock_before

    def light_sleeps(self):
        return [ms for kind, ms in self.board.sleep_requests if kind == "light"]

    async def test_a_critical_doze_sets_each_pads_wake_threshold_and_sleeps_it_through(self):
        start = ticks_ms()
        await doze.doze(self.app, DOZE_MS)
        self.assertGreaterEqual(ticks_diff(ticks_ms(), start), DOZE_MS)
        wake = self.board.touch_wake
        self.assertEqual(sorted(wake), sorted(self.pins))
        for level in wake.values():  # a press crosses it, the idle reading does not
            self.assertGreater(level, PRESSED)
            self.assertLess(level, 600)
        if MICROPYTHON:  # (the host's doze has the pad sampler stand in for the wake-up)
            self.assertTrue(self.board.wake_on_touch)
        sleeps = self.light_sleeps()  # one light sleep for the whole doze
        self.assertEqual(len(sleeps), 1, sleeps)
        self.assertLessEqual(sleeps[0], DOZE_MS)
        self.assertFalse(self.app.asleep)
        self.assertEqual(self.app.link.woken, 0)  # on time: the sampler wakes the link
        self.assertFalse(self.front.woken)

    async def test_a_touch_wakes_the_bench_from_its_light_sleep_and_the_doze_ends_on_time(self):
        # In the VM the board's touch wake-up ends the light sleep; on the host the pads'
        # sampler stands in for it, as the front's task does.
        sampler = None if MICROPYTHON else asyncio.create_task(self.front.run())
        try:
            self.board.press(self.pins[1], PRESSED, self.board.clock.time(), 3)
            start = ticks_ms()
            await doze.doze(self.app, DOZE_MS)
            slept = ticks_diff(ticks_ms(), start)
        finally:
            if sampler is not None:
                sampler.cancel()
        self.assertTrue(self.front.woken)
        self.assertLess(ticks_diff(self.front.woken_at, start), DOZE_MS // 2)
        self.assertGreaterEqual(slept, DOZE_MS)  # then awake for the vote until the window
        self.assertFalse(self.app.asleep)


if __name__ == "__main__":
    unittest.main()
