"""A provisioning run from a blank virtual board to a bench that publishes.

What is the real thing here, and what stands in for it:

- `klupa provision` itself (init, `micropython`, `app`, `register`) runs unchanged, through its
  CLI, on one deployment folder.
- `micropython` writes an image onto **esp32-mock-bootloader** (esptool's ROM protocol, its
  verification) — the image is random bytes standing in for the MicroPython release, since
  the mock does not execute it.
- `app` and `register` talk to the **MicroPython REPL** of the npm WebAssembly VM on a
  pseudo-terminal (the "board after flashing": it is a real MicroPython 1.27, but a
  different process from the mock; on an ESP32 both are the same port). The bundle,
  config.json, board.json and ca.crt land in the VM's flash folder on the host.
- `selftest`: the VM has no `machine` fakes in this checkout, so the firmware's self-test
  (`bench.selftest.on_board`, what the step runs over the REPL) runs here on the CPython
  virtual board with the provisioned board.json, and its report goes through the step's own
  parser (`failing_checks`).
- The bench that then runs is the **CPython virtual board** (`klupa sim`) on a copy of the
  VM's flash folder: the WebAssembly VM has no network. It runs firmware/ sources; the test
  first checks that every `.mpy` the upload put on the board compiles, byte for byte, from
  those sources, so it is the same app. The sim writes board.json from the profile by name,
  which the test checks equals the provisioned one. config.json (credentials, TLS, CA path,
  broker host and port, boot number) is used exactly as provisioned: the sim's `--broker`
  points at a closed port, so only the provisioned settings can reach Mosquitto.
- **Mosquitto** runs the generated `brokers/mostar/mosquitto.conf` with the generated
  `passwd`, `acl`, CA, server certificate and key, installed where the Pi keeps them (under a
  temporary root; `testkit.services.start_pi_broker`): the TLS listener on the
  inventory's port, the loopback listener for the gateway. The inventory names the gateway
  host `127.0.0.1` so that the generated server certificate matches it.
- The **gateway** (`klupa gateway run`) logs in with its generated credentials
  (`gateway-mqtt.pass`) and stores what it accepts; the test reads its store.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from esptool.cmds import detect_chip

from boards.virtual.apploader import mpy_of
from klupa.services import free_port, stop_process
from provisioning import cli
from provisioning.deployment import Deployment
from provisioning.steps_board import failing_checks
from testkit.services import start_pi_broker

REPO = Path(__file__).resolve().parents[1]
KLUPA = [sys.executable, "-m", "klupa.cli"]
BENCH = "mostar-01"
SPEED = 16.0
SPAN = 360.0  # simulated seconds: six one-minute telemetry windows at most

SELFTEST = """\
import json, sys, time
from boards.virtual import install
from boards.virtual.clock import VirtualClock
from boards.virtual.hardware import VirtualBoard
root = sys.argv[1]
board = VirtualBoard(json.load(open(root + "/board.json")), VirtualClock(start=time.time()))
board.set_solar(17.8, 1.2); board.set_battery(12.9, 0.4); board.set_env(16.0, 60.0)
install(board)
import bench.selftest as t
summary, report = t.on_board(root, board.machine)
print(json.dumps({"summary": summary, "report": report}))
"""


def _provision(args: list[str], deploy: Path) -> str:
    """Run a `klupa provision` command in this process; fail with its output if it fails."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(args if args[0] == "init" else [*args, "--deploy", str(deploy)])
    assert code == 0, f"klupa provision {' '.join(args)}: {err.getvalue()}{out.getvalue()}"
    return out.getvalue()


def _deployment(root: Path, tls_port: int, image: Path) -> Deployment:
    """`klupa provision init`, then what a technician edits: the gateway's address and port,
    the Wi-Fi password, the MicroPython image; init again re-issues the server certificate."""
    _provision(["init", str(root)], root)
    inv = root / "inventory.toml"
    text = inv.read_text()
    old = 'gateway_host = "klupa-mostar.local"\nmqtt_port = 8883'
    assert old in text
    text = text.replace(old, f'gateway_host = "127.0.0.1"\nmqtt_port = {tls_port}')
    text = text.replace('image = ""\noffset = 0x1000', f'image = "{image}"\noffset = 0x1000')
    inv.write_text(text)
    sec = root / "secrets.toml"
    sec.write_text(sec.read_text().replace('mostar = "CHANGE-ME"', 'mostar = "depo-wifi-7731"'))
    _provision(["init", str(root)], root)
    return Deployment(root)


