"""Test fixture: a simulated day of the whole fleet in a real InfluxDB 1.x, and what it should read back as.

The day is the last 24 hours up to now: each bench of the default inventory in its own
`boards.virtual.physics.World` (its sun, battery, people, phones), reported in 5-minute
telemetry windows, with session events when a phone leaves, votes, status changes, the gateway's
`daily` rows and its own `gateway` points. Every point is made by the gateway's own builders
(`edge_gateway.sinks.influxdb.points`) from messages decoded as the gateway decodes them, so the dashboards
are tested against exactly what the gateway writes. ``ravno-01`` goes offline two hours before
the end. The truth (sums, counts, last values) is kept alongside, from the same numbers.
"""

from __future__ import annotations

import json
import random
import re
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from boards.virtual.physics import World
from edge_gateway.protocol import decode
from edge_gateway.sinks.influxdb import points as pts
from edge_gateway.store import day_bounds, local_day
from klupa.grafana import Site, sites_of
from klupa.influx import Server, setup
from klupa.services import Influx1
from provisioning.deployment import inventory_text
from testkit.gateway import event, telemetry
from testkit.services import need_program

WINDOW = 300
OFFLINE = "ravno-01"
FW = "1.2.0"


@dataclass
class Truth:
    start: int
    end: int
    sites: list[Site]
    solar_wh: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    port_wh: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    sessions: Counter[str] = field(default_factory=Counter)
    votes: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # bench, poll, choice
    last_soc: dict[str, float] = field(default_factory=dict)
    events: Counter[str] = field(default_factory=Counter)
    daily: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    lines: int = 0

    def municipality(self, bench: str) -> str:
        return next(s.municipality for s in self.sites if s.bench == bench)


def default_sites(tmp: Path) -> list[Site]:
    (tmp / "inventory.toml").write_text(inventory_text())
    (tmp / "secrets.toml").write_text("")
    return sites_of(tmp)


def power_state(soc: float) -> str:
    return "critical" if soc < 15 else "saver" if soc < 30 else "normal"


