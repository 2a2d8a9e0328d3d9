"""``klupa fleet ota rollout``: a staged app update of every municipality, from the laptop.

Plans the stages over the whole fleet (:mod:`klupa.fleet`), then carries out one stage at a
time: for each municipality with work in it, the bundle is copied to its Pi (``--push``, by
default rsync over SSH) and ``klupa gateway ota rollout --stage … --upto K --json-lines`` runs
there (``--via``, by default over SSH), all of the stage's Pis at once. Their JSON lines keep
the fleet's table; their whole output goes to ``rollouts/<version>/<m>.log`` in the deployment
folder. A Pi ending with 3 (halted) stops the others and the fleet; 130 or any other status
from a Pi stops the fleet as an error. The fleet's state file,
``rollouts/rollout-<version>.json``, makes the same command continue after Ctrl-C.
Exit status: 0 done, 1 error, 2 usage, 3 halted, 4 only offline benches left (``--no-wait``),
130 interrupted.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from edge_gateway import rollout as R
from klupa import fleet as F
from klupa.console import Parser
from provisioning.bundle import MANIFEST_NAME, BundleError, load_bundle
from provisioning.deployment import Deployment, DeploymentError

PROG = "klupa fleet ota rollout"
VIA = (
    "ssh -tt -o BatchMode=yes {host} sudo -n /opt/klupa/venv/bin/klupa gateway ota rollout "
    "--config /etc/klupa/gateway-{m}.toml"
)
PUSH = "rsync -a --delete {bundle}/ {host}:{remote}/"
REMOTE = "/tmp/klupa-bundle-{version}"


def _arg(parse: Any) -> Any:
    def check(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return check


def parser() -> Parser:
    top = Parser(prog="klupa fleet", description="The whole fleet, from the technician's laptop.")
    sub = top.add_subparsers(dest="command", required=True)
    ota = sub.add_parser(
        "ota", help="app updates of every municipality", description="App updates."
    )
    osub = ota.add_subparsers(dest="ota_command", required=True)
    help_ = "a staged app update across every municipality, each stage carried out by the Pis"
    p = osub.add_parser("rollout", help=help_, description=help_)
    p.add_argument(
        "--deployment",
        default=os.environ.get("KLUPA_DEPLOY", "."),
        help="the deployment folder (default: $KLUPA_DEPLOY or the current folder)",
    )
    p.add_argument("--bundle", required=True, help="the bundle folder (`klupa bundle --out`)")
    p.add_argument("--canary", required=True, help="the one bench, anywhere, that takes it first")
    p.add_argument(
        "--then",
        type=_arg(R.parse_stage),
        action="append",
        default=[],
        metavar="STAGE",
        help="a later stage: 25%% (of the fleet's benches left), 3 (benches) or all; repeatable",
    )
    p.add_argument(
        "--soak",
        type=_arg(R.parse_duration),
        default=600.0,
        help="each bench healthy this long after committing, before the next stage (10m)",
    )
    p.add_argument("--only", help="these municipalities only (m1,m2); planned once")
    p.add_argument("--via", default=VIA, help=f"the command that runs a Pi's rollout ({VIA!r})")
    p.add_argument(
        "--push", default=PUSH, help=f"the command that copies the bundle to a Pi ({PUSH!r}); none"
    )
    p.add_argument(
        "--remote-bundle", default=REMOTE, help=f"the bundle's folder on the Pi ({REMOTE!r})"
    )
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="end (status 4) once only offline or asleep benches are left",
    )
    p.add_argument("--retry", action="store_true", help="after a halt: offer it again")
    p.add_argument("--stop-timeout", type=float, default=60.0, help=argparse.SUPPRESS)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return rollout(args)
    except F.FleetError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1


# --------------------------------------------------------------------------- starting


def fleet_benches(dep: Deployment, only: str | None) -> dict[str, str]:
    """Bench -> municipality, from the inventory; with ``only``, of those municipalities."""
    known = dep.municipalities()
    wanted = [m.strip() for m in only.split(",") if m.strip()] if only else known
    unknown = [m for m in wanted if m not in known]
    if unknown:
        raise F.FleetError(f"not a municipality of the inventory: {', '.join(unknown)}")
    benches = {b.id: b.municipality for b in dep.benches() if b.municipality in wanted}
    if not benches:
        raise F.FleetError(f"no bench of {', '.join(wanted)} in {dep.inventory_path}")
    return benches


def start_state(args: argparse.Namespace, dep: Deployment) -> tuple[F.FleetState, Path]:
    folder = Path(args.bundle)
    try:
        version = load_bundle(folder, dep.ota_anchor).version
        sha = hashlib.sha256((folder / MANIFEST_NAME).read_bytes()).hexdigest()
    except (BundleError, DeploymentError, OSError, ValueError, KeyError) as exc:
        raise F.FleetError(f"{folder}: not a bundle of this deployment ({exc})") from None
    benches = fleet_benches(dep, args.only)
    path = F.state_path(dep.root, version)
    st = F.load(path)
    if st is None:
        st = F.new_state(version, sha, args.canary, args.then, benches)
        F.save(path, st)
        print(f"fleet rollout of {version}, state in {path}")
        return st, path
    if st.sha256 != sha:
        raise F.FleetError(
            f"{path} records a rollout of another build of {version}; a new build needs a new "
            "version (or move that file away to start over)"
        )
    if sorted(st.municipalities) != sorted(set(benches.values())):
        raise F.FleetError(
            f"{path} plans {', '.join(st.municipalities)}; the stages stay as first planned "
            "(the same --only, or move that file away to plan again)"
        )
    if st.stages[0] != [args.canary]:
        print(f"continuing with the canary {st.stages[0][0]} ({path} names it)")
    print(f"continuing the fleet rollout of {version} recorded in {path}")
    return st, path


def rollout(args: argparse.Namespace) -> int:
    try:
        dep = Deployment(Path(args.deployment))
    except DeploymentError as exc:
        raise F.FleetError(str(exc)) from None
    st, path = start_state(args, dep)
    if st.halted and not args.retry:
        print(F.table(st, time.time()))
        print(f"halted: {st.halted}. Fix the cause; --retry offers the halted benches again.")
        return 3
    st.halted = ""
    hosts = {m: dep.municipality(m).gateway_host for m in st.municipalities}
    return Run(args, st, path, hosts).go()


# --------------------------------------------------------------------------- the run


@dataclass
class Pi:
    """One municipality's rollout command of this stage, running."""

    m: str
    proc: subprocess.Popen[str]
    log: IO[str]
    status: int | None = None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=5))