def _store(path: Path, query: str) -> list[tuple[Any, ...]]:
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(query).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def test_blank_board_to_a_registered_bench_that_publishes(
    real_bench: str | None,
    mock_bootloader: Any,
    micropython_board: Any,
    tmp_path: Path,
    hil: dict[str, Any],
) -> None:
    if real_bench:
        pytest.skip(
            "starts from a blank virtual board (mock bootloader, then the VM's REPL); "
            "a real bench is provisioned with `klupa provision bench PORT --bench ID`"
        )
    tls_port = free_port()
    image = tmp_path / "micropython-stand-in.bin"
    image_bytes = bytes([0xE9, 0x03, 0x02, 0x20]) + os.urandom(48 * 1024 - 4)
    image.write_bytes(image_bytes)
    deploy = tmp_path / "deploy"
    dep = _deployment(deploy, tls_port, image)
    assert BENCH in {b.id for b in dep.unprovisioned()}

    # 1. A blank ESP32 in its ROM bootloader gets MicroPython, verified.
    mock = mock_bootloader("esp32")
    out = _provision(["micropython", mock.url, "--bench", BENCH], deploy)
    assert "verified" in out
    esp = detect_chip(mock.url, 115200, "no-reset", connect_attempts=2)
    try:
        assert esp.flash_md5sum(0x1000, len(image_bytes)) == hashlib.md5(image_bytes).hexdigest()
    finally:
        esp._port.close()

    # 2. The board's REPL: the app bundle, config, profile and CA; then the registration.
    out = _provision(
        ["bench", micropython_board.port, "--bench", BENCH, "--steps", "app,register"], deploy
    )
    assert "all hashes verified" in " ".join(out.split())
    dep.reload()
    record = dep.bench(BENCH).provisioned
    fs = micropython_board.fs_dir
    manifest = json.loads((fs / "manifest.json").read_text())
    config = json.loads((fs / "config.json").read_text())
    assert record["app"] == manifest["version"] and record["micropython"] == "1.27.0"
    assert config["mqtt"] == {
        "host": "127.0.0.1",
        "port": tls_port,
        "tls": True,
        "user": BENCH,
        "password": dep.mqtt_password(BENCH),
        "ca": "/ca.crt",
    }
    assert (fs / "ca.crt").read_bytes() == (dep.pki_dir / "ca.crt").read_bytes()
    label = f"{BENCH} | Mostar | MAC"
    assert label in " ".join(out.split())

    # 3. The firmware's self-test on the provisioned board.json (virtual board, see above).
    st = subprocess.run(
        [sys.executable, "-c", SELFTEST, str(fs)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert st.returncode == 0, st.stderr[-2000:]
    report = json.loads(st.stdout.strip().splitlines()[-1])
    assert failing_checks(report) == [], report
    assert report["report"]["ok"] is True, report

    # 4. The same app: every .mpy uploaded compiles byte for byte from firmware/.
    mpys = [f["path"] for f in manifest["files"] if f["path"].endswith(".mpy")]
    assert len(mpys) >= 10
    for rel in mpys:
        source = REPO / "firmware" / (rel[: -len(".mpy")] + ".py")
        assert mpy_of(source, rel[: -len(".mpy")] + ".py") == (fs / rel).read_bytes(), rel
    profile = json.loads((REPO / "boards" / "bench-v1.json").read_text())
    assert json.loads((fs / "board.json").read_text()) == profile

    # 5. Mostar's Pi: Mosquitto with the generated files, and the gateway with its own login.
    (tmp_path / "mosquitto").mkdir()
    broker = start_pi_broker(dep, tmp_path / "mosquitto")
    store = tmp_path / "gateway.sqlite"
    gw_config = tmp_path / "gateway.toml"
    gw_config.write_text(
        'municipality = "mostar"\n[mqtt]\nhost = "127.0.0.1"\n'
        f'port = {broker.local_port}\nusername = "gateway-mostar"\n'
        f'password_file = "{broker.paths.gateway_password}"\n'
        f'[spool]\npath = "{store}"\n'
        "[clock]\nrequire_sync = false\n"
    )
    gateway = sim = None
    flash = tmp_path / "flash"
    try:
        with (tmp_path / "gateway.log").open("ab") as log:
            gateway = subprocess.Popen(
                [*KLUPA, "gateway", "run", "--config", str(gw_config)], stdout=log, stderr=log
            )
        hil["wait_until"](
            lambda: "connected to" in (tmp_path / "gateway.log").read_text(errors="replace"),
            30,
            "the gateway to log in with its generated credentials",
        )

        # 6. The provisioned flash, booted on the virtual board.
        shutil.copytree(fs, flash / BENCH)
        closed = free_port()  # nothing listens here: only config.json can reach the broker
        with (tmp_path / "sim.log").open("ab") as log:
            sim = subprocess.Popen(
                [
                    *KLUPA,
                    "sim",
                    "--benches",
                    BENCH,
                    "--flash",
                    str(flash),
                    "--broker",
                    f"127.0.0.1:{closed}",
                    "--speed",
                    str(SPEED),
                    "--start-ago",
                    str(SPAN),
                ],
                stdout=log,
                stderr=log,
            )
        rc = sim.wait(SPAN / SPEED + 60)
        sim_log = (tmp_path / "sim.log").read_text(errors="replace")
        assert rc == 0, sim_log[-2000:]
        hil["wait_until"](
            lambda: len(_store(store, "SELECT seq FROM messages WHERE kind = 'telemetry'")) >= 3,
            20,
            "the bench's telemetry in the gateway's store",
        )
    finally:
        if sim is not None and sim.poll() is None:
            stop_process(sim)
        if gateway is not None:
            stop_process(gateway)
        stop_process(broker.proc)

    # The bench connected over TLS with its generated password: the gateway took its birth
    # (only the gateway's user reads a bench's status, and its client id is its own).
    rows = _store(store, "SELECT bench, boot, seq, kind, body FROM messages ORDER BY id")
    states = [json.loads(r[4]) for r in rows if r[0] == BENCH and r[3] == "state"]
    assert any(
        s["online"] and s["boot"] == config["boot"] and s["fw"] == manifest["version"]
        for s in states
    ), states
    # And the gateway accepted what it published: the boot event, then telemetry, no holes.
    mine = sorted(
        (r for r in rows if r[0] == BENCH and r[3] in ("telemetry", "event", "vote", "cmd/ack")),
        key=lambda r: (r[1], r[2]),
    )
    assert mine and mine[0][3] == "event" and json.loads(mine[0][4])["type"] == "boot"
    assert {r[1] for r in mine} == {config["boot"]}
    tele = [json.loads(r[4]) for r in mine if r[3] == "telemetry"]
    assert 3 <= len(tele) <= SPAN / 60 + 1, len(tele)
    assert all(10.0 < t["batt"]["v"] < 14.6 for t in tele)
    seqs = [r[2] for r in mine]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert not _store(store, "SELECT reason FROM quarantine")
