"""deploy/: the Mosquitto template runs in a real Mosquitto, and the gateway works through it."""

from __future__ import annotations

import getpass
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_gateway.config import load
from edge_gateway.service import Gateway
from edge_gateway.testing import Publisher, telemetry, topic_of, wait_until, write_config
from klupa.services import free_port, make_ca, stop_process, wait_for_port
from klupa.testing.services import need_program, write_password_file

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KLUPA_CMD = [sys.executable, "-m", "klupa.cli"]


def test_mosquitto_template_loads_and_carries_the_gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = need_program("mosquitto")
    certs = make_ca(tmp_path)
    pw = tmp_path / "passwd"
    write_password_file(pw, {"gateway-mostar": "gw-pass", "mostar-01": "bench-pass"})
    acl = tmp_path / "acl"
    shutil.copy(DEPLOY / "mosquitto" / "acl.example", acl)
    local, tls = free_port(), free_port()
    (tmp_path / "persist").mkdir()
    values = {
        "@PASSWORD_FILE@": str(pw),
        "@ACL_FILE@": str(acl),
        "@USER@": getpass.getuser(),
        "@LOCAL_PORT@": str(local),
        "@TLS_PORT@": str(tls),
        "@CA_FILE@": str(certs["ca"]),
        "@CERT_FILE@": str(certs["cert"]),
        "@KEY_FILE@": str(certs["key"]),
        "@PERSISTENCE_DIR@": str(tmp_path / "persist") + "/",
    }
    text = (DEPLOY / "mosquitto" / "klupa.conf.template").read_text()
    for k, v in values.items():
        text = text.replace(k, v)
    assert not re.search(r"^[^#]*@[A-Z_]+@", text, re.M), "a placeholder is left"
    text = text.replace("log_dest syslog", "log_dest stderr")
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(text)
    log = open(tmp_path / "mosquitto.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=log)
    try:
        wait_for_port(local, proc, "mosquitto (local listener)")
        wait_for_port(tls, proc, "mosquitto (TLS listener)")
        # anonymous clients are refused
        anon = mqtt.Client(CallbackAPIVersion.VERSION2)
        refused: list[bool] = []
        anon.on_connect = lambda c, u, f, r, p: refused.append(r.is_failure)
        anon.connect("127.0.0.1", local)
        anon.loop_start()
        wait_until(lambda: refused, 5)
        anon.loop_stop()
        assert refused == [True]

        cfg_path = write_config(tmp_path / "gw.toml", "mostar", local, tmp_path / "s.sqlite")
        cfg_path.write_text(
            cfg_path.read_text().replace("[mqtt]\n", '[mqtt]\nusername = "gateway-mostar"\n')
        )
        monkeypatch.setenv("KLUPA_MQTT_PASSWORD", "gw-pass")
        gw = Gateway(load(cfg_path))
        gw.start()
        try:
            wait_until(gw.connected.is_set, 10, what="gateway connected with its password")
            time.sleep(0.3)
            bench = Publisher(
                "localhost",
                tls,
                client_id="mostar-01",
                username="mostar-01",
                password="bench-pass",
                ca_file=str(certs["ca"]),
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
    finally:
        stop_process(proc)
        log.close()


def test_systemd_unit_restarts_on_failure_as_its_own_user() -> None:
    unit = (DEPLOY / "systemd" / "klupa-gateway@.service").read_text()
    assert "Restart=on-failure" in unit and "User=klupa" in unit
    assert "klupa gateway run --config /etc/klupa/gateway-%i.toml" in unit
    assert "KillSignal=SIGTERM" in unit


def test_example_config_is_valid_once_the_machine_has_its_folders_and_secrets(
    tmp_path: Path,
) -> None:
    """deploy/gateway.example.toml (the README's example) follows INTERFACES.md: `klupa gateway
    check` accepts it with the secrets in the environment and its folders present, and names
    exactly what is missing otherwise."""
    text = (DEPLOY / "gateway.example.toml").read_text()
    text = text.replace("/var/lib/klupa/", f"{tmp_path}/")
    cfg = tmp_path / "mostar.toml"
    cfg.write_text(text)
    (tmp_path / "ota").mkdir()
    env = {"PATH": "/usr/bin:/bin"}
    check = [*KLUPA_CMD, "gateway", "check", "--config", str(cfg)]
    bare = subprocess.run(check, capture_output=True, text=True, env=env, timeout=60)
    assert bare.returncode == 2
    named = sorted(re.findall(r": (\w+\.\w+): required", bare.stderr))
    assert named == ["influxdb.token", "portal.token"], bare.stderr
    env |= {"KLUPA_INFLUXDB_TOKEN": "t-influx", "KLUPA_PORTAL_TOKEN": "t-portal"}
    ok = subprocess.run(check, capture_output=True, text=True, env=env, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "t-influx" not in ok.stdout + ok.stderr and "t-portal" not in ok.stdout + ok.stderr
