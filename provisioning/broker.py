"""A municipality's Mosquitto files: the whole broker configuration, the password file
(``$7$`` PBKDF2-SHA512), the ACL, and where each goes on the Pi (one set of paths, `PiPaths`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from klupa.contract import BENCH_KINDS, BENCH_READS, MAX_POLL_PAYLOAD, gateway_user, ops_user
from klupa.contract import ROOT as TOPIC_ROOT
from klupa.layout import Under
from provisioning.deployment import write_private, write_public

# mosquitto_passwd's own choices: 101 iterations, 12-byte salt, 64-byte SHA-512 output.
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12
# What a bench may do on its own topics, and nothing else (docs/protocol.md, Topics).
BENCH_WRITES = BENCH_KINDS
# docs/protocol.md, Payloads: at most 2,048 bytes, a Poll 4,096. The broker refuses larger payloads
# and disconnects a client whose packet is larger than the largest payload plus its header
# (fixed header 5, topic at most 2 + 90, packet id 2): nothing a bench sends legitimately.
MAX_PACKET = MAX_POLL_PAYLOAD + 512
# The gateway's loopback listener (its config's [mqtt] port).
LOCAL_PORT = 1883
PI_ROOT = PurePosixPath("/")


def hash_password(password: str, salt: bytes | None = None, iterations: int = 0) -> str:
    """The password file field ``mosquitto_passwd`` writes: ``$7$iter$salt$hash`` (base64)."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    iterations = iterations or PBKDF2_ITERATIONS
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    b64 = base64.b64encode
    return f"$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, field: str) -> bool:
    parts = field.split("$")
    if len(parts) != 5 or parts[1] != "7":
        return False
    try:
        iterations = int(parts[2])
        salt = base64.b64decode(parts[3])
        want = base64.b64decode(parts[4])
    except ValueError:
        return False
    got = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, len(want))
    return hmac.compare_digest(got, want)


def read_passwd(path: Path) -> dict[str, str]:
    users: dict[str, str] = {}
    if not path.is_file():
        return users
    for line in path.read_text(encoding="utf-8").splitlines():
        if ":" in line and not line.startswith("#"):
            user, field = line.split(":", 1)
            users[user] = field.strip()
    return users


def set_password(path: Path, user: str, password: str) -> bool:
    """Make the file hold ``user``'s hash of ``password``; True when the file changed."""
    users = read_passwd(path)
    if user in users and verify_password(password, users[user]):
        return False
    users[user] = hash_password(password)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, "".join(f"{u}:{f}\n" for u, f in users.items()))
    return True


def service_users(municipality: str) -> tuple[str, str]:
    return gateway_user(municipality), ops_user(municipality)


@dataclass(frozen=True)
class PiPaths:
    """Where each file lives on a municipality's Pi. ``root`` is "/" on the Pi; a test
    renders the same layout under a temporary folder."""

    municipality: str
    root: PurePosixPath = PI_ROOT

    # The whole file, not a conf.d drop-in: Debian's mosquitto.conf already sets
    # persistence_location, and Mosquitto refuses a second one.
    mosquitto_conf = Under[PurePosixPath]("/etc/mosquitto/mosquitto.conf")
    broker_dir = Under[PurePosixPath]("/etc/mosquitto/klupa")
    persistence_dir = Under[PurePosixPath]("/var/lib/mosquitto")
    gateway_config = Under[PurePosixPath]("/etc/klupa/gateway-{self.municipality}.toml")
    gateway_password = Under[PurePosixPath]("/etc/klupa/gateway-{self.municipality}-mqtt.pass")
    ops_password = Under[PurePosixPath]("/etc/klupa/ops-{self.municipality}-mqtt.pass")
    store = Under[PurePosixPath]("/var/lib/klupa/{self.municipality}.sqlite")

    def broker_file(self, name: str) -> PurePosixPath:
        return self.broker_dir / name


# The files of brokers/{m}/ that go to /etc/mosquitto/klupa/ as they are.
BROKER_FILES = ("passwd", "acl", "ca.crt", "server.crt", "server.key")


def bench_acl(municipality: str, bench: str) -> str:
    base = f"{TOPIC_ROOT}/{municipality}/{bench}"
    lines = [f"user {bench}"]
    lines += [f"topic write {base}/{t}" for t in BENCH_WRITES]
    lines += [f"topic read {base}/{t}" for t in BENCH_READS]
    lines.append(f"topic read {TOPIC_ROOT}/{municipality}/poll")
    return "\n".join(lines) + "\n"


def ops_acl(municipality: str) -> str:
    """Send commands and read their acks, nothing else (no telemetry, votes or receipts)."""
    base = f"{TOPIC_ROOT}/{municipality}/+"
    return f"user {ops_user(municipality)}\ntopic write {base}/cmd\ntopic read {base}/cmd/ack\n"


def acl_text(municipality: str, benches: list[str]) -> str:
    """The whole ACL: the gateway's municipality tree, the ops user's commands, then each
    bench's own topics only."""
    parts = [
        "# klupa: generated by `klupa provision`; regenerated on every register.\n",
        f"user {gateway_user(municipality)}\ntopic readwrite {TOPIC_ROOT}/{municipality}/#\n",
        ops_acl(municipality),
    ]
    parts += [bench_acl(municipality, b) for b in sorted(benches)]
    return "\n".join(parts)


