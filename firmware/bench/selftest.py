# The on-board self-test, for the `selftest` command and for provisioning. Imported only when
# it runs. Every check is handed in, so it knows nothing of pins or chips:
#   sensors  [(name, read(), {field: (lo, hi)})]  read() returns a dict of values
#   ports    [(n, switch(on), read())]  read() returns (volts, amps) on the port's output
#   pads     a TouchPads (its baselines()), or None
#   screens  a Screens (its test_pattern()), or None
# Returns (one-line summary, JSON-able report).
PORT_ON_V = (4.5, 5.5)  # a USB port's output when switched on
PORT_OFF_V = 1.0  # and the most it may show when switched off
PORT_OFF_A = 0.02


def _check_sensor(name, read, limits):
    try:
        values = read()
    except Exception as e:  # a chip that does not answer raises OSError; anything else too
        return {"name": name, "ok": False, "error": str(e)[:60]}
    bad = []
    for field in limits:
        lo, hi = limits[field]
        v = values.get(field) if isinstance(values, dict) else None
        if v is None or not lo <= v <= hi:
            bad.append(field)
    out = {"name": name, "ok": not bad, "values": values}
    if bad:
        out["implausible"] = bad
    return out


def _check_port(n, switch, read):
    # Off, then on again: the load switch must cut the output and restore it.
    try:
        switch(False)
        v_off, a_off = read()
        switch(True)
        v_on, a_on = read()
    except Exception as e:
        return {"n": n, "ok": False, "error": str(e)[:60]}
    ok_off = v_off < PORT_OFF_V and abs(a_off) < PORT_OFF_A
    ok_on = PORT_ON_V[0] <= v_on <= PORT_ON_V[1]
    return {"n": n, "ok": ok_off and ok_on, "off_v": v_off, "on_v": v_on, "on_a": a_on}


def run(sensors, ports, pads=None, screens=None):
    report = {"sensors": [], "ports": [], "pads": None, "display": None}
    failed = []
    for name, read, limits in sensors:
        r = _check_sensor(name, read, limits)
        report["sensors"].append(r)
        if not r["ok"]:
            failed.append(name)
    for n, switch, read in ports:
        r = _check_port(n, switch, read)
        report["ports"].append(r)
        if not r["ok"]:
            failed.append("port%d" % n)
    if pads is not None:
        bases = pads.baselines()
        ok = all(b is not None and b > 0 for b in bases)
        report["pads"] = {"ok": ok, "baselines": bases}
        if not ok:
            failed.append("pads")
    if screens is not None:
        try:
            screens.test_pattern()
            report["display"] = {"ok": True}
        except Exception as e:
            report["display"] = {"ok": False, "error": str(e)[:60]}
            failed.append("display")
    checks = len(report["sensors"]) + len(report["ports"])
    checks += (pads is not None) + (screens is not None)
    report["ok"] = not failed
    if failed:
        summary = "FAIL %d/%d: %s" % (len(failed), checks, " ".join(failed))
    else:
        summary = "OK %d/%d checks" % (checks, checks)
    return summary[:120], report


# -- the checks of a bench, from its board profile ------------------------------------------
SOLAR_LIMITS = {"v": (0.0, 30.0), "a": (-0.1, 12.0)}
BATTERY_LIMITS = {"v": (9.0, 16.0), "a": (-30.0, 30.0)}
ENV_LIMITS = {"t": (-40.0, 85.0), "rh": (0.0, 100.0)}


# After a port switch, until the INA3221 reads the new level: as the driver configures it
# (3 channels x 16 averages x 2 x 1.1 ms) a conversion cycle is 106 ms, and an average wholly
# after the switch can take two; plus the load switch's output capacitor.
PORT_SETTLE_MS = 250


def _settle():
    try:
        import time

        time.sleep_ms(PORT_SETTLE_MS)
    except AttributeError:  # CPython: the virtual board answers at once
        pass


def _missing(name):
    def read():
        raise OSError("no %s sensor answered at boot" % name)

    return read


def _ina226(d):
    return lambda: {"v": d.bus_mv() / 1000, "a": d.current_ma() / 1000}


def _bme280(d):
    def read():
        r = d.read()
        return {"t": r[0] / 100, "rh": r[1] / 1000}

    return read


