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
    lay = Layout()
    lay.add(_map(sites), 12, 14)
    _totals(lay)
    _state_and_energy(lay)
    _per_bench(lay)
    _votes_and_days(lay)
    _gateways(lay)
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


def _totals(lay: Layout) -> None:
    """Benches online now, and the time range's sessions, harvest and delivery."""
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


def _state_and_energy(lay: Layout) -> None:
    """Each bench now, state of charge over time, energy over time."""
    lay.add(
        table(
            "Benches now",
            "The gateway's last word on each bench (online, announced sleeping, firmware).",
            STATUS_Q,
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


def _per_bench(lay: Layout) -> None:
    """Harvest and delivery per bench, sessions per interval."""
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


def _votes_and_days(lay: Layout) -> None:
    """Votes per poll and choice, and the daily figures per bench."""
    lay.add(
        table(
            "Votes",
            "Votes per poll and choice in the time range, all selected benches together.",
            f'SELECT sum("count") AS "votes" FROM "votes" WHERE {M} AND $timeFilter '
            'GROUP BY "poll", "choice"',
        ),
        12,
        8,
    )
    lay.add(
        table(
            "Days",
            "Per bench and local day (Europe/Sarajevo): harvest, delivery, sessions, votes, "
            "and the share of the day the bench was online or announced sleeping.",
            'SELECT "solar_wh", "charge_wh", "sessions", "votes", "uptime_pct" '
            f'FROM "daily" WHERE {M} AND $timeFilter GROUP BY "bench"',
        ),
        12,
        8,
    )


def _gateways(lay: Layout) -> None:
    """How far behind each municipality's gateway forwards."""
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
