# The bench app's wiring: boot, drivers, the sampler, records into the spool, commands,
# supervision. All of a bench's state hangs off one App object.
import gc
import json
import sys

from bench import protocol, runtime, store
from bench import spool as sp
from bench.power import PowerManager
from bench.runtime import asyncio, ticks_add, ticks_diff, ticks_ms
from bench.session import Session
from bench.window import Window

FW = "1.0.0"
RESET_NAMES = {1: "power_on", 2: "hard", 3: "wdt", 4: "deepsleep", 5: "soft"}
SAFE_OPS = ("ping", "reboot", "set", "ota")
UNHEALTHY_LIMIT = 3
HEALTHY_AFTER_MS = 60000
OTA_TRIAL_MS = 300000  # bench.ota.TRIAL_MS: the new app must be healthy within 5 minutes
KEEP_IDS = 32
WINDOW_EARLY_MS = 500  # a window closes when due, or this little before
DOZE_STEP_MS = 5000  # a critical-state sleep wakes this often to check in with the watchdog
LINK_DRAIN_MS = 20000  # at most this long awake in `critical` for the link to send a window


def _mpy_version():
    v = sys.implementation.version
    return "%d.%d.%d" % (v[0], v[1], v[2])


def _unload(name):
    # Drop a module imported for one job so its bytecode leaves the heap.
    sys.modules.pop("bench." + name, None)
    pkg = sys.modules.get("bench")
    if pkg is not None and hasattr(pkg, name):
        delattr(pkg, name)


def _frag(fields):
    # A record's own fields as a JSON fragment (the envelope is added when it is sent).
    try:
        s = json.dumps(fields, separators=(",", ":"))
    except TypeError:  # a MicroPython without separators
        s = json.dumps(fields)
    return s[1:-1].encode()


