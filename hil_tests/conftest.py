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

The `serial_bench` fixture is a bench reached only through its serial port and its broker:
the real one of --port/--broker, else a virtual one in a process of its own on a
pseudo-terminal (testkit/serialbench.py), with the same `System` around it; its console is
captured and attached to a failed test's report (docs/hil.md, "Serial-only scenarios").
"""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from boards.virtual.physics import solar_elevation
from klupa.contract import MUNICIPALITIES
from klupa.services import Broker, Influx1, free_port, serve_portal, stop_process
from testkit.gateway import wait_until as poll_until
from testkit.services import need_program

KLUPA = [sys.executable, "-m", "klupa.cli"]
RECORD_KINDS = ("telemetry", "event", "vote", "cmd/ack")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("klupa hil")
    group.addoption("--port", default=None, help="serial port of a real bench (default: virtual)")
    group.addoption("--broker", default=None, help="HOST:PORT of the real bench's broker")
    group.addoption(
        "--bench", default=None, help="the real bench's id (default: learned from its birth)"
    )
    group.addoption(
        "--ota-key",
        default=None,
        help="the deployment's OTA signing key (ota/signing-key.pem) the real bench trusts",
    )


@pytest.fixture
def real_bench(request: pytest.FixtureRequest) -> str | None:
    port: str | None = request.config.getoption("--port")
    return port


@pytest.fixture
def needs_physics(request: pytest.FixtureRequest, real_bench: str | None) -> None:
    """Skip on a real bench, naming what the scenario needs: the module's ``NEEDS_PHYSICS``
    (a reason, or reasons by test name) says which control of the sun, battery, people,
    Wi-Fi, power or fleet it takes, and which serial-only scenario covers the rest."""
    if real_bench:
        needs = getattr(request.module, "NEEDS_PHYSICS", None)
        if isinstance(needs, dict):
            needs = needs.get(request.node.originalname)
        pytest.skip(f"needs {needs or 'control of the physics, which a real bench does not give'}")


# --------------------------------------------------------------------------- helpers


def wait_until(pred: Callable[[], Any], timeout: float, what: str, step: float = 0.2) -> Any:
    """Poll ``pred`` until truthy; fail the test naming ``what`` after ``timeout`` s."""
    return poll_until(pred, timeout, step, what)


def window(
    municipality: str, length_s: float, want_day: bool, within_s: float = 40 * 3600
) -> float:
    """Seconds ago at which a span of ``length_s`` starts that is wholly night (sun below
    −6°) or wholly day (sun above 8°) at the municipality, ending at least 10 min ago."""
    lat, lon = MUNICIPALITIES[municipality].lat, MUNICIPALITIES[municipality].lon
    now = time.time()
    for ago in range(int(length_s) + 600, int(within_s), 300):
        start = now - ago
        els = [solar_elevation(lat, lon, start + k * 300) for k in range(int(length_s // 300) + 1)]
        if (want_day and min(els) > 8) or (not want_day and max(els) < -6):
            return float(ago)
    raise AssertionError(f"no {'day' if want_day else 'night'} span of {length_s} s found")


def yes_no_poll(poll_id: str, now: int, municipality: str) -> dict[str, Any]:
    """A portal poll ``poll_id`` in ``municipality``, yes or no, open from three days before
    ``now`` to a day after."""
    return {
        "v": 1,
        "id": poll_id,
        "opens": now - 3 * 86400,
        "closes": now + 86400,
        "question": {"bs": "Da li želite više klupa?", "en": "More benches?"},
        "options": [
            {"id": "yes", "label": {"bs": "Da", "en": "Yes"}},
            {"id": "no", "label": {"bs": "Ne", "en": "No"}},
        ],
        "municipalities": [municipality],
    }


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
            f'host = "{self.broker.host}"',
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
def municipality_system(needs_physics: None, tmp_path: Path) -> Iterator[Callable[[str], System]]:
    """Another municipality's stack with a Mosquitto of its own, as each Pi runs one (a
    fleet-wide scenario): ``municipality_system("jablanica")``, in ``tmp_path / "jablanica"``."""
    made: list[System] = []

    def make(m: str) -> System:
        (tmp_path / m / "mosquitto").mkdir(parents=True)
        broker = Broker(binary=need_program("mosquitto"), workdir=tmp_path / m / "mosquitto")
        broker.start()
        made.append(System(tmp_path / m, broker, m))
        return made[-1]

    try:
        yield make
    finally:
        for sys_ in made:
            sys_.close()
            sys_.broker.kill()


@pytest.fixture
def hil() -> dict[str, Any]:
    """Helpers for the scenarios (test files cannot import siblings)."""
    return {
        "wait_until": wait_until,
        "window": window,
        "seq_gaps": seq_gaps,
        "yes_no_poll": yes_no_poll,
    }


# --------------------------------------------------------------------------- serial-only bench
#
# A bench reached only through its serial port and its broker (docs/hil.md, "Serial-only
# scenarios"): a real one from --port/--broker, else a virtual one in a process of its own
# (testkit/serialbench.py) on a pseudo-terminal. Its console is captured from the start and
# attached to the report of a failed test.

SERIAL_CONSOLE = pytest.StashKey[Any]()
VIRTUAL_SPEED, VIRTUAL_AGO = 10.0, 1800.0  # the virtual bench's clock, until it reaches now


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    console = item.stash.get(SERIAL_CONSOLE, None)
    if console is not None and report.failed and report.when in ("setup", "call"):
        report.sections.append(("Captured serial console", console.text()[-30000:]))


@dataclass
class ExternalBroker:
    """A broker at --broker that the tests did not start: used as it is, never stopped."""

    host: str
    port: int

    def kill(self) -> None:
        pytest.skip(f"the broker at {self.host}:{self.port} is not the tests' own to stop")

    def start(self) -> None:
        pass


def broker_for(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Virtual: the `mosquitto` fixture. Real: Mosquitto started here on --broker's port when
    that port is free on this machine (the bench provisioned with this machine's address),
    else the broker already there."""
    target = request.config.getoption("--broker")
    if not request.config.getoption("--port"):
        return request.getfixturevalue("mosquitto")
    if not target:
        pytest.fail("--port names a real bench: give its broker too, --broker HOST:PORT")
    host, port = target.rsplit(":", 1)
    import socket

    with socket.socket() as probe:
        probe.settimeout(2)
        taken = probe.connect_ex(("127.0.0.1", int(port))) == 0
    if taken or host not in ("127.0.0.1", "0.0.0.0", "localhost") and not _is_mine(host):
        return ExternalBroker(host, int(port))
    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    broker = Broker(
        binary=need_program("mosquitto"),
        workdir=workdir,
        port=int(port),
        listener_block=f"listener {port}\nallow_anonymous true\n",
    )
    broker.start()
    request.addfinalizer(broker.kill)
    return broker


