# Loading and validating /board.json and /config.json. Imported at boot only and dropped
# afterwards (see app.boot), so it does not stay in the resident heap.
import json

from bench.protocol import whole

# The settings `set` may change: name -> (min, max). docs/protocol.md, Command.
SETTABLE = {
    "period": (10, 3600),
    "sample_s": (1, 60),
    "cooldown": (0, 600),
    "vote_cap": (1, 1000),
    "saver_soc": (0, 100),
    "critical_soc": (0, 100),
}

CONFIG_DEFAULTS = {
    "period": 60,
    "sample_s": 1,
    "cooldown": 10,
    "vote_cap": 60,
    "keepalive": 60,
    "resend_s": 900,
    "ntp_every_s": 21600,
    "spool_bytes": 1048576,
    "segment_bytes": 32768,
    "fw": "1.0.0",
}


class ConfigError(Exception):
    # args[0]: short code for the fault event; args[1]: the detail naming the key.
    pass


def _name_ok(s, lo, hi):
    # Checked as bytes: indexing or iterating a str makes an interned name of each character.
    if not isinstance(s, str) or not (lo <= len(s) <= hi):
        return False
    b = s.encode()
    if not (0x61 <= b[0] <= 0x7A):  # a-z
        return False
    for c in b:
        if c not in b"abcdefghijklmnopqrstuvwxyz0123456789-":
            return False
    return True


def read_json(path, code):
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError:
        raise ConfigError(code, path + " missing")
    except ValueError:
        raise ConfigError(code, path + " is not valid JSON")
    if not isinstance(data, dict):
        raise ConfigError(code, path + " is not a JSON object")
    return data


# Messages name the key by its path, e.g. "battery.ocv"; `where` is the section ("battery",
# "ports[2]") or "" at the top. (Sections are passed without the dot: each short string in a
# module is an interned name that stays in the heap after this module is dropped.)
def _path(where, key):
    return where + "." + key if where else key


def _need(d, key, kind, where, code):
    if key not in d:
        raise ConfigError(code, _path(where, key) + " missing")
    v = d[key]
    if kind is float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    elif kind is int:
        ok = isinstance(v, int) and not isinstance(v, bool)
    else:
        ok = isinstance(v, kind)
    if not ok:
        raise ConfigError(code, _path(where, key) + " has the wrong type")
    return v


def _chip(d, where, code):
    _need(d, "chip", str, where, code)
    a = _need(d, "addr", int, where, code)
    if not 0x08 <= a <= 0x77:
        raise ConfigError(code, _path(where, "addr") + " out of range")


