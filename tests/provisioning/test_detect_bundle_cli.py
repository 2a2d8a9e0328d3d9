"""detect with pyserial listings, the bundle, init, and the CLI's errors and secrecy."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from provisioning import bundle, cli, signing
from provisioning.create import create_deployment
from provisioning.deployment import Deployment, DeploymentError
from provisioning.detect import BRIDGES, candidates
from testkit.mp.romvfs import image_tree

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"


def _bundle(out: Path, dep: Deployment, *more: str) -> int:
    """`klupa bundle` of the repository's firmware into ``out`` with the deployment's key."""
    return bundle.main(
        ["--firmware", str(FIRMWARE), "--out", str(out), "--deploy", str(dep.root), *more]
    )


def _port(device: str, vid: int | None, pid: int | None) -> SimpleNamespace:
    return SimpleNamespace(device=device, vid=vid, pid=pid, serial_number="X1", description="d")


@pytest.mark.parametrize(("usb", "name"), list(BRIDGES.items()))
def test_detect_lists_each_bridge(usb: tuple[int, int], name: str) -> None:
    listing = [
        _port("/dev/ttyS0", None, None),
        _port("/dev/ttyUSB3", *usb),
        _port("/dev/ttyACM9", 0x2341, 0x0043),
    ]  # an Arduino: not an ESP32 bridge
    found = candidates(lambda: listing)
    assert [(c.port, c.bridge) for c in found] == [("/dev/ttyUSB3", name)]
    assert found[0].usb_id == f"{usb[0]:04X}:{usb[1]:04X}"


def test_init_creates_a_complete_private_folder_and_is_idempotent(tmp_path: Path) -> None:
    dep = create_deployment(tmp_path / "d")
    assert len(dep.municipalities()) == 12 and len(dep.benches()) == 12
    assert dep.bench("novi-grad-01").municipality == "novi-grad"
    assert dep.secrets_path.stat().st_mode & 0o777 == 0o600
    assert (dep.pki_dir / "ca.key").stat().st_mode & 0o777 == 0o600
    before = dep.secrets_path.read_text()
    cert = (dep.broker_dir("ravno") / "server.crt").read_text()
    create_deployment(tmp_path / "d")
    assert dep.secrets_path.read_text() == before
    assert (dep.broker_dir("ravno") / "server.crt").read_text() == cert


def test_bundle_compiles_hashes_and_signs(tmp_path: Path) -> None:
    fw = tmp_path / "fw"
    (fw / "bench").mkdir(parents=True)
    (fw / "boot.py").write_text("x = 1\n")
    (fw / "main.py").write_text("y = 2\n")
    (fw / "bench" / "app.py").write_text('VERSION = "2.0.0"\n')
    key = signing.generate()
    anchor = signing.anchor(key)
    b = bundle.build_bundle(fw, tmp_path / "out", key)
    paths = sorted(f["path"] for f in b.files())
    assert paths == ["bench/app.mpy", "boot.py", "main.py"] and b.version == "2.0.0"
    assert (b.dir / "bench/app.mpy").read_bytes()[:1] == b"M"  # .mpy magic
    for f in b.files():
        assert hashlib.sha256(b.read(f["path"])).hexdigest() == f["sha256"]
    manifest = json.loads((b.dir / "manifest.json").read_text())
    assert bundle.verify(manifest, anchor)
    assert not bundle.verify(manifest, signing.anchor(signing.generate()))
    assert "anchor" not in manifest
    # The ROMFS image for benches with a partition: the packages, nothing else.
    rom = b.read(bundle.ROM_NAME)
    assert manifest["rom"] == {
        "path": bundle.ROM_NAME,
        "size": len(rom),
        "sha256": hashlib.sha256(rom).hexdigest(),
    }
    assert image_tree(rom) == {"bench": {"app.mpy": b.read("bench/app.mpy")}}
    assert bundle.load_bundle(b.dir, anchor).manifest == manifest
    (b.dir / bundle.ROM_NAME).write_bytes(rom[:-1] + b"\x00")
    with pytest.raises(bundle.BundleError, match="app.rom"):
        bundle.load_bundle(b.dir, anchor)
    manifest["files"][0]["size"] += 1
    assert not bundle.verify(manifest, anchor)
    (fw / "bench" / "broken.py").write_text("def (:\n")
    with pytest.raises(bundle.BundleError, match="broken.py"):
        bundle.build_bundle(fw, tmp_path / "out2", key)


def test_a_deployment_without_a_signing_key_says_how_to_get_one(tmp_path: Path) -> None:
    dep = create_deployment(tmp_path / "d")
    shutil.rmtree(dep.ota_dir)  # a folder from before the key existed
    with pytest.raises(DeploymentError, match="klupa provision init"):
        Deployment(dep.root).ota_signing_key  # noqa: B018
    assert _bundle(tmp_path / "b", dep) == 1
    create_deployment(dep.root)  # init again: adds the key, keeps the rest
    assert Deployment(dep.root).ota_key_path.stat().st_mode & 0o777 == 0o600


def test_a_rotation_bundle_names_the_next_key_signed_by_the_current_one(tmp_path: Path) -> None:
    dep = create_deployment(tmp_path / "d")
    old = dep.ota_anchor
    assert dep.ota_key_path.stat().st_mode & 0o777 == 0o600
    out = tmp_path / "rot"
    assert _bundle(out, dep, "--rotate") == 0
    m = json.loads((out / "manifest.json").read_text())
    new = signing.anchor(dep.next_ota_signing_key())
    assert m["anchor"] == new and new != old
    assert bundle.verify(m, old) and not bundle.verify(m, new)
    assert dep.ota_next_key_path.stat().st_mode & 0o777 == 0o600
    # Once every bench committed it: the next key signs, the old one is kept, retired.
    out2 = tmp_path / "after"
    assert _bundle(out2, dep, "--promote") == 0
    m2 = json.loads((out2 / "manifest.json").read_text())
    assert dep.ota_anchor == new and bundle.verify(m2, new) and "anchor" not in m2
    assert (dep.ota_dir / "retired" / f"{signing.key_id(old)}.pem").is_file()
    assert not dep.ota_next_key_path.exists()


def test_help_lists_the_steps(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for step in ("detect", "micropython", "app", "selftest", "register", "bench", "batch"):
        assert step in out


def test_a_failing_step_is_named_and_exits_non_zero(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["selftest", "/dev/nonexistent-klupa", "--deploy", str(deployment.root)])
    err = capsys.readouterr().err
    assert code != 0
    assert err.strip().startswith("klupa provision: step selftest failed on /dev/nonexistent-klupa")
    assert "Try:" in err and "Traceback" not in err


def test_no_secret_appears_in_output_or_logs(
    deployment: Deployment,
    mock_bootloader,
    micropython_board,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    mock = mock_bootloader("esp32")
    image = tmp_path / "mp.bin"
    image.write_bytes(os.urandom(8192))
    text = deployment.inventory_path.read_text().replace(
        'image = ""\noffset = 0x1000', f'image = "{image}"\noffset = 0x1000'
    )
    deployment.inventory_path.write_text(text)
    d = ["--deploy", str(deployment.root)]
    codes = [
        cli.main(["init", str(deployment.root)]),
        cli.main(["detect", mock.url, *d]),
        cli.main(["micropython", mock.url, "--bench", "mostar-01", "--force", *d]),
        cli.main(["app", micropython_board.port, "--bench", "mostar-01", *d]),
        cli.main(["selftest", micropython_board.port, *d]),  # fails: no self-test in firmware
        cli.main(["register", micropython_board.port, "--bench", "mostar-01", *d]),
        cli.main(
            ["bench", micropython_board.port, "--bench", "mostar-01", "--steps", "app,register", *d]
        ),
    ]
    assert codes[:4] == [0, 0, 0, 0] and codes[4] == 1 and codes[5:] == [0, 0]
    captured = capsys.readouterr()
    seen = (
        captured.out
        + captured.err
        + caplog.text
        + micropython_board.output.decode(errors="replace")
    )
    deployment.reload()
    secrets = deployment.secret_values()
    assert len(secrets) >= 14  # the OTA signing key's lines, 12 Wi-Fi, gateways, the bench
    for secret in secrets:
        assert secret not in seen
    assert "mostar-01 | Mostar | MAC" in captured.out  # the case label
