"""A staged update of the whole fleet from the technician's laptop: `klupa fleet ota rollout`
over two municipalities, each with what its Raspberry Pi runs (its own Mosquitto, the real
gateway serving the bundles, `[ota]`) and two `klupa sim` benches running the unchanged
firmware. The laptop reaches each "Pi" through a local command template standing in for ssh
(`--via 'sh pi-{m}.sh'`, `--push 'cp -rT …'`), which runs the real `klupa gateway ota rollout`
there. The deployment folder is a real one (`klupa provision init`), its signing key the one
the benches trust.

The benches run at ten times real time, their clocks in the past (`--catch-up`), so the
trial's 60 s of health take 6 s. First a bundle whose app crashes at import: the canary (in
Mostar) rolls it back, the fleet halts, and no other bench, in either municipality, is sent
it. Then a good bundle, planned canary / one bench / the rest, interrupted once (Ctrl-C) and
continued: every bench takes it, stage after stage, across both municipalities.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from hil_tests.ota_helpers import CRASH, KLUPA, broken_bundle, bundle, flash_matches
from hil_tests.rollouts import Rollout, ota_states, rollout_states
from klupa.services import free_port

BENCHES = {"mostar": ["mostar-01", "mostar-02"], "jablanica": ["jablanica-01", "jablanica-02"]}
CANARY = "mostar-01"
OLD, BROKEN, NEW = "1.0.0", "1.1.0", "1.2.0"
SPEED, AGO = 10.0, 2400.0  # four minutes at ten times real time: the whole test
PERIOD = 10  # a window every 10 simulated seconds: one a second
# canary, then one bench (the first of the next municipality), then the rest
PLAN = [["mostar-01"], ["jablanica-01"], ["mostar-02", "jablanica-02"]]


def received(system: Any, bench: str, kind: str, text: str = "") -> list[float]:
    """When the gateway took each of the bench's records of ``kind`` whose body holds
    ``text``: the gateway's clock, the one both municipalities share (the benches' clocks,
    in two sims, do not)."""
    conn = sqlite3.connect(f"file:{system.store_path}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute(
            "SELECT received, body FROM messages WHERE bench = ? AND kind = ? ORDER BY id",
            (bench, kind),
        ).fetchall()
    finally:
        conn.close()
    return [
        float(t) for t, body in rows if text in (body.decode() if isinstance(body, bytes) else body)
    ]


def deployment(folder: Path) -> Path:
    """`klupa provision init`, and each municipality's second bench in the inventory."""
    subprocess.run([*KLUPA, "provision", "init", str(folder)], check=True, capture_output=True)
    with (folder / "inventory.toml").open("a") as f:
        for m in BENCHES:
            f.write(f'\n[benches.{m}-02]\nmunicipality = "{m}"\nboard = "bench-v1"\n')
    return folder


