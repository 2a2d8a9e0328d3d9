"""deploy/grafana: every panel's query runs on real InfluxDB 1.x holding a simulated day.

No Grafana runs here, so the test does what Grafana does with a panel: substitutes the template
variables, ``$timeFilter`` and ``$__interval`` into the InfluxQL, sends it to ``/query``, and
reads the series. Each query's answer is checked against what the simulated day holds (its
sums, counts and last values), not only for being non-empty.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_gateway.store import day_bounds
from klupa.cli import main as cli_main
from klupa.grafana import bench_dashboard, fleet_dashboard, write_dashboards
from provisioning.deployment import inventory_text
from testkit.fleet_day import (
    OFFLINE,
    VAR_RE,
    FleetDay,
    Truth,
    default_sites,
    interpolate,
)

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
BUILTINS = {"timeFilter", "__interval", "__interval_ms", "col"}

Series = list[dict[str, Any]]


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        name: json.loads((GRAFANA / "dashboards" / f"{name}.json").read_text())
        for name in ("fleet", "bench")
    }


def influx_targets(board: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [
        (p, t)
        for p in board["panels"]
        for t in p["targets"]
        if t["datasource"]["type"] == "influxdb"
    ]


# --------------------------------------------------------------------------- answers


def run(day: FleetDay, query: str) -> Series:
    """The query's series, with Grafana's own check: an error fails the panel."""
    body = day.influx.query(query, "benches")
    results = body["results"]
    assert len(results) == 1, query
    assert "error" not in results[0], f"{query}: {results[0].get('error')}"
    series: Series = results[0].get("series", [])
    return series


def select_columns(query: str) -> list[str]:
    """The column names a SELECT returns: time, then each item's alias, function or field."""
    head = query.split(" FROM ", 1)[0].removeprefix("SELECT ")
    items, depth, cur = [], 0, ""
    for ch in head:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            items.append(cur.strip())
            cur = ""
        else:
            cur += ch
    items.append(cur.strip())
    names = []
    for item in items:
        alias = re.search(r'\bAS "(\w+)"$', item)
        func = re.match(r"(\w+)\(", item)
        names.append(alias.group(1) if alias else func.group(1) if func else item.strip('"'))
    return ["time", *names]


def column(series: Series, name: str) -> list[Any]:
    return [row[s["columns"].index(name)] for s in series for row in s["values"]]


def by_tag(series: Series, tag: str, col: str, reduce: Callable[[list[Any]], Any] = sum) -> dict:
    out = {}
    for s in series:
        i = s["columns"].index(col)
        out[s["tags"][tag]] = reduce([row[i] for row in s["values"] if row[i] is not None])
    return out


# --------------------------------------------------------------------------- expectations

Check = Callable[[Series, Truth, list[str]], None]


def approx(a: float, b: float) -> bool:
    return a == pytest.approx(b, rel=1e-6, abs=1e-3)


def total(counter: Mapping[str, float], benches: list[str]) -> float:
    return sum(counter[b] for b in benches)


def check_online_now(s: Series, t: Truth, benches: list[str]) -> None:
    assert column(s, "online") == [len([b for b in benches if b != OFFLINE])]


def check_online_status(s: Series, t: Truth, benches: list[str]) -> None:
    online = by_tag(s, "bench", "online", lambda v: v[-1])
    assert online == {b: b != OFFLINE for b in benches}
    assert set(by_tag(s, "bench", "fw", lambda v: v[-1]).values()) == {"1.2.0"}


def check_sum_of(counter: str, col: str) -> Check:
    def check(s: Series, t: Truth, benches: list[str]) -> None:
        assert approx(
            sum(v for v in column(s, col) if v is not None), total(getattr(t, counter), benches)
        )
        assert total(getattr(t, counter), benches) > 0, "the day should hold some of it"

    return check


def check_per_bench_sum(counter: str, col: str) -> Check:
    def check(s: Series, t: Truth, benches: list[str]) -> None:
        got = by_tag(s, "bench", col)
        want = getattr(t, counter)
        assert set(got) == {b for b in benches if want[b]}
        for b, v in got.items():
            assert approx(v, want[b]), b

    return check


