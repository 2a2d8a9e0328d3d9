"""Real services for tests: Mosquitto, InfluxDB 1.x and VictoriaMetrics on free loopback ports.

Each fixture starts the real program in a temp dir, waits until it answers, and stops it
(also when the test fails). A missing program skips its tests with a message naming it,
unless ``KLUPA_REQUIRE_SERVICES=1``, where the test fails instead.

Fixtures:

- ``mosquitto``: anonymous listener. ``.host``, ``.port``, ``.stop()``, ``.start()``
  (same port and persistence dir), ``.kill()`` (SIGKILL, no queue save), ``.restart()``.
- ``mosquitto_factory(passwords=..., acl=..., tls=..., extra=...)``: a broker with a
  password file, an ACL file and a TLS listener (CA and server certificate made per run).
- ``mosquitto_secure``: the factory's broker with users ``gateway-mostar`` / ``mostar-01``.
- ``provisioned_broker``: a deployment folder from ``klupa provision init`` with ``mostar-01``
  and ``mostar-02`` registered, its ``brokers/mostar/`` installed under a temporary root where
  the Pi keeps each file, and Mosquitto started with the generated ``mosquitto.conf``
  (rendered for that root: only the prefix, the loopback port and the user differ).
- ``influxdb1``: ``influxd`` 1.x; ``.url``, ``.query(q, db)``.
- ``victoria_metrics``: ``.url`` (accepts ``/api/v2/write`` and ``/write``), ``.query(promql)``.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import pytest

from klupa.services import (
    Broker,
    Influx1,
    Service,
    Victoria,
    free_port,
    make_ca,
    serve_portal,
    stop_process,
    wait_for_http,
    wait_for_port,
)

# Re-exported for test modules: one import line gives a test everything about services.
__all__ = [
    "Broker",
    "Influx1",
    "Victoria",
    "free_port",
    "make_ca",
    "need_program",
    "serve_portal",
    "stop_process",
    "wait_for_http",
    "wait_for_port",
]

REQUIRE_ENV = "KLUPA_REQUIRE_SERVICES"


def services_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0", "false", "no")


def find_program(name: str, *candidates: str) -> str | None:
    """The path of a program (on PATH, one of ``candidates``, or in an sbin folder), or None."""
    for cand in (name, *candidates):
        path = shutil.which(cand) or (
            cand if os.path.isabs(cand) and os.access(cand, os.X_OK) else None
        )
        if path:
            return path
    for d in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return None


def need_program(name: str, *candidates: str) -> str:
    """Return the path of a program, or skip (fail when services are required) naming it."""
    path = find_program(name, *candidates)
    if path:
        return path
    msg = f"{name} is not installed (run `make test` as root to install it with apt-get)"
    if services_required():
        pytest.fail(f"{REQUIRE_ENV}=1 but {msg}")
    pytest.skip(msg)


S = TypeVar("S", bound=Service)


def _serve(
    kind: type[S],
    program: str,
    folder: str,
    tmp_path_factory: pytest.TempPathFactory,
    stop: Callable[[S], None],
) -> Iterator[S]:
    """A fixture's body: ``kind`` of server on ``program`` in a new temp dir named ``folder``,
    yielded once it answers and stopped with ``stop`` (also when the test fails)."""
    binary = need_program(program)
    server = kind(binary=binary, workdir=tmp_path_factory.mktemp(folder))
    server.start()
    try:
        yield server
    finally:
        stop(server)


# --------------------------------------------------------------------------- Mosquitto


@pytest.fixture
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    yield from _serve(Broker, "mosquitto", "mosquitto", tmp_path_factory, Broker.kill)


def write_password_file(path: Path, passwords: dict[str, str]) -> None:
    """Hash passwords with the real `mosquitto_passwd` (so the test proves Mosquitto reads them)."""
    tool = need_program("mosquitto_passwd")
    path.write_text("")
    for user, pw in passwords.items():
        subprocess.run([tool, "-b", str(path), user, pw], check=True, capture_output=True)


DEFAULT_ACL = """\
user gateway-mostar
topic readwrite klupa/v1/mostar/#

