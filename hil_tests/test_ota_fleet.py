"""An OTA to a new app version across a municipality's fleet, then a broken one to one bench that
rolls back. The bundles are built as an operator builds them (`klupa bundle`, the deployment's
OTA signing key), served over HTTP on loopback like the gateway's [ota] server, and the `ota` command
goes to each bench through `klupa gateway cmd`; the benches are `klupa sim --catch-up` processes
running in real time once their clocks reach now, so downloads, reboots and the trial's 60 s
health check happen in real time.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from edge_gateway.serve import Listen, serve_ota
from hil_tests.ota_helpers import (
    CRASH,
    KLUPA,
    Births,
    broken_bundle,
    bundle,
    flash_matches,
    ota_args,
)
from klupa.services import free_port

NEEDS_PHYSICS = (
    "a fleet of three benches; one bench's update and rollback run serial-only: test_serial_ota.py"
)
BENCHES = ["mostar-01", "mostar-02", "mostar-03"]
ROLLED = "mostar-02"  # the bench that gets the broken app
OLD, NEW, BROKEN = "1.0.0", "1.1.0", "1.2.0"
SPEED, AGO = 60.0, 900.0  # 15 s of catch-up, then real time
PERIOD = 10  # a telemetry window every 10 s, so records flow through every step


def ota_events(recs: list[Any]) -> list[tuple[int, str, str]]:
    return [
        (r.boot, r.body["state"], r.body["version"])
        for r in recs
        if r.kind == "event" and r.body["type"] == "ota"
    ]


def send_ota(system: Any, benches: list[str], args: list[str]) -> dict[str, tuple[int, str]]:
    """`klupa gateway cmd BENCH ota ...` to each bench at once; exit status and output each."""
    config = str(system.workdir / "gateway.toml")
    procs = {
        b: subprocess.Popen(
            [*KLUPA, "gateway", "cmd", "--config", config, b, "ota", *args, "--timeout", "90"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for b in benches
    }
    return {b: (p.wait(120), (p.communicate()[0] or "").strip()) for b, p in procs.items()}


def test_ota_across_the_fleet_and_a_rollback(
    system: Any, hil: dict[str, Any], tmp_path: Path
) -> None:
    wait_until = hil["wait_until"]
    www = tmp_path / "www"
    for b in BENCHES:  # their configs name the system's OTA anchor
        system.bench_config(b, period=PERIOD)
    good = bundle(www / NEW, system.ota_key_file, NEW)
    broken_bundle(www / BROKEN, system.ota_key_file, BROKEN)
    server = serve_ota(str(www), Listen(free_port(), host="127.0.0.1"))
    base = f"http://127.0.0.1:{server.port}"
    births = Births(system.broker.host, system.broker.port, system.m)
    try:
        system.start_gateway()
        system.sim(BENCHES, SPEED, AGO, 0.0, "--catch-up")

        def in_real_time(b: str) -> bool:
            tele = system.records("telemetry", b)
            return bool(tele) and tele[-1].ts >= time.time() - 3 * PERIOD

        for b in BENCHES:
            wait_until(lambda b=b: in_real_time(b), AGO / SPEED + 60, f"{b} to reach real time")
        boot0 = {b: system.records("telemetry", b)[-1].boot for b in BENCHES}

        # 1. The new version to the whole fleet: each bench acks, reboots into it, and once
        # the trial app is healthy (60 s up, birth acknowledged) reports it `applied`.
        answers = send_ota(system, BENCHES, ota_args(base, www / NEW, NEW))
        assert answers == {b: (0, f"{b}: ota ok") for b in BENCHES}, answers
        for b in BENCHES:
            wait_until(
                lambda b=b: (boot0[b] + 1, "applied", NEW) in ota_events(system.records(bench=b)),
                150,
                f"{b} to apply {NEW}",
            )

        # 2. A broken app to one bench: it crashes at import on its first boot, the OTA boot
        # step puts the previous app (the OTA-installed NEW) back, and the bench goes on.
        answers = send_ota(system, [ROLLED], ota_args(base, www / BROKEN, BROKEN))
        assert answers == {ROLLED: (0, f"{ROLLED}: ota ok")}, answers
        rolled_boot = boot0[ROLLED] + 2
        wait_until(
            lambda: (
                (rolled_boot, "rolled_back", BROKEN) in ota_events(system.records(bench=ROLLED))
            ),
            90,
            f"{ROLLED} to roll {BROKEN} back",
        )
        # Every bench keeps publishing: two more windows each, the rolled-back one in the boot
        # that runs the previous app again.
        seen = {b: len(system.records("telemetry", b)) for b in BENCHES}

        def published(b: str) -> bool:
            tele = system.records("telemetry", b)
            if b == ROLLED:
                return len([r for r in tele if r.boot == rolled_boot]) >= 2
            return len(tele) >= seen[b] + 2

        for b in BENCHES:
            wait_until(lambda b=b: published(b), 60, f"{b} to publish after the rollback")
        system.settle(BENCHES, 60)
    finally:
        births.close()
        server.stop()

    for b in BENCHES:
        recs = system.records(bench=b)
        expect_boots = [boot0[b], boot0[b] + 1] + ([rolled_boot] if b == ROLLED else [])
        fws = [OLD, NEW] + ([NEW] if b == ROLLED else [])
        # Nothing lost or doubled across the updates: each (boot, seq) once, every boot's
        # records from seq 1 (its `boot` event, with the app version it runs) without a hole.
        assert len({(r.boot, r.seq) for r in recs}) == len(recs), b
        assert hil["seq_gaps"](recs) == {}, (b, hil["seq_gaps"](recs))
        assert sorted({r.boot for r in recs}) == expect_boots, (b, sorted({r.boot for r in recs}))
        firsts = [next(r for r in recs if r.boot == boot) for boot in expect_boots]
        assert [(r.seq, r.kind, r.body["type"]) for r in firsts] == [(1, "event", "boot")] * len(
            expect_boots
        ), (b, firsts)
        assert [r.body["fw"] for r in firsts] == fws, (b, firsts)
        assert not any(r.body["safe"] for r in firsts), b
        # The birth each boot published carries the version it runs; the broken app's boot,
        # which crashed at import, published none.
        assert births.online(b) == list(zip(expect_boots, fws, strict=True)), (b, births.seen)
        # Telemetry went on through every boot, its windows in time order (none twice).
        tele = [r for r in recs if r.kind == "telemetry"]
        assert all(len([r for r in tele if r.boot == boot]) >= 2 for boot in expect_boots), b
        assert all(a.ts < z.ts for a, z in zip(tele, tele[1:], strict=False)), b
        # Each step of each update is an `ota` event, once, in the boot that made it; each
        # command was acknowledged ok after its bundle verified and before the reboot.
        steps = [
            (boot0[b], "downloading", NEW),
            (boot0[b], "verified", NEW),
            (boot0[b] + 1, "applied", NEW),
        ]
        if b == ROLLED:
            steps += [
                (boot0[b] + 1, "downloading", BROKEN),
                (boot0[b] + 1, "verified", BROKEN),
                (rolled_boot, "rolled_back", BROKEN),
            ]
        assert ota_events(recs) == steps, (b, ota_events(recs))
        acks = [r for r in recs if r.kind == "cmd/ack"]
        assert [(a.boot, a.body["ok"], a.body["detail"]) for a in acks] == [
            (boot, True, "") for boot in expect_boots[:-1]
        ], (b, acks)
        for ack in acks:
            verified = next(
                r
                for r in recs
                if r.boot == ack.boot and r.kind == "event" and r.body.get("state") == "verified"
            )
            assert verified.seq < ack.seq, (b, verified, ack)
        # The flash: the NEW bundle runs byte for byte, its trial is over, nothing staged.
        flash = system.flash / b
        assert flash_matches(flash / "app", good), b
        state = json.loads((flash / "ota.json").read_text())
        assert (state["state"], state["version"], state.get("report")) == ("", NEW, None), state
        assert not (flash / "app.old").exists() and not (flash / "app.new").exists(), b

    # The broken app ran exactly once (one crash, in the sim's log); the gateway refused or
    # quarantined nothing the benches sent.
    assert system.sim_log().count(f"RuntimeError: {CRASH}") == 1, system.sim_log()[-3000:]
    assert system.counter("rejected") == 0
    conn = sqlite3.connect(f"file:{system.store_path}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 0
    finally:
        conn.close()