def check_soc_series(s: Series, t: Truth, benches: list[str]) -> None:
    last = by_tag(s, "bench", "mean", lambda v: v[-1])
    assert set(last) == set(benches)
    assert all(0 <= v <= 100 for v in column(s, "mean") if v is not None)
    # the last 5-minute bucket holds exactly the last window's reading
    for b, v in last.items():
        assert approx(v, t.last_soc[b])


def check_last_soc(col: str) -> Check:
    def check(s: Series, t: Truth, benches: list[str]) -> None:
        got = {(x.get("tags") or {}).get("bench", benches[0]): x["values"][-1][1] for x in s}
        assert got == {b: t.last_soc[b] for b in benches}

    return check


def check_votes(s: Series, t: Truth, benches: list[str]) -> None:
    got = {(x["tags"]["poll"], x["tags"]["choice"]): x["values"][0][1] for x in s}
    want: Counter[tuple[str, str]] = Counter()
    for (b, poll, choice), n in t.votes.items():
        if b in benches:
            want[(poll, choice)] += n
    assert got == dict(want) and want


def check_days(s: Series, t: Truth, benches: list[str]) -> None:
    rows = {}
    for x in s:
        cols = x["columns"]
        b = (x.get("tags") or {}).get("bench", benches[0])
        for v in x["values"]:
            rows[(b, v[0])] = dict(zip(cols, v, strict=True))
    assert {b for b, _ in rows} == set(benches)
    for (b, ts), row in rows.items():
        want = next(d for (tb, day), d in t.daily.items() if tb == b and _midnight(day) == ts)
        for k in ("solar_wh", "charge_wh", "sessions", "votes", "uptime_pct"):
            assert approx(row[k], want[k]), (b, k)
        assert 0 <= row["uptime_pct"] <= 100


def _midnight(day: str) -> int:
    return int(day_bounds(day)[0])


def check_gateways(s: Series, t: Truth, benches: list[str]) -> None:
    assert {x["tags"]["municipality"] for x in s} == {t.municipality(b) for b in benches}
    assert set(column(s, "max")) <= {0.5, None}


def check_range(col: str, lo: float = 0, hi: float = 1e9) -> Check:
    def check(s: Series, t: Truth, benches: list[str]) -> None:
        values = [v for v in column(s, col) if v is not None]
        assert values and all(lo <= v <= hi for v in values), col

    return check


def check_sum_of_days(field: str, col: str) -> Check:
    """The range holds the whole simulated day, so a sum over it is the days' sum."""

    def check(s: Series, t: Truth, benches: list[str]) -> None:
        want = sum(d[field] for (b, _), d in t.daily.items() if b in benches)
        assert want > 0 and approx(sum(v for v in column(s, col) if v is not None), want)

    return check


def check_all(*checks: Check) -> Check:
    def check(s: Series, t: Truth, benches: list[str]) -> None:
        for c in checks:
            c(s, t, benches)

    return check


def check_session_rows(s: Series, t: Truth, benches: list[str]) -> None:
    assert len(column(s, "wh")) == t.sessions[benches[0]] > 0
    assert all(int(p) >= 1 for p in column(s, "port"))
    assert all(d > 0 for d in column(s, "duration_s"))


def check_events(s: Series, t: Truth, benches: list[str]) -> None:
    types = column(s, "type")
    assert len(types) == t.events[benches[0]] and "boot" in types


def check_bench_online(s: Series, t: Truth, benches: list[str]) -> None:
    assert column(s, "online") == [benches[0] != OFFLINE]


def check_votes_total(s: Series, t: Truth, benches: list[str]) -> None:
    assert column(s, "votes") == [sum(n for (b, _, _), n in t.votes.items() if b in benches)]


FLEET, BENCH = "klupa-fleet", "klupa-bench"