def _is_mine(host: str) -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


class BirthWatch:
    """The Status messages of a municipality's benches as the broker delivers them, retained
    ones too: (bench, state, boot) in arrival order, from before the bench under test starts."""

    def __init__(self, host: str, port: int, municipality: str) -> None:
        import paho.mqtt.client as mqtt

        self.seen: list[tuple[str, str, int | None]] = []
        self.lock = threading.Lock()
        self.topic = f"klupa/v1/{municipality}/+/status"
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="klupa-hil-watch")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(self.topic, qos=1)
        self.client.connect(host, port)
        self.client.loop_start()
        time.sleep(0.3)  # subscribed (and again after a broker restart: on_connect)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            body = json.loads(msg.payload)
            entry = (str(body["bench"]), str(body["state"]), body.get("boot"))
        except (ValueError, KeyError, TypeError):
            return
        with self.lock:
            self.seen.append(entry)

    def mark(self) -> int:
        with self.lock:
            return len(self.seen)

    def boots(self, bench: str, since: int = 0, upto: int | None = None) -> list[int]:
        """Boot numbers of the bench's online births in ``seen[since:upto]``, in order."""
        with self.lock:
            part = self.seen[since:upto]
        return [b for n, st, b in part if n == bench and st == "online" and isinstance(b, int)]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@dataclass