class App:
    def __init__(self, root, hw, ota=""):
        self.root = root.rstrip("/")
        self.hw = hw
        self.fw = FW
        self.ota_boot = ota  # what the OTA boot step did: "switched", "rolled_back" or ""
        self.booted = False  # the boot event is recorded: faults can be records now
        self.front = None  # touch pads, voting and display (bench.front)
        self.asleep = False  # in a critical-state sleep between windows
        self.safe = False
        self.faults = []  # (code, detail) found during boot, recorded once records can be made
        self.cfg = None
        self.board = None
        self.seq = 0
        self.boot_no = 0
        self.uptime = 0
        self._last_ticks = ticks_ms()
        self.clock_set = False
        self.anchor = None  # Unix time at uptime 0 of this boot, once the clock is set
        self.reboot_requested = None
        self.link = None
        self.checkins = {}
        self.healthy = False
        self.spool = None
        self.window = None
        self.power = None
        self.sessions = {}
        self.port_on = {}
        self.port_pins = {}
        self.port_limits = {}
        self.drivers = {}
        self.sensor_faults = {}
        # Hooks other modules fill (touch/display/OTA): see docs/firmware.md
        self.selftest_hook = None  # fn(app) -> (ok, detail)
        self.ota_hook = None  # fn(app, args) -> (ok, detail)
        self.poll_hook = None  # fn(app, payload bytes)
        self.on_window = None  # fn(app, telemetry dict)

    # -- time
    def uptime_ms(self):
        now = ticks_ms()
        self.uptime += ticks_diff(now, self._last_ticks)
        self._last_ticks = now
        return self.uptime

    def now(self):
        return runtime.wall() if self.clock_set else None

    def set_clock(self, new_wall, old_wall):
        first = not self.clock_set
        self.clock_set = True
        self.anchor = new_wall - self.uptime_ms() // 1000
        self.state.setdefault("anchors", {})[str(self.boot_no)] = self.anchor
        anchors = self.state["anchors"]
        while len(anchors) > 4:
            del anchors[str(min(int(k) for k in anchors))]
        self.save_state()
        if first or abs(new_wall - old_wall) > 2:
            self.record_event("clock", {"offset": new_wall - old_wall})

    def ts_of(self, rec):
        # Unix time of a record, or None while it cannot be known.
        if not rec.flags & sp.FLAG_UPTIME:
            return rec.stamp
        if rec.boot == self.boot_no:
            return None if self.anchor is None else self.anchor + rec.stamp
        a = self.state.get("anchors", {}).get(str(rec.boot))
        return None if a is None else a + rec.stamp

    # -- boot
    def load(self):
        from bench import config  # only at boot: not resident afterwards

        self.state = store.load(self.root + "/state.json", {})
        raw_cfg = None
        try:
            self.board = config.validate_board(
                config.read_json(self.root + "/board.json", "bad_board")
            )
        except config.ConfigError as e:
            self.faults.append((e.args[0], e.args[1]))
            self.safe = True
        try:
            raw_cfg = config.read_json(self.root + "/config.json", "bad_config")
            self.cfg = config.validate_config(raw_cfg)
        except config.ConfigError as e:
            self.faults.append((e.args[0], e.args[1]))
            self.safe = True
            self.cfg = self._essentials(raw_cfg, config)
        for k in self.state.get("settings", {}):
            if self.cfg is not None:
                self.cfg[k] = self.state["settings"][k]
        _unload("config")
        # Boot number: provisioning's start (minutes since 2020), then +1 every boot.
        last = self.state.get("boot", 0)
        start = self.cfg.get("boot", 1) - 1 if self.cfg else 0
        self.boot_no = (last if last > start else start) + 1
        self.state["boot"] = self.boot_no
        unhealthy = self.state.get("unhealthy", 0)
        if unhealthy >= UNHEALTHY_LIMIT:
            self.safe = True
            self.faults.append(("unhealthy_boots", "%d boots never became healthy" % unhealthy))
        if self.ota_boot != "rolled_back":  # the trial's failed boot is not the old app's
            self.state["unhealthy"] = unhealthy + 1
        self.save_state()
        gc.collect()

    def _essentials(self, raw, config):
        # With a bad config, keep what the link needs so the fault can still be reported.
        if not isinstance(raw, dict):
            return None
        try:
            d = {}
            for k in ("bench", "municipality", "wifi", "mqtt"):
                d[k] = raw[k]
            if isinstance(raw.get("ota_key"), str):
                d["ota_key"] = raw["ota_key"]
            if not isinstance(d["mqtt"], dict) or not isinstance(d["mqtt"].get("host"), str):
                return None
            d["mqtt"].setdefault("port", 1883)
            for k in config.CONFIG_DEFAULTS:
                v = raw.get(k)
                d[k] = (
                    v if type(v) is type(config.CONFIG_DEFAULTS[k]) else config.CONFIG_DEFAULTS[k]
                )
                if k in config.SETTABLE:
                    lo, hi = config.SETTABLE[k]
                    if not lo <= d[k] <= hi:
                        d[k] = config.CONFIG_DEFAULTS[k]
            return d
        except (KeyError, TypeError):
            return None

    def save_state(self):
        try:
            store.save(self.root + "/state.json", self.state)
        except OSError as e:
            self.faults.append(("flash_error", "state: " + str(e)))

    def setup_hardware(self):
        b = self.board
        m = self.hw.machine
        i2c = m.I2C(
            b["i2c"]["id"],
            scl=m.Pin(b["i2c"]["scl"]),
            sda=m.Pin(b["i2c"]["sda"]),
            freq=b["i2c"]["freq"],
        )
        self.i2c = i2c
        from drivers.ina226 import INA226
        from drivers.ina3221 import INA3221
        from drivers.seat import Seat
        from drivers.wifi import WifiStats

        for part in ("solar", "battery"):
            d = b[part]
            try:
                self.drivers[part] = INA226(i2c, d["addr"], d["shunt_ohm"], d["max_a"])
            except OSError as e:
                self.fault("sensor_" + part, str(e))
        chips = {}
        for p in b["ports"]:
            chips.setdefault(p["addr"], [0.1, 0.1, 0.1])[p["channel"] - 1] = p["shunt_ohm"]
        for addr in chips:
            try:
                self.drivers[addr] = INA3221(i2c, addr, chips[addr])
            except OSError as e:
                self.fault("sensor_ports", str(e))
        if b.get("env"):
            from drivers.bme280 import BME280

            try:
                self.drivers["env"] = BME280(i2c, b["env"]["addr"])
            except OSError as e:
                self.fault("sensor_env", str(e))
        for p in b["ports"]:
            self.port_pins[p["n"]] = m.Pin(p["enable_pin"], m.Pin.OUT, value=1)
            self.port_on[p["n"]] = True
            self.port_limits[p["n"]] = int(p["limit_a"] * 1000)
            self.sessions[p["n"]] = Session(p["n"])
        s = b["seat"]
        pull = m.Pin.PULL_UP if s["active_low"] else m.Pin.PULL_DOWN
        self.seat = Seat(m.Pin(s["pin"], m.Pin.IN, pull), s["active_low"])
        ap = None
        if b.get("wifi", {}).get("ap"):
            ap = self.hw.network.WLAN(self.hw.network.AP_IF)
        self.wifi_stats = WifiStats(self.link.sta, ap)
        self.window = Window([p["n"] for p in b["ports"]])
        self.power = PowerManager(b["battery"])
        th = self.state.get("settings", {})
        self.power.set_thresholds(th.get("saver_soc"), th.get("critical_soc"))

    # -- records
    def record(self, kind, body):
        # Spool a new record (durable before it is published), hand it to the link; -> seq.
        self.seq += 1
        now = self.now()
        if now is None:
            rec = sp.Record(
                kind, self.boot_no, self.seq, self.uptime_ms() // 1000, sp.FLAG_UPTIME, body
            )
        else:
            rec = sp.Record(kind, self.boot_no, self.seq, now, 0, body)
        try:
            self.spool.append(rec)
        except OSError as e:
            if "flash" not in self.sensor_faults:
                self.sensor_faults["flash"] = 1
                print("spool:", e)
        if self.link is not None:
            self.link.fresh(rec)
        return self.seq

    def record_event(self, type_, fields=None):
        d = {"type": type_}
        if fields:
            for k in fields:
                d[k] = fields[k]
        return self.record(sp.KIND_EVENT, _frag(d))

    def record_vote(self, poll, choice):
        return self.record(sp.KIND_VOTE, _frag({"poll": poll, "choice": choice}))

    def fault(self, code, detail):
        if self.spool is None or not self.booted:
            self.faults.append((code, detail))
        else:
            self.record_event("fault", {"code": code, "detail": str(detail)[:120]})

    def count_touch(self):
        if self.window is not None:
            self.window.touches += 1

    # -- settings and ports
    def period_s(self):
        p = self.cfg["period"]
        st = self.power.state if self.power else "normal"
        if st == "saver":
            p = min(3600, p * 5)
        elif st == "critical":
            p = 900
        return p

    def switch_port(self, n, on):
        pin = self.port_pins.get(n)
        if pin is None:
            return False
        if not on and self.port_on.get(n):
            ended = self.sessions[n].end()
            if ended:
                self._session_event(n, ended)
        pin.value(1 if on else 0)
        self.port_on[n] = on
        return True

    def apply_power_state(self, state):
        for p in self.board["ports"]:
            n = p["n"]
            if state == "normal":
                on = True
            elif state == "saver":
                on = p["kind"] != "wireless" and n <= 2
            else:
                on = False
            self.switch_port(n, on)
        if self.front is not None:
            self.front.set_power(state)

    def _session_event(self, n, ended):
        s, mwh = ended
        self.record_event("session", {"port": n, "s": s, "wh": mwh / 1000})

    # -- sampling
    def _read(self, name, fn):
        try:
            v = fn()
            self.sensor_faults.pop(name, None)
            return v
        except OSError as e:
            if name not in self.sensor_faults:
                self.sensor_faults[name] = 1
                self.fault("sensor_" + name, str(e))
            return None

    def sample(self, dt):
        d = self.drivers
        w = self.window
        if "solar" in d:
            r = self._read("solar", lambda: (d["solar"].bus_mv(), d["solar"].current_ma()))
            if r:
                w.solar.add(r[0], r[1], dt)
        if "battery" in d:
            r = self._read("battery", lambda: (d["battery"].bus_mv(), d["battery"].current_ma()))
            if r:
                w.batt.add(r[0], r[1], dt)
                change = self.power.update(r[0], r[1], dt)
                if change:
                    self.record_event("power", {"from": change[0], "to": change[1]})
                    self.apply_power_state(change[1])
        for p in self.board["ports"]:
            n = p["n"]
            chip = d.get(p["addr"])
            if chip is None:
                continue
            ch = p["channel"]
            r = self._read("port%d" % n, lambda: (chip.bus_mv(ch), chip.current_ma(ch)))
            if not r:
                continue
            mv, ma = r
            if ma < 0:
                ma = 0
            w.ports[n].add(mv, ma, dt)
            if ma > self.port_limits[n] and self.port_on.get(n):
                self.switch_port(n, False)
                self.record_event(
                    "tamper", {"kind": "port_overcurrent", "detail": "port %d drew %d mA" % (n, ma)}
                )
                continue
            ended = self.sessions[n].update(mv, ma, dt)
            if self.sessions[n].plugged or ma > 50:
                w.plugged[n] = True
            if ended:
                self._session_event(n, ended)
        if self.seat.poll(ticks_ms(), ticks_diff):
            w.occ_ms += dt

    def close_window(self, period):
        w = self.window
        w.rssi = self.wifi_stats.rssi()
        w.clients = self.wifi_stats.clients()
        w.env = None
        if "env" in self.drivers:
            r = self._read("env", self.drivers["env"].read)
            if r:
                w.env = (r[0], r[1] // 10)  # 0.01 C, 0.01 %
        gc.collect()
        heap = gc.mem_free() if hasattr(gc, "mem_free") else 0
        t = w.telemetry(period, self.power.soc_cp(), self.power.state, heap, self.port_on)
        self.record(sp.KIND_TELEMETRY, protocol.pack_telemetry(t))
        if self.on_window is not None:
            self.on_window(self, t)

    async def sampler(self):
        # Windows close on a fixed grid (start + period), so a late wake-up delays one record
        # and never the ones after it. In `critical` the bench dozes until the next window is
        # due, closes it, and only then wakes the link to send it.
        last = ticks_ms()
        start = last
        self.window.reset(last)
        while True:
            self.checkin("sampler")
            due = ticks_add(start, self.period_s() * 1000)
            wait = min(self.cfg["sample_s"] * 1000, ticks_diff(due, ticks_ms()))
            await runtime.sleep_ms(max(0, wait))
            now = ticks_ms()
            self.sample(ticks_diff(now, last))
            last = now
            period = self.period_s()  # the sample may have changed the power state
            due = ticks_add(start, period * 1000)
            late = ticks_diff(now, due)
            if late < -WINDOW_EARLY_MS:
                continue
            self.close_window(period)
            start = due if late < period * 1000 else now  # a whole window behind: a new grid
            self.window.reset(now)
            if self.link is not None and self.link.dozing:
                self.link.wake_up()
            if self.power.state == "critical" and self.link is not None:
                ms = ticks_diff(ticks_add(start, period * 1000), ticks_ms())
                if ms > 0:
                    await self.doze(ms)

    async def doze(self, ms):
        # `critical`: announce the sleep, leave the broker cleanly, sleep until the next window.
        # A touch wakes the bench (the display lights for a vote); it sleeps again 30 s after
        # the last touch. The sampler wakes the link once it has closed the next window; a doze
        # cut short (the state changed, a reboot is due) wakes it here.
        start = ticks_ms()
        await self.link.wait_idle(LINK_DRAIN_MS)
        now = self.now()
        await self.link.sleep(None if now is None else now + ms // 1000)
        self.asleep = True
        on_time = False
        try:
            while True:
                left = ms - ticks_diff(ticks_ms(), start)
                if left <= 0:
                    on_time = True
                    return
                if self.power.state != "critical" or self.reboot_requested is not None:
                    return
                self.checkin("sampler")
                front = self.front
                if front is not None and front.ui.awake_on:
                    await runtime.sleep_ms(min(left, 1000))  # lit for a vote: stay awake
                    continue
                step = min(left, DOZE_STEP_MS)
                if front is not None:
                    front.woken = False
                await self.light_sleep(step)
        finally:
            self.asleep = False
            if not on_time:
                self.link.wake_up()

    async def light_sleep(self, ms):
        # The ESP32 sleeps here with the CPU stopped and a touch as a wake source; the host's
        # virtual board records the request and the bench waits out the time on its clock,
        # the pad sampler standing in for the touch wake-up hardware.
        m = self.hw.machine
        if runtime.MICROPYTHON:
            try:
                self.hw.esp32.wake_on_touch(True)
            except (AttributeError, ValueError, OSError):
                pass
            m.lightsleep(ms)
            if self.front is not None:
                self.front.touch.sample()
            await runtime.sleep_ms(0)  # let the supervisor feed the watchdog between sleeps
            return
        m.lightsleep(ms)
        start = ticks_ms()
        while ticks_diff(ticks_ms(), start) < ms:
            if self.front is not None and self.front.woken:
                return
            await runtime.sleep_ms(250)

    # -- commands
    def on_command(self, payload):
        try:
            cmd = json.loads(payload)
        except ValueError:
            self.fault("bad_command", "not JSON")
            return
        if not isinstance(cmd, dict) or not isinstance(cmd.get("id"), str) or not cmd["id"]:
            self.fault("bad_command", "no id")
            return
        cid = cmd["id"][:64]
        done = self.state.setdefault("ids", [])
        for entry in done:
            if entry[0] == cid:  # re-delivered: acknowledge again, never run twice
                self.ack(cid, entry[1], entry[2])
                return
        ok, detail = self.execute(cmd.get("op"), cmd.get("args", {}))
        done.append([cid, ok, detail])
        while len(done) > KEEP_IDS:
            done.pop(0)
        self.save_state()
        self.ack(cid, ok, detail)

    def ack(self, cid, ok, detail):
        return self.record(sp.KIND_ACK, _frag({"id": cid, "ok": ok, "detail": detail}))

    def execute(self, op, args):
        if not isinstance(op, str):
            return False, "op missing"
        if self.safe and op not in SAFE_OPS:
            return False, "safe mode: only ping, reboot, set, ota"
        if args is None:
            args = {}
        if op == "ping":
            return True, ""
        if op == "reboot":
            self.reboot_requested = ticks_ms()
            return True, ""
        if op == "set":
            from bench import config

            th = self.power.th if self.power else {"saver_soc": 40, "critical_soc": 15}
            reason, clean = config.check_settings(args, th)
            _unload("config")
            if reason:
                return False, reason
            settings = self.state.setdefault("settings", {})
            for k in clean:
                settings[k] = clean[k]
                self.cfg[k] = clean[k]
            if self.power:
                self.power.set_thresholds(clean.get("saver_soc"), clean.get("critical_soc"))
            return True, ""
        if op == "port":
            if not isinstance(args, dict):
                return False, "args must be an object"
            n = args.get("n")
            on = args.get("on")
            if not isinstance(n, int) or isinstance(n, bool) or n not in self.port_pins:
                return False, "no port n=%s" % (n,)
            if not isinstance(on, bool):
                return False, "on must be true or false"
            self.switch_port(n, on)
            return True, ""
        if op == "selftest":
            if self.selftest_hook is None:
                return False, "selftest not available"
            return self.selftest_hook(self)
        if op == "ota":
            if self.ota_hook is None:
                return False, "ota not available"
            return self.ota_hook(self, args)
        return False, "unknown op " + op[:32]

    # -- supervision
    def checkin(self, name):
        self.checkins[name] = ticks_ms()

    def mark_healthy(self):
        if not self.healthy:
            self.healthy = True
            self.state["unhealthy"] = 0
            self.save_state()
            if self.ota_boot == "switched":
                self.ota_step("healthy")

    def ota_step(self, what):
        # The OTA module for one step (imported only for it): "healthy", "report", "rollback".
        from bench import ota

        o = ota.Ota(self.root, b"", self.ota_event)
        if what == "healthy":
            o.healthy()
        elif what == "rollback":
            o.rollback()
        if what != "rollback":
            r = o.report()
            if r is not None:
                self.ota_event(r[0], r[1])
                o.reported()
        _unload("ota")

    def ota_event(self, state, version):
        self.record_event("ota", {"state": state, "version": version})

    async def supervisor(self):
        wdt = None
        try:
            wdt = self.hw.machine.WDT(timeout=120000)
        except Exception:
            pass
        while True:
            await runtime.sleep_ms(1000)
            now = ticks_ms()
            alive = True
            for name in self.checkins:
                limit = 300000 if name == "link" else 10000 + 3000 * self.cfg["sample_s"]
                if ticks_diff(now, self.checkins[name]) > limit:
                    alive = False
            if alive and wdt is not None:
                wdt.feed()
            if (
                not self.healthy
                and self.link is not None
                and self.link.birth_acked
                and self.uptime_ms() >= HEALTHY_AFTER_MS
            ):
                self.mark_healthy()
            if (
                self.ota_boot == "switched"
                and not self.healthy
                and self.uptime_ms() >= OTA_TRIAL_MS
                and self.reboot_requested is None
            ):
                self.ota_step("rollback")  # the trial app never became healthy
                self.reboot_requested = now
            if self.reboot_requested is not None and (
                self.link is None
                or self.link.idle()
                or ticks_diff(now, self.reboot_requested) > 10000
            ):
                return "reboot"

    # -- the whole app
    def start(self):
        from bench.link import Link

        self.load()
        self.spool = sp.Spool(
            self.root,
            self.cfg["spool_bytes"] if self.cfg else 1048576,
            self.cfg["segment_bytes"] if self.cfg else 16384,
        )
        if self.cfg is not None:
            self.link = Link(self)
        if not self.safe:
            try:
                self.setup_hardware()
            except Exception as e:  # a board the profile does not describe: report, stay up
                self.faults.append(("hardware", str(e)[:120]))
                self.safe = True
        if not self.safe:
            try:
                from bench.front import Front

                self.front = Front(self)
            except Exception as e:  # no display or pads: the bench still charges and reports
                self.faults.append(("front", repr(e)[:120]))
                self.front = None
        self.selftest_hook = selftest_command
        self.ota_hook = ota_command
        if store.exists(self.root + "/app"):  # an app installed by OTA: its bundle's version
            v = store.load(self.root + "/ota.json", {}).get("version")
            if isinstance(v, str) and v:
                self.fw = v
        cause = RESET_NAMES.get(self.hw.machine.reset_cause(), "power_on")
        self.record_event("boot", {"reset": cause, "fw": self.fw, "safe": self.safe})
        self.booted = True
        for code, detail in self.faults:
            self.record_event("fault", {"code": code, "detail": str(detail)[:120]})
        self.faults = []
        if self.ota_boot or store.exists(self.root + "/ota.json"):
            try:
                self.ota_step("report")
            except Exception as e:  # a damaged ota.json must not stop the boot
                self.fault("ota", repr(e))

    async def main(self):
        self.start()
        tasks = [asyncio.create_task(self.supervisor_guard())]
        if self.link is not None:
            tasks.append(asyncio.create_task(self.link.run()))
        if not self.safe:
            tasks.append(asyncio.create_task(self.sampler()))
        if self.front is not None:
            tasks.append(asyncio.create_task(self.front.run()))
        self.tasks = tasks
        try:
            reason = await tasks[0]
        except BaseException:  # cancelled from outside (the host stopping a virtual bench)
            for t in tasks[1:]:
                t.cancel()
            raise
        if self.link is not None:
            await self.link.shutdown()
        for t in tasks[1:]:
            t.cancel()
        return reason

    async def supervisor_guard(self):
        return await self.supervisor()


def selftest_command(app):
    # The `selftest` command: every sensor, port, pad and the display, one line back.
    from bench import selftest

    try:
        summary, report = selftest.for_app(app)
    finally:
        _unload("selftest")
    return report["ok"], summary


def ota_command(app, args):
    # The `ota` command: fetch, verify and stage the bundle; ack, then reboot into it.
    if not isinstance(args, dict):
        return False, "args must be an object"
    for k in ("url", "version", "sha256"):
        if not isinstance(args.get(k), str) or not args[k]:
            return False, k + " missing"
    key = app.cfg.get("ota_key")
    if not isinstance(key, str) or not key:
        return False, "no ota_key in config"
    try:
        import binascii

        key = binascii.unhexlify(key)
    except ValueError:
        return False, "ota_key is not hex"
    from bench import ota

    o = ota.Ota(app.root, key, app.ota_event)
    ok = o.run(args["url"], args["version"], args["sha256"])
    error = o.error
    _unload("ota")
    if not ok:
        return False, error
    app.reboot_requested = ticks_ms()
    return True, ""