# (dashboard uid, panel title, refId) -> check; an InfluxDB target without one fails the test
CHECKS: dict[tuple[str, str, str], Check] = {
    (FLEET, "Benches", "A"): check_all(check_last_soc("soc"), check_range("soc", 0, 100)),
    (FLEET, "Benches", "B"): check_online_status,
    (FLEET, "Benches online now", "A"): check_online_now,
    (FLEET, "Charging sessions", "A"): check_sum_of("sessions", "sessions"),
    (FLEET, "Harvested", "A"): check_sum_of("solar_wh", "harvested"),
    (FLEET, "Delivered to phones", "A"): check_sum_of("port_wh", "delivered"),
    (FLEET, "Benches now", "A"): check_online_status,
    (FLEET, "State of charge", "A"): check_soc_series,
    (FLEET, "Energy harvested and delivered", "A"): check_sum_of("solar_wh", "sum"),
    (FLEET, "Energy harvested and delivered", "B"): check_sum_of("port_wh", "sum"),
    (FLEET, "Harvested per bench", "A"): check_per_bench_sum("solar_wh", "sum"),
    (FLEET, "Delivered per bench", "A"): check_per_bench_sum("port_wh", "sum"),
    (FLEET, "Sessions per interval", "A"): check_per_bench_sum("sessions", "count"),
    (FLEET, "Votes", "A"): check_votes,
    (FLEET, "Days", "A"): check_days,
    (FLEET, "Gateways: forwarding lag", "A"): check_gateways,
    (BENCH, "Online", "A"): check_bench_online,
    (BENCH, "State of charge", "A"): check_last_soc("soc"),
    (BENCH, "Harvested", "A"): check_sum_of("solar_wh", "harvested"),
    (BENCH, "Delivered", "A"): check_sum_of("port_wh", "delivered"),
    (BENCH, "Sessions", "A"): check_sum_of("sessions", "sessions"),
    (BENCH, "Votes", "A"): check_votes_total,
    (BENCH, "Battery", "A"): check_range("mean", 0, 100),
    (BENCH, "Battery", "B"): check_range("mean", 10, 15),
    (BENCH, "Currents", "A"): check_all(
        check_range("solar", 0, 40), check_range("battery", -20, 20)
    ),
    (BENCH, "Port current", "A"): check_range("mean", 0, 3),
    (BENCH, "Seat and touchpad", "A"): check_all(
        check_range("seat_s", 0, 300),
        check_sum_of_days("seat_occ_s", "seat_s"),
        check_sum_of_days("touches", "touches"),
    ),
    (BENCH, "Link and controller", "A"): check_all(
        check_range("rssi", -127, 0), check_range("clients", 0, 100)
    ),
    (BENCH, "Link and controller", "B"): check_range("min", 30000, 50000),
    (BENCH, "Air", "A"): check_all(check_range("temp_c", -30, 50), check_range("rh", 0, 100)),
    (BENCH, "Charging sessions", "A"): check_session_rows,
    (BENCH, "Events", "A"): check_events,
    (BENCH, "Votes per choice", "A"): check_votes,
    (BENCH, "Days", "A"): check_days,
}

# Each dashboard under the variable values a partner would pick: scope = the benches meant.
SELECTIONS = [
    pytest.param(FLEET, {"municipality": "*"}, id="fleet-all"),
    pytest.param(FLEET, {"municipality": ["mostar", "ravno"]}, id="fleet-mostar-ravno"),
    pytest.param(BENCH, {"municipality": ["mostar"], "bench": ["mostar-01"]}, id="bench-mostar"),
    pytest.param(BENCH, {"municipality": ["ravno"], "bench": ["ravno-01"]}, id="bench-offline"),
]


