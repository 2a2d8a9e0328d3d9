"""The pieces both dashboards are made of: data sources, panel and target builders, layout.

Queries are raw InfluxQL (``rawQuery``), in docs/interfaces.md's schema. ``$municipality`` is
matched as a regex (``=~ /^$municipality$/``) because Grafana writes a multi-value or *All*
selection as ``(a|b)``; ``$bench`` is a single value.
"""

from __future__ import annotations

from typing import Any

INFLUX = {"type": "influxdb", "uid": "klupa-influxdb"}
SITES = {"type": "grafana-testdata-datasource", "uid": "klupa-sites"}
MIXED = {"type": "datasource", "uid": "-- Mixed --"}

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

# --------------------------------------------------------------------------- panel builders


# A panel and its size on the grid: (panel, width in columns, height in rows)
Placed = tuple[dict[str, Any], int, int]


class Layout:
    """Places panels left to right on Grafana's 24-column grid and numbers them."""

    def __init__(self, *sections: list[Placed]) -> None:
        self.x = self.y = self.row_h = 0
        self.panels: list[dict[str, Any]] = []
        for section in sections:
            for placed in section:
                self.add(*placed)

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


def table(title: str, description: str, query: str, **kw: Any) -> dict[str, Any]:
    """A table of the rows one query returns."""
    target = influx_target("A", query, table=True)
    return panel("table", title, description, [target], options={"showHeader": True}, **kw)


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
