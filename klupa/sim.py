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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boards.virtual.physics import COORDINATES, World
from klupa.console import Parser

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


def broker_address(text: str) -> str:
    """``--broker``: HOST:PORT, checked here so a typo is one line, not a traceback."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, e.g. 127.0.0.1:1883 (got {text!r})")
    return text


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


# --------------------------------------------------------------------------- one bench


@dataclass
class Presses:
    """Passers-by pressing the pads: mostly one clean press, some mis-touches, a rare stuffer."""

    rng: random.Random
    queue: list[tuple[float, int, float]] = field(default_factory=list)  # (at, pad, hold_s)
    log: Path | None = None  # one JSON line per press made, for tests to compare with votes

    def maybe_visit(self, t: float, rate_per_h: float, dt: float, pads: int, options: int) -> None:
        if self.rng.random() >= rate_per_h * dt / 3600.0:
            return
        choice = 0 if self.rng.random() < 0.6 else self.rng.randrange(max(1, options))
        kind = self.rng.random()
        if kind < 0.8:
            self.queue.append((t, choice, self.rng.uniform(0.5, 0.9)))
        elif kind < 0.93:
            self.queue.append((t, self.rng.randrange(pads), 0.05))  # a brush of the hand
        else:
            for i in range(10):  # the same pad ten times
                self.queue.append((t + i * 2.0, choice, 0.6))

    def record(self, at: float, pad: int, hold: float, expect: str, option: str | None) -> None:
        if self.log is not None:
            line: dict[str, Any] = {"ts": round(at, 3), "pad": pad, "hold_s": round(hold, 3)}
            line["expect"] = expect
            if option is not None:
                line["option"] = option
            with self.log.open("a") as f:
                f.write(json.dumps(line) + "\n")


# The vote rules of the bench (docs/protocol.md, issue "touchpad voting"), as a passer-by
# meets them.
PRESS_S = (0.3, 1.5)  # a vote press is held this long, then released
CONFIRM_S = 3.0  # the confirmation screen, before the cooldown starts
MARGIN_S = 0.5  # closer than this to a rule's edge, the sim does not claim to know the outcome
HOLD_MARGIN_S = 0.15  # the same for a press's length, which the bench measures by sampling


@dataclass
class Tally:
    """What the bench should make of each press, tracked by the simulator on its own: a vote, or
    not (a brush, no such option, poll closed, confirmation + cooldown, hourly cap).

    A press within MARGIN_S of a rule's edge may go either way: the tally then follows both
    histories (the times the last vote may have been made) and calls a later press sure only
    when every history agrees on it; otherwise it is `unsure`. Reads the poll the bench keeps
    (``poll.json``) and its settings (``config.json``, then ``state.json``'s `set` values) from
    the flash folder, as they change."""

    flash: Path | None
    votes: list[tuple[float, bool]] = field(default_factory=list)  # (time, sure), last hour
    lasts: set[float | None] = field(default_factory=lambda: {None})  # the possible last votes
    poll: dict[str, Any] | None = None
    settings: dict[str, int] = field(default_factory=lambda: {"cooldown": 10, "vote_cap": 60})
    _read: float = -1e18

    def refresh(self, t: float, now: bool = False) -> None:
        if self.flash is None or (t - self._read < 30.0 and not now):
            return
        self._read = t
        self.poll = read_json(self.flash / "poll.json")
        for name in ("config.json", "state.json"):
            doc = read_json(self.flash / name) or {}
            values = doc.get("settings", {}) if name == "state.json" else doc
            for key in ("cooldown", "vote_cap"):
                if isinstance(values.get(key), int):
                    self.settings[key] = values[key]

    def options(self) -> int:
        return len(self.poll["options"]) if self.poll else 2

    def judge(self, released: float, pad: int, hold: float, ready: bool) -> tuple[str, str | None]:
        """The outcome of a press released at ``released`` (the bench's clock)."""
        self.refresh(released, now=True)  # the poll as the bench has it at this moment
        poll = self.poll
        if not ready or poll is None:
            return "closed", None
        option = poll["options"][pad]["id"] if pad < len(poll["options"]) else None
        if option is None:
            return "no_option", None
        opens, closes = int(poll["opens"]), int(poll["closes"])
        edge = min(abs(released - opens), abs(released - closes)) < MARGIN_S + 1
        if not edge and not opens <= released < closes:
            return "closed", option
        lo, hi = PRESS_S
        if hold < lo - HOLD_MARGIN_S or hold > hi + HOLD_MARGIN_S:
            return "touch", option
        maybe_press = edge or not lo + HOLD_MARGIN_S <= hold <= hi - HOLD_MARGIN_S
        # The hourly cap: the votes of the last hour (uncertain near the hour's edge, or when
        # some of them may not have been votes).
        self.votes = [v for v in self.votes if released - v[0] < 3600.0 + MARGIN_S]
        near_hour = any(abs(released - t - 3600.0) < MARGIN_S for t, _ in self.votes)
        cap = self.settings["vote_cap"]
        if sum(sure for _, sure in self.votes) >= cap and not near_hour:
            return "cap", option
        maybe_cap = near_hour or len(self.votes) >= cap
        # Confirmation + cooldown after the last vote, in each history.
        blocked = CONFIRM_S + self.settings["cooldown"]
        outcomes: set[str] = set()
        lasts: set[float | None] = set()
        for last in self.lasts:
            age = None if last is None else released - last
            if age is not None and age < blocked - MARGIN_S:
                outcomes.add("cooldown")
                lasts.add(last)
            elif age is None or age > blocked + MARGIN_S:
                outcomes.add("vote")
                lasts.add(released)
                if maybe_press or maybe_cap:
                    lasts.add(last)
            else:
                outcomes |= {"cooldown", "vote"}
                lasts |= {last, released}
        # A history whose last vote is long past blocks nothing: it is the same as no vote.
        self.lasts = {
            t if t is not None and released - t < blocked + MARGIN_S else None for t in lasts
        }
        sure = outcomes == {"vote"} and not (maybe_press or maybe_cap)
        if "vote" in outcomes:
            self.votes.append((released, sure))
        if sure:
            return "vote", option
        if outcomes == {"cooldown"}:
            return "cooldown", option
        return "unsure", option


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


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


def run_bench(args: argparse.Namespace) -> int:
    """The child process: one bench, its flash folder, its world."""
    from boards.virtual.bench import VirtualBench
    from boards.virtual.clock import VirtualClock

    spec = BenchSpec(**json.loads(args.spec))
    profile = json.loads((BOARDS / f"{spec.profile}.json").read_text())
    flash = Path(args.flash)
    flash.mkdir(parents=True, exist_ok=True)
    # Beside the flash folder, not in it: the world's state and the presses are not the bench's.
    state = flash.parent / f"{flash.name}.world.json"
    presses_log = flash.parent / f"{flash.name}.presses.jsonl"
    if state.exists():  # back after a power cut: the battery is as the cut left it
        spec.soc = float(json.loads(state.read_text())["soc"])
    # After a power cut the bench comes back at the simulated time the cut happened, not at the
    # run's start: time never goes backwards. Outages stay relative to the run's start.
    clock = VirtualClock(start=args.now, speed=args.speed)
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
    vb = VirtualBench(flash, profile, config_to_write(flash, spec, args.broker), clock)

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
            # Wake when the clock is due to reach now, not up to 0.2 s x speed past it.
            ahead = (time.time() - 1 - clock.time()) / max(1.0, clock.speed)
            await asyncio.sleep(min(0.2, max(0.005, ahead)))

    async def screenshots(stop: asyncio.Event) -> None:
        # What the display shows, rewritten every real second (and once more at the end).
        while not stop.is_set():
            vb.screenshot(args.screenshot, scale=4)
            await asyncio.sleep(1.0)

    async def both() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            stop.set()
            vb.stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        tasks = [
            asyncio.create_task(
                drive(
                    vb.board,
                    world,
                    clock,
                    profile,
                    stop,
                    presses_log=presses_log,
                    state=state,
                    flash=flash,
                    ready=lambda: bool(
                        vb.app is not None and vb.app.clock_set and vb.app.front is not None
                    ),
                )
            ),
            asyncio.create_task(catch_up(stop)),
        ]
        if args.screenshot:
            tasks.append(asyncio.create_task(screenshots(stop)))
        bench = asyncio.create_task(vb.run())
        await asyncio.wait([bench, *tasks], return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        vb.stop()
        for t in (bench, *tasks):
            t.cancel()
        await asyncio.gather(bench, *tasks, return_exceptions=True)
        if args.screenshot:
            vb.screenshot(args.screenshot, scale=4)

    asyncio.run(both())
    return 0


# --------------------------------------------------------------------------- the fleet


def main(argv: list[str]) -> int:
    parser = Parser(prog="klupa sim", description=__doc__)
    parser.add_argument(
        "--broker",
        type=broker_address,
        default="127.0.0.1:1883",
        help="HOST:PORT of the MQTT broker",
    )
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
            now=float(os.environ.get("KLUPA_SIM_NOW", os.environ["KLUPA_SIM_START"])),
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
    shots = dict(s.split("=", 1) for s in [args.screenshot] if "=" in s)
    if args.screenshot and not shots:
        parser.error(f"--screenshot wants BENCH=FILE.png, got {args.screenshot!r}")
    for bench in shots:
        if bench not in {s.bench for s in specs}:
            parser.error(f"--screenshot names {bench!r}, which is not one of the simulated benches")
    start = time.time() - args.start_ago
    flash_root = Path(args.flash).resolve()
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(spec: BenchSpec, now: float | None = None) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env["KLUPA_SIM_START"] = repr(start)
        env["KLUPA_SIM_NOW"] = repr(start if now is None else now)
        env["KLUPA_SIM_FLASH"] = str(flash_root / spec.bench)
        if spec.bench in shots:
            env["KLUPA_SIM_SCREENSHOT"] = shots[spec.bench]
        argv = [
            sys.executable,
            "-P",  # not the current folder first: a local `portal/` must not shadow ours
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
            # The benches' clocks: accelerated until they reach now, then real time.
            now = min(start + sim_elapsed, time.time()) if args.catch_up else start + sim_elapsed
            for bench, proc in procs.items():  # a power cut: no clean shutdown, flash as it is
                proc.kill()
                proc.wait()
                procs[bench] = spawn(next(s for s in specs if s.bench == bench), now)
            print(
                f"klupa sim: power cut at {sim_elapsed:.0f} s simulated; benches rebooting",
                flush=True,
            )
        if args.duration and sim_elapsed >= args.duration:
            break
        for bench, proc in procs.items():
            if proc.poll() is not None and proc.returncode != 0:
                print(f"klupa sim: {bench} stopped with status {proc.returncode}", file=sys.stderr)
                rc = 1
                stopping = True
        if all(proc.poll() == 0 for proc in procs.values()):
            break  # every bench reached now (without --catch-up): the run is over
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
