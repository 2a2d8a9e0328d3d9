"""`klupa provision`: the technician's USB workflow, a thin layer over `provisioning.steps`."""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table

from klupa.console import Parser
from provisioning import detect as detect_mod
from provisioning import esp
from provisioning.create import DeploymentInvalid, create_deployment
from provisioning.deployment import Deployment, DeploymentError
from provisioning.errors import StepError
from provisioning.steps import STEP_HELP, STEPS, Run, run_steps

EXIT_STEP_FAILED = 1
EXIT_USAGE = 2


def _steps_epilog() -> str:
    lines = ["steps, in the order `bench` runs them:"]
    lines += [f"  {name:<12} {STEP_HELP[name]}" for name in STEPS]
    lines.append("")
    lines.append("Every step is safe to repeat and ends in a verification. OTA replaces only")
    lines.append("the app; MicroPython itself is updated over USB with `micropython`.")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="klupa provision",
        description="Turn a blank ESP32 into a registered, verified bench over USB.",
        epilog=_steps_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--deploy",
            default=os.environ.get("KLUPA_DEPLOY", "."),
            help="deployment folder (default: $KLUPA_DEPLOY or the current folder)",
        )
        sp.add_argument("--firmware", help="firmware folder (default: the installed one)")
        sp.add_argument("--boards", help="board profiles folder (default: the installed one)")
        sp.add_argument("--force", action="store_true", help="reflash MicroPython even if current")

    init = sub.add_parser("init", help="create a deployment folder (or complete one)")
    init.add_argument("dir")

    det = sub.add_parser("detect", help=STEP_HELP["detect"])
    det.add_argument("port", nargs="?", help="read this port's chip (default: list ports)")
    det.add_argument("--no-chip", action="store_true", help="list ports only")
    det.add_argument("--bench", help="check the chip against this bench's board profile")
    common(det)

    for name in ("micropython", "app", "selftest"):
        sp = sub.add_parser(name, help=STEP_HELP[name])
        sp.add_argument("port")
        sp.add_argument("--bench", required=name == "app", help="bench id from the inventory")
        common(sp)

    reg = sub.add_parser("register", help=STEP_HELP["register"])
    reg.add_argument("port", nargs="?", default="-", help="the board, to read its facts")
    reg.add_argument("--bench", required=True)
    common(reg)

    bench = sub.add_parser("bench", help="run all steps (or --steps) for one board")
    bench.add_argument("port")
    bench.add_argument("--bench", required=True)
    bench.add_argument("--steps", help=f"comma-separated subset of {','.join(STEPS)}")
    common(bench)

    batch = sub.add_parser("batch", help="provision every detected board in parallel")
    batch.add_argument("--steps", help=f"comma-separated subset of {','.join(STEPS)}")
    batch.add_argument("--ports", help="comma-separated ports (default: detected ones)")
    common(batch)
    return p


def _parse_steps(text: str | None) -> list[str]:
    if not text:
        return list(STEPS)
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in chosen if s not in STEPS]
    if bad:
        raise ValueError(f"unknown step(s) {', '.join(bad)}; steps are {', '.join(STEPS)}")
    return [s for s in STEPS if s in chosen]


def _make_run(args: argparse.Namespace, port: str, bench_id: str | None) -> Run:
    dep = Deployment(Path(args.deploy))
    run = Run(dep=dep, port=port, force=bool(getattr(args, "force", False)))
    if bench_id:
        run.bench = dep.bench(bench_id)
    if getattr(args, "firmware", None):
        run.firmware_dir = Path(args.firmware)
    if getattr(args, "boards", None):
        run.boards_dir = Path(args.boards)
    return run


def _one_board(args: argparse.Namespace, steps: list[str], port: str, out: Console) -> int:
    run = _make_run(args, port, getattr(args, "bench", None))
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(f"{step} {port}", total=max(total, 1))
            bar.update(tasks[step], completed=done, total=max(total, 1))

        run.progress = progress

        def report(step: str, summary: str) -> None:
            out.print(f"[green]ok[/green] {step}: {summary}", highlight=False)

        run_steps(run, steps, report)
    if run.label:
        out.print(run.label, highlight=False, markup=False)
    return 0