def simulate_bench(site: Site, truth: Truth, seed: int) -> list[str]:
    m, b = site.municipality, site.bench
    rng = random.Random(f"{seed}/{b}")
    world = World(m, seed, float(truth.start), soc=rng.uniform(0.35, 0.9), people_scale=3.0)
    stop = truth.end - 2 * 3600 if b == OFFLINE else truth.end
    lines: list[str] = []
    seq = 0

    def ev(ts: int, type_: str, **fields: Any) -> None:
        nonlocal seq
        seq += 1
        e = decode("event", json.dumps(event(b, 1, seq, ts, type_, **fields)).encode())
        lines.append(pts.event_point(m, e).to_line_protocol())
        if type_ == "session":
            truth.sessions[b] += 1
            day(ts)["sessions"] += 1
        else:
            truth.events[b] += 1

    days: dict[str, dict[str, Any]] = {}

    def day(ts: int) -> dict[str, Any]:
        key = local_day(ts)
        return days.setdefault(
            key,
            {"solar_wh": 0.0, "charge_wh": 0.0, "sessions": 0, "seat_occ_s": 0, "touches": 0}
            | {"votes": 0, "uptime_pct": 0.0},
        )

    def status(ts: int, online: bool) -> None:
        body = {"online": online, "sleeping": False, "boot": 1, "fw": FW, "t": ts}
        lines.append(pts.status_point(m, b, body).to_line_protocol())

    status(truth.start, True)
    ev(truth.start, "boot", reset="power_on", fw=FW, safe=False)
    state = power_state(world.battery.soc * 100)
    plugged: dict[int, tuple[float, float]] = {}  # port -> (since, wh)
    t = truth.start
    minute_votes: Counter[tuple[str, str, int]] = Counter()
    while t + WINDOW <= stop:
        sv = sa = bv = ba = seat = 0.0
        solar_wh = 0.0
        port_a: defaultdict[int, float] = defaultdict(float)
        port_wh: defaultdict[int, float] = defaultdict(float)
        for _ in range(WINDOW // 60):
            before = set(world.phones)
            world.step(60)
            for n in before - set(world.phones):  # a phone left: its session ends
                since, wh = plugged.pop(n)
                ev(int(world.t), "session", port=n, s=int(world.t - since), wh=round(wh, 3))
            for n in world.phones:
                a = world.port_current(n)
                port_a[n] += a / (WINDOW // 60)
                port_wh[n] += a * 5.0 / 60.0
                since, wh = plugged.get(n, (world.t - 60, 0.0))
                plugged[n] = (since, wh + a * 5.0 / 60.0)
            sv += world.solar_v / (WINDOW // 60)
            sa += world.solar_a / (WINDOW // 60)
            solar_wh += world.solar_v * world.solar_a / 60.0
            bv += world.battery.voltage / (WINDOW // 60)
            ba += world.battery.current_a / (WINDOW // 60)
            seat += 60 if world.seat_occupied() else 0
        t += WINDOW
        soc = round(world.battery.soc * 100, 1)
        if power_state(soc) != state:
            ev(t, "power", **{"from": state, "to": power_state(soc)})
            state = power_state(soc)
        n_votes = rng.choice((0, 0, 0, 1, 2)) if seat else 0
        for _ in range(n_votes):
            ts = t - rng.randrange(WINDOW)
            minute_votes[(f"{m}-park", rng.choice(("yes", "no")), ts - ts % 60)] += 1
        touches = n_votes + rng.randrange(3)
        msg = telemetry(
            b,
            1,
            0,
            t,
            period=WINDOW,
            solar={"v": round(sv, 2), "a": round(sa, 3), "wh": round(solar_wh, 3)},
            batt={"v": round(bv, 2), "a": round(ba, 3), "soc": soc},
            ports=[
                {
                    "n": n,
                    "on": True,
                    "plug": port_a[n] > 0,
                    "a": round(port_a[n], 3),
                    "wh": round(port_wh[n], 3),
                }
                for n in range(1, world.ports + 1)
            ],
            wifi={"rssi": world.rssi(), "clients": rng.randrange(6)},
            seat={"occ": int(seat)},
            touch={"n": touches},
            power=state,
            heap=40000 + rng.randrange(4000),
        )
        msg["env"] = {"t": round(world.air_c, 1), "rh": round(world.rh, 1)}
        msg["seq"] = seq = seq + 1
        lines += pts.telemetry_lines(m, decode("telemetry", json.dumps(msg).encode()))
        truth.solar_wh[b] += round(solar_wh, 3)
        truth.port_wh[b] += sum(round(port_wh[n], 3) for n in range(1, world.ports + 1))
        truth.last_soc[b] = soc
        d = day(t)
        d["solar_wh"] += round(solar_wh, 3)
        d["charge_wh"] += sum(round(port_wh[n], 3) for n in range(1, world.ports + 1))
        d["seat_occ_s"] += int(seat)
        d["touches"] += touches
    if b == OFFLINE:
        status(stop, False)
    for (poll, choice, minute), count in minute_votes.items():
        lines.append(pts.votes_point(m, b, poll, choice, minute, count).to_line_protocol())
        truth.votes[(b, poll, choice)] += count
        day(minute)["votes"] += count
    for key, d in days.items():
        start, end = day_bounds(key)
        seen = min(end, truth.end) - max(start, truth.start)
        online = min(end, stop) - max(start, truth.start)
        d["uptime_pct"] = round(100.0 * max(0.0, online) / max(1.0, seen), 3)
        lines.append(pts.daily_point(m, b, key, d).to_line_protocol())
        truth.daily[(b, key)] = d
    return lines


def simulate_gateways(truth: Truth) -> list[str]:
    lines = []
    for m in sorted({s.municipality for s in truth.sites}):
        received = 0
        for t in range(truth.start, truth.end, 60):
            received += 1
            counters = {"received": received, "accepted": received}
            lines.append(pts.gateway_point(m, counters, 0, 0.5, float(t)).to_line_protocol())
    return lines


def write(url: str, lines: list[str], database: str = "benches") -> None:
    for i in range(0, len(lines), 5000):
        body = "\n".join(lines[i : i + 5000]).encode()
        req = urllib.request.Request(
            f"{url}/write?db={database}&precision=ms", data=body, method="POST"
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 204


def simulate_day(url: str, sites: list[Site], end: int, seed: int = 7) -> Truth:
    truth = Truth(start=end - 86400, end=end, sites=sites)
    lines: list[str] = []
    for site in sites:
        lines += simulate_bench(site, truth, seed)
    lines += simulate_gateways(truth)
    write(url, lines)
    truth.lines = len(lines)
    return truth


# --------------------------------------------------------------------------- Grafana's part

INTERVAL = "5m"  # what Grafana makes of $__interval for 24 h on a half-width panel
VAR_RE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
REGEX_SPECIAL = set("\\^$.|?*+()[]{}")


def regex_value(values: list[str]) -> str:
    """A multi-value variable as Grafana's InfluxDB source writes it: (a|b), escaped."""
    esc = ["".join("\\" + c if c in REGEX_SPECIAL else c for c in v) for v in values]
    return esc[0] if len(esc) == 1 else "(" + "|".join(esc) + ")"


def interpolate(query: str, variables: dict[str, list[str]], start_ms: int, end_ms: int) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name == "timeFilter":
            return f"time >= {start_ms}ms and time <= {end_ms}ms"
        if name == "__interval":
            return INTERVAL
        if name == "__interval_ms":
            return "300000"
        if name not in variables:
            raise ValueError(f"undefined variable ${name} in {query!r}")
        return regex_value(variables[name])

    return VAR_RE.sub(one, query)


@dataclass
class FleetDay:
    influx: Influx1
    truth: Truth


@pytest.fixture(scope="module")
def fleet_day() -> Iterator[FleetDay]:
    """influxd set up by `klupa influx setup` (so the day lands in `raw`), holding the day."""
    binary = need_program("influxd")
    with tempfile.TemporaryDirectory(prefix="klupa-dash-") as tmp:
        server = Influx1(binary=binary, workdir=Path(tmp))
        server.start()
        try:
            setup(Server(server.url), "benches")
            end = int(time.time()) // 60 * 60
            truth = simulate_day(server.url, default_sites(Path(tmp)), end)
            yield FleetDay(server, truth)
        finally:
            server.kill()
