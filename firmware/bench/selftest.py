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
