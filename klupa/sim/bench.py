"""One virtual bench, in its own process (the child of `klupa sim`): the unchanged firmware on the
virtual board, its flash folder, and the world of its place whose physical values `drive` copies
onto the board's chips, one simulated second at a time."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boards.virtual.physics import World
from klupa.shipped import boards_dir
from klupa.sim.passersby import Presses, Tally


@dataclass
class BenchSpec:
    bench: str
    municipality: str
    profile: str = "bench-v1"
    seed: int = 0
    people: float = 1.0
    soc: float = 0.8


def bench_config(spec: BenchSpec, host: str, port: int) -> dict[str, Any]:
    return {
        "bench": spec.bench,
        "municipality": spec.municipality,
        "wifi": {"ssid": "klupa-sim", "password": "virtual"},
        "mqtt": {"host": host, "port": port, "user": spec.bench, "password": ""},
        "ntp": host,
    }


SIM_MARK = ".klupa-sim"  # in a flash folder whose config.json the sim wrote


def config_to_write(flash: Path, spec: BenchSpec, broker: str) -> dict[str, Any] | None:
    """The config.json to give a virtual bench's flash, or None to keep the one it has.

    A config the sim wrote itself (marked by ``SIM_MARK``) follows this run's ``--broker``
    (``klupa demo --dir`` starts its broker on a new port each run). Any other config is kept
    as it is, broker included, as a real bench keeps its provisioned config (hil_tests boot a
    provisioned flash folder this way); the sim says so when that broker is not ``--broker``.
    A missing or damaged config gets a new one.
    """
    host, port = broker.rsplit(":", 1)
    kept = flash / "config.json"
    try:
        old = json.loads(kept.read_text()) if kept.exists() else None
    except ValueError:
        old = None
    if not isinstance(old, dict) or not isinstance(old.get("mqtt"), dict):
        flash.mkdir(parents=True, exist_ok=True)
        (flash / SIM_MARK).write_text("config.json written by klupa sim\n")
        return bench_config(spec, host, int(port))
    was = (old["mqtt"].get("host"), old["mqtt"].get("port"))
    if was == (host, int(port)):
        return None
    if (flash / SIM_MARK).exists():
        old["mqtt"] = dict(old["mqtt"], host=host, port=int(port))
        old["ntp"] = host
        return old
    print(
        f"klupa sim: {spec.bench} keeps the broker of its config.json, {was[0]}:{was[1]}, "
        f"not --broker {broker} (remove {kept} for a new config)",
        file=sys.stderr,
    )
    return None


async def drive(
    board: Any,
    world: World,
    clock: Any,
    profile: dict[str, Any],
    stop: asyncio.Event,
    presses_log: Path | None = None,
    state: Path | None = None,
    flash: Path | None = None,
    ready: Callable[[], bool] = lambda: True,
) -> None:
    """Copy the world's physical values onto the board's chips, one simulated second at a time.

    With ``presses_log``, every press made on a pad is appended there with what the bench
    should make of it (see Tally; ``flash`` is the bench's flash folder, ``ready`` says whether
    its clock is set and its touchpad running); with ``state``, the battery's state of charge is
    saved there each simulated minute, so that a bench process killed by a power cut comes back
    with the battery it had, not a fresh one.
    """
    pins = profile["touch"]["pins"]
    falls = profile["touch"].get("direction", "falls") == "falls"
    base = 600
    presses = Presses(random.Random(f"{world.seed}/{world.municipality}/presses"), log=presses_log)
    tally = Tally(flash)
    saved = world.t
    pressing: tuple[float, int, float, float] | None = None  # (until, pad, began, hold)
    last = clock.time()
    board.battery.gain, board.battery.offset_a = world.shunt.gain, world.shunt.offset_a
    while not stop.is_set():
        now = clock.time()
        dt = max(0.0, now - last)
        last = now
        # Physics in steps of at most a minute, so sessions and sun stay faithful at any speed.
        while dt > 0:
            step = min(dt, 60.0)
            world.step(step)
            dt -= step
            hour, _ = world.local_hour()
            tally.refresh(world.t)
            presses.maybe_visit(
                world.t,
                world.people_scale * (6.0 if 8 <= hour < 21 else 0.5),
                step,
                len(pins),
                tally.options(),
            )
        for p in profile["ports"]:
            world.port_on[p["n"]] = board.port_enabled(p["n"])
            board.set_port(p["n"], world.port_current(p["n"]))
        board.set_solar(round(world.solar_v, 3), round(world.solar_a, 3))
        board.set_battery(round(world.battery.voltage, 3), round(world.battery.current_a, 3))
        board.set_seat(world.seat_occupied())
        board.set_env(world.air_c, world.rh)
        board.rssi = world.rssi()
        board.ap_clients = min(8, len(world.phones) + (1 if world.seat_occupied() else 0))
        up = world.link_up()
        if up != board.link_up:
            board.set_link(up)
        # Touch pads: a press holds a pad past the sensitivity for exactly its hold time.
        if pressing is None and presses.queue and presses.queue[0][0] <= clock.time() + 0.3:
            at, pad, hold = presses.queue.pop(0)
            began = max(at, clock.time())  # on time, even between two turns of this loop
            pressing = (began + hold, pad, began, hold)
            board.press(pins[pad], int(base * (0.6 if falls else 1.4)), began, hold)
        elif pressing is not None and clock.time() >= pressing[0] + 0.05:
            until, pad, began, hold = pressing
            expect, option = tally.judge(until, pad, hold, ready())
            presses.record(began, pad, hold, expect, option)
            pressing = None
        if state is not None and world.t - saved >= 60.0:
            saved = world.t
            tmp = state.with_suffix(".tmp")
            tmp.write_text(json.dumps({"t": world.t, "soc": world.battery.soc}))
            os.replace(tmp, state)
        await clock.sleep_ms(250)


def make_world(spec: BenchSpec, profile: dict[str, Any], now: float, args: Any) -> World:
    """The world of the bench's place, with the battery of its board profile."""
    battery = profile["battery"]
    return World(
        spec.municipality,
        spec.seed,
        now,
        chemistry=battery["chemistry"],
        capacity_ah=battery["capacity_ah"],
        ports=len(profile["ports"]),
        wireless_port=next((p["n"] for p in profile["ports"] if p["kind"] == "wireless"), None),
        soc=spec.soc,
        people_scale=spec.people,
        outages=[(args.start + s, args.start + s + d) for s, d in args.outages],
    )


