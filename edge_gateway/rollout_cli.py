"""``klupa gateway ota rollout``: the command line over :mod:`edge_gateway.rollout`.

Puts the bundle where the gateway's OTA server serves it, plans the stages (or continues the
rollout its state file records), then steps the rollout every couple of seconds, printing each
bench's changes and the progress table, until every bench is done or something halts it.
Exit status: 0 done, 3 halted, 4 only offline benches left (``--no-wait``), 130 interrupted
(a second run continues), 1 or 2 errors.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from edge_gateway import rollout as R
from edge_gateway.commands import CommandLink, LinkError, add_ops_arguments, ops_credentials
from edge_gateway.config import Config, load_for_command
from edge_gateway.health import BenchHealth
from edge_gateway.text import printable
from klupa.contract import BENCH_RE

MANIFEST = "manifest.json"  # the bundle's manifest, as `klupa bundle` names it


def duration(text: str) -> float:
    """``90``, ``90s``, ``10m`` or ``1h`` in seconds."""
    try:
        return R.parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def stage(text: str) -> str:
    try:
        return R.parse_stage(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def bench_list(text: str) -> list[str]:
    """``a,b`` (benches) or ``-`` (none): a stage given whole."""
    text = text.strip()
    if text == "-":
        return []
    names = [b.strip() for b in text.split(",")]
    if not all(BENCH_RE.fullmatch(b) for b in names):
        raise argparse.ArgumentTypeError(f"a stage is bench ids a,b or - for none: {text!r}")
    return names


def add_parser(sub: Any) -> None:
    """``ota rollout`` under ``klupa gateway``."""
    ota = sub.add_parser("ota", help="app updates across the fleet", description="App updates.")
    osub = ota.add_subparsers(dest="ota_command", required=True)
    help_ = "send an app bundle to a canary bench, then to stages of the rest, watching each"
    p = osub.add_parser("rollout", help=help_, description=help_)
    p.add_argument("--config", required=True, help="the gateway's TOML configuration file")
    p.add_argument("--bundle", required=True, help="the bundle folder (`klupa bundle --out`)")
    p.add_argument("--canary", help="the bench that takes it first (required unless --stage)")
    p.add_argument(
        "--then",
        type=stage,
        action="append",
        default=[],
        metavar="STAGE",
        help="a later stage: 25%% (of the benches left), 3 (benches) or all; repeatable",
    )
    p.add_argument(
        "--stage",
        type=bench_list,
        action="append",
        default=[],
        metavar="BENCHES",
        help="instead of --canary and --then: a stage given as its benches (a,b; - for none), "
        "repeated; the first is the canary stage (`klupa fleet ota rollout` plans so)",
    )
    p.add_argument(
        "--upto",
        type=int,
        metavar="N",
        help="begin no stage after stage N (the canary's is 0); end once those are done",
    )
    p.add_argument(
        "--json-lines",
        action="store_true",
        help="also print each bench's state as a JSON line, at the start, at each change "
        "and at the end (for `klupa fleet ota rollout`)",
    )
    p.add_argument("--soak", type=duration, default=600.0, help="healthy this long (10m)")
    p.add_argument(
        "--base-url",
        help="URL of the OTA server's root as the benches reach it (default: http://THIS-HOST:"
        "[ota] port); without [ota], the URL of the bundle folder itself",
    )
    p.add_argument("--ack-timeout", type=duration, default=180.0, help=argparse.SUPPRESS)
    p.add_argument("--commit-timeout", type=duration, default=900.0, help=argparse.SUPPRESS)
    p.add_argument("--every", type=float, default=2.0, help=argparse.SUPPRESS)
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="end (status 4) once only offline or asleep benches are left; a later run "
        "sends to them",
    )
    p.add_argument(
        "--retry", action="store_true", help="after a halt: offer the halted benches again"
    )
    add_ops_arguments(p)
    p.set_defaults(func=cmd_rollout)


# --------------------------------------------------------------------------- the bundle


def _this_host() -> str:
    """This machine's address on its default route (no packet is sent), else its name."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))
            return str(s.getsockname()[0])
    except OSError:
        return socket.gethostname()


def check_files(folder: Path, manifest: dict[str, Any]) -> None:
    """Every file the manifest lists is there with its size and SHA-256."""
    entries = list(manifest.get("files", []))
    if isinstance(manifest.get("rom"), dict):
        entries.append(manifest["rom"])
    if not entries:
        raise R.RolloutError(f"{folder / MANIFEST} lists no files: not a bundle")
    for f in entries:
        path = folder / str(f["path"])
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise R.RolloutError(f"{path}: {exc.strerror}; rebuild the bundle") from None
        if len(data) != f["size"] or hashlib.sha256(data).hexdigest() != f["sha256"]:
            raise R.RolloutError(f"{path} differs from the manifest; rebuild the bundle")


