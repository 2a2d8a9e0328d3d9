"""`klupa sim`: virtual benches, each in its own process running the unchanged firmware on the
virtual board, driven by the physics of its place (sun, clouds, battery, people, link).

Time runs `--speed` times faster than real time from `--start-ago` seconds in the past; the
gateway rejects records from the future, so with `--catch-up` a bench drops to real time when
its clock reaches now, and without it the run stops there. Each bench keeps its own flash folder
under `--flash`, so a power cut (`--power-cut`) and the reboot after it are real.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from klupa import shipped
from klupa.console import Parser
from klupa.contract import MUNICIPALITIES
from klupa.sim.bench import BenchSpec, run_bench


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


def fleet(
    municipalities: list[str], benches: list[str], profile: str, seed: int
) -> list[BenchSpec]:
    specs: list[BenchSpec] = []
    for m in municipalities:
        if m not in MUNICIPALITIES:
            raise SystemExit(
                f"klupa sim: unknown municipality {m!r} (one of {', '.join(MUNICIPALITIES)})"
            )
        specs.append(BenchSpec(f"{m}-01", m, profile, seed))
    for b in benches:
        m = b.rsplit("-", 1)[0]
        if m not in MUNICIPALITIES:
            raise SystemExit(f"klupa sim: bench {b!r} does not name a known municipality")
        specs.append(BenchSpec(b, m, profile, seed))
    return specs


def _parser() -> Parser:
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
    return parser


def bench_process_args(args: argparse.Namespace) -> argparse.Namespace:
    """What a bench's process is told: its spec and flags, and from the fleet's environment
    the run's start, its own start (later after a power cut) and its flash folder."""
    return argparse.Namespace(
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


class Fleet:
    """The benches' processes: started, killed by a power cut and started again at the cut's
    simulated time, and stopped when the run is over (or one of them failed)."""

    def __init__(
        self, args: argparse.Namespace, specs: list[BenchSpec], shots: dict[str, str]
    ) -> None:
        self.args = args
        self.specs = specs
        self.shots = shots
        self.start = time.time() - args.start_ago
        self.flash_root = Path(args.flash).resolve()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False

    def spawn(self, spec: BenchSpec, now: float | None = None) -> subprocess.Popen[bytes]:
        args = self.args
        env = dict(os.environ)
        env["KLUPA_SIM_START"] = repr(self.start)
        env["KLUPA_SIM_NOW"] = repr(self.start if now is None else now)
        env["KLUPA_SIM_FLASH"] = str(self.flash_root / spec.bench)
        if spec.bench in self.shots:
            env["KLUPA_SIM_SCREENSHOT"] = self.shots[spec.bench]
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

    def power_cut(self, sim_elapsed: float) -> None:
        # The benches' clocks: accelerated until they reach now, then real time.
        start = self.start
        now = min(start + sim_elapsed, time.time()) if self.args.catch_up else start + sim_elapsed
        for bench, proc in self.procs.items():  # a power cut: no clean shutdown, flash as it is
            proc.kill()
            proc.wait()
            self.procs[bench] = self.spawn(next(s for s in self.specs if s.bench == bench), now)
        print(
            f"klupa sim: power cut at {sim_elapsed:.0f} s simulated; benches rebooting",
            flush=True,
        )

    def on_signal(self, signum: int, frame: object) -> None:
        self.stopping = True

    def run(self) -> int:
        args = self.args
        for spec in self.specs:
            self.procs[spec.bench] = self.spawn(spec)
        print(
            f"klupa sim: {len(self.specs)} benches at ×{args.speed:g} from {args.start_ago:.0f} s ago",
            flush=True,
        )
        cuts = sorted(args.power_cut)
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        t0 = time.monotonic()
        rc = 0
        while not self.stopping:
            sim_elapsed = (time.monotonic() - t0) * args.speed
            if cuts and sim_elapsed >= cuts[0]:
                cuts.pop(0)
                self.power_cut(sim_elapsed)
            if args.duration and sim_elapsed >= args.duration:
                break
            for bench, proc in self.procs.items():
                if proc.poll() is not None and proc.returncode != 0:
                    print(
                        f"klupa sim: {bench} stopped with status {proc.returncode}",
                        file=sys.stderr,
                    )
                    rc = 1
                    self.stopping = True
            if all(proc.poll() == 0 for proc in self.procs.values()):
                break  # every bench reached now (without --catch-up): the run is over
            time.sleep(0.1)
        self.stop()
        return rc

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.bench_process:
        return run_bench(bench_process_args(args))

    municipalities = (
        list(MUNICIPALITIES)
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
    if shots and importlib.util.find_spec("PIL") is None:
        parser.error("--screenshot needs Pillow, which is not installed here; install klupa[all]")
    shipped.firmware_dir()  # a missing firmware is one line here, not a bench that never runs
    profiles = shipped.board_profiles()
    if args.profile not in profiles:
        parser.error(f"--profile {args.profile!r} is not a board profile ({', '.join(profiles)})")
    return Fleet(args, specs, shots).run()