def variable_values(
    day: FleetDay, board: dict[str, Any], chosen: dict[str, Any], start: int, end: int
) -> dict[str, list[str]]:
    """Each variable's options from its own query (as Grafana lists them), then the choice."""
    values: dict[str, list[str]] = {}
    for var in board["templating"]["list"]:
        query = interpolate(var["query"], values, start, end)
        options = column(run(day, query), "value")
        assert options, f"variable {var['name']} has no options: {query}"
        pick = chosen[var["name"]]
        if pick == "*":
            assert var["includeAll"], var["name"]
            values[var["name"]] = options
        else:
            assert set(pick) <= set(options), (var["name"], pick, options)
            assert len(pick) == 1 or var["multi"], var["name"]
            values[var["name"]] = pick
    return values


@pytest.mark.parametrize(("uid", "chosen"), SELECTIONS)
def test_every_panel_query_reads_the_simulated_day(
    fleet_day: FleetDay, uid: str, chosen: dict[str, Any]
) -> None:
    board = next(b for b in dashboards().values() if b["uid"] == uid)
    t = fleet_day.truth
    # Grafana's "Last 24 hours", opened a second after the last write: an event in the day's last
    # second is stamped up to 999 ms past it (the gateway adds seq % 1000 to keep points apart),
    # and a range ending on the whole second dropped it (CI: 624 sessions of 625).
    start, end = (t.start - 60) * 1000, (t.end + 1) * 1000
    values = variable_values(fleet_day, board, chosen, start, end)
    scope = [s.bench for s in t.sites if s.municipality in values["municipality"]]
    scope = [b for b in scope if b in values.get("bench", scope)]
    assert scope
    seen = set()
    for p, target in influx_targets(board):
        key = (uid, p["title"], target["refId"])
        assert key in CHECKS, f"no check for {key}: add one"
        seen.add(key)
        query = interpolate(target["query"], values, start, end)
        series = run(fleet_day, query)
        assert series, f"{p['title']} ({target['refId']}) returned nothing: {query}"
        for s in series:
            assert s["columns"] == select_columns(target["query"]), (p["title"], s["columns"])
        CHECKS[key](series, t, scope)
    assert seen == {k for k in CHECKS if k[0] == uid}, "a check names a panel that is gone"


def test_the_day_holds_something_of_everything_for_every_bench(fleet_day: FleetDay) -> None:
    """So that each panel check above compares real numbers, not two empty answers."""
    t = fleet_day.truth
    for site in t.sites:
        b = site.bench
        assert t.solar_wh[b] > 0 and t.port_wh[b] > 0 and t.sessions[b] > 0, b
        assert any(vb == b for vb, _, _ in t.votes), b


# --------------------------------------------------------------------------- the files


def names_used(obj: Any) -> set[str]:
    """Every $var, ${var} and [[var]] in the dashboard's strings (the sites CSV aside)."""
    out: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k != "csvContent":
                out |= names_used(v)
    elif isinstance(obj, list):
        for v in obj:
            out |= names_used(v)
    elif isinstance(obj, str):
        out |= {m.group(1) or m.group(2) or m.group(3) for m in VAR_RE.finditer(obj)}
    return out


def test_every_variable_used_is_defined_or_grafanas_own() -> None:
    for name, board in dashboards().items():
        defined = {v["name"] for v in board["templating"]["list"]}
        tags = {"tag_" + t for t in ("bench", "port", "municipality", "poll", "choice")}
        undefined = names_used(board) - defined - BUILTINS - tags
        assert not undefined, f"{name}.json uses undefined {sorted(undefined)}"
        # $tag_X in an alias names a tag the query groups by
        for p, target in influx_targets(board):
            for tag in re.findall(r"\$tag_(\w+)", target.get("alias", "")):
                assert f'"{tag}"' in target["query"].split("GROUP BY", 1)[1], p["title"]
        # the bench variable depends on municipality, which must come first
        order = [v["name"] for v in board["templating"]["list"]]
        assert order[0] == "municipality"


