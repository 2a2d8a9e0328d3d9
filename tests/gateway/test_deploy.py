"""deploy/: the Mosquitto template runs in a real Mosquitto, and the gateway works through it."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from edge_gateway.config import load
from edge_gateway.service import Gateway
from testkit.gateway import Publisher, telemetry, topic_of, wait_until, write_config
from testkit.services import ProvisionedBroker

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KLUPA_CMD = [sys.executable, "-m", "klupa.cli"]


def test_the_generated_broker_carries_the_gateway_with_its_installed_config(
    provisioned_broker: ProvisionedBroker, tmp_path: Path
) -> None:
    """The gateway, configured as docs/operations.md installs it (its own user, its password
    file at the Pi's path), stores a bench's telemetry sent over TLS and receipts it."""
    pi = provisioned_broker
    cfg_path = write_config(
        Path(pi.paths.gateway_config), "mostar", pi.local_port, Path(pi.paths.store)
    )
    cfg_path.write_text(
        cfg_path.read_text().replace(
            "[mqtt]\n",
            f'[mqtt]\nusername = "gateway-mostar"\npassword_file = "{pi.paths.gateway_password}"\n',
        )
    )
    Path(pi.paths.store).parent.mkdir(parents=True, exist_ok=True)
    gw = Gateway(load(cfg_path))
    gw.start()
    try:
        wait_until(gw.connected.is_set, 10, what="gateway connected with its password file")
        time.sleep(0.3)
        bench = Publisher(
            "localhost",
            pi.tls_port,
            client_id="mostar-01",
            username="mostar-01",
            password=pi.password("mostar-01"),
            ca_file=pi.ca,
        )
        bench.subscribe(topic_of("mostar-01", "receipt"))
        bench.publish(
            topic_of("mostar-01", "telemetry"), telemetry("mostar-01", 2, 1, int(time.time()))
        )
        bench.wait_published()
        wait_until(lambda: gw.counts["accepted"] == 1, 5, what="stored via TLS")
        wait_until(lambda: bench.received, 5, what="the receipt through the ACL")
        bench.close()
    finally:
        gw.stop(flush_s=1)


def test_systemd_unit_restarts_on_failure_as_its_own_user() -> None:
    unit = (DEPLOY / "systemd" / "klupa-gateway@.service").read_text()
    assert "Restart=on-failure" in unit and "User=klupa" in unit
    assert "klupa gateway run --config /etc/klupa/gateway-%i.toml" in unit
    assert "KillSignal=SIGTERM" in unit


def test_example_config_is_valid_once_the_machine_has_its_folders_and_secrets(
    tmp_path: Path,
) -> None:
    """deploy/gateway.example.toml (the README's example) follows docs/interfaces.md: `klupa gateway
    check` accepts it with the secrets in the environment and its folders present, and names
    exactly what is missing otherwise."""
    text = (DEPLOY / "gateway.example.toml").read_text()
    text = text.replace("/var/lib/klupa/", f"{tmp_path}/").replace("/etc/klupa/", f"{tmp_path}/")
    cfg = tmp_path / "mostar.toml"
    cfg.write_text(text)
    (tmp_path / "ota").mkdir()
    (tmp_path / "gateway-mostar-mqtt.pass").write_text("t-mqtt\n")
    env = {"PATH": "/usr/bin:/bin"}
    check = [*KLUPA_CMD, "gateway", "check", "--config", str(cfg)]
    bare = subprocess.run(check, capture_output=True, text=True, env=env, timeout=60)
    assert bare.returncode == 2
    named = sorted(re.findall(r": (\w+\.\w+): required", bare.stderr))
    assert named == ["influxdb.token", "portal.token"], bare.stderr
    env |= {"KLUPA_INFLUXDB_TOKEN": "t-influx", "KLUPA_PORTAL_TOKEN": "t-portal"}
    ok = subprocess.run(check, capture_output=True, text=True, env=env, timeout=60)
    assert ok.returncode == 0, ok.stderr
    for secret in ("t-influx", "t-portal", "t-mqtt"):
        assert secret not in ok.stdout + ok.stderr
