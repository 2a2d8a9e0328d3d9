# What the app does once per boot: read and validate the board profile and the config,
# count the boot, build the spool, link, drivers and front, record the boot event, and start
# the app's tasks.
# App.start() imports this module for the boot and drops it afterwards, so its bytecode
# does not stay in the heap (docs/firmware.md, "Heap").
import gc

from bench import spool as sp
from bench import store
from bench.runtime import asyncio, job, unload


def load(app):
    from bench import config  # only at boot: not resident afterwards

    app.state = store.load(app.root + "/state.json", {})
    raw_cfg = None
    try:
        app.board = config.validate_board(config.read_json(app.root + "/board.json", "bad_board"))
    except config.ConfigError as e:
        app.faults.append((e.args[0], e.args[1]))
        app.safe = True
    try:
        raw_cfg = config.read_json(app.root + "/config.json", "bad_config")
        app.cfg = config.validate_config(raw_cfg)
    except config.ConfigError as e:
        app.faults.append((e.args[0], e.args[1]))
        app.safe = True
        app.cfg = essentials(raw_cfg, config)
    for k in app.state.get("settings", {}):
        if app.cfg is not None:
            app.cfg[k] = app.state["settings"][k]
    unload("config")
    # Boot number: provisioning's start (minutes since 2020), then +1 every boot.
    last = app.state.get("boot", 0)
    start = app.cfg.get("boot", 1) - 1 if app.cfg else 0
    app.boot_no = (last if last > start else start) + 1
    app.state["boot"] = app.boot_no
    if app.state.get("safe"):  # main.prepare counted the boots (bench.health)
        app.safe = True
        app.faults.append(
            ("unhealthy_boots", "%d boots never became healthy" % app.state.get("unhealthy", 0))
        )
    app.save_state()
    gc.collect()


def essentials(raw, config):
    # With a bad config, keep what the link needs so the fault can still be reported.
    if not isinstance(raw, dict):
        return None
    try:
        d = {}
        for k in ("bench", "municipality", "wifi", "mqtt"):
            d[k] = raw[k]
        if isinstance(raw.get("ota_pub"), str):
            d["ota_pub"] = raw["ota_pub"]
        if not isinstance(d["mqtt"], dict) or not isinstance(d["mqtt"].get("host"), str):
            return None
        d["mqtt"].setdefault("port", 1883)
        for k in config.CONFIG_DEFAULTS:
            v = raw.get(k)
            d[k] = v if type(v) is type(config.CONFIG_DEFAULTS[k]) else config.CONFIG_DEFAULTS[k]
            if k in config.SETTABLE:
                lo, hi = config.SETTABLE[k]
                if not lo <= d[k] <= hi:
                    d[k] = config.CONFIG_DEFAULTS[k]
        return d
    except (KeyError, TypeError):
        return None


def setup_hardware(app):
    from bench.power import PowerManager
    from bench.session import Session
    from bench.window import Window
    from drivers.ina226 import INA226
    from drivers.ina3221 import INA3221
    from drivers.seat import Seat
    from drivers.wifi import WifiStats

    b = app.board
    m = app.hw.machine
    i2c = m.I2C(
        b["i2c"]["id"],
        scl=m.Pin(b["i2c"]["scl"]),
        sda=m.Pin(b["i2c"]["sda"]),
        freq=b["i2c"]["freq"],
    )
    app.i2c = i2c
    for part in ("solar", "battery"):
        d = b[part]
        try:
            app.drivers[part] = INA226(i2c, d["addr"], d["shunt_ohm"], d["max_a"])
        except OSError as e:
            app.fault("sensor_" + part, str(e))
    chips = {}
    for p in b["ports"]:
        chips.setdefault(p["addr"], [0.1, 0.1, 0.1])[p["channel"] - 1] = p["shunt_ohm"]
    for addr in chips:
        try:
            app.drivers[addr] = INA3221(i2c, addr, chips[addr])
        except OSError as e:
            app.fault("sensor_ports", str(e))
    if b.get("env"):
        from drivers.bme280 import BME280

        try:
            app.drivers["env"] = BME280(i2c, b["env"]["addr"])
        except OSError as e:
            app.fault("sensor_env", str(e))
    for p in b["ports"]:
        app.ports.append((p["n"], p["kind"] == "wireless", p["addr"], p["channel"]))
        app.port_pins[p["n"]] = m.Pin(p["enable_pin"], m.Pin.OUT, value=1)
        app.port_on[p["n"]] = True
        app.port_limits[p["n"]] = int(p["limit_a"] * 1000)
        app.sessions[p["n"]] = Session(p["n"])
    s = b["seat"]
    pull = m.Pin.PULL_UP if s["active_low"] else m.Pin.PULL_DOWN
    if s.get("pull") == "external":  # a resistor on the board (GPIO 34-39 have none inside)
        pull = None
    app.seat = Seat(m.Pin(s["pin"], m.Pin.IN, pull), s["active_low"])
    ap = None
    w = b.get("wifi", {})
    if w.get("ap"):  # the bench's own access point, for citizens (open, as the profile says)
        ap = app.hw.network.WLAN(app.hw.network.AP_IF)
        try:
            ap.active(True)
            ap.config(ssid=w.get("ap_ssid", "klupa"), max_clients=w.get("ap_max_clients", 8))
        except (OSError, ValueError) as e:
            app.fault("wifi_ap", str(e))
    app.wifi_stats = WifiStats(app.link.sta, ap)
    app.window = Window([p["n"] for p in b["ports"]])
    app.power = PowerManager(b["battery"], None, m)
    th = app.state.get("settings", {})
    app.power.set_thresholds(th.get("saver_soc"), th.get("critical_soc"))
    # After a reset (hard 2, watchdog 3, soft 5; not a power-on or a deep sleep, whose charge
    # nobody counted) the count goes on where RTC memory kept it, in its power state.
    if m.reset_cause() in (2, 3, 5) and app.power.resume():
        app.apply_power_state(app.power.state)


