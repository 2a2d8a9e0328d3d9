"""Store upkeep (retention, size bound) and a sink that meets a 4xx."""

from __future__ import annotations

import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from edge_gateway.service import Gateway
from edge_gateway.sinks import base as sink_base
from edge_gateway.sinks.base import Sink
from edge_gateway.store import Row, Store, day_bounds, local_day
from klupa.services import Broker, Influx1
from testkit.gateway import Publisher, one_day_now, telemetry, topic_of, wait_until


def fill(st: Store, kind: str, n: int, received: float, start: int = 1) -> None:
    st.begin()
    for i in range(start, start + n):
        st.insert_message("mostar-01", 1, i, kind, int(received), received, b"x" * 500)
    st.commit()


def test_a_new_store_has_small_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    # 1 KiB pages: an idle message's own commit writes fewer bytes to the Pi's SD card
    # (benchmarks/README.md, Gateway). A store made by an earlier version keeps 4 KiB pages.
    new = Store(str(tmp_path / "new.sqlite"))
    assert new.conn.execute("PRAGMA page_size").fetchone()[0] == 1024
    assert new.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    new.close()
    import sqlite3

    old_path = tmp_path / "old.sqlite"
    c = sqlite3.connect(old_path)
    c.execute("PRAGMA page_size=4096")
    c.execute("CREATE TABLE t (x)")
    c.commit()
    c.close()
    old = Store(str(old_path))
    assert old.conn.execute("PRAGMA page_size").fetchone()[0] == 4096
    fill(old, "telemetry", 3, time.time(), 1)
    assert old.conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 3
    old.close()


def test_retention_prunes_only_forwarded_rows_older_than_the_period(tmp_path: Path) -> None:
    st = Store(str(tmp_path / "s.sqlite"))
    now = time.time()
    fill(st, "telemetry", 10, now - 40 * 86400, 1)  # old
    fill(st, "telemetry", 10, now - 40 * 86400, 11)  # old, not yet forwarded by portal
    fill(st, "telemetry", 10, now - 3600, 21)  # recent
    st.begin()
    st.set_watermark("influxdb", 30)
    st.set_watermark("portal", 10)
    st.commit()
    assert st.prune(["influxdb", "portal"], 35, 2048, now) == 10
    seqs = [r[0] for r in st.conn.execute("SELECT seq FROM messages ORDER BY seq")]
    assert seqs == list(range(11, 31))


def test_size_bound_drops_forwarded_rows_then_telemetry_before_votes(tmp_path: Path) -> None:
    st = Store(str(tmp_path / "s.sqlite"))
    now = time.time()
    fill(st, "telemetry", 2000, now, 1)
    fill(st, "vote", 2000, now, 2001)
    fill(st, "telemetry", 2000, now, 4001)
    st.begin()
    st.set_watermark("influxdb", 1000)  # the first 1000 rows are forwarded
    st.commit()
    size_mb = st.size_bytes() / 2**20
    st.prune(["influxdb"], 35, size_mb * 0.5, now)
    kinds = dict(st.conn.execute("SELECT kind, count(*) FROM messages GROUP BY kind").fetchall())
    assert kinds["vote"] == 2000  # votes go last
    assert kinds.get("telemetry", 0) < 3000
    assert st.conn.execute("SELECT min(id) FROM messages").fetchone()[0] > 1000
    assert st.counters()["dropped_unforwarded"] > 0
    assert st.size_bytes() / 2**20 <= size_mb * 0.5


def test_upkeep_never_hands_out_an_id_again_below_the_watermarks(tmp_path: Path) -> None:
    """Every row forwarded, then pruned (retention) or dropped (size): the next row must come
    after the watermarks. SQLite numbers a row one past the largest id left, so an emptied
    table started again at 1, and the sinks never read past their watermark to it."""
    now = time.time()
    for retention_days, max_mb in ((35, 2048.0), (36500, 0.01)):
        st = Store(str(tmp_path / f"s{retention_days}.sqlite"))
        fill(st, "telemetry", 1500, now - 40 * 86400, 1)
        with st.transaction():
            st.set_watermark("influxdb", 1500)
        assert st.prune(["influxdb"], retention_days, max_mb, now) > 0
        with st.transaction():
            st.insert_message("mostar-01", 2, 1, "vote", int(now), now, b"{}")
        assert [(r.boot, r.seq) for r in st.rows_after(st.watermark("influxdb"), 10)] == [(2, 1)]
        st.close()


def test_local_days_follow_sarajevo_time_across_dst() -> None:
    start, end = day_bounds("2026-03-29")  # spring forward: a 23-hour day
    assert end - start == 23 * 3600
    start, end = day_bounds("2026-10-25")  # fall back: 25 hours
    assert end - start == 25 * 3600
    assert local_day(day_bounds("2026-11-26")[0]) == "2026-11-26"
    assert local_day(day_bounds("2026-11-26")[0] - 1) == "2026-11-25"


