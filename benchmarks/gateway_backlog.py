"""Gateway backlog drain and idle CPU.

1. Backlog: InfluxDB is down while 12 benches send a day of 60-s telemetry (17,280
   messages); the gateway stores them all; then InfluxDB comes back. Prints the time to catch
   up (target <= 60 s), beside the time the same gateway took to store them.
2. Idle: 12 benches at 60-s windows (one telemetry every 5 s on average); prints the
   gateway's CPU use (its process and the forwarder's) as a share of one core (target < 1 %).

    .venv/bin/python benchmarks/gateway_backlog.py [IDLE_SECONDS]
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from klupa.services import Broker, Influx1, children
from testkit.benchrig import gateway_process, influx1_sink, start_service, write_bytes
from testkit.gateway import Publisher, telemetry, topic_of, wait_until, write_config

BENCHES = [f"mostar-{i:02d}" for i in range(1, 13)]
DAY = 24 * 60  # 60-s windows per bench
IDLE_S = int(sys.argv[1]) if len(sys.argv) > 1 else 60


def count(path: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return -1


def tree(pid: int) -> list[int]:
    """The gateway process and its children (the forwarder process)."""
    return [pid, *children(pid)]


def cpu_seconds(pid: int) -> float:
    total = 0
    for p in tree(pid):
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="klupa-backlog-"))
    broker = start_service(Broker, "mosquitto", work / "b")
    influx = start_service(Influx1, "influxd", work / "i")
    influx.stop()
    store = work / "store.sqlite"
    cfg = write_config(work / "gw.toml", "mostar", broker.port, store, influx1_sink(influx.url))
    log = open(work / "gw.log", "wb")  # noqa: SIM115
    gw = gateway_process(cfg, stderr=log)
    try:
        wait_until(lambda: count(store) >= 0, 30)
        time.sleep(1.0)
        pub = Publisher(broker.host, broker.port)
        start = int(time.time()) - DAY * 60 - 600
        t0 = time.perf_counter()
        for i in range(DAY):
            for b in BENCHES:
                pub.publish(topic_of(b, "telemetry"), telemetry(b, 3, i + 1, start + i * 60))
            if i % 60 == 59:
                pub.wait_published()
        pub.wait_published()
        n = DAY * len(BENCHES)
        wait_until(lambda: count(store) >= n, 300, step=0.1)
        t_stored = time.perf_counter() - t0
        print(f"a day of 12 benches ({n} messages) published and stored in {t_stored:.1f} s")

        influx.start()
        t1 = time.perf_counter()

        wait_until(lambda: influx.count("SELECT count(batt_soc) FROM power") >= n, 600, step=0.2)
        drain = time.perf_counter() - t1
        print(f"backlog drain after InfluxDB came back: {drain:.1f} s (target <= 60 s)")

        # idle: 12 benches at 60-s windows
        seq = DAY + 1
        c0, w0, b0 = cpu_seconds(gw.pid), time.perf_counter(), write_bytes(gw.pid)
        next_at = w0
        k = 0
        while time.perf_counter() - w0 < IDLE_S:
            if time.perf_counter() >= next_at:
                b = BENCHES[k % 12]
                pub.publish(topic_of(b, "telemetry"), telemetry(b, 3, seq + k, int(time.time())))
                k += 1
                next_at += 5.0
            time.sleep(0.05)
        c1, w1, b1 = cpu_seconds(gw.pid), time.perf_counter(), write_bytes(gw.pid)
        print(
            f"idle CPU with 12 benches at 60-s windows: {100 * (c1 - c0) / (w1 - w0):.2f} % of a "
            f"core over {w1 - w0:.0f} s ({k} messages)"
        )
        print(f"bytes written at idle: {(b1 - b0) / max(1, k):.0f} per message (one commit each)")
        pub.close()
    finally:
        gw.send_signal(signal.SIGTERM)
        gw.wait(60)
        log.close()
        broker.kill()
        influx.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
