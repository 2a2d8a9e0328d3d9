"""`klupa influx setup` on real InfluxDB 1.x: retention policies, hourly continuous queries."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from klupa.cli import main as cli_main
from klupa.influx import DOWNSAMPLED, FOREVER, RAW, cq_name
from klupa.services import Influx1
from testkit.fleet_day import FleetDay


def setup_cli(url: str, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    assert cli_main(["influx", "setup", "--url", url, *extra]) == 0
    return capsys.readouterr().out


def policies(influx: Influx1) -> dict[str, tuple[str, bool]]:
    rows = influx.rows('SHOW RETENTION POLICIES ON "benches"', "benches")
    return {r["name"]: (r["duration"], r["default"]) for r in rows}


def continuous_queries(influx: Influx1) -> dict[str, str]:
    series = influx.query("SHOW CONTINUOUS QUERIES")["results"][0]["series"]
    return {n: q for s in series if s["name"] == "benches" for n, q in s.get("values", [])}


def test_setup_creates_policies_and_queries_then_a_second_run_changes_nothing(
    influxdb1: Influx1, capsys: pytest.CaptureFixture[str]
) -> None:
    first = setup_cli(influxdb1.url, capsys)
    assert "created database benches" in first
    assert "created retention policy raw (90d, default)" in first
    assert "created retention policy forever" in first
    assert first.count("created continuous query") == len(DOWNSAMPLED)
    assert "autogen" not in first  # nothing was written before
    assert policies(influxdb1)[RAW] == ("2160h0m0s", True)
    assert policies(influxdb1)[FOREVER] == ("0s", False)
    cqs = continuous_queries(influxdb1)
    assert set(cqs) == {cq_name(m) for m in DOWNSAMPLED}
    assert (
        "INTO benches.forever.power FROM benches.raw.power GROUP BY time(1h), *"
        in (cqs["klupa_power_1h"])
    )

    second = setup_cli(influxdb1.url, capsys)
    assert "nothing to change: already set up" in second
    assert "created" not in second and "replaced" not in second
    assert second.count("unchanged: ") == 2 + len(DOWNSAMPLED)
    assert continuous_queries(influxdb1) == cqs


def test_setup_repairs_what_drifted_and_only_that(
    influxdb1: Influx1, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_cli(influxdb1.url, capsys)
    influxdb1.query('ALTER RETENTION POLICY "forever" ON "benches" DURATION 30d', "benches")
    influxdb1.query(
        'CREATE RETENTION POLICY "other" ON "benches" DURATION 1d REPLICATION 1 DEFAULT', "benches"
    )
    influxdb1.query('DROP CONTINUOUS QUERY "klupa_votes_1h" ON "benches"', "benches")
    influxdb1.query('DROP CONTINUOUS QUERY "klupa_env_1h" ON "benches"', "benches")
    influxdb1.query(
        'CREATE CONTINUOUS QUERY "klupa_env_1h" ON "benches" BEGIN SELECT mean("rh") AS "rh" '
        'INTO "benches"."forever"."env" FROM "benches"."raw"."env" GROUP BY time(1h), * END',
        "benches",
    )
    out = setup_cli(influxdb1.url, capsys)
    assert "set retention policy raw to 90d, default (was 2160h0m0s)" in out
    assert "set retention policy forever to keep for ever (was 720h0m0s)" in out
    assert "created continuous query klupa_votes_1h" in out
    assert "replaced continuous query klupa_env_1h" in out
    assert "4 changes" in out
    assert policies(influxdb1)[RAW] == ("2160h0m0s", True)
    assert policies(influxdb1)[FOREVER] == ("0s", False)
    assert policies(influxdb1)["other"] == ("24h0m0s", False)
    assert "mean(temp_c) AS temp_c" in continuous_queries(influxdb1)["klupa_env_1h"]
    assert "nothing to change" in setup_cli(influxdb1.url, capsys)


def test_hourly_downsampling_keeps_the_days_sums_and_tags(
    fleet_day: FleetDay, capsys: pytest.CaptureFixture[str]
) -> None:
    """The continuous queries' own SELECT … INTO, run over the day by `--backfill` as the CQ
    service would run them hour by hour (this fixture's influxd has the service off)."""
    influx, t = fleet_day.influx, fleet_day.truth
    out = setup_cli(influx.url, capsys, "--backfill", "3")
    assert "nothing to change" in out  # the fixture ran setup already
    written = int(out.split("backfilled forever from the last 3 days: ", 1)[1].split()[0])
    assert written > 12 * 24

    def one(q: str) -> float:
        return influx.rows(q, "benches")[0]["sum"]

    def forever(q: str) -> float:
        return one(q.replace("FROM ", f'FROM "{FOREVER}".'))

    assert forever('SELECT sum("solar_wh") FROM "power"') == pytest.approx(sum(t.solar_wh.values()))
    assert forever('SELECT sum("wh") FROM "port"') == pytest.approx(sum(t.port_wh.values()))
    assert forever('SELECT sum("sessions") FROM "session"') == sum(t.sessions.values())
    assert forever('SELECT sum("count") FROM "votes"') == sum(t.votes.values())
    assert forever('SELECT sum("solar_wh") FROM "daily"') == pytest.approx(
        sum(d["solar_wh"] for d in t.daily.values())
    )
    # one point per hour per series: 24-25 hours of power per bench, tags kept
    rows = influx.rows(
        f'SELECT count("batt_soc") FROM "{FOREVER}"."power" GROUP BY "bench"', "benches"
    )
    assert {r["bench"] for r in rows} == {s.bench for s in t.sites}
    assert all(r["count"] <= 26 for r in rows) and max(r["count"] for r in rows) >= 24
    ports = influx.rows(f'SHOW TAG VALUES FROM "{FOREVER}"."port" WITH KEY = "port"', "benches")
    assert {r["value"] for r in ports} == {"1", "2", "3", "4", "5"}
    soc = influx.rows(
        f'SELECT min("batt_soc_min"), max("batt_soc") FROM "{FOREVER}"."power"', "benches"
    )[0]
    assert 0 <= soc["min"] <= soc["max"] <= 100


@pytest.fixture
def version_server() -> Iterator[dict[str, str]]:
    """A loopback server answering /ping as InfluxDB 2.x or 3.x would (neither runs here)."""
    answer: dict[str, str] = {}

    class Ping(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = answer.get("body", "").encode()
            self.send_response(200 if body else 204)
            if answer.get("header"):
                self.send_header("X-Influxdb-Version", answer["header"])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802
            raise AssertionError("setup must not send statements to a 2.x/3.x server")

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Ping)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    answer["url"] = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield answer
    httpd.shutdown()
    httpd.server_close()


def test_setup_on_2x_and_3x_changes_nothing_and_says_what_to_set(
    version_server: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    version_server["header"] = "v2.7.11"
    out = setup_cli(version_server["url"], capsys)
    assert "InfluxDB 2.7.11" in out and "--retention 90d" in out
    assert "v1 dbrp create --db benches --rp raw --default" in out
    assert "--rp forever" in out
    version_server.update(header="", body='{"version":"3.3.0","revision":"x"}')
    out = setup_cli(version_server["url"], capsys)
    assert "InfluxDB 3.3.0" in out and "--database benches --retention-period 90d" in out
    version_server.update(header="", body="")
    assert cli_main(["influx", "setup", "--url", version_server["url"]]) == 1
    assert "without an InfluxDB version" in capsys.readouterr().err


def test_print_lists_every_statement_without_connecting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = setup_cli("http://127.0.0.1:1", capsys, "--print")
    assert out.count("CREATE CONTINUOUS QUERY") == len(DOWNSAMPLED)
    assert f'CREATE RETENTION POLICY "{RAW}" ON "benches" DURATION 90d' in out


def test_an_unreachable_server_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["influx", "setup", "--url", "http://127.0.0.1:1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("klupa influx setup: cannot reach") and err.count("\n") == 1


def test_points_written_before_setup_are_named_with_the_statement_that_keeps_them(
    influxdb1: Influx1, capsys: pytest.CaptureFixture[str]
) -> None:
    influxdb1.query("CREATE DATABASE benches")
    ms = (int(time.time()) - 3600) * 1000  # within raw's 90 days, or raw would drop it
    line = f"power,bench=mostar-01,municipality=mostar batt_soc=55.5 {ms}".encode()
    req = urllib.request.Request(
        f"{influxdb1.url}/write?db=benches&precision=ms", data=line, method="POST"
    )
    urllib.request.urlopen(req, timeout=10).close()
    out = setup_cli(influxdb1.url, capsys)
    assert "points written before now are in retention policy autogen" in out
    statement = out.split("run once:\n", 1)[1].splitlines()[0].strip()
    assert influxdb1.rows('SELECT * FROM "power"', "benches") == []  # raw is the default now
    influxdb1.query(statement, "benches")
    rows = influxdb1.rows('SELECT * FROM "power"', "benches")
    assert [(r["bench"], r["batt_soc"]) for r in rows] == [("mostar-01", 55.5)]
    assert "autogen" not in setup_cli(influxdb1.url, capsys)


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["influx", "setup"], "--url"),
        (["influx", "setup", "--url", "http://x", "--backfill", "week"], "--backfill"),
        (["influx", "bogus"], "bogus"),
        (["grafana", "dashboards", "--out", "x"], "--deployment"),
    ],
)
def test_a_usage_error_is_one_line_naming_what_is_wrong(
    argv: list[str], names: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        cli_main(argv)
    assert stop.value.code == 2
    out = capsys.readouterr()
    assert len(out.err.splitlines()) == 1 and names in out.err and "Traceback" not in out.err
