"""`klupa gateway install` into a root prefix, then the real parts started from exactly the
installed files: Mosquitto with its configuration, password file and ACL; the gateway from its
configuration and secrets; the backup command; and `uninstall`."""

from __future__ import annotations

import getpass
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_gateway.cli import main as gateway_main
from edge_gateway.config import load
from edge_gateway.service import Gateway
from klupa import install as I
from klupa.cli import main as klupa_main
from klupa.services import free_port, stop_process, wait_for_port
from provisioning.create import create_deployment
from provisioning.deployment import Deployment
from testkit.gateway import Publisher, telemetry, topic_of, wait_until
from testkit.services import gateway_install_argv, local_deployment, need_program

ROOT_FILES = [
    "etc/mosquitto/mosquitto.conf",
    "etc/mosquitto/klupa/passwd",
    "etc/mosquitto/klupa/acl",
    "etc/mosquitto/klupa/server.key",
    "etc/chrony/conf.d/klupa.conf",
    "etc/klupa/gateway-mostar.toml",
    "etc/klupa/gateway-mostar-mqtt.pass",
    "etc/klupa/ops-mostar-mqtt.pass",
    "etc/systemd/system/klupa-gateway@.service",
    "etc/systemd/system/klupa-backup@.service",
    "etc/systemd/system/klupa-backup@.timer",
    "etc/systemd/journald.conf.d/klupa.conf",
    "etc/systemd/system/multi-user.target.wants/klupa-gateway@mostar.service",
    "etc/systemd/system/timers.target.wants/klupa-backup@mostar.timer",
]


@pytest.fixture(scope="module")
def dep(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    return local_deployment(tmp_path_factory.mktemp("install") / "deploy")


def run_install(dep: Deployment, root: Path, port: int, *more: str) -> tuple[int, str]:
    argv = gateway_install_argv(
        "install", dep, root, getpass.getuser(), "--mqtt-port", str(port), *more
    )
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = klupa_main(argv)
    return rc, out.getvalue()


def connect(port: int, user: str, password: str) -> tuple[mqtt.Client, list[tuple[str, bytes]]]:
    got: list[tuple[str, bytes]] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user)
    c.username_pw_set(user, password)
    c.on_message = lambda _c, _u, m: got.append((m.topic, bytes(m.payload)))
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c, got