def validate_board(b):
    c = "bad_board"
    _need(b, "model", str, "", c)
    _need(b, "chip", str, "", c)
    i2c = _need(b, "i2c", dict, "", c)
    for k in ("id", "scl", "sda", "freq"):
        _need(i2c, k, int, "i2c", c)
    for part in ("solar", "battery"):
        d = _need(b, part, dict, "", c)
        _chip(d, part, c)
        if _need(d, "shunt_ohm", float, part, c) <= 0:
            raise ConfigError(c, part + ".shunt_ohm must be > 0")
        _need(d, "max_a", float, part, c)
    bat = b["battery"]
    for k in ("capacity_ah", "nominal_v", "full_v", "charge_efficiency"):
        _need(bat, k, float, "battery", c)
    # Optional estimator keys: a fraction of capacity, a SoC %, an efficiency (bench.power).
    for k, lo, hi in (("tail_c", 0, 1), ("gassing_soc", 0, 100), ("charge_efficiency_full", 0, 1)):
        if k in bat and not lo < _need(bat, k, float, "battery", c) <= hi:
            raise ConfigError(c, "battery.%s out of range" % k)
    chem = _need(bat, "chemistry", str, "battery", c)
    if chem not in ("lifepo4", "lead-acid"):
        raise ConfigError(c, "battery.chemistry unknown: " + chem)
    ocv = _need(bat, "ocv", list, "battery", c)
    if len(ocv) < 2:
        raise ConfigError(c, "battery.ocv needs at least 2 points")
    last = -1.0
    for p in ocv:
        if not (isinstance(p, list) and len(p) == 2) or p[0] <= last:
            raise ConfigError(c, "battery.ocv must be [soc, volts] pairs by rising soc")
        last = p[0]
    th = _need(bat, "thresholds", dict, "battery", c)
    for k in ("saver_soc", "normal_soc", "critical_soc", "critical_v", "recover_soc", "recover_v"):
        _need(th, k, float, "battery.thresholds", c)
    ports = _need(b, "ports", list, "", c)
    seen = []
    for i, p in enumerate(ports):
        w = "ports[%d]" % i
        if not isinstance(p, dict):
            raise ConfigError(c, w + " is not an object")
        n = _need(p, "n", int, w, c)
        if n < 1 or n in seen:
            raise ConfigError(c, w + ".n must be unique and >= 1")
        seen.append(n)
        if _need(p, "kind", str, w, c) not in ("usb", "wireless"):
            raise ConfigError(c, w + ".kind must be usb or wireless")
        _chip(p, w, c)
        ch = _need(p, "channel", int, w, c)
        if not 1 <= ch <= 3:
            raise ConfigError(c, w + ".channel must be 1..3")
        shunt = _need(p, "shunt_ohm", float, w, c)
        _need(p, "enable_pin", int, w, c)
        limit = _need(p, "limit_a", float, w, c)
        # The INA3221 reads at most 163.8 mV across a shunt: a limit above that current could
        # never trip, and the port's readings would saturate below it.
        if shunt <= 0 or limit <= 0 or limit * shunt > 0.1638:  # 4095 x 40 uV
            raise ConfigError(
                c, w + ".limit_a x shunt_ohm must be > 0 and <= 0.1638 V (INA3221 full scale)"
            )
    seat = _need(b, "seat", dict, "", c)
    pin = _need(seat, "pin", int, "seat", c)
    _need(seat, "active_low", bool, "seat", c)
    # The ESP32's GPIO 34-39 are inputs without pull resistors: the board must have its own.
    if b["chip"] == "esp32" and 34 <= pin <= 39 and seat.get("pull") != "external":
        raise ConfigError(
            c, "seat.pin %d has no internal pull resistor: fit one, set seat.pull external" % pin
        )
    touch = _need(b, "touch", dict, "", c)
    _need(touch, "pins", list, "touch", c)
    if _need(touch, "direction", str, "touch", c) not in ("falls", "rises"):
        raise ConfigError(c, "touch.direction must be falls or rises")
    _need(touch, "sensitivity", float, "touch", c)
    _chip(_need(b, "display", dict, "", c), "display", c)
    env = b.get("env")
    if env is not None:
        _chip(env, "env", c)
    return b


def validate_config(d):
    c = "bad_config"
    bench = _need(d, "bench", str, "", c)
    if not _name_ok(bench, 3, 40):
        raise ConfigError(c, "bench id invalid: " + bench[:40])
    if not _name_ok(_need(d, "municipality", str, "", c), 2, 32):
        raise ConfigError(c, "municipality invalid")
    wifi = _need(d, "wifi", dict, "", c)
    _need(wifi, "ssid", str, "wifi", c)
    mq = _need(d, "mqtt", dict, "", c)
    _need(mq, "host", str, "mqtt", c)
    port = mq.get("port", 8883 if mq.get("tls") else 1883)
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(c, "mqtt.port out of range")
    mq["port"] = port
    for k in ("user", "password", "ca"):
        if k in mq and not isinstance(mq[k], str):
            raise ConfigError(c, _path("mqtt", k) + " has the wrong type")
    if "ntp" in d and not isinstance(d["ntp"], str):
        raise ConfigError(c, "ntp has the wrong type")
    for k in CONFIG_DEFAULTS:
        if k in d:
            v = d[k]
            if not isinstance(v, type(CONFIG_DEFAULTS[k])) or isinstance(v, bool):
                raise ConfigError(c, k + " has the wrong type")
            if k in SETTABLE and not SETTABLE[k][0] <= v <= SETTABLE[k][1]:
                raise ConfigError(c, k + " out of range")
        else:
            d[k] = CONFIG_DEFAULTS[k]
    return d


def check_settings(args, thresholds):
    # Validates a `set` command's args; returns (None, clean dict) or (reason, None).
    if not isinstance(args, dict) or not args:
        return "args must be a non-empty object", None
    out = {}
    for k in args:
        if k not in SETTABLE:
            return "unknown key " + str(k), None
        v = args[k]
        w = whole(v)  # 120.0 is 120; the soc keys are floats
        if w is not None and k not in ("saver_soc", "critical_soc"):
            v = w
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return k + " must be a number", None
        lo, hi = SETTABLE[k]
        if not isinstance(v, int) and k not in ("saver_soc", "critical_soc"):
            return k + " must be an integer", None
        if not lo <= v <= hi:
            return "%s out of range %s..%s" % (k, lo, hi), None
        out[k] = v
    saver = out.get("saver_soc", thresholds["saver_soc"])
    crit = out.get("critical_soc", thresholds["critical_soc"])
    if crit >= saver:
        return "critical_soc must be below saver_soc", None
    return None, out
