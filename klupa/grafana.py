"""`klupa grafana dashboards`: the partners' Grafana dashboards, built from the inventory.

Two dashboards, both read InfluxDB in InfluxQL (INTERFACES.md's schema; InfluxDB 1.x natively,
2.x through its v1 API with a DBRP mapping, 3.x natively), never Flux:

- ``fleet``: a map of the benches at the inventory's coordinates, benches online now, state of
  charge, energy harvested and delivered, charging sessions, votes, gateways;
- ``bench``: one bench (``$municipality``, then ``$bench``), everything it reports.

The map needs each bench's latitude and longitude, which InfluxDB does not hold: they go into
the fleet dashboard as a small CSV served by Grafana's built-in TestData data source
(``klupa-sites``) and are joined to the InfluxDB rows by ``bench``. So the committed JSON in
``deploy/grafana/dashboards/`` is this module's output for the default inventory, and a
deployment whose benches moved regenerates it with
``klupa grafana dashboards --deployment DIR --out DIR``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from klupa.argparsing import Parser

INFLUX = {"type": "influxdb", "uid": "klupa-influxdb"}
SITES = {"type": "grafana-testdata-datasource", "uid": "klupa-sites"}
MIXED = {"type": "datasource", "uid": "-- Mixed --"}
DATASOURCES = (INFLUX, SITES)

# bench_status.online is a bool: shown as words and colours, not true/false
ONLINE_MAPPINGS = [
    {
        "type": "value",
        "options": {
            "true": {"text": "online", "color": "green", "index": 0},
            "false": {"text": "offline", "color": "red", "index": 1},
        },
    }
]
FLEET_UID = "klupa-fleet"
BENCH_UID = "klupa-bench"
M = '"municipality" =~ /^$municipality$/'  # multi-value: Grafana writes (a|b) for it
B = "\"bench\" = '$bench'"


@dataclass(frozen=True)
class Site:
    bench: str
    municipality: str
    name: str
    location: str
    lat: float
    lon: float


def sites_of(root: Path) -> list[Site]:
    """Each bench of a deployment folder's inventory, with its municipality's display name."""
    from provisioning.deployment import Deployment

    dep = Deployment(root)
    return [
        Site(b.id, b.municipality, dep.municipality(b.municipality).name, b.location, b.lat, b.lon)
        for b in dep.benches()
    ]


# --------------------------------------------------------------------------- panel builders


class Layout:
    """Places panels left to right on Grafana's 24-column grid and numbers them."""

    def __init__(self) -> None:
        self.x = self.y = self.row_h = 0
        self.panels: list[dict[str, Any]] = []

    def add(self, panel: dict[str, Any], w: int, h: int) -> None:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        panel["id"] = len(self.panels) + 1
        panel["gridPos"] = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        self.panels.append(panel)


def influx_target(
    ref: str, query: str, table: bool = False, alias: str = "", hide: bool = False
) -> dict[str, Any]:
    target: dict[str, Any] = {
        "refId": ref,
        "datasource": dict(INFLUX),
        "rawQuery": True,
        "query": query,
        "resultFormat": "table" if table else "time_series",
    }
    if alias:
        target["alias"] = alias
    if hide:
        target["hide"] = True
    return target


def panel(
    kind: str,
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    unit: str = "none",
    options: dict[str, Any] | None = None,
    defaults: dict[str, Any] | None = None,
    transformations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    sources = {t["datasource"]["uid"] for t in targets}
    out: dict[str, Any] = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": dict(INFLUX) if sources == {INFLUX["uid"]} else dict(MIXED),
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit, **(defaults or {})}, "overrides": []},
        "options": options or {},
    }
    if transformations:
        out["transformations"] = transformations
    return out