def test_install_is_idempotent_and_what_it_installs_runs(dep: Deployment, tmp_path: Path) -> None:
    root = tmp_path / "root"
    port = free_port()

    rc, out = run_install(dep, root, port, "--dry-run")
    assert rc == 0 and "would create" in out and not root.exists()

    rc, out = run_install(dep, root, port)
    assert rc == 0, out
    for f in ROOT_FILES:
        assert (root / f).exists() or (root / f).is_symlink(), f
    mode = lambda f: (root / f).stat().st_mode & 0o777  # noqa: E731
    assert mode("etc/klupa/gateway-mostar-mqtt.pass") == 0o640
    assert mode("etc/klupa/gateway-mostar.toml") == 0o640
    assert mode("etc/klupa/ops-mostar-mqtt.pass") == 0o600
    assert mode("etc/mosquitto/klupa/passwd") == 0o600
    link = root / "etc/systemd/system/multi-user.target.wants/klupa-gateway@mostar.service"
    assert os.readlink(link) == "/etc/systemd/system/klupa-gateway@.service"

    rc, out = run_install(dep, root, port)
    assert rc == 0 and "nothing to change" in out, out
    assert "keep " in out and "gateway-mostar.toml" in out

    # an edit of the gateway's configuration is kept; a changed broker file is put back
    cfg = root / "etc/klupa/gateway-mostar.toml"
    cfg.write_text(cfg.read_text().replace("offline_after_s = 300", "offline_after_s = 600"))
    (root / "etc/mosquitto/klupa/acl").write_text("# tampered\n")
    rc, out = run_install(dep, root, port)
    assert "update" in out and "acl" in out and "offline_after_s = 600" in cfg.read_text()

    # Mosquitto from exactly the installed files
    binary = need_program("mosquitto")
    log = open(tmp_path / "mosquitto.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [binary, "-c", str(root / "etc/mosquitto/mosquitto.conf")], stdout=log, stderr=log
    )
    gw: Gateway | None = None
    try:
        wait_for_port(port, proc, "mosquitto")
        # a bench's credential: its own topics yes, another bench's no
        watch, got = connect(port, "gateway-mostar", dep.mqtt_password("gateway-mostar") or "")
        watch.subscribe("klupa/v1/mostar/#", qos=1)
        time.sleep(0.3)
        bench, _ = connect(port, "mostar-01", dep.mqtt_password("mostar-01") or "")
        bench.publish("klupa/v1/mostar/mostar-01/event", b"own", qos=1).wait_for_publish(5)
        bench.publish("klupa/v1/mostar/mostar-02/event", b"other", qos=1).wait_for_publish(5)
        wait_until(lambda: got, 5, what="the bench's own message")
        time.sleep(0.5)
        assert [p for _, p in got if p in (b"own", b"other")] == [b"own"]
        for c in (bench, watch):
            c.disconnect()
            c.loop_stop()

        # the gateway from the installed configuration and its secret file
        gw = Gateway(load(cfg))
        gw.clock_synced = lambda: True  # this container's kernel clock state is not the Pi's
        gw.start()
        wait_until(gw.connected.is_set, 10, what="the installed gateway to connect")
        time.sleep(0.3)
        pub = Publisher(
            "127.0.0.1",
            port,
            client_id="mostar-01",
            username="mostar-01",
            password=dep.mqtt_password("mostar-01"),
        )
        pub.publish(
            topic_of("mostar-01", "telemetry"), telemetry("mostar-01", 1, 1, int(time.time()))
        )
        pub.wait_published()
        # The installed config batches commits for the SD card ([spool] batch_s = 90): the
        # message is acknowledged from the ingest log, and a clean stop commits the log.
        assert gw.cfg.spool.batch_s == 90
        wait_until(lambda: gw is not None and len(gw.logged) == 1, 10, what="in the ingest log")
        pub.close()
        gw.stop(flush_s=1)
        assert gw.counts["accepted"] == 1
        gw = None
    finally:
        if gw is not None:
            gw.stop(flush_s=1)
        stop_process(proc)
        log.close()
    store = root / "var/lib/klupa/mostar.sqlite"
    assert store.exists()

    # the backup the timer runs
    backups = root / "var/backups/klupa"
    (backups / "mostar-2020-01-01.sqlite").write_bytes(b"old")
    assert gateway_main(["backup", "--config", str(cfg), "--dir", str(backups)]) == 0
    made = sorted(p.name for p in backups.iterdir())
    assert (
        len(made) == 1 and made[0].startswith("mostar-20") and made[0] != "mostar-2020-01-01.sqlite"
    )
    conn = sqlite3.connect(backups / made[0])
    assert conn.execute("SELECT count(*) FROM messages WHERE seq = 1").fetchone()[0] == 1
    conn.close()

    # uninstall keeps the data; --purge removes it
    assert klupa_main(gateway_install_argv("uninstall", dep, root, getpass.getuser())) == 0
    assert not (root / "etc/systemd/system/klupa-gateway@.service").exists()
    assert not link.is_symlink()
    assert store.exists() and cfg.exists()
    run_install(dep, root, port)
    uninstall = gateway_install_argv("uninstall", dep, root, getpass.getuser(), "--purge")
    assert klupa_main(uninstall) == 0
    assert not store.exists() and not cfg.exists()


def test_systemd_units_verify_where_systemd_analyze_exists(tmp_path: Path) -> None:
    """`systemd-analyze verify` reads each unit as systemd would: unknown keys, bad values,
    missing programs are printed (its exit status stays 0 for a warning, so none may be)."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    klupa = shutil.which("klupa") or str(Path(sys.executable).parent / "klupa")
    units = {
        "klupa-gateway@.service": I.gateway_unit(klupa=klupa),
        "klupa-backup@.service": I.backup_service(klupa=klupa),
        "klupa-backup@.timer": I.BACKUP_TIMER,
    }
    for name, text in units.items():
        (tmp_path / name).write_text(text)
    r = subprocess.run(
        [
            tool,
            "verify",
            "./klupa-gateway@mostar.service",
            "./klupa-backup@mostar.service",
            "./klupa-backup@mostar.timer",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 0 and "klupa-" not in r.stdout + r.stderr, r.stdout + r.stderr
    # and it does see a broken unit
    (tmp_path / "klupa-gateway@.service").write_text(units["klupa-gateway@.service"] + "Bogus=1\n")
    r = subprocess.run(
        [tool, "verify", "./klupa-gateway@mostar.service"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert "Bogus" in r.stdout + r.stderr


def test_deploy_folder_holds_what_install_writes() -> None:
    repo = Path(__file__).resolve().parents[2]
    assert (repo / "deploy/systemd/klupa-gateway@.service").read_text() == I.gateway_unit()
    assert (repo / "deploy/systemd/klupa-backup@.service").read_text() == I.backup_service()
    assert (repo / "deploy/systemd/klupa-backup@.timer").read_text() == I.BACKUP_TIMER
    assert (repo / "deploy/journald/klupa.conf").read_text() == I.JOURNALD
    assert (repo / "deploy/chrony/klupa.conf").read_text() == I.CHRONY


def test_install_names_what_is_missing(tmp_path: Path) -> None:
    d = create_deployment(tmp_path / "deploy")
    shutil.rmtree(d.broker_dir("mostar"), ignore_errors=True)
    rc, _ = run_install(d, tmp_path / "root", 1883)
    assert rc == 1
