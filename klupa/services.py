"""Real services started as child processes on free loopback ports: Mosquitto, influxd 1.x,
VictoriaMetrics. Used by the test fixtures (testkit.services) and by `klupa demo`.
"""

from __future__ import annotations

import abc
import contextlib
import getpass
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from klupa.layout import Under


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes] | None, what: str, timeout: float = 20.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before it answered")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.5),
        ):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer on 127.0.0.1:{port} within {timeout:.0f} s")


def wait_for_http(
    url: str, proc: subprocess.Popen[bytes] | None, what: str, timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before it answered")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
            last = exc
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer at {url} within {timeout:.0f} s: {last}")


def serve_portal(db: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`klupa portal serve` on loopback ``port`` with database ``db``, once it answers."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "klupa.cli", "portal", "serve", "--db", db]
            + ["--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=out,
        )
    wait_for_http(f"http://127.0.0.1:{port}/healthz", proc, "the portal", timeout=60)
    return proc


def die_with_parent() -> None:
    """For ``Popen(preexec_fn=...)``: the child gets SIGTERM when the process that started it
    ends, however it ends (Linux ``PR_SET_PDEATHSIG``). A part started in a process group of
    its own would otherwise outlive a killed parent."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def children(pid: int) -> list[int]:
    """The ids of a process's children (Linux /proc), or [] when it has ended."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def stop_process(
    proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout: float = 10
) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@dataclass(kw_only=True)
class Service(abc.ABC):
    """What the servers below share: a program (`binary`) with a folder of its own (`workdir`),
    listening on a loopback port; its child process (`proc`), its log file and its stop."""

    binary: str
    workdir: Path
    port: int = field(default_factory=free_port)
    # In a process group of its own, a terminal's Ctrl-C reaches only the program that started
    # it (klupa demo), which stops its parts in order instead of all at once; and it is told
    # to stop when that program ends (die_with_parent).
    own_group: bool = False
    proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Self:
        """Start the server unless it is running; return once it answers."""
        if not self.running:
            self._launch()
        return self

    @abc.abstractmethod
    def _launch(self) -> None:
        """Start the child process and wait until it answers (each server's own)."""

    def spawn(
        self, argv: list[str], log_file: Path, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """Start `argv` with stdout and stderr appended to `log_file`; with `own_group`, in a
        process group of its own that is told to stop when this process ends."""
        with open(log_file, "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=log,
                cwd=cwd,
                process_group=0 if self.own_group else None,
                preexec_fn=die_with_parent if self.own_group else None,
            )
        return self.proc

    def stop(self) -> None:
        """A clean stop (SIGTERM): the server saves what it holds."""
        stop_process(self.proc)

    def kill(self) -> None:
        """SIGKILL: what the server had not saved is lost, as in a power cut."""
        stop_process(self.proc, signal.SIGKILL)


@dataclass(kw_only=True)
class HttpService(Service):
    """A server that answers HTTP on its loopback port."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# --------------------------------------------------------------------------- Mosquitto


@dataclass(kw_only=True)
class Broker(Service):
    """A real Mosquitto on a free loopback port, with its own config and persistence dir."""

    host: str = "127.0.0.1"
    tls_port: int | None = None
    ca_file: Path | None = None
    extra: str = ""
    listener_block: str = ""
    config_file = Under[Path]("mosquitto.conf", base="workdir")
    log_file = Under[Path]("mosquitto.log", base="workdir")

    def write_config(self) -> None:
        base = self.listener_block or (f"listener {self.port} 127.0.0.1\nallow_anonymous true\n")
        self.config_file.write_text(
            "per_listener_settings false\n"
            # Mosquitto started as root drops to user `mosquitto`, which cannot write our temp dir.
            + f"user {getpass.getuser()}\n"
            + base
            + "persistence true\n"
            + f"persistence_location {self.workdir}/\n"
            + "autosave_interval 1800\n"
            + "max_inflight_messages 1000\n"
            + "max_queued_messages 100000\n"
            + "log_dest stderr\n"
            + "log_type error\nlog_type warning\nlog_type notice\n"
            + self.extra
        )

    def _launch(self) -> None:
        self.write_config()
        proc = self.spawn([self.binary, "-c", str(self.config_file)], self.log_file, self.workdir)
        try:
            wait_for_port(self.port, proc, "mosquitto")
            if self.tls_port:
                wait_for_port(self.tls_port, proc, "mosquitto (TLS listener)")
        except RuntimeError as exc:
            raise RuntimeError(
                f"{exc}\n{self.log_file.read_text(errors='replace')[-2000:]}"
            ) from exc

    # stop() is clean: Mosquitto saves its persistence file; kill() loses what it had not.

    def restart(self) -> None:
        self.stop()
        self.start()


def make_ca(
    workdir: Path, hostnames: tuple[str, ...] = ("localhost", "127.0.0.1")
) -> dict[str, Path]:
    """A CA and a server certificate signed by it, made with `cryptography` for one run."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from provisioning.pki import self_signed_ca

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = self_signed_ca(ca_key, "klupa test CA", days=30, path_length=None)
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for h in hostnames:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = {
        "ca": workdir / "ca.crt",
        "cert": workdir / "server.crt",
        "key": workdir / "server.key",
    }
    paths["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return paths


# --------------------------------------------------------------------------- InfluxDB 1.x


@dataclass(kw_only=True)
class Influx1(HttpService):
    """A real influxd 1.x, its meta, data and WAL in `workdir`."""

    def _launch(self) -> None:
        d = self.workdir
        conf = d / "influxdb.conf"
        bind = free_port()
        conf.write_text(
            f'reporting-disabled = true\nbind-address = "127.0.0.1:{bind}"\n'
            f'[meta]\n  dir = "{d}/meta"\n'
            f'[data]\n  dir = "{d}/data"\n  wal-dir = "{d}/wal"\n  query-log-enabled = false\n'
            '  wal-fsync-delay = "0s"\n'
            f'[http]\n  enabled = true\n  bind-address = "127.0.0.1:{self.port}"\n'
            "  log-enabled = false\n  auth-enabled = false\n"
            "[monitor]\n  store-enabled = false\n"
            "[continuous_queries]\n  enabled = false\n"
            '[logging]\n  level = "warn"\n'
        )
        proc = self.spawn([self.binary, "-config", str(conf)], d / "influxd.log")
        wait_for_http(self.url + "/ping", proc, "influxd")

    def query(self, q: str, db: str | None = None) -> dict[str, Any]:
        params = {"q": q, "epoch": "s"}
        if db:
            params["db"] = db
        data = urllib.parse.urlencode(params).encode()
        with urllib.request.urlopen(self.url + "/query", data=data, timeout=10) as resp:
            result: dict[str, Any] = json.loads(resp.read())
        return result

    def count(self, q: str, db: str = "benches") -> int:
        """The number a ``SELECT count(…)`` query gives (summed over its rows); 0 when it gives
        none or while InfluxDB does not answer, so it can be polled while a sink catches up."""
        try:
            rows = self.rows(q, db)
        except (RuntimeError, OSError):
            return 0
        return sum(v for r in rows for k, v in r.items() if k != "time" and isinstance(v, int))

    def rows(self, q: str, db: str) -> list[dict[str, Any]]:
        """Rows of the first series of a query, as dicts by column name (tags included)."""
        out: list[dict[str, Any]] = []
        for res in self.query(q, db).get("results", []):
            if "error" in res:
                raise RuntimeError(res["error"])
            for series in res.get("series", []):
                tags = series.get("tags", {})
                for vals in series.get("values", []):
                    row = dict(zip(series["columns"], vals, strict=True))
                    row.update(tags)
                    out.append(row)
        return out


# --------------------------------------------------------------------------- VictoriaMetrics


@dataclass(kw_only=True)
class Victoria(HttpService):
    """A real VictoriaMetrics (it takes InfluxDB v2 writes), its data in `workdir`."""

    def _launch(self) -> None:
        proc = self.spawn(
            [
                self.binary,
                f"-storageDataPath={self.workdir / 'data'}",
                f"-httpListenAddr=127.0.0.1:{self.port}",
                "-retentionPeriod=100y",
                "-search.disableCache",
                "-loggerLevel=ERROR",
            ],
            self.workdir / "vm.log",
        )
        wait_for_http(self.url + "/health", proc, "victoria-metrics")

    def flush(self) -> None:
        """Make recent writes searchable now instead of after VictoriaMetrics' buffer delay."""
        with contextlib.suppress(OSError):
            urllib.request.urlopen(self.url + "/internal/force_flush", timeout=10).read()

    def export(self, match: str) -> list[dict[str, Any]]:
        """Every sample of the series matching a selector, as exported JSON lines."""
        self.flush()
        q = urllib.parse.urlencode({"match[]": match, "start": "0"})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{q}", timeout=10) as resp:
            return [json.loads(line) for line in resp.read().splitlines() if line.strip()]
