"""`klupa fleet ota rollout`'s control of the Pis (`klupa.fleet_cli`), fast: a real deployment
folder and a bundle signed with its key, and, through `--via`, a stand-in for each Pi's
`klupa gateway ota rollout` that prints JSON lines and ends with the status the test gives it
(the real one, on real gateways and benches, is hil_tests/test_fleet_rollout.py)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from klupa.fleet_cli import main as fleet_main
from provisioning import signing
from provisioning.bundle import sign

V = "1.2.0"
KLUPA = [sys.executable, "-m", "klupa.cli"]

# A stand-in Pi: `pi.py M ARGS…`. It records its arguments, says each of its benches of the
# stages up to --upto is in the state the test's script gives, and ends with its status; on
# SIGINT it says it was stopped and ends with 130, as the real rollout does.
PI = """
import json, signal, sys, time
from pathlib import Path
here = Path(__file__).parent
m, args = sys.argv[1], sys.argv[2:]
with open(here / "calls.txt", "a") as f:
    f.write(m + " " + " ".join(args) + "\\n")
stages = [a for i, a in enumerate(args) if i and args[i - 1] == "--stage"]
upto = int(args[args.index("--upto") + 1])
script = json.loads((here / "script.json").read_text()).get(f"{m}/{upto}", {})
def stopped(*_):
    (here / f"stopped-{m}").write_text("")
    sys.exit(130)
signal.signal(signal.SIGINT, stopped)
for k, stage in enumerate(stages[: upto + 1]):
    for b in stage.split(","):
        if b != "-":
            line = {"rollout": 1, "bench": b, "stage": k, "since": time.time(), "fw": "1.0.0"}
            print(json.dumps(line | {"state": script.get(b, "done"), "detail": ""}), flush=True)
print("some text of the Pi's own", flush=True)
time.sleep(script.get("sleep", 0))
sys.exit(script.get("status", 0))
"""


@pytest.fixture
def fleet(tmp_path: Path) -> dict[str, Path]:
    dep = tmp_path / "deploy"
    subprocess.run([*KLUPA, "provision", "init", str(dep)], check=True, capture_output=True)
    with (dep / "inventory.toml").open("a") as f:
        f.write('\n[benches.mostar-02]\nmunicipality = "mostar"\n')
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "main.py").write_bytes(b"\n")
    entry = {"path": "main.py", "size": 1, "sha256": hashlib.sha256(b"\n").hexdigest()}
    key = signing.load(dep / "ota" / "signing-key.pem")
    (bundle / "manifest.json").write_text(json.dumps(sign({"version": V, "files": [entry]}, key)))
    (tmp_path / "pi.py").write_text(PI)
    (tmp_path / "script.json").write_text("{}")
    return {"dep": dep, "bundle": bundle, "root": tmp_path}


def run(fleet: dict[str, Path], *extra: str) -> int:
    root = fleet["root"]
    argv = ["ota", "rollout", "--deployment", str(fleet["dep"]), "--bundle", str(fleet["bundle"])]
    argv += ["--canary", "mostar-01", "--then", "all", "--only", "mostar,jablanica,trebinje"]
    argv += ["--via", f"{sys.executable} {root}/pi.py {{m}}", "--push", "none", *extra]
    return fleet_main(argv)


def calls(fleet: dict[str, Path]) -> list[str]:
    path = fleet["root"] / "calls.txt"
    return path.read_text().splitlines() if path.exists() else []


def test_each_stage_runs_on_the_pis_with_work_in_it_with_their_own_benches(
    fleet: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(fleet, "--soak", "90s") == 0
    out = capsys.readouterr().out
    assert "done: every bench of mostar, jablanica, trebinje runs 1.2.0" in out
    remote = "--bundle /tmp/klupa-bundle-1.2.0"
    tail = "--soak 90s --json-lines"
    # the canary's stage on its Pi alone; then every Pi, at once
    assert calls(fleet)[0] == (
        f"mostar {remote} --stage mostar-01 --stage mostar-02 --upto 0 {tail} --no-wait"
    )
    assert sorted(calls(fleet)[1:]) == [
        f"jablanica {remote} --stage - --stage jablanica-01 --upto 1 {tail}",
        f"mostar {remote} --stage mostar-01 --stage mostar-02 --upto 1 {tail}",
        f"trebinje {remote} --stage - --stage trebinje-01 --upto 1 {tail}",
    ]
    log = fleet["dep"] / "rollouts" / V / "jablanica.log"
    assert "some text of the Pi's own" in log.read_text()


def test_a_halt_on_one_pi_stops_the_others_and_a_second_run_asks_no_pi_anything(
    fleet: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    script = {
        "jablanica/1": {"jablanica-01": "rolled_back", "status": 3, "sleep": 1.5},
        "mostar/1": {"mostar-02": "sending", "sleep": 30},
        "trebinje/1": {"trebinje-01": "sending", "sleep": 30},
    }
    (fleet["root"] / "script.json").write_text(json.dumps(script))
    t0 = time.monotonic()
    assert run(fleet) == 3
    assert time.monotonic() - t0 < 20  # the others did not run out their 30 s
    out = capsys.readouterr().out
    assert "halted: jablanica: jablanica-01: rolled_back" in out
    assert (fleet["root"] / "stopped-mostar").exists()
    assert (fleet["root"] / "stopped-trebinje").exists()
    n = len(calls(fleet))
    assert run(fleet) == 3
    assert "Fix the cause; --retry" in capsys.readouterr().out
    assert len(calls(fleet)) == n
    (fleet["root"] / "script.json").write_text("{}")
    assert run(fleet, "--retry") == 0
    assert all(c.endswith("--retry") for c in calls(fleet)[n:])


def test_a_pi_that_cannot_be_reached_stops_the_fleet_naming_it_and_the_plan_is_kept(
    fleet: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    script = {"trebinje/1": {"status": 255}, "mostar/1": {"sleep": 30}}
    (fleet["root"] / "script.json").write_text(json.dumps(script))
    assert run(fleet) == 1
    err = capsys.readouterr().err
    assert "trebinje's rollout ended with 255: some text of the Pi's own" in err
    state = json.loads((fleet["dep"] / "rollouts" / f"rollout-{V}.json").read_text())
    assert state["stage_done"] == 0 and state["halted"] == ""
    assert state["benches"]["mostar-01"]["state"] == "done"
    # Another --only is refused: the stages stay as first planned.
    argv = ["ota", "rollout", "--deployment", str(fleet["dep"]), "--bundle", str(fleet["bundle"])]
    assert fleet_main([*argv, "--canary", "mostar-01", "--only", "mostar"]) == 1
    assert "the stages stay as first planned" in capsys.readouterr().err


def test_a_bundle_not_signed_by_the_deployment_s_key_is_refused_before_any_pi(
    fleet: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = json.loads((fleet["bundle"] / "manifest.json").read_text())
    other = sign({k: v for k, v in manifest.items() if k != "sig"}, signing.generate())
    (fleet["bundle"] / "manifest.json").write_text(json.dumps(other))
    assert run(fleet) == 1
    assert "not a bundle of this deployment" in capsys.readouterr().err
    assert calls(fleet) == []
