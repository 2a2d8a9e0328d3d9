"""Nothing lost, nothing counted twice: the gateway SIGKILLed and restarted under a stream;
InfluxDB stopped and started again."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge_gateway.service import Gateway
from klupa.services import Broker, Influx1, children
from testkit.gateway import (
    Publisher,
    RecordingPortal,
    telemetry,
    topic_of,
    vote,
    wait_until,
    write_config,
)

BENCHES = [f"mostar-{i:02d}" for i in range(1, 13)]
CHOICES = ["yes", "no", "maybe"]


def influx(db: Influx1, flush_s: float | None = 0.2) -> str:
    """The config table of a gateway forwarding to ``db`` (flushing every ``flush_s`` if given)."""
    table = f'[influxdb]\nurl = "{db.url}"\napi_version = 1\ndatabase = "benches"\n'
    return table + (f"flush_interval_s = {flush_s}\n" if flush_s is not None else "")


def send_windows(pub: Publisher, bench: str, boot: int, seqs: range, t0: int) -> None:
    """``bench``'s telemetry windows ``seqs`` of ``boot`` (window s at t0 + s), all published."""
    for s in seqs:
        pub.publish(topic_of(bench, "telemetry"), telemetry(bench, boot, s, t0 + s))
    pub.wait_published()


