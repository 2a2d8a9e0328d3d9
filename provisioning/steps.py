"""The provisioning steps. Each is a plain function of a `Run`, safe to repeat, and ends in a
verification; each failure is a `StepError` naming step, port, expected, seen, what to try.

This module holds what the steps share (`Run`, their names and help) and runs them in order;
the steps themselves are in `steps_board` (detect, micropython, selftest), `steps_app` (app)
and `steps_register` (register)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from klupa import shipped
from provisioning.deployment import Bench, Deployment, DeploymentError
from provisioning.device import Board, BoardError
from provisioning.errors import HINT_NO_REPL, StepError
from provisioning.steps_app import step_app
from provisioning.steps_board import step_detect, step_micropython, step_selftest
from provisioning.steps_register import step_register

STEPS = ("detect", "micropython", "app", "selftest", "register")
STEP_HELP = {
    "detect": "chip, MAC and flash size through the ROM bootloader; the heap when MicroPython answers",
    "micropython": "erase and write the pinned MicroPython image, verified (skipped when current)",
    "app": "upload the app bundle (changed files only), /config.json, /board.json, boot number",
    "selftest": "the board's heap (no PSRAM: refused), then the firmware's self-test and its report",
    "register": "MQTT password + ACL for the municipality's broker, inventory record, case label",
}
# A batch runs boards in threads; the deployment folder's files are written under this lock.
FOLDER_LOCK = threading.RLock()

Progress = Callable[[str, int, int], None]


@dataclass
class Run:
    """One board on one port, and what the steps learn about it."""

    dep: Deployment
    port: str
    bench: Bench | None = None
    firmware_dir: Path = field(default_factory=shipped.firmware_dir)
    boards_dir: Path = field(default_factory=shipped.boards_dir)
    progress: Progress | None = None
    force: bool = False
    probe_repl: bool = True
    bauds: tuple[int, ...] | None = None
    facts: dict[str, str] = field(default_factory=dict)
    now: Callable[[], float] = time.time
    selftest_report: dict[str, Any] | None = None
    label: str = ""
    folder_lock: ClassVar[threading.RLock] = (
        FOLDER_LOCK  # the app and register steps write under it
    )

    def need_bench(self, step: str) -> Bench:
        if self.bench is None:
            raise StepError(step, self.port, "a bench id", "none given", "pass --bench ID")
        return self.bench

    def board(self, step: str, timeout: float = 10.0) -> Board:
        try:
            return Board(self.port, timeout=timeout)
        except BoardError as e:
            raise StepError(step, self.port, "a MicroPython REPL", str(e), HINT_NO_REPL) from None

    def tick(self, step: str) -> Callable[[int, int], None]:
        def report(done: int, total: int) -> None:
            if self.progress is not None:
                self.progress(step, done, total)

        return report


STEP_FUNCTIONS: dict[str, Callable[[Run], str]] = {
    "detect": step_detect,
    "micropython": step_micropython,
    "app": step_app,
    "selftest": step_selftest,
    "register": step_register,
}


def run_steps(run: Run, steps: list[str], report: Callable[[str, str], None]) -> None:
    """Run ``steps`` in order; ``report(step, summary)`` after each. Raises StepError."""
    for name in steps:
        try:
            summary = STEP_FUNCTIONS[name](run)
        except StepError:
            raise
        except DeploymentError as e:
            raise StepError(
                name, run.port, "a consistent deployment folder", str(e), "fix it"
            ) from None
        except (OSError, ValueError) as e:
            raise StepError(
                name,
                run.port,
                "the step to finish",
                f"{type(e).__name__}: {e}",
                "run the step again; if it repeats, report it",
            ) from None
        report(name, summary)
