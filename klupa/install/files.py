"""The texts of the files `klupa gateway install` writes: the systemd units, chrony's and
journald's drop-ins, and the gateway's first configuration.

Each path inside them is under the install's root (``at_root``), so a ``--root DIR`` install
points into its prefix. With the default root, the units and the chrony and journald files
are the ones in ``deploy/`` (tests/ops/test_install.py holds them equal).
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath

from klupa.contract import gateway_user

KLUPA_BIN = "/opt/klupa/venv/bin/klupa"


def at_root(root: str, path: str) -> str:
    """``path`` (absolute) under the install's root: ``/`` on the Pi, a prefix in the tests."""
    return str(PurePosixPath(root) / path.lstrip("/"))


def gateway_unit(root: str = "/", klupa: str = KLUPA_BIN) -> str:
    etc = at_root(root, "/etc/klupa")
    state = at_root(root, "/var/lib/klupa")
    # systemd makes these (owned by the service's user) only at their standard places
    dirs = "StateDirectory=klupa\nConfigurationDirectory=klupa\n" if root == "/" else ""
    return f"""# One gateway per municipality: `systemctl enable --now klupa-gateway@mostar`
# reads {etc}/gateway-mostar.toml (its MQTT password: {etc}/gateway-mostar-mqtt.pass,
# its store: {state}/mostar.sqlite). Installed by `klupa gateway install`;
# see docs/operations.md.
[Unit]
Description=klupa bench gateway (%i)
Documentation=file:///opt/klupa/docs/operations.md
# time-sync.target: a Pi has no battery clock; the gateway judges records by its own clock,
# so it starts once chrony has set it (and itself checks the kernel's sync state too).
After=network-online.target time-sync.target mosquitto.service
Wants=network-online.target time-sync.target
Requires=mosquitto.service

[Service]
Type=simple
User=klupa
Group=klupa
ExecStartPre={klupa} gateway check --config {etc}/gateway-%i.toml
ExecStart={klupa} gateway run --config {etc}/gateway-%i.toml
# SIGTERM: stop taking messages, store and acknowledge what was taken, flush, exit 0.
# systemd signals the whole group; the forwarder process (the sinks) ignores it and is
# stopped by the gateway after its last commit, so nothing is cut off mid-batch.
KillSignal=SIGTERM
TimeoutStopSec=60
Restart=on-failure
RestartSec=5
# Secrets may come from the environment instead of the config (KLUPA_MQTT_PASSWORD, ...).
EnvironmentFile=-{etc}/gateway-%i.env
{dirs}NoNewPrivileges=true
ProtectSystem=strict
ProtectHome=true
PrivateTmp=true
ReadWritePaths={state}

[Install]
WantedBy=multi-user.target
"""


def backup_service(root: str = "/", klupa: str = KLUPA_BIN) -> str:
    etc = at_root(root, "/etc/klupa")
    backups = at_root(root, "/var/backups/klupa")
    return f"""# The store's daily online backup (SQLite's backup API), 14 days kept.
[Unit]
Description=klupa gateway store backup (%i)

[Service]
Type=oneshot
User=klupa
Group=klupa
ExecStart={klupa} gateway backup --config {etc}/gateway-%i.toml --dir {backups} --keep-days 14
Nice=10
IOSchedulingClass=idle
NoNewPrivileges=true
ProtectSystem=strict
ProtectHome=true
ReadWritePaths={backups}
"""


BACKUP_TIMER = """[Unit]
Description=daily klupa gateway store backup (%i)

[Timer]
OnCalendar=*-*-* 03:30:00
RandomizedDelaySec=20min
Persistent=true

[Install]
WantedBy=timers.target
"""

JOURNALD = """# klupa: bound the journal on an SD card.
[Journal]
SystemMaxUse=200M
MaxRetentionSec=30day
"""

CHRONY = """# /etc/chrony/conf.d/klupa.conf: the Pi serves time to its benches.
# A bench's default NTP server is its MQTT host (the gateway), and a bench sends no records
# until its clock is set, so the gateway machine must answer NTP on the benches' network.
# The benches' Wi-Fi may use any private range: all are allowed, so none is left without
# time. Narrow it to the benches' subnet where the Pi also faces other networks.
allow 10.0.0.0/8
allow 172.16.0.0/12
allow 192.168.0.0/16
allow fc00::/7
# Keep serving (at a high stratum) while the upstream servers are unreachable: benches need
# a consistent clock more than a perfect one.
local stratum 10 orphan
# Step a badly wrong clock at start (a Pi has no battery-backed clock).
makestep 1.0 3
"""


def gateway_config(m: str, root: str, mqtt_port: int, benches: list[str]) -> str:
    expected = ", ".join(json.dumps(b) for b in benches)
    return f"""# {at_root("/", f"/etc/klupa/gateway-{m}.toml")}: written once by `klupa gateway install`, then
# yours to edit (later runs keep it). Every key: docs/gateway.md, INTERFACES.md.
municipality = "{m}"

[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
username = "{gateway_user(m)}"
password_file = "{at_root(root, f"/etc/klupa/gateway-{m}-mqtt.pass")}"

[spool]
path = "{at_root(root, f"/var/lib/klupa/{m}.sqlite")}"
retention_days = 35
max_mb = 2048
# An SD card: messages are made durable in the ingest log (one 512-byte sector each) and
# committed to the store every 90 s: about a quarter of the bytes written per message.
batch_s = 90

[health]
offline_after_s = 300
expected = [{expected}]

[clock]
require_sync = true

# Forwarding (uncomment and fill in; secrets in files readable by group klupa only):
# [portal]
# url = "https://portal.example.org"
# token_file = "{at_root(root, "/etc/klupa/portal.token")}"
# [influxdb]
# url = "https://influx.example.org"
# api_version = 2
# org = "link"
# bucket = "benches"
# token_file = "{at_root(root, "/etc/klupa/influx.token")}"
# [alerts]          (docs/operations.md, Alerts)
"""