def start(app):
    from bench.link import Link

    load(app)
    app.spool = sp.Spool(
        app.root,
        app.cfg["spool_bytes"] if app.cfg else 1048576,
        app.cfg["segment_bytes"] if app.cfg else 16384,
    )
    if app.cfg is not None:
        app.link = Link(app)
    # Safe mode too: the power manager and the ports' protection never stop (docs/protocol.md).
    if app.board is not None and app.link is not None:
        try:
            setup_hardware(app)
        except Exception as e:  # a board the profile does not describe: report, stay up
            app.faults.append(("hardware", str(e)[:120]))
            app.safe = True
            app.power = None
    if not app.safe:
        try:
            from bench.front import Front

            app.front = Front(app)
        except Exception as e:  # no display or pads: the bench still charges and reports
            app.faults.append(("front", repr(e)[:120]))
            app.front = None
    # Built from the profile: what runs from now on keeps its own parts of it (app.ports, the
    # power manager's curve and thresholds, the pads), so the parsed profile (4 KiB of heap)
    # goes. The self-test reads /board.json again.
    app.board = None
    if store.exists(app.root + "/app"):  # an app installed by OTA: its bundle's version
        v = store.load(app.root + "/ota.json", {}).get("version")
        if isinstance(v, str) and v:
            app.fw = v
    # machine.reset_cause(): PWRON 1, HARD 2, WDT 3, DEEPSLEEP 4, SOFT 5. A tuple constant:
    # its strings are objects dropped with this module, not interned names that stay.
    rc = app.hw.machine.reset_cause()
    cause = ("power_on", "hard", "wdt", "deepsleep", "soft")[rc - 1] if 1 <= rc <= 5 else "power_on"
    app.record_event("boot", {"reset": cause, "fw": app.fw, "safe": app.safe})
    app.booted = True
    for code, detail in app.faults:
        app.record_event("fault", {"code": code, "detail": str(detail)[:120]})
    app.faults = []
    if store.exists(app.root + "/fault.json"):  # the last boot's crash, kept in flash
        job("fault", "report", app)
    if app.ota_boot or store.exists(app.root + "/ota.json"):
        try:
            job("ota", "step", app, "report")
        except Exception as e:  # a damaged ota.json must not stop the boot
            app.fault("ota", repr(e))
    tasks(app)


def tasks(app):
    # The app's tasks (App.main awaits the first, the supervisor's); the critical ones must
    # check in for the bench to be healthy and the watchdog fed (docs/firmware.md, Watchdog).
    t = [asyncio.create_task(app.supervisor())]
    crit = []
    if app.link is not None:
        t.append(asyncio.create_task(app.watched(app.link.run())))
        crit.append("link")
    if not app.safe:
        t.append(asyncio.create_task(app.watched(app.sampler())))
        crit.append("sampler")  # the power manager and the ports' protection run in it
    elif app.power is not None:
        # safe mode's sampler (bench.health, resident only in safe mode)
        t.append(asyncio.create_task(app.watched(job("health", "sampler", app))))
        crit.append("power")
    if app.front is not None:
        t.append(asyncio.create_task(app.watched(app.front.run())))
        crit.append("front")
    app.critical = crit
    app.tasks = t
