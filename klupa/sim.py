"""`klupa sim`: virtual benches, each in its own process running the unchanged firmware on the
virtual board, driven by the physics of its place (sun, clouds, battery, people, link).

Time runs `--speed` times faster than real time from `--start-ago` seconds in the past; the
gateway rejects records from the future, so with `--catch-up` a bench drops to real time when
its clock reaches now, and without it the run stops there. Each bench keeps its own flash folder
under `--flash`, so a power cut (`--power-cut`) and the reboot after it are real.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boards.virtual.physics import COORDINATES, World

REPO = Path(__file__).resolve().parent.parent
BOARDS = REPO / "boards"
FIRMWARE = REPO / "firmware"


def parse_span(text: str) -> tuple[float, float]:
    """`START:DURATION` in simulated seconds after the run's start (suffix s, m, h or d)."""
    try:
        start, duration = text.split(":", 1)
        return seconds(start), seconds(duration)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected START:DURATION such as 2h:6h, got {text!r}"
        ) from exc


def seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip()
    if text and text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


@dataclass
class BenchSpec:
    bench: str
    municipality: str
    profile: str = "bench-v1"
    seed: int = 0
    people: float = 1.0
    soc: float = 0.8


def fleet(
    municipalities: list[str], benches: list[str], profile: str, seed: int
) -> list[BenchSpec]:
    specs: list[BenchSpec] = []
    for m in municipalities:
        if m not in COORDINATES:
            raise SystemExit(
                f"klupa sim: unknown municipality {m!r} (one of {', '.join(COORDINATES)})"
            )
        specs.append(BenchSpec(f"{m}-01", m, profile, seed))
    for b in benches:
        m = b.rsplit("-", 1)[0]
        if m not in COORDINATES:
            raise SystemExit(f"klupa sim: bench {b!r} does not name a known municipality")
        specs.append(BenchSpec(b, m, profile, seed))
    return specs


def bench_config(spec: BenchSpec, host: str, port: int) -> dict[str, Any]:
    return {
        "bench": spec.bench,
        "municipality": spec.municipality,
        "wifi": {"ssid": "klupa-sim", "password": "virtual"},
        "mqtt": {"host": host, "port": port, "user": spec.bench, "password": ""},
        "ntp": host,
        "ota_key": "0" * 64,
    }


# --------------------------------------------------------------------------- one bench


@dataclass
class Presses:
    """Passers-by pressing the pads: mostly one clean press, some mis-touches, a rare stuffer."""

    rng: random.Random
    queue: list[tuple[float, int, float]] = field(default_factory=list)  # (at, pad, hold_s)

    def maybe_visit(self, t: float, rate_per_h: float, dt: float, pads: int, options: int) -> None:
        if self.rng.random() >= rate_per_h * dt / 3600.0:
            return
        choice = 0 if self.rng.random() < 0.6 else self.rng.randrange(max(1, options))
        kind = self.rng.random()
        if kind < 0.8:
            self.queue.append((t, choice, self.rng.uniform(0.5, 1.0)))
        elif kind < 0.93:
            self.queue.append((t, self.rng.randrange(pads), 0.15))  # a brush of the hand
        else:
            for i in range(10):  # the same pad ten times
                self.queue.append((t + i * 2.0, choice, 0.6))