class SerialBench:
    """The bench under test, reached through ``console`` and the broker, with the system the
    scenario runs around it (its own gateway, store, InfluxDB, portal)."""

    console: Any  # testkit.serialbench.SerialConsole
    system: System
    bench: str
    pace: float  # bench seconds per real second (the virtual bench's clock; a real one: 1)
    virtual: Any = None  # testkit.serialbench.VirtualSerialBench, or None for a real bench
    births: BirthWatch | None = None

    def online(self, since: int, bench_s: float = 120) -> int:
        """The boot number of the first online birth the bench published after the watcher's
        ``since`` mark, of a boot newer than every boot seen before the mark (a bench that
        reconnects publishes its birth again, and one from before a reset may arrive late)."""
        assert self.births is not None
        births = self.births

        def birth() -> int | None:
            known = max(births.boots(self.bench, upto=since), default=0)
            return next((b for b in births.boots(self.bench, since=since) if b > known), None)

        boot: int = self.wait(birth, bench_s, f"an online birth of {self.bench}")
        return boot

    def mark(self) -> int:
        """A mark in the births seen so far, once the bench's current boot is known (its
        retained or live birth; at most 120 s of the bench's time)."""
        assert self.births is not None
        births = self.births
        with contextlib.suppress(TimeoutError):
            self.wait(lambda: births.boots(self.bench), 120, f"a birth of {self.bench}")
        return births.mark()

    def close(self) -> None:
        if self.births is not None:
            self.births.close()

    def boots(self) -> list[Record]:
        return [r for r in self.system.records("event", self.bench) if r.body["type"] == "boot"]

    def wait(self, pred: Callable[[], Any], bench_s: float, what: str) -> Any:
        """Wait until ``pred``: ``bench_s`` of the bench's time, plus a margin."""
        return wait_until(pred, bench_s / self.pace + 30, what)

    def next_boot(self, after: int, bench_s: float = 120) -> Record:
        """The `boot` event of the first boot after boot number ``after``."""

        def newer() -> Record | None:
            return next((r for r in self.boots() if r.boot > after), None)

        boot: Record = self.wait(newer, bench_s, f"{self.bench} to boot after boot {after}")
        return boot

    def last_boot(self) -> int:
        boots = self.boots()
        return boots[-1].boot if boots else 0

    def fresh_boot(self) -> Record:
        """A reset on EN, then the `boot` event of the bench's new boot, in the store (the
        gateway runs); the new boot is the one whose birth follows the reset."""
        since = self.mark()
        self.console.hard_reset()
        boot = self.boot_event(self.online(since))
        if boot.body["safe"]:  # a real bench left in safe mode: `reboot` tries normal mode
            assert self.command("reboot").body["ok"]
            boot = self.next_boot(boot.boot)
        return boot

    def healthy(self, boot: Record) -> list[Record]:
        """Wait until ``boot`` ran 75 s with windows (healthy after 60 s: safe mode's count
        is 0 again); its windows."""
        recs: list[Record] = self.wait(
            lambda: (w := self.windows(boot.boot)) and w[-1].ts - boot.ts >= 75 and w,
            150,
            f"75 s of boot {boot.boot}",
        )
        return recs

    def boot_event(self, boot: int) -> Record:
        def stored() -> Record | None:
            return next((r for r in self.boots() if r.boot == boot), None)

        event: Record = self.wait(stored, 120, f"the boot event of boot {boot}")
        return event

    def period(self) -> int:
        tele = self.system.records("telemetry", self.bench)
        return int(tele[-1].body["period"]) if tele else 60

    def windows(self, boot: int) -> list[Record]:
        return [r for r in self.system.records("telemetry", self.bench) if r.boot == boot]

    def wait_windows(self, boot: int, n: int) -> list[Record]:
        """At least ``n`` telemetry windows of ``boot`` stored."""
        recs: list[Record] = self.wait(
            lambda: len(w := self.windows(boot)) >= n and w,
            (n + 2) * self.period() + 60,
            f"{n} windows of boot {boot} of {self.bench}",
        )
        return recs

    def command(self, op: str, args: dict[str, Any] | None = None, cid: str = "") -> Record:
        """Publish a Command to the bench (as `klupa gateway cmd` does) and wait for its ack
        in the gateway's store; the newest ack with that id."""
        import paho.mqtt.client as mqtt

        cid = cid or f"hil-{op}-{time.monotonic_ns()}"
        known = len(self.acks(cid))
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"klupa-hil-{cid}")
        client.connect(self.system.broker.host, self.system.broker.port)
        client.loop_start()
        try:
            body = {"id": cid, "op": op, "args": args or {}}
            topic = f"klupa/v1/{self.system.m}/{self.bench}/cmd"
            client.publish(topic, json.dumps(body), qos=1).wait_for_publish(10)
        finally:
            client.loop_stop()
            client.disconnect()
        acks: list[Record] = self.wait(
            lambda: len(a := self.acks(cid)) > known and a, 120, f"the ack of {op} ({cid})"
        )
        return acks[-1]

    def acks(self, cid: str) -> list[Record]:
        return [r for r in self.system.records("cmd/ack", self.bench) if r.body["id"] == cid]


