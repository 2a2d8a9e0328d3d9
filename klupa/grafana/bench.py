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
    lay = Layout()
    _totals(lay)
    _power_charts(lay)
    _use_and_link_charts(lay)
    _tables(lay)
    return dashboard(
        BENCH_UID,
        "klupa: bench",
        [variable_municipality(multi=False), _bench_variable()],
        lay.panels,
    )


def _totals(lay: Layout) -> None:
    """The top row: online, state of charge and the time range's totals."""
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
            f'SELECT last("batt_soc") AS "soc" FROM "power" WHERE {W}',
            "percent",
        ),
        4,
        4,
    )
    lay.add(
        stat(
            "Harvested",
            "Solar energy in the time range.",
            f'SELECT sum("solar_wh") AS "harvested" FROM "power" WHERE {W}',
            "watth",
        ),
        4,
        4,
    )
    lay.add(
        stat(
            "Delivered",
            "Energy delivered to phones in the time range.",
            f'SELECT sum("wh") AS "delivered" FROM "port" WHERE {W}',
            "watth",
        ),
        4,
        4,
    )
    lay.add(
        stat(
            "Sessions",
            "Phones charged in the time range.",
            f'SELECT count("duration_s") AS "sessions" FROM "session" WHERE {W}',
        ),
        4,
        4,
    )
    lay.add(
        stat(
            "Votes",
            "Votes cast at this bench in the time range.",
            f'SELECT sum("count") AS "votes" FROM "votes" WHERE {W}',
        ),
        4,
        4,
    )


def _power_charts(lay: Layout) -> None:
    """Battery, panel and port currents over time."""
    lay.add(
        timeseries(
            "Battery",
            "State of charge (left) and battery voltage.",
            [
                influx_target(
                    "A", f'SELECT mean("batt_soc") FROM "power" WHERE {W} {PER}', alias="SoC"
                ),
                influx_target(
                    "B", f'SELECT mean("batt_v") FROM "power" WHERE {W} {PER}', alias="V"
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
                    f'FROM "power" WHERE {W} {PER}',
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
                    f'SELECT mean("a") FROM "port" WHERE {W} GROUP BY time($__interval), "port" '
                    "fill(none)",
                    alias="port $tag_port",
                )
            ],
            "amp",
        ),
        12,
        8,
    )


def _use_and_link_charts(lay: Layout) -> None:
    """Seat and touchpad, the uplink and controller, the air."""
    lay.add(
        timeseries(
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
                    f"WHERE {W} {PER}",
                    alias="$col",
                ),
                influx_target("B", f'SELECT min("heap") FROM "link" WHERE {W} {PER}', alias="heap"),
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
                    f"WHERE {W} {PER}",
                    alias="$col",
                )
            ],
            "none",
        ),
        12,
        8,
    )


def _tables(lay: Layout) -> None:
    """Charging sessions, events, votes per choice and days."""
    lay.add(
        table(
            "Charging sessions",
            "Each phone charged: port, minutes, Wh.",
            f'SELECT "port", "duration_s", "wh" FROM "session" WHERE {W} '
            "ORDER BY time DESC LIMIT 200",
        ),
        12,
        8,
    )
    lay.add(
        table(
            "Events",
            "Boots, power-state changes, faults, clock corrections, updates, tamper.",
            f'SELECT "type", "code", "detail" FROM "event" WHERE {W} ORDER BY time DESC LIMIT 200',
        ),
        12,
        8,
    )
    lay.add(
        table(
            "Votes per choice",
            "Votes per poll and choice at this bench in the time range.",
            f'SELECT sum("count") AS "votes" FROM "votes" WHERE {W} GROUP BY "poll", "choice"',
        ),
        12,
        8,
    )
    lay.add(
        table(
            "Days",
            "Per local day: harvest, delivery, sessions, seat time, touches, votes, uptime.",
            'SELECT "solar_wh", "charge_wh", "sessions", "seat_occ_s", "touches", '
            f'"votes", "uptime_pct" FROM "daily" WHERE {W}',
        ),
        24,
        8,
    )


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
