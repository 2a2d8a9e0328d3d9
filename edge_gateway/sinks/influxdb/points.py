"""InfluxDB points exactly per docs/interfaces.md's schema, built with influxdb-client's ``Point``.

Every point is written with millisecond precision: a point timed in seconds gets ``ts × 1000``;
``session`` and ``event`` points get ``ts × 1000 + seq mod 1000`` so that two events of one bench
in one second stay two points. Field types are forced to the schema's, whatever the JSON held.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from influxdb_client import Point, WritePrecision
from influxdb_client.client.write.point import _ESCAPE_KEY, _ESCAPE_STRING

from edge_gateway.payloads import Event, Telemetry, Vote
from edge_gateway.sinks.base import decode_row
from edge_gateway.store import Row, Store, day_bounds, local_day

MS = WritePrecision.MS

EVENT_FIELDS: dict[str, dict[str, type]] = {
    "boot": {"reset": str, "fw": str, "safe": bool},
    "power": {"from_": str, "to": str},
    "clock": {"offset": int},
    "ota": {"state": str, "version": str},
    "tamper": {"kind": str},
    "fault": {},
}


def _p(measurement: str, m: str, bench: str) -> Point:
    return Point(measurement).tag("municipality", m).tag("bench", bench)


def telemetry_points(m: str, t: Telemetry) -> list[Point]:
    ms = int(t.ts) * 1000
    out = [
        _p("power", m, t.bench)
        .field("solar_v", float(t.solar.v))
        .field("solar_a", float(t.solar.a))
        .field("solar_wh", float(t.solar.wh))
        .field("batt_v", float(t.batt.v))
        .field("batt_a", float(t.batt.a))
        .field("batt_soc", float(t.batt.soc))
        .field("state", str(t.power))
        .time(ms, MS),
        _p("link", m, t.bench)
        .field("rssi", int(t.wifi.rssi))
        .field("clients", int(t.wifi.clients))
        .field("heap", int(t.heap))
        .time(ms, MS),
        _p("usage", m, t.bench)
        .field("seat_occ_s", int(t.seat.occ))
        .field("touches", int(t.touch.n))
        .time(ms, MS),
    ]
    for port in t.ports:
        out.append(
            _p("port", m, t.bench)
            .tag("port", str(int(port.n)))
            .field("on", bool(port.on))
            .field("plug", bool(port.plug))
            .field("a", float(port.a))
            .field("wh", float(port.wh))
            .time(ms, MS)
        )
    if t.env is not None:
        out.append(
            _p("env", m, t.bench)
            .field("temp_c", float(t.env.t))
            .field("rh", float(t.env.rh))
            .time(ms, MS)
        )
    return out


def _fl(v: float) -> str:
    """A float field exactly as ``Point.to_line_protocol`` writes it."""
    text = repr(float(v))
    return text[:-2] if text.endswith(".0") else text


def _bool(v: Any) -> str:
    return "true" if v else "false"


_prefixes: dict[tuple[str, str], str] = {}


def _tags(m: str, bench: str) -> str:
    """``bench=…,municipality=…``, escaped as ``Point`` escapes tag values (cached)."""
    key = (m, bench)
    text = _prefixes.get(key)
    if text is None:
        if len(_prefixes) > 10_000:
            _prefixes.clear()
        text = f"bench={bench.translate(_ESCAPE_KEY)},municipality={m.translate(_ESCAPE_KEY)}"
        _prefixes[key] = text
    return text


def telemetry_lines(m: str, t: Telemetry) -> list[str]:
    """The lines of ``telemetry_points``, byte for byte, about ten times faster.

    Telemetry is the bulk of the traffic, so its lines are written with one f-string per
    measurement: tags and fields in the sorted order ``Point`` uses. ``telemetry_points``
    (built with ``Point``) is the reference, and a test holds the two equal.
    """
    ms = int(t.ts) * 1000
    tags = _tags(m, t.bench)
    s, b = t.solar, t.batt
    state = str(t.power).translate(_ESCAPE_STRING)
    out = [
        f"power,{tags} batt_a={_fl(b.a)},batt_soc={_fl(b.soc)},batt_v={_fl(b.v)},"
        f'solar_a={_fl(s.a)},solar_v={_fl(s.v)},solar_wh={_fl(s.wh)},state="{state}" {ms}',
        f"link,{tags} clients={int(t.wifi.clients)}i,heap={int(t.heap)}i,"
        f"rssi={int(t.wifi.rssi)}i {ms}",
        f"usage,{tags} seat_occ_s={int(t.seat.occ)}i,touches={int(t.touch.n)}i {ms}",
    ]
    for p in t.ports:
        out.append(
            f"port,{tags},port={int(p.n)} a={_fl(p.a)},on={_bool(p.on)},"
            f"plug={_bool(p.plug)},wh={_fl(p.wh)} {ms}"
        )
    if t.env is not None:
        out.append(f"env,{tags} rh={_fl(t.env.rh)},temp_c={_fl(t.env.t)} {ms}")
    return out


def event_point(m: str, e: Event) -> Point:
    ms = int(e.ts) * 1000 + int(e.seq) % 1000
    if e.type == "session":
        return (
            _p("session", m, e.bench)
            .tag("port", str(int(e.port or 0)))
            .field("duration_s", int(e.s or 0))
            .field("wh", float(e.wh or 0.0))
            .time(ms, MS)
        )
    p = (
        _p("event", m, e.bench)
        .tag("type", e.type)
        .field("detail", e.detail or "")
        .field("code", e.code or "")
    )
    for attr, kind in EVENT_FIELDS.get(e.type, {}).items():
        value = getattr(e, attr)
        name = "from" if attr == "from_" else attr
        if kind is str:
            p.field(name, "" if value is None else str(value))
        elif kind is bool:
            p.field(name, bool(value))
        elif value is not None:
            p.field(name, int(value))
    return p.time(ms, MS)


def votes_point(m: str, bench: str, poll: str, choice: str, minute: int, count: int) -> Point:
    return (
        _p("votes", m, bench)
        .tag("poll", poll)
        .tag("choice", choice)
        .field("count", int(count))
        .time(minute * 1000, MS)
    )


def daily_point(m: str, bench: str, day: str, d: dict[str, Any]) -> Point:
    start, _ = day_bounds(day)
    return (
        _p("daily", m, bench)
        .field("solar_wh", float(d["solar_wh"]))
        .field("charge_wh", float(d["charge_wh"]))
        .field("sessions", int(d["sessions"]))
        .field("seat_occ_s", int(d["seat_occ_s"]))
        .field("touches", int(d["touches"]))
        .field("votes", int(d["votes"]))
        .field("uptime_pct", float(d["uptime_pct"]))
        .time(int(start) * 1000, MS)
    )


def status_point(m: str, bench: str, body: dict[str, Any]) -> Point:
    p = (
        _p("bench_status", m, bench)
        .field("online", bool(body["online"]))
        .field("sleeping", bool(body["sleeping"]))
    )
    if body.get("boot") is not None:
        p.field("boot", int(body["boot"]))
    if body.get("fw") is not None:
        p.field("fw", str(body["fw"]))
    return p.time(int(float(body["t"]) * 1000), MS)


def gateway_point(m: str, counters: dict[str, int], depth: int, lag: float, t: float) -> Point:
    return (
        Point("gateway")
        .tag("municipality", m)
        .field("received", int(counters.get("received", 0)))
        .field("accepted", int(counters.get("accepted", 0)))
        .field("rejected", int(counters.get("rejected", 0)))
        .field("duplicates", int(counters.get("duplicates", 0)))
        .field("spool_depth", int(depth))
        .field("forward_lag_s", float(lag))
        .time(int(t * 1000), MS)
    )


def row_points(m: str, rows: Iterable[Row], store: Store, now: float) -> list[tuple[int, str]]:
    """Line-protocol lines for stored rows, each with the id of the row it came from.

    Derived points (vote counts per minute, the local day) are emitted once per batch with the
    store's current value, tagged with the id of the last row that touched them.
    """
    lines: list[tuple[int, str]] = []
    minutes: dict[tuple[str, str, str, int], int] = {}
    days: dict[tuple[str, str], int] = {}
    # A poll whose results are hidden until it closes: its per-choice counts wait in the store
    # (the sink writes them at close); the day's vote totals per bench go out as usual.
    hidden = store.hidden_now(now)
    for row in rows:
        msg = decode_row(row)
        if msg is None:
            continue
        if isinstance(msg, Telemetry):
            lines.extend((row.id, text) for text in telemetry_lines(m, msg))
            days[(row.bench, local_day(row.ts))] = row.id
        elif isinstance(msg, Event):
            lines.append((row.id, event_point(m, msg).to_line_protocol()))
            if msg.type == "session":
                days[(row.bench, local_day(row.ts))] = row.id
        elif isinstance(msg, Vote):
            minute = int(msg.ts) - int(msg.ts) % 60
            if msg.poll not in hidden:
                minutes[(row.bench, msg.poll, msg.choice, minute)] = row.id
            days[(row.bench, local_day(row.ts))] = row.id
        elif isinstance(msg, dict):
            lines.append((row.id, status_point(m, row.bench, msg).to_line_protocol()))
            # uptime is counted on the gateway's clock; `ts` may be an old Status's
            days[(row.bench, local_day(int(row.received)))] = row.id
    for (bench, poll, choice, minute), rid in minutes.items():
        count = store.vote_count(bench, poll, choice, minute)
        lines.append((rid, votes_point(m, bench, poll, choice, minute, count).to_line_protocol()))
    for (bench, day), rid in days.items():
        d = store.daily(bench, day, now)
        lines.append((rid, daily_point(m, bench, day, d).to_line_protocol()))
    return lines
