"""`klupa demo`: the whole system on this machine, with no hardware and no configuration.

Starts, each on a free loopback port in one work folder: Mosquitto; the portal (with an admin
token, a token per municipality and an open sample poll in every municipality, Bosnian
questions and Serbian in Cyrillic where the municipality uses it); `influxd` when installed;
one gateway per municipality; and the twelve benches as virtual benches running the real
firmware. The benches replay the last day quickly (a day in twelve minutes, ×120: the fastest
at which twelve benches kept pace on a 2-core machine, benchmarks/README.md) and then run in
real time. Ctrl-C stops everything in reverse order.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from klupa import shipped
from klupa.console import Parser
from klupa.contract import MUNICIPALITIES, MUNICIPALITY_IDS
from klupa.contract.datafile import DataFile
from klupa.services import (
    Broker,
    Influx1,
    die_with_parent,
    free_port,
    stop_process,
    wait_for_http,
)
from provisioning.deployment import inventory_text


@dataclass(frozen=True)
class SampleQuestion:
    bs: str  # Bosnian
    sr: str = ""  # Serbian in Cyrillic, shown where Cyrillic is official


def _questions(data: DataFile) -> dict[str, SampleQuestion]:
    found = data.table(SampleQuestion, "questions")
    if set(found) != set(MUNICIPALITY_IDS):
        raise data.fail("questions", f"needs one for each of {', '.join(MUNICIPALITY_IDS)}")
    return found


# The sample poll's question in each municipality: klupa/demo_polls.toml.
QUESTIONS = _questions(DataFile.read("klupa", "demo_polls.toml"))


def sample_poll(municipality: str, now: int) -> dict[str, object]:
    asked = QUESTIONS[municipality]
    question: dict[str, str] = {"bs": asked.bs}
    yes: dict[str, str] = {"bs": "Da"}
    no: dict[str, str] = {"bs": "Ne"}
    # Republika Srpska: Cyrillic is official there.
    if MUNICIPALITIES[municipality].entity == "RS" and asked.sr:
        question["sr"] = asked.sr
        yes["sr"] = "Да"
        no["sr"] = "Не"
    question["en"] = "Sample question (demo)"
    yes["en"] = "Yes"
    no["en"] = "No"
    return {
        "v": 1,
        "id": f"{municipality}-demo-{time.strftime('%Y', time.gmtime(now))}",
        "opens": now - 3 * 86400,
        "closes": now + 30 * 86400,
        "question": question,
        "options": [{"id": "yes", "label": yes}, {"id": "no", "label": no}],
        "municipalities": [municipality],
    }


class Demo:
    def __init__(self, workdir: Path, args: argparse.Namespace) -> None:
        self.workdir = workdir
        self.args = args
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.broker: Broker | None = None
        self.influx: Influx1 | None = None
        self.klupa = [sys.executable, "-P", "-m", "klupa.cli"]

    def log(self, line: str) -> None:
        print(f"klupa demo: {line}", flush=True)

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        # Its own process group: a Ctrl-C reaches only this program, which stops the parts in
        # reverse order (benches, then gateways while the portal can still take their last
        # flush, then the portal, InfluxDB and the broker).
        # SIGTERM when this program ends however it ends, killed included (die_with_parent).
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=log,
            cwd=self.workdir,
            process_group=0,
            preexec_fn=die_with_parent,
        )
        log.close()
        self.procs.append((name, proc))
        return proc

    def token(self, *args: str) -> str:
        out = subprocess.run(
            [*self.klupa, "portal", "token", "create", *args, "--db", str(self.portal_db)],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip().splitlines()[-1]

    def start(self) -> None:
        """The broker, the portal, InfluxDB where installed, a gateway per municipality and
        the benches, in that order (stop() ends them in reverse)."""
        broker = self.start_broker()
        portal_url, tokens = self.start_portal()
        self.start_influx()
        self.start_gateways(broker.port, portal_url, tokens)
        self.start_benches(broker.port)
        print(f"\n  Portal:  {portal_url}/\n  Benches: {portal_url}/benches\n", flush=True)
        self.log(f"logs in {self.workdir}; Ctrl-C stops everything")

    def start_broker(self) -> Broker:
        mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(mosquitto).exists():
            raise SystemExit("klupa demo: mosquitto is not installed (run `make demo` as root)")
        self.broker = Broker(binary=mosquitto, workdir=self.workdir / "mosquitto", own_group=True)
        self.broker.workdir.mkdir(exist_ok=True)
        self.broker.start()
        self.log(f"Mosquitto on 127.0.0.1:{self.broker.port}")
        return self.broker

    def start_portal(self) -> tuple[str, dict[str, str]]:
        """The portal with its registry, a token per municipality and a sample poll in each;
        its URL and the tokens."""
        self.portal_db = self.workdir / "portal.sqlite"
        admin = self.token("--admin")
        # The benches' registry, from the deployment's inventory: each municipality's token
        # writes its own benches only.
        inventory = self.workdir / "inventory.toml"
        inventory.write_text(inventory_text(), encoding="utf-8")
        subprocess.run(
            [*self.klupa, "portal", "bench", "import", str(inventory), "--db", str(self.portal_db)],
            check=True,
            capture_output=True,
            text=True,
        )
        tokens = {m: self.token(m) for m in MUNICIPALITY_IDS}
        self.portal_port = self.args.portal_port or free_port()
        portal_url = f"http://127.0.0.1:{self.portal_port}"
        self.spawn(
            "portal",
            [
                *self.klupa,
                "portal",
                "serve",
                "--db",
                str(self.portal_db),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.portal_port),
            ],
        )
        wait_for_http(portal_url + "/healthz", self.procs[-1][1], "the portal", timeout=60)
        now = int(time.time())
        for m in MUNICIPALITY_IDS:
            self.post_json(f"{portal_url}/api/v1/polls", sample_poll(m, now), admin)
        self.log(f"portal on {portal_url} with a sample poll in each municipality")
        return portal_url, tokens

    def start_influx(self) -> None:
        influxd = shutil.which("influxd")
        if influxd:
            self.influx = Influx1(binary=influxd, workdir=self.workdir / "influxdb", own_group=True)
            self.influx.workdir.mkdir(exist_ok=True)
            self.influx.start()
            self.log(f"InfluxDB 1.x on {self.influx.url} (database `benches`)")
        else:
            self.log("influxd not installed: metrics are kept in the gateways' stores only")

    def start_gateways(self, broker_port: int, portal_url: str, tokens: dict[str, str]) -> None:
        for m in MUNICIPALITY_IDS:
            token_file = self.workdir / f"{m}.token"
            token_file.write_text(tokens[m])
            token_file.chmod(0o600)
            config = self.workdir / f"gateway-{m}.toml"
            config.write_text(self.gateway_config(m, broker_port, portal_url, token_file))
            self.spawn(f"gateway-{m}", [*self.klupa, "gateway", "run", "--config", str(config)])
        self.log(f"{len(MUNICIPALITY_IDS)} gateways, one per municipality")

    def gateway_config(self, m: str, broker_port: int, portal_url: str, token_file: Path) -> str:
        """The gateway of municipality `m`: the broker, its spool, the portal, InfluxDB."""
        lines = [
            f'municipality = "{m}"',
            "[mqtt]",
            'host = "127.0.0.1"',
            f"port = {broker_port}",
            "[spool]",
            f'path = "{self.workdir / (m + ".sqlite")}"',
            "[portal]",
            f'url = "{portal_url}"',
            f'token_file = "{token_file}"',
            "poll_sync_s = 10",
            "[health]",
            "offline_after_s = 300",
            f'expected = ["{m}-01"]',
            # The demo runs on any laptop, NTP or not: the gateways say so in their log.
            "[clock]",
            "require_sync = false",
        ]
        if self.influx:
            lines += [
                "[influxdb]",
                f'url = "{self.influx.url}"',
                "api_version = 1",
                'database = "benches"',
            ]
        return "\n".join(lines) + "\n"

    def start_benches(self, broker_port: int) -> None:
        self.spawn(
            "benches",
            [
                *self.klupa,
                "sim",
                "--broker",
                f"127.0.0.1:{broker_port}",
                "--municipalities",
                ",".join(MUNICIPALITY_IDS),
                "--speed",
                str(self.args.speed),
                "--start-ago",
                str(self.args.replay_hours * 3600),
                "--catch-up",
                "--seed",
                str(self.args.seed),
                "--flash",
                str(self.workdir / "benches"),
                "--people",
                "4",
            ],
        )
        self.log(
            f"12 virtual benches replaying the last {self.args.replay_hours} h at ×{self.args.speed}, "
            "then in real time"
        )

    def post_json(self, url: str, body: dict[str, object], token: str) -> None:
        req = urllib.request.Request(
            url,
            data=json.dumps(body, ensure_ascii=False).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            urllib.request.urlopen(req, timeout=10).read()
        except urllib.error.HTTPError as exc:
            if exc.code != 409:  # already there from an earlier run
                raise SystemExit(
                    f"klupa demo: portal refused the sample poll: {exc.read()!r}"
                ) from exc

    def watch(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds if seconds else None
        while deadline is None or time.monotonic() < deadline:
            for name, proc in self.procs:
                if proc.poll() is not None:
                    tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-1500:]
                    raise SystemExit(f"klupa demo: {name} exited ({proc.returncode}):\n{tail}")
            time.sleep(0.5)

    def stop(self) -> None:
        # The parts are in their own process groups: a second Ctrl-C must not cut this short
        # and leave them running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for _, proc in reversed(self.procs):
            stop_process(proc, signal.SIGTERM, timeout=15)
        if self.influx:
            self.influx.stop()
        if self.broker:
            self.broker.stop()


def main(argv: list[str]) -> int:
    parser = Parser(prog="klupa demo", description=__doc__)
    parser.add_argument("--dir", type=Path, help="work folder (default: a new temp folder)")
    parser.add_argument("--portal-port", type=int, default=8080, help="portal port (0: any free)")
    parser.add_argument(
        "--speed", type=float, default=120.0, help="replay speed (120: a day in 12 min)"
    )
    parser.add_argument(
        "--replay-hours", type=int, default=24, help="how much of the past to replay"
    )
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long (0: Ctrl-C)")
    args = parser.parse_args(argv)
    check_parts()
    if args.portal_port and not _port_free(args.portal_port):
        args.portal_port = 0
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="klupa-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    demo = Demo(workdir.resolve(), args)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)  # a closed terminal stops the parts too
    try:
        demo.start()
        demo.watch(args.seconds)
    except KeyboardInterrupt:
        demo.log("stopping")
    except SystemExit as exc:
        demo.stop()
        print(exc, file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - stop what was started; one line, no traceback
        demo.stop()
        detail = getattr(exc, "stderr", None) or ""
        last = detail.strip().splitlines()[-1:] if isinstance(detail, str) else []
        print(f"klupa demo: {type(exc).__name__}: {exc}", *last, file=sys.stderr)
        return 1
    demo.stop()
    return 0


def check_parts() -> None:
    """What the demo's processes run, found before any of them starts: a missing part or library
    is one line (klupa.cli says which extra holds it), not a process that dies later."""
    import edge_gateway.service  # noqa: F401
    import portal.server  # noqa: F401

    shipped.firmware_dir()


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