class BenchProcess:
    """The child process: one bench, its flash folder, its world; its tasks run until the bench
    stops, a signal comes, or (without ``--catch-up``) its clock reaches now."""

    def __init__(self, args: argparse.Namespace) -> None:
        from boards.virtual.bench import VirtualBench
        from boards.virtual.clock import VirtualClock

        self.args = args
        spec = BenchSpec(**json.loads(args.spec))
        self.profile = json.loads((boards_dir() / f"{spec.profile}.json").read_text())
        self.flash = flash = Path(args.flash)
        flash.mkdir(parents=True, exist_ok=True)
        # Beside the flash folder, not in it: the world's state and the presses are not the bench's.
        self.state = flash.parent / f"{flash.name}.world.json"
        self.presses_log = flash.parent / f"{flash.name}.presses.jsonl"
        if self.state.exists():  # back after a power cut: the battery is as the cut left it
            spec.soc = float(json.loads(self.state.read_text())["soc"])
            print(
                f"klupa sim: {spec.bench} back after a power cut, its battery at "
                f"{100 * spec.soc:.2f} % as the cut left it",
                flush=True,
            )
        # After a power cut the bench comes back at the simulated time the cut happened, not at
        # the run's start: time never goes backwards. Outages stay relative to the run's start.
        self.clock = clock = VirtualClock(start=args.now, speed=args.speed)
        self.world = make_world(spec, self.profile, clock.time(), args)
        self.vb = VirtualBench(
            flash, self.profile, config_to_write(flash, spec, args.broker), clock
        )
        self.stop = asyncio.Event()

    def ready(self) -> bool:
        """The bench's clock is set and its touchpad running: a press can be a vote."""
        app = self.vb.app
        return bool(app is not None and app.clock_set and app.front is not None)

    def halt(self) -> None:
        self.stop.set()
        self.vb.stop()

    async def catch_up(self) -> None:
        # The gateway refuses records from the future: at now, real time; or stop there.
        clock = self.clock
        while not self.stop.is_set():
            if clock.time() >= time.time() - 1:
                if not self.args.catch_up:
                    self.halt()
                    return
                if clock.speed != 1.0:
                    clock.set_speed(1.0)
            # Wake when the clock is due to reach now, not up to 0.2 s x speed past it.
            ahead = (time.time() - 1 - clock.time()) / max(1.0, clock.speed)
            await asyncio.sleep(min(0.2, max(0.005, ahead)))

    async def screenshots(self) -> None:
        # What the display shows, rewritten every real second (and once more at the end).
        while not self.stop.is_set():
            self.vb.screenshot(self.args.screenshot, scale=4)
            await asyncio.sleep(1.0)

    async def run(self) -> list[Exception]:
        """Run the bench and its tasks; what made any of them fail (nothing on a clean stop)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.halt)
        physics = drive(
            self.vb.board,
            self.world,
            self.clock,
            self.profile,
            self.stop,
            presses_log=self.presses_log,
            state=self.state,
            flash=self.flash,
            ready=self.ready,
        )
        tasks = [asyncio.create_task(physics), asyncio.create_task(self.catch_up())]
        if self.args.screenshot:
            tasks.append(asyncio.create_task(self.screenshots()))
        bench = asyncio.create_task(self.vb.run())
        await asyncio.wait([bench, *tasks], return_when=asyncio.FIRST_COMPLETED)
        self.halt()
        for t in (bench, *tasks):
            t.cancel()
        results = await asyncio.gather(bench, *tasks, return_exceptions=True)
        if self.args.screenshot:
            self.vb.screenshot(self.args.screenshot, scale=4)
        return [r for r in results if isinstance(r, Exception)]


def run_bench(args: argparse.Namespace) -> int:
    """The child process: one bench, its flash folder, its world."""
    process = BenchProcess(args)
    failures = asyncio.run(process.run())
    for exc in failures:  # the bench could not run (the app's own crashes reset the board)
        traceback.print_exception(exc)
    return 1 if failures else 0
