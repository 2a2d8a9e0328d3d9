# The bench app's wiring: boot, drivers, the sampler, records into the spool, commands,
# supervision. All of a bench's state hangs off one App object.
import gc
import json

from bench import protocol, runtime, store
from bench import spool as sp
from bench.runtime import const, job, ticks_add, ticks_diff, ticks_ms

FW = "1.0.0"
_HEALTHY_AFTER_MS = const(60000)
_OTA_TRIAL_MS = const(300000)  # bench.ota.TRIAL_MS: the new app must be healthy within 5 min
_TRIAL_WIFI_MS = const(600000)  # bench.ota.TRIAL_WIFI_MS: Wi-Fi this long, no acked birth
_WDT_MS = const(120000)
_LINK_SILENT_MS = const(300000)  # a connection attempt's own timeouts end well within this
_SAFE_SAVE_MS = const(300000)  # safe mode adds its time to state.json this often
_HUNG_FAULT_MS = const(60000)  # unfed this long: report the silent task before the reset
_WINDOW_EARLY_MS = const(500)  # a window closes when due, or this little before


def frag(fields):
    # A record's own fields as a JSON fragment (the envelope is added when it is sent), in
    # UTF-8 with no \u escapes (docs/protocol.md): MicroPython's json writes text as it is;
    # CPython's needs ensure_ascii=False (the firmware on the host: the virtual board).
    if runtime.MICROPYTHON:
        s = json.dumps(fields, separators=(",", ":"))
    else:
        s = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
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
        self.last_fault = None  # the latest fault's code this boot (the service screen)
        self.cfg = None
        self.board = None  # the board profile, from boot until the hardware and front are built
        self.ports = []  # (n, wireless, chip address, channel) of each outlet, from the profile
        self.seq = 0
        self.boot_no = 0
        self.uptime = 0
        self._last_ticks = ticks_ms()
        self.clock_set = False
        self.anchor = None  # Unix time at uptime 0 of this boot, once the clock is set
        self.reboot_requested = None
        self.updating = None  # (command id, task) while an `ota` download runs (bench.commands)
        self.link = None
        self.checkins = {}
        self.critical = []  # the tasks that must check in: health and the watchdog's feeding
        self.healthy = False
        self.wdt = None
        # An app on trial, not committed yet: 1; 2 once its healthy run is noted in ota.json;
        # 0 when not on trial (any more). bench.ota.trial moves it on.
        self.trial = 1 if ota in ("switched", "trial") else 0
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
    def save_state(self):
        try:
            store.save(self.root + "/state.json", self.state)
        except OSError as e:
            self.faults.append(("flash_error", "state.json: " + str(e)))

    # -- records
    def record(self, kind, body):
        # Spool a new record (durable before it is published), hand it to the link; -> seq.
        self.seq += 1
        now = self.now()
        if now is None:  # the clock is not set: the stamp is uptime seconds
            now, flags = self.uptime_ms() // 1000, sp.FLAG_UPTIME
        else:
            flags = 0
        rec = sp.Record(kind, self.boot_no, self.seq, now, flags, body)
        try:
            self.spool.append(rec)
        except OSError as e:
            if "flash" not in self.sensor_faults:
                self.sensor_faults["flash"] = 1
                print("spool append failed:", e)
        if self.link is not None:
            self.link.fresh(rec)
        return self.seq

    def record_event(self, type_, fields=None):
        d = {"type": type_}
        if fields:
            for k in fields:
                d[k] = fields[k]
        return self.record(sp.KIND_EVENT, frag(d))

    def record_vote(self, poll, choice):
        return self.record(sp.KIND_VOTE, frag({"poll": poll, "choice": choice}))

    def fault(self, code, detail):
        self.last_fault = code
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
        for n, wireless, _, _ in self.ports:
            if state == "normal":
                on = True
            elif state == "saver":
                on = not wireless and n <= 2
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

    def read_battery(self, dt):
        # The power manager's step: the battery's reading -> SoC, the power state and the
        # ports it allows. -> (mV, mA), or None without a reading.
        d = self.drivers.get("battery")
        if d is None:
            return None
        r = self._read("battery", lambda: (d.bus_mv(), d.current_ma()))
        if r:
            change = self.power.update(r[0], r[1], dt)
            if change:
                self.record_event("power", {"from": change[0], "to": change[1]})
                self.apply_power_state(change[1])
        return r

    def read_port(self, n, addr, ch):
        # A port's reading after its protection: a port drawing more than its limit is
        # switched off (a `tamper` event). -> (mV, mA), or None when off or unreadable.
        chip = self.drivers.get(addr)
        if chip is None:
            return None
        r = self._read("port%d" % n, lambda: (chip.bus_mv(ch), chip.current_ma(ch)))
        if not r:
            return None
        mv, ma = r
        if ma < 0:
            ma = 0
        if ma > self.port_limits[n] and self.port_on.get(n):
            self.switch_port(n, False)
            self.record_event(
                "tamper", {"kind": "port_overcurrent", "detail": "port %d drew %d mA" % (n, ma)}
            )
            return None
        return mv, ma

    def sample(self, dt):
        d = self.drivers
        w = self.window
        if "solar" in d:
            r = self._read("solar", lambda: (d["solar"].bus_mv(), d["solar"].current_ma()))
            if r:
                w.solar.add(r[0], r[1], dt)
        r = self.read_battery(dt)
        if r:
            w.batt.add(r[0], r[1], dt)
        for n, _, addr, ch in self.ports:
            r = self.read_port(n, addr, ch)
            if not r:
                continue
            mv, ma = r
            w.ports[n].add(mv, ma, dt)
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
            if late < -_WINDOW_EARLY_MS:
                continue
            self.close_window(period)
            start = due if late < period * 1000 else now  # a whole window behind: a new grid
            self.window.reset(now)
            if self.link is not None and self.link.dozing:
                self.link.wake_up()
            if self.power.state == "critical" and self.link is not None:
                ms = ticks_diff(ticks_add(start, period * 1000), ticks_ms())
                if ms > 0:
                    await job("doze", "doze", self, ms)  # only in `critical`

    # -- commands
    def on_command(self, payload):
        job("commands", "handle", self, payload)

    # -- supervision
    def checkin(self, name):
        self.checkins[name] = ticks_ms()

    async def supervisor(self):
        wdt = self.wdt
        wifi_ms = 0  # this boot's time with Wi-Fi, for a trial app's birth
        safe_ms = 0  # time in safe mode not yet added to state.json
        unfed = None  # since when the watchdog has not been fed
        told = False  # the silent task is reported (the watchdog resets the bench)
        last = ticks_ms()
        while True:
            await runtime.sleep_ms(1000)
            now = ticks_ms()
            dt = ticks_diff(now, last)
            last = now
            # The first critical task silent past its limit (docs/firmware.md, Watchdog), and
            # whether every one has checked in.
            hung = None
            seen = True
            for name in self.critical:
                t = self.checkins.get(name)
                limit = _LINK_SILENT_MS if name == "link" else 10000 + 3000 * self.cfg["sample_s"]
                if t is None:
                    seen = False
                    if self.uptime_ms() > limit:
                        hung = name  # never started
                        break
                elif ticks_diff(now, t) > limit:
                    hung = name
                    break
            if hung is None:
                unfed = None
                if wdt is not None:
                    wdt.feed()
            elif unfed is None:
                unfed = now
            elif not told and ticks_diff(now, unfed) >= _HUNG_FAULT_MS:
                # Silent this long, not a passing hiccup: the watchdog resets the bench; say
                # which task hung (the fault is in the spool, in flash, before the reset).
                told = True
                self.fault("task_hung", "%s silent; watchdog reset follows" % hung)
            if not self.healthy and not self.safe and hung is None:
                if self.uptime_ms() >= _HEALTHY_AFTER_MS and seen:
                    # 60 s up with every critical task checking in: safe mode stops counting.
                    self.healthy = True
                    job("health", "healthy", self.state)
                    self.save_state()
            if self.link is not None and self.link.sta.isconnected():
                wifi_ms += dt
            # An app on trial (docs/protocol.md): bench.ota.trial is imported only when the
            # trial can move: healthy with its birth acknowledged (committed), healthy and not
            # yet noted so in ota.json, not healthy after 5 min, or 10 min of Wi-Fi without an
            # acknowledged birth (rolled back). Without Wi-Fi it stays on trial.
            if self.trial and self.reboot_requested is None:
                if self.healthy:
                    move = self.trial == 1 or (self.link is not None and self.link.birth_acked)
                else:
                    move = self.uptime_ms() >= _OTA_TRIAL_MS
                if (move or wifi_ms >= _TRIAL_WIFI_MS) and job("ota", "trial", self, wifi_ms):
                    self.reboot_requested = now
            if self.safe and self.state.get("safe"):  # safe mode for failed boots
                safe_ms += dt
                if safe_ms >= _SAFE_SAVE_MS:
                    if job("health", "safe_time", self.state, safe_ms // 1000):
                        self.reboot_requested = now  # try normal mode again
                    safe_ms = 0
                    self.save_state()
            if self.reboot_requested is not None and (
                self.link is None
                or self.link.idle()
                or ticks_diff(now, self.reboot_requested) > 10000
            ):
                return "reboot"

    # -- the whole app
    def start(self):
        job("startup", "start", self)

    async def main(self):
        try:  # first: a hang anywhere from here on resets the bench (120 s)
            self.wdt = self.hw.machine.WDT(timeout=_WDT_MS)
        except Exception:
            self.wdt = None
        self.start()  # builds the app and starts its tasks (self.tasks), the supervisor first
        tasks = self.tasks
        try:
            reason = await tasks[0]
        except BaseException:  # cancelled from outside (the host stopping a virtual bench)
            for t in tasks[1:]:
                t.cancel()
            raise
        if self.link is not None:
            await job("connect", "shutdown", self.link)  # the offline Status, DISCONNECT
        for t in tasks[1:]:
            t.cancel()
        return reason

    async def watched(self, coro):
        # A critical task that dies keeps its traceback for the next boot's `fault` event; it
        # stops checking in, so the watchdog resets the bench.
        try:
            return await coro
        except Exception as e:
            job("fault", "died", self.root, e)
            raise