def sensors_of(board, drivers):
    # [(name, read, limits)] for every sensor the profile names; a chip without a driver fails.
    out = []
    for name, limits in (("solar", SOLAR_LIMITS), ("battery", BATTERY_LIMITS)):
        d = drivers.get(name)
        out.append((name, _ina226(d) if d is not None else _missing(name), limits))
    if board.get("env"):
        d = drivers.get("env")
        out.append(("env", _bme280(d) if d is not None else _missing("env"), ENV_LIMITS))
    return out


def ports_of(board, drivers, switch):
    # [(n, switch(on), read())] for every port; switch(n, on) drives its load switch.
    out = []
    for p in board["ports"]:
        chip = drivers.get(p["addr"])
        n, ch = p["n"], p["channel"]

        def sw(on, n=n):
            switch(n, on)
            _settle()

        if chip is None:
            out.append((n, sw, _missing("port %d" % n)))
        else:
            out.append(
                (n, sw, lambda c=chip, ch=ch: (c.bus_mv(ch) / 1000, c.current_ma(ch) / 1000))
            )
    return out


def for_app(app):
    # The `selftest` command on the running app: its drivers, ports, pads and display. Ports
    # end as they were before the test; the screen goes back to what it showed.
    from bench import config
    from bench.runtime import unload

    board = config.validate_board(config.read_json(app.root + "/board.json", "bad_board"))
    unload("config")
    front = app.front
    was = {}
    for n in app.port_on:
        was[n] = app.port_on[n]
    try:
        result = run(
            sensors_of(board, app.drivers),
            ports_of(board, app.drivers, app.switch_port),
            front.touch if front is not None else None,
            front.screens if front is not None else None,
        )
    finally:
        for n in was:
            if app.port_on.get(n) != was[n]:
                app.switch_port(n, was[n])
        if front is not None:
            front.ui.redraw()
    return result


def on_board(root="/", machine=None):
    # Provisioning's `selftest` step, over the REPL on a freshly provisioned board:
    # builds the drivers from /board.json and runs every check -> (summary, report).
    if machine is None:
        import machine
    from bench import config
    from bench.runtime import ticks_ms

    root = root.rstrip("/")
    board = config.validate_board(config.read_json(root + "/board.json", "bad_board"))
    b = board["i2c"]
    i2c = machine.I2C(b["id"], scl=machine.Pin(b["scl"]), sda=machine.Pin(b["sda"]), freq=b["freq"])
    drivers = {}
    from drivers.ina226 import INA226
    from drivers.ina3221 import INA3221

    for part in ("solar", "battery"):
        d = board[part]
        try:
            drivers[part] = INA226(i2c, d["addr"], d["shunt_ohm"], d["max_a"])
        except OSError:
            pass
    shunts = {}
    for p in board["ports"]:
        shunts.setdefault(p["addr"], [0.1, 0.1, 0.1])[p["channel"] - 1] = p["shunt_ohm"]
    for addr in shunts:
        try:
            drivers[addr] = INA3221(i2c, addr, shunts[addr])
        except OSError:
            pass
    if board.get("env"):
        from drivers.bme280 import BME280

        try:
            drivers["env"] = BME280(i2c, board["env"]["addr"])
        except OSError:
            pass
    pins = {}
    for p in board["ports"]:
        pins[p["n"]] = machine.Pin(p["enable_pin"], machine.Pin.OUT, value=1)

    def switch(n, on):
        pins[n].value(1 if on else 0)

    from bench.touch import TouchPads

    try:
        tp = [machine.TouchPad(machine.Pin(p)) for p in board["touch"]["pins"]]
        pads = TouchPads(lambda i: tp[i].read(), board["touch"], ticks_ms, _none, _none)
        pads.sample()  # the first reading of each pad is its baseline
    except (AttributeError, ValueError, OSError):  # a pin that is no touch channel
        pads = _NoPads()
    screens = None
    try:
        from drivers.ssd1306 import SSD1306

        from bench.screens import Screens

        screens = Screens(SSD1306(i2c, addr=board["display"]["addr"]))
    except OSError:
        screens = _NoScreen()
    return run(sensors_of(board, drivers), ports_of(board, drivers, switch), pads, screens)


def _none(*a):
    pass


class _NoScreen:
    def test_pattern(self):
        raise OSError("display did not answer")


class _NoPads:
    def baselines(self):
        return [None]