def test_one_day_now_moves_a_span_across_midnight_back_into_one_day(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    midnight = int(day_bounds("2026-11-28")[0])
    for clock, want in [
        (midnight + 30, midnight - 11),  # a minute back would reach yesterday
        (midnight + 120, midnight + 120),  # already in one day: unchanged
        (midnight - 5, midnight - 11),  # ten seconds on would reach tomorrow
    ]:
        monkeypatch.setattr(time, "time", lambda c=clock: c + 0.5)
        t = one_day_now(before=60, after=10)
        assert t == want
        assert local_day(t - 60) == local_day(t + 10) and t <= clock


def test_a_point_influxdb_refuses_is_quarantined_and_the_sink_moves_on(
    mosquitto: Broker, influxdb1: Influx1, gateway_factory: Callable[..., Gateway]
) -> None:
    now = int(time.time())
    recent = now - 3600
    # A field of another type already in the shard: InfluxDB answers 400 (field type conflict).
    influxdb1.query('CREATE DATABASE "benches"')
    req = urllib.request.Request(
        influxdb1.url + "/write?" + urllib.parse.urlencode({"db": "benches", "precision": "s"}),
        data=f'link,municipality=mostar,bench=mostar-09 rssi="weak" {recent - 10}'.encode(),
        method="POST",
    )
    urllib.request.urlopen(req, timeout=10).read()
    gw = gateway_factory(
        mosquitto.port,
        f'[influxdb]\nurl = "{influxdb1.url}"\napi_version = 1\ndatabase = "benches"\n'
        "flush_interval_s = 0.2\n",
    )
    pub = Publisher(mosquitto.host, mosquitto.port)
    pub.publish(topic_of("mostar-01", "telemetry"), telemetry("mostar-01", 1, 1, recent))
    pub.publish(topic_of("mostar-01", "telemetry"), telemetry("mostar-01", 1, 2, now - 20 * 86400))
    pub.wait_published()
    wait_until(lambda: gw.store.quarantine_counts().get("influxdb_400") == 1, 15, what="quarantine")
    rows = influxdb1.rows("SELECT rssi FROM link WHERE bench = 'mostar-01'", "benches")
    assert [r["time"] for r in rows] == [now - 20 * 86400]
    pub.publish(topic_of("mostar-01", "telemetry"), telemetry("mostar-01", 1, 3, now - 19 * 86400))
    pub.wait_published()
    wait_until(
        lambda: (
            len(influxdb1.rows("SELECT rssi FROM link WHERE bench = 'mostar-01'", "benches")) == 2
        ),
        10,
        what="the sink moved on",
    )


def test_a_missing_database_is_waited_for_not_a_reason_to_quarantine(
    mosquitto: Broker, influxdb1: Influx1, gateway_factory: Callable[..., Gateway]
) -> None:
    # InfluxDB answers 404 "database not found": the rows wait until the database exists.
    gw = gateway_factory(
        mosquitto.port,
        f'[influxdb]\nurl = "{influxdb1.url}"\napi_version = 1\ndatabase = "later"\n'
        "create_database = false\nflush_interval_s = 0.2\n",
    )
    now = int(time.time())
    pub = Publisher(mosquitto.host, mosquitto.port)
    for seq in (1, 2):
        pub.publish(topic_of("mostar-01", "telemetry"), telemetry("mostar-01", 1, seq, now - seq))
    pub.wait_published()
    wait_until(lambda: gw.counts["accepted"] == 2, 10)
    time.sleep(1.5)  # several tries at 404
    assert gw.store.quarantine_counts() == {}
    influxdb1.query('CREATE DATABASE "later"')
    wait_until(
        lambda: len(influxdb1.rows("SELECT rssi FROM link", "later")) == 2,
        30,
        what="both rows once the database exists",
    )
    assert gw.store.quarantine_counts() == {}


@pytest.mark.parametrize(
    ("api", "path"),
    [
        ('api_version = 1\ndatabase = "benches"\ncreate_database = false\n', "/write?"),
        ('api_version = 2\norg = "link"\nbucket = "benches"\ntoken = "t"\n', "/api/v2/write?"),
    ],
)
def test_a_write_answered_200_is_not_taken_as_written(
    mosquitto: Broker,
    gateway_factory: Callable[..., Gateway],
    caplog: pytest.LogCaptureFixture,
    api: str,
    path: str,
) -> None:
    # [influxdb] url pointing at some other web server, which answers everything 200
    seen: list[str] = []

    class Page(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "13")
            self.end_headers()
            self.wfile.write(b"<html></html>")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        gw = gateway_factory(
            mosquitto.port,
            f'[influxdb]\nurl = "http://127.0.0.1:{server.server_address[1]}"\n{api}'
            "flush_interval_s = 0.2\n",
        )
        pub = Publisher(mosquitto.host, mosquitto.port)
        now = int(time.time())
        pub.publish(topic_of("mostar-01", "telemetry"), telemetry("mostar-01", 1, 1, now))
        pub.wait_published()
        wait_until(
            lambda: any("not 204: is [influxdb] url" in r.getMessage() for r in caplog.records),
            15,
            what="the answer named in the log",
        )
        assert any(p.startswith(path) for p in seen)
        depth, _ = gw.store.depth_and_lag(["influxdb"], time.time())
        assert depth >= 1  # still waiting to be written
    finally:
        server.shutdown()
        server.server_close()


def test_a_days_sitting_is_capped_at_the_days_length(tmp_path: Path) -> None:
    # Overlapping windows (a clock that jumped back) can sum past the day; the portal refuses
    # seat_occ_s over 86400, which would have cost the bench its whole day there.
    st = Store(str(tmp_path / "s.sqlite"))
    st.begin()
    st.add_daily({("mostar-01", "2026-11-26"): [1.0, 0.5, 2, 80000, 9, 1]})
    st.add_daily({("mostar-01", "2026-11-26"): [1.0, 0.5, 1, 20000, 1, 0]})
    st.add_daily({("mostar-01", "2026-10-25"): [0.0, 0.0, 0, 95000, 0, 0]})  # 25 hours
    st.commit()
    d = st.daily("mostar-01", "2026-11-26", day_bounds("2026-11-27")[0])
    assert (d["seat_occ_s"], d["sessions"], d["touches"]) == (86400, 3, 10)
    assert st.daily("mostar-01", "2026-10-25", day_bounds("2026-10-26")[0])["seat_occ_s"] == 90000
    st.close()


class _Recorder(Sink):
    """A sink that takes every row (the receiver always answers)."""

    name = "recorder"

    def send(self, rows: list[Row]) -> None:
        self.got = getattr(self, "got", 0) + len(rows)


def test_a_receiver_down_at_a_hidden_polls_close_is_one_log_line_not_one_a_second(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """At a hidden poll's close the InfluxDB sink writes its counts, tried every second while
    InfluxDB is down: each try logged `periodic work failed`, a line a second all night."""
    from edge_gateway.sinks.influxdb.config import InfluxConfig
    from edge_gateway.sinks.influxdb.writer import InfluxSink
    from klupa.services import free_port

    path = str(tmp_path / "s.sqlite")
    st = Store(path)
    closes = int(time.time()) - 10
    st.set_hidden_polls({"mostar-hidden-poll": closes})  # closed: its counts are due
    with st.transaction():
        st.add_vote("mostar-01", "mostar-hidden-poll", "yes", closes - 100, 1)
    st.close()
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    down = InfluxConfig(url=url, api_version=1, database="b", flush_interval_s=0.1)
    sink = InfluxSink(path, "mostar", down, ["influxdb"])
    tries = [0]
    tick = sink.tick

    def counted(now: float) -> None:
        tries[0] += 1
        tick(now)

    sink.tick = counted  # type: ignore[method-assign]
    sink.start()
    try:
        wait_until(lambda: tries[0] >= 4, 20, what="four tries of the periodic work")
    finally:
        sink.stop()
        sink.join(10)
    failed = [r for r in caplog.records if "periodic work failed" in r.getMessage()]
    assert len(failed) == 1 and "Connection refused" in failed[0].getMessage()


def test_a_sink_saves_its_watermark_every_ten_seconds_while_busy_and_every_five_minutes_idle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At idle a watermark commit costs the SD card a few 4 KiB pages for one number: an idle
    sink saves it every WATERMARK_IDLE_S; a busy one (WATERMARK_BUSY_ROWS since the last save)
    every WATERMARK_SAVE_S; a stop saves it whatever the time."""
    path = str(tmp_path / "s.sqlite")
    st = Store(path)
    fill(st, "telemetry", 1500, time.time() - 60, 1)
    clock = [1000.0]
    monkeypatch.setattr(sink_base.time, "monotonic", lambda: clock[0])
    sink = _Recorder(path, batch_rows=1200, interval_s=1.0)
    saved = lambda: st.watermark("recorder")  # noqa: E731

    sink.pass_once()  # 1,200 rows: busy, and never saved before
    assert saved() == 1200
    clock[0] += 5
    sink.pass_once()  # 300 more, 5 s later: not yet
    assert (sink.watermark, saved()) == (1500, 1200)
    clock[0] += sink_base.WATERMARK_SAVE_S
    sink.advance(sink.watermark)  # 300 rows since the save: idle, so not after 10 s either
    assert saved() == 1200
    clock[0] += sink_base.WATERMARK_IDLE_S
    sink.advance(sink.watermark)
    assert saved() == 1500

    fill(st, "telemetry", 1, time.time(), 1501)
    clock[0] += 1
    sink.pass_once()
    assert (sink.watermark, saved()) == (1501, 1500)
    sink.flush(time.time() + 5)  # a stop saves it at once
    assert saved() == 1501
