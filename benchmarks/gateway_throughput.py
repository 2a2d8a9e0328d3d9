"""Gateway throughput: publish -> Mosquitto -> gateway -> SQLite (durable, then acked) -> InfluxDB.

Beside it, in the same run, a bare paho receive loop that does nothing with the messages.
Both drain the same pre-queued backlog from a persistent session, so the publisher does not
compete for the CPU while we measure. Prints messages per second, the ratio to the bare
loop, resident memory, store commits per second and bytes written per message.

    .venv/bin/python benchmarks/gateway_throughput.py [N] [--batch-s S]

``--batch-s 60`` runs the gateway as the Pi's config does (the ingest log: each group durable in
the log and acknowledged, committed to SQLite when the log fills or every S seconds); the
"durable+acked" figure then counts rows as they reach SQLite, so it is a lower bound.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from klupa.services import Broker, Influx1, children
from testkit.benchrig import gateway_process, influx1_sink, start_service
from testkit.gateway import Publisher, telemetry, topic_of, wait_until, write_config

_ap = argparse.ArgumentParser(description="gateway throughput against a bare paho loop")
_ap.add_argument("n", nargs="?", type=int, default=20_000, help="messages (20,000)")
_ap.add_argument("--batch-s", type=float, default=0.0, help="[spool] batch_s (0)")
_args = _ap.parse_args()
N, BATCH_S = _args.n, _args.batch_s
BENCHES = [f"mostar-{i:02d}" for i in range(1, 13)]


def fill(broker: Broker, n: int) -> None:
    pub = Publisher(broker.host, broker.port)
    now = int(time.time())
    for i in range(n):
        b = BENCHES[i % 12]
        seq = i // 12 + 1
        pub.publish(topic_of(b, "telemetry"), telemetry(b, 5, seq, now - 2 * 86400 + seq * 60))
        if i % 1000 == 999:
            pub.wait_published()
    pub.wait_published()
    pub.close()


def bare_loop(broker: Broker, n: int) -> float:
    """Messages per second of a paho client that only counts (auto acks)."""
    got = 0
    first = last = 0.0
    done = threading.Event()

    def on_message(c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        nonlocal got, first, last
        got += 1
        if got == 1:
            first = time.perf_counter()
        if got == n:
            last = time.perf_counter()
            done.set()

    def make() -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bare", clean_session=False)
        c.on_message = on_message
        return c

    c = make()
    c.connect(broker.host, broker.port)
    c.subscribe("klupa/v1/mostar/+/telemetry", qos=1)
    c.loop(1)
    c.loop(1)
    c.disconnect()
    fill(broker, n)
    c = make()
    c.connect(broker.host, broker.port)
    c.loop_start()
    done.wait(300)
    c.disconnect()
    c.loop_stop()
    return n / (last - first)


def proc_stat(pid: int) -> dict[str, int]:
    """Memory and I/O of the gateway process and its forwarder process, summed."""
    out: dict[str, int] = {}
    for p in [pid, *children(pid)]:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith(("VmHWM", "VmRSS")):
                k = line.split(":")[0]
                out[k] = out.get(k, 0) + int(line.split()[1])
        for line in Path(f"/proc/{p}/io").read_text().splitlines():
            k, v = line.split(":")
            out[k] = out.get(k, 0) + int(v)
        out["processes"] = out.get("processes", 0) + 1
    return out


def stored(path: Path) -> tuple[int, int]:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            n = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
            row = conn.execute("SELECT value FROM counters WHERE name = 'commits'").fetchone()
            return int(n), int(row[0]) if row else 0
        finally:
            conn.close()
    except sqlite3.Error:
        return -1, 0


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="klupa-bench-"))
    broker = start_service(Broker, "mosquitto", work / "broker")
    influx = start_service(Influx1, "influxd", work / "influx")
    try:
        bare = bare_loop(broker, N)
        print(f"bare paho loop:        {bare:9.0f} msg/s  ({N} QoS 1 messages)")

        store = work / "store.sqlite"
        sinks = influx1_sink(influx.url) + "flush_interval_s = 0.5\n"
        cfg = write_config(work / "gw.toml", "mostar", broker.port, store, sinks)
        cfg.write_text(cfg.read_text().replace("[spool]\n", f"[spool]\nbatch_s = {BATCH_S}\n"))
        log = open(work / "gw.log", "wb")  # noqa: SIM115
        gw = gateway_process(cfg, stderr=log)
        wait_until(lambda: stored(store)[0] >= 0, 30)
        time.sleep(1.5)  # persistent session in place
        gw.send_signal(signal.SIGTERM)
        gw.wait(30)
        fill(broker, N)
        gw = gateway_process(cfg, stderr=log)
        t0 = time.perf_counter()
        io0 = None
        while True:
            n, _ = stored(store)
            if io0 is None and n > 0:
                io0 = proc_stat(gw.pid)
                t_first, n_first = time.perf_counter(), n
            if n >= N:
                break
            time.sleep(0.02)
        t_stored = time.perf_counter()
        st = proc_stat(gw.pid)
        rate = (N - n_first) / (t_stored - t_first)
        print(f"gateway, durable+acked: {rate:9.0f} msg/s  ({rate / bare:.0%} of the bare loop)")
        assert io0 is not None
        wb = st["write_bytes"] - io0["write_bytes"]
        print(
            f"  bytes written:        {wb / (N - n_first):9.0f} per message (to the card, WAL+db)"
        )

        wait_until(lambda: influx.count("SELECT count(batt_soc) FROM power") >= N, 300, step=0.1)
        t_influx = time.perf_counter()
        print(
            f"end to end into InfluxDB: {(N - n_first) / (t_influx - t_first):7.0f} msg/s  "
            f"(all {N} in InfluxDB {t_influx - t0:.1f} s after the gateway process started)"
        )
        st = proc_stat(gw.pid)
        print(
            f"  resident memory:      {st['VmHWM'] / 1024:9.1f} MB, sum of the peaks of "
            f"{st['processes']} processes (gateway and forwarder)"
        )
        gw.send_signal(signal.SIGTERM)
        print(f"gateway exit status on SIGTERM: {gw.wait(60)}")
        log.close()
        text = (work / "gw.log").read_text()
        commits = int(text.rsplit("stopped after ", 1)[1].split()[0])
        print(
            f"  store commits:        {commits / (t_stored - t_first):9.0f} /s while draining"
            f"  ({N / max(1, commits):.0f} messages per commit)"
        )
    finally:
        broker.kill()
        influx.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