def place_bundle(cfg: Config, bundle: Path, base_url: str | None) -> tuple[str, str, str]:
    """(version, manifest URL, manifest SHA-256), the bundle copied into ``[ota] dir`` unless
    it is already there."""
    try:
        raw = (bundle / MANIFEST).read_bytes()
        manifest = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise R.RolloutError(f"{bundle / MANIFEST}: not a bundle manifest ({exc})") from None
    version = manifest.get("version") if isinstance(manifest, dict) else None
    if not isinstance(version, str) or not version:
        raise R.RolloutError(f"{bundle / MANIFEST} names no version")
    check_files(bundle, manifest)
    sha = hashlib.sha256(raw).hexdigest()
    if cfg.ota is None:
        if not base_url:
            raise R.RolloutError(
                "this gateway serves no bundles ([ota] dir and port in its configuration): "
                "add them, or serve the bundle yourself and pass --base-url, its folder's URL"
            )
        return version, f"{base_url.rstrip('/')}/{MANIFEST}", sha
    root = Path(cfg.ota.dir).resolve()
    src = bundle.resolve()
    if src == root or root not in src.parents:
        dest = root / R.VERSION_FILE_RE.sub("_", version)
        if dest.exists():
            have = (dest / MANIFEST).read_bytes() if (dest / MANIFEST).exists() else b""
            if have != raw:
                raise R.RolloutError(
                    f"{dest} holds another build of {version}; a new build needs a new version"
                )
        else:
            part = dest.with_name(dest.name + ".part")
            shutil.rmtree(part, ignore_errors=True)
            shutil.copytree(src, part)
            os.replace(part, dest)
            print(f"bundle {version} copied to {dest}")
        src = dest
    check_files(src, manifest)
    base = base_url or f"http://{_this_host()}:{cfg.ota.port}"
    return version, f"{base.rstrip('/')}/{src.relative_to(root).as_posix()}/{MANIFEST}", sha


# --------------------------------------------------------------------------- the run


def start_state(args: argparse.Namespace, cfg: Config, fleet: R.StoreFleet) -> R.RolloutState:
    version, url, sha = place_bundle(cfg, Path(args.bundle), args.base_url)
    path = R.state_path(cfg.spool.path, version)
    st = R.load_state(path)
    if st is not None:
        if st.sha256 != sha:
            raise R.RolloutError(
                f"{path} records a rollout of another build of {version}; a new build needs a "
                "new version (or move that file away to start over)"
            )
        if args.stage and st.stages != args.stage:
            raise R.RolloutError(
                f"{path} records other stages ({describe_stages(st.stages)}); the stages stay "
                "as first planned (move that file away to plan again)"
            )
        if not args.stage and st.stages[0] != [args.canary]:
            print(f"continuing with the canary {st.stages[0][0]} ({path} names it)")
        st.url = url
        print(f"continuing the rollout of {version} recorded in {path}")
        return st
    benches = fleet.benches()
    known = sorted(set(cfg.health.expected) | set(benches))
    if args.stage:
        stages = given_stages(args.stage, known)
        st = R.RolloutState(version=version, url=url, sha256=sha, stages=stages)
        R.save_state(path, st)
        print(f"rollout of {version} ({url}), stages given, state in {path}")
        return st
    if args.canary not in known:
        raise R.RolloutError(
            f"{args.canary} is not one of this gateway's benches ({', '.join(known) or 'none'})"
        )
    online = {b for b, n in benches.items() if n.reachable}
    current = {b for b, n in benches.items() if n.fw == version}
    stages = R.plan_stages(args.canary, args.then, known, online, current)
    st = R.RolloutState(version=version, url=url, sha256=sha, stages=stages)
    R.save_state(path, st)
    print(f"rollout of {version} ({url}), state in {path}")
    return st


def describe_stages(stages: list[list[str]]) -> str:
    return " | ".join(",".join(s) or "-" for s in stages)


def given_stages(stages: list[list[str]], known: list[str]) -> list[list[str]]:
    """``--stage`` lists as the plan. A bench this gateway has never seen nor expects is
    planned anyway (named): it waits, as an offline one does, until it connects."""
    named = [b for s in stages for b in s]
    if not named:
        raise R.RolloutError("no bench in any --stage")
    if len(set(named)) != len(named):
        twice = sorted({b for b in named if named.count(b) > 1})
        raise R.RolloutError(f"a bench in two stages: {', '.join(twice)}")
    for b in named:
        if b not in known:
            print(f"{b} has never been seen by this gateway: it waits until it connects")
    return [list(s) for s in stages]


def json_lines(st: R.RolloutState, fleet: R.StoreFleet) -> None:
    """Each bench's state as one JSON object a line (``--json-lines``)."""
    benches = fleet.benches()
    for bench, run in st.benches.items():
        print(bench_json(bench, run, benches.get(bench, BenchHealth(bench)).fw))
    sys.stdout.flush()


