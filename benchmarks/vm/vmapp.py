# mypy: ignore-errors
# (MicroPython code, run inside the VM by benchmarks/vm_core.py and benchmarks/vm_ui.py;
# imported after the app's modules, its own cost subtracted: see vmkit.measure)
# The bench app built as App.start() builds it on a simulated clock, with stand-in sensors
# answering a scripted clear day, and a loopback MQTT path standing in for broker and gateway.
import json

import vmkit
from vmkit import I2C, WLAN, Hw, Network, Pin

START_WALL = 1795651200  # 2026-11-26 00:00 UTC
CONFIG = {
    "bench": "novi-grad-02",
    "municipality": "novi-grad",
    "wifi": {"ssid": "klupa", "password": "x"},
    "mqtt": {"host": "127.0.0.1", "port": 1883},
}


class SimClock:
    # runtime.CLOCK: the bench's ticks and wall clock, advanced by the benchmark.
    def __init__(self, wall=START_WALL):
        self.ms = 0
        self.wall0 = wall

    def ticks_ms(self):
        return self.ms

    def time(self):
        return self.wall0 + self.ms // 1000

    def settime(self, t):
        self.wall0 = t - self.ms // 1000

    def real_s(self, ms):
        return ms / 1000

    def advance(self, ms):
        self.ms += ms


class Sensor:
    # An INA226 / INA3221 channel answering with the scripted day: fn(t_s) -> (mV, mA).
    def __init__(self, fn, clock):
        self.fn = fn
        self.clock = clock

    def bus_mv(self, ch=None):
        return self.fn(self.clock.ms // 1000, ch)[0]

    def current_ma(self, ch=None):
        return self.fn(self.clock.ms // 1000, ch)[1]


def _solar(t, ch):
    # Clear day: 06:00..18:00, up to 3 A at 18 V, a triangle for integer arithmetic.
    s = t % 86400
    if s < 21600 or s >= 64800:
        return 0, 0
    x = s - 21600
    ma = (3000 * (x if x < 21600 else 43200 - x)) // 21600
    return 18000, ma


def _battery(t, ch):
    sun = _solar(t, None)[1]
    return 13300 + sun // 10, (sun * 7) // 10 - 400


def _port(t, ch):
    # Phones on port 1 at 08:00..09:30 and on the 0x43 chip's first channel 14:00..15:00.
    s = t % 86400
    if ch == 1 and (28800 <= s < 34200 or 50400 <= s < 54000):
        return 5050, 900
    return 5100, 3


def make_app(clock):
    # The app as App.start() leaves it on a healthy bench, with the stand-ins above in
    # place of I2C sensor chips: load() (board and config validated with bench.config,
    # imported and dropped as at boot), the spool, the link, then bench.startup.setup_hardware()'s
    # objects; bench.startup is dropped as App.start() drops it.
    from bench import runtime, startup
    from bench import spool as sp
    from bench.app import App
    from bench.link import Link
    from bench.power import PowerManager
    from bench.session import Session
    from bench.window import Window
    from drivers.seat import Seat
    from drivers.wifi import WifiStats

    runtime.CLOCK = clock
    try:
        import os

        os.mkdir(vmkit.ROOT)
    except OSError:
        pass
    with open(vmkit.BOARD_FILE) as f:
        board = f.read()
    root = vmkit.ROOT
    with open(root + "/board.json", "w") as f:
        f.write(board)
    with open(root + "/config.json", "w") as f:
        json.dump(CONFIG, f)
    app = App(root, Hw())
    startup.load(app)
    runtime.unload("startup")
    app.spool = sp.Spool(app.root, app.cfg["spool_bytes"], app.cfg["segment_bytes"])
    app.link = Link(app)
    b = app.board
    app.i2c = I2C()
    app.drivers["solar"] = Sensor(_solar, clock)
    app.drivers["battery"] = Sensor(_battery, clock)
    for p in b["ports"]:
        app.ports.append((p["n"], p["kind"] == "wireless", p["addr"], p["channel"]))
        app.drivers[p["addr"]] = Sensor(_port, clock)
        app.port_pins[p["n"]] = Pin(p["enable_pin"], Pin.OUT, value=1)
        app.port_on[p["n"]] = True
        app.port_limits[p["n"]] = int(p["limit_a"] * 1000)
        app.sessions[p["n"]] = Session(p["n"])
    app.seat = Seat(Pin(b["seat"]["pin"]), b["seat"]["active_low"])
    app.wifi_stats = WifiStats(app.link.sta, WLAN(Network.AP_IF))
    app.window = Window([p["n"] for p in b["ports"]])
    app.power = PowerManager(b["battery"])
    app.board = None  # as bench.startup.start() leaves it
    app.record_event("boot", {"reset": "power_on", "fw": app.fw, "safe": False})
    app.booted = True
    app.set_clock(clock.time(), clock.time())
    return app


class Sink:
    # The loopback byte sink the MQTT client writes to (a StreamWriter's write/drain).
    def __init__(self):
        self.bytes = 0
        self.packets = 0

    def write(self, data):
        self.bytes += len(data)
        self.packets += 1

    async def drain(self):
        pass

    def close(self):
        pass


class Loopback:
    # The broker and the gateway for one bench: a Client on a Sink; PUBACKs and Receipts
    # come back as MQTT packets decoded by bench.mqtt.parse and handled by the link.
    def __init__(self, app):
        from bench.mqtt import Client

        link = app.link
        cfg = app.cfg
        c = Client(cfg["keepalive"])
        c.writer = Sink()
        c.on_message = link.on_message
        c.on_puback = link.on_puback
        link.client = c
        link.connected = True
        link.birth_acked = True
        self.app = app
        self.client = c
        self.sink = c.writer
        self.received = 0  # PUBACK and Receipt bytes fed back

    def _feed(self, packet):
        from bench import mqtt

        self.received += len(packet)
        n, i = mqtt.decode_length(packet)
        kind, v = mqtt.parse(packet[0], packet[i : i + n])
        if kind == mqtt.PUBLISH:
            topic, payload, qos, pid, _ = v
            self.client.on_message(topic, payload)
        elif kind == mqtt.PUBACK and v in self.client.inflight:
            self.client.on_puback(self.client.inflight.pop(v))

    async def pump(self):
        # Publish what the link has (fresh records, then backlog), PUBACK it all, then the
        # gateway's Receipt for everything of this boot so far.
        from bench import mqtt

        app = self.app
        link = app.link
        c = self.client
        for _ in range(8):
            await link.send_some(c)
            for pid in list(c.inflight):
                self._feed(mqtt.puback_packet(pid))
            if not link.queue and not c.inflight:
                break
        receipt = json.dumps({"v": 1, "boots": {str(app.boot_no): [[1, app.seq]]}})
        self._feed(mqtt.publish_packet(link.base + "receipt", receipt, qos=0))
        link.handle_inbox()
        link.check_resend()


async def connected_app():
    # The app on a simulated clock, linked to a Loopback and settled: (clock, app, loopback,
    # live heap once built).
    clock = SimClock()
    app = make_app(clock)
    loop = Loopback(app)
    await loop.pump()
    return clock, app, loop, await vmkit.settle()
