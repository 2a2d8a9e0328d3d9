"""What the two staged-rollout tests (test_ota_rollout: `klupa gateway ota rollout` on one Pi;
test_fleet_rollout: `klupa fleet ota rollout` from the laptop) share: the rollout command run in
the background, interrupted and run again; the rollout's state file; the benches' ota events."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

from klupa.services import stop_process


def ota_states(system: Any, bench: str) -> list[tuple[str, str]]:
    """The bench's `ota` events as the gateway stored them: (state, version), oldest first."""
    return [
        (r.body["state"], r.body["version"])
        for r in system.records("event", bench)
        if r.body["type"] == "ota"
    ]


def rollout_states(state_file: Path) -> dict[str, str]:
    """Each bench's state in a rollout's state file; none before the rollout has written it."""
    if not state_file.exists():
        return {}
    return {b: v["state"] for b, v in json.loads(state_file.read_text())["benches"].items()}


class Rollout:
    """A rollout command line, run in the background each time the test starts it, every run's
    output appended to ``log``. A run still going when the ``with`` block ends (a failed wait)
    is stopped with SIGTERM, ``stop_timeout`` seconds given to exit."""

    def __init__(self, argv: list[str], log: Path, stop_timeout: float) -> None:
        self.argv = argv
        self.log = log
        self.stop_timeout = stop_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Rollout:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_process(self.proc, signal.SIGTERM, timeout=self.stop_timeout)

    def start(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as f:
            self.proc = subprocess.Popen(self.argv, stdout=f, stderr=subprocess.STDOUT)
        return self.proc

    def interrupt(self, timeout: float) -> None:
        """Ctrl-C: the run stops with exit status 130 (the same command continues it)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        assert self.proc.wait(timeout) == 130, self.log.read_text()
