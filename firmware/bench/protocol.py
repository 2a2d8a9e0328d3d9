# docs/protocol.md v1 on the bench side: topics, the telemetry record's compact binary form in
# the spool, and the JSON payloads. Numbers are kept as integers in milli-units and written
# with exact decimals, so no float ever rounds a value on its way out.
import struct

from bench.runtime import const

ROOT = "klupa/v1/"
POWER_STATES = ("normal", "saver", "critical")

# period, solar mV, mA, mWh; battery mV, mA, SoC 0.01 %; rssi, clients, occ s, touches,
# power state, heap, env flag, temperature 0.01 C, RH 0.01 %, port count
_TEL = "<HHHIHiHbBHHBIBhHB"
_TEL_SIZE = const(35)  # struct.calcsize(_TEL), held equal by tests/firmware/unit/test_protocol.py
_PORT = "<BBHH"  # n, flags (1 on, 2 plug), mA, mWh
_PORT_SIZE = const(6)  # struct.calcsize(_PORT), likewise


def topic(m, b, leaf):
    return ROOT + m + "/" + b + "/" + leaf


def milli(v):
    # Integer thousandths -> JSON number text with at most 3 decimals ("18.42", "-0.412", "0.0").
    s = "-" if v < 0 else ""
    v = -v if v < 0 else v
    frac = ("00" + str(v % 1000))[-3:].rstrip("0") or "0"
    return s + str(v // 1000) + "." + frac


def pack_telemetry(t):
    # t: dict with the integer fields named as in _TEL (see window.Telemetry.fields).
    env = t.get("env")
    ports = t["ports"]
    out = bytearray(_TEL_SIZE + _PORT_SIZE * len(ports))
    struct.pack_into(
        _TEL,
        out,
        0,
        t["period"],
        t["solar_mv"],
        t["solar_ma"],
        t["solar_mwh"],
        t["batt_mv"],
        t["batt_ma"],
        t["soc_cp"],
        t["rssi"],
        t["clients"],
        t["occ"],
        t["touches"],
        POWER_STATES.index(t["power"]),
        t["heap"],
        1 if env else 0,
        env[0] if env else 0,
        env[1] if env else 0,
        len(ports),
    )
    o = _TEL_SIZE
    for p in ports:
        flags = (1 if p[1] else 0) | (2 if p[2] else 0)
        struct.pack_into(_PORT, out, o, p[0], flags, p[3], p[4])
        o += _PORT_SIZE
    return bytes(out)


def unpack_telemetry(body):
    f = struct.unpack_from(_TEL, body, 0)
    t = {
        "period": f[0],
        "solar_mv": f[1],
        "solar_ma": f[2],
        "solar_mwh": f[3],
        "batt_mv": f[4],
        "batt_ma": f[5],
        "soc_cp": f[6],
        "rssi": f[7],
        "clients": f[8],
        "occ": f[9],
        "touches": f[10],
        "power": POWER_STATES[f[11]],
        "heap": f[12],
        "env": (f[14], f[15]) if f[13] else None,
    }
    ports = []
    o = _TEL_SIZE
    for _ in range(f[16]):
        n, flags, ma, mwh = struct.unpack_from(_PORT, body, o)
        ports.append((n, bool(flags & 1), bool(flags & 2), ma, mwh))
        o += _PORT_SIZE
    t["ports"] = ports
    return t


def _b(v):
    return "true" if v else "false"


def envelope(bench, boot, seq, ts):
    return '{"v":1,"bench":"%s","boot":%d,"seq":%d,"ts":%d' % (bench, boot, seq, ts)


def telemetry_json(bench, boot, seq, ts, body):
    t = unpack_telemetry(body)
    parts = [
        envelope(bench, boot, seq, ts),
        ',"period":%d,"solar":{"v":%s,"a":%s,"wh":%s}'
        % (t["period"], milli(t["solar_mv"]), milli(t["solar_ma"]), milli(t["solar_mwh"])),
        ',"batt":{"v":%s,"a":%s,"soc":%s}'
        % (milli(t["batt_mv"]), milli(t["batt_ma"]), milli(t["soc_cp"] * 10)),
        ',"ports":[',
    ]
    first = True
    for n, on, plug, ma, mwh in t["ports"]:
        parts.append(
            '%s{"n":%d,"on":%s,"plug":%s,"a":%s,"wh":%s}'
            % ("" if first else ",", n, _b(on), _b(plug), milli(ma), milli(mwh))
        )
        first = False
    parts.append(
        '],"wifi":{"rssi":%d,"clients":%d},"seat":{"occ":%d},"touch":{"n":%d}'
        % (t["rssi"], t["clients"], t["occ"], t["touches"])
    )
    if t["env"]:
        parts.append(',"env":{"t":%s,"rh":%s}' % (milli(t["env"][0] * 10), milli(t["env"][1] * 10)))
    parts.append(',"power":"%s","heap":%d}' % (t["power"], t["heap"]))
    return "".join(parts)


def fragment_json(bench, boot, seq, ts, body):
    # Events, votes and command acks keep their own fields as a JSON fragment in the spool.
    return envelope(bench, boot, seq, ts) + "," + body.decode() + "}"


def status_json(bench, state, boot=None, fw=None, mpy=None, ts=None, until=None):
    s = '{"v":1,"bench":"%s","state":"%s"' % (bench, state)
    if boot is not None:
        s += ',"boot":%d,"fw":"%s","mpy":"%s"' % (boot, fw, mpy)
    if ts is not None:
        s += ',"ts":%d' % ts
    if until is not None:
        s += ',"until":%d' % until
    return s + "}"


def parse_receipt(obj):
    # {"v":1,"boots":{"17":[[1,1180]]}} -> {17: [[1, 1180]]}; None if malformed.
    if not isinstance(obj, dict) or not isinstance(obj.get("boots"), dict):
        return None
    out = {}
    for k in obj["boots"]:
        try:
            boot = int(k)
        except ValueError:
            return None
        ranges = obj["boots"][k]
        if not isinstance(ranges, list):
            return None
        good = []
        for r in ranges:
            if isinstance(r, list) and len(r) == 2:
                lo = whole(r[0])
                hi = whole(r[1])
                if lo and hi and 0 < lo <= hi:
                    good.append([lo, hi])
        out[boot] = good
    return out


def whole(x):
    # x as an int by docs/protocol.md's integer rule (1.0 is 1), or None when it is not one
    # (booleans, text, fractions; inf and nan, which json gives for 1e999 and int() refuses).
    if type(x) is float and x - x == 0 and x == int(x):
        return int(x)
    return x if type(x) is int else None
