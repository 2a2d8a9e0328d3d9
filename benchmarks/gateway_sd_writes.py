"""Bytes the gateway writes to its SD card per message at idle.

12 benches at 60-s windows (one telemetry every 5 s, round robin), for DURATION seconds
(default 600), into a gateway with an InfluxDB 1.x sink, both real. Bytes written are read
from /proc/PID/io (write_bytes: what reached the block layer) of the gateway and its forwarder
process. Target: <= 4 KB per message. Measured with the Pi's configuration (`[spool]
batch_s = 90`, as `klupa gateway install` writes it: messages durable in the ingest log,
committed to the store every 90 s) and, as the baseline in the same run, with each group
committed to the store as it comes (batch_s = 0); the payload bytes are printed too.

    .venv/bin/python benchmarks/gateway_sd_writes.py [DURATION] [--no-sinks] [--batch-s N]
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from klupa.services import Broker, Influx1
from testkit.benchrig import gateway_process, influx1_sink, start_service, write_bytes
from testkit.gateway import Publisher, dumps, telemetry, topic_of, wait_until, write_config

DURATION = float(sys.argv[1]) if len(sys.argv) > 1 else 600.0
SINKS = "--no-sinks" not in sys.argv  # the gateway alone, to see the forwarder's share
BATCH_S = float(sys.argv[sys.argv.index("--batch-s") + 1]) if "--batch-s" in sys.argv else 90.0
BENCHES = [f"mostar-{i:02d}" for i in range(1, 13)]


def measure(batch_s: float) -> tuple[float, float]:
    """(bytes written per message, payload bytes per message) for one gateway run."""
    work = Path(tempfile.mkdtemp(prefix="klupa-sd-", dir="/var/tmp"))
    broker = start_service(Broker, "mosquitto", work / "b")
    influx = start_service(Influx1, "influxd", work / "i")
    store = work / "store.sqlite"
    sinks = influx1_sink(influx.url) if SINKS else ""
    cfg = write_config(work / "gw.toml", "mostar", broker.port, store, sinks)
    cfg.write_text(
        cfg.read_text().replace(f'path = "{store}"\n', f'path = "{store}"\nbatch_s = {batch_s}\n')
    )
    gw = gateway_process(cfg)
    pub = Publisher(broker.host, broker.port)
    try:
        wait_until(lambda: store.exists(), 30)
        # Warm-up: each bench seen once (its first record is a health change, written with
        # the bench's state), and the start-up writes (schema) done; then the idle stream.
        for b in BENCHES:
            pub.publish(topic_of(b, "telemetry"), telemetry(b, 3, 1, int(time.time())))
        pub.wait_published()
        time.sleep(35)  # past the first save of the counters
        b0, t0 = write_bytes(gw.pid), time.monotonic()
        k, payload = 12, 0
        next_at = t0
        while time.monotonic() - t0 < DURATION:
            if time.monotonic() >= next_at:
                b = BENCHES[k % 12]
                body = dumps(telemetry(b, 3, k // 12 + 1, int(time.time())))
                pub.publish(topic_of(b, "telemetry"), body)
                payload += len(body)
                k += 1
                next_at += 5.0
            time.sleep(0.05)
        b1 = write_bytes(gw.pid)
        k -= 12
        return (b1 - b0) / max(1, k), payload / max(1, k)
    finally:
        pub.close()
        gw.send_signal(signal.SIGTERM)
        gw.wait(60)
        influx.kill()
        broker.kill()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    base, _ = measure(0)
    per, payload = measure(BATCH_S)
    n = int(DURATION // 5)
    print("sinks:", "InfluxDB 1.x" if SINKS else "none")
    print(
        f"about {n} messages in {DURATION:.0f} s per run, one every 5 s (12 benches at 60-s windows)"
    )
    print(f"bytes written per message, batch_s = {BATCH_S:g}: {per:,.0f} B (target <= 4,096)")
    print(
        f"baseline, batch_s = 0 (each message committed alone): {base:,.0f} B; ratio {per / base:.2f}"
    )
    print(f"payload per message: {payload:,.0f} B")
    print(
        f"per day for 12 benches: {per * 17280 / 1e6:,.0f} MB (baseline {base * 17280 / 1e6:,.0f} MB)"
    )


if __name__ == "__main__":
    main()