def stat(title: str, description: str, query: str, unit: str = "none") -> dict[str, Any]:
    return panel(
        "stat",
        title,
        description,
        [influx_target("A", query)],
        unit,
        {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
    )


def timeseries(
    title: str, description: str, targets: list[dict[str, Any]], unit: str, **defaults: Any
) -> dict[str, Any]:
    options = {
        "legend": {"displayMode": "list", "placement": "bottom"},
        "tooltip": {"mode": "multi"},
    }
    return panel("timeseries", title, description, targets, unit, options, defaults)


def bars(title: str, description: str, query: str, unit: str) -> dict[str, Any]:
    """A bar gauge with one bar per series (a GROUP BY tag), over the whole time range."""
    options = {
        "orientation": "horizontal",
        "displayMode": "gradient",
        "reduceOptions": {"calcs": ["sum"], "fields": "", "values": False},
    }
    return panel("bargauge", title, description, [influx_target("A", query)], unit, options)


def table(title: str, description: str, targets: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return panel("table", title, description, targets, options={"showHeader": True}, **kw)


def sites_csv(sites: list[Site]) -> str:
    lines = ["bench,municipality,name,lat,lon"]
    for s in sites:
        name = s.name.replace('"', "'")
        lines.append(f'{s.bench},{s.municipality},"{name}",{s.lat:.6f},{s.lon:.6f}')
    return "\n".join(lines)


def variable_municipality(multi: bool) -> dict[str, Any]:
    return {
        "name": "municipality",
        "label": "Municipality",
        "type": "query",
        "datasource": dict(INFLUX),
        "query": 'SHOW TAG VALUES FROM "power" WITH KEY = "municipality"',
        "refresh": 1,
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
        "current": {},
    }


# --------------------------------------------------------------------------- the fleet


def fleet_dashboard(sites: list[Site]) -> dict[str, Any]:
    lay = Layout()
    lat = sum(s.lat for s in sites) / len(sites) if sites else 44.0
    lon = sum(s.lon for s in sites) / len(sites) if sites else 17.8
    # One row per bench (table format), joined to the inventory's coordinates by `bench`.
    now_q = (
        'SELECT last("batt_soc") AS "soc", last("state") AS "power_state" FROM "power" '
        f'WHERE {M} AND $timeFilter GROUP BY "bench"'
    )
    status_q = (
        'SELECT last("online") AS "online", last("sleeping") AS "sleeping", last("fw") AS "fw" '
        f'FROM "bench_status" WHERE {M} GROUP BY "bench"'
    )
    sites_target = {
        "refId": "S",
        "datasource": dict(SITES),
        "scenarioId": "csv_content",
        "csvContent": sites_csv(sites),
    }
    geomap = panel(
        "geomap",
        "Benches",
        "Each bench at its inventory coordinates; colour = latest state of charge in the time "
        "range; the tooltip shows its power state, whether the gateway sees it online, firmware.",
        [
            influx_target("A", now_q, table=True),
            influx_target("B", status_q, table=True),
            sites_target,
        ],
        "percent",
        {
            "view": {"id": "coords", "lat": round(lat, 4), "lon": round(lon, 4), "zoom": 7},
            "controls": {"showZoom": True, "mouseWheelZoom": True, "showAttribution": True},
            "basemap": {"type": "default", "name": "Basemap"},
            "layers": [
                {
                    "type": "markers",
                    "name": "Benches",
                    "location": {"mode": "coords", "latitude": "lat", "longitude": "lon"},
                    "tooltip": True,
                    "config": {
                        "showLegend": True,
                        "style": {
                            "color": {"field": "soc", "fixed": "dark-green"},
                            "size": {"fixed": 10},
                            "text": {"field": "bench", "mode": "field"},
                            "textConfig": {"fontSize": 11, "offsetY": -14},
                        },
                    },
                }
            ],
            "tooltip": {"mode": "details"},
        },
        {
            "min": 0,
            "max": 100,
            "color": {"mode": "thresholds"},
            "thresholds": {
                "mode": "absolute",
                "steps": [
                    {"color": "red", "value": None},
                    {"color": "orange", "value": 15},
                    {"color": "green", "value": 40},
                ],
            },
        },
        [{"id": "joinByField", "options": {"byField": "bench", "mode": "outer"}}],
    )
    lay.add(geomap, 12, 14)
    lay.add(
        stat(
            "Benches online now",
            "Benches that sent telemetry in the last 20 minutes (a bench in critical power "
            "state still reports every 15 minutes).",
            'SELECT count("soc") AS "online" FROM (SELECT last("batt_soc") AS "soc" FROM "power" '
            f'WHERE {M} AND time > now() - 20m GROUP BY "bench")',
        ),
        6,
        4,
    )
    lay.add(
        stat(
            "Charging sessions",
            "Phones charged in the time range (one per plug-in, from the session events).",
            f'SELECT count("duration_s") AS "sessions" FROM "session" WHERE {M} AND $timeFilter',
        ),
        6,
        4,
    )
    lay.add(
        stat(
            "Harvested",
            "Solar energy into the batteries of the selected benches in the time range.",
            f'SELECT sum("solar_wh") AS "harvested" FROM "power" WHERE {M} AND $timeFilter',
            "watth",
        ),
        6,
        4,
    )
    lay.add(
        stat(
            "Delivered to phones",
            "Energy the charging ports (USB and wireless) delivered in the time range.",
            f'SELECT sum("wh") AS "delivered" FROM "port" WHERE {M} AND $timeFilter',
            "watth",
        ),
        6,
        4,
    )
    lay.add(
        table(
            "Benches now",
            "The gateway's last word on each bench (online, announced sleeping, firmware).",
            [influx_target("A", status_q, table=True)],
            defaults={"mappings": ONLINE_MAPPINGS},
        ),
        12,
        6,
    )
    lay.add(
        timeseries(
            "State of charge",
            "Battery state of charge per bench, mean per interval.",
            [
                influx_target(
                    "A",
                    f'SELECT mean("batt_soc") FROM "power" WHERE {M} AND $timeFilter '
                    'GROUP BY time($__interval), "bench" fill(none)',
                    alias="$tag_bench",
                )
            ],
            "percent",
            min=0,
            max=100,
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Energy harvested and delivered",
            "Wh per interval over the selected benches: solar harvest, and what the ports "
            "delivered to phones.",
            [
                influx_target(
                    "A",
                    f'SELECT sum("solar_wh") FROM "power" WHERE {M} AND $timeFilter '
                    "GROUP BY time($__interval) fill(0)",
                    alias="harvested",
                ),
                influx_target(
                    "B",
                    f'SELECT sum("wh") FROM "port" WHERE {M} AND $timeFilter '
                    "GROUP BY time($__interval) fill(0)",
                    alias="delivered",
                ),
            ],
            "watth",
        ),
        12,
        8,
    )
    lay.add(
        bars(
            "Harvested per bench",
            "Solar energy per bench in the time range.",
            f'SELECT sum("solar_wh") FROM "power" WHERE {M} AND $timeFilter GROUP BY "bench"',
            "watth",
        ),
        6,
        8,
    )
    lay.add(
        bars(
            "Delivered per bench",
            "Energy delivered to phones per bench in the time range.",
            f'SELECT sum("wh") FROM "port" WHERE {M} AND $timeFilter GROUP BY "bench"',
            "watth",
        ),
        6,
        8,
    )
    lay.add(
        timeseries(
            "Sessions per interval",
            "Charging sessions ended per interval, per bench.",
            [
                influx_target(
                    "A",
                    f'SELECT count("duration_s") FROM "session" WHERE {M} AND $timeFilter '
                    'GROUP BY time($__interval), "bench" fill(none)',
                    alias="$tag_bench",
                )
            ],
            "none",
            custom={"drawStyle": "bars", "fillOpacity": 60, "stacking": {"mode": "normal"}},
        ),
        12,
        8,
    )
    lay.add(
        table(
            "Votes",
            "Votes per poll and choice in the time range, all selected benches together.",
            [
                influx_target(
                    "A",
                    f'SELECT sum("count") AS "votes" FROM "votes" WHERE {M} AND $timeFilter '
                    'GROUP BY "poll", "choice"',
                    table=True,
                )
            ],
        ),
        12,
        8,
    )
    lay.add(
        table(
            "Days",
            "Per bench and local day (Europe/Sarajevo): harvest, delivery, sessions, votes, "
            "and the share of the day the bench was online or announced sleeping.",
            [
                influx_target(
                    "A",
                    'SELECT "solar_wh", "charge_wh", "sessions", "votes", "uptime_pct" '
                    f'FROM "daily" WHERE {M} AND $timeFilter GROUP BY "bench"',
                    table=True,
                )
            ],
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Gateways: forwarding lag",
            "Seconds the oldest record waits at each municipality's gateway; a lag that only "
            "grows means a sink is failing (docs/operations.md).",
            [
                influx_target(
                    "A",
                    f'SELECT max("forward_lag_s") FROM "gateway" WHERE {M} AND $timeFilter '
                    'GROUP BY time($__interval), "municipality" fill(none)',
                    alias="$tag_municipality",
                )
            ],
            "s",
        ),
        12,
        8,
    )
    return dashboard(
        FLEET_UID,
        "klupa: fleet",
        [variable_municipality(multi=True)],
        lay.panels,
    )


# --------------------------------------------------------------------------- one bench


def bench_dashboard() -> dict[str, Any]:
    lay = Layout()
    w = f"{M} AND {B} AND $timeFilter"
    per = "GROUP BY time($__interval) fill(none)"
    online = stat(
        "Online",
        "The gateway's last status for this bench: online, or offline (its will fired, or "
        "it fell silent, or did not wake when it said it would).",
        f'SELECT last("online") AS "online" FROM "bench_status" WHERE {M} AND {B}',
    )
    online["fieldConfig"]["defaults"]["mappings"] = ONLINE_MAPPINGS
    lay.add(online, 4, 4)
    lay.add(
        stat(
            "State of charge",
            "Latest battery state of charge in the time range.",
            f'SELECT last("batt_soc") AS "soc" FROM "power" WHERE {w}',
            "percent",
        ),
        4,
        4,
    )
    lay.add(
        stat(
            "Harvested",
            "Solar energy in the time range.",
            f'SELECT sum("solar_wh") AS "harvested" FROM "power" WHERE {w}',
            "watth",
        ),
        4,
        4,
    )
    lay.add(
        stat(
            "Delivered",
            "Energy delivered to phones in the time range.",
            f'SELECT sum("wh") AS "delivered" FROM "port" WHERE {w}',
            "watth",
        ),
        4,
        4,
    )
    lay.add(
        stat(
            "Sessions",
            "Phones charged in the time range.",
            f'SELECT count("duration_s") AS "sessions" FROM "session" WHERE {w}',
        ),
        4,
        4,
    )
    lay.add(
        stat(
            "Votes",
            "Votes cast at this bench in the time range.",
            f'SELECT sum("count") AS "votes" FROM "votes" WHERE {w}',
        ),
        4,
        4,
    )
    lay.add(
        timeseries(
            "Battery",
            "State of charge (left) and battery voltage.",
            [
                influx_target(
                    "A", f'SELECT mean("batt_soc") FROM "power" WHERE {w} {per}', alias="SoC"
                ),
                influx_target(
                    "B", f'SELECT mean("batt_v") FROM "power" WHERE {w} {per}', alias="V"
                ),
            ],
            "percent",
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Currents",
            "Panel current and battery current (+ charging, − discharging), mean per interval.",
            [
                influx_target(
                    "A",
                    f'SELECT mean("solar_a") AS "solar", mean("batt_a") AS "battery" '
                    f'FROM "power" WHERE {w} {per}',
                    alias="$col",
                )
            ],
            "amp",
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Port current",
            "Mean current per charging port (USB and wireless pad).",
            [
                influx_target(
                    "A",
                    f'SELECT mean("a") FROM "port" WHERE {w} GROUP BY time($__interval), "port" '
                    "fill(none)",
                    alias="port $tag_port",
                )
            ],
            "amp",
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Seat and touchpad",
            "Seconds the seat was occupied and touchpad presses, per interval.",
            [
                influx_target(
                    "A",
                    f'SELECT sum("seat_occ_s") AS "seat_s", sum("touches") AS "touches" '
                    f'FROM "usage" WHERE {w} {per}',
                    alias="$col",
                )
            ],
            "none",
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Link and controller",
            "Uplink RSSI (dBm), devices on the bench's access point, lowest free heap (bytes).",
            [
                influx_target(
                    "A",
                    f'SELECT mean("rssi") AS "rssi", max("clients") AS "clients" FROM "link" '
                    f"WHERE {w} {per}",
                    alias="$col",
                ),
                influx_target("B", f'SELECT min("heap") FROM "link" WHERE {w} {per}', alias="heap"),
            ],
            "none",
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Air",
            "Temperature (°C) and relative humidity (%) where the board has the sensor.",
            [
                influx_target(
                    "A",
                    f'SELECT mean("temp_c") AS "temp_c", mean("rh") AS "rh" FROM "env" '
                    f"WHERE {w} {per}",
                    alias="$col",
                )
            ],
            "none",
        ),
        12,
        8,
    )
    lay.add(
        table(
            "Charging sessions",
            "Each phone charged: port, minutes, Wh.",
            [
                influx_target(
                    "A",
                    f'SELECT "port", "duration_s", "wh" FROM "session" WHERE {w} '
                    "ORDER BY time DESC LIMIT 200",
                    table=True,
                )
            ],
        ),
        12,
        8,
    )
    lay.add(
        table(
            "Events",
            "Boots, power-state changes, faults, clock corrections, updates, tamper.",
            [
                influx_target(
                    "A",
                    f'SELECT "type", "code", "detail" FROM "event" WHERE {w} '
                    "ORDER BY time DESC LIMIT 200",
                    table=True,
                )
            ],
        ),
        12,
        8,
    )
    lay.add(
        table(
            "Votes per choice",
            "Votes per poll and choice at this bench in the time range.",
            [
                influx_target(
                    "A",
                    f'SELECT sum("count") AS "votes" FROM "votes" WHERE {w} '
                    'GROUP BY "poll", "choice"',
                    table=True,
                )
            ],
        ),
        12,
        8,
    )
    lay.add(
        table(
            "Days",
            "Per local day: harvest, delivery, sessions, seat time, touches, votes, uptime.",
            [
                influx_target(
                    "A",
                    'SELECT "solar_wh", "charge_wh", "sessions", "seat_occ_s", "touches", '
                    f'"votes", "uptime_pct" FROM "daily" WHERE {w}',
                    table=True,
                )
            ],
        ),
        24,
        8,
    )
    bench_var = {
        "name": "bench",
        "label": "Bench",
        "type": "query",
        "datasource": dict(INFLUX),
        "query": 'SHOW TAG VALUES FROM "power" WITH KEY = "bench" WHERE ' + M,
        "refresh": 1,
        "sort": 1,
        "multi": False,
        "includeAll": False,
        "current": {},
    }
    return dashboard(
        BENCH_UID,
        "klupa: bench",
        [variable_municipality(multi=False), bench_var],
        lay.panels,
    )


def dashboard(
    uid: str, title: str, variables: list[dict[str, Any]], panels: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "tags": ["klupa"],
        "editable": False,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-24h", "to": "now"},
        "timezone": "browser",
        "refresh": "1m",
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [
            {
                "type": "dashboards",
                "title": "klupa",
                "tags": ["klupa"],
                "asDropdown": False,
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "panels": panels,
    }


def write_dashboards(sites: list[Site], out: Path) -> list[Path]:
    """Write fleet.json and bench.json into ``out``; returns the files whose content changed."""
    out.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, board in (("fleet", fleet_dashboard(sites)), ("bench", bench_dashboard())):
        path = out / f"{name}.json"
        text = json.dumps(board, indent=2, ensure_ascii=False) + "\n"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def main(argv: list[str]) -> int:
    parser = Parser(prog="klupa grafana", description="Grafana dashboards for partners")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser(
        "dashboards",
        help="write fleet.json and bench.json from a deployment's inventory",
        description="Write the Grafana dashboards (fleet.json, bench.json) for the benches of "
        "a deployment's inventory.toml; provision them as docs/dashboards.md says.",
    )
    p.add_argument("--deployment", type=Path, required=True, help="deployment folder")
    p.add_argument("--out", type=Path, required=True, help="folder for the JSON files")
    args = parser.parse_args(argv)
    from provisioning.deployment import DeploymentError

    try:
        sites = sites_of(args.deployment)
    except DeploymentError as exc:
        print(f"klupa grafana: {exc}", file=sys.stderr)
        return 2
    if not sites:
        print(f"klupa grafana: no benches in {args.deployment}/inventory.toml", file=sys.stderr)
        return 2
    changed = write_dashboards(sites, args.out)
    for path in (args.out / "fleet.json", args.out / "bench.json"):
        print(f"{path}: {'written' if path in changed else 'unchanged'}")
    print(f"{len(sites)} benches on the map")
    return 0
