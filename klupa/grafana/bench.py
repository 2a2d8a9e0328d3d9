"""The bench dashboard: one bench (``$municipality``, then ``$bench``), all it reports."""

from __future__ import annotations

from typing import Any

from klupa.grafana.panels import (
    BENCH_UID,
    INFLUX,
    ONLINE_MAPPINGS,
    B,
    Layout,
    M,
    Placed,
    dashboard,
    influx_target,
    stat,
    table,
    timeseries,
    variable_municipality,
)

# Every query of one bench: its municipality, the bench, the dashboard's time range.
W = f"{M} AND {B} AND $timeFilter"
PER = "GROUP BY time($__interval) fill(none)"


def bench_dashboard() -> dict[str, Any]:
    lay = Layout(_totals(), _charts(), _tables())
    return dashboard(
        BENCH_UID,
        "klupa: bench",
        [variable_municipality(multi=False), _bench_variable()],
        lay.panels,
    )


# The top row after "Online", 4 wide and 4 high each: (title, description, query, unit)
TOTALS = [
    (
        "State of charge",
        "Latest battery state of charge in the time range.",
        f'SELECT last("batt_soc") AS "soc" FROM "power" WHERE {W}',
        "percent",
    ),
    (
        "Harvested",
        "Solar energy in the time range.",
        f'SELECT sum("solar_wh") AS "harvested" FROM "power" WHERE {W}',
        "watth",
    ),
    (
        "Delivered",
        "Energy delivered to phones in the time range.",
        f'SELECT sum("wh") AS "delivered" FROM "port" WHERE {W}',
        "watth",
    ),
    (
        "Sessions",
        "Phones charged in the time range.",
        f'SELECT count("duration_s") AS "sessions" FROM "session" WHERE {W}',
        "none",
    ),
    (
        "Votes",
        "Votes cast at this bench in the time range.",
        f'SELECT sum("count") AS "votes" FROM "votes" WHERE {W}',
        "none",
    ),
]


def _totals() -> list[Placed]:
    """The top row: online, state of charge and the time range's totals."""
    online = stat(
        "Online",
        "The gateway's last status for this bench: online, or offline (its will fired, or "
        "it fell silent, or did not wake when it said it would).",
        f'SELECT last("online") AS "online" FROM "bench_status" WHERE {M} AND {B}',
    )
    online["fieldConfig"]["defaults"]["mappings"] = ONLINE_MAPPINGS
    return [(online, 4, 4)] + [(stat(*row), 4, 4) for row in TOTALS]


# The charts, two a row, 12 wide and 8 high each: (title, description, targets, unit);
# "$col" names each series after its column.
CHARTS = [
    # battery, panel and port currents over time
    (
        "Battery",
        "State of charge (left) and battery voltage.",
        [
            influx_target(
                "A", f'SELECT mean("batt_soc") FROM "power" WHERE {W} {PER}', alias="SoC"
            ),
            influx_target("B", f'SELECT mean("batt_v") FROM "power" WHERE {W} {PER}', alias="V"),
        ],
        "percent",
    ),
    (
        "Currents",
        "Panel current and battery current (+ charging, − discharging), mean per interval.",
        [
            influx_target(
                "A",
                f'SELECT mean("solar_a") AS "solar", mean("batt_a") AS "battery" '
                f'FROM "power" WHERE {W} {PER}',
                alias="$col",
            )
        ],
        "amp",
    ),
    (
        "Port current",
        "Mean current per charging port (USB and wireless pad).",
        [
            influx_target(
                "A",
                f'SELECT mean("a") FROM "port" WHERE {W} GROUP BY time($__interval), "port" '
                "fill(none)",
                alias="port $tag_port",
            )
        ],
        "amp",
    ),
    # seat and touchpad, the uplink and controller, the air
    (
        "Seat and touchpad",
        "Seconds the seat was occupied and touchpad presses, per interval.",
        [
            influx_target(
                "A",
                f'SELECT sum("seat_occ_s") AS "seat_s", sum("touches") AS "touches" '
                f'FROM "usage" WHERE {W} {PER}',
                alias="$col",
            )
        ],
        "none",
    ),
    (
        "Link and controller",
        "Uplink RSSI (dBm), devices on the bench's access point, lowest free heap (bytes).",
        [
            influx_target(
                "A",
                f'SELECT mean("rssi") AS "rssi", max("clients") AS "clients" FROM "link" '
                f"WHERE {W} {PER}",
                alias="$col",
            ),
            influx_target("B", f'SELECT min("heap") FROM "link" WHERE {W} {PER}', alias="heap"),
        ],
        "none",
    ),
    (
        "Air",
        "Temperature (°C) and relative humidity (%) where the board has the sensor.",
        [
            influx_target(
                "A",
                f'SELECT mean("temp_c") AS "temp_c", mean("rh") AS "rh" FROM "env" WHERE {W} {PER}',
                alias="$col",
            )
        ],
        "none",
    ),
]


def _charts() -> list[Placed]:
    """Battery, currents, ports; seat and touchpad, link and controller, air."""
    return [(timeseries(*row), 12, 8) for row in CHARTS]


# The tables, 12 wide (Days: the whole row) and 8 high: (title, description, query, width)
TABLES = [
    (
        "Charging sessions",
        "Each phone charged: port, minutes, Wh.",
        f'SELECT "port", "duration_s", "wh" FROM "session" WHERE {W} ORDER BY time DESC LIMIT 200',
        12,
    ),
    (
        "Events",
        "Boots, power-state changes, faults, clock corrections, updates, tamper.",
        f'SELECT "type", "code", "detail" FROM "event" WHERE {W} ORDER BY time DESC LIMIT 200',
        12,
    ),
    (
        "Votes per choice",
        "Votes per poll and choice at this bench in the time range.",
        f'SELECT sum("count") AS "votes" FROM "votes" WHERE {W} GROUP BY "poll", "choice"',
        12,
    ),
    (
        "Days",
        "Per local day: harvest, delivery, sessions, seat time, touches, votes, uptime.",
        'SELECT "solar_wh", "charge_wh", "sessions", "seat_occ_s", "touches", '
        f'"votes", "uptime_pct" FROM "daily" WHERE {W}',
        24,
    ),
]


def _tables() -> list[Placed]:
    """Charging sessions, events, votes per choice and days."""
    return [(table(title, about, query), w, 8) for title, about, query, w in TABLES]


def _bench_variable() -> dict[str, Any]:
    """`$bench`: the benches of `$municipality` that report power."""
    return {
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
