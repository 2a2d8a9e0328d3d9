"""Gateway memory under a flood from one bench: QoS 0 (which bypasses the broker's in-flight
window) and QoS 1, as fast as one client can publish.

Prints the gateway's resident memory (gateway + forwarder processes) at rest and at its peak
during each flood, and the peak's ratio to the resting figure in the same run; and that the
gateway still stores a good record afterwards. Target: peak under 100 MB.

    .venv/bin/python benchmarks/gateway_flood.py [N]
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from klupa.services import Broker
from testkit.benchrig import gateway_process, rss_kb, start_service
from testkit.gateway import Publisher, dumps, telemetry, topic_of, wait_until, write_config

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
T = topic_of("mostar-01", "telemetry")


class Peak(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_kb(self.pid))
            time.sleep(0.05)


def counters(store: Path) -> dict[str, int]:
    import sqlite3

    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        return {n: int(v) for n, v in conn.execute("SELECT name, value FROM counters")}
    finally:
        conn.close()


def flood(broker: Broker, gw_pid: int, qos: int, n: int) -> tuple[int, float]:
    pub = Publisher(broker.host, broker.port, client_id="mostar-01")
    now = int(time.time())
    payload = dumps(telemetry("mostar-01", 9, 1, now))
    peak = Peak(gw_pid)
    peak.start()
    t0 = time.perf_counter()
    for i in range(n):
        pub.client.publish(
            T,
            payload if qos == 0 else payload.replace(b'"seq":1,', f'"seq":{i + 2},'.encode()),
            qos=qos,
        )
        if qos and i % 1000 == 999:
            pub.wait_published()
    pub.wait_published()
    dt = time.perf_counter() - t0
    time.sleep(3)
    peak.stop.set()
    peak.join()
    pub.close()
    return peak.peak, n / dt


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="klupa-flood-"))
    broker = start_service(Broker, "mosquitto", work / "b")
    store = work / "store.sqlite"
    cfg = write_config(work / "gw.toml", "mostar", broker.port, store)
    gw = gateway_process(cfg)
    try:
        wait_until(lambda: store.exists(), 30)
        time.sleep(2)
        rest = rss_kb(gw.pid)
        print(f"at rest:            {rest / 1024:6.1f} MB (baseline)")
        for qos in (0, 1):
            peak, rate = flood(broker, gw.pid, qos, N)
            print(
                f"QoS {qos} flood of {N}: {rate:8.0f} msg/s published, peak {peak / 1024:6.1f} MB "
                f"({peak / rest:.2f}x rest)"
            )
        good = Publisher(broker.host, broker.port, client_id="mostar-01")
        good.publish(T, telemetry("mostar-01", 10, 1, int(time.time())))
        good.wait_published()
        good.close()
        time.sleep(40)  # the counters are saved every 30 s
        gw.send_signal(signal.SIGTERM)
        gw.wait(60)
        c = counters(store)
        print(
            f"after: accepted {c.get('accepted', 0)}, rejected qos0 {c.get('rejected:qos0', 0)},"
            f" duplicates {c.get('duplicates', 0)}; gateway exit {gw.returncode}"
        )
    finally:
        if gw.poll() is None:
            gw.kill()
        broker.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