class Run:
    def __init__(
        self, args: argparse.Namespace, st: F.FleetState, path: Path, hosts: dict[str, str]
    ) -> None:
        self.args, self.st, self.path, self.hosts = args, st, path, hosts
        self.logs = path.parent / R.VERSION_FILE_RE.sub("_", st.version)
        self.pushed: set[str] = set()
        self.lines: queue.Queue[tuple[str, str | None]] = queue.Queue()

    def values(self, m: str) -> dict[str, str]:
        version = R.VERSION_FILE_RE.sub("_", self.st.version)
        base = {"m": m, "host": self.hosts[m], "version": version}
        remote = F.expand(self.args.remote_bundle, base)[0]
        return {**base, "bundle": str(Path(self.args.bundle).resolve()), "remote": remote}

    def go(self) -> int:
        st = self.st
        last = len(st.stages) - 1
        if not st.started:
            st.started = time.time()
        print(F.table(st, time.time()), flush=True)

        def on_term(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        old_term = signal.signal(signal.SIGTERM, on_term)
        try:
            for k in range(min(st.stage_done + 1, last), last + 1):
                pis = st.pis_for(k)
                name = "the canary" if k == 0 else f"stage {k}"
                print(f"-- {name}: {', '.join(st.stages[k]) or 'nothing new'}", flush=True)
                code = self.stage(k, pis) if pis else None
                if code is not None:
                    return code
                st.stage_done = max(st.stage_done, k)
                F.save(self.path, st)
        except KeyboardInterrupt:  # between stages, or while a bundle is copied
            F.save(self.path, st)
            print(f"stopped; the same command continues from {self.path}")
            return 130
        finally:
            signal.signal(signal.SIGTERM, old_term)
        print(F.table(st, time.time()))
        if waiting := st.left_waiting():
            print(f"left waiting for their return: {', '.join(waiting)}; run again to reach them")
            return 4
        print(f"done: every bench of {', '.join(st.municipalities)} runs {st.version}")
        return 0

    def log(self, m: str) -> IO[str]:
        self.logs.mkdir(parents=True, exist_ok=True)
        return open(self.logs / f"{m}.log", "a", encoding="utf-8")

    def push(self, m: str) -> str:
        """Copy the bundle to ``m``'s Pi; '' or what went wrong."""
        if self.args.push.strip().lower() in ("", "none"):
            return ""
        words = F.expand(self.args.push, self.values(m))
        with self.log(m) as log:
            log.write(f"== {datetime.now():%F %T} push: {' '.join(words)}\n")
            log.flush()
            try:
                done = subprocess.run(
                    words, stdout=log, stderr=subprocess.STDOUT, timeout=600, check=False
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                return f"{words[0]}: {exc}"
        return "" if done.returncode == 0 else f"`{words[0]}` ended with {done.returncode}"

    def start(self, m: str, k: int) -> Pi:
        last = len(self.st.stages) - 1
        values = self.values(m)
        extra = F.pi_arguments(
            self.st.pi_stages()[m],
            k,
            values["remote"],
            self.args.soak,
            no_wait=k < last or self.args.no_wait,
            retry=self.args.retry,
        )
        words = F.expand(self.args.via, values) + F.safe_words(extra)
        log = self.log(m)
        log.write(f"== {datetime.now():%F %T} stage {k}: {' '.join(words)}\n")
        log.flush()
        proc = subprocess.Popen(
            words,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # Ctrl-C reaches the fleet, which stops each Pi in turn
        )
        threading.Thread(target=self._read, args=(m, proc), daemon=True).start()
        return Pi(m, proc, log)

    def _read(self, m: str, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.put((m, line.replace("\r", "").rstrip("\n")))
        self.lines.put((m, None))

    def stage(self, k: int, pis: list[str]) -> int | None:
        """Run stage ``k`` on ``pis``; None when each ended with 0 or 4, else the status."""
        for m in pis:
            if m not in self.pushed:
                if why := self.push(m):
                    print(f"{PROG}: could not copy the bundle to {m}'s Pi: {why}", file=sys.stderr)
                    print(f"(its log: {self.logs / f'{m}.log'}; the same command continues)")
                    return 1
                self.pushed.add(m)
        running = {m: self.start(m, k) for m in pis}
        interrupted, error, stopping = False, None, 0.0
        while any(p.status is None for p in running.values()):
            try:
                if stopping and time.monotonic() - stopping > self.args.stop_timeout:
                    for p in running.values():
                        if p.status is None:
                            p.proc.kill()
                ended = self._take(running)
                if ended is None or ended.status in (0, 4):
                    continue
                if ended.status == 3:
                    self.st.halted = self.st.halted or f"{ended.m}: {self._halt(ended.m)}"
                elif not stopping:
                    error = ended
                stopping = stopping or self._stop(running)
            except KeyboardInterrupt:
                interrupted = True
                stopping = stopping or self._stop(running)
        for p in running.values():
            p.log.close()
        F.save(self.path, self.st)
        if interrupted:
            print(F.table(self.st, time.time()))
            print(f"stopped; the same command continues from {self.path}")
            return 130
        if self.st.halted:
            print(F.table(self.st, time.time()))
            print(f"halted: {self.st.halted}. No Pi is asked to send {self.st.version} any more.")
            return 3
        if error is not None:
            print(F.table(self.st, time.time()))
            said = " / ".join(error.tail)
            print(f"{PROG}: {error.m}'s rollout ended with {error.status}: {said}", file=sys.stderr)
            print(f"(its log: {self.logs / f'{error.m}.log'}; the same command continues)")
            return 1
        return None

    def _take(self, running: dict[str, Pi]) -> Pi | None:
        """One line of a Pi's output; the Pi when it was its end."""
        try:
            m, line = self.lines.get(timeout=0.5)
        except queue.Empty:
            return None
        pi = running[m]
        if line is None:
            pi.status = pi.proc.wait()
            pi.log.write(f"== exit status {pi.status}\n")
            pi.log.flush()
            return pi
        pi.log.write(line + "\n")
        pi.log.flush()
        if view := self.st.heard(m, line):
            extra = f" ({view.detail})" if view.detail else ""
            clock = datetime.fromtimestamp(view.since or time.time()).strftime("%H:%M:%S")
            bench = next(b for b, v in self.st.benches.items() if v is view)
            print(f"{clock} {m}: {bench}: {view.state}{extra}", flush=True)
            F.save(self.path, self.st)
        elif line.strip() and not line.startswith("{"):
            pi.tail.append(line.strip())
        return None

    def _halt(self, m: str) -> str:
        for b, v in self.st.benches.items():
            if v.m == m and v.state in R.HALTING:
                return f"{b}: {v.state}" + (f" ({v.detail})" if v.detail else "")
        return "its Pi's rollout halted"

    def _stop(self, running: dict[str, Pi]) -> float:
        """Ask every Pi still running to stop (its rollout saves its state, ends with 130)."""
        for p in running.values():
            if p.status is None:
                try:
                    p.proc.send_signal(signal.SIGINT)
                except ProcessLookupError:
                    pass
        return time.monotonic()