def test_a_fleet_rollout_halts_everywhere_on_a_broken_canary_then_reaches_every_bench_in_order(
    municipality_system: Any, hil: dict[str, Any], tmp_path: Path
) -> None:
    wait_until = hil["wait_until"]
    dep = deployment(tmp_path / "deploy")
    key = dep / "ota" / "signing-key.pem"
    build = tmp_path / "build"
    good = bundle(build / NEW, key, NEW)
    broken_bundle(build / BROKEN, key, BROKEN)
    systems = {m: municipality_system(m) for m in BENCHES}
    for m, system in systems.items():
        shutil.copy(key, system.ota_key_file)  # the deployment's key: the benches trust it
        www, port = system.workdir / "www", free_port()
        www.mkdir()
        plain = system.gateway_config

        def with_ota(plain: Any = plain, www: Path = www, port: int = port) -> Path:
            path: Path = plain()
            path.write_text(path.read_text() + f'[ota]\ndir = "{www}"\nport = {port}\n')
            return path

        system.gateway_config = with_ota
        system.start_gateway()
        for b in BENCHES[m]:
            system.bench_config(b, period=PERIOD)
        # What `ssh klupa-{m}.local sudo klupa gateway ota rollout --config …` runs on the Pi.
        (tmp_path / f"pi-{m}.sh").write_text(
            f"exec {sys.executable} -m klupa.cli gateway ota rollout --config "
            f"{system.workdir / 'gateway.toml'} --base-url http://127.0.0.1:{port} "
            '--every 0.5 --ack-timeout 30 "$@"\n'
        )
    for m, system in systems.items():
        system.sim(BENCHES[m], SPEED, AGO, 0.0, "--catch-up")

    def fleet(version: str) -> list[str]:
        return [
            *KLUPA,
            "fleet",
            "ota",
            "rollout",
            "--deployment",
            str(dep),
            "--bundle",
            str(build / version),
            "--canary",
            CANARY,
            "--then",
            "1",
            "--then",
            "all",
            "--soak",
            "4s",
            "--only",
            "mostar,jablanica",
            "--via",
            f"sh {tmp_path}/pi-{{m}}.sh",
            "--push",
            "cp -rT {bundle} {remote}",
            "--remote-bundle",
            f"{tmp_path}/pi-{{m}}-incoming-{{version}}",
        ]

    for m, system in systems.items():
        for b in BENCHES[m]:
            wait_until(
                lambda s=system, b=b: len(received(s, b, "telemetry")) >= 3, 90, f"{b} online"
            )

    # 1. The broken bundle: only the canary is sent it, rolls it back, and the fleet halts.
    t0 = time.monotonic()
    run = subprocess.run(fleet(BROKEN), capture_output=True, text=True, timeout=120)
    out = run.stdout
    assert run.returncode == 3, out + run.stderr
    assert f"halted: mostar: {CANARY}: rolled_back" in out, out
    assert ota_states(systems["mostar"], CANARY) == [
        ("downloading", BROKEN),
        ("verified", BROKEN),
        ("rolled_back", BROKEN),
    ]
    for m, system in systems.items():
        for b in BENCHES[m]:
            if b != CANARY:
                assert ota_states(system, b) == [] and system.records("cmd/ack", b) == [], b
    # Jablanica's Pi was never asked to do anything: no state file, no bundle copied there.
    assert not (systems["jablanica"].workdir / f"rollout-{BROKEN}.json").exists()
    assert not (tmp_path / f"pi-jablanica-incoming-{BROKEN}").exists()
    assert (tmp_path / f"pi-mostar-incoming-{BROKEN}" / "manifest.json").exists()
    state = json.loads((dep / "rollouts" / f"rollout-{BROKEN}.json").read_text())
    assert state["halted"].startswith(f"mostar: {CANARY}: rolled_back"), state
    again = subprocess.run(fleet(BROKEN), capture_output=True, text=True, timeout=60)
    assert again.returncode == 3 and "Fix the cause; --retry" in again.stdout  # sends nothing
    print(f"broken canary halted the fleet in {time.monotonic() - t0:.0f} s")

    # 2. The good bundle, stage by stage across both municipalities; Ctrl-C once, continued.
    t0 = time.monotonic()
    state_file = dep / "rollouts" / f"rollout-{NEW}.json"
    log = tmp_path / "fleet.log"

    states = partial(rollout_states, state_file)
    with Rollout(fleet(NEW), log, stop_timeout=30) as rollout:
        rollout.start()
        wait_until(
            lambda: states().get("jablanica-01") in ("trial", "soaking"),
            90,
            "the canary to pass and stage 1 to be sent the update",
        )
        rollout.interrupt(60)
        assert states()[CANARY] == "done"
        rc = rollout.start().wait(150)
    text = log.read_text()
    assert rc == 0, text
    assert "stopped; the same command continues" in text
    assert f"continuing the fleet rollout of {NEW}" in text
    assert f"done: every bench of mostar, jablanica runs {NEW}" in text
    print(f"good fleet rollout, interrupted once, in {time.monotonic() - t0:.0f} s")
    saved = json.loads(state_file.read_text())
    assert saved["stages"] == PLAN
    assert {b: v["state"] for b, v in saved["benches"].items()} == {
        b: "done" for bs in BENCHES.values() for b in bs
    }
    # Each Pi planned the fleet's stages, its own benches in each.
    pi = {
        m: json.loads((s.workdir / f"rollout-{NEW}.json").read_text())["stages"]
        for m, s in systems.items()
    }
    assert pi == {
        "mostar": [["mostar-01"], [], ["mostar-02"]],
        "jablanica": [[], ["jablanica-01"], ["jablanica-02"]],
    }

    def applied(m: str, b: str) -> float:
        return received(systems[m], b, "event", f'"state":"applied","version":"{NEW}"')[-1]

    def acked(m: str, b: str) -> float:
        return received(systems[m], b, "cmd/ack")[-1]

    # Stage order across municipalities: nobody is sent it (their ack comes once the bundle
    # is fetched) before the stage before has committed and soaked.
    assert acked("jablanica", "jablanica-01") > applied("mostar", CANARY) + 4
    for m, b in (("mostar", "mostar-02"), ("jablanica", "jablanica-02")):
        assert acked(m, b) > applied("jablanica", "jablanica-01") + 4, b
    for m, system in systems.items():
        for b in BENCHES[m]:
            assert ota_states(system, b)[-3:] == [
                ("downloading", NEW),
                ("verified", NEW),
                ("applied", NEW),
            ], b
            assert len(system.records("cmd/ack", b)) == (2 if b == CANARY else 1), b
            boots = [r.body["fw"] for r in system.records("event", b) if r.body["type"] == "boot"]
            assert boots[-1] == NEW and OLD in boots, (b, boots)
            assert flash_matches(system.flash / b / "app", good), b
    assert systems["mostar"].sim_log().count(f"RuntimeError: {CRASH}") == 1
    assert systems["jablanica"].sim_log().count("RuntimeError") == 0