def test_every_datasource_is_one_the_provisioning_file_creates() -> None:
    conf = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "klupa.yaml").read_text())
    provisioned = {d["uid"]: d["type"] for d in conf["datasources"]}
    assert provisioned["klupa-influxdb"] == "influxdb"
    influx = next(d for d in conf["datasources"] if d["uid"] == "klupa-influxdb")
    assert influx["jsonData"]["dbName"] == "benches"
    for name, board in dashboards().items():
        for p in board["panels"]:
            targets = p["targets"]
            assert targets, p["title"]
            for t in targets:
                ds = t["datasource"]
                assert provisioned.get(ds["uid"]) == ds["type"], (name, p["title"], ds)
            uids = {t["datasource"]["uid"] for t in targets}
            want = uids.pop() if len(uids) == 1 else "-- Mixed --"
            assert p["datasource"]["uid"] == want, (name, p["title"])
        for var in board["templating"]["list"]:
            assert provisioned.get(var["datasource"]["uid"]) == "influxdb", var["name"]
        titles = [p["title"] for p in board["panels"]]
        assert len(titles) == len(set(titles)), f"{name}: two panels share a title"
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "klupa.yaml").read_text())
    assert [p["type"] for p in providers["providers"]] == ["file"]


def test_committed_dashboards_are_the_generators_output_for_the_inventory(
    tmp_path: Path,
) -> None:
    sites = default_sites(tmp_path)
    assert dashboards() == {"fleet": fleet_dashboard(sites), "bench": bench_dashboard()}, (
        "deploy/grafana/dashboards is stale: run klupa grafana dashboards"
    )
    changed = write_dashboards(sites, tmp_path / "out")
    assert len(changed) == 2 and write_dashboards(sites, tmp_path / "out") == []
    for name in ("fleet", "bench"):
        assert (tmp_path / "out" / f"{name}.json").read_text() == (
            GRAFANA / "dashboards" / f"{name}.json"
        ).read_text()


def test_map_shows_each_bench_at_its_inventory_coordinates(tmp_path: Path) -> None:
    board = dashboards()["fleet"]
    geomap = next(p for p in board["panels"] if p["type"] == "geomap")
    csv_target = next(t for t in geomap["targets"] if "csvContent" in t)
    rows = list(csv.DictReader(io.StringIO(csv_target["csvContent"])))
    on_map = {r["bench"]: (float(r["lat"]), float(r["lon"])) for r in rows}
    assert on_map == {s.bench: (s.lat, s.lon) for s in default_sites(tmp_path)}
    layer = geomap["options"]["layers"][0]["location"]
    assert (layer["latitude"], layer["longitude"]) == ("lat", "lon")
    join = geomap["transformations"][0]["options"]["byField"]
    assert join == "bench" and "bench" in rows[0]
    # the InfluxDB rows the map joins carry the same key: GROUP BY "bench", table format
    for t in geomap["targets"]:
        if t["datasource"]["type"] == "influxdb":
            assert t["resultFormat"] == "table" and t["query"].endswith('GROUP BY "bench"')


def test_map_follows_a_moved_bench(tmp_path: Path) -> None:
    dep = tmp_path / "dep"
    dep.mkdir()
    inv = inventory_text().replace(
        '[benches.mostar-01]\nmunicipality = "mostar"\nboard = "bench-v1"\n'
        'location = "Mostar, site to be confirmed"\nlat = 43.3438\nlon = 17.8078',
        '[benches.mostar-01]\nmunicipality = "mostar"\nboard = "bench-v1"\n'
        'location = "Spanish Square"\nlat = 43.3402\nlon = 17.8105',
    )
    assert "43.3402" in inv
    (dep / "inventory.toml").write_text(inv)
    (dep / "secrets.toml").write_text("")
    out = tmp_path / "out"
    assert cli_main(["grafana", "dashboards", "--deployment", str(dep), "--out", str(out)]) == 0
    fleet = json.loads((out / "fleet.json").read_text())
    csv_text = next(p for p in fleet["panels"] if p["type"] == "geomap")["targets"][2]["csvContent"]
    assert 'mostar-01,mostar,"Mostar",43.340200,17.810500' in csv_text


def test_grafana_command_names_a_missing_deployment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["grafana", "dashboards", "--deployment", str(tmp_path), "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert "inventory.toml not found" in err and "Traceback" not in err
