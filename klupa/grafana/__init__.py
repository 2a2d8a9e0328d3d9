"""`klupa grafana dashboards`: the partners' Grafana dashboards, built from the inventory.

Two dashboards, both read InfluxDB in InfluxQL (docs/interfaces.md's schema; InfluxDB 1.x natively,
2.x through its v1 API with a DBRP mapping, 3.x natively), never Flux:

- ``fleet``: a map of the benches at the inventory's coordinates, benches online now, state of
  charge, energy harvested and delivered, charging sessions, votes, gateways;
- ``bench``: one bench (``$municipality``, then ``$bench``), everything it reports.

The fleet map's coordinates come from the inventory (``fleet.py`` says how), so the committed
JSON in ``deploy/grafana/dashboards/`` is this package's output for the default inventory, and
a deployment whose benches moved regenerates it with
``klupa grafana dashboards --deployment DIR --out DIR``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from klupa.console import OneCommand, option
from klupa.grafana.bench import bench_dashboard
from klupa.grafana.fleet import Site, fleet_dashboard

__all__ = ["Site", "bench_dashboard", "fleet_dashboard", "main", "sites_of", "write_dashboards"]

# The command line main() parses: its help texts and options.
DASHBOARDS = OneCommand(
    "klupa grafana dashboards",
    "Grafana dashboards for partners",
    "write fleet.json and bench.json from a deployment's inventory",
    "Write the Grafana dashboards (fleet.json, bench.json) for the benches of "
    "a deployment's inventory.toml; provision them as docs/dashboards.md says.",
    (
        option("--deployment", type=Path, required=True, help="deployment folder"),
        option("--out", type=Path, required=True, help="folder for the JSON files"),
    ),
)


def sites_of(root: Path) -> list[Site]:
    """Each bench of a deployment folder's inventory, with its municipality's display name."""
    from provisioning.deployment import Deployment

    dep = Deployment(root)
    return [
        Site(b.id, b.municipality, dep.municipality(b.municipality).name, b.location, b.lat, b.lon)
        for b in dep.benches()
    ]


def write_dashboards(sites: list[Site], out: Path) -> list[Path]:
    """Write fleet.json and bench.json into ``out``; returns the files whose content changed."""
    out.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, board in (("fleet", fleet_dashboard(sites)), ("bench", bench_dashboard())):
        path = out / f"{name}.json"
        text = json.dumps(board, indent=2, ensure_ascii=False) + "\n"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def main(argv: list[str]) -> int:
    args = DASHBOARDS.parse(argv)
    from provisioning.deployment import DeploymentError

    try:
        sites = sites_of(args.deployment)
    except DeploymentError as exc:
        print(f"klupa grafana: {exc}", file=sys.stderr)
        return 2
    if not sites:
        print(f"klupa grafana: no benches in {args.deployment}/inventory.toml", file=sys.stderr)
        return 2
    changed = write_dashboards(sites, args.out)
    for path in (args.out / "fleet.json", args.out / "bench.json"):
        print(f"{path}: {'written' if path in changed else 'unchanged'}")
    print(f"{len(sites)} benches on the map")
    return 0
