"""``klupa gateway run|check|status|cmd``: a thin command line over the gateway's functions."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

from edge_gateway.commands import add_ops_arguments
from edge_gateway.config import Config, load_for_command, redact
from edge_gateway.forwarder import sink_names
from edge_gateway.text import printable
from klupa.console import Parser
from klupa.contract import BENCH_RE, ops_user


class RedactingFormatter(logging.Formatter):
    """A formatter that blanks every configured secret, whatever a message contains."""

    def __init__(self, secrets_: list[str]) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.secrets = secrets_

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets)


def setup_logging(cfg: Config | None, verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(cfg.secrets() if cfg else []))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("urllib3", "influxdb_client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# --------------------------------------------------------------------------- commands


def cmd_check(args: argparse.Namespace) -> int:
    cfg = load_for_command(args.config, "klupa gateway check")
    if cfg is None:
        return 2
    sinks = sink_names(cfg)
    print(
        f"{args.config}: valid (municipality {cfg.municipality}, broker "
        f"{cfg.mqtt.host}:{cfg.mqtt.port}, sinks: {', '.join(sinks) or 'none'})"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    cfg = load_for_command(args.config, "klupa gateway run")
    if cfg is None:
        return 2
    setup_logging(cfg, args.verbose)
    from edge_gateway.service import Gateway

    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        logging.getLogger("edge_gateway").info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        gw = Gateway(cfg)
        gw.start()
    except OSError as exc:
        print(f"klupa gateway run: cannot start: {exc}", file=sys.stderr)
        return 1
    while not stop.wait(0.5):
        if gw.fatal.is_set():
            gw.stop()
            return 1
    gw.stop()
    return 0


def _ago(t: float | None, now: float) -> str:
    if not t:
        return "never"
    s = int(now - t)
    if s < 120:
        return f"{s} s ago"
    if s < 7200:
        return f"{s // 60} min ago"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


def status_rows(cfg: Config) -> tuple[list[list[str]], list[str], int, float]:
    """Rows (bench, online, last seen, SoC, power, firmware), missing benches, depth, lag."""
    from edge_gateway.store import Store

    now = time.time()
    st = Store(cfg.spool.path, readonly=True)
    try:
        benches = st.benches()
        sinks = sink_names(cfg)
        depth, lag = st.depth_and_lag(sinks, now)
    finally:
        st.close()
    rows = []
    for b in benches:
        state = "yes" if b["online"] else ("sleeping" if b["sleeping"] else "no")
        soc = f"{b['soc']:.1f} %" if b["soc"] is not None else "-"
        rows.append(
            [
                printable(b["bench"], 40),
                state,
                _ago(b["last_seen"], now),
                soc,
                printable(b["power"] or "-", 20),
                printable(b["fw"] or "-", 40),
            ]
        )
    seen = {b["bench"] for b in benches}
    missing = [b for b in cfg.health.expected if b not in seen]
    return rows, missing, depth, lag


def cmd_status(args: argparse.Namespace) -> int:
    cfg = load_for_command(args.config, "klupa gateway status")
    if cfg is None:
        return 2
    if not os.path.exists(cfg.spool.path):
        print(f"no store yet at {cfg.spool.path}: the gateway has not run")
        for b in cfg.health.expected:
            print(f"{b}: expected, never seen")
        return 0
    rows, missing, depth, lag = status_rows(cfg)
    head = ["bench", "online", "last seen", "SoC", "power", "firmware"]
    for b in missing:
        rows.append([b, "never seen", "never", "-", "-", "-"])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print(f"spool depth: {depth} rows not yet forwarded; forwarding lag: {lag:.1f} s")
    return 0


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def cmd_cmd(args: argparse.Namespace) -> int:
    from edge_gateway import protocol as P
    from edge_gateway.commands import CommandLink, LinkError, Refused, ops_credentials

    prog = "klupa gateway cmd"
    cfg = load_for_command(args.config, prog)
    if cfg is None:
        return 2
    if not BENCH_RE.fullmatch(args.bench):
        print(f"{prog}: {args.bench!r} is not a bench id", file=sys.stderr)
        return 2
    if args.op not in P.COMMAND_OPS:
        print(
            f"{prog}: unknown op {args.op!r} (one of {', '.join(P.COMMAND_OPS)})", file=sys.stderr
        )
        return 2
    cmd_args: dict[str, Any] = {}
    for kv in args.args:
        key, sep, value = kv.partition("=")
        if not sep or not key:
            print(f"{prog}: argument {kv!r} is not key=value", file=sys.stderr)
            return 2
        cmd_args[key] = _value(value)
        why = P.set_arg_error(key, cmd_args[key]) if args.op == "set" else None
        if why:
            print(f"{prog}: {why}", file=sys.stderr)
            return 2
    try:
        user, password, source = ops_credentials(args, cfg)
    except OSError as exc:
        print(
            f"{prog}: cannot read the password of {ops_user(cfg.municipality)}: {exc}",
            file=sys.stderr,
        )
        return 2
    link = CommandLink(cfg, user, password, bench=args.bench)
    try:
        link.open()
    except Refused as exc:
        print(f"{prog}: {exc}; password from {source}", file=sys.stderr)
        return 1
    except LinkError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    try:
        cid = link.send(args.bench, args.op, cmd_args)
        got = link.wait_ack(cid, args.timeout)
        if got is None:
            print(
                f"{prog}: no answer from {args.bench} to {args.op} ({cid}) within "
                f"{args.timeout:g} s; is it online? Commands are not queued for offline benches.",
                file=sys.stderr,
            )
            return 1
    finally:
        link.close()
    # The bench's own text, on the operator's terminal: escaped, as in the log.
    detail = printable(got.get("detail", ""), 200)
    if got.get("ok") is True:
        print(f"{args.bench}: {args.op} ok{': ' + detail if detail else ''}")
        return 0
    print(f"{prog}: {args.bench} refused {args.op}: {detail}", file=sys.stderr)
    return 1


def cmd_backup(args: argparse.Namespace) -> int:
    """An online backup of the store (SQLite's backup API), and old ones removed."""
    import sqlite3
    from datetime import date, timedelta

    cfg = load_for_command(args.config, "klupa gateway backup")
    if cfg is None:
        return 2
    out_dir = os.path.abspath(args.dir)
    os.makedirs(out_dir, exist_ok=True)
    name = f"{cfg.municipality}-{date.today().isoformat()}.sqlite"
    target = os.path.join(out_dir, name)
    src = sqlite3.connect(f"file:{cfg.spool.path}?mode=ro", uri=True, timeout=30)
    tmp = target + ".part"
    dst = sqlite3.connect(tmp)
    try:
        src.backup(dst, pages=4096)
    finally:
        dst.close()
        src.close()
    os.replace(tmp, target)
    print(f"backed up {cfg.spool.path} to {target}")
    oldest = (date.today() - timedelta(days=args.keep_days)).isoformat()
    for f in sorted(os.listdir(out_dir)):
        stem = f.removesuffix(".sqlite")
        if f.startswith(f"{cfg.municipality}-") and f.endswith(".sqlite"):
            day = stem[len(cfg.municipality) + 1 :]
            if len(day) == 10 and day < oldest:
                os.remove(os.path.join(out_dir, f))
                print(f"removed {f} (older than {args.keep_days} days)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="klupa gateway", description="The municipality gateway.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--config", required=True, help="the gateway's TOML configuration file")
        return p

    p = add("run", "run the gateway in the foreground (logs to stderr; SIGTERM/SIGINT to stop)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=cmd_run)
    p = add("check", "validate the configuration and its files; connects nowhere")
    p.set_defaults(func=cmd_check)
    p = add("status", "benches seen, their state, and the store's forwarding backlog")
    p.set_defaults(func=cmd_status)
    p = add("cmd", "send a command to a bench and wait for its acknowledgement")
    p.add_argument("bench", help="bench id, e.g. mostar-01")
    p.add_argument("op", help="ping, reboot, set, port, ota or selftest")
    p.add_argument("args", nargs="*", help="key=value arguments (values as JSON when they parse)")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for the ack")
    add_ops_arguments(p)
    p.set_defaults(func=cmd_cmd)
    p = add("backup", "an online backup of the store; backups older than --keep-days removed")
    p.add_argument("--dir", default="/var/backups/klupa", help="where backups go")
    p.add_argument("--keep-days", type=int, default=14, help="days of backups kept")
    p.set_defaults(func=cmd_backup)
    from edge_gateway.rollout_cli import add_parser as add_ota

    add_ota(sub)  # ota rollout
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 0
    except Exception as exc:  # noqa: BLE001 - one clear line, never a bare traceback
        print(f"klupa gateway {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
