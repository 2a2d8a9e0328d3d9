"""The wheel works anywhere: built from this checkout, installed into a fresh venv outside it,
and run from an empty folder, with only the extra of the machine's role.

One venv serves every case: first with klupa[gateway] alone (what a Raspberry Pi installs: what
is installed, what the gateway imports, what the other roles' commands say), then with
klupa[provision] added for the bundle. pip takes the packages from its configured indexes and
its cache, so a second run installs from the cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from provisioning.bundle import MANIFEST_NAME, load_bundle
from provisioning.deployment import Deployment
from testkit.gateway import Publisher
from testkit.services import Broker

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# What the build reads is in the checkout; the rest of it is not copied.
NOT_BUILT = (".git", ".venv", "node_modules", "build", "dist", "*.egg-info", "__pycache__")
NOT_BUILT += (".*_cache", ".hypothesis", ".klupa-*")
NOT_ON_A_PI = ("fastapi", "esptool", "PIL", "playwright")
# Run in the venv after `klupa gateway check`: the gateway's whole entry point, and what it took.
GATEWAY_PROBE = """
import importlib.util, json, sys
from klupa.cli import main
rc = main(["gateway", "check", "--config", sys.argv[1]])
import edge_gateway.cli, edge_gateway.service
mods = sorted({m.split(".")[0] for m in sys.modules})
print(json.dumps({"rc": rc, "mods": mods,
                  "found": [n for n in sys.argv[2:] if importlib.util.find_spec(n)]}))
"""


@dataclass
class Installed:
    """The venv, and what it showed while it held klupa[gateway] alone."""

    root: Path
    wheel: Path
    extras: set[str] = field(default_factory=set)
    gateway_probe: dict[str, object] = field(default_factory=dict)
    gateway_check: subprocess.CompletedProcess[str] | None = None
    other_roles: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)

    @property
    def python(self) -> Path:
        return self.root / "venv" / "bin" / "python"

    @property
    def klupa(self) -> Path:
        return self.root / "venv" / "bin" / "klupa"

    def install(self, extra: str) -> None:
        # pip of this venv, run for the new one (which has none of its own)
        pip = [sys.executable, "-m", "pip", "--python", self.python, "install", "-q"]
        done = self.run(*pip, f"{self.wheel}[{extra}]", cwd=self.root, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        self.extras.add(extra)

    def run(
        self, *argv: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """A command in ``cwd``, with none of this checkout on its path (nor its metadata)."""
        base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        return subprocess.run(
            [str(a) for a in argv],
            cwd=cwd,
            env=base | (env or {}),
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def build_wheel(out: Path) -> Path:
    """`pip wheel` of a copy of the checkout (an in-place build would leave build/ behind)."""
    src = out / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(*NOT_BUILT), symlinks=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    shutil.rmtree(src)
    (wheel,) = out.glob("klupa-*.whl")
    return wheel


def example_gateway_config(folder: Path) -> Path:
    """deploy/gateway.example.toml with its machine's folders and password file in ``folder``."""
    text = (REPO / "deploy" / "gateway.example.toml").read_text()
    text = text.replace("/var/lib/klupa/", f"{folder}/").replace("/etc/klupa/", f"{folder}/")
    (folder / "ota").mkdir()
    (folder / "gateway-mostar-mqtt.pass").write_text("t-mqtt\n")
    cfg = folder / "gateway-mostar.toml"
    cfg.write_text(text)
    return cfg


SECRETS = {"KLUPA_INFLUXDB_TOKEN": "t-influx", "KLUPA_PORTAL_TOKEN": "t-portal"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    venv = subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(root / "venv")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert venv.returncode == 0, venv.stderr
    it = Installed(root, build_wheel(root / "dist"))
    it.install("gateway")
    # What a Raspberry Pi's klupa[gateway] is, before anything else is added to the venv.
    empty = root / "pi"
    empty.mkdir()
    cfg = example_gateway_config(empty)
    probe = it.run(it.python, "-c", GATEWAY_PROBE, cfg, *NOT_ON_A_PI, cwd=empty, env=SECRETS)
    assert probe.returncode == 0, probe.stderr
    it.gateway_probe = json.loads(probe.stdout.strip().splitlines()[-1])
    it.gateway_check = it.run(it.klupa, "gateway", "check", "--config", cfg, cwd=empty, env=SECRETS)
    for role, argv in {
        "portal": ["portal", "serve", "--db", str(empty / "portal.sqlite")],
        "provision": ["provision", "detect"],
    }.items():
        it.other_roles[role] = it.run(it.klupa, *argv, cwd=empty)
    return it


def test_a_pi_with_the_gateway_extra_has_no_portal_or_provisioning(installed: Installed) -> None:
    probe = installed.gateway_probe
    assert probe["rc"] == 0
    assert probe["found"] == [], f"installed with klupa[gateway]: {probe['found']}"
    mods = set(probe["mods"])  # type: ignore[call-overload]
    assert {"edge_gateway", "klupa", "paho", "msgspec"} <= mods
    assert not mods & {"portal", "provisioning", "boards", "klupa_firmware", *NOT_ON_A_PI}


def test_the_gateway_checks_the_example_config_from_an_empty_folder(
    installed: Installed,
) -> None:
    check = installed.gateway_check
    assert check is not None and check.returncode == 0, check and check.stderr
    assert "valid (municipality mostar" in check.stdout


def test_another_roles_command_names_the_extra_it_needs(installed: Installed) -> None:
    for role, done in installed.other_roles.items():
        assert done.returncode == 1, done.stderr
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and f"install klupa[{role}]" in lines[0], done.stderr


def test_the_sim_runs_a_bench_whose_records_reach_the_broker(
    installed: Installed, mosquitto: Broker, tmp_path: Path
) -> None:
    """The installed firmware on the virtual board, for 20 s at ×60 against a real Mosquitto."""
    listener = Publisher(mosquitto.host, mosquitto.port)
    listener.subscribe("klupa/v1/mostar/mostar-01/#")
    started = time.monotonic()
    sim = installed.run(
        installed.klupa,
        "sim",
        "--broker",
        f"{mosquitto.host}:{mosquitto.port}",
        "--municipalities",
        "mostar",
        "--speed",
        "60",
        "--start-ago",
        "2h",
        "--duration",
        "20m",
        cwd=tmp_path,
        timeout=120,
    )
    assert sim.returncode == 0, sim.stderr[-3000:]
    assert time.monotonic() - started >= 19
    time.sleep(0.5)
    listener.client.loop_stop()
    kinds = {topic.rsplit("/", 1)[1] for topic, _, _ in listener.received}
    assert "telemetry" in kinds, f"{sorted(kinds)}; sim: {sim.stderr[-2000:]}"
    assert (tmp_path / ".klupa-sim" / "mostar-01" / "config.json").is_file()


def test_bundle_builds_a_signed_bundle_from_an_empty_folder(
    installed: Installed, tmp_path: Path
) -> None:
    if "provision" not in installed.extras:
        installed.install("provision")
    init = installed.run(installed.klupa, "provision", "init", "deploy", cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    done = installed.run(installed.klupa, "bundle", "--deploy", "deploy", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "build" / "bundle"
    bundle = load_bundle(out, Deployment(tmp_path / "deploy").ota_anchor)
    paths = {f["path"] for f in bundle.files()}
    assert {"boot.py", "main.py", "bench/app.mpy", "drivers/ina226.mpy"} <= paths
    assert (out / MANIFEST_NAME).is_file()
