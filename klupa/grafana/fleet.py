"""The fleet dashboard: the benches on a map, online, charge, energy, sessions, votes, gateways.

The map needs each bench's latitude and longitude, which InfluxDB does not hold: they go into
the dashboard as a small CSV served by Grafana's built-in TestData data source (``klupa-sites``)
and are joined to the InfluxDB rows by ``bench``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from klupa.grafana.panels import (
    FLEET_UID,
    ONLINE_MAPPINGS,
    SITES,
    Layout,
    M,
    Placed,
    bars,
    dashboard,
    influx_target,
    panel,
    stat,
    table,
    timeseries,
    variable_municipality,
)


@dataclass(frozen=True)
class Site:
    bench: str
    municipality: str
    name: str
    location: str
    lat: float
    lon: float


def sites_csv(sites: list[Site]) -> str:
    lines = ["bench,municipality,name,lat,lon"]
    for s in sites:
        name = s.name.replace('"', "'")
        lines.append(f'{s.bench},{s.municipality},"{name}",{s.lat:.6f},{s.lon:.6f}')
    return "\n".join(lines)


# The gateway's last word on each bench, one row a bench (the map's tooltip, "Benches now").
STATUS_Q = (
    'SELECT last("online") AS "online", last("sleeping") AS "sleeping", last("fw") AS "fw" '
    f'FROM "bench_status" WHERE {M} GROUP BY "bench"'
)


def fleet_dashboard(sites: list[Site]) -> dict[str, Any]:
    lay = Layout(
        [(_map(sites), 12, 14)], _totals(), _state_and_energy(), _per_bench(), _votes_days_and_lag()
    )
    return dashboard(
        FLEET_UID,
        "klupa: fleet",
        [variable_municipality(multi=True)],
        lay.panels,
    )


def _map(sites: list[Site]) -> dict[str, Any]:
    """The benches at their inventory coordinates, coloured by state of charge."""
    lat = sum(s.lat for s in sites) / len(sites) if sites else 44.0
    lon = sum(s.lon for s in sites) / len(sites) if sites else 17.8
    # One row per bench (table format), joined to the inventory's coordinates by `bench`.
    now_q = (
        'SELECT last("batt_soc") AS "soc", last("state") AS "power_state" FROM "power" '
        f'WHERE {M} AND $timeFilter GROUP BY "bench"'
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
            influx_target("B", STATUS_Q, table=True),
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
    return geomap


# Benches online now, and the time range's totals; 6 wide and 4 high each:
# (title, description, query, unit)
TOTALS = [
    (
        "Benches online now",
        "Benches that sent telemetry in the last 20 minutes (a bench in critical power "
        "state still reports every 15 minutes).",
        'SELECT count("soc") AS "online" FROM (SELECT last("batt_soc") AS "soc" FROM "power" '
        f'WHERE {M} AND time > now() - 20m GROUP BY "bench")',
        "none",
    ),
    (
        "Charging sessions",
        "Phones charged in the time range (one per plug-in, from the session events).",
        f'SELECT count("duration_s") AS "sessions" FROM "session" WHERE {M} AND $timeFilter',
        "none",
    ),
    (
        "Harvested",
        "Solar energy into the batteries of the selected benches in the time range.",
        f'SELECT sum("solar_wh") AS "harvested" FROM "power" WHERE {M} AND $timeFilter',
        "watth",
    ),
    (
        "Delivered to phones",
        "Energy the charging ports (USB and wireless) delivered in the time range.",
        f'SELECT sum("wh") AS "delivered" FROM "port" WHERE {M} AND $timeFilter',
        "watth",
    ),
]


def _totals() -> list[Placed]:
    """Benches online now, and the time range's sessions, harvest and delivery."""
    return [(stat(*row), 6, 4) for row in TOTALS]


def _state_and_energy() -> list[Placed]:
    """Each bench now, state of charge over time, energy over time."""
    now = table(
        "Benches now",
        "The gateway's last word on each bench (online, announced sleeping, firmware).",
        STATUS_Q,
        defaults={"mappings": ONLINE_MAPPINGS},
    )
    soc = _per_tag(
        "State of charge",
        "Battery state of charge per bench, mean per interval.",
        'SELECT mean("batt_soc") FROM "power"',
        "bench",
        "percent",
        min=0,
        max=100,
    )
    energy = timeseries(
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
    )
    return [(now, 12, 6), (soc, 12, 8), (energy, 12, 8)]


def _per_bench() -> list[Placed]:
    """Harvest and delivery per bench, sessions per interval."""
    harvested = bars(
        "Harvested per bench",
        "Solar energy per bench in the time range.",
        f'SELECT sum("solar_wh") FROM "power" WHERE {M} AND $timeFilter GROUP BY "bench"',
        "watth",
    )
    delivered = bars(
        "Delivered per bench",
        "Energy delivered to phones per bench in the time range.",
        f'SELECT sum("wh") FROM "port" WHERE {M} AND $timeFilter GROUP BY "bench"',
        "watth",
    )
    sessions = _per_tag(
        "Sessions per interval",
        "Charging sessions ended per interval, per bench.",
        'SELECT count("duration_s") FROM "session"',
        "bench",
        "none",
        custom={"drawStyle": "bars", "fillOpacity": 60, "stacking": {"mode": "normal"}},
    )
    return [(harvested, 6, 8), (delivered, 6, 8), (sessions, 12, 8)]


def _votes_days_and_lag() -> list[Placed]:
    """Votes per poll and choice, the daily figures per bench, the gateways' forwarding lag."""
    votes = table(
        "Votes",
        "Votes per poll and choice in the time range, all selected benches together.",
        f'SELECT sum("count") AS "votes" FROM "votes" WHERE {M} AND $timeFilter '
        'GROUP BY "poll", "choice"',
    )
    days = table(
        "Days",
        "Per bench and local day (Europe/Sarajevo): harvest, delivery, sessions, votes, "
        "and the share of the day the bench was online or announced sleeping.",
        'SELECT "solar_wh", "charge_wh", "sessions", "votes", "uptime_pct" '
        f'FROM "daily" WHERE {M} AND $timeFilter GROUP BY "bench"',
    )
    lag = _per_tag(
        "Gateways: forwarding lag",
        "Seconds the oldest record waits at each municipality's gateway; a lag that only "
        "grows means a sink is failing (docs/operations.md).",
        'SELECT max("forward_lag_s") FROM "gateway"',
        "municipality",
        "s",
    )
    return [(votes, 12, 8), (days, 12, 8), (lag, 12, 8)]


def _per_tag(
    title: str, description: str, select: str, tag: str, unit: str, **defaults: Any
) -> dict[str, Any]:
    """A chart of one series per value of ``tag`` (a bench, a municipality), per interval.

    ``select`` is the query up to its ``FROM``: the dashboard's municipalities and time range
    and the grouping are added here.
    """
    query = f'{select} WHERE {M} AND $timeFilter GROUP BY time($__interval), "{tag}" fill(none)'
    return timeseries(
        title, description, [influx_target("A", query, alias=f"$tag_{tag}")], unit, **defaults
    )