def bench_json(bench: str, run: R.BenchRun, fw: str | None = None) -> str:
    body = {"bench": bench, "stage": run.stage, "state": run.state, "detail": run.detail}
    body.update({"since": run.since, "fw": fw, "rollout": 1})
    return json.dumps(body, sort_keys=True)


def _report(args: argparse.Namespace, st: R.RolloutState, fleet: R.StoreFleet) -> None:
    print(R.table(st, fleet.benches(), time.time()), flush=True)
    if args.json_lines:
        json_lines(st, fleet)


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%H:%M:%S")


def cmd_rollout(args: argparse.Namespace) -> int:
    prog = "klupa gateway ota rollout"
    if bool(args.stage) == bool(args.canary) or (args.stage and args.then):
        print(f"{prog}: error: give --canary (and --then), or --stage, not both", file=sys.stderr)
        return 2
    if args.upto is not None and args.upto < 0:
        print(f"{prog}: error: --upto is a stage number, 0 or more", file=sys.stderr)
        return 2
    cfg = load_for_command(args.config, prog)
    if cfg is None:
        return 2
    try:
        fleet = R.StoreFleet(cfg.spool.path)
    except R.RolloutError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    try:
        st = start_state(args, cfg, fleet)
        user, password, source = ops_credentials(args, cfg)
    except (R.RolloutError, OSError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        fleet.close()
        return 1
    path = R.state_path(cfg.spool.path, st.version)
    if st.halted and not args.retry:
        _report(args, st, fleet)
        print(
            f"halted: {printable(st.halted, 200)}. Fix the cause; --retry offers the halted "
            "benches again."
        )
        fleet.close()
        return 3
    if st.halted:
        for run in st.benches.values():
            if run.state in R.HALTING:
                run.state, run.detail = R.WAITING, "retried"
        st.halted = ""
    link = CommandLink(cfg, user, password)
    try:
        link.open()
    except LinkError as exc:
        print(f"{prog}: {exc}; password from {source}", file=sys.stderr)
        fleet.close()
        return 1
    code = _watch(args, st, fleet, link, path)
    if code is not None:
        return code
    _report(args, st, fleet)
    fleet.close()
    if st.halted:
        print(
            f"halted: {printable(st.halted, 200)}. No more benches are sent {st.version}; see "
            "docs/operations.md, Staged updates."
        )
        return 3
    if args.upto is not None and args.upto < len(st.stages) - 1:
        print(f"done: every bench of stages 0 to {args.upto} runs {st.version}")
        return 0
    print(f"done: every bench runs {st.version}")
    return 0


def _watch(
    args: argparse.Namespace,
    st: R.RolloutState,
    fleet: R.StoreFleet,
    link: CommandLink,
    path: str,
) -> int | None:
    """Step the rollout until it is over (None), or the exit status it ends with early."""
    changed = [True]

    def on_change(bench: str, run: R.BenchRun) -> None:
        changed[0] = True
        extra = f" ({printable(run.detail)})" if run.detail else ""
        print(f"{_clock(run.since)} {bench}: {run.state}{extra}", flush=True)
        if args.json_lines:
            print(bench_json(bench, run), flush=True)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old_term = signal.signal(signal.SIGTERM, on_term)
    # A hang-up is the laptop's ssh going away (`klupa fleet ota rollout` interrupted).
    old_hup = signal.signal(signal.SIGHUP, on_term)
    limits = R.Limits(
        soak_s=args.soak, ack_timeout_s=args.ack_timeout, commit_timeout_s=args.commit_timeout
    )
    ro = R.Rollout(st, fleet, link, limits, on_change, upto=args.upto)
    _report(args, st, fleet)
    stage_seen = -1
    try:
        while True:
            active = ro.active_stage()
            if active != stage_seen and not st.halted:
                stage_seen = active
                name = "the canary" if active == 0 else f"stage {active}"
                if active <= ro.last_stage():
                    print(f"-- {name}: {', '.join(st.stages[active])}", flush=True)
                elif waiting := [
                    b
                    for b, r in st.benches.items()
                    if r.state not in R.FINISHED and r.stage <= ro.last_stage()
                ]:
                    print(f"-- every stage begun; waiting for {', '.join(waiting)}", flush=True)
            over = ro.step(time.time())
            if changed[0]:
                R.save_state(path, st)
                changed[0] = False
            if over:
                break
            if args.no_wait and (left := ro.only_waiting()):
                _report(args, st, fleet)
                print(f"left waiting for their return: {', '.join(left)}; run again to reach them")
                return 4
            time.sleep(args.every)
    except KeyboardInterrupt:
        R.save_state(path, st)
        _report(args, st, fleet)
        print(f"stopped; the same command continues from {path}")
        fleet.close()
        return 130
    finally:
        link.close()
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGHUP, old_hup)
    return None
