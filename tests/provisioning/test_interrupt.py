"""Ctrl-C during an `app` upload leaves the board in a state the next run recovers from.

The interrupt is a KeyboardInterrupt raised from the progress callback (where Python delivers
a technician's Ctrl-C between two serial round trips) once about half the bytes are sent, in
the middle of a file. The board is the MicroPython REPL on a pseudo-terminal.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from provisioning import cli
from provisioning.deployment import Deployment
from provisioning.device import Board
from provisioning.steps import Progress, Run, step_app
from provisioning.steps_app import app_files
from testkit.micropython import MicroPythonBoard


def _firmware(root: Path) -> Path:
    (root / "bench").mkdir(parents=True)
    (root / "boot.py").write_text("# boot\n")
    (root / "main.py").write_text("# main\n")
    (root / "bench" / "__init__.py").write_text('VERSION = "5.0.2"\n')
    for i in range(5):  # incompressible constants: each .mpy spans several upload chunks
        (root / "bench" / f"part{i}.py").write_text(f'DATA = "{os.urandom(3500).hex()}"\n')
    return root


class Interrupt:
    """A progress callback that presses Ctrl-C once ``at`` of the bytes are sent."""

    def __init__(self, at: float) -> None:
        self.at = at
        self.fired = 0

    def __call__(self, step: str, done: int, total: int) -> None:
        if step == "app" and not self.fired and done >= self.at * total:
            self.fired = done
            raise KeyboardInterrupt


def test_ctrl_c_midway_then_the_next_run_completes_with_every_hash_verified(
    micropython_board: MicroPythonBoard, deployment: Deployment, tmp_path: Path
) -> None:
    fw = _firmware(tmp_path / "fw")
    fs = micropython_board.fs_dir

    def run(progress: Progress | None = None) -> Run:
        return Run(
            dep=deployment,
            port=micropython_board.port,
            bench=deployment.bench("mostar-01"),
            firmware_dir=fw,
            progress=progress,
        )

    files, _ = app_files(run())
    want = {p: hashlib.sha256(d).hexdigest() for p, d in files.items()}
    total = sum(len(d) for p, d in files.items())
    ctrl_c = Interrupt(0.5)

    with pytest.raises(KeyboardInterrupt):
        step_app(run(ctrl_c))

    assert 0 < ctrl_c.fired < total
    # What the interrupt left: every file under its own name is complete (a file is written to
    # a temporary name and renamed), and no manifest claims a finished upload.
    landed = [p for p in want if (fs / p.lstrip("/")).exists()]
    assert 0 < len(landed) < len(want)
    for p in landed:
        assert hashlib.sha256((fs / p.lstrip("/")).read_bytes()).hexdigest() == want[p], p
    assert not (fs / "manifest.json").exists()
    # The board still answers its REPL (the raw REPL was left cleanly).
    with Board(micropython_board.port, timeout=5) as board:
        assert board.eval("1+1") == 2

    # The same command again: resumes, copies only what is missing, verifies every hash.
    summary = step_app(run())

    copied = int(summary.split(": ", 1)[1].split(" file(s) copied")[0])
    assert copied == len(want) - len(landed)
    assert "all hashes verified" in summary
    boot = int(summary.rsplit("boot number ", 1)[1])
    for p, digest in want.items():
        data = (fs / p.lstrip("/")).read_bytes()
        if p == "/config.json" and p not in landed:
            # Written by this run: its boot number start is the minute of this run
            # (docs/protocol.md), which may be a minute later than when `want` was made; the rest is the same.
            got, expected = json.loads(data), json.loads(files[p])
            assert got.pop("boot") == boot and 0 <= boot - expected.pop("boot") <= 5
            assert got == expected
            continue
        assert hashlib.sha256(data).hexdigest() == digest, p
    manifest = json.loads((fs / "manifest.json").read_text())
    assert manifest["version"] == "5.0.2"
    leftovers = sorted(str(q.relative_to(fs)) for q in fs.rglob("*.part"))
    assert leftovers == []  # the interrupted file's temporary copy is gone too


def test_ctrl_c_in_the_cli_says_the_board_is_safe_to_provision_again(
    micropython_board: MicroPythonBoard,
    deployment: Deployment,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fw = _firmware(tmp_path / "fw")
    ctrl_c = Interrupt(0.3)

    class Interrupted(Run):
        """The CLI's Run, with the technician's Ctrl-C arriving beside its progress bar."""

        def __setattr__(self, name: str, value: object) -> None:
            if name == "progress" and value is not None:
                bar = value

                def both(step: str, done: int, total: int) -> None:
                    bar(step, done, total)  # type: ignore[operator]
                    ctrl_c(step, done, total)

                value = both
            super().__setattr__(name, value)

    monkeypatch.setattr(cli, "Run", Interrupted)
    argv = ["app", micropython_board.port, "--bench", "mostar-01"]
    argv += ["--deploy", str(deployment.root), "--firmware", str(fw)]

    assert cli.main(argv) == 130
    err = capsys.readouterr().err
    assert "interrupted; the board is safe to provision again (run the same command)" in err

    monkeypatch.undo()
    assert cli.main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps at the console's width
    assert "4 unchanged" in out and "all hashes verified" in out
    assert json.loads((micropython_board.fs_dir / "manifest.json").read_text())["version"] == (
        "5.0.2"
    )
