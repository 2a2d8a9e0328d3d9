"""`klupa provision init DIR`: a new deployment folder, or the missing parts of one."""

from __future__ import annotations

from pathlib import Path

from klupa.contract import MUNICIPALITY_IDS
from provisioning import broker, pki
from provisioning.deployment import (
    Deployment,
    generate_password,
    inventory_text,
    secrets_text,
    write_private,
    write_public,
)

GITIGNORE = (
    "secrets.toml",
    "ota/",
    "pki/ca.key",
    "brokers/*/server.key",
    "brokers/*/gateway-mqtt.pass",
    "brokers/*/ops-mqtt.pass",
    "cache/",
)
# The password files of the gateway's user and of the command tool's, in service_users' order.
PASS_FILES = ("gateway-mqtt.pass", "ops-mqtt.pass")


def create_deployment(root: Path) -> Deployment:
    """Create what is missing, keep what exists (safe to run again), and verify the result."""
    root.mkdir(parents=True, exist_ok=True)
    inv = root / "inventory.toml"
    if not inv.exists():
        write_public(inv, inventory_text())
    sec = root / "secrets.toml"
    if not sec.exists():
        users = {
            u: generate_password() for mid in MUNICIPALITY_IDS for u in broker.service_users(mid)
        }
        write_private(sec, secrets_text(users))
    _complete_gitignore(root / ".gitignore")
    dep = Deployment(root)
    dep.ensure_ota_signing_key()
    ca_crt, ca_key = pki.ensure_ca(dep.pki_dir)
    for mid in dep.municipalities():
        write_broker_folder(dep, mid, ca_crt, ca_key)
    verify_deployment(dep)
    return dep


def _complete_gitignore(path: Path) -> None:
    """Add the lines a folder made by an older version lacks (an ops password, say)."""
    have = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    missing = [line for line in GITIGNORE if line not in have]
    if missing:
        write_public(path, "".join(f"{line}\n" for line in [*have, *missing]))


def write_broker_folder(dep: Deployment, mid: str, ca_crt: Path, ca_key: Path) -> None:
    m = dep.municipality(mid)
    out = dep.broker_dir(mid)
    out.mkdir(parents=True, exist_ok=True)
    write_public(out / "ca.crt", ca_crt.read_text())
    pki.issue_server_cert(ca_crt, ca_key, m.gateway_host, out)
    for user, pass_file in zip(broker.service_users(mid), PASS_FILES, strict=True):
        password = dep.ensure_mqtt_password(user)
        broker.set_password(out / "passwd", user, password)
        write_private(out / pass_file, password + "\n")
    broker.write_acl(out / "acl", mid)
    write_public(out / "mosquitto.conf", broker.mosquitto_conf(mid, m.mqtt_port))
    write_public(out / "README.md", broker.pi_readme(mid, m.gateway_host, m.mqtt_port))


class DeploymentInvalid(Exception):
    pass


def verify_deployment(dep: Deployment) -> None:
    """Every municipality has verifying gateway and ops passwords, an ACL, a broker
    configuration and a valid certificate."""
    if dep.secrets_path.stat().st_mode & 0o077:
        raise DeploymentInvalid(f"{dep.secrets_path} is readable by others: chmod 600 it")
    if not dep.ota_key_path.is_file():
        raise DeploymentInvalid(f"{dep.ota_key_path} not found: run `klupa provision init` again")
    if dep.ota_key_path.stat().st_mode & 0o077:
        raise DeploymentInvalid(f"{dep.ota_key_path} is readable by others: chmod 600 it")
    dep.ota_anchor  # noqa: B018 - must load as an RSA key the benches take
    for mid in dep.municipalities():
        m = dep.municipality(mid)
        out = dep.broker_dir(mid)
        users = broker.read_passwd(out / "passwd")
        for user in broker.service_users(mid):
            pw = dep.mqtt_password(user)
            if pw is None or user not in users or not broker.verify_password(pw, users[user]):
                raise DeploymentInvalid(f"{out / 'passwd'} has no valid entry for {user}")
            if f"user {user}\n" not in (out / "acl").read_text():
                raise DeploymentInvalid(f"{out / 'acl'} does not name {user}")
        if (out / "mosquitto.conf").read_text() != broker.mosquitto_conf(mid, m.mqtt_port):
            raise DeploymentInvalid(f"{out / 'mosquitto.conf'} is not the generated one")
        if not pki.server_cert_ok(out / "server.crt", dep.pki_dir / "ca.crt", m.gateway_host):
            raise DeploymentInvalid(f"{out / 'server.crt'} is not valid for {m.gateway_host}")