def _detect(args: argparse.Namespace, out: Console) -> int:
    if args.port:
        return _one_board(args, ["detect"], args.port, out)
    found = detect_mod.candidates()
    if not found:
        print(
            "klupa provision: step detect failed: expected a USB serial port of an ESP32 board "
            "(CP210x, CH340, CH9102, FTDI, USB-Serial/JTAG); saw none. Try: another cable "
            "(a data cable, not charge-only), another USB socket, or install the CP210x/CH340 driver",
            file=sys.stderr,
        )
        return EXIT_STEP_FAILED
    table = Table("port", "bridge", "USB id", "chip", "MAC", "flash")
    for c in found:
        chip = mac = flash = ""
        if not args.no_chip:
            try:
                info = esp.read_chip(c.port)
                chip, mac, flash = info.description, info.mac, info.flash_size or "?"
            except esp.ESPTOOL_ERRORS as e:
                chip = "no answer: " + esp.explain(e)[0]
        table.add_row(c.port, c.bridge, c.usb_id, chip, mac, flash)
    out.print(table)
    return 0


def _batch(args: argparse.Namespace, steps: list[str], out: Console) -> int:
    dep = Deployment(Path(args.deploy))
    ports = (
        [p for p in args.ports.split(",") if p]
        if args.ports
        else [c.port for c in detect_mod.candidates()]
    )
    if not ports:
        print("klupa provision: step detect failed: no ESP32 board found", file=sys.stderr)
        return EXIT_STEP_FAILED
    todo = dep.unprovisioned()
    if len(todo) < len(ports):
        print(
            f"klupa provision: {len(ports)} boards but {len(todo)} unprovisioned benches in the "
            "inventory: add benches to inventory.toml",
            file=sys.stderr,
        )
        return EXIT_USAGE
    pairs = list(zip(ports, [b.id for b in todo], strict=False))
    results: dict[str, tuple[str, str]] = {}
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.fields[bench]:<14} {task.fields[port]:<18}"),
        TextColumn("{task.description:<12}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        console=console,
    ) as bar:
        ids = {
            port: bar.add_task("waiting", total=len(steps), bench=bid, port=port)
            for port, bid in pairs
        }

        def one(port: str, bid: str) -> None:
            task = ids[port]
            run = _make_run(args, port, bid)
            run.dep = dep
            run.bench = dep.bench(bid)
            run.progress = lambda step, done, total: bar.update(
                task, description=f"{step} {100 * done // max(total, 1)}%"
            )
            finished = 0

            def report(step: str, summary: str) -> None:
                nonlocal finished
                finished += 1
                bar.update(task, completed=finished, description=step)

            try:
                run_steps(run, steps, report)
                results[port] = ("ok", run.label or "done")
                bar.update(task, description="done")
            except StepError as e:
                results[port] = ("FAILED", e.line())
                bar.update(task, description=f"failed: {e.step}")
            except Exception as e:  # one board's surprise must not stop the others
                results[port] = ("FAILED", f"{type(e).__name__}: {e}")

        with ThreadPoolExecutor(max_workers=len(pairs)) as pool:
            for port, bid in pairs:
                pool.submit(one, port, bid)
    table = Table("bench", "port", "result", "detail", title="klupa provision batch")
    for port, bid in pairs:
        status, detail = results.get(port, ("FAILED", "no result"))
        table.add_row(bid, port, status, detail)
    out.print(table)
    failed = [p for p in results if results[p][0] != "ok"]
    return EXIT_STEP_FAILED if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = Console(highlight=False)
    try:
        if args.command == "init":
            dep = create_deployment(Path(args.dir))
            out.print(
                f"deployment folder {dep.root} ready: {len(dep.municipalities())} municipalities, "
                f"{len(dep.benches())} benches. Set the Wi-Fi passwords in {dep.secrets_path}."
            )
            return 0
        if args.command == "detect":
            return _detect(args, out)
        if args.command == "batch":
            return _batch(args, _parse_steps(args.steps), out)
        steps = _parse_steps(args.steps) if args.command == "bench" else [args.command]
        return _one_board(args, steps, args.port, out)
    except StepError as e:
        print(f"klupa provision: {e.line()}", file=sys.stderr)
        return EXIT_STEP_FAILED
    except (DeploymentError, DeploymentInvalid, ValueError) as e:
        print(f"klupa provision: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(
            "klupa provision: interrupted; the board is safe to provision again "
            "(run the same command)",
            file=sys.stderr,
        )
        return 130