def write_acl(path: Path, municipality: str) -> list[str]:
    """Regenerate the ACL from the users in the password file beside it; returns the benches."""
    users = read_passwd(path.parent / "passwd")
    benches = [u for u in users if u not in service_users(municipality)]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_public(path, acl_text(municipality, benches))
    return sorted(benches)


def mosquitto_conf(
    municipality: str,
    tls_port: int,
    root: PurePosixPath = PI_ROOT,
    local_port: int = LOCAL_PORT,
    user: str = "mosquitto",
) -> str:
    """The broker's whole configuration (`/etc/mosquitto/mosquitto.conf` on the Pi).

    ``root``, ``local_port`` and ``user`` differ only where a test starts it outside a Pi.
    """
    pi = PiPaths(municipality, root)
    f = pi.broker_file
    return f"""# Mosquitto for {municipality}'s klupa gateway: generated by `klupa provision`; install as
# {PiPaths(municipality).mosquitto_conf} (docs/operations.md). Mosquitto >= 2.0.
per_listener_settings false
allow_anonymous false
password_file {f("passwd")}
acl_file {f("acl")}
user {user}

# The gateway and `klupa gateway cmd`, on this machine only. A client id is its username, so
# no credential can take over another client's session (PROTOCOL.md, Names).
listener {local_port} 127.0.0.1
use_username_as_clientid true

# The benches, over TLS with the deployment's CA.
listener {tls_port}
use_username_as_clientid true
cafile {f("ca.crt")}
certfile {f("server.crt")}
keyfile {f("server.key")}
tls_version tlsv1.2

# A payload is at most 2,048 bytes (a Poll 4,096): larger ones are refused, and a client
# sending a larger packet is disconnected.
message_size_limit {MAX_POLL_PAYLOAD}
max_packet_size {MAX_PACKET}

# Every message reaches a subscriber at its subscription's QoS: a bench's QoS 0 flood reaches
# the gateway at QoS 1, so it waits in the bounded queue below instead of in the gateway.
upgrade_outgoing_qos true
# The gateway acknowledges only after its own commit, in groups: many messages in flight.
max_inflight_messages 1000
# While the gateway is down the broker queues for its persistent session: 12 benches make
# about 20,000 messages a day at 60-s windows, so these bounds hold about a week.
max_queued_messages 200000
max_queued_bytes 268435456
persistent_client_expiration 60d

persistence true
persistence_location {pi.persistence_dir}/
autosave_interval 60

log_dest syslog
log_type error
log_type warning
log_type notice
connection_messages true
"""


def pi_readme(municipality: str, gateway_host: str, mqtt_port: int) -> str:
    m = municipality
    pi = PiPaths(m)
    etc = pi.broker_dir
    return f"""# Mosquitto files for {m}'s gateway ({gateway_host})

Generated by `klupa provision`. `passwd`, `acl`, `server.key` and the `*-mqtt.pass` files are
secrets or their neighbours: copy them with `scp`, never by mail or a shared drive.

| file | on the Pi |
| --- | --- |
| `mosquitto.conf` | `{pi.mosquitto_conf}` (the whole broker configuration) |
| `passwd` | `{etc}/passwd` (hashed passwords, `$7$` PBKDF2-SHA512) |
| `acl` | `{etc}/acl` |
| `ca.crt`, `server.crt`, `server.key` | `{etc}/ca.crt`, `{etc}/server.crt`, `{etc}/server.key` |
| `gateway-mqtt.pass` | `{pi.gateway_password}` (`password_file` in `{pi.gateway_config}`) |
| `ops-mqtt.pass` | `{pi.ops_password}` (`klupa gateway cmd`'s user, `{ops_user(m)}`) |

Mosquitto keeps its queue in `{pi.persistence_dir}/`; the gateway its store in `{pi.store}`.
Benches connect on port {mqtt_port} (TLS); the gateway on 127.0.0.1:{LOCAL_PORT}.

First installation, from the deployment folder (Mosquitto reads `use_username_as_clientid`
only when it starts):

```sh
scp -r brokers/{m} pi@{gateway_host}:/tmp/klupa-broker
ssh pi@{gateway_host} 'cd /tmp/klupa-broker \\
    && sudo install -d -o mosquitto -g mosquitto -m 0750 {etc} \\
    && sudo install -o mosquitto -g mosquitto -m 0600 {" ".join(BROKER_FILES)} {etc}/ \\
    && sudo install -o root -g root -m 0644 mosquitto.conf {pi.mosquitto_conf} \\
    && sudo install -o root -g klupa -m 0640 gateway-mqtt.pass {pi.gateway_password} \\
    && sudo install -o root -g root -m 0600 ops-mqtt.pass {pi.ops_password} \\
    && cd / && rm -r /tmp/klupa-broker && sudo systemctl restart mosquitto'
```

After every `klupa provision register` for a {m} bench, copy the password and ACL files and
reload (Mosquitto rereads them on SIGHUP; connected clients stay connected):

```sh
cd brokers/{m} && scp passwd acl pi@{gateway_host}:/tmp/
ssh pi@{gateway_host} 'sudo install -o mosquitto -g mosquitto -m 0600 /tmp/passwd /tmp/acl {etc}/ \\
    && rm /tmp/passwd /tmp/acl && sudo systemctl reload mosquitto'
```
"""
