"""Raw-bytes fuzzing of the gateway's judging and storing, at 10,000 Hypothesis examples.

Runs tests/gateway/test_raw_bytes.py with KLUPA_HYPOTHESIS_EXAMPLES (default 10,000) and
prints the examples run, the time, and the time per example next to a baseline measured in
the same run: judging and storing one valid telemetry message the same way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def baseline(n: int = 2000) -> float:
    from edge_gateway.config import load
    from edge_gateway.service import Gateway, Incoming
    from testkit.gateway import dumps, telemetry, write_config

    with tempfile.TemporaryDirectory() as d:
        gw = Gateway(load(write_config(Path(d) / "g.toml", "mostar", 1, Path(d) / "s.sqlite")))
        now = int(time.time())
        t0 = time.perf_counter()
        for seq in range(1, n + 1):
            payload = dumps(telemetry("mostar-01", 1, seq, now))
            gw._store(
                [Incoming(-1, 1, 1, "klupa/v1/mostar/mostar-01/telemetry", payload, now)], now
            )
        dt = time.perf_counter() - t0
        gw.store.close()
    return dt / n


def main() -> int:
    n = int(os.environ.get("KLUPA_HYPOTHESIS_EXAMPLES", "10000"))
    base = baseline()
    t0 = time.perf_counter()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/gateway/test_raw_bytes.py",
            "--hypothesis-show-statistics",
        ],
        cwd=ROOT,
        env={**os.environ, "KLUPA_HYPOTHESIS_EXAMPLES": str(n)},
        capture_output=True,
        text=True,
    )
    dt = time.perf_counter() - t0
    print(r.stdout[-1500:])
    status = "clean" if r.returncode == 0 else "FAILED"
    print(f"raw-bytes fuzz: {n} examples, {status}, {dt:.1f} s ({dt / n * 1000:.2f} ms each)")
    print(f"baseline (one valid telemetry judged and stored): {base * 1000:.2f} ms each")
    print(f"ratio: {dt / n / base:.1f}x the baseline per example")
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
