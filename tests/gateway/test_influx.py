"""Every schema row of docs/interfaces.md, written by the gateway and read back from real stores."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_gateway.service import Gateway
from edge_gateway.store import day_bounds, local_day
from klupa.services import Broker, Influx1, Victoria
from testkit.gateway import (
    Publisher,
    RecordingPortal,
    event,
    one_day_now,
    telemetry,
    topic_of,
    vote,
    wait_until,
)

B = "mostar-01"
BOOT = 17


def stream(now: int) -> list[tuple[str, dict[str, Any]]]:
    """One of everything: telemetry with env, each event type, votes in one minute."""
    t0 = now - 3600
    minute = t0 - t0 % 60
    return [
        (
            topic_of(B, "event"),
            event(B, BOOT, 1, t0, "boot", reset="power_on", fw="1.0.0", safe=False),
        ),
        (topic_of(B, "telemetry"), telemetry(B, BOOT, 2, t0 + 60)),
        (topic_of(B, "event"), event(B, BOOT, 3, t0 + 70, "session", port=2, s=1820, wh=4.1)),
        (
            topic_of(B, "event"),
            event(B, BOOT, 4, t0 + 70, "power", **{"from": "normal", "to": "saver"}),
        ),
        (
            topic_of(B, "event"),
            event(B, BOOT, 5, t0 + 80, "fault", code="ina_timeout", detail="no ack"),
        ),
        (topic_of(B, "event"), event(B, BOOT, 6, t0 + 90, "clock", offset=-61.0)),
        (
            topic_of(B, "event"),
            event(B, BOOT, 7, t0 + 100, "ota", state="applied", version="1.0.1"),
        ),
        (topic_of(B, "event"), event(B, BOOT, 8, t0 + 110, "tamper", kind="tilt", detail="12 deg")),
        (topic_of(B, "vote"), vote(B, BOOT, 9, minute + 5, "mostar-park", "yes")),
        (topic_of(B, "vote"), vote(B, BOOT, 10, minute + 15, "mostar-park", "yes")),
        (topic_of(B, "vote"), vote(B, BOOT, 11, minute + 25, "mostar-park", "no")),
    ]


def influx_extra_v1(url: str) -> str:
    return (
        f'[influxdb]\nurl = "{url}"\napi_version = 1\ndatabase = "benches"\n'
        "flush_interval_s = 0.2\n"
    )


def field_types(influx: Influx1, measurement: str) -> dict[str, str]:
    rows = influx.rows(f'SHOW FIELD KEYS FROM "{measurement}"', "benches")
    return {r["fieldKey"]: r["fieldType"] for r in rows}


def test_every_schema_row_reads_back_from_influxdb_1x(
    mosquitto: Broker, influxdb1: Influx1, gateway_factory: Callable[..., Gateway]
) -> None:
    gateway_factory(mosquitto.port, influx_extra_v1(influxdb1.url))
    now = one_day_now(before=3660)  # the stream (an hour back, from a minute's start): one day
    born = now - 7  # the birth Status was made a moment before it arrived
    bench = Publisher(
        mosquitto.host,
        mosquitto.port,
        client_id=B,
        will=(topic_of(B, "status"), b'{"v":1,"bench":"mostar-01","state":"offline"}'),
    )
    bench.publish(
        topic_of(B, "status"),
        {
            "v": 1,
            "bench": B,
            "state": "online",
            "boot": BOOT,
            "fw": "1.0.0",
            "mpy": "1.27.0",
            "ts": born,
        },
        retain=True,
    )
    for t, p in stream(now):
        bench.publish(t, p)
    bench.wait_published()
    time.sleep(0.3)
    bench.drop()  # the will: offline

    def q(sql: str) -> list[dict[str, Any]]:
        try:
            return influxdb1.rows(sql, "benches")
        except RuntimeError:
            return []

    wait_until(
        lambda: len(q("SELECT * FROM bench_status")) >= 2,
        15,
        what="bench_status online and offline",
    )
    wait_until(lambda: q("SELECT * FROM daily"), 10, what="daily")
    t0 = now - 3600
    minute = t0 - t0 % 60

    power = q("SELECT * FROM power")
    assert power == [
        {
            "time": t0 + 60,
            "bench": B,
            "municipality": "mostar",
            "solar_v": 18.42,
            "solar_a": 1.105,
            "solar_wh": 0.339,
            "batt_v": 13.21,
            "batt_a": -0.412,
            "batt_soc": 78.5,
            "state": "normal",
        }
    ]
    ports = q("SELECT * FROM port GROUP BY port")
    assert {r["port"]: (r["on"], r["plug"], r["a"], r["wh"]) for r in ports} == {
        "1": (True, True, 0.912, 0.076),
        "2": (True, False, 0.0, 0.0),
    }
    assert q("SELECT rssi, clients, heap FROM link")[0] | {"time": 0} == {
        "time": 0,
        "rssi": -61,
        "clients": 3,
        "heap": 41230,
    }
    assert q("SELECT seat_occ_s, touches FROM usage")[0]["touches"] == 5
    assert q("SELECT temp_c, rh FROM env")[0] == {"time": t0 + 60, "temp_c": 18.5, "rh": 55.2}

    session = q("SELECT duration_s, wh, port FROM session GROUP BY port")
    assert [(r["port"], r["duration_s"], r["wh"]) for r in session] == [("2", 1820, 4.1)]
    events = {r["type"]: r for r in q("SELECT * FROM event GROUP BY type")}
    assert set(events) == {"boot", "power", "fault", "clock", "ota", "tamper"}
    assert (events["boot"]["reset"], events["boot"]["fw"], events["boot"]["safe"]) == (
        "power_on",
        "1.0.0",
        False,
    )
    assert (events["power"]["from"], events["power"]["to"]) == ("normal", "saver")
    assert (events["fault"]["code"], events["fault"]["detail"]) == ("ina_timeout", "no ack")
    assert events["clock"]["offset"] == -61
    assert (events["ota"]["state"], events["ota"]["version"]) == ("applied", "1.0.1")
    assert events["tamper"]["kind"] == "tilt"
    assert events["boot"]["code"] == "" and events["boot"]["detail"] == ""

    votes = {
        r["choice"]: (r["time"], r["count"])
        for r in q("SELECT count FROM votes GROUP BY choice, poll")
    }
    assert votes == {"yes": (minute, 2), "no": (minute, 1)}

    # One row per local day: the stream's day, and the day the gateway saw the bench come
    # online and go offline, when a run near midnight puts that on the next day.
    daily = {r["time"]: r for r in q("SELECT * FROM daily")}
    start = int(day_bounds(local_day(t0 + 60))[0])
    today = {int(day_bounds(local_day(t))[0]) for t in (now, time.time())}
    assert start in daily and set(daily) <= {start} | today
    d = daily[start]
    assert (
        d["solar_wh"],
        d["charge_wh"],
        d["sessions"],
        d["seat_occ_s"],
        d["touches"],
        d["votes"],
    ) == (0.339, 0.076, 1, 42, 5, 3)
    # uptime counts on the gateway's clock: on the day it saw the bench online, the latest
    assert 0 < daily[max(daily)]["uptime_pct"] <= 100

    status = q("SELECT * FROM bench_status")
    assert [r["online"] for r in status] == [True, False]
    assert status[0]["boot"] == BOOT and status[0]["fw"] == "1.0.0"
    # online: the Status's own `ts`; offline (the will, no `ts`): the gateway's time
    assert status[0]["time"] == born
    assert status[1]["time"] >= now - 1

    # Field types exactly as the schema lists them, whatever the JSON looked like.
    assert field_types(influxdb1, "power") == {
        "solar_v": "float",
        "solar_a": "float",
        "solar_wh": "float",
        "batt_v": "float",
        "batt_a": "float",
        "batt_soc": "float",
        "state": "string",
    }
    assert field_types(influxdb1, "port") == {
        "on": "boolean",
        "plug": "boolean",
        "a": "float",
        "wh": "float",
    }
    assert field_types(influxdb1, "link") == {
        "rssi": "integer",
        "clients": "integer",
        "heap": "integer",
    }
    assert field_types(influxdb1, "usage") == {"seat_occ_s": "integer", "touches": "integer"}
    assert field_types(influxdb1, "env") == {"temp_c": "float", "rh": "float"}
    assert field_types(influxdb1, "session") == {"duration_s": "integer", "wh": "float"}
    assert field_types(influxdb1, "votes") == {"count": "integer"}
    assert field_types(influxdb1, "daily") == {
        "solar_wh": "float",
        "charge_wh": "float",
        "sessions": "integer",
        "seat_occ_s": "integer",
        "touches": "integer",
        "votes": "integer",
        "uptime_pct": "float",
    }
    assert field_types(influxdb1, "bench_status") == {
        "online": "boolean",
        "sleeping": "boolean",
        "boot": "integer",
        "fw": "string",
    }
    gateway = q("SELECT * FROM gateway")
    assert gateway and gateway[0]["municipality"] == "mostar" and "bench" not in gateway[0]
    assert field_types(influxdb1, "gateway") == {
        "received": "integer",
        "accepted": "integer",
        "rejected": "integer",
        "duplicates": "integer",
        "spool_depth": "integer",
        "forward_lag_s": "float",
    }
    ev = field_types(influxdb1, "event")
    assert ev["offset"] == "integer" and ev["safe"] == "boolean" and ev["code"] == "string"


def test_event_points_have_millisecond_timestamps(
    mosquitto: Broker, influxdb1: Influx1, gateway_factory: Callable[..., Gateway]
) -> None:
    gateway_factory(mosquitto.port, influx_extra_v1(influxdb1.url))
    now = int(time.time()) - 100
    pub = Publisher(mosquitto.host, mosquitto.port)
    pub.publish(topic_of(B, "event"), event(B, BOOT, 1234, now, "fault", code="a", detail=""))
    pub.publish(topic_of(B, "event"), event(B, BOOT, 1235, now, "fault", code="b", detail=""))
    pub.publish(topic_of(B, "event"), event(B, BOOT, 1236, now, "session", port=1, s=5, wh=0.1))
    pub.wait_published()

    def ms_rows(m: str) -> list[Any]:
        params = urllib.parse.urlencode(
            {"q": f"SELECT * FROM {m}", "db": "benches", "epoch": "ms"}
        ).encode()
        with urllib.request.urlopen(influxdb1.url + "/query", data=params) as r:
            data = json.loads(r.read())
        series = data["results"][0].get("series", [])
        return [v[0] for s in series for v in s["values"]]

    wait_until(lambda: len(ms_rows("event")) == 2 and ms_rows("session"), 10, what="event points")
    assert ms_rows("event") == [now * 1000 + 234, now * 1000 + 235]
    assert ms_rows("session") == [now * 1000 + 236]


def test_v2_path_numeric_and_boolean_fields_read_back_from_victoria_metrics(
    mosquitto: Broker, victoria_metrics: Victoria, gateway_factory: Callable[..., Gateway]
) -> None:
    extra = (
        f'[influxdb]\nurl = "{victoria_metrics.url}"\napi_version = 2\norg = "link"\n'
        'bucket = "benches"\ntoken = "vm-token"\nflush_interval_s = 0.2\n'
    )
    gateway_factory(mosquitto.port, extra)
    now = one_day_now(before=3660)  # the stream (an hour back, from a minute's start): one day
    pub = Publisher(mosquitto.host, mosquitto.port)
    for t, p in stream(now):
        pub.publish(t, p)
    pub.wait_published()

    def series(name: str) -> list[dict[str, Any]]:
        return victoria_metrics.export(f'{{__name__="{name}"}}')

    wait_until(
        lambda: any(3 in s["values"] for s in series("daily_votes")), 15, what="daily_votes = 3"
    )
    t0 = now - 3600

    def one(name: str, at: int | None = None, **labels: str) -> tuple[float, int]:
        """The value of `name` at `at` (ms), or at its latest timestamp."""
        for s in series(name):
            if all(s["metric"].get(k) == v for k, v in labels.items()):
                # A rewritten point (votes, daily) keeps every write at its timestamp in
                # victoria-metrics, which has no overwrite; its counts only grow, so take the max.
                last = s["timestamps"][-1] if at is None else at
                vals = [v for v, t in zip(s["values"], s["timestamps"], strict=True) if t == last]
                if vals:
                    return max(vals), last
        raise AssertionError(f"no series {name} {labels} at {at}: {series(name)}")

    assert one("power_solar_v", bench=B, municipality="mostar") == (18.42, (t0 + 60) * 1000)
    assert one("power_batt_soc")[0] == 78.5
    assert one("port_on", port="1")[0] == 1 and one("port_plug", port="2")[0] == 0
    assert one("port_a", port="1")[0] == 0.912
    assert one("link_rssi")[0] == -61 and one("link_heap")[0] == 41230
    assert one("usage_seat_occ_s")[0] == 42 and one("usage_touches")[0] == 5
    assert one("env_temp_c")[0] == 18.5 and one("env_rh")[0] == 55.2
    assert one("session_duration_s", port="2") == (1820, (t0 + 70) * 1000 + 3)
    assert one("session_wh")[0] == 4.1
    assert one("event_offset", type="clock") == (-61, (t0 + 90) * 1000 + 6)
    assert one("event_safe", type="boot")[0] == 0
    assert one("votes_count", choice="yes", poll="mostar-park")[0] == 2
    assert one("votes_count", choice="no")[0] == 1
    # The stream's local day; near midnight the gateway may also write the next day's row.
    day = int(day_bounds(local_day(t0 + 60))[0]) * 1000
    assert one("daily_sessions", day)[0] == 1 and one("daily_votes", day)[0] == 3
    assert one("daily_solar_wh", day)[0] == 0.339 and one("daily_touches", day)[0] == 5


def test_fast_telemetry_lines_equal_what_point_writes() -> None:
    from edge_gateway.protocol import validate
    from edge_gateway.sinks.influxdb.points import telemetry_lines, telemetry_points
    from testkit.gateway import dumps

    now = time.time()
    for t in [
        telemetry(B, 1, 1, int(now)),
        telemetry(B, 1, 2, int(now), env=False, ports=[]),
        telemetry(B, 1, 3, int(now), power="critical", batt={"v": 12, "a": 0, "soc": 0.0}),
    ]:
        msg = validate(topic_of(B, "telemetry"), dumps(t), now)
        points = [p.to_line_protocol() for p in telemetry_points("mostar", msg)]  # type: ignore[arg-type]
        assert telemetry_lines("mostar", msg) == points  # type: ignore[arg-type]


_finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=300, deadline=None)
@given(
    m=st.sampled_from(["mostar", "novi-grad", "zepce", "a b,c=d"]),
    bench=st.sampled_from([B, "novi-grad-12", "x y,z=w"]),
    values=st.lists(_finite, min_size=11, max_size=11),
    ints=st.lists(st.integers(-(2**40), 2**40), min_size=5, max_size=5),
    ports=st.lists(
        st.tuples(st.integers(1, 8), st.booleans(), st.booleans(), _finite, _finite), max_size=5
    ),
    env=st.booleans(),
    power=st.sampled_from(["normal", "saver", "critical", 'odd "state"\\']),
)
def test_fast_telemetry_lines_equal_point_for_any_values(
    m: str,
    bench: str,
    values: list[float],
    ints: list[int],
    ports: list[tuple[int, bool, bool, float, float]],
    env: bool,
    power: str,
) -> None:
    """Byte for byte what ``Point`` writes: float forms (1e-05, 1e+16, -0.0), ints, escapes."""
    from edge_gateway.payloads import Batt, Env, Port, Seat, Solar, Telemetry, Touch, Wifi
    from edge_gateway.sinks.influxdb.points import telemetry_lines, telemetry_points

    v = values
    msg = Telemetry(
        v=1,
        bench=bench,
        boot=ints[0],
        seq=1,
        ts=1_780_000_000,
        period=60,
        solar=Solar(v=v[0], a=v[1], wh=v[2]),
        batt=Batt(v=v[3], a=v[4], soc=v[5]),
        ports=[Port(n=n, on=on, plug=plug, a=a, wh=wh) for n, on, plug, a, wh in ports],
        wifi=Wifi(rssi=ints[1], clients=ints[2]),
        seat=Seat(occ=ints[3]),
        touch=Touch(n=ints[4]),
        power=power,
        heap=ints[0],
        env=Env(t=v[6], rh=v[7]) if env else None,
    )
    points = [p.to_line_protocol() for p in telemetry_points(m, msg)]
    assert telemetry_lines(m, msg) == points


def test_a_hidden_polls_choices_reach_influxdb_only_at_its_close(
    mosquitto: Broker,
    influxdb1: Influx1,
    portal: RecordingPortal,
    gateway_factory: Callable[..., Gateway],
) -> None:
    """Results hidden until close stay hidden in the partners' InfluxDB too: the per-choice
    `votes` points wait for the close; the day's vote total per bench goes out at once."""
    now = int(time.time())
    closes = now + 6
    portal.polls = [
        {
            "v": 1,
            "id": "mostar-secret",
            "opens": now - 3600,
            "closes": closes,
            "results": "after_close",
            "question": {"bs": "Pitanje?"},
            "options": [{"id": "yes", "label": {"bs": "Da"}}, {"id": "no", "label": {"bs": "Ne"}}],
        }
    ]
    gateway_factory(
        mosquitto.port,
        influx_extra_v1(influxdb1.url)
        + f'[portal]\nurl = "{portal.url}"\ntoken = "portal-token"\npoll_sync_s = 1\n',
    )
    time.sleep(1.5)  # the poll list is fetched
    pub = Publisher(mosquitto.host, mosquitto.port)
    t = now - 120 - now % 60  # a minute's start: the counts are per minute, all in one
    for seq, choice in enumerate(["yes", "yes", "no"], start=1):
        pub.publish(topic_of(B, "vote"), vote(B, 3, seq, t + seq, "mostar-secret", choice))
    pub.publish(topic_of(B, "vote"), vote(B, 3, 4, t + 4, "mostar-park", "yes"))  # not hidden
    pub.wait_published()

    def votes(poll: str) -> list[dict[str, Any]]:
        return influxdb1.rows(f"SELECT * FROM votes WHERE poll = '{poll}'", "benches")

    wait_until(lambda: votes("mostar-park"), 15, what="the open poll's votes")
    wait_until(
        lambda: any(r.get("votes") == 4 for r in influxdb1.rows("SELECT * FROM daily", "benches")),
        15,
        what="the day's total of 4 votes",
    )
    assert time.time() < closes and votes("mostar-secret") == []
    got = wait_until(lambda: votes("mostar-secret"), 20, what="the hidden poll's votes at close")
    assert time.time() >= closes
    assert sorted((r["choice"], r["count"]) for r in got) == [("no", 1), ("yes", 2)]
    pub.close()
