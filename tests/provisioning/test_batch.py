"""`klupa provision batch`: two boards in parallel, one unprovisioned bench id each.

Against two MicroPython REPL boards on pseudo-terminals (`app` and `register`) and against two
esp32-mock-bootloaders (`micropython`); the ports are given with `--ports`, as a technician
does when detection lists more than the boards in hand.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from esptool.cmds import detect_chip

from provisioning import broker, cli
from provisioning.deployment import Deployment
from testkit.bootloader import MockBootloader
from testkit.micropython import MicroPythonBoard


def _firmware(root: Path) -> Path:
    (root / "bench").mkdir(parents=True)
    (root / "boot.py").write_text("# boot\n")
    (root / "main.py").write_text("# main\n")
    (root / "bench" / "__init__.py").write_text('VERSION = "3.1.4"\n')
    (root / "bench" / "core.py").write_text("def f(x):\n    return x + 1\n" + "# pad\n" * 200)
    return root


def _rows(out: str) -> dict[str, list[str]]:
    """The summary table's rows by bench id (rich draws │ between cells)."""
    rows: dict[str, list[str]] = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("│┃").split("│")]
        if len(cells) == 4 and cells[0] and cells[0] != "bench":
            rows[cells[0]] = cells
    return rows


def _batch(ports: list[str], steps: str, deployment: Deployment, *more: str) -> int:
    """`klupa provision batch` of ``steps`` on ``ports`` against the deployment folder."""
    argv = ["batch", "--ports", ",".join(ports), "--steps", steps, "--deploy", str(deployment.root)]
    return cli.main([*argv, *more])


def test_batch_provisions_two_repl_boards_each_with_its_own_bench(
    micropython_board_factory: Callable[..., MicroPythonBoard],
    deployment: Deployment,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    boards = [micropython_board_factory(), micropython_board_factory()]
    fw = _firmware(tmp_path / "fw")
    want = [b.id for b in deployment.unprovisioned()[:2]]
    assert len(set(want)) == 2

    code = _batch([b.port for b in boards], "app,register", deployment, "--firmware", str(fw))

    out = capsys.readouterr()
    assert code == 0, out.err
    assert "klupa provision batch" in out.out  # the summary table's title
    rows = _rows(out.out)
    assert set(rows) == set(want)
    # Each port got one of the two bench ids, and the board holds that bench's files.
    by_port = {row[1]: bid for bid, row in rows.items()}
    assert sorted(by_port) == sorted(b.port for b in boards)
    for board in boards:
        bid = by_port[board.port]
        assert rows[bid][2] == "ok"
        config = json.loads((board.fs_dir / "config.json").read_text())
        assert config["bench"] == bid and config["mqtt"]["user"] == bid
        manifest = json.loads((board.fs_dir / "manifest.json").read_text())
        assert manifest["version"] == "3.1.4"
        for f in manifest["files"]:
            data = (board.fs_dir / f["path"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == f["sha256"]
    # The inventory: both recorded, with the app they got; no other bench touched.
    deployment.reload()
    for bid in want:
        rec = deployment.bench(bid).provisioned
        assert rec["app"] == "3.1.4" and rec["at"], rec
        m = deployment.bench(bid).municipality
        users = broker.read_passwd(deployment.broker_dir(m) / "passwd")
        assert broker.verify_password(deployment.mqtt_password(bid) or "", users[bid])
    left = {b.id for b in deployment.unprovisioned()}
    assert not left & set(want) and len(left) == len(deployment.benches()) - 2

    # A second batch takes the next two unprovisioned benches, never the same ones again.
    nxt = [b.id for b in deployment.unprovisioned()[:2]]
    code = _batch([b.port for b in boards], "app", deployment, "--firmware", str(fw))
    rows = _rows(capsys.readouterr().out)
    assert code == 0 and set(rows) == set(nxt) and not set(nxt) & set(want)


def test_batch_flashes_micropython_on_two_mock_bootloaders(
    mock_bootloader: Callable[..., MockBootloader],
    deployment: Deployment,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = os.urandom(32 * 1024)
    path = tmp_path / "mp.bin"
    path.write_bytes(image)
    text = deployment.inventory_path.read_text().replace(
        'image = ""\noffset = 0x1000', f'image = "{path}"\noffset = 0x1000'
    )
    deployment.inventory_path.write_text(text)
    mocks = [mock_bootloader("esp32"), mock_bootloader("esp32")]
    want = [b.id for b in deployment.unprovisioned()[:2]]

    code = _batch([m.url for m in mocks], "micropython", deployment)

    out = capsys.readouterr()
    assert code == 0, out.err
    rows = _rows(out.out)
    assert set(rows) == set(want)
    assert sorted(row[1] for row in rows.values()) == sorted(m.url for m in mocks)
    assert all(row[2] == "ok" for row in rows.values())
    for m in mocks:
        esp = detect_chip(m.url, 115200, "no-reset", connect_attempts=2)
        try:
            assert esp.flash_md5sum(0x1000, len(image)) == hashlib.md5(image).hexdigest()
        finally:
            esp._port.close()
    # `micropython` alone does not register: the benches stay unprovisioned.
    deployment.reload()
    assert {b.id for b in deployment.unprovisioned()} >= set(want)


def test_batch_with_more_boards_than_unprovisioned_benches_refuses(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    ports = [f"/dev/klupa-none-{i}" for i in range(len(deployment.unprovisioned()) + 1)]
    code = cli.main(["batch", "--ports", ",".join(ports), "--deploy", str(deployment.root)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE
    assert f"{len(ports)} boards but {len(ports) - 1} unprovisioned benches" in err
