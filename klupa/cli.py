"""The `klupa` console script: a thin dispatcher over each part's own command module.

Each part owns `main(argv) -> int` in its `cli` module; importing is lazy so that
`klupa --help` stays fast and a part with a heavy dependency costs nothing until used, and a
machine installs only its role's extra (`pip install 'klupa[gateway]'` on a Raspberry Pi). A
command that needs what is not installed says so in one line and exits 1: a library of another
extra (it names the extra), or a part klupa ships (`klupa.shipped.MissingPart`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

from klupa.shipped import MissingPart

# Our own top-level packages: a missing one is a broken installation, not a missing extra.
OURS = {"klupa", "edge_gateway", "portal", "provisioning", "boards", "klupa_firmware"}

# subcommand -> the extra of pyproject.toml that holds its libraries
EXTRA = {
    "demo": "all",
    "gateway": "gateway",
    "portal": "portal",
    "provision": "provision",
    "sim": "all",
    "bundle": "provision",
    "grafana": "provision",
    "fleet": "provision",
}

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
    "fleet": ("klupa.fleet_cli", "every municipality from the laptop: ota rollout"),
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
    try:
        return _run(name, args[1:])
    except KeyboardInterrupt:
        return 0
    except MissingPart as exc:
        print(f"klupa {name}: {exc}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:
        library = (exc.name or "").partition(".")[0]
        if not library or library in OURS:
            raise
        print(
            f"klupa {name}: needs {library}, which is not installed here; "
            f"install klupa[{EXTRA.get(name, 'all')}]",
            file=sys.stderr,
        )
        return 1


def _run(name: str, argv: list[str]) -> int:
    if name == "gateway" and argv[:1] in (["install"], ["uninstall"]):
        # Setting up a Pi reads the deployment folder: the application wires the parts.
        from klupa import install

        return install.main(argv[1:], uninstalling=argv[0] == "uninstall")
    module_name, _ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            print(f"klupa {name}: not built yet", file=sys.stderr)
            return 2
        raise
    entry: Callable[[list[str]], int] = module.main
    return int(entry(argv) or 0)


if __name__ == "__main__":
    sys.exit(main())
