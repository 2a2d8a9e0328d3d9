"""The `klupa` console script: a thin dispatcher over each part's own command module.

Each part owns `main(argv) -> int` in its `cli` module; importing is lazy so that
`klupa --help` stays fast and a part with a heavy dependency costs nothing until used.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

# subcommand -> (module, one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("klupa.demo", "run the whole system on this machine, no hardware needed"),
    "gateway": (
        "edge_gateway.cli",
        "the municipality gateway: run, check, status, cmd, backup, ota rollout; install, uninstall",
    ),
    "portal": ("portal.cli", "the civic-feedback portal: serve, token, poll"),
    "provision": ("provisioning.cli", "the technician's USB workflow for a bench"),
    "sim": ("klupa.sim.fleet", "virtual benches publishing to a broker"),
    "bundle": ("provisioning.bundle", "build a signed app bundle for OTA and provisioning"),
    "grafana": ("klupa.grafana", "partners' Grafana dashboards from the inventory"),
    "influx": ("klupa.influx", "InfluxDB retention and hourly downsampling"),
}


def _usage() -> str:
    lines = ["usage: klupa COMMAND [ARGS...]", "", "commands:"]
    for name, (_, summary) in COMMANDS.items():
        lines.append(f"  {name:<10} {summary}")
    lines.append("")
    lines.append("Run `klupa COMMAND --help` for a command's own options.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if args[0] in ("--version", "-V"):
        from klupa import __version__

        print(f"klupa {__version__}")
        return 0
    name = args[0]
    if name not in COMMANDS:
        print(f"klupa: unknown command {name!r}; try `klupa --help`", file=sys.stderr)
        return 2
    if name == "gateway" and args[1:2] in (["install"], ["uninstall"]):
        # Setting up a Pi reads the deployment folder: the application wires the parts.
        from klupa import install

        return install.main(args[2:], uninstalling=args[1] == "uninstall")
    module_name, _ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            print(f"klupa {name}: not built yet", file=sys.stderr)
            return 2
        raise
    entry: Callable[[list[str]], int] = module.main
    try:
        return int(entry(args[1:]) or 0)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
