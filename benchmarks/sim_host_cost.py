"""Host cost of virtual benches, and the fastest speed at which twelve keep pace.

    .venv/bin/python benchmarks/sim_host_cost.py [--benches 12] [--speeds 10,30,60,120,240]
        [--seconds 20]

For each speed factor: Mosquitto, a subscriber standing in for the gateway (it also publishes
the retained Receipts, so the benches' spools drain as they would), and `klupa sim` with N
benches (one process each, the real firmware on the virtual board and its physics). After a
warm-up, it measures for `--seconds` of real time:

- CPU per bench process (user + system seconds per real second, from /proc) and its RSS;
- pace: telemetry windows received per bench against the windows its simulated time should
  hold (one a minute), and the spacing of their `ts`. A bench keeps pace when it closes at
  least 95 % of its windows and the median spacing is within 5 % of the period.

Prints one line per speed and the highest speed at which every bench kept pace.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from klupa.contract import MUNICIPALITY_IDS
from klupa.services import Broker, children

CLK_TCK = os.sysconf("SC_CLK_TCK")


class Collector:
    """Counts telemetry per bench and answers with Receipts (the gateway's part)."""

    def __init__(self, port: int) -> None:
        self.lock = threading.Lock()
        self.ts: dict[str, dict[tuple[int, int], int]] = {}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-collector")
        self.client.on_message = self.on_message
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe("klupa/v1/+/+/telemetry", 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.seen: dict[str, dict[int, list[list[int]]]] = {}

    def on_message(self, c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        body = json.loads(msg.payload)
        bench, boot, seq = body["bench"], body["boot"], body["seq"]
        with self.lock:
            self.ts.setdefault(bench, {})[(boot, seq)] = body["ts"]
        m = msg.topic.split("/")[2]
        ranges = self.seen.setdefault(bench, {}).setdefault(boot, [])
        if ranges and ranges[-1][1] + 1 == seq:
            ranges[-1][1] = seq
        else:
            ranges.append([seq, seq])
        receipt = {"v": 1, "boots": {str(boot): ranges[-32:]}}
        c.publish(f"klupa/v1/{m}/{bench}/receipt", json.dumps(receipt), 1, True)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def run(speed: float, benches: int, seconds: float, warmup: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="klupa-simcost-"))
    broker = Broker(binary=shutil.which("mosquitto") or "/usr/sbin/mosquitto", workdir=work / "mq")
    broker.workdir.mkdir()
    broker.start()
    collector = Collector(broker.port)
    names = MUNICIPALITY_IDS[:benches]
    ago = (warmup + seconds) * speed + 3600
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "klupa.cli",
            "sim",
            "--broker",
            f"127.0.0.1:{broker.port}",
            "--municipalities",
            ",".join(names),
            "--speed",
            str(speed),
            "--start-ago",
            str(ago),
            "--flash",
            str(work / "flash"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(warmup)
        kids = children(sim.pid)
        with collector.lock:
            before = {b: len(v) for b, v in collector.ts.items()}
        cpu0 = {k: cpu_s(k) for k in kids}
        t0 = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - t0
        cpu = [(cpu_s(k) - cpu0[k]) / elapsed for k in kids if Path(f"/proc/{k}").exists()]
        rss = [rss_mb(k) for k in kids if Path(f"/proc/{k}").exists()]
        with collector.lock:
            counts = {b: len(v) - before.get(b, 0) for b, v in collector.ts.items()}
            spacings: list[float] = []
            for v in collector.ts.values():
                ts = sorted(v.values())[-20:]
                spacings += [b - a for a, b in zip(ts, ts[1:], strict=False)]
        expected = elapsed * speed / 60.0
        pace = [counts.get(f"{m}-01", 0) / expected for m in names]
        spacing = statistics.median(spacings) if spacings else float("nan")
        return {
            "speed": speed,
            "benches": len(kids),
            "cpu": statistics.mean(cpu) if cpu else float("nan"),
            "rss": statistics.mean(rss) if rss else float("nan"),
            "pace_min": min(pace),
            "spacing": spacing,
            "keeps_pace": min(pace) >= 0.95 and abs(spacing - 60) <= 3,
        }
    finally:
        sim.send_signal(signal.SIGTERM)
        try:
            sim.wait(30)
        except subprocess.TimeoutExpired:
            sim.kill()
        collector.close()
        broker.kill()
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--benches", type=int, default=12)
    ap.add_argument("--speeds", default="10,30,60,120,240")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured real seconds per speed")
    ap.add_argument("--warmup", type=float, default=8.0, help="real seconds before measuring")
    args = ap.parse_args()
    best = 0.0
    print(f"{os.cpu_count()} CPUs; {args.benches} benches; {args.seconds:g} s measured per speed")
    print("speed  procs  CPU/bench  RSS/bench MB  windows kept (worst)  median ts spacing s")
    for s in (float(x) for x in args.speeds.split(",")):
        r = run(s, args.benches, args.seconds, args.warmup)
        print(
            f"×{r['speed']:<5g} {r['benches']:>5}  {100 * r['cpu']:8.1f} %  {r['rss']:12.1f}"
            f"  {100 * r['pace_min']:19.1f} %  {r['spacing']:19.1f}"
            + ("" if r["keeps_pace"] else "  (falls behind)"),
            flush=True,
        )
        if r["keeps_pace"]:
            best = max(best, s)
    print(f"highest speed at which all {args.benches} benches kept pace: ×{best:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