pattern write klupa/v1/+/%u/telemetry
pattern write klupa/v1/+/%u/event
pattern write klupa/v1/+/%u/vote
pattern write klupa/v1/+/%u/status
pattern write klupa/v1/+/%u/cmd/ack
pattern read klupa/v1/+/%u/cmd
pattern read klupa/v1/+/%u/receipt
pattern read klupa/v1/+/poll
"""


@pytest.fixture
def mosquitto_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Broker]]:
    brokers: list[Broker] = []

    def make(
        passwords: dict[str, str] | None = None,
        acl: str | None = None,
        tls: bool = True,
        password_file: Path | None = None,
        acl_file: Path | None = None,
        extra: str = "",
    ) -> Broker:
        binary = need_program("mosquitto")
        workdir = tmp_path_factory.mktemp("mosquitto-secure")
        broker = Broker(binary=binary, workdir=workdir, extra=extra)
        if password_file is None:
            password_file = workdir / "passwd"
            write_password_file(password_file, passwords or {})
        if acl_file is None:
            acl_file = workdir / "acl"
            acl_file.write_text(acl if acl is not None else DEFAULT_ACL)
        block = (
            f"listener {broker.port} 127.0.0.1\n"
            "allow_anonymous false\n"
            f"password_file {password_file}\n"
            f"acl_file {acl_file}\n"
        )
        if tls:
            certs = make_ca(workdir)
            broker.tls_port = free_port()
            broker.ca_file = certs["ca"]
            block += (
                f"listener {broker.tls_port} 127.0.0.1\n"
                f"cafile {certs['ca']}\ncertfile {certs['cert']}\nkeyfile {certs['key']}\n"
            )
        broker.listener_block = block
        broker.start()
        brokers.append(broker)
        return broker

    try:
        yield make
    finally:
        for b in brokers:
            b.kill()


SECURE_USERS = {
    "gateway-mostar": "gw-secret-test",
    "mostar-01": "bench1-test",
    "mostar-02": "bench2-test",
}


@pytest.fixture
def mosquitto_secure(mosquitto_factory: Callable[..., Broker]) -> Broker:
    return mosquitto_factory(passwords=SECURE_USERS)


# --------------------------------------------------------------------------- the Pi's broker


@dataclass
class ProvisionedBroker:
    dep: Any  # provisioning.deployment.Deployment
    root: Path
    local_port: int
    tls_port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def paths(self) -> Any:  # provisioning.broker.PiPaths under root
        from provisioning.broker import PiPaths

        return PiPaths("mostar", PurePosixPath(self.root))

    @property
    def ca(self) -> str:
        return str(self.paths.broker_file("ca.crt"))

    def password(self, user: str) -> str:
        return str(self.dep.mqtt_password(user) or "")


def register_bench(dep: Any, bid: str, municipality: str = "mostar") -> None:
    """Add ``bid`` to the inventory if absent and run the `register` step for it."""
    from provisioning.steps import Run, step_register

    text = dep.inventory_path.read_text()
    if f"[benches.{bid}]" not in text:
        dep.inventory_path.write_text(
            text + f'\n[benches.{bid}]\nmunicipality = "{municipality}"\nboard = "bench-v1"\n'
        )
        dep.reload()
    step_register(Run(dep=dep, port="-", bench=dep.bench(bid)))


def local_deployment(folder: Path) -> Any:
    """A deployment folder from ``klupa provision init`` whose mostar gateway is this machine
    (``localhost``, its broker's TLS port a free one), with mostar-01 and mostar-02 registered."""
    from provisioning.create import create_deployment

    dep = create_deployment(folder)
    text = dep.inventory_path.read_text()
    text = text.replace('gateway_host = "klupa-mostar.local"', 'gateway_host = "localhost"')
    text = text.replace("mqtt_port = 8883", f"mqtt_port = {free_port()}", 1)  # mostar is first
    dep.inventory_path.write_text(text)
    dep = create_deployment(dep.root)  # a certificate and a configuration for that host
    for bid in ("mostar-01", "mostar-02"):
        register_bench(dep, bid)
    return dep


def gateway_install_argv(
    command: str, dep: Any, root: Path, broker_user: str, *more: str
) -> list[str]:
    """`klupa gateway install` (or ``uninstall``) of mostar's gateway from the deployment
    ``dep`` into the root prefix ``root``, its Mosquitto run as ``broker_user``."""
    return [
        "gateway",
        command,
        "--deployment",
        str(dep.root),
        "--municipality",
        "mostar",
        "--root",
        str(root),
        "--broker-user",
        broker_user,
        *more,
    ]


def render_broker_conf(dep: Any, root: Path, local_port: int) -> str:
    from provisioning import broker

    tls_port = dep.municipality("mostar").mqtt_port
    return broker.mosquitto_conf(
        "mostar", tls_port, PurePosixPath(root), local_port, getpass.getuser()
    )


def install_broker_folder(dep: Any, root: Path, local_port: int) -> Path:
    """brokers/mostar/ copied to where the Pi keeps each file; returns the configuration."""
    from provisioning import broker

    pi = broker.PiPaths("mostar", PurePosixPath(root))
    src = dep.broker_dir("mostar")
    Path(pi.broker_dir).mkdir(parents=True, exist_ok=True)
    for name in broker.BROKER_FILES:
        shutil.copy(src / name, Path(pi.broker_file(name)))
    Path(pi.persistence_dir).mkdir(parents=True, exist_ok=True)
    Path(pi.gateway_password).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "gateway-mqtt.pass", Path(pi.gateway_password))
    shutil.copy(src / "ops-mqtt.pass", Path(pi.ops_password))
    conf = Path(pi.mosquitto_conf)
    conf.write_text(render_broker_conf(dep, root, local_port))
    return conf


def start_pi_broker(dep: Any, work: Path) -> ProvisionedBroker:
    """Install mostar's broker folder under ``work/root`` and start Mosquitto on it; the TLS
    port is the inventory's. Stop it with ``stop_process(broker.proc)``."""
    binary = need_program("mosquitto")
    tls_port, local_port = dep.municipality("mostar").mqtt_port, free_port()
    root = work / "root"
    conf = install_broker_folder(dep, root, local_port)
    log = work / "mosquitto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=out, stderr=out)
    broker = ProvisionedBroker(dep, root, local_port, tls_port, log, proc)
    try:
        wait_for_port(local_port, proc, "mosquitto (loopback listener)")
        wait_for_port(tls_port, proc, "mosquitto (TLS listener)")
    except BaseException:
        stop_process(proc)
        raise
    return broker


@pytest.fixture
def provisioned_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProvisionedBroker]:
    need_program("mosquitto")
    work = tmp_path_factory.mktemp("pi")
    broker = start_pi_broker(local_deployment(work / "deploy"), work)
    try:
        yield broker
    finally:
        stop_process(broker.proc)


# --------------------------------------------------------------------------- InfluxDB 1.x


@pytest.fixture
def influxdb1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influx1]:
    yield from _serve(Influx1, "influxd", "influxd", tmp_path_factory, Influx1.kill)


# --------------------------------------------------------------------------- VictoriaMetrics


@pytest.fixture
def victoria_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Victoria]:
    yield from _serve(Victoria, "victoria-metrics", "victoria", tmp_path_factory, Victoria.stop)