def learn_bench(broker: Any, console: Any) -> tuple[str, str]:
    """A real bench's id and municipality, from the birth it publishes after a reset."""
    import paho.mqtt.client as mqtt

    births: list[dict[str, Any]] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="klupa-hil-learn")
    client.on_message = lambda c, u, m: (
        births.append(json.loads(m.payload)) if not m.retain else None
    )
    client.connect(broker.host, broker.port)
    client.subscribe("klupa/v1/+/+/status", qos=1)
    client.loop_start()
    try:
        time.sleep(0.5)
        console.hard_reset()
        birth = wait_until(
            lambda: next((b for b in births if b.get("state") == "online"), None),
            180,
            "the bench's online birth after a reset (is --broker the one it publishes to?)",
        )
    finally:
        client.loop_stop()
        client.disconnect()
    bench = str(birth["bench"])
    return bench, bench.rsplit("-", 1)[0]  # a bench id is {municipality}-NN


@pytest.fixture
def serial_bench(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SerialBench]:
    """A bench reached only through its serial port and its broker: the real one of
    --port/--broker, else a virtual one in a process of its own on a pseudo-terminal (its
    config names the test's Mosquitto, a window every 10 s, re-sends after 120 s)."""
    from testkit.serialbench import SerialConsole, VirtualSerialBench

    broker = broker_for(request, tmp_path)
    log = tmp_path / "serial.log"
    port: str | None = request.config.getoption("--port")
    virtual = None
    if port:
        console = SerialConsole(port, log)
        request.node.stash[SERIAL_CONSOLE] = console
        bench = request.config.getoption("--bench")
        if bench:
            m = bench.rsplit("-", 1)[0]
        else:
            bench, m = learn_bench(broker, console)
        system = System(tmp_path, broker, m)
        births = BirthWatch(broker.host, broker.port, m)
        key = request.config.getoption("--ota-key")
        if key:  # bundles for the real bench are signed with the deployment's key
            system.ota_key_file = Path(key)
        pace = 1.0
    else:
        bench = "mostar-01"
        system = System(tmp_path, broker, "mostar")
        system.bench_config(bench, period=10, resend_s=120)
        births = BirthWatch(broker.host, broker.port, "mostar")  # before the bench's first
        virtual = VirtualSerialBench(
            system.flash / bench, speed=VIRTUAL_SPEED, start_ago=VIRTUAL_AGO
        )
        console = SerialConsole(virtual.start(), log)
        request.node.stash[SERIAL_CONSOLE] = console
        pace = VIRTUAL_SPEED
    sb = SerialBench(console, system, bench, pace, virtual, births)
    try:
        yield sb
    finally:
        sb.close()
        system.close()
        console.close()
        if virtual is not None:
            virtual.stop()
