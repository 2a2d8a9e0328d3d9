# The bench's front: the touch pads, the vote rules and the display, wired into the app.
# Built by App.start() on a healthy boot (never in safe mode); runs one task that samples the
# pads every 50 ms and lets the screens tick every 250 ms. See docs/display.md.
import gc

from bench import runtime
from bench.runtime import const, ticks_ms
from bench.screens import Screens, Ui
from bench.touch import TouchPads
from bench.voting import Voting

_SAMPLE_MS = const(50)
_TICK_MS = const(250)
_ASLEEP_MS = const(200)  # pad sampling while the bench sleeps in `critical` (the ESP32 is stopped)


class _Dark:
    # Stands in for a display that did not answer at boot: the UI runs, nothing is drawn.
    def __init__(self):
        self.width = 128
        self.height = 64
        self.buffer = bytearray(1024)

    def fill(self, c):
        pass

    def fill_rect(self, x, y, w, h, c):
        pass

    def show(self):
        pass

    def contrast(self, level):
        pass

    def power(self, on):
        pass


class Front:
    def __init__(self, app):
        self.app = app
        b = app.board
        m = app.hw.machine
        self.display = None
        try:
            from drivers.ssd1306 import SSD1306

            self.display = SSD1306(app.i2c, addr=b["display"]["addr"])
        except OSError as e:
            app.fault("display", str(e))
        self.screens = Screens(self.display or _Dark())
        self.voting = Voting(
            app.root + "/poll.json", app.now, ticks_ms, app.record_vote, app.fault, app.cfg
        )
        self.ui = Ui(self.screens, self.voting, self.status, ticks_ms, self.service_info)
        self.pads = [m.TouchPad(m.Pin(p)) for p in b["touch"]["pins"]]
        self.touch = TouchPads(self.read, b["touch"], ticks_ms, self.on_touch, app.fault)
        self.woken = False  # a touch during a critical-state sleep (ends the sleep early)
        self.touched = ticks_ms()
        self.drawn = False  # a touch drew a frame since the last collection (idle())
        app.poll_hook = self.on_poll
        self.ui.set_power(app.power.state if app.power else "normal")

    def read(self, i):
        return self.pads[i].read()

    def status(self):
        app = self.app
        free = 0
        for n in app.port_on:
            if app.port_on[n] and not app.sessions[n].plugged:
                free += 1
        soc = app.power.soc_cp() / 100 if app.power else 0
        return app.cfg["municipality"], soc, free, app.now()

    def service_info(self):
        # What the technician's service screen shows (bench.service).
        app = self.app
        link = app.link
        stats = getattr(app, "wifi_stats", None)
        return {
            "bench": app.cfg["bench"],
            "boot": app.boot_no,
            "fw": app.fw,
            "rssi": None if stats is None else stats.rssi(),
            "broker": link is not None and link.connected,
            "spool": app.spool.pending() if app.spool is not None else 0,
            "fault": app.last_fault or app.state.get("last_fault"),
        }

    def on_touch(self, kind, pad):
        self.touched = ticks_ms()
        if kind == "down":
            self.woken = True
        elif kind != "service":
            self.app.count_touch()
            self.drawn = True
        self.ui.on_touch(kind, pad)

    def idle(self):
        # Garbage is collected here, once a touch's frame is up and no pad is down, and after
        # each window (App.close_window): never between a press and its confirmation. A
        # collection of a PSRAM heap takes milliseconds; left to the allocator, it would come
        # wherever the heap ran out, a press as likely as anywhere.
        if self.drawn and not self.touch.active():
            self.drawn = False
            gc.collect()

    def on_poll(self, app, payload):
        self.ui.on_poll(payload)

    def set_power(self, state):
        self.ui.set_power(state)

    async def run(self):
        self.ui.redraw()
        ticked = ticks_ms()
        while True:
            self.app.checkin("front")
            self.touch.sample()
            now = ticks_ms()
            if runtime.ticks_diff(now, ticked) >= _TICK_MS:
                ticked = now
                self.ui.tick()
            self.idle()
            if self.app.asleep and not self.ui.awake_on and not self.touch.active():
                await runtime.sleep_ms(_ASLEEP_MS)  # host only: stands in for touch wake-up
            else:
                await runtime.sleep_ms(_SAMPLE_MS)