def running(pid: int) -> bool:
    """The process exists and has not ended (a zombie waiting for its reaper has ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return state.split()[1] not in ("Z", "X")


class GatewayProcess:
    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.forwarders: list[int] = []  # the forwarder processes of killed gateways

    def start(self) -> None:
        self.starts += 1
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edge_gateway", "run", "--config", str(self.config)],
                stdout=f,
                stderr=f,
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.forwarders += children(self.proc.pid)
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


def make_stream(n: int, now: int) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, int]]:
    rnd = random.Random(7)
    seqs = dict.fromkeys(BENCHES, 0)
    items: list[tuple[str, dict[str, Any]]] = []
    votes = dict.fromkeys(CHOICES, 0)
    for _ in range(n):
        b = rnd.choice(BENCHES)
        seqs[b] += 1
        s = seqs[b]
        ts = now - 4000 + s
        if rnd.random() < 0.25:
            c = rnd.choice(CHOICES)
            votes[c] += 1
            items.append((topic_of(b, "vote"), vote(b, 9, s, ts, "mostar-bench-poll", c)))
        else:
            items.append((topic_of(b, "telemetry"), telemetry(b, 9, s, ts)))
        if rnd.random() < 0.05:  # a bench re-sending from its spool
            items.append(items[-1])
    return items, votes


def stored(path: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return int(
                conn.execute(
                    "SELECT count(*) FROM messages WHERE kind IN ('telemetry', 'vote')"
                ).fetchone()[0]
            )
        finally:
            conn.close()
    except sqlite3.Error:
        return -1


def test_sigkill_and_restarts_under_a_stream_lose_nothing_and_double_nothing(
    mosquitto: Broker, influxdb1: Influx1, portal: RecordingPortal, tmp_path: Path
) -> None:
    now = int(time.time())
    items, votes = make_stream(20_000, now)  # as the issue asks: 20,000 messages, 10 kills
    keys = {(t, p["bench"], p["seq"]) for t, p in items}
    distinct = len(keys)
    telemetry_n = sum(1 for k in keys if k[0].endswith("telemetry"))
    store = tmp_path / "store.sqlite"
    cfg = write_config(
        tmp_path / "gw.toml",
        "mostar",
        mosquitto.port,
        store,
        influx(influxdb1) + f'[portal]\nurl = "{portal.url}"\ntoken = "portal-token"\n',
    )
    gw = GatewayProcess(cfg, tmp_path / "gateway.log")
    gw.start()
    wait_until(lambda: stored(store) >= 0, 15, what="the gateway's store")
    time.sleep(1.0)  # its persistent session exists before the first publish

    pub = Publisher(mosquitto.host, mosquitto.port)
    done = threading.Event()

    def publish() -> None:
        for i, (t, p) in enumerate(items):
            pub.publish(t, p)
            if i % 50 == 0:
                time.sleep(0.05)
        done.set()

    thread = threading.Thread(target=publish)
    thread.start()
    rnd = random.Random(11)
    kills = 0
    while kills < 10:
        time.sleep(rnd.uniform(0.3, 1.2))
        gw.kill()
        kills += 1
        time.sleep(rnd.uniform(0.0, 0.5))
        gw.start()
    thread.join(120)
    assert done.is_set()
    # A killed gateway's forwarder process notices and ends: no second forwarder lingers.
    assert gw.forwarders, "no forwarder process was seen"
    wait_until(
        lambda: not any(running(p) for p in gw.forwarders), 10, what="orphaned forwarders ended"
    )
    pub.wait_published()

    wait_until(
        lambda: stored(store) == distinct,
        120,
        step=0.2,
        what=f"{distinct} distinct messages stored",
    )
    wait_until(
        lambda: influxdb1.count("SELECT count(batt_soc) FROM power") == telemetry_n,
        120,
        step=0.3,
        what=f"{telemetry_n} power points",
    )
    got_votes = {
        r["choice"]: r["sum"]
        for r in influxdb1.rows("SELECT sum(count) FROM votes GROUP BY choice", "benches")
    }
    assert got_votes == votes
    wait_until(lambda: len(portal.votes) == sum(votes.values()), 60, what="votes at the portal")
    at_portal = {c: 0 for c in CHOICES}
    for v in portal.votes.values():
        at_portal[v["choice"]] += 1
    assert at_portal == votes
    assert gw.stop() == 0
    assert gw.starts == kills + 1
    # After a clean stop nothing waits: everything stored was also forwarded.
    assert stored(store) == distinct
    pub.close()


def test_influxdb_down_then_up_everything_arrives(
    mosquitto: Broker, influxdb1: Influx1, gateway_factory: Callable[..., Gateway]
) -> None:
    gw = gateway_factory(mosquitto.port, influx(influxdb1))
    influxdb1.stop()
    now = int(time.time())
    pub = Publisher(mosquitto.host, mosquitto.port)
    send_windows(pub, "mostar-03", 2, range(1, 301), now - 1000)
    wait_until(lambda: gw.counts["accepted"] == 300, 10)
    time.sleep(2)  # the sink fails and backs off meanwhile
    assert gw.sinks[0].failures > 0
    influxdb1.start()
    wait_until(
        lambda: influxdb1.count("SELECT count(batt_soc) FROM power") == 300,
        90,
        step=0.3,
        what="300 power points after InfluxDB came back",
    )
    pub.close()


def test_a_forwarder_that_dies_is_started_again_and_forwards_the_rest(
    mosquitto: Broker,
    influxdb1: Influx1,
    gateway_factory: Callable[..., Gateway],
    caplog: pytest.LogCaptureFixture,
) -> None:
    gw = gateway_factory(mosquitto.port, influx(influxdb1))
    first = gw.forwarder.proc
    assert first is not None
    now = int(time.time())
    pub = Publisher(mosquitto.host, mosquitto.port)
    send_windows(pub, "mostar-04", 2, range(1, 51), now - 500)
    wait_until(lambda: influxdb1.count("SELECT count(batt_soc) FROM power") == 50, 30)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    send_windows(pub, "mostar-04", 2, range(51, 101), now - 500)
    wait_until(
        lambda: influxdb1.count("SELECT count(batt_soc) FROM power") == 100,
        30,
        step=0.2,
        what="the rows stored after the forwarder died, in InfluxDB",
    )
    assert gw.forwarder.restarts == 1 and gw.forwarder.proc is not first
    assert any("the forwarder process ended" in r.getMessage() for r in caplog.records)
    pub.close()


def test_a_flood_of_wake_ups_neither_blocks_the_gateway_nor_garbles_the_stop(
    mosquitto: Broker, influxdb1: Influx1, gateway_factory: Callable[..., Gateway]
) -> None:
    gw = gateway_factory(mosquitto.port, influx(influxdb1, flush_s=None))
    proc = gw.forwarder.proc
    assert proc is not None
    for _ in range(300_000):  # far more than a pipe holds: the writes that find it full drop
        gw.forwarder.wake()
    now = int(time.time())
    pub = Publisher(mosquitto.host, mosquitto.port)
    send_windows(pub, "mostar-05", 1, range(1, 21), now - 100)
    wait_until(lambda: gw.counts["accepted"] == 20, 10)
    gw.stop(flush_s=10)
    # The stop message came through behind the wake-ups: a clean exit, everything forwarded.
    assert proc.returncode == 0
    assert influxdb1.count("SELECT count(batt_soc) FROM power") == 20
    pub.close()
