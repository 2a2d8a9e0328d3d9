"""System (HIL) scenarios: against virtual benches by default, or a real bench and broker.

`pytest hil_tests --port /dev/ttyUSB0 --broker HOST:PORT` points the scenarios that can run
on hardware at a real bench; those that need control of the physics (sun, battery, Wi-Fi,
power) skip there, with the reason.

The `system` fixture starts what a municipality runs: Mosquitto (from the services plugin),
the real gateway as a child process (`klupa gateway run`), optionally InfluxDB 1.x and the
portal, and virtual benches through `klupa sim` (one process per bench, the unchanged
firmware on the virtual board driven by the physics). Time is accelerated and starts in the
past; the sim stops when the benches' clocks reach now, because the gateway refuses records
from the future.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from boards.virtual.physics import COORDINATES, solar_elevation
from klupa.services import Broker, Influx1, free_port, serve_portal, stop_process
from testkit.gateway import wait_until as poll_until
from testkit.services import need_program

KLUPA = [sys.executable, "-m", "klupa.cli"]
RECORD_KINDS = ("telemetry", "event", "vote", "cmd/ack")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("klupa hil")
    group.addoption("--port", default=None, help="serial port of a real bench (default: virtual)")
    group.addoption("--broker", default=None, help="HOST:PORT of the real bench's broker")


@pytest.fixture
def real_bench(request: pytest.FixtureRequest) -> str | None:
    port: str | None = request.config.getoption("--port")
    return port


@pytest.fixture
def needs_physics(real_bench: str | None) -> None:
    if real_bench:
        pytest.skip(
            "needs control of the bench's physics, which a real bench on a port does not give"
        )


# --------------------------------------------------------------------------- helpers


def wait_until(pred: Callable[[], Any], timeout: float, what: str, step: float = 0.2) -> Any:
    """Poll ``pred`` until truthy; fail the test naming ``what`` after ``timeout`` s."""
    return poll_until(pred, timeout, step, what)


def window(
    municipality: str, length_s: float, want_day: bool, within_s: float = 40 * 3600
) -> float:
    """Seconds ago at which a span of ``length_s`` starts that is wholly night (sun below
    −6°) or wholly day (sun above 8°) at the municipality, ending at least 10 min ago."""
    lat, lon = COORDINATES[municipality]
    now = time.time()
    for ago in range(int(length_s) + 600, int(within_s), 300):
        start = now - ago
        els = [solar_elevation(lat, lon, start + k * 300) for k in range(int(length_s // 300) + 1)]
        if (want_day and min(els) > 8) or (not want_day and max(els) < -6):
            return float(ago)
    raise AssertionError(f"no {'day' if want_day else 'night'} span of {length_s} s found")


@dataclass
class Record:
    bench: str
    boot: int
    seq: int
    kind: str
    ts: int
    body: dict[str, Any]


class Portal:
    """`klupa portal serve` on a free port, with an admin token and one gateway token, and the
    municipality's benches `{m}-01` to `{m}-09` in its registry (`klupa portal bench import`)."""

    def __init__(self, workdir: Path, municipality: str = "mostar") -> None:
        self.workdir = workdir
        self.municipality = municipality
        self.db = workdir / "portal.sqlite"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def token(self, *args: str) -> str:
        out = subprocess.run(
            [*KLUPA, "portal", "token", "create", *args, "--db", str(self.db)],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return out.stdout.strip().splitlines()[-1]

    def register_benches(self) -> None:
        inventory = self.workdir / "inventory.toml"
        inventory.write_text(
            "".join(
                f'[benches.{self.municipality}-{n:02d}]\nmunicipality = "{self.municipality}"\n'
                for n in range(1, 10)
            )
        )
        subprocess.run(
            [*KLUPA, "portal", "bench", "import", str(inventory), "--db", str(self.db)],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def bench_add(self, bench: str, *args: str) -> None:
        """`klupa portal bench add BENCH MUNICIPALITY ARGS` (e.g. `--vote-cap 200`)."""
        subprocess.run(
            [*KLUPA, "portal", "bench", "add", bench, self.municipality, *args]
            + ["--db", str(self.db)],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        self.admin = self.token("--admin")
        self.register_benches()
        self.proc = serve_portal(str(self.db), self.port, self.workdir / "portal.log")

    def get(self, path: str) -> Any:
        r = httpx.get(
            self.url + path, headers={"Authorization": f"Bearer {self.admin}"}, timeout=30
        )
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        r = httpx.post(
            self.url + path,
            json=body,
            headers={"Authorization": f"Bearer {self.admin}"},
            timeout=30,
        )
        r.raise_for_status()
        return r.json()

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(query, params).fetchall()
        finally:
            conn.close()

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM, timeout=15)


class System:
    """One municipality's stack on this machine, and its virtual benches."""

    def __init__(self, workdir: Path, broker: Broker, municipality: str = "mostar") -> None:
        self.workdir = workdir
        self.broker = broker
        self.m = municipality
        self.store_path = workdir / "gateway.sqlite"
        self.flash = workdir / "flash"
        self.gateway: subprocess.Popen[bytes] | None = None
        self.influx: Influx1 | None = None
        self.portal: Portal | None = None
        self.sims: list[subprocess.Popen[bytes]] = []
        self.gateway_starts = 0
        # The deployment's OTA signing key of this system (its benches trust its anchor).
        self.ota_key_file = workdir / "ota-signing-key.pem"

    def ota_anchor(self) -> str:
        """The anchor the benches' configs name; the key is made the first time."""
        from provisioning import signing

        if not self.ota_key_file.exists():
            self.ota_key_file.write_text(signing.to_pem(signing.generate()))
        return signing.anchor(signing.load(self.ota_key_file))

    # -- services
    def with_influx(self) -> Influx1:
        influxd = need_program("influxd")  # skips, or fails under KLUPA_REQUIRE_SERVICES=1
        self.influx = Influx1(binary=influxd, workdir=self.workdir / "influxdb")
        self.influx.workdir.mkdir(exist_ok=True)
        self.influx.start()
        return self.influx

    def with_portal(self) -> Portal:
        self.portal = Portal(self.workdir, self.m)
        self.portal.start()
        return self.portal

    def gateway_config(self) -> Path:
        lines = [
            f'municipality = "{self.m}"',
            "[mqtt]",
            'host = "127.0.0.1"',
            f"port = {self.broker.port}",
            "[spool]",
            f'path = "{self.store_path}"',
            "[health]",
            "offline_after_s = 600",
            "[clock]",  # this machine's kernel may call its clock unsynchronised (a container)
            "require_sync = false",
        ]
        if self.influx is not None:
            lines += [
                "[influxdb]",
                f'url = "{self.influx.url}"',
                "api_version = 1",
                'database = "benches"',
                "flush_interval_s = 0.5",
            ]
        if self.portal is not None:
            token_file = self.workdir / "portal.token"
            if not token_file.exists():
                token_file.write_text(self.portal.token(self.m))
                token_file.chmod(0o600)
            lines += [
                "[portal]",
                f'url = "{self.portal.url}"',
                f'token_file = "{token_file}"',
                "poll_sync_s = 2",
            ]
        path = self.workdir / "gateway.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start_gateway(self) -> subprocess.Popen[bytes]:
        config = self.gateway_config()
        self.gateway_starts += 1
        with (self.workdir / "gateway.log").open("ab") as log:
            self.gateway = subprocess.Popen(
                [*KLUPA, "gateway", "run", "--config", str(config)], stdout=log, stderr=log
            )
        wait_until(
            lambda: self.log_has("connected to", self.gateway_starts),
            30,
            "the gateway to connect",
        )
        time.sleep(0.3)  # its subscription is in place a round trip after CONNACK
        return self.gateway

    def log_has(self, text: str, times: int = 1) -> bool:
        log = self.workdir / "gateway.log"
        return log.exists() and log.read_text(errors="replace").count(text) >= times

    def kill_gateway(self) -> None:
        assert self.gateway is not None
        self.gateway.kill()
        self.gateway.wait(10)

    def stop_gateway(self) -> None:
        if self.gateway is not None and self.gateway.poll() is None:
            stop_process(self.gateway, signal.SIGTERM, timeout=20)

    # -- benches
    def bench_config(self, bench: str, **tuning: Any) -> None:
        """Write the bench's config.json before its first boot (the sim keeps an existing one),
        with tuning keys such as ``resend_s`` or ``period``."""
        root = self.flash / bench
        root.mkdir(parents=True, exist_ok=True)
        cfg: dict[str, Any] = {
            "bench": bench,
            "municipality": self.m,
            "wifi": {"ssid": "klupa-sim", "password": "virtual"},
            "mqtt": {"host": "127.0.0.1", "port": self.broker.port, "user": bench},
            "ntp": "127.0.0.1",
            "ota_pub": self.ota_anchor(),
        }
        cfg.update(tuning)
        (root / "config.json").write_text(json.dumps(cfg))

    def sim(
        self,
        benches: list[str],
        speed: float,
        start_ago: float,
        duration: float = 0.0,
        *extra: str,
    ) -> subprocess.Popen[bytes]:
        argv = [
            *KLUPA,
            "sim",
            "--broker",
            f"127.0.0.1:{self.broker.port}",
            "--benches",
            ",".join(benches),
            "--speed",
            str(speed),
            "--start-ago",
            str(start_ago),
            "--flash",
            str(self.flash),
            *extra,
        ]
        if duration:
            argv += ["--duration", str(duration)]
        with (self.workdir / "sim.log").open("ab") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=log)
        self.sims.append(proc)
        return proc

    def run_sim(
        self, benches: list[str], speed: float, start_ago: float, duration: float, *extra: str
    ) -> None:
        """Run the sim until its simulated duration is over (or the benches reach now)."""
        proc = self.sim(benches, speed, start_ago, duration, *extra)
        limit = (min(duration, start_ago) if duration else start_ago) / speed + 60
        rc = proc.wait(limit)
        assert rc == 0, f"klupa sim ended with {rc}: {self.sim_log()[-2000:]}"

    def settle(self, benches: list[str], timeout: float = 60.0) -> None:
        """With a `--catch-up` sim running: wait until each bench's clock reached now and the
        store holds its records up to now without a hole (backlogs drained), then stop."""

        def done() -> bool:
            for bench in benches:
                recs = self.records(bench=bench)
                tele = [r for r in recs if r.kind == "telemetry"]
                if not tele or tele[-1].ts < time.time() - 150 or seq_gaps(recs):
                    return False
            return True

        wait_until(done, timeout, f"{', '.join(benches)} to deliver everything up to now", 0.5)
        self.stop_sims()
        # What the benches sent while stopping (a last window, the offline Status) lands.
        last = -1
        while (n := len(self.records())) != last:
            last = n
            time.sleep(1.0)

    def stop_sims(self) -> None:
        for proc in self.sims:
            if proc.poll() is None:
                stop_process(proc, signal.SIGTERM, timeout=15)

    def sim_log(self) -> str:
        log = self.workdir / "sim.log"
        return log.read_text(errors="replace") if log.exists() else ""

    # -- reading the gateway's store
    def records(self, kind: str | None = None, bench: str | None = None) -> list[Record]:
        if not self.store_path.exists():
            return []
        conn = sqlite3.connect(f"file:{self.store_path}?mode=ro", uri=True, timeout=10)
        try:
            rows = conn.execute(
                "SELECT bench, boot, seq, kind, ts, body FROM messages "
                "WHERE kind IN ('telemetry','event','vote','cmd/ack') ORDER BY boot, seq"
            ).fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            conn.close()
        out = [Record(b, bo, s, k, ts, json.loads(body)) for b, bo, s, k, ts, body in rows]
        return [
            r
            for r in out
            if (kind is None or r.kind == kind) and (bench is None or r.bench == bench)
        ]

    def counter(self, name: str) -> int:
        conn = sqlite3.connect(f"file:{self.store_path}?mode=ro", uri=True, timeout=10)
        try:
            row = conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        finally:
            conn.close()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.stop_sims()
        self.stop_gateway()
        if self.portal is not None:
            self.portal.stop()
        if self.influx is not None:
            self.influx.stop()


def seq_gaps(records: list[Record]) -> dict[int, list[int]]:
    """Missing sequence numbers per boot, between the first and last stored."""
    by_boot: dict[int, set[int]] = {}
    for r in records:
        by_boot.setdefault(r.boot, set()).add(r.seq)
    gaps: dict[int, list[int]] = {}
    for boot, seqs in by_boot.items():
        missing = sorted(set(range(min(seqs), max(seqs) + 1)) - seqs)
        if missing:
            gaps[boot] = missing
    return gaps


@pytest.fixture
def system(needs_physics: None, mosquitto: Broker, tmp_path: Path) -> Iterator[System]:
    sys_ = System(tmp_path, mosquitto)
    try:
        yield sys_
    finally:
        sys_.close()


@pytest.fixture
def hil() -> dict[str, Any]:
    """Helpers for the scenarios (test files cannot import siblings)."""
    return {"wait_until": wait_until, "window": window, "seq_gaps": seq_gaps}
