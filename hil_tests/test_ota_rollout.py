"""Staged updates on the virtual fleet: `klupa gateway ota rollout` as an operator runs it on
the Pi, against the real broker, the real gateway (which serves the bundles, `[ota]`) and four
`klupa sim --catch-up` benches running the unchanged firmware in real time.

First a bundle whose app crashes at import: the canary rolls it back and the rollout halts;
no other bench is sent it. Then a good bundle, with one bench switched off: the canary commits
it and soaks, the rest are sent it, the rollout is interrupted (Ctrl-C) and run again, and the
bench that was off is sent it when it comes back; every bench ends on it, byte for byte.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from functools import partial
from pathlib import Path
from typing import Any

from hil_tests.ota_helpers import CRASH, KLUPA, broken_bundle, bundle, flash_matches
from hil_tests.rollouts import Rollout, ota_states, rollout_states
from klupa.services import free_port, stop_process

NEEDS_PHYSICS = (
    "a fleet of four benches, one of them switched off; one bench's update runs serial-only: "
    "test_serial_ota.py"
)
BENCHES = ["mostar-01", "mostar-02", "mostar-03", "mostar-04"]
CANARY, AWAY = "mostar-01", "mostar-04"
OLD, BROKEN, NEW = "1.0.0", "1.1.0", "1.2.0"
SPEED, AGO = 60.0, 900.0  # 15 s of catch-up, then real time
PERIOD = 10  # a window every 10 s: the soak sees several


def bench_row(system: Any, bench: str) -> dict[str, Any]:
    import sqlite3

    conn = sqlite3.connect(f"file:{system.store_path}?mode=ro", uri=True, timeout=10)
    try:
        row = conn.execute("SELECT online, fw FROM benches WHERE bench = ?", (bench,)).fetchone()
    finally:
        conn.close()
    return {"online": bool(row[0]), "fw": row[1]} if row else {}


def rollout_argv(system: Any, build: Path, base: str) -> list[str]:
    return [
        *KLUPA,
        "gateway",
        "ota",
        "rollout",
        "--config",
        str(system.workdir / "gateway.toml"),
        "--bundle",
        str(build),
        "--canary",
        CANARY,
        "--then",
        "all",
        "--soak",
        "15s",
        "--base-url",
        base,
    ]


def test_a_staged_rollout_halts_on_a_broken_canary_then_reaches_every_bench(
    system: Any, hil: dict[str, Any], tmp_path: Path
) -> None:
    wait_until = hil["wait_until"]
    for b in BENCHES:
        system.bench_config(b, period=PERIOD)
    key = system.ota_key_file  # the deployment's signing key; the configs name its anchor
    build, www, port = tmp_path / "build", tmp_path / "www", free_port()
    www.mkdir()
    good = bundle(build / NEW, key, NEW)
    broken_bundle(build / BROKEN, key, BROKEN)
    base = f"http://127.0.0.1:{port}"
    plain = system.gateway_config

    def with_ota() -> Path:  # the gateway serves the bundles itself, as on the Pi
        path: Path = plain()
        path.write_text(path.read_text() + f'[ota]\ndir = "{www}"\nport = {port}\n')
        return path

    system.gateway_config = with_ota
    system.start_gateway()
    system.sim(BENCHES[:3], SPEED, AGO, 0.0, "--catch-up")
    away = system.sim([AWAY], SPEED, AGO, 0.0, "--catch-up")

    def in_real_time(b: str) -> bool:
        tele = system.records("telemetry", b)
        return bool(tele) and tele[-1].ts >= time.time() - 3 * PERIOD

    for b in BENCHES:
        wait_until(lambda b=b: in_real_time(b), AGO / SPEED + 60, f"{b} to reach real time")
    stop_process(away, signal.SIGTERM, timeout=15)
    wait_until(lambda: bench_row(system, AWAY).get("online") is False, 30, f"{AWAY} offline")

    # 1. The broken bundle: sent to the canary only, which rolls it back; the rollout halts.
    log = tmp_path / "rollout.log"
    t0 = time.monotonic()
    rc = subprocess.run(
        rollout_argv(system, build / BROKEN, base), capture_output=True, timeout=240
    )
    out = rc.stdout.decode()
    assert rc.returncode == 3, out + rc.stderr.decode()
    assert f"halted: {CANARY}: rolled_back" in out, out
    assert (www / BROKEN / "manifest.json").exists()  # placed where the gateway serves it
    assert ota_states(system, CANARY) == [
        ("downloading", BROKEN),
        ("verified", BROKEN),
        ("rolled_back", BROKEN),
    ]
    for b in BENCHES[1:]:
        assert ota_states(system, b) == [], b
        assert system.records("cmd/ack", b) == [], b
    state = json.loads((system.workdir / f"rollout-{BROKEN}.json").read_text())
    assert state["halted"].startswith(f"{CANARY}: rolled_back"), state
    assert {b: r["state"] for b, r in state["benches"].items()} == {
        CANARY: "rolled_back",
        "mostar-02": "planned",
        "mostar-03": "planned",
        AWAY: "planned",
    }
    print(f"broken canary halted the rollout in {time.monotonic() - t0:.0f} s")

    # 2. The good bundle, with AWAY switched off: the others take it stage by stage.
    acks_before = {b: len(system.records("cmd/ack", b)) for b in BENCHES}
    state_file = system.workdir / f"rollout-{NEW}.json"

    states = partial(rollout_states, state_file)
    t0 = time.monotonic()
    with Rollout(rollout_argv(system, build / NEW, base), log, stop_timeout=15) as rollout:
        rollout.start()
        wait_until(
            lambda: (
                states().get("mostar-02") in ("trial", "soaking", "done")
                and states().get("mostar-03") in ("trial", "soaking", "done")
                and states().get(AWAY) == "waiting"
            ),
            200,
            "the canary to pass and the rest to be sent the update",
        )
        # The canary had committed and soaked before anyone else was sent anything.
        assert states()[CANARY] == "done"
        rollout.interrupt(30)  # Ctrl-C; a second run continues
        assert "stopped; the same command continues" in log.read_text()
        second = rollout.start()
        time.sleep(5)
        system.sim([AWAY], SPEED, 60.0, 0.0, "--catch-up")  # back
        rc2 = second.wait(300)
    text = log.read_text()
    assert rc2 == 0, text
    assert f"done: every bench runs {NEW}" in text
    assert "continuing the rollout of 1.2.0" in text
    print(
        f"good rollout with an interruption and a returning bench in {time.monotonic() - t0:.0f} s"
    )
    assert states() == {b: "done" for b in BENCHES}
    system.settle(BENCHES[:3] + [AWAY], 90)

    for b in BENCHES:
        # Exactly one `ota` command per bench for the good bundle (none sent twice across the
        # interruption), and it committed: its new boot runs NEW.
        assert len(system.records("cmd/ack", b)) == acks_before[b] + 1, b
        events = ota_states(system, b)
        assert events[-3:] == [("downloading", NEW), ("verified", NEW), ("applied", NEW)], b
        boots = [r.body["fw"] for r in system.records("event", b) if r.body["type"] == "boot"]
        assert boots[-1] == NEW and OLD in boots, (b, boots)
        assert flash_matches(system.flash / b / "app", good), b
    # Nobody else was sent it before the canary had committed it and soaked for 15 s: the acks
    # of the benches that were online all along (their clocks run with the canary's, in one
    # sim) came after that. (AWAY's restarted clock is not to the second; it was off anyway.)
    applied = next(
        r.ts
        for r in system.records("event", CANARY)
        if r.body["type"] == "ota" and r.body["state"] == "applied"
    )
    for b in BENCHES[1:3]:
        ack = system.records("cmd/ack", b)[-1]
        assert ack.ts >= applied + 15 - 1, (b, ack.ts, applied)
    assert system.sim_log().count(f"RuntimeError: {CRASH}") == 1
    assert system.counter("rejected") == 0