async def drive(
    board: Any, world: World, clock: Any, profile: dict[str, Any], stop: asyncio.Event
) -> None:
    """Copy the world's physical values onto the board's chips, one simulated second at a time."""
    pins = profile["touch"]["pins"]
    falls = profile["touch"].get("direction", "falls") == "falls"
    base = 600
    presses = Presses(random.Random(f"{world.seed}/{world.municipality}/presses"))
    pressing: tuple[float, int] | None = None
    last = clock.time()
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
            presses.maybe_visit(
                world.t, world.people_scale * (6.0 if 8 <= hour < 21 else 0.5), step, len(pins), 2
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
        # Touch pads: a press holds a pad past the sensitivity for its hold time.
        if pressing is None and presses.queue and presses.queue[0][0] <= world.t:
            at, pad, hold = presses.queue.pop(0)
            pressing = (world.t + hold, pad)
            board.touch[pins[pad]] = int(base * (0.6 if falls else 1.4))
        elif pressing is not None and world.t >= pressing[0]:
            board.touch[pins[pressing[1]]] = base
            pressing = None
        await clock.sleep_ms(50 if pressing is not None else 250)


def run_bench(args: argparse.Namespace) -> int:
    """The child process: one bench, its flash folder, its world."""
    from boards.virtual.bench import VirtualBench
    from boards.virtual.clock import VirtualClock

    spec = BenchSpec(**json.loads(args.spec))
    profile = json.loads((BOARDS / f"{spec.profile}.json").read_text())
    clock = VirtualClock(start=args.start, speed=args.speed)
    battery = profile["battery"]
    world = World(
        spec.municipality,
        spec.seed,
        clock.time(),
        chemistry=battery["chemistry"],
        capacity_ah=battery["capacity_ah"],
        ports=len(profile["ports"]),
        wireless_port=next((p["n"] for p in profile["ports"] if p["kind"] == "wireless"), None),
        soc=spec.soc,
        people_scale=spec.people,
        outages=[(args.start + s, args.start + s + d) for s, d in args.outages],
    )
    flash = Path(args.flash)
    flash.mkdir(parents=True, exist_ok=True)
    config = None
    if not (flash / "config.json").exists():
        host, port = args.broker.rsplit(":", 1)
        config = bench_config(spec, host, int(port))
    vb = VirtualBench(flash, profile, config, clock)

    async def catch_up(stop: asyncio.Event) -> None:
        # The gateway refuses records from the future: at now, real time; or stop there.
        while not stop.is_set():
            if clock.time() >= time.time() - 1:
                if not args.catch_up:
                    stop.set()
                    vb.stop()
                    return
                if clock.speed != 1.0:
                    clock.set_speed(1.0)
            await asyncio.sleep(0.2)

    async def both() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            stop.set()
            vb.stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        tasks = [
            asyncio.create_task(drive(vb.board, world, clock, profile, stop)),
            asyncio.create_task(catch_up(stop)),
        ]
        bench = asyncio.create_task(vb.run())
        await asyncio.wait([bench, *tasks], return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        vb.stop()
        for t in (bench, *tasks):
            t.cancel()
        await asyncio.gather(bench, *tasks, return_exceptions=True)

    asyncio.run(both())
    return 0


# --------------------------------------------------------------------------- the fleet


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="klupa sim", description=__doc__)
    parser.add_argument("--broker", default="127.0.0.1:1883", help="HOST:PORT of the MQTT broker")
    parser.add_argument(
        "--municipalities", default="", help="comma-separated; one bench each, or `all`"
    )
    parser.add_argument("--benches", default="", help="comma-separated bench ids, e.g. mostar-02")
    parser.add_argument(
        "--profile", default="bench-v1", help="board profile in boards/ (default bench-v1)"
    )
    parser.add_argument(
        "--speed", type=float, default=60.0, help="simulated seconds per real second"
    )
    parser.add_argument(
        "--start-ago", type=seconds, default=86400.0, help="start this far in the past"
    )
    parser.add_argument("--catch-up", action="store_true", help="at now, go on in real time")
    parser.add_argument(
        "--duration", type=seconds, default=0.0, help="stop after this much simulated time"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--people", type=float, default=1.0, help="scale of passers-by")
    parser.add_argument(
        "--soc", type=float, default=0.8, help="battery state of charge at start (0-1)"
    )
    parser.add_argument("--flash", default=".klupa-sim", help="folder holding each bench's flash")
    parser.add_argument(
        "--wifi-outage", type=parse_span, action="append", default=[], metavar="START:DUR"
    )
    parser.add_argument("--power-cut", type=seconds, action="append", default=[], metavar="AT")
    parser.add_argument(
        "--screenshot", default="", help="BENCH=FILE.png: write that bench's display"
    )
    parser.add_argument("--bench-process", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.bench_process:
        child = argparse.Namespace(
            spec=args.bench_process,
            broker=args.broker,
            start=float(os.environ["KLUPA_SIM_START"]),
            speed=args.speed,
            outages=args.wifi_outage,
            flash=os.environ["KLUPA_SIM_FLASH"],
            catch_up=args.catch_up,
            screenshot=os.environ.get("KLUPA_SIM_SCREENSHOT", ""),
        )
        return run_bench(child)

    municipalities = (
        list(COORDINATES)
        if args.municipalities == "all"
        else [m for m in args.municipalities.split(",") if m]
    )
    benches = [b for b in args.benches.split(",") if b]
    specs = fleet(municipalities, benches, args.profile, args.seed)
    if not specs:
        parser.error("name at least one bench: --municipalities or --benches")
    for spec in specs:
        spec.people = args.people
        spec.soc = args.soc
    shots = dict(s.split("=", 1) for s in [args.screenshot] if s)
    start = time.time() - args.start_ago
    flash_root = Path(args.flash).resolve()
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(spec: BenchSpec) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env["KLUPA_SIM_START"] = repr(start)
        env["KLUPA_SIM_FLASH"] = str(flash_root / spec.bench)
        if spec.bench in shots:
            env["KLUPA_SIM_SCREENSHOT"] = shots[spec.bench]
        argv = [
            sys.executable,
            "-m",
            "klupa.cli",
            "sim",
            "--bench-process",
            json.dumps(spec.__dict__),
            "--broker",
            args.broker,
            "--speed",
            str(args.speed),
        ]
        for s, d in args.wifi_outage:
            argv += ["--wifi-outage", f"{s}:{d}"]
        if args.catch_up:
            argv.append("--catch-up")
        return subprocess.Popen(argv, env=env)

    for spec in specs:
        procs[spec.bench] = spawn(spec)
    print(
        f"klupa sim: {len(specs)} benches at ×{args.speed:g} from {args.start_ago:.0f} s ago",
        flush=True,
    )
    cuts = sorted(args.power_cut)
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    t0 = time.monotonic()
    rc = 0
    while not stopping:
        sim_elapsed = (time.monotonic() - t0) * args.speed
        if cuts and sim_elapsed >= cuts[0]:
            cuts.pop(0)
            for bench, proc in procs.items():  # a power cut: no clean shutdown, flash as it is
                proc.kill()
                proc.wait()
                procs[bench] = spawn(next(s for s in specs if s.bench == bench))
            print(
                f"klupa sim: power cut at {sim_elapsed:.0f} s simulated; benches rebooting",
                flush=True,
            )
        if args.duration and sim_elapsed >= args.duration:
            break
        for bench, proc in procs.items():
            if proc.poll() is not None:
                print(f"klupa sim: {bench} stopped with status {proc.returncode}", file=sys.stderr)
                rc = 1
                stopping = True
        time.sleep(0.1)
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs.values():
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return rc
