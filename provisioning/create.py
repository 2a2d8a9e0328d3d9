"""`klupa provision init DIR`: a new deployment folder, or the missing parts of one."""

from __future__ import annotations

from pathlib import Path

from provisioning import broker, pki
from provisioning.deployment import (
    MUNICIPALITIES,
    Deployment,
    generate_password,
    inventory_text,
    secrets_text,
    write_private,
    write_public,
)

GITIGNORE = (
    "secrets.toml\nota/\npki/ca.key\nbrokers/*/server.key\nbrokers/*/gateway-mqtt.pass\ncache/\n"
)


def create_deployment(root: Path) -> Deployment:
    """Create what is missing, keep what exists (safe to run again), and verify the result."""
    root.mkdir(parents=True, exist_ok=True)
    inv = root / "inventory.toml"
    if not inv.exists():
        write_public(inv, inventory_text())
    sec = root / "secrets.toml"
    if not sec.exists():
        gateways = {broker.gateway_user(mid): generate_password() for mid, *_ in MUNICIPALITIES}
        write_private(sec, secrets_text(gateways))
    if not (root / ".gitignore").exists():
        write_public(root / ".gitignore", GITIGNORE)
    dep = Deployment(root)
    dep.ensure_ota_signing_key()
    ca_crt, ca_key = pki.ensure_ca(dep.pki_dir)
    for mid in dep.municipalities():
        write_broker_folder(dep, mid, ca_crt, ca_key)
    verify_deployment(dep)
    return dep


def write_broker_folder(dep: Deployment, mid: str, ca_crt: Path, ca_key: Path) -> None:
    m = dep.municipality(mid)
    out = dep.broker_dir(mid)
    out.mkdir(parents=True, exist_ok=True)
    write_public(out / "ca.crt", ca_crt.read_text())
    pki.issue_server_cert(ca_crt, ca_key, m.gateway_host, out)
    gw = broker.gateway_user(mid)
    password = dep.ensure_mqtt_password(gw)
    broker.set_password(out / "passwd", gw, password)
    write_private(out / "gateway-mqtt.pass", password + "\n")
    broker.write_acl(out / "acl", mid)
    write_public(out / "README.md", broker.pi_readme(mid, m.gateway_host, m.mqtt_port))


class DeploymentInvalid(Exception):
    pass


def verify_deployment(dep: Deployment) -> None:
    """Every municipality has a verifying gateway password, an ACL and a valid certificate."""
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
        gw = broker.gateway_user(mid)
        users = broker.read_passwd(out / "passwd")
        pw = dep.mqtt_password(gw)
        if pw is None or gw not in users or not broker.verify_password(pw, users[gw]):
            raise DeploymentInvalid(f"{out / 'passwd'} has no valid entry for {gw}")
        if f"user {gw}" not in (out / "acl").read_text():
            raise DeploymentInvalid(f"{out / 'acl'} does not name {gw}")
        if not pki.server_cert_ok(out / "server.crt", dep.pki_dir / "ca.crt", m.gateway_host):
            raise DeploymentInvalid(f"{out / 'server.crt'} is not valid for {m.gateway_host}")
